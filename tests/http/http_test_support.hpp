// http_test_support.hpp — an engine with a gateway in front, and an HTTP client for it.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>

#include "ember/ember.hpp"
#include "ember/http.hpp"
#include "events.hpp"

namespace ember::testing {

// The Invoke API path of `function`, which may end in a query ("fn?Qualifier=live").
inline std::string invoke_path(std::string_view function) {
  const std::size_t query = std::min(function.find('?'), function.size());
  return "/2015-03-31/functions/" + std::string(function.substr(0, query)) + "/invocations" +
         std::string(function.substr(query));
}

inline std::string plugin_file(std::string_view name) {
  return std::string(EMBER_PLUGIN_DIR) + "/" + std::string(name);
}

// A client of one gateway. Connections are not kept alive (cpp-httplib's default), so a
// stopped gateway never waits for an idle one of ours.
class HttpClient {
 public:
  explicit HttpClient(const http::Gateway& gateway) : client_(gateway.url()) {
    // Sanitizer builds on a shared 2-core machine can be slow; nothing here waits on time.
    client_.set_read_timeout(120, 0);
    client_.set_write_timeout(120, 0);
  }

  // POST to the Invoke API; `type` is X-Amz-Invocation-Type ("" sends none).
  httplib::Result invoke(std::string_view function, std::string body = {},
                         std::string_view type = {}, httplib::Headers headers = {}) {
    if (!type.empty()) headers.emplace("X-Amz-Invocation-Type", std::string(type));
    return client_.Post(invoke_path(function).c_str(), headers, body, "application/json");
  }
  httplib::Result get(const std::string& path) { return client_.Get(path.c_str()); }
  httplib::Client& raw() { return client_; }

 private:
  httplib::Client client_;
};

// The JSON body of a response (null if it is not JSON).
inline nlohmann::json json_of(const httplib::Result& r) {
  if (!r) return nullptr;
  return nlohmann::json::parse(r->body, nullptr, /*allow_exceptions=*/false);
}

// Expects an API error: status, x-amzn-ErrorType and Lambda's JSON body.
inline ::testing::AssertionResult is_api_error(const httplib::Result& r, int status,
                                               std::string_view exception) {
  if (!r) return ::testing::AssertionFailure() << "no response: " << httplib::to_string(r.error());
  const nlohmann::json body = json_of(r);
  if (r->status != status || r->get_header_value("x-amzn-ErrorType") != exception ||
      !body.is_object() || !body.contains("message") || !body.contains("Type")) {
    return ::testing::AssertionFailure()
           << "status " << r->status << ", x-amzn-ErrorType '"
           << r->get_header_value("x-amzn-ErrorType") << "', body " << r->body;
  }
  return ::testing::AssertionSuccess();
}

// Starts a gateway on a free loopback port, failing the test if it cannot.
inline std::unique_ptr<http::Gateway> start_gateway(Engine& engine,
                                                    http::GatewayOptions options = {}) {
  auto gateway = http::Gateway::start(engine, std::move(options));
  EXPECT_TRUE(gateway.has_value()) << (gateway ? "" : gateway.error().message);
  return gateway ? std::move(*gateway) : nullptr;
}

inline BytesHandler echo() {
  return [](Context&, std::string_view in) -> Result<std::string> { return std::string(in); };
}

// Opens `event` when destroyed: a test that fails half-way still releases a blocked handler.
struct SetOnExit {
  Event& event;
  ~SetOnExit() { event.set(); }
};

}  // namespace ember::testing
