#include "ember/result.hpp"

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
  }
  return "Unknown";
}

}  // namespace ember
