// parex/parex.hpp - everything: Python's concurrent.futures and multiprocessing for C++20.
#pragma once

#include <parex/cpu.hpp>
#include <parex/errors.hpp>
#include <parex/executor.hpp>
#include <parex/future.hpp>
#include <parex/init.hpp>
#include <parex/mp.hpp>
#include <parex/process_pool.hpp>
#include <parex/registry.hpp>
#include <parex/serialize.hpp>
#include <parex/thread_pool.hpp>
