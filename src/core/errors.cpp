#include "ember/result.hpp"
#include "observe/json_writer.hpp"

namespace ember {

std::string_view error_code_name(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kOk:
      return "Ok";
    case ErrorCode::kNotFound:
      return "NotFound";
    case ErrorCode::kAlreadyExists:
      return "AlreadyExists";
    case ErrorCode::kInvalidArgument:
      return "InvalidArgument";
    case ErrorCode::kThrottled:
      return "Throttled";
    case ErrorCode::kQueueFull:
      return "QueueFull";
    case ErrorCode::kTimeout:
      return "Timeout";
    case ErrorCode::kCancelled:
      return "Cancelled";
    case ErrorCode::kHandlerFailed:
      return "HandlerFailed";
    case ErrorCode::kPayloadTooLarge:
      return "PayloadTooLarge";
    case ErrorCode::kRecursionLimit:
      return "RecursionLimit";
    case ErrorCode::kShuttingDown:
      return "ShuttingDown";
    case ErrorCode::kNotInHandler:
      return "NotInHandler";
    case ErrorCode::kInternal:
      return "Internal";
    case ErrorCode::kPluginInvalid:
      return "PluginInvalid";
    case ErrorCode::kInitFailed:
      return "InitFailed";
    case ErrorCode::kOutOfMemory:
      return "OutOfMemory";
  }
  return "Unknown";
}

}  // namespace ember

namespace ember {
namespace {

// After "function '<name>'" (names hold no quote), the rest of the message; npos if the
// message does not start so.
std::size_t after_function_name(std::string_view m) {
  constexpr std::string_view kLead = "function '";
  if (m.substr(0, kLead.size()) != kLead) return std::string_view::npos;
  const std::size_t close = m.find('\'', kLead.size());
  return close == std::string_view::npos ? close : close + 1;
}

}  // namespace

// The messages parsed here are the engine's own (invoke.cpp's handler_threw and timeout_error,
// host_api.cpp's plugin_failed); a message in another shape keeps the code's name as its type.
FunctionError function_error(const Error& error) {
  const std::string_view m = error.message;
  const std::size_t rest = after_function_name(m);
  if (error.code == ErrorCode::kTimeout) {
    constexpr std::string_view kSep = ": ";
    if (rest != std::string_view::npos && m.substr(rest, kSep.size()) == kSep) {
      return {"Sandbox.Timedout", std::string(m.substr(rest + kSep.size()))};
    }
    return {"Sandbox.Timedout", error.message};
  }
  if (error.code == ErrorCode::kHandlerFailed && rest != std::string_view::npos) {
    constexpr std::string_view kFailed = " failed: ";  // a plugin's fail(type, message)
    constexpr std::string_view kThrew = " threw ";     // an exception: "type: what()"
    std::string_view said;
    if (m.substr(rest, kFailed.size()) == kFailed) {
      said = m.substr(rest + kFailed.size());
    } else if (m.substr(rest, kThrew.size()) == kThrew) {
      said = m.substr(rest + kThrew.size());
    }
    if (!said.empty()) {
      const std::size_t colon = said.find(": ");
      if (colon != std::string_view::npos && colon > 0) {
        return {std::string(said.substr(0, colon)), std::string(said.substr(colon + 2))};
      }
      // "int (not derived from std::exception)": a thrown value with no message of its own.
      const std::size_t space = said.find(' ');
      return {std::string(said.substr(0, space)), std::string(said)};
    }
  }
  return {std::string(error.code_name()), error.message};
}

std::string function_error_json(const Error& error) {
  const FunctionError e = function_error(error);
  std::string out = "{\"errorMessage\":";
  detail::append_json_string(out, e.message);
  out += ",\"errorType\":";
  detail::append_json_string(out, e.type);
  out += '}';
  return out;
}

}  // namespace ember
