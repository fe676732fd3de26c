// check_doc_samples: every C++ sample in the documentation is code that compiles.
//
//   check_doc_samples --docs README.md docs --sources examples [--expect-problems N]
//
// Reads every Markdown file named (a folder: every *.md under it) and finds its fenced code
// blocks. A block whose language is cpp (or c++, cxx, cc) must appear verbatim in one of
// the source files under --sources (*.cpp, *.hpp, *.h, *.cc), which the build compiles and
// CTest runs, so a sample cannot rot. "Verbatim": the block's lines, after removing their
// common indentation and trailing spaces, equal a contiguous run of a source file's lines
// after removing that run's common indentation and trailing spaces (a sample may sit inside
// a function in the source and at column 0 in the guide; its inner indentation must match).
// Leading and trailing blank lines of a block are ignored.
//
// A fence with no language is a problem too (say cpp, sh, text, cmake...): otherwise a C++
// sample could escape the check by leaving its language out. Other languages are not
// checked. An unterminated fence is a problem.
//
// Exit status 0 when every cpp block was found (with --expect-problems N: when exactly N
// problems were found, for the checker's own test), 1 otherwise, 2 on bad usage. Needs only
// the C++ standard library, so that it builds wherever the tests build.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

struct SourceFile {
  fs::path path;
  std::vector<std::string> lines;  // trailing whitespace removed
};

struct Block {
  fs::path file;
  std::size_t line = 0;            // 1-based line of the opening fence
  std::string language;
  std::vector<std::string> lines;  // normalized: see normalize()
};

std::string rstrip(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.pop_back();
  return s;
}

std::size_t indentation(const std::string& s) { return s.find_first_not_of(" \t"); }

std::string lstrip(const std::string& s) {
  const auto i = indentation(s);
  return i == std::string::npos ? std::string() : s.substr(i);
}

// Drops leading/trailing blank lines and the common indentation of the non-blank ones.
std::vector<std::string> normalize(std::vector<std::string> lines) {
  for (auto& l : lines) l = rstrip(l);
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  auto first = std::find_if(lines.begin(), lines.end(), [](const std::string& l) { return !l.empty(); });
  lines.erase(lines.begin(), first);
  std::size_t common = std::string::npos;
  for (const auto& l : lines)
    if (!l.empty()) common = std::min(common, indentation(l));
  if (common != std::string::npos)
    for (auto& l : lines)
      if (!l.empty()) l.erase(0, common);
  return lines;
}

std::vector<std::string> read_lines(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(rstrip(l));
  return lines;
}

bool has_extension(const fs::path& p, std::initializer_list<const char*> exts) {
  const auto e = p.extension().string();
  return std::any_of(exts.begin(), exts.end(), [&](const char* x) { return e == x; });
}

// The files named, folders walked recursively (in a stable order, for stable messages).
std::vector<fs::path> collect(const std::vector<fs::path>& roots, std::initializer_list<const char*> exts) {
  std::vector<fs::path> out;
  for (const auto& root : roots) {
    if (fs::is_directory(root)) {
      for (const auto& e : fs::recursive_directory_iterator(root))
        if (e.is_regular_file() && has_extension(e.path(), exts)) out.push_back(e.path());
    } else if (fs::is_regular_file(root)) {
      out.push_back(root);
    } else {
      throw std::runtime_error("no such file or folder: " + root.string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct Problem {
  fs::path file;
  std::size_t line;
  std::string what;
};

// The fenced blocks of one Markdown file (``` or ~~~, three or more, any indentation).
std::vector<Block> blocks_of(const fs::path& md, std::vector<Problem>& problems) {
  const auto lines = read_lines(md);
  std::vector<Block> blocks;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string t = lstrip(lines[i]);
    if (t.rfind("```", 0) != 0 && t.rfind("~~~", 0) != 0) continue;
    const char c = t[0];
    const std::size_t n = t.find_first_not_of(c);
    const std::string fence = t.substr(0, n);
    const std::string info = n == std::string::npos ? "" : lstrip(t.substr(n));
    const std::string language = info.substr(0, info.find_first_of(" \t{"));
    Block b{md, i + 1, language, {}};
    std::size_t j = i + 1;
    std::vector<std::string> body;
    for (; j < lines.size(); ++j) {
      const std::string u = lstrip(lines[j]);
      if (u.rfind(fence, 0) == 0 && u.find_first_not_of(c) == std::string::npos) break;
      body.push_back(lines[j]);
    }
    if (j == lines.size()) {
      problems.push_back({md, i + 1, "a fence that is never closed"});
      break;
    }
    if (language.empty())
      problems.push_back({md, i + 1, "a code block with no language: say cpp (checked), or sh, text, cmake..."});
    b.lines = normalize(std::move(body));
    blocks.push_back(std::move(b));
    i = j;
  }
  return blocks;
}

bool is_cpp(const std::string& language) {
  return language == "cpp" || language == "c++" || language == "cxx" || language == "cc" || language == "C++";
}

// Whether src[at, at + block.size()) is the block, up to the run's own common indentation.
// Returns how many leading lines agree (block.size() when it matches).
std::size_t agreeing_lines(const std::vector<std::string>& src, std::size_t at, const std::vector<std::string>& block) {
  if (at + block.size() > src.size()) return 0;
  std::size_t common = std::string::npos;
  for (std::size_t k = 0; k < block.size(); ++k)
    if (!src[at + k].empty()) common = std::min(common, indentation(src[at + k]));
  for (std::size_t k = 0; k < block.size(); ++k) {
    const std::string& s = src[at + k];
    const std::string line = s.empty() ? s : s.substr(common);
    if (line != block[k]) return k;
  }
  return block.size();
}

struct Near {
  std::size_t agree = 0;
  const SourceFile* file = nullptr;
  std::size_t line = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<fs::path> docs, sources;
  std::optional<std::size_t> expect;
  std::vector<fs::path>* into = nullptr;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--docs") {
      into = &docs;
    } else if (a == "--sources") {
      into = &sources;
    } else if (a == "--expect-problems" && i + 1 < argc) {
      expect = std::stoul(argv[++i]);
      into = nullptr;
    } else if (into != nullptr) {
      into->push_back(a);
    } else {
      std::cerr << "usage: check_doc_samples --docs FILE|DIR... --sources DIR... [--expect-problems N]\n";
      return 2;
    }
  }
  if (docs.empty() || sources.empty()) {
    std::cerr << "check_doc_samples: give --docs and --sources\n";
    return 2;
  }
  try {
    std::vector<SourceFile> files;
    for (const auto& p : collect(sources, {".cpp", ".hpp", ".h", ".cc"})) files.push_back({p, read_lines(p)});
    std::vector<Problem> problems;
    std::size_t checked = 0, md_files = 0;
    for (const auto& md : collect(docs, {".md"})) {
      ++md_files;
      for (const Block& b : blocks_of(md, problems)) {
        if (!is_cpp(b.language)) continue;
        ++checked;
        if (b.lines.empty()) {
          problems.push_back({b.file, b.line, "an empty cpp block"});
          continue;
        }
        Near near;
        bool found = false;
        const std::string first = lstrip(b.lines[0]);
        for (const auto& f : files) {
          for (std::size_t at = 0; at < f.lines.size() && !found; ++at) {
            if (lstrip(f.lines[at]) != first) continue;
            const std::size_t agree = agreeing_lines(f.lines, at, b.lines);
            if (agree == b.lines.size()) found = true;
            else if (agree >= near.agree) near = {agree, &f, at + 1};
          }
          if (found) break;
        }
        if (found) continue;
        std::string what = "this cpp block (" + std::to_string(b.lines.size()) +
                           " lines) is not in any compiled source verbatim; its first line: \"" + b.lines[0] + "\"";
        if (near.file != nullptr)
          what += "\n    nearest: " + near.file->path.string() + ":" + std::to_string(near.line) + ", which differs at the block's line " +
                  std::to_string(near.agree + 1) + ": \"" + b.lines[near.agree] + "\"";
        problems.push_back({b.file, b.line, what});
      }
    }
    for (const auto& p : problems) std::cout << p.file.string() << ":" << p.line << ": " << p.what << "\n";
    std::cout << "check_doc_samples: " << checked << " cpp blocks in " << md_files << " Markdown files, against "
              << files.size() << " source files: " << problems.size() << " problem(s)\n";
    if (expect) return problems.size() == *expect ? 0 : 1;
    if (checked == 0) {
      std::cout << "check_doc_samples: no cpp block at all: wrong --docs?\n";
      return 1;
    }
    return problems.empty() ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "check_doc_samples: " << e.what() << "\n";
    return 2;
  }
}
