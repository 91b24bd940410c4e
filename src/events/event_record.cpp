// An ended event's record: what it says (Lambda's destination JSON) and where it goes — a
// destination, the dead-letter path (the function's dead_letter, the engine's sink, the log),
// or the drain sink at shutdown. A record never disappears: each failed step is counted and
// logged, and the last step, an engine log line, cannot fail.
#include <absl/time/time.h>

#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include "core/str_cat.hpp"
#include "ember/events.hpp"
#include "events/dispatcher.hpp"
#include "observe/json_writer.hpp"

namespace ember {

namespace {

// Lambda's record timestamp: ISO 8601 in UTC with milliseconds.
void append_timestamp(std::string& out, absl::Time t) {
  if (t == absl::InfinitePast() || t == absl::InfiniteFuture()) {
    out += "null";
    return;
  }
  detail::append_json_string(out, absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone()));
}

// An event that never reached its handler has no invoke status of its own; this is the status
// Lambda's Invoke API would have answered for the same reason.
int never_ran_status(const std::optional<Error>& error) {
  if (!error) return 500;
  switch (error->code) {
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kInvalidArgument:
      return 400;
    case ErrorCode::kPayloadTooLarge:
      return 413;
    case ErrorCode::kThrottled:
    case ErrorCode::kQueueFull:
      return 429;
    case ErrorCode::kShuttingDown:
      return 503;
    default:
      return 500;
  }
}

}  // namespace

std::string_view event_condition_name(EventCondition c) noexcept {
  switch (c) {
    case EventCondition::kSuccess:
      return "Success";
    case EventCondition::kRetriesExhausted:
      return "RetriesExhausted";
    case EventCondition::kEventAgeExceeded:
      return "EventAgeExceeded";
    case EventCondition::kRejected:
      return "Rejected";
    case EventCondition::kShutdown:
      return "Shutdown";
  }
  return "Unknown";
}

std::string event_record_json(const EventRecord& record) {
  const bool ran = record.attempts > 0;
  std::string out;
  out.reserve(256 + record.payload.size() + record.response.size());
  out += R"({"version":"1.0","timestamp":)";
  append_timestamp(out, record.finished_at);
  out += R"(,"requestContext":{"requestId":)";
  detail::append_json_string(out, record.event_id);
  out += R"(,"functionArn":)";
  detail::append_json_string(out, record.function);
  out += R"(,"condition":)";
  detail::append_json_string(out, event_condition_name(record.condition));
  out += R"(,"approximateInvokeCount":)";
  detail::append_int(out, record.attempts);
  // Payloads go as JSON strings: ember does not require a payload to be JSON.
  out += R"(},"requestPayload":)";
  detail::append_json_string(out, record.payload);
  out += R"(,"responseContext":{"statusCode":)";
  detail::append_int(out, ran ? 200 : never_ran_status(record.error));
  out += R"(,"executedVersion":)";
  if (record.version.empty()) {
    out += "null";
  } else {
    detail::append_json_string(out, record.version);
  }
  const bool failed = record.condition != EventCondition::kSuccess;
  // As Lambda: a handler that ran and failed (an error, an exception, a timeout) is "Unhandled".
  if (failed && ran) out += R"(,"functionError":"Unhandled")";
  out += R"(},"responsePayload":)";
  if (!failed) {
    detail::append_json_string(out, record.response);
  } else if (record.error) {
    detail::append_json_string(out, function_error_json(*record.error));
  } else {
    out += "null";
  }
  out += '}';
  return out;
}

}  // namespace ember

namespace ember::detail {

namespace {
std::optional<std::string> call(const EventCallback& callback, const EventRecord& r) {
  try {
    callback(r);
    return std::nullopt;
  } catch (const std::exception& e) {
    return cat("the callback threw: ", e.what());
  } catch (...) {
    return std::string("the callback threw");
  }
}
}  // namespace

void EventDispatcher::route(const EventRecord& r, const Destination& on_success,
                            const Destination& on_failure, const Destination& dead_letter_to,
                            const EventSinks& sinks, FunctionHandle fn, Tally& t) {
  switch (r.condition) {
    case EventCondition::kSuccess:
      if (on_success.empty()) return;
      // The event did succeed: a failed delivery is counted and logged, not dead-lettered.
      if (auto why = send(on_success, r); !why) {
        ++t.to_on_success;
      } else {
        delivery_failed(r, fn, EngineCore::EventCounter::kDestinationFailure,
                        "delivery to its on-success destination", *why, t);
      }
      return;
    case EventCondition::kShutdown:
      if (sinks.drain) {
        auto why = call(sinks.drain, r);
        if (!why) {
          ++t.drained;
          return;
        }
        delivery_failed(r, fn, EngineCore::EventCounter::kDeadLetterError,
                        "delivery to the engine's drain sink", *why, t);
      }
      dead_letter(dead_letter_to, r, sinks, fn, t.drained, t);
      return;
    default:
      if (!on_failure.empty()) {
        auto why = send(on_failure, r);
        if (!why) {
          ++t.to_on_failure;
          return;
        }
        delivery_failed(r, fn, EngineCore::EventCounter::kDestinationFailure,
                        "delivery to its on-failure destination", *why, t);
      }
      dead_letter(dead_letter_to, r, sinks, fn, t.dead_lettered, t);
      return;
  }
}

void EventDispatcher::dead_letter(const Destination& own, const EventRecord& r,
                                  const EventSinks& sinks, FunctionHandle fn, std::uint64_t& placed,
                                  Tally& t) {
  ++placed;  // one of the three steps below takes it
  if (!own.empty()) {
    auto why = send(own, r);
    if (!why) return;
    delivery_failed(r, fn, EngineCore::EventCounter::kDeadLetterError,
                    "delivery to its dead-letter destination", *why, t);
  }
  if (sinks.dead_letter) {
    auto why = call(sinks.dead_letter, r);
    if (!why) return;
    delivery_failed(r, fn, EngineCore::EventCounter::kDeadLetterError,
                    "delivery to the engine's dead-letter sink", *why, t);
  }
  core_.log(LogLevel::kError, r.function, r.event_id,
            cat("event ", r.event_id, " of function '", r.function, "' dead-lettered (",
                event_condition_name(r.condition), "): ", event_record_json(r)));
}

std::optional<std::string> EventDispatcher::send(const Destination& d, const EventRecord& r) {
  if (d.function.empty()) return call(d.callback, r);
  // As Lambda invokes a destination function: asynchronously, with the record as its payload.
  auto fn = core_.find(d.function);
  Result<std::string> id = fn ? enqueue_record(*fn, d.function, event_record_json(r))
                              : tl::unexpected<Error>(std::move(fn.error()));
  if (id) return std::nullopt;
  return cat("function '", d.function, "' refused it: ", id.error().message);
}

void EventDispatcher::delivery_failed(const EventRecord& r, FunctionHandle fn,
                                      EngineCore::EventCounter counter, std::string_view what,
                                      std::string_view why, Tally& t) {
  ++t.failures;
  core_.count_event(fn, counter);
  core_.log(LogLevel::kWarn, r.function, r.event_id,
            cat("event ", r.event_id, " of function '", r.function, "': ", what, " failed: ", why));
}

}  // namespace ember::detail
