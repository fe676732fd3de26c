// parex/detail/future/continuations.hpp - Future<T>::then, when_all and when_any: futures
// made of futures, with no thread waiting (each is a done callback that completes a
// Promise). Included by <parex/future.hpp>; see the comments on the public names there.
#pragma once

#include <atomic>
#include <cstddef>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace parex {

template <class T>
struct WhenAnyResult;

namespace detail {

template <class T>
struct is_future : std::false_type {};
template <class T>
struct is_future<Future<T>> : std::true_type {};

/// then(fn) hands fn the value when fn can take it (nothing, for Future<void>), else the
/// Future itself. The value is tried first: a generic lambda gets the value.
template <class T, class Fn, bool Void = std::is_void_v<T>>
struct takes_value : std::is_invocable<Fn&, const T&> {};
template <class T, class Fn>
struct takes_value<T, Fn, true> : std::is_invocable<Fn&> {};
template <class T, class Fn>
inline constexpr bool takes_value_v = takes_value<T, Fn>::value;

/// Completes p with what the done future f holds (value, exception or cancellation).
template <class T>
void forward_outcome(Promise<T>& p, const Future<T>& f) noexcept {
  try {
    std::exception_ptr e;
    try {
      e = f.exception();
    } catch (...) {  // cancelled
      e = std::current_exception();
    }
    if (e) p.set_exception(e);
    else if constexpr (std::is_void_v<T>) p.set_result();
    else p.set_result(f.result());
  } catch (...) {  // the continuation's future was cancelled meanwhile: nothing to do
  }
}

template <class U, class Call>
void continue_with(Promise<U>& p, Call&& call) {
  using R = std::invoke_result_t<Call&>;
  if constexpr (is_future<std::decay_t<R>>::value) {
    auto inner = call();
    if (!inner.valid()) throw InvalidStateError("then: the continuation returned an empty future");
    inner.add_done_callback([p = std::move(p)](const std::decay_t<R>& g) mutable { forward_outcome(p, g); });
  } else if constexpr (std::is_void_v<R>) {
    call();
    p.set_result();
  } else {
    p.set_result(call());
  }
}

/// Runs fn for then(): with the future if fn takes one, else with its value (an error
/// skips fn and goes on to the result). Completes p with what fn returns or throws; a
/// returned future is waited for without blocking (flattened).
template <class T, class U, class Fn>
void run_continuation(Promise<U>& p, Fn& fn, const Future<T>& f) noexcept {
  try {
    if (!p.set_running_or_notify_cancel()) return;  // the continuation was cancelled: fn never runs
    if constexpr (!takes_value_v<T, Fn>) {
      continue_with(p, [&]() -> decltype(auto) { return std::invoke(fn, f); });
    } else {
      if (std::exception_ptr e = f.exception()) return p.set_exception(e);
      if constexpr (std::is_void_v<T>) continue_with(p, [&]() -> decltype(auto) { return std::invoke(fn); });
      else continue_with(p, [&]() -> decltype(auto) { return std::invoke(fn, f.result()); });
    }
  } catch (...) {
    try {
      p.set_exception(std::current_exception());
    } catch (...) {  // cancelled meanwhile
    }
  }
}

template <class T, class Fn, bool ByValue = takes_value_v<T, Fn>, bool Void = std::is_void_v<T>>
struct then_raw;
template <class T, class Fn, bool Void>
struct then_raw<T, Fn, false, Void> {
  using type = std::invoke_result_t<Fn&, const Future<T>&>;
};
template <class T, class Fn>
struct then_raw<T, Fn, true, true> {
  using type = std::invoke_result_t<Fn&>;
};
template <class T, class Fn>
struct then_raw<T, Fn, true, false> {
  using type = std::invoke_result_t<Fn&, const T&>;
};
template <class R>
struct unwrap_future {
  using type = R;
};
template <class V>
struct unwrap_future<Future<V>> {
  using type = V;
};
template <class T, class Fn>
struct then_result {
  using type = typename unwrap_future<std::decay_t<typename then_raw<T, Fn>::type>>::type;
};

}  // namespace detail

template <class T>
template <class Fn>
auto Future<T>::then(Fn&& fn) const -> Future<typename detail::then_result<T, std::decay_t<Fn>>::type> {
  using U = typename detail::then_result<T, std::decay_t<Fn>>::type;
  Promise<U> p;
  Future<U> out = p.get_future();
  add_done_callback([p = std::move(p), fn = std::decay_t<Fn>(std::forward<Fn>(fn))](const Future<T>& f) mutable {
    detail::run_continuation<T, U>(p, fn, f);
  });
  return out;
}

/// What when_any gives: the index of a future that completed first (SIZE_MAX for an
/// empty input) and all the futures, in input order.
template <class T>
struct WhenAnyResult {
  std::size_t index = std::numeric_limits<std::size_t>::max();
  std::vector<Future<T>> futures;
};

/// A future that completes when every future of the range has (done, failed or
/// cancelled), with them in input order; no thread waits for it.
template <std::ranges::input_range Range, class T = typename std::ranges::range_value_t<Range>::value_type>
Future<std::vector<Future<T>>> when_all(Range&& fs) {
  struct Shared {
    Promise<std::vector<Future<T>>> promise;
    std::vector<Future<T>> futures;
    std::atomic<std::size_t> left{0};
  };
  auto s = std::make_shared<Shared>();
  for (const Future<T>& f : fs) s->futures.push_back(f);
  Future<std::vector<Future<T>>> out = s->promise.get_future();
  s->left.store(s->futures.size() + 1);  // + 1: none completes it while callbacks are added
  auto one_done = [s] {
    if (s->left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      try {
        s->promise.set_result(s->futures);
      } catch (...) {  // the when_all future was cancelled
      }
    }
  };
  for (const Future<T>& f : s->futures) f.add_done_callback([one_done](const Future<T>&) { one_done(); });
  one_done();
  return out;
}

namespace detail {
/// when_any's shared block and its callback nodes. The first input to finish completes
/// the promise and then takes the nodes off the other inputs (remove_callback), so a
/// long-lived future used in many when_any calls keeps no node of the calls that ended.
/// A node that a completing input already took fires (and frees itself) as a no-op.
/// `nodes` and the flags are guarded by `mutex`; removal happens outside it, since a
/// node's fire() takes it. While the calling thread still adds nodes (`registering`),
/// a winner leaves the removal to it: it holds the inputs, and knows which nodes exist.
template <class T>
struct WhenAny {
  struct Node final : CallbackNode {
    Node(std::shared_ptr<WhenAny> s, std::size_t i) : shared(std::move(s)), index(i) {}
    std::shared_ptr<WhenAny> shared;
    std::size_t index;
    void fire(StateBase&) noexcept override {
      WhenAny::won(shared, index);
      delete this;
    }
    void dispose() noexcept override { delete this; }
  };

  Promise<WhenAnyResult<T>> promise;
  std::vector<Future<T>> futures;
  std::mutex mutex;
  std::vector<Node*> nodes;  // nodes[i] on futures[i]; null: none added yet, or taken off
  bool registering = true;
  bool fired = false;
  std::size_t winner = std::numeric_limits<std::size_t>::max();

  // Under mutex, once fired and registration is over: the nodes to take off.
  std::vector<Node*> take_nodes() {
    std::vector<Node*> out = std::move(nodes);
    nodes.clear();
    if (winner < out.size()) out[winner] = nullptr;  // fires (and frees itself) now
    return out;
  }
  // Takes nodes[j] off inputs[j]; one that a completing input took already fires on its own.
  static void detach(const std::vector<Node*>& taken, const std::vector<Future<T>>& inputs) noexcept {
    for (std::size_t j = 0; j < taken.size(); ++j)
      if (taken[j] && FutureAccess::state(inputs[j])->remove_callback(taken[j])) delete taken[j];
  }

  static void won(const std::shared_ptr<WhenAny>& sh, std::size_t i) noexcept {
    std::vector<Node*> taken;
    {
      std::lock_guard lock(sh->mutex);
      if (sh->fired) return;
      sh->fired = true;
      sh->winner = i;
      if (!sh->registering) taken = sh->take_nodes();
    }
    detach(taken, sh->futures);  // before the futures move out: they keep the inputs alive
    // Out of the shared block: nothing left behind holds the inputs or the result.
    Promise<WhenAnyResult<T>> p = std::move(sh->promise);
    try {
      p.set_result(WhenAnyResult<T>{i, std::move(sh->futures)});
    } catch (...) {  // the when_any future was cancelled
    }
  }
};
}  // namespace detail

/// A future that completes when the first future of the range does (with its index);
/// at once for an empty range. No thread waits for it, and once it completes it leaves
/// no callback behind on the inputs that have not finished.
template <std::ranges::input_range Range, class T = typename std::ranges::range_value_t<Range>::value_type>
Future<WhenAnyResult<T>> when_any(Range&& fs) {
  using Shared = detail::WhenAny<T>;
  auto s = std::make_shared<Shared>();
  for (const Future<T>& f : fs) {
    if (!f.valid()) detail::throw_no_state();
    s->futures.push_back(f);
  }
  Future<WhenAnyResult<T>> out = s->promise.get_future();
  const std::vector<Future<T>> inputs = s->futures;  // won() moves s->futures away
  if (inputs.empty()) {
    s->registering = false;
    Shared::won(s, std::numeric_limits<std::size_t>::max());
    return out;
  }
  s->nodes.assign(inputs.size(), nullptr);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    auto* node = new typename Shared::Node(s, i);
    {
      std::lock_guard lock(s->mutex);
      if (s->fired) {
        delete node;
        break;
      }
      s->nodes[i] = node;
    }
    // May fire at once (a done input), which takes the mutex: added outside it.
    detail::FutureAccess::state(inputs[i])->add_callback(node);
  }
  std::vector<typename Shared::Node*> taken;
  {
    std::lock_guard lock(s->mutex);
    s->registering = false;
    if (s->fired) taken = s->take_nodes();
  }
  Shared::detach(taken, inputs);
  return out;
}

/// when_all over futures of different types: a future of the tuple of them.
template <class... T>
  requires(sizeof...(T) > 0)
Future<std::tuple<Future<T>...>> when_all(const Future<T>&... fs) {
  struct Shared {
    Promise<std::tuple<Future<T>...>> promise;
    std::tuple<Future<T>...> futures;
    std::atomic<std::size_t> left{sizeof...(T) + 1};
  };
  auto s = std::make_shared<Shared>();
  s->futures = std::tuple<Future<T>...>(fs...);
  Future<std::tuple<Future<T>...>> out = s->promise.get_future();
  auto one_done = [s] {
    if (s->left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      try {
        s->promise.set_result(s->futures);
      } catch (...) {
      }
    }
  };
  (fs.add_done_callback([one_done](const Future<T>&) { one_done(); }), ...);
  one_done();
  return out;
}

}  // namespace parex
