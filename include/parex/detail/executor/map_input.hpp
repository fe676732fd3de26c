// parex/detail/executor/map_input.hpp - what Executor::map reads: the items of one range, or the
// argument lists of several ranges walked in lock-step (Python's map(fn, *iterables));
// and the token that lets a map range outlive its executor without touching freed memory.
// Header-only. ZipView is single-pass, like the input ranges it walks; ExecutorLife is
// thread-safe.
#pragma once

#include <parex/detail/executor/task.hpp>

#include <atomic>
#include <functional>
#include <iterator>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <utility>

namespace parex::detail {

/// Several views walked in lock-step, ending with the shortest; yields ArgPacks of copies
/// of the elements (std::views::zip is C++23). Single pass: begin() once.
template <class... V>
class ZipView : public std::ranges::view_interface<ZipView<V...>> {
 public:
  using Pack = ArgPack<std::ranges::range_value_t<V>...>;

  explicit ZipView(V... views) : views_(std::move(views)...) {}

  struct sentinel {};
  class iterator {
   public:
    using value_type = Pack;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    Pack operator*() const {
      return std::apply([](const auto&... it) { return Pack{{*it...}}; }, its_);
    }
    iterator& operator++() {
      std::apply([](auto&... it) { (++it, ...); }, its_);
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& i, sentinel) { return i.at_end(); }

   private:
    friend class ZipView;
    iterator(ZipView* z, std::tuple<std::ranges::iterator_t<V>...> its) : z_(z), its_(std::move(its)) {}
    bool at_end() const {
      return [&]<std::size_t... I>(std::index_sequence<I...>) {
        return ((std::get<I>(its_) == std::ranges::end(std::get<I>(z_->views_))) || ...);
      }(std::index_sequence_for<V...>{});
    }
    ZipView* z_ = nullptr;
    std::tuple<std::ranges::iterator_t<V>...> its_;
  };

  iterator begin() {
    return iterator(this, std::apply([](auto&... v) { return std::tuple(std::ranges::begin(v)...); }, views_));
  }
  sentinel end() const noexcept { return {}; }

 private:
  std::tuple<V...> views_;
};

/// Shared by an executor and its map ranges: a range that outlives its executor (or
/// iterates while another thread destroys it) must not call into freed memory. Each
/// submit of a map runs between enter() and leave(); end() waits for those in progress.
/// enter() and end() form a Dekker pair (seq_cst): either end() sees the user, or the
/// user sees the executor ending.
class ExecutorLife {
 public:
  bool enter() noexcept {
    users_.fetch_add(1, std::memory_order_seq_cst);
    if (alive_.load(std::memory_order_seq_cst)) return true;
    leave();
    return false;
  }
  void leave() noexcept {
    if (users_.fetch_sub(1, std::memory_order_seq_cst) == 1 && !alive_.load(std::memory_order_seq_cst))
      users_.notify_all();
  }
  /// Waits (blocked, not spinning) for the submits under way; they take microseconds.
  void end() noexcept {
    alive_.store(false, std::memory_order_seq_cst);
    for (int n; (n = users_.load(std::memory_order_seq_cst)) != 0;) users_.wait(n, std::memory_order_seq_cst);
  }

 private:
  std::atomic<bool> alive_{true};
  std::atomic<int> users_{0};
};

}  // namespace parex::detail
