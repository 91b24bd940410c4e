// invocation.hpp — one invocation in flight, and the pooled record of one that outlives its
// caller's frame.
//
// Inline invocations live in the caller's frame (an Invocation on the stack): nothing is
// allocated, nothing is shared. Pool-dispatched and async invocations use a PendingCall from
// the engine's pool: it adds the completion protocol between the handler's side and the
// caller's side (a waiting thread, a waiting fiber or a callback), which may give up at the
// deadline before the handler returns. PendingCalls are reference counted and recycled.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/concurrency_gate.hpp"
#include "core/registry.hpp"
#include "ember/engine.hpp"
#include "sched/fiber.hpp"
#include "sched/parker.hpp"
#include "sched/timer_heap.hpp"

namespace ember::detail {

struct PendingCall;

// Invocation::instance before the invocation starts: no warm instance was idle at admission,
// and the scale-up guard allowed a new one (made on the fiber, before the handler).
inline Instance* const kNewInstance = reinterpret_cast<Instance*>(alignof(Instance));

// Invocation::observe bits.
inline constexpr std::uint8_t kObserveLogs = 1;    // START/END/REPORT lines
inline constexpr std::uint8_t kObserveSpan = 2;    // record a span
inline constexpr std::uint8_t kObserveEvents = 4;  // tell lifecycle observers
inline constexpr std::uint8_t kObserveTrace = 8;   // carries a trace id (maybe not sampled)

struct Invocation : Task {
  EngineCore* core = nullptr;
  FunctionRecord* fn = nullptr;
  Invocation* parent = nullptr;    // the invocation whose handler made this call, if any
  PendingCall* pending = nullptr;  // set when pooled
  int depth = 0;
  std::int64_t deadline = 0;  // engine time
  std::string_view payload;
  TypedCall* typed = nullptr;  // typed invoke: where In is and where Result<Out> goes
  const ClientContext* client_context = nullptr;
  const EventInfo* event = nullptr;  // an event's invocation (Context::event())
  // Where a bytes handler's result goes: the inline caller's return value (constructed in
  // place, no move), or PendingCall::result for pooled calls.
  Result<std::string>* out = nullptr;
  std::int64_t timeout_ns = 0;  // the effective timeout, for messages
  // Identity, set when the invocation starts on a fiber.
  Fiber* fiber = nullptr;
  std::uint64_t sequence = 0;
  // An inline child that suspended: its parent fiber waits here (same thread, no atomics).
  Fiber* waiting_parent = nullptr;
  // Caller gave up (pool timeout, shutdown): the handler sees cancelled().
  std::atomic<bool> abandoned{false};
  // Metrics and observation.
  std::int64_t start_ns = 0;     // when the handler started (engine time)
  MetricShard* shard = nullptr;  // inline: this thread's shard of the function, if metrics on
  std::uint8_t observe = 0;      // kObserve* bits: the slow path at start and end
  bool cold = false;             // a cold start (its version's first run, or a new instance)
  bool restored = false;         // the cold start cloned its instance from a snapshot
  bool threw = false;            // the handler threw (its instance, if any, is discarded)
  // Execution environment: the instance serving it (functions with a Lifecycle; kNewInstance
  // until it is made), its Init Duration on a cold start, and the memory resource of
  // Context::memory() (the instance's, or own_memory made on first use for a stateless one).
  Instance* instance = nullptr;
  std::int64_t init_ns = 0;
  BoundedResource* memory = nullptr;
  std::optional<BoundedResource> own_memory;
  std::uint64_t parent_span = 0;  // traced: the parent span (0 for a root)
  TraceContext trace;             // traced: its trace and own span id; sampled: recorded
  mutable char request_id[37];    // formatted on first use; [0] == 0 until then
};

// Completion state of a PendingCall: flag bits below, the record's generation (bumped each time
// it is reused) in the upper 32 bits, so that a watcher holding a stale pointer cannot release
// a later invocation by mistake.
inline constexpr std::uint64_t kStarted = 1;            // the handler began (or was skipped)
inline constexpr std::uint64_t kWaiting = 2;            // a fiber waiter is suspended on it
inline constexpr std::uint64_t kDone = 4;               // the handler's side delivered its result
inline constexpr std::uint64_t kReleasedTimeout = 8;    // the caller got kTimeout instead
inline constexpr std::uint64_t kReleasedShutdown = 16;  // the caller got kShuttingDown instead
inline constexpr std::uint64_t kReleased = kReleasedTimeout | kReleasedShutdown;
// The handler's side won (before any release): it counts the end, then sets kDone. A release
// is refused from here on; the caller still waits for kDone.
inline constexpr std::uint64_t kSettled = 32;
inline constexpr int kGenerationShift = 32;

enum class WaiterKind : std::uint8_t { kThread, kFiber, kCallback };

struct CallTimer : Timer {
  PendingCall* call = nullptr;
};

struct PendingCall {
  // Touched by both sides on every call: kept together, first.
  std::atomic<std::uint64_t> state{0};
  std::atomic<int> refs{0};
  std::atomic<bool> in_use{false};
  WaiterKind waiter = WaiterKind::kThread;
  Fiber* waiter_fiber = nullptr;
  Result<std::string> result;  // the handler's result (bytes calls)
  Invocation inv;
  Parker parker;                   // kThread waiter
  InvokeCallback callback;         // kCallback waiter
  CallTimer deadline_timer;        // a waiting fiber's deadline, on its home executor
  CallTimer queue_timer;           // TimerThread: max queue wait of an async invoke
  std::int64_t queue_wait_ns = 0;  // max queue wait of an async invoke
  std::int64_t enqueued_ns = 0;    // when an async invoke was made (AsyncEventAge)
  GateWaiter gate_link;
  std::string payload_copy;           // async invokes own their payload...
  ClientContext client_context_copy;  // ...and client context
  std::string event_strings;          // an event's id and source (event_info points in)
  EventInfo event_info;
  PendingCall* next_free = nullptr;
};

}  // namespace ember::detail
