# parex_unity_by_folder(<target> <ON|OFF>): when ON, a unity build with one unit per source
# folder (src/mp/*.cpp compile as one file, test/mp/*.cpp as another, ...). A folder's files
# share their headers' templates (parex, Boost, the standard library), which one unit parses
# and instantiates once instead of once per file. A file in such a folder joins its unit: its
# file-local helpers (anonymous namespace, static) must not reuse a neighbour's name; the
# compiler says so at once. A source marked SKIP_UNITY_BUILD_INCLUSION compiles alone.
function(parex_unity_by_folder target enabled)
  get_target_property(sources ${target} SOURCES)
  foreach(source ${sources})
    get_filename_component(folder ${source} DIRECTORY)
    string(REPLACE "/" "_" group "${folder}")
    set_source_files_properties(${source} TARGET_DIRECTORY ${target} PROPERTIES UNITY_GROUP "${group}")
  endforeach()
  set_target_properties(${target} PROPERTIES UNITY_BUILD ${enabled} UNITY_BUILD_MODE GROUP)
endfunction()
