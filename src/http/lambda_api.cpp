#include "http/lambda_api.hpp"

#include <absl/strings/ascii.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "core/str_cat.hpp"

namespace ember::http::detail {
namespace {

using ember::detail::cat;
using Json = nlohmann::json;

// Parses exactly `text` as a hexadecimal number of at most 16 digits.
std::optional<std::uint64_t> parse_hex(std::string_view text) {
  if (text.empty() || text.size() > 16) return std::nullopt;
  for (const char c : text) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && absl::ascii_isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && absl::ascii_isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

// A duration as a JSON number of milliseconds: an integer when it is a whole number of them
// (the usual case, and what people write in configs), else a fraction.
Json milliseconds(absl::Duration d) {
  absl::Duration rest;
  const std::int64_t whole = absl::IDivDuration(d, absl::Milliseconds(1), &rest);
  if (rest == absl::ZeroDuration()) return whole;
  return absl::ToDoubleMilliseconds(d);
}

// dump() that never throws on bad UTF-8 (names and messages come from plugins): such bytes
// become U+FFFD.
std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

}  // namespace

std::optional<InvocationType> parse_invocation_type(std::string_view header) {
  if (header.empty() || header == "RequestResponse") return InvocationType::kRequestResponse;
  if (header == "Event") return InvocationType::kEvent;
  if (header == "DryRun") return InvocationType::kDryRun;
  return std::nullopt;
}

Result<std::string> invoke_target(std::string_view path_name, std::string_view query_qualifier) {
  std::string_view rest = path_name;
  constexpr std::string_view kArnFunction = ":function:";
  if (const std::size_t at = rest.find(kArnFunction); at != std::string_view::npos) {
    rest.remove_prefix(at + kArnFunction.size());
  }
  std::string_view name = rest;
  std::string_view qualifier;
  const std::size_t colon = rest.find(':');
  if (colon != std::string_view::npos) {
    name = rest.substr(0, colon);
    qualifier = rest.substr(colon + 1);
    if (qualifier.empty()) {
      return fail(ErrorCode::kInvalidArgument,
                  cat("function name '", path_name, "' ends in an empty qualifier"));
    }
  }
  if (name.empty()) {
    return fail(ErrorCode::kInvalidArgument,
                cat("function name '", path_name, "' names no function"));
  }
  if (!qualifier.empty() && !query_qualifier.empty() && qualifier != query_qualifier) {
    return fail(ErrorCode::kInvalidArgument,
                cat("the qualifier of function name '", path_name,
                    "' does not match the Qualifier parameter '", query_qualifier, "'"));
  }
  if (qualifier.empty()) qualifier = query_qualifier;
  return qualifier.empty() ? std::string(name) : cat(name, ":", qualifier);
}

ApiError api_error(const Error& error, bool reserved) {
  switch (error.code) {
    case ErrorCode::kNotFound:
      return {404, "ResourceNotFoundException", error.message, {}};
    case ErrorCode::kPayloadTooLarge:
      return {413, "RequestTooLargeException", error.message, {}};
    case ErrorCode::kThrottled:
      return {429, "TooManyRequestsException", error.message,
              reserved ? kReasonReserved : kReasonUnreserved};
    case ErrorCode::kQueueFull:
      return {429, "TooManyRequestsException", error.message, kReasonQueueFull};
    case ErrorCode::kInvalidArgument:
      return {400, "InvalidRequestContentException", error.message, {}};
    case ErrorCode::kShuttingDown:
      return {503, "ServiceException", error.message, {}};
    default:
      return {500, "ServiceException", cat(error_code_name(error.code), ": ", error.message), {}};
  }
}

std::string api_error_json(const ApiError& error) {
  Json body = Json::object();
  body["Type"] = error.status >= 500 ? "Service" : "User";
  body["message"] = error.message;
  if (!error.reason.empty()) body["Reason"] = std::string(error.reason);
  return dump(body);
}

bool is_function_error(const Error& error, std::string_view function) {
  switch (error.code) {
    case ErrorCode::kHandlerFailed:
    case ErrorCode::kTimeout:
    case ErrorCode::kCancelled:
    case ErrorCode::kRecursionLimit:  // only a handler's nested invoke can nest too deep
      return true;
    case ErrorCode::kInternal:  // an ember bug, whoever reports it: a 500
      return false;
    default:
      break;
  }
  const std::string lead = cat("function '", function, "'");
  const std::string_view m = error.message;
  if (m.substr(0, lead.size()) != lead) return true;  // passed on from a nested invoke
  // The engine's limit on what a handler answers (core/invoke.cpp): the function's doing.
  return error.code == ErrorCode::kPayloadTooLarge &&
         m.substr(lead.size()).starts_with(": response of ");
}

std::string functions_json(const std::vector<FunctionInfo>& functions) {
  Json out = Json::array();
  for (const FunctionInfo& f : functions) {
    const FunctionConfig& c = f.config;
    Json config = Json::object();
    config["timeout_ms"] = milliseconds(c.timeout);
    config["memory_mb"] = c.memory_mb;
    config["reserved_concurrency"] =
        c.reserved_concurrency ? Json(*c.reserved_concurrency) : Json(nullptr);
    config["dispatch"] = c.dispatch == Dispatch::kPool ? "pool" : "inline";
    config["stack_size"] = c.stack_size;
    config["max_queue_wait_ms"] = milliseconds(c.max_queue_wait);
    config["report_logs"] = c.report_logs;
    Json fn = Json::object();
    fn["name"] = f.name;
    fn["plugin"] = f.plugin;
    fn["versions"] = f.versions;
    fn["aliases"] = f.aliases;
    fn["typed"] = f.typed;
    fn["config"] = std::move(config);
    out.push_back(std::move(fn));
  }
  return dump(out);
}

TraceContext parse_trace_header(std::string_view header) {
  TraceContext trace;
  bool root = false;
  while (!header.empty()) {
    const std::size_t semi = std::min(header.find(';'), header.size());
    std::string_view field = trim(header.substr(0, semi));
    header.remove_prefix(std::min(semi + 1, header.size()));
    const std::size_t eq = field.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view key = field.substr(0, eq);
    const std::string_view value = field.substr(eq + 1);
    if (key == "Root") {
      // "1-" + 8 hex digits (epoch seconds) + "-" + 24 hex digits: 128 bits in all.
      if (value.size() != 35 || value.substr(0, 2) != "1-" || value[10] != '-') return {};
      const auto time = parse_hex(value.substr(2, 8));
      const auto high = parse_hex(value.substr(11, 8));
      const auto low = parse_hex(value.substr(19, 16));
      if (!time || !high || !low) return {};
      trace.trace_id = TraceId{(*time << 32) | *high, *low};
      root = trace.trace_id.valid();
    } else if (key == "Parent") {
      if (const auto parent = parse_hex(value); parent && value.size() == 16) {
        trace.span_id = *parent;
      }
    } else if (key == "Sampled") {
      trace.sampled = value == "1";
    }
  }
  return root ? trace : TraceContext{};
}

bool is_loopback_host(std::string_view host) {
  std::string text(host);
  for (char& c : text) c = absl::ascii_tolower(static_cast<unsigned char>(c));
  if (text == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  std::array<unsigned char, 16> v6{};
  if (inet_pton(AF_INET6, text.c_str(), v6.data()) != 1) return false;
  // ::1, or ::ffff:127.x.y.z (an IPv4 loopback address written as IPv6).
  const auto zeros = [&](int n) {
    for (int i = 0; i < n; ++i) {
      if (v6[static_cast<std::size_t>(i)] != 0) return false;
    }
    return true;
  };
  if (zeros(15) && v6[15] == 1) return true;
  return zeros(10) && v6[10] == 0xff && v6[11] == 0xff && v6[12] == 127;
}

}  // namespace ember::http::detail
