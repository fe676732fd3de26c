// The byte queue under Queue, SimpleQueue, JoinableQueue and Pipe: making and attaching,
// put and get (see include/parex/mp/queues.hpp; the shared state, its two mutexes and
// how waiters sleep are in mp/queue_state.hpp; the counts, join and shutdown in
// queue_joinable.cpp).
//
// Items larger than a quarter of the ring stream as chunks (first, middle..., last). While
// one streams, `writer` names its thread and other putters wait; while one is being read,
// `reader` names the getter and other getters wait. A putter or getter that finds the named
// thread dead takes over: a dead writer's chunks are taken back if no getter has started
// on them, else that getter drops what it has of the item once it has drained the ring;
// a dead reader's remaining chunks are skipped.
#include <parex/mp/queues.hpp>

#include "mp/queue_state.hpp"

#include <algorithm>
#include <cstring>
#include <exception>
#include <new>

namespace parex::detail {

using namespace queue;

namespace {
void copy_in(std::byte* ring, std::uint64_t cap, std::uint64_t pos, const void* src, std::size_t n) {
  const std::size_t off = pos & (cap - 1), first = std::min<std::size_t>(n, cap - off);
  std::memcpy(ring + off, src, first);
  std::memcpy(ring, static_cast<const std::byte*>(src) + first, n - first);
}
void copy_out(const std::byte* ring, std::uint64_t cap, std::uint64_t pos, void* dst, std::size_t n) {
  const std::size_t off = pos & (cap - 1), first = std::min<std::size_t>(n, cap - off);
  std::memcpy(dst, ring + off, first);
  std::memcpy(static_cast<std::byte*>(dst) + first, ring, n - first);
}

// Both ends' mutexes, put_mutex first (the one order every holder of both uses).
struct BothHeld {
  Held put, get;
  explicit BothHeld(QueueState& s) : put(s.put_mutex), get(s.get_mutex) {}
};

// A streaming writer that died (both mutexes held). If no getter has started its item,
// its chunks are taken back (its first chunk, and the counts with it, may not have been
// committed); if the getter that took its first chunk died too, its remaining chunks will
// be skipped. Returns whether it is dealt with (false: a live getter assembles its item
// and ends it when the ring runs dry).
bool settle_dead_writer(QueueState& s) {
  const std::uint64_t tail = s.tail.load(std::memory_order_relaxed);
  if (s.head.load(std::memory_order_relaxed) <= s.stream_start) {
    if (tail > s.stream_start) {
      s.puts.store(s.puts.load(std::memory_order_relaxed) - 1, std::memory_order_release);
      finish_one(s);
    }
    s.tail.store(s.stream_start, std::memory_order_release);
  } else {
    const Thread r = s.reader.load();
    if (!r.none() && r.alive()) return false;
    finish_one(s);
  }
  s.writer.store({});
  bump(s.space, INT32_MAX);
  return true;
}
}  // namespace

QueueCore::QueueCore(std::size_t maxsize, std::size_t capacity_bytes, std::uint64_t type_tag, bool joinable) {
  std::size_t cap = 4096;
  while (cap < capacity_bytes && cap < (std::size_t{1} << 40)) cap <<= 1;
  segment_ = Segment::create(state_bytes + cap, "queue");
  state_ = new (segment_->data()) QueueState{};
  init_robust_mutex(state_->put_mutex, PTHREAD_MUTEX_NORMAL, "a queue's lock");
  init_robust_mutex(state_->get_mutex, PTHREAD_MUTEX_NORMAL, "a queue's lock");
  state_->magic = queue::magic;
  state_->tag = type_tag;
  state_->capacity = cap;
  state_->maxsize = maxsize;
  state_->joinable = joinable ? 1 : 0;
  ring_ = segment_->data() + state_bytes;
}

QueueCore::QueueCore(Reader& r, std::uint64_t type_tag) {
  std::uint64_t offset = 0;
  segment_ = decode_handle(r, offset, state_bytes);
  state_ = reinterpret_cast<QueueState*>(segment_->data());
  if (offset != 0 || state_->magic != queue::magic || state_->tag != type_tag ||
      state_->capacity > segment_->size() - state_bytes)
    throw SharedObjectError("this handle does not refer to a queue of this item type");
  ring_ = segment_->data() + state_bytes;
}

void QueueCore::encode_to(Writer& w) const { encode_handle(w, segment_, 0); }

void QueueCore::check_open() const {
  if (closed_) throw ValueError("this queue handle was closed");
}

void QueueCore::check_not_shut_down() const {
  if (state_->shut.load(std::memory_order_acquire) != open) throw ShutDown();
}

void QueueCore::put_in_ring(std::span<const std::byte> item, std::chrono::nanoseconds timeout, bool counted) {
  QueueState& s = *state_;
  const std::uint64_t cap = s.capacity;
  const std::size_t chunk_max = cap / 4 - record_header - 8;
  const bool chunked = item.size() > chunk_max;
  // Streaming waits for getters chunk by chunk: an unbounded put (at_once) hands a big
  // item to the feeder instead, a bounded put_nowait refuses it.
  if (chunked && timeout == std::chrono::nanoseconds(0)) throw Full();
  // Dated when it first has to wait: a put that finds room reads no clock.
  Deadline deadline;
  bool dated = false;
  Held held(s.put_mutex);
  auto room_for = [&](std::size_t bytes) {
    return cap - (s.tail.load(std::memory_order_relaxed) - s.head.load(std::memory_order_acquire)) >= bytes;
  };
  auto under_maxsize = [&] {
    return s.maxsize == 0 ||
           s.puts.load(std::memory_order_relaxed) - s.gets.load(std::memory_order_acquire) < s.maxsize;
  };
  auto write = [&](Kind kind, std::span<const std::byte> body, const std::uint64_t* total) {
    const std::uint32_t len = static_cast<std::uint32_t>(body.size() + (total ? 8 : 0));
    std::uint64_t pos = s.tail.load(std::memory_order_relaxed);
    const std::uint32_t head[2] = {len, kind};
    copy_in(ring_, cap, pos, head, record_header);
    if (total) copy_in(ring_, cap, pos + record_header, total, 8);
    copy_in(ring_, cap, pos + record_header + (total ? 8 : 0), body.data(), body.size());
    if (kind == whole || kind == first) {
      // Counted before the commit: a getter that sees the record sees its count.
      s.puts.store(s.puts.load(std::memory_order_relaxed) + 1, std::memory_order_release);
      if (!counted && s.joinable) s.unfinished.fetch_add(1, std::memory_order_acq_rel);
    }
    s.tail.store(pos + record_header + padded(len), std::memory_order_release);  // the commit
  };
  // Wait for: no other streaming writer, room under maxsize, bytes for the first record.
  const std::size_t first_body = chunked ? chunk_max : item.size();
  for (;;) {
    const Seen seen = look(s, s.space);  // before anything this round decides on
    if (s.shut.load(std::memory_order_acquire) != open) {
      if (counted) finish_one(s);
      throw ShutDown();
    }
    const Thread w = s.writer.load();
    if (!w.none() && !w.is_me()) {
      if (!w.alive()) {
        held.unlock();  // both, in order
        bool dealt;
        {
          BothHeld both(s);
          dealt = s.writer.load().word() == w.word() && settle_dead_writer(s);
        }
        held.lock();
        if (dealt || s.writer.load().word() != w.word()) continue;  // settled, by us or another
      }
      // Alive, or dead with a live getter assembling its item: that getter ends it.
    } else if (under_maxsize() && room_for(record_header + padded(first_body + 8))) {
      break;
    }
    if (!dated) {
      deadline = deadline_of(timeout);
      dated = true;
    }
    if (passed(deadline)) throw Full();
    sleep_on(held, s.space, s, seen, deadline, !w.none());
  }
  if (!chunked) {
    write(whole, item, nullptr);
    bump(s.data, 1);
    return;
  }
  // Streaming: name ourselves, then chunk by chunk as room appears (no deadline past the
  // first chunk: a half-sent item is worse than a late one).
  // stream_start first: a writer found dead must never be judged by the previous stream's.
  s.stream_start = s.tail.load(std::memory_order_relaxed);
  s.writer.store(Thread::me());
  const std::uint64_t total = item.size();
  std::size_t sent = 0;
  while (sent < item.size()) {
    const std::size_t n = std::min(chunk_max, item.size() - sent);
    for (;;) {
      const Seen seen = look(s, s.space);
      if (room_for(record_header + padded(n + 8))) break;
      sleep_on(held, s.space, s, seen, std::nullopt, false);
    }
    const Kind kind = sent == 0 ? first : (sent + n == item.size() ? last : middle);
    write(kind, item.subspan(sent, n), kind == first ? &total : nullptr);
    sent += n;
    bump(s.data, INT32_MAX);
  }
  s.writer.store({});
  bump(s.space, INT32_MAX);  // putters waiting for the stream to end
}

bool QueueCore::get(Buffer& out, std::chrono::nanoseconds timeout) {
  check_open();
  // Named the reader of a chunked item and then failed (no memory, a corrupt record):
  // let the others go on.
  struct Unname {
    QueueState& s;
    ~Unname() {
      if (std::uncaught_exceptions() == 0) return;
      try {
        Held held(s.get_mutex);  // get()'s own hold ended before this runs
        if (!s.reader.load().is_me()) return;
        s.reader.store({});
        bump(s.data, INT32_MAX);
      } catch (...) {  // the lock itself failed: nothing more can be done
      }
    }
  } unname{*state_};
  QueueState& s = *state_;
  const std::uint64_t cap = s.capacity;
  const Deadline deadline = deadline_of(timeout);
  bool assembling = false;
  const std::size_t base = out.size();
  Held held(s.get_mutex);
  auto consumed = [&](std::uint64_t bytes) {
    s.head.store(s.head.load(std::memory_order_relaxed) + bytes, std::memory_order_release);
    bump(s.space, INT32_MAX);
  };
  auto taken = [&] { s.gets.store(s.gets.load(std::memory_order_relaxed) + 1, std::memory_order_release); };
  auto stop_assembling = [&] {
    assembling = false;
    owe(s, -1);  // the item it had begun to get is dropped
    out.truncate(base);
    s.reader.store({});
    bump(s.data, INT32_MAX);
  };
  for (;;) {
    const Seen seen = look(s, s.data);  // before anything this round decides on
    const Thread r = s.reader.load();
    if (!assembling && !r.none() && !r.is_me()) {
      if (r.alive()) {
        if (passed(deadline)) return false;
        sleep_on(held, s.data, s, seen, deadline, true);
        continue;
      }
      s.reader.store({});  // the rest of its item's chunks are skipped below
      bump(s.data, INT32_MAX);  // other getters waiting for it
    }
    // shut first: a shutdown came after every commit made before it, so the tail read
    // after it shows them all.
    const std::uint32_t shut = s.shut.load(std::memory_order_acquire);
    const std::uint64_t head = s.head.load(std::memory_order_relaxed);
    const std::uint64_t tail = s.tail.load(std::memory_order_acquire);
    // Shut down: once empty, but an item being assembled still gets its last chunks (its
    // writer streams them to the end) unless shut down now, which dropped them.
    if (shut == shut_down_now || (head == tail && shut != open && !assembling)) {
      if (assembling) {  // its remaining chunks were dropped: so is the item
        stop_assembling();
        finish_one(s);
      }
      throw ShutDown();
    }
    if (head == tail) {
      const Thread w = s.writer.load();
      if (assembling && !w.none() && !w.alive()) {  // its writer died mid-item
        held.unlock();  // both, in order
        {
          Held put(s.put_mutex);
          held.lock();
          if (s.writer.load().word() == w.word() && s.head.load(std::memory_order_relaxed) ==
                                                         s.tail.load(std::memory_order_relaxed)) {
            s.writer.store({});
            finish_one(s);
            stop_assembling();
            bump(s.space, INT32_MAX);
          }
        }
        continue;
      }
      if (!assembling && passed(deadline)) return false;
      sleep_on(held, s.data, s, seen, assembling ? std::nullopt : deadline, assembling);
      continue;
    }
    std::uint32_t rec[2];
    copy_out(ring_, cap, head, rec, record_header);
    const std::uint32_t len = rec[0], kind = rec[1];
    if (kind < whole || kind > last || record_header + padded(len) > tail - head)
      throw ProtocolError("a corrupt record in a shared queue");
    const std::uint64_t body = head + record_header, bytes = record_header + padded(len);
    switch (kind) {
      case whole:
        if (assembling) stop_assembling();  // cannot happen with live writers; be safe
        out.reserve_more(len);
        copy_out(ring_, cap, body, out.data() + out.size(), len);
        out.advance(len);
        taken();
        consumed(bytes);
        owe(s, +1);
        return true;
      case first: {
        if (assembling) stop_assembling();
        std::uint64_t total = 0;
        if (len < 8) throw ProtocolError("a corrupt record in a shared queue");
        copy_out(ring_, cap, body, &total, 8);
        out.reserve_more(total);
        copy_out(ring_, cap, body + 8, out.data() + out.size(), len - 8);
        out.advance(len - 8);
        assembling = true;
        s.reader.store(Thread::me());
        taken();
        consumed(bytes);
        owe(s, +1);  // taken: if this process dies before the last chunk, it owes the item
        continue;
      }
      case middle:
      case last:
        if (!assembling) {  // a dead reader's or a dropped item's chunk
          consumed(bytes);
          continue;
        }
        out.reserve_more(len);
        copy_out(ring_, cap, body, out.data() + out.size(), len);
        out.advance(len);
        consumed(bytes);
        if (kind == last) {
          s.reader.store({});
          bump(s.data, INT32_MAX);
          return true;
        }
        continue;
    }
  }
}

bool QueueCore::wait_readable(std::chrono::nanoseconds timeout) {
  QueueState& s = *state_;
  const Deadline deadline = deadline_of(timeout);
  Held held(s.get_mutex);
  for (;;) {
    const Seen seen = look(s, s.data);
    if (s.head.load(std::memory_order_relaxed) != s.tail.load(std::memory_order_acquire)) break;
    if (passed(deadline)) return false;
    sleep_on(held, s.data, s, seen, deadline, false);
  }
  // A put wakes one waiter: if it was this one, which takes nothing, pass the wake on to
  // a getter that would take the item.
  bump(s.data, 1);
  return true;
}

}  // namespace parex::detail
