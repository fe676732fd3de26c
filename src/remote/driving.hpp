// remote/driving.hpp - when a thread that waits for a remote call runs its backend's loop
// itself (StateBase::drive, CallDriver): the policy both backends share, with its reasons.
// The loops are the process pool's reactor (process_pool/loop.cpp) and rank 0's engine
// (mpi/loop.cpp).
//
// A round trip through a loop thread hands the call over four times (caller -> loop ->
// worker -> loop -> caller); each hand-off is a thread that must be scheduled, and on a
// small VM whose idle cores sleep deeply each costs microseconds to tens of them. A caller
// that runs the loop while it waits makes it two (caller -> worker -> caller), like a raw
// ping-pong.
#pragma once

#include <chrono>
#include <cstddef>

namespace parex::detail::driving {

// How long a waiting thread drives the loop before it leaves it to the loop's own thread
// and sleeps: a call's round trip is ~10-20 us; a longer call is not worth a spinning core.
inline constexpr auto max_drive = std::chrono::microseconds(200);
// A waiter drives the loop only while the backend holds at most this many calls: a burst
// in flight is streamed best by the loop's own thread, and a waiter taking the loop for
// each result would make it sleep and wake once per result (MPI's tiny calls: 0.88x).
inline constexpr std::size_t max_driven_calls = 8;
// The process pool's waiter drives only its own call, alone in the pool (and only while
// one thread submits: process_pool/loop.cpp's min_solo_calls): with several threads each
// waiting for a call, drivers take the loop from each other and from the reactor: with 8
// here and no min_solo_calls, 4 threads of round trips took 25.8 us each against 18.2
// (bench_ab.py over bench_process_pool --only g, 11 rounds, 2-vCPU AMD VM, 2026-12-08).
// MPI's loop, with its progress thread polling, gained from 8.
inline constexpr std::size_t max_driven_pool_calls = 1;

}  // namespace parex::detail::driving
