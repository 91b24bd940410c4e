// lambda_api.hpp — what Lambda's Invoke API says, apart from any HTTP library: invocation
// types, how a function is named in the path, which errors become which HTTP status and
// exception name, and the JSON bodies. gateway.cpp wires these to cpp-httplib.
//
//   auto type = parse_invocation_type(header);               // nullopt: 400
//   auto target = invoke_target("hello.greet", "live");      // "hello.greet:live"
//   ApiError e = api_error(engine_error, /*reserved=*/true);  // 429, TooManyRequestsException
//   std::string body = api_error_json(e);                    // {"Type":"User","message":...}
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ember/deploy.hpp"
#include "ember/options.hpp"
#include "ember/result.hpp"

namespace ember::http::detail {

// X-Amz-Invocation-Type.
enum class InvocationType { kRequestResponse, kEvent, kDryRun };

// The header's value ("" is RequestResponse, as in Lambda); nullopt for anything else (values
// are case-sensitive, as Lambda's enum is).
[[nodiscard]] std::optional<InvocationType> parse_invocation_type(std::string_view header);

// What the engine resolves: "name" or "name:qualifier", from the path's function name (already
// URL-decoded) and the Qualifier query parameter. The path may hold "name", "name:qualifier",
// or an ARN ("arn:aws:lambda:region:account:function:name[:qualifier]", or the partial
// "account:function:name"): everything up to ":function:" is dropped, since an engine has no
// region or account. A qualifier in both places must agree (kInvalidArgument otherwise, as
// Lambda's "does not match the specified qualifier").
[[nodiscard]] Result<std::string> invoke_target(std::string_view path_name,
                                                std::string_view query_qualifier);

// A refused request as Lambda's API reports it: status, exception name (x-amzn-ErrorType, which
// botocore reads) and message, plus the 429's Reason.
struct ApiError {
  int status = 500;
  std::string_view exception = "ServiceException";
  std::string message;
  std::string_view reason;  // "" for none
};

// Lambda's 429 reasons, and ember's own for a full async queue (Lambda's queue has no bound to
// reach; ember's FIFO of EngineOptions::max_queued_per_function does).
inline constexpr std::string_view kReasonReserved =
    "ReservedFunctionConcurrentInvocationLimitExceeded";
inline constexpr std::string_view kReasonUnreserved = "ConcurrentInvocationLimitExceeded";
inline constexpr std::string_view kReasonQueueFull = "FunctionQueueFull";

// The API error for an engine error that refused an invocation (or its resolution):
//   kNotFound -> 404 ResourceNotFoundException    kPayloadTooLarge -> 413 RequestTooLargeException
//   kThrottled -> 429 TooManyRequestsException, Reason by `reserved` (the function has
//   reserved concurrency); kQueueFull -> 429, FunctionQueueFull
//   kInvalidArgument -> 400 InvalidRequestContentException
//   kShuttingDown -> 503 ServiceException         anything else -> 500 ServiceException
[[nodiscard]] ApiError api_error(const Error& error, bool reserved);

// {"Type":"User"|"Service","message":"...","Reason":"..."}: Lambda's error body ("User" for a
// 4xx, "Service" for a 5xx; Reason only when set). Valid JSON and UTF-8 whatever the message.
[[nodiscard]] std::string api_error_json(const ApiError& error);

// True if a sync invoke's error came out of the function itself — its handler failed, threw,
// timed out, was cancelled, or answered more than the response limit — so that Lambda answers
// 200 with X-Amz-Function-Error rather than an API error. The engine's own refusals of this
// invocation (throttled, shutting down, payload too large, ...) name `function` first
// ("function 'f' ..."); an error of the same code naming something else is one the handler
// passed on from a nested invoke, and so a function error too. (A handler that passes on the
// refusal of a nested invoke of its own function is taken for a refusal: the message cannot
// tell them apart.)
[[nodiscard]] bool is_function_error(const Error& error, std::string_view function);

// The JSON array GET /functions serves (see gateway.cpp).
[[nodiscard]] std::string functions_json(const std::vector<FunctionInfo>& functions);

// An X-Amzn-Trace-Id header ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;
// Sampled=1") as a TraceContext: the root's 8 + 24 hex digits make the 128-bit trace id, Parent
// the span id. Invalid (all zero) when there is no well-formed Root.
[[nodiscard]] TraceContext parse_trace_header(std::string_view header);

// True for addresses that only this machine can reach: "localhost", 127.0.0.0/8, ::1 and
// ::ffff:127.0.0.0/104.
[[nodiscard]] bool is_loopback_host(std::string_view host);

}  // namespace ember::http::detail
