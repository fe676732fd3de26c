// parex/asio.hpp - a parex Future as a Boost.Asio asynchronous operation.
//
//   boost::asio::awaitable<void> handle(parex::ProcessPoolExecutor& pool, int n) {
//     int primes = co_await parex::async_result(pool.submit(count_primes, n), boost::asio::use_awaitable);
//     ...                                   // the io_context ran other work meanwhile
//   }
//
// async_result(future, token) is an initiating function: it takes any completion token
// (a callback, use_awaitable, use_future, deferred, ...). The completion signature is
// void(std::exception_ptr, T), or void(std::exception_ptr) for Future<void>: with
// use_awaitable, co_await returns the value or throws the call's exception (a
// cancellation throws CancelledError). The handler runs on its associated executor (a
// coroutine's: its io_context), never on the pool's thread, and the operation keeps that
// executor's work count up while it waits, so io_context::run() does not return early.
// No thread blocks: completion comes from the future's done callback.
//
// T must be default-constructible (the value passed with an error, as Asio's own
// operations do). The handler's executor (an io_context) must outlive the operation:
// destroy the io_context after the pools whose futures it awaits. Asio's per-operation
// cancellation is not connected: to give up on a call, cancel the Future (or let an
// executor's shutdown do it); an empty Future throws InvalidStateError. Header-only; needs Boost.Asio (libboost1.81-dev), not linked by parex.
#pragma once

#include <parex/future.hpp>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <exception>
#include <type_traits>
#include <utility>

namespace parex {

namespace detail {
template <class T>
struct AsioSignature {
  using type = void(std::exception_ptr, T);
};
template <>
struct AsioSignature<void> {
  using type = void(std::exception_ptr);
};
}  // namespace detail

template <class T, class CompletionToken>
auto async_result(Future<T> future, CompletionToken&& token) {
  static_assert(std::is_void_v<T> || std::is_default_constructible_v<T>,
                "parex::async_result: T must be default-constructible (Asio passes a value with an error)");
  using Signature = typename detail::AsioSignature<T>::type;
  if (!future.valid()) throw InvalidStateError("parex::async_result: an empty future (default-constructed)");
  return boost::asio::async_initiate<CompletionToken, Signature>(
      [](auto handler, Future<T> f) {
        auto work = boost::asio::make_work_guard(boost::asio::get_associated_executor(handler));
        f.add_done_callback([h = std::move(handler), w = std::move(work)](const Future<T>& g) mutable {
          auto ex = w.get_executor();
          boost::asio::post(ex, [h = std::move(h), w = std::move(w), g]() mutable {
            std::exception_ptr e;
            try {
              e = g.exception();
            } catch (...) {  // cancelled
              e = std::current_exception();
            }
            if constexpr (std::is_void_v<T>) {
              std::move(h)(e);
            } else if (e) {
              std::move(h)(e, T{});
            } else {
              std::move(h)(e, g.result());
            }
            w.reset();
          });
        });
      },
      token, std::move(future));
}

}  // namespace parex
