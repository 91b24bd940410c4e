// src/http/lambda_api.cpp, white-box (compiled into this test: it is hidden in libember_http):
// names in the path, the error mapping, and the trace header.
#include "http/lambda_api.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

namespace ember::http::detail {
namespace {

TEST(LambdaApiTest, InvocationTypesAreLambdasThreeCaseSensitive) {
  EXPECT_EQ(parse_invocation_type(""), InvocationType::kRequestResponse);
  EXPECT_EQ(parse_invocation_type("RequestResponse"), InvocationType::kRequestResponse);
  EXPECT_EQ(parse_invocation_type("Event"), InvocationType::kEvent);
  EXPECT_EQ(parse_invocation_type("DryRun"), InvocationType::kDryRun);
  EXPECT_FALSE(parse_invocation_type("event").has_value());
  EXPECT_FALSE(parse_invocation_type("Sync").has_value());
}

TEST(LambdaApiTest, InvokeTargetJoinsNameAndQualifier) {
  EXPECT_EQ(invoke_target("fn", ""), "fn");
  EXPECT_EQ(invoke_target("fn", "live"), "fn:live");
  EXPECT_EQ(invoke_target("fn:3", ""), "fn:3");
  EXPECT_EQ(invoke_target("fn:3", "3"), "fn:3");
  EXPECT_EQ(invoke_target("arn:aws:lambda:eu-west-1:123456789012:function:fn", ""), "fn");
  EXPECT_EQ(invoke_target("arn:aws:lambda:eu-west-1:123456789012:function:fn:live", ""), "fn:live");
  EXPECT_EQ(invoke_target("123456789012:function:fn", "2"), "fn:2");

  auto disagree = invoke_target("fn:3", "4");
  ASSERT_FALSE(disagree.has_value());
  EXPECT_EQ(disagree.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(disagree.error().message.find("fn:3"), std::string::npos);
  EXPECT_FALSE(invoke_target("fn:", "").has_value());
  EXPECT_FALSE(invoke_target(":live", "").has_value());
}

TEST(LambdaApiTest, EngineErrorsMapToLambdasStatusesAndExceptions) {
  struct Case {
    ErrorCode code;
    bool reserved;
    int status;
    std::string_view exception;
    std::string_view reason;
  };
  const Case cases[] = {
      {ErrorCode::kNotFound, false, 404, "ResourceNotFoundException", ""},
      {ErrorCode::kPayloadTooLarge, false, 413, "RequestTooLargeException", ""},
      {ErrorCode::kThrottled, true, 429, "TooManyRequestsException", kReasonReserved},
      {ErrorCode::kThrottled, false, 429, "TooManyRequestsException", kReasonUnreserved},
      {ErrorCode::kQueueFull, true, 429, "TooManyRequestsException", kReasonQueueFull},
      {ErrorCode::kInvalidArgument, false, 400, "InvalidRequestContentException", ""},
      {ErrorCode::kShuttingDown, false, 503, "ServiceException", ""},
      {ErrorCode::kInternal, false, 500, "ServiceException", ""},
  };
  for (const Case& c : cases) {
    const ApiError e = api_error(Error{c.code, "function 'f': why"}, c.reserved);
    EXPECT_EQ(e.status, c.status) << error_code_name(c.code);
    EXPECT_EQ(e.exception, c.exception) << error_code_name(c.code);
    EXPECT_EQ(e.reason, c.reason) << error_code_name(c.code);
    EXPECT_NE(e.message.find("function 'f': why"), std::string::npos) << e.message;
  }
}

TEST(LambdaApiTest, ErrorBodyIsLambdasJsonEvenForBadUtf8) {
  const auto body = nlohmann::json::parse(
      api_error_json({429, "TooManyRequestsException", "bad \xff byte", kReasonReserved}));
  EXPECT_EQ(body["Type"], "User");
  EXPECT_EQ(body["Reason"], kReasonReserved);
  EXPECT_EQ(body["message"], "bad \xEF\xBF\xBD byte");
  const auto service = nlohmann::json::parse(api_error_json({503, "ServiceException", "x", {}}));
  EXPECT_EQ(service["Type"], "Service");
  EXPECT_FALSE(service.contains("Reason"));
}

TEST(LambdaApiTest, FunctionErrorsAreWhatTheFunctionItselfDid) {
  const auto is = [](ErrorCode code, std::string message) {
    return is_function_error(Error{code, std::move(message)}, "f");
  };
  EXPECT_TRUE(is(ErrorCode::kHandlerFailed, "function 'f' failed: E: x"));
  EXPECT_TRUE(is(ErrorCode::kTimeout, "function 'f': Task timed out after 3.00 seconds"));
  EXPECT_TRUE(is(ErrorCode::kCancelled, "function 'f': cancelled"));
  EXPECT_TRUE(is(ErrorCode::kPayloadTooLarge, "function 'f': response of 9 bytes exceeds 8"));
  // The engine's refusals of this invocation name it first...
  EXPECT_FALSE(is(ErrorCode::kThrottled, "function 'f' throttled: reserved concurrency"));
  EXPECT_FALSE(is(ErrorCode::kShuttingDown, "function 'f': engine is shutting down"));
  EXPECT_FALSE(is(ErrorCode::kPayloadTooLarge, "function 'f': request payload of 9 bytes"));
  EXPECT_FALSE(is(ErrorCode::kNotFound, "function 'f' is not registered"));
  EXPECT_FALSE(is(ErrorCode::kInternal, "anything"));
  // ...those of a nested invoke the handler passed on name another (or nothing).
  EXPECT_TRUE(is(ErrorCode::kThrottled, "function 'g' throttled: reserved concurrency"));
  EXPECT_TRUE(is(ErrorCode::kThrottled, "function 'ff' throttled"));
  EXPECT_TRUE(is(ErrorCode::kNotFound, "no such thing"));
}

TEST(LambdaApiTest, TraceHeaderBecomesATraceContext) {
  const TraceContext t = parse_trace_header(
      "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1");
  EXPECT_EQ(t.trace_id, (TraceId{0x5759e988bd862e3fULL, 0xe1be46a994272793ULL}));
  EXPECT_EQ(t.span_id, 0x53995c3f42cd8ad8ULL);
  EXPECT_TRUE(t.sampled);

  const TraceContext unsampled = parse_trace_header(" Root=1-00000001-000000000000000000000002 ");
  EXPECT_EQ(unsampled.trace_id, (TraceId{0x100000000ULL, 2}));
  EXPECT_EQ(unsampled.span_id, 0u);
  EXPECT_FALSE(unsampled.sampled);

  for (const char* bad :
       {"", "Sampled=1", "Root=1-5759e988-bd862e3fe1be46a99427279",
        "Root=2-5759e988-bd862e3fe1be46a994272793", "Root=1-5759e98g-bd862e3fe1be46a994272793",
        "Root=1-00000000-000000000000000000000000"}) {
    EXPECT_FALSE(parse_trace_header(bad).valid()) << bad;
  }
}

TEST(LambdaApiTest, LoopbackHostsAreOnlyThisMachines) {
  for (const char* host : {"localhost", "LocalHost", "127.0.0.1", "127.1.2.3", "::1",
                           "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(is_loopback_host(host)) << host;
  }
  for (const char* host : {"", "0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "::2", "::ffff:10.0.0.1",
                           "localhost.example.com", "[::1]"}) {
    EXPECT_FALSE(is_loopback_host(host)) << host;
  }
}

}  // namespace
}  // namespace ember::http::detail
