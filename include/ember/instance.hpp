// instance.hpp — execution environments: per-instance state with init and shutdown hooks.
//
// Lambda's execution environment, in-process. A function registered with a Lifecycle runs on
// *instances*: each is made by `init` (a cold start, timed as Init Duration), serves one
// invocation at a time (so its state needs no lock), is reused warm, and is shut down when it
// has idled past FunctionConfig::idle_ttl, when its version retires, at engine shutdown, or at
// once after an invocation that timed out, threw or ran out of memory.
//
//   struct Book {                                   // one per instance
//     explicit Book(ember::InitContext& ctx) { /* open files under ctx.scratch_dir() ... */ }
//     std::map<std::string, int> orders;
//   };
//   engine.register_function("orders.book", {.provisioned_concurrency = 2},
//                            ember::lifecycle_for<Book>(),
//                            [](ember::Context& ctx, std::string_view in)
//                                -> ember::Result<std::string> {
//     Book& book = *ctx.state<Book>();                // this instance's, never shared
//     book.orders[std::string(in)] += 1;
//     return "ok";
//   });
//
// Functions without a Lifecycle have no instances and pay nothing for them.
#pragma once

#include <absl/time/time.h>

#include <cstdint>
#include <functional>
#include <memory_resource>
#include <string_view>
#include <type_traits>
#include <typeinfo>

#include "ember/export.hpp"
#include "ember/result.hpp"

namespace ember {

namespace detail {
struct InitCall;
}

// What an instance's init (or clone) sees. Valid during that call only.
class EMBER_EXPORT InitContext final {
 public:
  InitContext(const InitContext&) = delete;
  InitContext& operator=(const InitContext&) = delete;

  [[nodiscard]] std::string_view function_name() const noexcept;
  [[nodiscard]] std::string_view function_version() const noexcept;
  // Unique among the engine's instances; also part of the scratch directory's name.
  [[nodiscard]] std::uint64_t instance_id() const noexcept;
  // The instance's private directory (FunctionConfig::scratch_dir), "" without one.
  [[nodiscard]] std::string_view scratch_dir() const noexcept;
  // The instance's memory resource, bounded by FunctionConfig::memory_mb. What the state
  // keeps allocated from it counts against every later invocation's limit.
  [[nodiscard]] std::pmr::memory_resource* memory() const noexcept;
  // Time left of FunctionConfig::init_timeout. An init still running when it is zero fails
  // (kInitFailed) however it ends; a long init should poll cancelled() and give up.
  [[nodiscard]] absl::Duration remaining() const noexcept;
  [[nodiscard]] bool cancelled() const noexcept;
  // A line through the engine's LogSink, tagged with the function.
  void log(std::string_view message) const;

 private:
  friend struct detail::InitCall;
  explicit InitContext(const detail::InitCall* call) noexcept : call_(call) {}
  const detail::InitCall* call_;
};

// The per-instance hooks of a function. `init` is required; the others are optional.
struct Lifecycle {
  // Builds one instance's state and returns it (it may be nullptr). An Error, or an exception,
  // fails the invocation that needed the instance with kInitFailed (or the registration /
  // provisioning that made it), and nothing is kept: init must release what it made itself.
  std::function<Result<void*>(InitContext&)> init;
  // Releases a state that init or clone made; runs exactly once per instance.
  std::function<void(void*)> shutdown;
  // Snapshot start (FunctionConfig::snapshot_start): builds a new instance's state as a copy
  // of `snapshot`, the state init made once when the version was published. Required then.
  std::function<Result<void*>(const void* snapshot, InitContext&)> clone;
  // The state's type, checked by Context::state<T>(); nullptr skips the check.
  const std::type_info* state_type = nullptr;
};

// Hooks for a state type: init constructs State(InitContext&) (or State() if that does not
// exist), shutdown deletes it, clone copy-constructs it when State is copy-constructible.
template <typename State>
Lifecycle lifecycle_for() {
  Lifecycle l;
  l.init = [](InitContext& ctx) -> Result<void*> {
    if constexpr (std::is_constructible_v<State, InitContext&>) {
      return static_cast<void*>(new State(ctx));
    } else {
      return static_cast<void*>(new State());
    }
  };
  l.shutdown = [](void* state) { delete static_cast<State*>(state); };
  if constexpr (std::is_copy_constructible_v<State>) {
    l.clone = [](const void* snapshot, InitContext&) -> Result<void*> {
      return static_cast<void*>(new State(*static_cast<const State*>(snapshot)));
    };
  }
  l.state_type = &typeid(State);
  return l;
}

// One function's instances (all its live versions), from Engine::instance_stats.
struct InstanceStats {
  int instances = 0;                     // live now: idle + busy
  int idle = 0;                          // warm, waiting for an invocation
  int provisioned = 0;                   // of them, initialised as provisioned concurrency
  int provisioned_target = 0;            // FunctionConfig::provisioned_concurrency now
  std::uint64_t cold_starts = 0;         // instances made for an invocation (init or clone)
  std::uint64_t init_failures = 0;       // inits (or clones) that failed or timed out
  std::uint64_t snapshot_restores = 0;   // instances cloned from a snapshot
  std::uint64_t reaped = 0;              // shut down after idle_ttl
  std::uint64_t discarded = 0;           // thrown away after a timeout, throw or OOM
  std::uint64_t scale_up_throttles = 0;  // invocations refused by max_new_instances_per_second
  std::uint64_t out_of_memory = 0;       // invocations that ended with kOutOfMemory
  std::uint64_t shutdowns = 0;           // shutdown hooks run
  std::uint64_t scratch_bytes_max = 0;   // the most a scratch directory held when measured
};

}  // namespace ember
