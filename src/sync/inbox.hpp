// Inbox: the lock-free hand-over from any number of producer threads to one consumer
// side (a pool's workers or its reactor). A push is one CAS and reports whether the inbox
// was empty, so the producer wakes the consumer only on empty -> non-empty; the consumer
// takes everything at once. Closing swaps in a marker for good: later pushes fail, so no
// call can slip in after shutdown has collected what was there.
#pragma once

#include <atomic>
#include <cstdint>

namespace parex::detail {

/// Reverses a singly linked chain (a stack pushed at its head becomes oldest first).
template <class Node>  // Node has a `Node* next` member
Node* reverse_chain(Node* chain) noexcept {
  Node* out = nullptr;
  while (chain) {
    Node* next = chain->next;
    chain->next = out;
    out = chain;
    chain = next;
  }
  return out;
}

template <class Node>  // Node has a `Node* next` member
class Inbox {
 public:
  enum class Push { first, more, closed };

  Push push(Node* n) noexcept {
    // Acquire when seeing the marker: what the closer wrote before closing (a broken
    // pool's reason) is visible to the producer that is refused.
    Node* head = head_.load(std::memory_order_acquire);
    do {
      if (head == closed_marker()) return Push::closed;
      n->next = head;
    } while (!head_.compare_exchange_weak(head, n, std::memory_order_seq_cst, std::memory_order_acquire));
    return head == nullptr ? Push::first : Push::more;
  }

  /// Everything pushed so far, oldest first; nullptr if empty or closed.
  Node* take_all() noexcept {
    Node* head = head_.load(std::memory_order_acquire);
    while (head != nullptr && head != closed_marker()) {
      if (head_.compare_exchange_weak(head, nullptr, std::memory_order_acquire, std::memory_order_acquire))
        return reverse_chain(head);
    }
    return nullptr;
  }

  /// Closes the inbox for good; returns what was left, oldest first.
  Node* close() noexcept {
    Node* head = head_.exchange(closed_marker(), std::memory_order_acq_rel);
    return head == closed_marker() ? nullptr : reverse_chain(head);
  }

  /// seq_cst: pairs with a consumer's seq_cst "I am going to sleep" store (Dekker).
  bool has_items() const noexcept {
    Node* h = head_.load(std::memory_order_seq_cst);
    return h != nullptr && h != closed_marker();
  }

 private:
  static Node* closed_marker() noexcept { return reinterpret_cast<Node*>(std::uintptr_t{1}); }
  std::atomic<Node*> head_{nullptr};
};

}  // namespace parex::detail
