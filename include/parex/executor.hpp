// parex/executor.hpp - the Executor interface every backend shares, complete: the class
// (detail/executor/executor_core.hpp) and what submit and map need to send calls to other
// processes (detail/remote/remote_submit.hpp). Include this to use an Executor&; a
// program that only uses a ThreadPoolExecutor needs <parex/thread_pool.hpp> alone.
//
// @code
//   parex::ThreadPoolExecutor pool{{.max_workers = 4}};
//   parex::Executor& ex = pool;
//   parex::Future<int> f = ex.submit(square, 7);
//   for (int y : ex.map(square, std::vector{1, 2, 3})) std::cout << y << '\n';
// @endcode
#pragma once

#include <parex/detail/executor/executor_core.hpp>
#include <parex/detail/remote/remote_submit.hpp>
