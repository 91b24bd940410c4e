// ember::http::Gateway: Lambda's Invoke API over cpp-httplib. The mapping of errors, names and
// bodies lives in lambda_api.cpp; this file owns the server, its threads and the routes.
#include <absl/time/time.h>
#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "core/str_cat.hpp"
#include "ember/engine.hpp"
#include "ember/http.hpp"
#include "http/lambda_api.hpp"

namespace ember::http {
namespace {

using detail::ApiError;
using detail::InvocationType;
using ember::detail::cat;

constexpr int kMaxThreads = 1024;
constexpr absl::Duration kMaxKeepAlive = absl::Hours(1);

constexpr char kInvokePattern[] = R"(/2015-03-31/functions/([^/]+)/invocations)";
constexpr std::string_view kJson = "application/json";

Result<void> validate(const GatewayOptions& o) {
  if (o.host.empty()) return fail(ErrorCode::kInvalidArgument, "GatewayOptions::host is empty");
  if (!o.allow_remote && !detail::is_loopback_host(o.host)) {
    return fail(ErrorCode::kInvalidArgument,
                cat("GatewayOptions::host '", o.host,
                    "' is not a loopback address; the gateway has no authentication, "
                    "so serving it to the network needs GatewayOptions::allow_remote"));
  }
  if (o.port < 0 || o.port > 65535) {
    return fail(ErrorCode::kInvalidArgument,
                cat("GatewayOptions::port ", o.port, " is outside 0..65535"));
  }
  if (o.threads < 1 || o.threads > kMaxThreads) {
    return fail(ErrorCode::kInvalidArgument,
                cat("GatewayOptions::threads ", o.threads, " is outside 1..", kMaxThreads));
  }
  if (o.keep_alive <= absl::ZeroDuration() || o.keep_alive > kMaxKeepAlive) {
    return fail(ErrorCode::kInvalidArgument,
                cat("GatewayOptions::keep_alive ", absl::FormatDuration(o.keep_alive),
                    " is outside (0, ", absl::FormatDuration(kMaxKeepAlive), "]"));
  }
  return {};
}

// "host:port", with an IPv6 literal in brackets.
std::string host_port(const std::string& host, int port) {
  return host.find(':') != std::string::npos ? cat("[", host, "]:", port) : cat(host, ":", port);
}

void reply(httplib::Response& res, const ApiError& error) {
  res.status = error.status;
  res.set_header("x-amzn-ErrorType", std::string(error.exception));
  res.set_content(detail::api_error_json(error), std::string(kJson));
}

bool is_invoke_path(std::string_view path) {
  constexpr std::string_view kPrefix = "/2015-03-31/functions/";
  constexpr std::string_view kSuffix = "/invocations";
  if (path.size() <= kPrefix.size() + kSuffix.size() || !path.starts_with(kPrefix) ||
      !path.ends_with(kSuffix)) {
    return false;
  }
  const std::string_view name =
      path.substr(kPrefix.size(), path.size() - kPrefix.size() - kSuffix.size());
  return name.find('/') == std::string_view::npos;
}

}  // namespace

struct Gateway::Impl {
  Impl(Engine& e, GatewayOptions o)
      : engine(e),
        options(std::move(o)),
        // 0: the engine's own limits, so the gateway refuses (413) exactly what it would.
        sync_limit(options.max_request_bytes != 0 ? options.max_request_bytes
                                                  : e.options().max_sync_payload),
        event_limit(options.max_request_bytes != 0 ? options.max_request_bytes
                                                   : e.options().max_async_payload) {}

  Result<void> bind();
  void serve();
  void stop();
  void add_routes();

  void invoke(const httplib::Request& req, httplib::Response& res);
  // The option that set a request limit, for 413 messages.
  [[nodiscard]] std::string_view limit_field(bool event) const {
    if (options.max_request_bytes != 0) return "GatewayOptions::max_request_bytes";
    return event ? "EngineOptions::max_async_payload" : "EngineOptions::max_sync_payload";
  }
  void refuse(httplib::Response& res, const Error& error, std::string_view function);
  bool has_reserved_concurrency(std::string_view function) const;
  void healthz(httplib::Response& res) const;
  httplib::Server::HandlerResponse explain_error(const httplib::Request& req,
                                                 httplib::Response& res) const;

  Engine& engine;
  const GatewayOptions options;
  const std::size_t sync_limit;
  const std::size_t event_limit;
  httplib::Server server;
  int port = 0;
  std::thread listener;

  // The listener thread says when it serves (or gave up); start() waits for that, so that
  // stop() never races cpp-httplib's own start (a stop() before its accept loop has begun
  // would be lost, and the join would never return).
  std::mutex state_mu;
  std::condition_variable state_cv;
  bool serving = false;  // guarded by state_mu
  bool exited = false;   // guarded by state_mu

  std::mutex stop_mu;
  bool stopped = false;  // guarded by stop_mu
};

Result<void> Gateway::Impl::bind() {
  // SO_REUSEADDR only: cpp-httplib's default adds SO_REUSEPORT, with which a second gateway
  // (or any other server) on the same port would silently share its connections.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  errno = 0;
  if (options.port == 0) {
    port = server.bind_to_any_port(options.host);
  } else {
    port = server.bind_to_port(options.host, options.port) ? options.port : -1;
  }
  if (port > 0) return {};
  const int err = errno;  // bind()'s or listen()'s; 0 when the host did not resolve
  return fail(ErrorCode::kInternal,
              cat("gateway cannot listen on ", host_port(options.host, options.port), ": ",
                  err != 0 ? std::generic_category().message(err)
                           : std::string("the host does not resolve to an address")));
}

void Gateway::Impl::serve() {
  server.listen_after_bind();
  std::lock_guard<std::mutex> lock(state_mu);
  exited = true;
  state_cv.notify_all();
}

void Gateway::Impl::stop() {
  std::lock_guard<std::mutex> lock(stop_mu);
  if (stopped) return;
  stopped = true;
  // Closes the listening socket; the accept loop ends, then cpp-httplib joins its pool, which
  // waits for requests in progress (an idle keep-alive connection for at most keep_alive).
  server.stop();
  if (listener.joinable()) listener.join();
}

void Gateway::Impl::add_routes() {
  const int threads = options.threads;
  server.new_task_queue = [this, threads]() -> httplib::TaskQueue* {
    // cpp-httplib calls this from its accept loop, after it has marked itself running.
    {
      std::lock_guard<std::mutex> lock(state_mu);
      serving = true;
    }
    state_cv.notify_all();
    return new httplib::ThreadPool(static_cast<std::size_t>(threads));
  };
  server.set_keep_alive_timeout(
      static_cast<time_t>(absl::ToInt64Seconds(absl::Ceil(options.keep_alive, absl::Seconds(1)))));
  server.set_payload_max_length(std::max(sync_limit, event_limit));
  server.set_tcp_nodelay(true);

  server.Post(kInvokePattern,
              [this](const httplib::Request& req, httplib::Response& res) { invoke(req, res); });
  server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_text(engine), "text/plain; version=0.0.4; charset=utf-8");
  });
  server.Get("/functions", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(detail::functions_json(engine.functions()), std::string(kJson));
  });
  server.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) { healthz(res); });
  server.set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request& req, httplib::Response& res) {
        return explain_error(req, res);
      }));
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(std::move(ep));
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        reply(res, {500, "ServiceException", cat("gateway error: ", what), {}});
      });
}

// POST /2015-03-31/functions/{name}/invocations
void Gateway::Impl::invoke(const httplib::Request& req, httplib::Response& res) {
  const std::string type_header = req.get_header_value("X-Amz-Invocation-Type");
  const std::optional<InvocationType> type = detail::parse_invocation_type(type_header);
  if (!type) {
    return reply(res, {400,
                       "InvalidParameterValueException",
                       cat("X-Amz-Invocation-Type '", type_header,
                           "' is not one of RequestResponse, Event, DryRun"),
                       {}});
  }
  const Result<std::string> target =
      detail::invoke_target(req.matches[1].str(), req.get_param_value("Qualifier"));
  if (!target) {
    return reply(res, {400, "InvalidParameterValueException", target.error().message, {}});
  }
  const Result<FunctionHandle> fn = engine.function(*target);
  if (!fn) return refuse(res, fn.error(), *target);

  const bool event = *type == InvocationType::kEvent;
  const std::size_t limit = event ? event_limit : sync_limit;
  if (req.body.size() > limit) {
    return reply(res,
                 {413,
                  "RequestTooLargeException",
                  cat("function '", fn->name(), "': request payload of ", req.body.size(),
                      " bytes exceeds the gateway's limit of ", limit, " bytes for ",
                      event ? "Event" : "RequestResponse", " invokes (", limit_field(event), ")"),
                  {}});
  }
  if (*type == InvocationType::kDryRun) {
    res.status = 204;
    return;
  }

  InvokeOptions invoke_options;
  invoke_options.trace = detail::parse_trace_header(req.get_header_value("X-Amzn-Trace-Id"));
  if (event) {
    // Lambda's Event invocation is ember's: the event is queued with the function's
    // EventConfig (retries, maximum age, destinations, dead letters) and its id returned.
    EventOptions event_options;
    event_options.trace = invoke_options.trace;
    Result<std::string> id = engine.enqueue(*fn, req.body, event_options);
    if (!id) return refuse(res, id.error(), fn->name());
    res.status = 202;
    res.set_header("X-Ember-Event-Id", *id);
    return;
  }

  // The version an invoke runs now. A deploy between this read and the invoke, or a split
  // alias sending this invoke to its additional version, makes it differ from the one that
  // ran: the engine does not report which version served an invoke.
  const std::string version(fn->version());
  Result<std::string> out = engine.invoke(*fn, req.body, invoke_options);
  if (!out && !detail::is_function_error(out.error(), fn->name())) {
    return refuse(res, out.error(), fn->name());
  }
  res.status = 200;
  res.set_header("X-Amz-Executed-Version", version);
  if (out) {
    res.body = std::move(*out);
  } else {
    // As Lambda: the call worked, the function did not. "Unhandled" is what Lambda reports for
    // every runtime error and timeout ("Handled" was only ever Node's callback(err)).
    res.set_header("X-Amz-Function-Error", "Unhandled");
    res.body = function_error_json(out.error());
  }
  res.set_header("Content-Type", std::string(kJson));
}

void Gateway::Impl::refuse(httplib::Response& res, const Error& error, std::string_view function) {
  const bool reserved = error.code == ErrorCode::kThrottled && has_reserved_concurrency(function);
  reply(res, detail::api_error(error, reserved));
}

// Throttles only: lists every function (the engine has no cheaper per-function config read).
bool Gateway::Impl::has_reserved_concurrency(std::string_view function) const {
  for (const FunctionInfo& f : engine.functions()) {
    if (f.name == function) return f.config.reserved_concurrency.has_value();
  }
  return false;
}

void Gateway::Impl::healthz(httplib::Response& res) const {
  if (const Result<void> ok = engine.status(); !ok) {
    res.status = 503;
    res.set_content(cat("engine refused its options: ", ok.error().message, "\n"), "text/plain");
  } else if (engine.shutting_down()) {
    res.status = 503;
    res.set_content("engine is shutting down\n", "text/plain");
  } else {
    res.set_content("ok\n", "text/plain");
  }
}

// cpp-httplib calls this for every status >= 400. Routes write their own bodies; what arrives
// here empty is cpp-httplib's own refusal (no route, body too large, a malformed request).
httplib::Server::HandlerResponse Gateway::Impl::explain_error(const httplib::Request& req,
                                                              httplib::Response& res) const {
  if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
  const bool get_route =
      req.path == "/metrics" || req.path == "/functions" || req.path == "/healthz";
  if (res.status == 404 && (get_route || is_invoke_path(req.path))) {
    // cpp-httplib answers 404 to a known path with another method.
    res.set_header("Allow", get_route ? "GET, HEAD" : "POST");
    reply(res,
          {405, "MethodNotAllowedException", cat(req.method, " is not allowed on ", req.path), {}});
  } else if (res.status == 404) {
    reply(res,
          {404, "UnknownOperationException", cat("no route for ", req.method, " ", req.path), {}});
  } else if (res.status == 413) {
    reply(res, {413,
                "RequestTooLargeException",
                cat("request body is larger than ", std::max(sync_limit, event_limit), " bytes (",
                    limit_field(sync_limit < event_limit), ")"),
                {}});
  } else {
    const int status = res.status;
    reply(res, {status,
                status >= 500 ? "ServiceException" : "InvalidRequestContentException",
                cat("HTTP ", status, " for ", req.method, " ", req.path),
                {}});
  }
  return httplib::Server::HandlerResponse::Handled;
}

// ---- Gateway ----

Result<std::unique_ptr<Gateway>> Gateway::start(Engine& engine, GatewayOptions options) {
  if (auto ok = validate(options); !ok) return tl::unexpected<Error>(std::move(ok.error()));
  auto impl = std::make_unique<Impl>(engine, std::move(options));
  impl->add_routes();
  if (auto bound = impl->bind(); !bound) return tl::unexpected<Error>(std::move(bound.error()));
  Impl* raw = impl.get();
  impl->listener = std::thread([raw] { raw->serve(); });
  {
    std::unique_lock<std::mutex> lock(raw->state_mu);
    raw->state_cv.wait(lock, [raw] { return raw->serving || raw->exited; });
    if (!raw->serving) {
      lock.unlock();
      raw->stop();
      return fail(ErrorCode::kInternal, cat("gateway on ", host_port(raw->options.host, raw->port),
                                            " stopped before it served"));
    }
  }
  return std::unique_ptr<Gateway>(new Gateway(std::move(impl)));
}

Gateway::Gateway(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Gateway::~Gateway() { stop(); }

int Gateway::port() const noexcept { return impl_->port; }

std::string Gateway::url() const {
  return cat("http://", host_port(impl_->options.host, impl_->port));
}

void Gateway::stop() { impl_->stop(); }

}  // namespace ember::http
