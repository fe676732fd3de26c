// Registered functions of the Manager proxy tests (test_manager_proxies.cpp): what the
// children, pool workers and a server's initializer do with sets, lists, dicts,
// namespaces and barriers.
#pragma once

#include <parex/parex.hpp>

#include <string>

namespace manager_proxy_test {
/// Adds from .. from+n-1 to s, and 0 .. 9 (every child adds those: the set keeps one each).
void add_range_to_set(parex::SetProxy<int> s, int from, int n);
/// The sum of l, iterated (chunk items a request) in this process.
long sum_by_iterating(parex::ListProxy<int> l, int chunk);
/// The keys of d, iterated in this process, joined by ','.
std::string keys_by_iterating(parex::DictProxy<std::string, int> d);
/// Waits on b, then appends the index wait() returned to indices.
void wait_and_record(parex::Barrier b, parex::ListProxy<int> indices);
/// Waits on b with a 100 ms timeout; appends 1 to outcomes on BrokenBarrierError, 0 otherwise.
void wait_expecting_broken(parex::Barrier b, parex::ListProxy<int> outcomes);
/// Holds s for a while, counting how many hold it at once in peak (a dict "now", "peak").
void hold_bounded(parex::BoundedSemaphore s, parex::DictProxy<std::string, int> counts, parex::Lock lock);
/// A server's initializer: ns.test += 1, and records its pid as ns.pid.
void count_initializer(parex::NamespaceProxy ns);
/// A server's initializer that throws std::invalid_argument naming its argument.
void refusing_initializer(int code);
/// A barrier action.
void barrier_action();
int cube(int x);
}  // namespace manager_proxy_test
