// event_config.cpp — a function's EventConfig (validated, then applied to the events enqueued
// after it), the engine's EventSinks, EventStats, and deliver_failure.
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/names.hpp"
#include "core/str_cat.hpp"
#include "events/dispatcher.hpp"
#include "events/dispatcher_internal.hpp"

namespace ember::detail {

std::shared_ptr<const Config> make_config(EventConfig c) {
  auto out = std::make_shared<Config>();
  for (absl::Duration d : c.retry_backoff) out->backoff_ns.push_back(to_nanos(d));
  out->max_age_ns = to_nanos(c.max_event_age);
  out->throttle_ns = to_nanos(c.throttle_backoff);
  out->max_throttle_ns = to_nanos(c.max_throttle_backoff);
  out->pub = std::move(c);
  return out;
}

namespace {

Result<void> check_destination(EngineCore& core, std::string_view function, std::string_view field,
                               const Destination& d) {
  if (d.empty()) return {};
  if (!d.function.empty() && d.callback) {
    return fail(ErrorCode::kInvalidArgument,
                cat("set_event_config of '", function, "': EventConfig.", field,
                    " has both a function and a callback; set one"));
  }
  if (d.function.empty()) return {};
  if (split_qualifier(d.function).name == function) {
    return fail(ErrorCode::kInvalidArgument,
                cat("set_event_config of '", function, "': EventConfig.", field, ".function '",
                    d.function, "' is the function itself: each record would start another"));
  }
  if (auto fn = core.find(d.function); !fn) {
    return fail(fn.error().code, cat("set_event_config of '", function, "': EventConfig.", field,
                                     ".function: ", fn.error().message));
  }
  return {};
}

Result<void> check_config(EngineCore& core, std::string_view function, const EventConfig& c) {
  auto bad = [&](std::string_view field, auto value, std::string_view rule) {
    return fail(
        ErrorCode::kInvalidArgument,
        cat("set_event_config of '", function, "': EventConfig.", field, " = ", value, ": ", rule));
  };
  auto text = [](absl::Duration d) { return absl::FormatDuration(d); };
  if (c.max_retries < 0 || c.max_retries > 100)
    return bad("max_retries", c.max_retries, "must be 0..100");
  if (c.retry_backoff.empty()) return bad("retry_backoff", "[]", "must not be empty");
  for (std::size_t i = 0; i < c.retry_backoff.size(); ++i) {
    const absl::Duration d = c.retry_backoff[i];
    if (d < absl::ZeroDuration() || d == absl::InfiniteDuration())
      return bad(cat("retry_backoff[", i, "]"), text(d), "must be >= 0 and finite");
  }
  if (c.max_event_age < absl::Seconds(1))
    return bad("max_event_age", text(c.max_event_age), "must be >= 1s");
  if (c.max_queued_events < 1) return bad("max_queued_events", 0, "must be >= 1");
  if (c.throttle_backoff <= absl::ZeroDuration() || c.throttle_backoff == absl::InfiniteDuration())
    return bad("throttle_backoff", text(c.throttle_backoff), "must be > 0 and finite");
  if (c.max_throttle_backoff < c.throttle_backoff ||
      c.max_throttle_backoff == absl::InfiniteDuration()) {
    return bad("max_throttle_backoff", text(c.max_throttle_backoff),
               cat("must be finite and >= throttle_backoff (", text(c.throttle_backoff), ")"));
  }
  for (auto [field, d] :
       {std::pair<std::string_view, const Destination*>{"on_success", &c.on_success},
        {"on_failure", &c.on_failure},
        {"dead_letter", &c.dead_letter}}) {
    if (auto ok = check_destination(core, function, field, *d); !ok) return ok;
  }
  return {};
}

}  // namespace

Result<void> check_options(std::string_view function, const EventOptions& o) {
  auto bad = [&](std::string_view what) {
    return fail(ErrorCode::kInvalidArgument,
                cat("enqueue of '", function, "': EventOptions.", what));
  };
  if (o.event_id.size() > 128)
    return bad(cat("event_id is ", o.event_id.size(), " characters; at most 128"));
  for (std::size_t i = 0; i < o.event_id.size(); ++i) {
    const auto c = static_cast<unsigned char>(o.event_id[i]);
    if (c < 0x20 || c > 0x7E)
      return bad(cat("event_id has byte ", static_cast<int>(c), " at ", i,
                     "; only printable ASCII characters are allowed"));
  }
  if (o.max_retries && (*o.max_retries < 0 || *o.max_retries > 100))
    return bad(cat("max_retries = ", *o.max_retries, ": must be 0..100"));
  if (o.max_event_age && *o.max_event_age < absl::Seconds(1)) {
    return bad(cat("max_event_age = ", absl::FormatDuration(*o.max_event_age), ": must be >= 1s"));
  }
  return {};
}

namespace {
Result<void> check_plain_name(std::string_view what, std::string_view function) {
  if (function.find(':') == std::string_view::npos) return {};
  return fail(ErrorCode::kInvalidArgument,
              cat(what, " of '", function,
                  "': an event config belongs to the function; give its name without a qualifier"));
}
}  // namespace

Result<void> EventDispatcher::set_config(std::string_view function, EventConfig config) {
  State& s = *state_;
  if (auto ok = check_plain_name("set_event_config", function); !ok) return ok;
  if (auto fn = s.core.find(function); !fn) return tl::unexpected<Error>(std::move(fn.error()));
  if (auto ok = check_config(s.core, function, config); !ok) return ok;
  std::shared_ptr<const Config> cfg = make_config(std::move(config));
  std::vector<std::shared_ptr<const Config>> garbage;  // freed outside the lock
  std::lock_guard<std::mutex> lock(s.mu);
  FnState& fs = s.fn_state_locked(function);
  if (fs.config != nullptr) fs.retired.push_back(std::move(fs.config));
  if (s.fn_live_locked(fs) == 0) garbage.swap(fs.retired);
  fs.config = std::move(cfg);
  return {};
}

Result<EventConfig> EventDispatcher::config(std::string_view function) const {
  State& s = *state_;
  if (auto ok = check_plain_name("event_config", function); !ok)
    return tl::unexpected<Error>(std::move(ok.error()));
  if (auto fn = s.core.find(function); !fn) return tl::unexpected<Error>(std::move(fn.error()));
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.fns.find(absl::string_view(function.data(), function.size()));
  return it == s.fns.end() ? s.defaults->pub : s.config_locked(*it->second).pub;
}

void EventDispatcher::set_sinks(EventSinks sinks) {
  auto shared = std::make_shared<const EventSinks>(std::move(sinks));
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->sinks.swap(shared);  // the old sinks go outside the lock, with `shared`
}

EventStats EventDispatcher::stats() const {
  const State& s = *state_;
  std::lock_guard<std::mutex> lock(s.mu);
  EventStats out = s.stats;
  const std::int64_t fast = s.fast_ended.load(std::memory_order_acquire);
  out.succeeded += static_cast<std::uint64_t>(fast);
  out.in_flight = s.attempts_started - s.attempts_ended - fast;
  return out;
}

void EventDispatcher::deliver_failure(const Destination& destination, const EventRecord& record,
                                      FunctionHandle metrics_fn) {
  State& s = *state_;
  Tally t;
  route(record, Destination{}, destination, Destination{}, *s.current_sinks(), metrics_fn, t);
  std::lock_guard<std::mutex> lock(s.mu);
  s.stats.to_on_failure += t.to_on_failure;
  s.stats.dead_lettered += t.dead_lettered;
  s.stats.drained += t.drained;
  s.stats.delivery_failures += t.failures;
}

}  // namespace ember::detail
