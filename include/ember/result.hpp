// result.hpp — errors as values: ember::Error, ember::ErrorCode and ember::Result<T>.
//
// Every fallible ember call returns Result<T> = tl::expected<T, Error>. Only the spellings
// std::expected also has are used (value(), error(), transform, and_then, or_else), so a move
// to std::expected is an alias change.
//
//   ember::Result<std::string> r = engine.invoke(fn, "{}");
//   if (!r) std::cerr << r.error().code_name() << ": " << r.error().message << "\n";
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

#include "ember/export.hpp"

namespace ember {

// What went wrong. The message of the Error says which function, limit or field.
enum class ErrorCode : std::uint8_t {
  kOk = 0,           // never carried by an Error; the value of a default ErrorCode
  kNotFound,         // no function of that name or qualifier
  kAlreadyExists,    // a function of that name is registered already
  kInvalidArgument,  // bad name, bad config value, bad option, wrong typed-invoke types
  kThrottled,        // a concurrency limit was reached (the message names which one)
  kQueueFull,        // an async invoke found the function's wait queue full
  kTimeout,          // the invocation (or its wait for a slot) passed its deadline
  kCancelled,        // the invocation's caller gave up, or the engine shut down under it
  kHandlerFailed,    // the handler returned an error or threw
  kPayloadTooLarge,  // request or response larger than the configured limit
  kRecursionLimit,   // nested invokes deeper than EngineOptions::max_invoke_depth
  kShuttingDown,     // the engine is shutting down or shut down
  kNotInHandler,   // a Context call that needs a running handler (sleep_for, yield) made elsewhere
  kInternal,       // an ember bug; please report it
  kPluginInvalid,  // a plugin or layer file, descriptor or init was refused (message says why)
  kInitFailed,     // the function's instance init (or snapshot clone) failed, threw or timed out
  kOutOfMemory,    // the invocation allocated past the function's memory_mb (Context::memory())
};

// The stable name of a code, e.g. "kThrottled" -> "Throttled".
[[nodiscard]] EMBER_EXPORT std::string_view error_code_name(ErrorCode code) noexcept;

// An error: a code for programs and a message for people. The message names the culprit
// (function, limit, field, exception type) so that it can be logged as it is.
struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;

  [[nodiscard]] std::string_view code_name() const noexcept { return error_code_name(code); }
  friend bool operator==(const Error&, const Error&) = default;
};

template <typename T>
using Result = tl::expected<T, Error>;

// A failed invocation as Lambda reports it to a caller: errorType and errorMessage.
//  - a plugin handler's fail("ValidationError", "empty name") -> "ValidationError", "empty name"
//  - a C++ handler that threw std::runtime_error("x")         -> "std::runtime_error", "x"
//  - a timeout                                                 -> "Sandbox.Timedout", "... Task
//                                                                 timed out after 3.00 seconds"
//  - anything else                                             -> error_code_name(code), message
struct FunctionError {
  std::string type;
  std::string message;
};
[[nodiscard]] EMBER_EXPORT FunctionError function_error(const Error& error);
// {"errorMessage":"...","errorType":"..."} (JSON, valid UTF-8 whatever the message holds).
[[nodiscard]] EMBER_EXPORT std::string function_error_json(const Error& error);

// Shorthand for returning an error from a function that returns Result<T>:
//   return ember::fail(ErrorCode::kInvalidArgument, "payload is empty");
[[nodiscard]] inline tl::unexpected<Error> fail(ErrorCode code, std::string message) {
  return tl::unexpected<Error>(Error{code, std::move(message)});
}

}  // namespace ember
