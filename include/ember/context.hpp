// context.hpp — what a running handler sees: ember::Context.
//
// Lambda's context object, in-process: the request id, the function's name and version, the
// deadline and the time remaining, cancellation, a logger that tags lines with the request id,
// nested invokes, and fiber-aware sleep and yield.
//
//   engine.register_function("orders.place", {}, [](ember::Context& ctx, std::string_view in)
//       -> ember::Result<std::string> {
//     if (auto ok = ctx.check(); !ok) return tl::unexpected(ok.error());   // timed out?
//     ctx.log("placing " + std::string(in));
//     auto risk = ctx.invoke("risk.check", in);           // suspends this fiber, not the thread
//     if (!risk) return tl::unexpected(risk.error());
//     return "placed";
//   });
//
// A Context is valid only inside the handler call it was passed to, and only on the fiber that
// runs it: do not store it or hand it to another thread.
#pragma once

#include <absl/time/time.h>

#include <cstdint>
#include <memory_resource>
#include <string>
#include <string_view>
#include <typeinfo>

#include "ember/events.hpp"
#include "ember/export.hpp"
#include "ember/function.hpp"
#include "ember/options.hpp"
#include "ember/result.hpp"

namespace ember {

namespace detail {
struct Invocation;
class EngineCore;
}  // namespace detail

class EMBER_EXPORT Context final {
 public:
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // Unique within the process and printable (UUID-shaped, as Lambda's).
  [[nodiscard]] std::string_view request_id() const;
  [[nodiscard]] std::string_view function_name() const noexcept;
  [[nodiscard]] std::string_view function_version() const noexcept;
  // min(function timeout, caller's remaining time), fixed when the invocation was admitted.
  [[nodiscard]] absl::Time deadline() const noexcept;
  // Time left before the deadline; zero once past it.
  [[nodiscard]] absl::Duration remaining() const noexcept;
  // True once the deadline has passed, the caller has been released, or the engine is
  // shutting down past its drain deadline. Cheap; call it in long loops.
  [[nodiscard]] bool cancelled() const noexcept;
  // Ok, or kTimeout / kCancelled saying why the handler should stop.
  [[nodiscard]] Result<void> check() const;
  // The function's configured memory (FunctionConfig::memory_mb).
  [[nodiscard]] int memory_limit_mb() const noexcept;
  // Nesting depth: 0 for an invocation from outside any handler.
  [[nodiscard]] int depth() const noexcept;
  // This invocation's place in its trace: its trace id and own span id, and whether it is
  // recorded. Invalid (all zero) when it belongs to no trace. Pass it on as
  // InvokeOptions::trace to continue the trace elsewhere (invokes from this handler do so
  // themselves).
  [[nodiscard]] TraceContext trace() const noexcept;
  // Caller-supplied key/values (InvokeOptions::client_context); empty if none.
  [[nodiscard]] const ClientContext& client_context() const noexcept;
  // The event this invocation runs (Engine::enqueue, a schedule), or nullptr for a plain
  // invoke: its id, stable across retries, for de-duplication, and which attempt this is.
  [[nodiscard]] const EventInfo* event() const noexcept;

  // ---- Execution environment (ember/instance.hpp) ----
  // The state of the instance serving this invocation (what Lifecycle::init returned), or
  // nullptr for a function without a Lifecycle.
  [[nodiscard]] void* instance() const noexcept { return instance_state(nullptr); }
  // The same as a State*; nullptr also when the Lifecycle says its state is another type.
  template <typename State>
  [[nodiscard]] State* state() const noexcept {
    return static_cast<State*>(instance_state(&typeid(State)));
  }
  // The serving instance's id (InitContext::instance_id), 0 without one.
  [[nodiscard]] std::uint64_t instance_id() const noexcept;
  // True if this invocation made its instance (a cold start: init or a snapshot clone ran).
  [[nodiscard]] bool cold_start() const noexcept;
  // Memory bounded by the function's memory_mb: the instance's (what its state holds counts),
  // or, without one, this invocation's own, made on first use. An allocation past the limit
  // throws std::bad_alloc, and the invocation then ends with kOutOfMemory whatever the handler
  // returns (its instance is discarded). Blocks must not outlive the invocation (or, for an
  // instance's, the instance).
  [[nodiscard]] std::pmr::memory_resource* memory() const;
  // The instance's private directory (FunctionConfig::scratch_dir), "" without one.
  [[nodiscard]] std::string_view scratch_dir() const noexcept;

  // Writes a line through the engine's LogSink, tagged with the request id and function.
  void log(std::string_view message) const { log(LogLevel::kInfo, message); }
  void log(LogLevel level, std::string_view message) const;

  // Nested invokes. The callee's deadline is min(its timeout, this invocation's remaining
  // time); its depth is depth() + 1. Waiting suspends this fiber, never blocks the thread.
  // Errors: as Engine::invoke, plus kRecursionLimit past EngineOptions::max_invoke_depth.
  [[nodiscard]] Result<std::string> invoke(FunctionHandle fn, std::string_view payload,
                                           const InvokeOptions& options = {});
  [[nodiscard]] Result<std::string> invoke(std::string_view name, std::string_view payload,
                                           const InvokeOptions& options = {});
  template <typename Out, typename In>
  [[nodiscard]] Result<Out> invoke(FunctionHandle fn, const In& in,
                                   const InvokeOptions& options = {});

  // Suspends this fiber for d (other invocations run meanwhile). Returns kTimeout, early, if
  // the deadline comes first, and at once if it has passed.
  Result<void> sleep_for(absl::Duration d);
  // Lets other ready fibers of this thread run, then continues. kTimeout past the deadline.
  Result<void> yield();

  [[nodiscard]] Engine& engine() const noexcept;

 private:
  friend class detail::EngineCore;
  explicit Context(detail::Invocation* invocation) noexcept : inv_(invocation) {}
  Result<void> invoke_typed(FunctionHandle fn, detail::TypedCall& call,
                            const InvokeOptions& options);
  // The instance's state; with `type`, nullptr if the Lifecycle names another state type.
  [[nodiscard]] void* instance_state(const std::type_info* type) const noexcept;
  detail::Invocation* inv_;
};

template <typename Out, typename In>
Result<Out> Context::invoke(FunctionHandle fn, const In& in, const InvokeOptions& options) {
  Result<Out> out = tl::unexpected<Error>(Error{ErrorCode::kInternal, "no result"});
  detail::TypedCall call{&typeid(In),
                         &typeid(Out),
                         &in,
                         &out,
                         &detail::set_typed_error<Out>,
                         &detail::typed_error_of<Out>};
  if (auto admitted = invoke_typed(fn, call, options); !admitted) {
    return tl::unexpected<Error>(std::move(admitted.error()));
  }
  return out;
}

}  // namespace ember
