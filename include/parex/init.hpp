// parex/init.hpp - parex::init(argc, argv), the C++ twin of Python's
// `if __name__ == "__main__":` guard.
//
// A ProcessPoolExecutor's workers are this very program, re-executed. Call init first
// thing in main: in a worker it never returns (it runs the worker loop, then exits); in
// the program itself it checks the function registry (duplicate names are an error here,
// at start-up) and returns. Thread-safe; call it once, before starting threads.
#pragma once

namespace parex {

/// First line of main. In a worker process: runs the worker loop and exits.
/// @throws parex::Error if two different functions are registered under one name.
void init(int argc, char** argv);

/// True once init() has run in this process.
bool initialized() noexcept;

}  // namespace parex
