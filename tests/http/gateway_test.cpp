// ember::http::Gateway itself (src/http/gateway.cpp): options, binding, stopping, and the
// routes beside the Invoke API (/metrics, /functions, /healthz, unknown paths).
#include <string>
#include <vector>

#include "http_test_support.hpp"

namespace ember::testing {
namespace {

using nlohmann::json;

EngineOptions quiet(EngineOptions o = {}) {
  if (o.workers == 0) o.workers = 2;
  o.log_sink = [](const LogRecord&) {};
  return o;
}

bool mentions(const Error& e, std::string_view text) {
  return e.message.find(text) != std::string::npos;
}

TEST(GatewayTest, PortZeroPicksAFreePortAndUrlSaysIt) {
  Engine engine{quiet()};
  auto gateway = start_gateway(engine);
  ASSERT_NE(gateway, nullptr);
  EXPECT_GT(gateway->port(), 0);
  EXPECT_EQ(gateway->url(), "http://127.0.0.1:" + std::to_string(gateway->port()));
  HttpClient client(*gateway);
  auto r = client.get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(GatewayTest, RefusesANonLoopbackHostUnlessAllowRemote) {
  Engine engine{quiet()};
  for (const char* host : {"0.0.0.0", "::", "192.0.2.1", "example.com"}) {
    auto refused = http::Gateway::start(engine, {.host = host});
    ASSERT_FALSE(refused.has_value()) << host;
    EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument) << host;
    EXPECT_TRUE(mentions(refused.error(), host)) << refused.error().message;
    EXPECT_TRUE(mentions(refused.error(), "allow_remote")) << refused.error().message;
  }
  // Loopback spellings are fine (all of 127/8 is this machine's).
  for (const char* host : {"localhost", "127.0.0.2"}) {
    auto gateway = http::Gateway::start(engine, {.host = host});
    EXPECT_TRUE(gateway.has_value()) << host << ": " << gateway.error().message;
  }
  // With allow_remote, any address; the gateway still answers on loopback.
  auto anywhere = http::Gateway::start(engine, {.host = "0.0.0.0", .allow_remote = true});
  ASSERT_TRUE(anywhere.has_value()) << anywhere.error().message;
  httplib::Client client("127.0.0.1", (*anywhere)->port());
  auto r = client.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(GatewayTest, InvalidOptionsNameTheirField) {
  Engine engine{quiet()};
  // Built field by field: GCC 12 misreports designated initialisers of these in an array.
  struct Case {
    http::GatewayOptions options;
    std::string field;
  };
  const auto with = [](std::string field, auto set) {
    Case c{{}, std::move(field)};
    set(c.options);
    return c;
  };
  using O = http::GatewayOptions;
  const std::vector<Case> cases = {
      with("GatewayOptions::host", [](O& o) { o.host.clear(); }),
      with("GatewayOptions::port", [](O& o) { o.port = -1; }),
      with("GatewayOptions::port", [](O& o) { o.port = 65536; }),
      with("GatewayOptions::threads", [](O& o) { o.threads = 0; }),
      with("GatewayOptions::keep_alive", [](O& o) { o.keep_alive = absl::ZeroDuration(); }),
      with("GatewayOptions::keep_alive", [](O& o) { o.keep_alive = absl::InfiniteDuration(); }),
  };
  for (const Case& c : cases) {
    auto r = http::Gateway::start(engine, c.options);
    ASSERT_FALSE(r.has_value()) << c.field;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << r.error().message;
    EXPECT_TRUE(mentions(r.error(), c.field)) << r.error().message;
  }
}

TEST(GatewayTest, BindFailureNamesHostPortAndReason) {
  Engine engine{quiet()};
  auto first = start_gateway(engine);
  ASSERT_NE(first, nullptr);
  auto second = http::Gateway::start(engine, {.port = first->port()});
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, ErrorCode::kInternal);
  EXPECT_TRUE(mentions(second.error(), "127.0.0.1:" + std::to_string(first->port())))
      << second.error().message;
  EXPECT_TRUE(mentions(second.error(), "in use")) << second.error().message;
}

TEST(GatewayTest, StopIsIdempotentAndStopsServing) {
  Engine engine{quiet()};
  auto gateway = start_gateway(engine);
  ASSERT_NE(gateway, nullptr);
  HttpClient client(*gateway);
  ASSERT_TRUE(client.get("/healthz"));
  gateway->stop();
  gateway->stop();
  auto after = client.get("/healthz");
  EXPECT_FALSE(after) << "status " << after->status;
  // The port is free again: another gateway binds it.
  auto again = http::Gateway::start(engine, {.port = gateway->port()});
  EXPECT_TRUE(again.has_value()) << again.error().message;
  gateway.reset();  // the destructor's stop after stop()
}

TEST(GatewayTest, MetricsServePrometheusText) {
  Engine engine{quiet()};
  ASSERT_TRUE(engine.register_function("echo", {}, echo()).has_value());
  auto gateway = start_gateway(engine);
  ASSERT_NE(gateway, nullptr);
  HttpClient client(*gateway);
  ASSERT_TRUE(client.invoke("echo", "{}"));

  auto r = client.get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(r->get_header_value("Content-Type").starts_with("text/plain; version=0.0.4"))
      << r->get_header_value("Content-Type");
  EXPECT_NE(r->body.find("# TYPE ember_invocations_total counter"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("ember_invocations_total{function=\"echo\"} 1"), std::string::npos)
      << r->body;
}

TEST(GatewayTest, FunctionsListsEveryFunctionWithItsConfig) {
  Engine engine{quiet()};
  ASSERT_TRUE(engine.load_plugin(plugin_file("libhello.so")).has_value());
  ASSERT_TRUE(engine.set_alias("hello.greet", "live", {.version = "1"}).has_value());
  ASSERT_TRUE(engine
                  .register_function("pricing.quote",
                                     {.timeout = absl::Milliseconds(20),
                                      .memory_mb = 256,
                                      .reserved_concurrency = 8,
                                      .dispatch = Dispatch::kPool,
                                      .stack_size = std::size_t{128} << 10,
                                      .max_queue_wait = absl::Microseconds(1500),
                                      .report_logs = true},
                                     echo())
                  .has_value());
  auto gateway = start_gateway(engine);
  ASSERT_NE(gateway, nullptr);
  HttpClient client(*gateway);

  auto r = client.get("/functions");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  const json list = json_of(r);
  ASSERT_TRUE(list.is_array()) << r->body;
  const json* quote = nullptr;
  const json* greet = nullptr;
  for (const json& f : list) {
    if (f.value("name", "") == "pricing.quote") quote = &f;
    if (f.value("name", "") == "hello.greet") greet = &f;
  }
  ASSERT_NE(quote, nullptr) << r->body;
  ASSERT_NE(greet, nullptr) << r->body;

  EXPECT_EQ((*quote)["plugin"], "");
  EXPECT_EQ((*quote)["versions"], json::array({"$LATEST"}));
  EXPECT_EQ((*quote)["aliases"], json::array());
  EXPECT_EQ((*quote)["typed"], false);
  const json& c = (*quote)["config"];
  EXPECT_EQ(c["timeout_ms"], 20);
  EXPECT_EQ(c["memory_mb"], 256);
  EXPECT_EQ(c["reserved_concurrency"], 8);
  EXPECT_EQ(c["dispatch"], "pool");
  EXPECT_EQ(c["stack_size"], 128 * 1024);
  EXPECT_EQ(c["max_queue_wait_ms"], 1.5);
  EXPECT_EQ(c["report_logs"], true);

  EXPECT_EQ((*greet)["plugin"], "hello");
  EXPECT_EQ((*greet)["versions"], json::array({"1"}));
  EXPECT_EQ((*greet)["aliases"], json::array({"live"}));
  EXPECT_TRUE((*greet)["config"]["reserved_concurrency"].is_null());
  EXPECT_EQ((*greet)["config"]["dispatch"], "inline");
}

TEST(GatewayTest, HealthzIs503OnceTheEngineShutsDown) {
  Engine engine{quiet()};
  auto gateway = start_gateway(engine);
  ASSERT_NE(gateway, nullptr);
  HttpClient client(*gateway);
  auto before = client.get("/healthz");
  ASSERT_TRUE(before);
  EXPECT_EQ(before->status, 200);
  EXPECT_EQ(before->body, "ok\n");
  engine.shutdown();
  auto after = client.get("/healthz");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 503);
  EXPECT_NE(after->body.find("shutting down"), std::string::npos) << after->body;
}

TEST(GatewayTest, HealthzIs503ForAnEngineThatRefusedItsOptions) {
  Engine engine{quiet({.concurrency_limit = 0})};
  ASSERT_FALSE(engine.status().has_value());
  auto gateway = start_gateway(engine);
  ASSERT_NE(gateway, nullptr);
  HttpClient client(*gateway);
  auto r = client.get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(r->body.find("concurrency_limit"), std::string::npos) << r->body;
}

TEST(GatewayTest, UnknownPathsAre404AndWrongMethods405) {
  Engine engine{quiet()};
  auto gateway = start_gateway(engine);
  ASSERT_NE(gateway, nullptr);
  HttpClient client(*gateway);

  auto unknown = client.get("/2015-03-31/functions");
  ASSERT_TRUE(is_api_error(unknown, 404, "UnknownOperationException"));
  EXPECT_NE(json_of(unknown).value("message", "").find("/2015-03-31/functions"), std::string::npos);

  // A name that decodes to a path of its own is no function name.
  EXPECT_TRUE(is_api_error(client.invoke("a%2Fb"), 404, "UnknownOperationException"));

  auto get_invoke = client.get(invoke_path("echo"));
  ASSERT_TRUE(is_api_error(get_invoke, 405, "MethodNotAllowedException"));
  EXPECT_EQ(get_invoke->get_header_value("Allow"), "POST");

  auto post_metrics = client.raw().Post("/metrics", "", "text/plain");
  ASSERT_TRUE(is_api_error(post_metrics, 405, "MethodNotAllowedException"));
  EXPECT_EQ(post_metrics->get_header_value("Allow"), "GET, HEAD");
}

}  // namespace
}  // namespace ember::testing
