// The Invoke API route of ember::http::Gateway (src/http/gateway.cpp): what each invocation
// type answers, how qualifiers select a version, and which engine error becomes which status.
#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "http/lambda_api.hpp"
#include "http_test_support.hpp"

namespace ember::testing {
namespace {

using nlohmann::json;

EngineOptions quiet(EngineOptions o = {}) {
  if (o.workers == 0) o.workers = 2;
  o.log_sink = [](const LogRecord&) {};
  return o;
}

// A handler that says it has started, then waits until the test releases it.
BytesHandler blocking(Event& entered, Event& release) {
  return [&entered, &release](Context&, std::string_view) -> Result<std::string> {
    entered.set();
    release.wait();
    return std::string("released");
  };
}

TEST(GatewayInvokeTest, RequestResponseAnswersThePayloadAndTheVersionRun) {
  Engine engine{quiet()};
  ASSERT_TRUE(engine.register_function("echo", {}, echo()).has_value());
  auto gateway = start_gateway(engine);
  ASSERT_NE(gateway, nullptr);
  HttpClient client(*gateway);

  auto r = client.invoke("echo", R"({"x":1})");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, R"({"x":1})");
  EXPECT_EQ(r->get_header_value("X-Amz-Executed-Version"), "$LATEST");
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  EXPECT_FALSE(r->has_header("X-Amz-Function-Error"));

  // The explicit type, and bytes that are not text, pass the same way.
  const std::string binary("a\0b\xff", 4);
  auto explicit_type = client.invoke("echo", binary, "RequestResponse");
  ASSERT_TRUE(explicit_type);
  EXPECT_EQ(explicit_type->status, 200);
  EXPECT_EQ(explicit_type->body, binary);
}

TEST(GatewayInvokeTest, QualifiersAliasesAndArnsSelectTheVersion) {
  Engine engine{quiet()};
  // hello.tag answers "A" from libhello.so (version 1), "B" from libhello_b.so (version 2).
  ASSERT_TRUE(engine.load_plugin(plugin_file("libhello.so")).has_value());
  ASSERT_TRUE(engine.set_alias("hello.tag", "live", {.version = "1"}).has_value());
  ASSERT_TRUE(engine.reload_plugin("hello", plugin_file("libhello_b.so")).has_value());
  auto gateway = start_gateway(engine);
  ASSERT_NE(gateway, nullptr);
  HttpClient client(*gateway);

  struct Case {
    std::string name;  // as it goes into the path (and query)
    std::string answer;
    std::string version;
  };
  const std::vector<Case> cases = {
      {"hello.tag", "B", "2"},
      {"hello.tag?Qualifier=live", "A", "1"},
      {"hello.tag?Qualifier=1", "A", "1"},
      {"hello.tag?Qualifier=%24LATEST", "B", "2"},
      {"hello.tag:live", "A", "1"},
      {"hello.tag%3Alive", "A", "1"},  // botocore percent-encodes the colon
      {"hello.tag:live?Qualifier=live", "A", "1"},
      {"arn:aws:lambda:us-east-1:123456789012:function:hello.tag:live", "A", "1"},
      {"123456789012:function:hello.tag", "B", "2"},
  };
  for (const Case& c : cases) {
    auto r = client.invoke(c.name);
    ASSERT_TRUE(r) << c.name;
    EXPECT_EQ(r->status, 200) << c.name << ": " << r->body;
    EXPECT_EQ(r->body, c.answer) << c.name;
    EXPECT_EQ(r->get_header_value("X-Amz-Executed-Version"), c.version) << c.name;
  }

  // A qualifier in the path and another in the query disagree: Lambda's 400.
  EXPECT_TRUE(is_api_error(client.invoke("hello.tag:live?Qualifier=1"), 400,
                           "InvalidParameterValueException"));
  auto unknown_alias = client.invoke("hello.tag?Qualifier=nope");
  EXPECT_TRUE(is_api_error(unknown_alias, 404, "ResourceNotFoundException"));
}

TEST(GatewayInvokeTest, HandlerErrorsAre200WithFunctionErrorAndErrorType) {
  Engine engine{quiet()};
  ASSERT_TRUE(engine.load_plugin(plugin_file("libhello.so")).has_value());
  // A C++ handler that passes on a nested invoke's refusal: its own failure, not a 429.
  ASSERT_TRUE(engine
                  .register_function("passes.on", {},
                                     [](Context&, std::string_view) -> Result<std::string> {
                                       return fail(ErrorCode::kThrottled,
                                                   "function 'downstream' throttled: reserved "
                                                   "concurrency (1) is in use");
                                     })
                  .has_value());
  auto gateway = start_gateway(engine);
  ASSERT_NE(gateway, nullptr);
  HttpClient client(*gateway);

  struct Case {
    std::string function;
    std::string type;
    std::string message;  // "" to skip
  };
  const std::vector<Case> cases = {
      {"hello.fail", "ValidationError", "payload must not be empty"},
      {"hello.throw", "std::runtime_error", "boom from hello"},
      {"passes.on", "Throttled", ""},
  };
  for (const Case& c : cases) {
    auto r = client.invoke(c.function);
    ASSERT_TRUE(r) << c.function;
    EXPECT_EQ(r->status, 200) << c.function;
    EXPECT_EQ(r->get_header_value("X-Amz-Function-Error"), "Unhandled") << c.function;
    EXPECT_FALSE(r->get_header_value("X-Amz-Executed-Version").empty()) << c.function;
    const json body = json_of(r);
    ASSERT_TRUE(body.is_object()) << r->body;
    EXPECT_EQ(body.value("errorType", ""), c.type) << r->body;
    if (!c.message.empty()) {
      EXPECT_EQ(body.value("errorMessage", ""), c.message) << r->body;
    }
  }
}

TEST(GatewayInvokeTest, TimeoutIsAFunctionErrorAsLambdaReportsIt) {
  Engine engine{quiet()};
  // Sleeps far past its 50 ms timeout: the sleep ends at the deadline with kTimeout.
  ASSERT_TRUE(engine
                  .register_function("slow", {.timeout = absl::Milliseconds(50)},
                                     [](Context& ctx, std::string_view) -> Result<std::string> {
                                       if (auto slept = ctx.sleep_for(absl::Hours(1)); !slept) {
                                         return tl::unexpected(slept.error());
                                       }
                                       return std::string("woke");
                                     })
                  .has_value());
  auto gateway = start_gateway(engine);
  ASSERT_NE(gateway, nullptr);
  HttpClient client(*gateway);

  auto r = client.invoke("slow");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("X-Amz-Function-Error"), "Unhandled");
  EXPECT_EQ(json_of(r).value("errorType", ""), "Sandbox.Timedout") << r->body;
}

TEST(GatewayInvokeTest, EventAnswers202AndRunsTheHandler) {
  Event ran;
  std::mutex mu;
  std::string seen;
  std::string event_id;
  Engine engine{quiet()};
  ASSERT_TRUE(engine
                  .register_function("audit", {},
                                     [&](Context& ctx, std::string_view in) -> Result<std::string> {
                                       {
                                         std::lock_guard<std::mutex> lock(mu);
                                         seen = std::string(in);
                                         if (ctx.event() != nullptr) event_id = ctx.event()->id;
                                       }
                                       ran.set();
                                       return std::string("ignored");
                                     })
                  .has_value());
  auto gateway = start_gateway(engine);
  ASSERT_NE(gateway, nullptr);
  HttpClient client(*gateway);

  auto r = client.invoke("audit", R"({"event":1})", "Event");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202);
  EXPECT_TRUE(r->body.empty()) << r->body;
  ran.wait();
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(seen, R"({"event":1})");
  EXPECT_EQ(event_id, r->get_header_value("X-Ember-Event-Id"));
  EXPECT_FALSE(event_id.empty());
}

TEST(GatewayInvokeTest, DryRunChecksWithoutInvoking) {
  std::atomic<int> calls{0};
  Engine engine{quiet()};
  ASSERT_TRUE(engine
                  .register_function("counted", {},
                                     [&](Context&, std::string_view) -> Result<std::string> {
                                       calls.fetch_add(1);
                                       return std::string("ran");
                                     })
                  .has_value());
  auto gateway = start_gateway(engine, {.max_request_bytes = 16});
  ASSERT_NE(gateway, nullptr);
  HttpClient client(*gateway);

  auto r = client.invoke("counted", "{}", "DryRun");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 204);
  EXPECT_TRUE(r->body.empty());
  EXPECT_TRUE(
      is_api_error(client.invoke("missing", "{}", "DryRun"), 404, "ResourceNotFoundException"));
  EXPECT_TRUE(is_api_error(client.invoke("counted", std::string(17, 'x'), "DryRun"), 413,
                           "RequestTooLargeException"));
  // Only this invoke ran the handler.
  auto ran = client.invoke("counted");
  ASSERT_TRUE(ran);
  EXPECT_EQ(ran->body, "ran");
  EXPECT_EQ(calls.load(), 1);
}

TEST(GatewayInvokeTest, UnknownFunctionIs404ResourceNotFound) {
  Engine engine{quiet()};
  auto gateway = start_gateway(engine);
  ASSERT_NE(gateway, nullptr);
  HttpClient client(*gateway);

  for (const char* type : {"RequestResponse", "Event", "DryRun"}) {
    auto r = client.invoke("no.such.fn", "{}", type);
    ASSERT_TRUE(is_api_error(r, 404, "ResourceNotFoundException")) << type;
    const json body = json_of(r);
    EXPECT_EQ(body.value("Type", ""), "User");
    EXPECT_NE(body.value("message", "").find("no.such.fn"), std::string::npos) << r->body;
  }
}

TEST(GatewayInvokeTest, OversizedRequestsAre413) {
  // The gateway's own limit: cpp-httplib refuses the body before any route runs.
  std::atomic<int> calls{0};
  Engine engine{quiet()};
  ASSERT_TRUE(engine
                  .register_function("counted", {},
                                     [&](Context&, std::string_view) -> Result<std::string> {
                                       calls.fetch_add(1);
                                       return std::string("ran");
                                     })
                  .has_value());
  {
    auto gateway = start_gateway(engine, {.max_request_bytes = 1024});
    ASSERT_NE(gateway, nullptr);
    HttpClient client(*gateway);
    auto r = client.invoke("counted", std::string(2000, 'x'));
    EXPECT_TRUE(is_api_error(r, 413, "RequestTooLargeException"));
    EXPECT_EQ(calls.load(), 0);
    auto at_limit = client.invoke("counted", std::string(1024, 'x'));
    ASSERT_TRUE(at_limit);
    EXPECT_EQ(at_limit->status, 200);
  }
  // The default Event limit (1 MiB) is below the RequestResponse one (6 MiB).
  auto gateway = start_gateway(engine);
  ASSERT_NE(gateway, nullptr);
  HttpClient client(*gateway);
  const std::string mebibyte_and_one((std::size_t{1} << 20) + 1, 'x');
  auto event = client.invoke("counted", mebibyte_and_one, "Event");
  ASSERT_TRUE(is_api_error(event, 413, "RequestTooLargeException"));
  EXPECT_NE(json_of(event).value("message", "").find("Event"), std::string::npos) << event->body;
  auto sync = client.invoke("counted", mebibyte_and_one);
  ASSERT_TRUE(sync);
  EXPECT_EQ(sync->status, 200);
}

TEST(GatewayInvokeTest, EngineLimitsMapToRequestTooLargeOrAFunctionError) {
  Engine engine{quiet({.max_sync_payload = 1024})};
  ASSERT_TRUE(engine.register_function("echo", {}, echo()).has_value());
  {
    // By default the gateway applies the engine's own limit, and says which option set it.
    auto gateway = start_gateway(engine);
    ASSERT_NE(gateway, nullptr);
    HttpClient client(*gateway);
    auto request = client.invoke("echo", std::string(1025, 'x'));
    ASSERT_TRUE(is_api_error(request, 413, "RequestTooLargeException"));
    EXPECT_NE(json_of(request).value("message", "").find("EngineOptions::max_sync_payload"),
              std::string::npos)
        << request->body;
    auto at_limit = client.invoke("echo", std::string(1024, 'x'));
    ASSERT_TRUE(at_limit);
    EXPECT_EQ(at_limit->status, 200);
  }
  auto gateway = start_gateway(engine, {.max_request_bytes = 4096});  // above the engine's
  ASSERT_NE(gateway, nullptr);
  HttpClient client(*gateway);

  // The engine refuses the request: 413, naming the function.
  auto request = client.invoke("echo", std::string(2000, 'x'));
  ASSERT_TRUE(is_api_error(request, 413, "RequestTooLargeException"));
  EXPECT_NE(json_of(request).value("message", "").find("'echo'"), std::string::npos);

  // A response over the limit is the function's failure, as Lambda reports it: 200.
  ASSERT_TRUE(engine
                  .register_function("big", {},
                                     [](Context&, std::string_view) -> Result<std::string> {
                                       return std::string(2000, 'y');
                                     })
                  .has_value());
  auto response = client.invoke("big");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->get_header_value("X-Amz-Function-Error"), "Unhandled");
  EXPECT_EQ(json_of(response).value("errorType", ""), "PayloadTooLarge") << response->body;
}

// A second invoke while a function's only slot is taken: 429 with the reason Lambda gives.
void expect_throttled(Engine& engine, std::string_view function, Event& entered, Event& release,
                      std::string_view reason) {
  auto gateway = start_gateway(engine);
  ASSERT_NE(gateway, nullptr);
  HttpClient first_client(*gateway);
  HttpClient second_client(*gateway);
  std::optional<httplib::Result> first;
  std::jthread first_caller([&] { first.emplace(first_client.invoke(function)); });
  SetOnExit on_exit{release};  // destroyed before first_caller joins, if an assertion returns
  entered.wait();
  auto second = second_client.invoke(function);
  EXPECT_TRUE(is_api_error(second, 429, "TooManyRequestsException"));
  EXPECT_EQ(json_of(second).value("Reason", ""), reason) << (second ? second->body : "");
  EXPECT_EQ(json_of(second).value("Type", ""), "User");
  release.set();
  first_caller.join();
  ASSERT_TRUE(first.has_value() && *first);
  EXPECT_EQ((*first)->status, 200);
  EXPECT_EQ((*first)->body, "released");
}

TEST(GatewayInvokeTest, ReservedConcurrencyThrottleIs429WithItsReason) {
  Event entered, release;
  Engine engine{quiet()};
  ASSERT_TRUE(engine
                  .register_function("one.at.a.time", {.reserved_concurrency = 1},
                                     blocking(entered, release))
                  .has_value());
  expect_throttled(engine, "one.at.a.time", entered, release, http::detail::kReasonReserved);
}

TEST(GatewayInvokeTest, EngineConcurrencyThrottleIs429WithItsReason) {
  Event entered, release;
  Engine engine{quiet({.concurrency_limit = 1, .min_unreserved_concurrency = 1})};
  ASSERT_TRUE(engine.register_function("shared", {}, blocking(entered, release)).has_value());
  expect_throttled(engine, "shared", entered, release, http::detail::kReasonUnreserved);
}

TEST(GatewayInvokeTest, FullEventQueueIs429) {
  Event entered, release;
  Engine engine{quiet()};
  ASSERT_TRUE(
      engine.register_function("busy", {.reserved_concurrency = 1}, blocking(entered, release))
          .has_value());
  // One event may wait (throttled, it goes back to the queue until the slot frees).
  ASSERT_TRUE(engine.set_event_config("busy", {.max_queued_events = 1}).has_value());
  auto gateway = start_gateway(engine);
  ASSERT_NE(gateway, nullptr);
  HttpClient first_client(*gateway);
  HttpClient client(*gateway);
  std::optional<httplib::Result> first;
  std::jthread first_caller([&] { first.emplace(first_client.invoke("busy")); });
  SetOnExit on_exit{release};
  entered.wait();
  auto queued = client.invoke("busy", "{}", "Event");
  ASSERT_TRUE(queued);
  EXPECT_EQ(queued->status, 202);
  auto refused = client.invoke("busy", "{}", "Event");
  EXPECT_TRUE(is_api_error(refused, 429, "TooManyRequestsException"));
  EXPECT_EQ(json_of(refused).value("Reason", ""), http::detail::kReasonQueueFull);
  release.set();
  first_caller.join();
  ASSERT_TRUE(first.has_value() && *first);
  EXPECT_EQ((*first)->status, 200);
}

TEST(GatewayInvokeTest, UnknownInvocationTypeIs400) {
  Engine engine{quiet()};
  ASSERT_TRUE(engine.register_function("echo", {}, echo()).has_value());
  auto gateway = start_gateway(engine);
  ASSERT_NE(gateway, nullptr);
  HttpClient client(*gateway);
  for (const char* type : {"Sync", "event", "Tail"}) {
    auto r = client.invoke("echo", "{}", type);
    ASSERT_TRUE(is_api_error(r, 400, "InvalidParameterValueException")) << type;
    EXPECT_NE(json_of(r).value("message", "").find(type), std::string::npos) << r->body;
  }
}

TEST(GatewayInvokeTest, ShuttingDownEngineIs503) {
  Engine engine{quiet()};
  ASSERT_TRUE(engine.register_function("echo", {}, echo()).has_value());
  auto gateway = start_gateway(engine);
  ASSERT_NE(gateway, nullptr);
  HttpClient client(*gateway);
  engine.shutdown();
  EXPECT_TRUE(is_api_error(client.invoke("echo"), 503, "ServiceException"));
  EXPECT_TRUE(is_api_error(client.invoke("echo", "{}", "Event"), 503, "ServiceException"));
  EXPECT_EQ(json_of(client.invoke("echo")).value("Type", ""), "Service");
}

TEST(GatewayInvokeTest, XRayTraceHeaderJoinsTheTrace) {
  std::mutex mu;
  TraceContext seen;
  Engine engine{quiet()};  // trace_sample_rate 0: only a sampled incoming trace is recorded
  ASSERT_TRUE(engine
                  .register_function("traced", {},
                                     [&](Context& ctx, std::string_view) -> Result<std::string> {
                                       std::lock_guard<std::mutex> lock(mu);
                                       seen = ctx.trace();
                                       return std::string("ok");
                                     })
                  .has_value());
  auto gateway = start_gateway(engine);
  ASSERT_NE(gateway, nullptr);
  HttpClient client(*gateway);
  auto r = client.invoke(
      "traced", "{}", "",
      {{"X-Amzn-Trace-Id",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(seen.trace_id, (TraceId{0x5759e988bd862e3fULL, 0xe1be46a994272793ULL}));
    EXPECT_TRUE(seen.sampled);
  }
  const std::vector<Span> spans = engine.take_spans();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0].parent_span_id, 0x53995c3f42cd8ad8ULL);
}

}  // namespace
}  // namespace ember::testing
