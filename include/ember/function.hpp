// function.hpp — handler signatures and FunctionHandle, a resolved reference to a function.
//
// Resolve once, invoke many times: a handle skips the name lookup on every call.
//
//   auto fn = engine.function("pricing.quote").value();
//   auto out = engine.invoke(fn, payload);
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <typeinfo>

#include "ember/export.hpp"
#include "ember/result.hpp"

namespace ember {

class Context;
class Engine;

namespace detail {
struct Route;
class EngineCore;
}  // namespace detail

// A bytes handler: the request payload in, the response payload (or an Error) out. Runs on a
// fiber; may suspend through its Context (sleep_for, yield, nested invoke). Exceptions it
// throws become kHandlerFailed errors naming the exception type and what().
using BytesHandler = std::function<Result<std::string>(Context&, std::string_view)>;

// A resolved name of one Engine: "fn", "fn:3" (a version) or "fn:live" (an alias). Cheap to
// copy. It follows deploys: a handle of "fn" invokes whatever version is newest at the time of
// each invoke, one of "fn:live" whatever the alias points at; one of a version or alias that
// no longer exists fails with kNotFound. Valid for the life of its Engine; using it with
// another engine is an error (kInvalidArgument), not undefined behaviour.
class EMBER_EXPORT FunctionHandle {
 public:
  FunctionHandle() = default;
  [[nodiscard]] bool valid() const noexcept { return route_ != nullptr; }
  // The function's name, without qualifier ("" for a default-constructed handle).
  [[nodiscard]] std::string_view name() const noexcept;
  // The qualifier resolved: "" for the plain name, "3", "live".
  [[nodiscard]] std::string_view qualifier() const noexcept;
  // The version an invoke would run now: "$LATEST" for registered functions, "1", "2", ...
  // for plugin versions; "" if there is none (unloaded). For a split alias, its main version.
  // The string is valid for the life of the engine.
  [[nodiscard]] std::string_view version() const noexcept;
  friend bool operator==(const FunctionHandle&, const FunctionHandle&) = default;

 private:
  friend class Engine;
  friend class detail::EngineCore;
  explicit FunctionHandle(detail::Route* route) : route_(route) {}
  detail::Route* route_ = nullptr;
};

namespace detail {

// The type-erased form of a typed handler (Engine::register_function<In, Out>): values pass
// by pointer, never serialised; the types are checked at every invoke.
struct TypedHandler {
  const std::type_info* in_type = nullptr;
  const std::type_info* out_type = nullptr;
  // Calls the handler with *static_cast<const In*>(in) and stores its Result<Out> in
  // *static_cast<Result<Out>*>(out).
  std::function<void(Context&, const void* in, void* out)> call;
};

// One typed call in flight: where the input is, where the Result<Out> goes.
struct TypedCall {
  const std::type_info* in_type;
  const std::type_info* out_type;
  const void* in;
  void* out;                                  // a Result<Out>
  void (*set_error)(void* out, Error&&);      // stores an Error into *out
  const Error* (*error_of)(const void* out);  // the Error in *out, or nullptr if it holds a value
};

template <typename Out>
void set_typed_error(void* out, Error&& error) {
  *static_cast<Result<Out>*>(out) = tl::unexpected<Error>(std::move(error));
}

template <typename Out>
const Error* typed_error_of(const void* out) {
  const auto& r = *static_cast<const Result<Out>*>(out);
  return r.has_value() ? nullptr : &r.error();
}

}  // namespace detail
}  // namespace ember
