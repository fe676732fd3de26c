// parex/mp.hpp - Python's multiprocessing for C++: Process, Lock, RLock, Semaphore,
// BoundedSemaphore, Event, Value, RawValue, Array, RawArray, SharedMemory, Pool, ThreadPool,
// Manager.
//
// Every shared object is a handle: copies, and copies passed to a Process, a pool call or
// through a queue, are the same object. They work between threads of one process too.
#pragma once

#include <parex/mp/condition.hpp>
#include <parex/mp/connection.hpp>
#include <parex/mp/listener.hpp>
#include <parex/mp/lock.hpp>
#include <parex/mp/manager.hpp>
#include <parex/mp/pool.hpp>
#include <parex/mp/process.hpp>
#include <parex/mp/queues.hpp>
#include <parex/mp/reduction.hpp>
#include <parex/mp/shareable_list.hpp>
#include <parex/mp/shared_memory.hpp>
#include <parex/mp/shared_memory_manager.hpp>
#include <parex/mp/sharedctypes.hpp>
#include <parex/mp/synchronize.hpp>
