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
// Asio's per-operation cancellation is connected: when the handler has a cancellation
// slot (bind_cancellation_slot, parallel_group, the awaitable operators || and &&, a
// coroutine's cancellation state), emitting any cancellation type cancels the Future if
// the call has not started (Future::cancel) and completes the handler with a
// boost::system::system_error of asio::error::operation_aborted; a call already running
// runs on, its outcome dropped. Either way the handler is called exactly once: whichever
// of the future's completion and the cancellation claims the operation first completes
// it, and the other does nothing. The slot is cleared before the handler runs, on the
// handler's executor: emit the signal from that executor too (Asio's rule for every
// operation; a handler with no executor of its own runs on Asio's system executor, a
// thread of its own, so bind one: bind_executor(io, handler)).
//
// T must be default-constructible (the value passed with an error, as Asio's own
// operations do). The handler's executor (an io_context) must outlive the operation:
// destroy the io_context after the pools whose futures it awaits. An empty Future throws
// InvalidStateError. Header-only; needs Boost.Asio (libboost1.81-dev), not linked by parex.
#pragma once

#include <parex/future.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/system_error.hpp>

#include <atomic>
#include <exception>
#include <memory>
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

/// One async_result operation: the handler and its work guard, owned by the future's
/// done callback and by the completion posted to the handler's executor; the
/// cancellation slot's handler holds it weakly (the slot may belong to an object that
/// the handler itself keeps alive: a strong reference would be a cycle). `claimed` picks
/// the one path that completes the handler; only that path touches `handler` and `work`.
template <class T, class Handler>
struct AsioWait {
  using Work = decltype(boost::asio::make_work_guard(
      boost::asio::get_associated_executor(std::declval<Handler&>())));

  explicit AsioWait(Handler&& h)
      : handler(std::move(h)), work(boost::asio::make_work_guard(boost::asio::get_associated_executor(handler))) {}

  Handler handler;
  Work work;
  std::atomic<bool> claimed{false};

  bool claim() noexcept { return !claimed.exchange(true, std::memory_order_acq_rel); }

  // On the handler's executor, after claim(): the slot is ours to clear there.
  static void complete(const std::shared_ptr<AsioWait>& op, std::exception_ptr e, const Future<T>* g) {
    auto slot = boost::asio::get_associated_cancellation_slot(op->handler);
    if (slot.is_connected()) slot.clear();
    Handler h = std::move(op->handler);
    auto w = std::move(op->work);
    if constexpr (std::is_void_v<T>) {
      std::move(h)(e);
    } else if (e || !g) {
      std::move(h)(e, T{});
    } else {
      std::move(h)(e, g->result());
    }
    w.reset();
  }

  // Claims the operation for the future's outcome and posts its completion.
  static void finished(const std::shared_ptr<AsioWait>& op, const Future<T>& g) {
    if (!op->claim()) return;  // cancelled first: the handler is being aborted
    auto ex = op->work.get_executor();
    boost::asio::post(ex, [op, g]() mutable {
      std::exception_ptr e;
      try {
        e = g.exception();
      } catch (...) {  // cancelled
        e = std::current_exception();
      }
      complete(op, e, &g);
    });
  }

  // The slot's handler: claims the operation for the cancellation, cancels the call if
  // it has not started, and posts the aborted completion (never from inside emit()).
  struct OnCancel {
    std::weak_ptr<AsioWait> weak;
    Future<T> future;
    void operator()(boost::asio::cancellation_type type) {
      if (type == boost::asio::cancellation_type::none) return;
      const std::shared_ptr<AsioWait> op = weak.lock();
      if (!op || !op->claim()) return;  // completed (or completing) already
      future.cancel();  // a done callback that runs now sees the claim and does nothing
      auto ex = op->work.get_executor();
      boost::asio::post(ex, [op] {
        complete(op, std::make_exception_ptr(boost::system::system_error(boost::asio::error::operation_aborted)),
                 nullptr);
      });
    }
  };
};
}  // namespace detail

/// Waits for a Future as an Asio asynchronous operation (see the top of this header).
template <class T, class CompletionToken>
auto async_result(Future<T> future, CompletionToken&& token) {
  static_assert(std::is_void_v<T> || std::is_default_constructible_v<T>,
                "parex::async_result: T must be default-constructible (Asio passes a value with an error)");
  using Signature = typename detail::AsioSignature<T>::type;
  if (!future.valid()) throw InvalidStateError("parex::async_result: an empty future (default-constructed)");
  return boost::asio::async_initiate<CompletionToken, Signature>(
      [](auto handler, Future<T> f) {
        using Op = detail::AsioWait<T, decltype(handler)>;
        auto slot = boost::asio::get_associated_cancellation_slot(handler);
        auto op = std::make_shared<Op>(std::move(handler));
        // The slot first: a future already done completes the operation inside
        // add_done_callback, and the completion clears the slot.
        if (slot.is_connected()) slot.template emplace<typename Op::OnCancel>(typename Op::OnCancel{op, f});
        f.add_done_callback([op](const Future<T>& g) { Op::finished(op, g); });
      },
      token, std::move(future));
}

}  // namespace parex
