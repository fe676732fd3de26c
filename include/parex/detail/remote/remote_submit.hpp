// parex/detail/remote/remote_submit.hpp - Executor::submit and map for a backend whose
// calls run in other processes: the function's registered id, the arguments encoded in
// the submitting thread (an encoding error surfaces from submit, or at its map item), a
// RemoteCall handed to dispatch_remote. Included by <parex/executor.hpp>; instantiated only
// through an Executor& (or a process pool), never by a thread-only program.
// Thread-safe: any thread may submit.
#pragma once

#include <parex/detail/executor/executor_core.hpp>
#include <parex/detail/remote/remote_call.hpp>

#include <cstdint>
#include <tuple>
#include <utility>
#include <vector>

namespace parex::detail {

/// How a map item is shipped to a worker: a plain item is the one argument; an ArgPack
/// (see task.hpp) is spread over the parameters.
template <class Item>
struct MapItem {
  template <class F>
  using remotable = Remotable<F, Item&&>;
  template <class Params>
  static void encode(Writer& w, Params params, Item&& item) {
    encode_item(w, params, std::move(item));
  }
};
template <class... T>
struct MapItem<ArgPack<T...>> {
  template <class F>
  using remotable = Remotable<F, T&&...>;
  template <class Params>
  static void encode(Writer& w, Params params, ArgPack<T...>&& item) {
    std::apply([&](T&&... a) { encode_item(w, params, std::move(a)...); }, std::move(item.args));
  }
};

template <class R>
struct RemoteSubmit {
  template <class F, class... A>
  static Future<R> call(Executor& ex, std::chrono::nanoseconds timeout, const F& fn, A&&... args) {
    using Check = Remotable<F, A...>;
    if constexpr (!Check::value) {
      throw NotSerializable(Check::why());
    } else {
      const FunctionEntry& entry = lookup_function(fn);
      auto* call = new SingleCall<R>(entry);
      auto future = FutureAccess::make(StateRef<State<R>>::adopt(call));
      call->args.use_blocks_from(ex.block_allocator());
      try {
        encode_item(call->args, typename Check::Sig::params{}, std::forward<A>(args)...);
      } catch (...) {
        call->drop();
        throw_encode_error(entry);
      }
      call->timeout = timeout;
      ex.post(call);
      return future;
    }
  }

  // One map chunk. An item whose arguments fail to encode does not fail its neighbours:
  // it is left out of the call and gets its NotSerializable at its own position.
  template <class F, class Item>
  static Future<ChunkResult<R>> chunk(Executor& ex, const F& fn, std::vector<Item>&& items,
                                      std::chrono::nanoseconds timeout) {
    using Check = typename MapItem<Item>::template remotable<F>;
    if constexpr (!Check::value) {
      throw NotSerializable(Check::why());
    } else {
      const FunctionEntry& entry = lookup_function(fn);
      auto* call = new ChunkCall<R>(entry, static_cast<std::uint32_t>(items.size()));
      auto future = FutureAccess::make(StateRef<State<ChunkResult<R>>>::adopt(call));
      call->args.use_blocks_from(ex.block_allocator());
      for (std::uint32_t i = 0; i < items.size(); ++i) {
        const std::size_t mark = call->args.size();
        try {
          MapItem<Item>::encode(call->args, typename Check::Sig::params{}, std::move(items[i]));
        } catch (...) {
          call->args.truncate(mark);
          try {
            call->leave_out(i, encode_error(entry));
          } catch (...) {  // out of memory: the whole chunk fails at submit
            call->drop();
            throw;
          }
        }
      }
      call->timeout = timeout;
      if (call->count == 0) call->finish();  // nothing left to send: complete it here
      else ex.post(call);
      return future;
    }
  }
};

}  // namespace parex::detail
