// http.hpp — ember::http::Gateway: an HTTP front door that speaks Lambda's Invoke API, so that
// tools made for Lambda (the AWS CLI, SDKs) can invoke an engine's functions. Optional target
// ember::http (links cpp-httplib privately; this header does not include it).
//
//   ember::Engine engine;
//   engine.load_plugin("plugins/libhello.so");
//   auto gw = ember::http::Gateway::start(engine, {.port = 9000}).value();
//   // aws lambda invoke --endpoint-url http://127.0.0.1:9000 --function-name hello.greet out.json
//
// Routes:
//   POST /2015-03-31/functions/{name}/invocations[?Qualifier=q]
//        {name} is "fn", "fn:qualifier" or a function ARN (its region and account are ignored).
//        X-Amz-Invocation-Type: RequestResponse (default) | Event | DryRun
//        200 + response payload (X-Amz-Executed-Version); a handler error or timeout is still
//        200, with X-Amz-Function-Error: Unhandled and {"errorMessage","errorType"}; 202 for
//        Event (queued by Engine::enqueue, so the function's EventConfig — retries, maximum
//        age, destinations, dead letters — applies; X-Ember-Event-Id carries the event's id),
//        204 for DryRun (the function exists and the payload fits; nothing runs).
//        Refusals are Lambda's error responses: a JSON body {"Type","message"} and the
//        exception's name in x-amzn-ErrorType (which the AWS CLI and SDKs read):
//        404 ResourceNotFoundException (no such function, version or alias),
//        413 RequestTooLargeException, 429 TooManyRequestsException (body "Reason":
//        ReservedFunctionConcurrentInvocationLimitExceeded, ConcurrentInvocationLimitExceeded,
//        or ember's FunctionQueueFull for a full event queue), 400 InvalidParameterValueException
//        (invocation type, qualifiers that disagree) or InvalidRequestContentException,
//        503 ServiceException while the engine shuts down, 500 ServiceException otherwise.
//        X-Amzn-Trace-Id (X-Ray's Root/Parent/Sampled) joins the invocation to that trace.
//        Not supported: X-Amz-Log-Type: Tail (no X-Amz-Log-Result), X-Amz-Client-Context.
//   GET  /metrics    Prometheus text (ember::metrics_text)
//   GET  /functions  JSON: every function with its config, versions and aliases
//   GET  /healthz    200 "ok" while the engine admits invokes; 503 once it shuts down
//                    (Engine::shutting_down()) or if it refused its options
//   Any other path: 404 UnknownOperationException; a known path with another method: 405.
//
// Payloads are bytes, passed as they are: unlike Lambda the gateway does not require JSON.
// A sync invoke runs on the HTTP thread that received it, with the function's own dispatch
// (inline by default: the handler runs on that thread, in a fiber).
//
// Security: there is no authentication and no request signing is checked; the AWS CLI's
// signature headers are ignored. The gateway therefore listens on loopback unless told
// otherwise (GatewayOptions::allow_remote): whoever can reach the port can run every function
// and read every metric.
#pragma once

#include <absl/time/time.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "ember/export.hpp"
#include "ember/result.hpp"

namespace ember {
class Engine;
}  // namespace ember

namespace ember::http {

struct GatewayOptions {
  // Address to bind. Only loopback addresses (127.0.0.0/8, ::1, "localhost") are accepted
  // unless allow_remote is set.
  std::string host = "127.0.0.1";
  // TCP port, 0..65535; 0 picks a free one (Gateway::port() tells which).
  int port = 0;
  // Bind a non-loopback address: exposes every function, /metrics and /functions to the network.
  bool allow_remote = false;
  // Threads serving HTTP connections, 1..1024. Each sync invoke occupies one for its duration,
  // and a kept-alive connection holds one while it is open: more concurrent clients than
  // threads wait for a free one.
  int threads = 8;
  // Requests larger than this get 413 before the engine sees them. 0: the engine's own limits,
  // EngineOptions::max_sync_payload for RequestResponse and DryRun, max_async_payload for Event
  // (by default 6 MiB and 1 MiB, Lambda's).
  std::size_t max_request_bytes = 0;
  // Idle keep-alive connections are closed after this, in (0, 1 h], rounded up to whole seconds
  // (cpp-httplib's resolution). stop() waits for idle connections as long as this at most.
  absl::Duration keep_alive = absl::Seconds(5);
};

class EMBER_EXPORT Gateway final {
 public:
  // Binds and starts serving on background threads; on return the port accepts connections.
  // The engine may be in any state: /healthz reports one that refused its options or shuts
  // down. Errors: kInvalidArgument (a non-loopback host without allow_remote, a bad option,
  // naming it), kInternal (the address cannot be bound: the message says host, port and
  // errno's text, e.g. "Address already in use").
  static Result<std::unique_ptr<Gateway>> start(Engine& engine, GatewayOptions options = {});
  // Stops serving and waits for requests in progress. The engine must outlive the gateway.
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // The port bound (useful with port 0) and "http://host:port".
  [[nodiscard]] int port() const noexcept;
  [[nodiscard]] std::string url() const;
  // Stops accepting and waits for requests in progress (and idle keep-alive connections, up
  // to keep_alive). Idempotent and thread-safe. Must not be called from a handler invoked
  // through this gateway: it would wait for its own request.
  void stop();

  struct Impl;

 private:
  explicit Gateway(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ember::http
