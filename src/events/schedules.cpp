// Schedules: rate()/cron() expressions firing events on the engine's clock.
//
// Each schedule keeps one EventTimers timer at its next fire time. The callback looks at the
// actual time, collects every fire time that has passed since the one it handled last, applies
// the MissedRuns policy and the overlap rule, re-arms, and enqueues what is left through the
// dispatcher. Two scales of time meet here: the engine's (nanoseconds; timers and event ages)
// and the wall clock (absl::Time; cron fields and the event's "time"). rate() lives on the
// engine scale alone, anchored where it was added, so a step of the wall clock does not move
// it; cron() reads the wall time at each callback (TimeSource::to_time), so it follows the wall
// clock, as EventBridge's does. Under a ManualClock the two scales are the same.
//
// The policies, where schedule.hpp leaves room:
//  - One fire time passed is on time, however late the callback runs: it fires whatever
//    MissedRuns says. Only when two or more have passed (the clock jumped, the events thread
//    was held up for over a period) were times missed: kRunOnce fires the latest, kSkip none,
//    kRunAll the latest max_catch_up of them (so kRunOnce is kRunAll with max_catch_up 1).
//  - Overlap: a fire time is skipped while an event of the schedule has not ended or catch-up
//    fires still wait. Without allow_overlap, kRunAll's catch-up fires go one at a time, each
//    when the one before has ended; with it, all at once.
//  - A fire's event id is "<name>:<scheduled time, RFC 3339>", the same on every attempt.
//  - A refused enqueue loses that fire (counted, logged at kError); the schedule goes on.
//  - stop() (shutdown) leaves the schedules listed, with their counts and no next fire.
#include "events/schedules.hpp"

#include <absl/strings/ascii.h>
#include <absl/time/time.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

#include "core/str_cat.hpp"
#include "events/schedule_expression.hpp"

namespace ember::detail {
namespace {

using Json = nlohmann::ordered_json;  // keeps EventBridge's key order in the payload

constexpr std::size_t kMaxNameLength = 64;
// Catch-up fires wait in a per-schedule backlog (without allow_overlap): bounded so that a
// clock jump cannot queue millions of them.
constexpr int kMaxCatchUp = 10'000;
// A cron() catch-up counts the fire times it passed over one by one; past this many (about two
// years of a once-a-minute schedule) it stops counting and jumps to the next future time, so
// that a clock jumping decades cannot hold the events thread for minutes.
constexpr std::int64_t kMaxCounted = 1'000'000;
// EventConfig's bounds, checked here too so that a bad override fails add(), not every fire.
constexpr int kMaxRetries = 100;

bool is_name_char(char c) { return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-'; }

std::string printable(char c) {
  if (absl::ascii_isprint(c)) return std::string(1, c);
  constexpr char kHex[] = "0123456789abcdef";
  const auto byte = static_cast<unsigned char>(c);
  return cat("\\x", kHex[byte >> 4], kHex[byte & 15]);
}

Result<void> validate_name(std::string_view name) {
  if (name.size() > kMaxNameLength) {
    return fail(ErrorCode::kInvalidArgument,
                cat("schedule name '", name.substr(0, kMaxNameLength), "...' is ", name.size(),
                    " characters long; the limit is ", kMaxNameLength));
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!is_name_char(name[i])) {
      return fail(ErrorCode::kInvalidArgument,
                  cat("schedule name '", name, "': character '", printable(name[i]),
                      "' at position ", i + 1, " is not one of [A-Za-z0-9._-]"));
    }
  }
  return {};
}

// EventBridge's "time": RFC 3339, UTC, whole seconds.
std::string rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

std::int64_t nanos_between(absl::Time from, absl::Time to) { return to_nanos(to - from); }

// One schedule. The fields up to anchor_wall are fixed by add(); the rest are guarded by
// Table::mu.
struct Schedule {
  explicit Schedule(ScheduleExpression e) : expression(std::move(e)) {}

  ScheduleExpression expression;
  std::string name;
  std::string function;  // as the caller named it
  FunctionHandle fn;
  std::string timezone;
  absl::TimeZone zone;
  Json detail;
  MissedRuns missed = MissedRuns::kRunOnce;
  int max_catch_up = 1;
  bool allow_overlap = false;
  ClientContext client_context;  // EventOptions holds a pointer: the schedule keeps the copy
  EventOptions event;            // client_context points at the copy above (or is null)
  std::string source;            // "schedule:<name>"
  // rate(): fire k is anchor + k * period on both scales; the wall anchor is taken once, so
  // the fire times are exact rather than re-derived from a drifting offset.
  std::int64_t anchor_ns = 0;
  absl::Time anchor_wall;

  absl::Time next_wall = absl::InfiniteFuture();
  std::int64_t next_ns = kNever;
  EventTimers::Id timer = 0;          // at next_ns
  EventTimers::Id release_timer = 0;  // fires the backlog's head (armed when nothing runs)
  // Catch-up fire times (oldest first) waiting for the previous fire's event to end.
  std::deque<absl::Time> backlog;
  int running = 0;  // fired events not yet ended
  bool cancelled = false;
  std::optional<absl::Time> last_fire;
  std::uint64_t fired = 0;
  std::uint64_t skipped_missed = 0;
  std::uint64_t skipped_overlap = 0;
  std::uint64_t enqueue_failures = 0;

  [[nodiscard]] bool busy() const { return running > 0 || !backlog.empty(); }

  // The pair of readings that converts between the scales: for rate() the anchor; for cron()
  // the wall time read now.
  struct Frame {
    std::int64_t ns;
    absl::Time wall;
    [[nodiscard]] absl::Time wall_of(std::int64_t t) const {
      return wall + absl::Nanoseconds(t - ns);
    }
    [[nodiscard]] std::int64_t ns_of(absl::Time t) const {
      return add_saturating(ns, nanos_between(wall, t));
    }
  };
  [[nodiscard]] Frame frame(std::int64_t now_ns, TimeSource& time) const {
    if (expression.is_rate()) return {anchor_ns, anchor_wall};
    return {now_ns, time.to_time(now_ns)};
  }
  // The first fire time after `wall` (InfiniteFuture if none).
  [[nodiscard]] absl::Time next_after(absl::Time wall) const {
    return expression.next_after(wall, anchor_wall, zone).value_or(absl::InfiniteFuture());
  }

  [[nodiscard]] ScheduleInfo info() const {
    return {.name = name,
            .function = function,
            .expression = expression.text(),
            .timezone = timezone,
            .next_fire = cancelled ? absl::InfiniteFuture() : next_wall,
            .last_fire = last_fire,
            .fired = fired,
            .skipped_missed = skipped_missed,
            .skipped_overlap = skipped_overlap,
            .enqueue_failures = enqueue_failures};
  }
};

// Stable per fire, so a handler can de-duplicate by it: the same name and scheduled time give
// the same id, across retries and across a re-created schedule.
std::string event_id(const Schedule& s, std::string_view time) { return cat(s.name, ":", time); }

// EventBridge's "Scheduled Event".
std::string event_json(const Schedule& s, std::string_view id, std::string_view time) {
  const Json event = {{"version", "0"},
                      {"id", id},
                      {"detail-type", "Scheduled Event"},
                      {"source", "ember.schedule"},
                      {"account", ""},
                      {"time", time},
                      {"region", ""},
                      {"resources", Json::array({s.name})},
                      {"detail", s.detail}};
  return event.dump();
}

// The fire times that have passed, as one timer callback sees them.
struct Due {
  std::int64_t count = 0;                    // how many (those past kMaxCounted are not counted)
  std::deque<absl::Time> last;               // the latest of them, at most `keep`, oldest first
  absl::Time next = absl::InfiniteFuture();  // the first one still to come
};

Due collect_due(const Schedule& s, absl::Time wall_now, std::size_t keep) {
  Due due;
  if (s.next_wall > wall_now) {
    due.next = s.next_wall;
    return due;
  }
  if (s.expression.is_rate()) {
    // Evenly spaced: count them, no need to walk them.
    const absl::Duration period = s.expression.period();
    absl::Duration rest;
    due.count = absl::IDivDuration(wall_now - s.next_wall, period, &rest) + 1;
    const absl::Time latest = s.next_wall + (due.count - 1) * period;
    const auto kept = static_cast<std::int64_t>(std::min<std::uint64_t>(keep, due.count));
    for (std::int64_t i = kept - 1; i >= 0; --i) due.last.push_back(latest - i * period);
    due.next = latest + period;
    return due;
  }
  absl::Time t = s.next_wall;
  while (t <= wall_now && due.count < kMaxCounted) {
    ++due.count;
    due.last.push_back(t);
    if (due.last.size() > keep) due.last.pop_front();
    t = s.next_after(t);
  }
  due.next = t <= wall_now ? s.next_after(wall_now) : t;
  return due;
}

// What the timer and end-of-event callbacks share with the table. Held by a shared_ptr: the
// dispatcher may call (or drop) an on_end after the table is gone, and then finds nothing.
struct Table : std::enable_shared_from_this<Table> {
  Table(EngineCore& c, EventDispatcher& e, EventTimers& t) : core(c), events(e), timers(t) {}

  EngineCore& core;
  EventDispatcher& events;
  EventTimers& timers;

  mutable std::mutex mu;
  // std::map rather than absl::btree_map: Debian's Abseil cannot look one up by
  // std::string_view (see str_cat.hpp).
  std::map<std::string, std::shared_ptr<Schedule>, std::less<>> by_name;  // guarded by mu
  std::uint64_t generated = 0;                                            // guarded by mu
  bool stopped = false;                                                   // guarded by mu
  // The schedule whose events the timer thread is enqueueing (outside mu), so that cancel() and
  // stop() can wait for it: once they return, the schedule enqueues nothing more.
  const Schedule* firing = nullptr;  // guarded by mu
  std::condition_variable fired_cv;

  void arm(const std::shared_ptr<Schedule>& s);          // mu held
  void arm_release(const std::shared_ptr<Schedule>& s);  // mu held
  void on_timer(const std::shared_ptr<Schedule>& s);
  void on_release(const std::shared_ptr<Schedule>& s);
  void fire(const std::shared_ptr<Schedule>& s, absl::Time scheduled, std::int64_t scheduled_ns);
  void fire_ended(const std::shared_ptr<Schedule>& s);
  void finish_firing();
  void wait_not_firing(std::unique_lock<std::mutex>& lock, const Schedule* s);
};

// Ends a fire exactly once: when the dispatcher calls on_end, or when it drops the callback
// uncalled (a refused enqueue, a shutdown), so that a lost callback cannot hold the overlap rule
// shut for ever.
class FireEnd {
 public:
  FireEnd(std::weak_ptr<Table> table, std::shared_ptr<Schedule> s)
      : table_(std::move(table)), schedule_(std::move(s)) {}
  FireEnd(FireEnd&& other) noexcept
      : table_(std::move(other.table_)), schedule_(std::move(other.schedule_)) {}
  FireEnd(const FireEnd&) = delete;
  FireEnd& operator=(const FireEnd&) = delete;
  FireEnd& operator=(FireEnd&&) = delete;
  ~FireEnd() { end(); }

  void end() {
    if (schedule_ == nullptr) return;
    const std::shared_ptr<Schedule> s = std::move(schedule_);
    schedule_ = nullptr;
    if (const std::shared_ptr<Table> table = table_.lock()) table->fire_ended(s);
  }

 private:
  std::weak_ptr<Table> table_;
  std::shared_ptr<Schedule> schedule_;
};

void Table::arm(const std::shared_ptr<Schedule>& s) {
  if (s->next_ns == kNever) return;
  s->timer = timers.at(s->next_ns, [weak = weak_from_this(), s] {
    if (const std::shared_ptr<Table> table = weak.lock()) table->on_timer(s);
  });
}

void Table::arm_release(const std::shared_ptr<Schedule>& s) {
  if (s->release_timer != 0) return;
  // Through the timer thread rather than from on_end's caller: the dispatcher's thread and
  // locks there are not ours to enqueue from.
  s->release_timer = timers.at(core.time().now(), [weak = weak_from_this(), s] {
    if (const std::shared_ptr<Table> table = weak.lock()) table->on_release(s);
  });
}

void Table::on_timer(const std::shared_ptr<Schedule>& s) {
  std::deque<absl::Time> fires;
  Schedule::Frame frame{};
  {
    std::lock_guard<std::mutex> lock(mu);
    s->timer = 0;
    if (s->cancelled || stopped) return;
    const std::int64_t now_ns = core.time().now();
    frame = s->frame(now_ns, core.time());
    const absl::Time wall_now = frame.wall_of(now_ns);
    const std::size_t keep =
        s->missed == MissedRuns::kRunAll ? static_cast<std::size_t>(s->max_catch_up) : 1;
    Due due = collect_due(*s, wall_now, keep);
    if (due.count == 1) {
      // Late by less than one period (the timer thread was busy, the clock stepped a little):
      // an on-time fire, whatever the policy.
      fires = std::move(due.last);
    } else if (due.count > 1) {
      // Several fire times passed: the clock jumped or the events thread was held up.
      if (s->missed == MissedRuns::kSkip) due.last.clear();
      if (s->missed == MissedRuns::kRunOnce) due.last.erase(due.last.begin(), due.last.end() - 1);
      s->skipped_missed += static_cast<std::uint64_t>(due.count) - due.last.size();
      fires = std::move(due.last);
    }
    if (!fires.empty() && !s->allow_overlap) {
      if (s->busy()) {
        s->skipped_overlap += fires.size();
        fires.clear();
      } else {
        // One at a time: each of the rest goes when the one before has ended (fire_ended).
        s->backlog.assign(fires.begin() + 1, fires.end());
        fires.resize(1);
      }
    }
    s->next_wall = due.next;
    s->next_ns = due.next == absl::InfiniteFuture() ? kNever : frame.ns_of(due.next);
    arm(s);
    if (fires.empty()) return;
    firing = s.get();
  }
  for (const absl::Time t : fires) fire(s, t, frame.ns_of(t));
  finish_firing();
}

void Table::on_release(const std::shared_ptr<Schedule>& s) {
  absl::Time t;
  {
    std::lock_guard<std::mutex> lock(mu);
    s->release_timer = 0;
    if (s->cancelled || stopped || s->running > 0 || s->backlog.empty()) return;
    t = s->backlog.front();
    s->backlog.pop_front();
    firing = s.get();
  }
  const std::int64_t now_ns = core.time().now();
  fire(s, t, s->frame(now_ns, core.time()).ns_of(t));
  finish_firing();
}

void Table::finish_firing() {
  std::lock_guard<std::mutex> lock(mu);
  firing = nullptr;
  fired_cv.notify_all();
}

void Table::wait_not_firing(std::unique_lock<std::mutex>& lock, const Schedule* s) {
  // On the timer thread (a destination callback cancelling, say) the fire in progress is our
  // own caller's: waiting would wait for ourselves.
  if (timers.on_timer_thread()) return;
  fired_cv.wait(lock, [&] { return firing == nullptr || (s != nullptr && firing != s); });
}

void Table::fire(const std::shared_ptr<Schedule>& s, absl::Time scheduled,
                 std::int64_t scheduled_ns) {
  {
    std::lock_guard<std::mutex> lock(mu);
    if (s->cancelled || stopped) return;
    ++s->running;  // before enqueue: the event may end before enqueue returns
  }
  const std::string time = rfc3339(scheduled);
  const std::string id = event_id(*s, time);
  EventOptions options = s->event;
  options.event_id = id;
  EnqueueExtras extras{
      .source = s->source,
      // 0 means "now" to the dispatcher; a schedule at engine time 0 is 1 ns late.
      .enqueued_ns = scheduled_ns == 0 ? 1 : scheduled_ns,
      .on_end = [end = FireEnd(weak_from_this(), s)](EventCondition) mutable { end.end(); }};
  Result<std::string> enqueued =
      events.enqueue(s->fn, s->function, event_json(*s, id, time), options, std::move(extras));
  {
    std::lock_guard<std::mutex> lock(mu);
    if (enqueued) {
      ++s->fired;
      s->last_fire = std::max(s->last_fire.value_or(absl::InfinitePast()), scheduled);
    } else {
      ++s->enqueue_failures;
    }
  }
  if (!enqueued) {
    core.log(LogLevel::kError, s->function, id,
             cat("schedule '", s->name, "': the fire of ", time,
                 " was lost: enqueue refused: ", enqueued.error().message));
  }
}

void Table::fire_ended(const std::shared_ptr<Schedule>& s) {
  std::lock_guard<std::mutex> lock(mu);
  --s->running;
  if (s->running > 0 || s->backlog.empty() || s->cancelled || stopped) return;
  arm_release(s);
}

}  // namespace

struct ScheduleTable::State {
  std::shared_ptr<Table> table;
};

ScheduleTable::ScheduleTable(EngineCore& core, EventDispatcher& events, EventTimers& timers)
    : state_(std::make_unique<State>()) {
  state_->table = std::make_shared<Table>(core, events, timers);
}

ScheduleTable::~ScheduleTable() { stop(); }

Result<ScheduleInfo> ScheduleTable::add(std::string_view function, std::string_view expression,
                                        std::string_view payload, const ScheduleOptions& options) {
  Table& table = *state_->table;
  const std::string who = options.name.empty()
                              ? cat("schedule of '", function, "'")
                              : cat("schedule '", options.name, "' of '", function, "'");
  {
    std::lock_guard<std::mutex> lock(table.mu);
    if (table.stopped) {
      return fail(ErrorCode::kShuttingDown, cat(who, ": the engine is shutting down"));
    }
  }
  if (!options.name.empty()) {
    if (auto ok = validate_name(options.name); !ok) return tl::unexpected(std::move(ok.error()));
  }
  auto fn = table.core.find(function);
  if (!fn) return fail(fn.error().code, cat(who, ": ", fn.error().message));
  auto parsed = ScheduleExpression::parse(expression);
  if (!parsed) return fail(parsed.error().code, cat(who, ": ", parsed.error().message));

  auto s = std::make_shared<Schedule>(*std::move(parsed));
  s->function = std::string(function);
  s->fn = *fn;
  s->timezone = options.timezone;
  if (!absl::LoadTimeZone(options.timezone, &s->zone)) {
    return fail(ErrorCode::kNotFound,
                cat(who, ": unknown time zone '", options.timezone, "' (an IANA name, e.g. UTC)"));
  }
  if (options.max_catch_up < 1 || options.max_catch_up > kMaxCatchUp) {
    return fail(ErrorCode::kInvalidArgument,
                cat(who, ": max_catch_up ", options.max_catch_up, " is outside 1..", kMaxCatchUp));
  }
  if (options.missed != MissedRuns::kRunOnce && options.missed != MissedRuns::kSkip &&
      options.missed != MissedRuns::kRunAll) {
    return fail(ErrorCode::kInvalidArgument, cat(who, ": missed is not a MissedRuns value (",
                                                 static_cast<int>(options.missed), ")"));
  }
  if (options.event.max_retries &&
      (*options.event.max_retries < 0 || *options.event.max_retries > kMaxRetries)) {
    return fail(ErrorCode::kInvalidArgument,
                cat(who, ": event.max_retries ", *options.event.max_retries, " is outside 0..",
                    kMaxRetries));
  }
  if (options.event.max_event_age && *options.event.max_event_age < absl::Seconds(1)) {
    return fail(ErrorCode::kInvalidArgument,
                cat(who, ": event.max_event_age ",
                    absl::FormatDuration(*options.event.max_event_age), " is under 1s"));
  }
  // nlohmann's parser reports where it stopped; exceptions end here.
  try {
    s->detail = payload.empty() ? Json::object() : Json::parse(payload);
  } catch (const Json::parse_error& e) {
    std::string_view what = e.what();
    if (const std::size_t tag = what.find("] "); tag != std::string_view::npos) {
      what.remove_prefix(tag + 2);  // "[json.exception.parse_error.101] "
    }
    return fail(ErrorCode::kInvalidArgument, cat(who, ": the payload is not JSON: ", what));
  }
  s->missed = options.missed;
  s->max_catch_up = options.max_catch_up;
  s->allow_overlap = options.allow_overlap;
  s->event = options.event;
  s->event.event_id.clear();
  if (options.event.client_context != nullptr) {
    s->client_context = *options.event.client_context;
    s->event.client_context = &s->client_context;
  }

  std::lock_guard<std::mutex> lock(table.mu);
  if (table.stopped) {
    return fail(ErrorCode::kShuttingDown, cat(who, ": the engine is shutting down"));
  }
  std::uint64_t generated = table.generated;  // kept only if the schedule is added
  if (options.name.empty()) {
    // "<function>-<n>": says whose it is; the qualifier's ':' is not a name character.
    const std::string base = std::string(fn->name().substr(0, kMaxNameLength - 21));
    do {
      s->name = cat(base, "-", ++generated);
    } while (table.by_name.contains(s->name));
  } else if (table.by_name.contains(options.name)) {
    return fail(ErrorCode::kAlreadyExists, cat(who, ": a schedule of that name exists"));
  } else {
    s->name = options.name;
  }
  s->source = cat("schedule:", s->name);
  {
    // Every fire's payload has this size (the id and time have a fixed width): one too large
    // for an event is refused now rather than at every fire.
    const std::string time = rfc3339(absl::UnixEpoch());
    const std::size_t size = event_json(*s, event_id(*s, time), time).size();
    if (size > table.core.options().max_async_payload) {
      return fail(ErrorCode::kInvalidArgument,
                  cat(who, ": the scheduled event with this payload is ", size,
                      " bytes; the limit (EngineOptions::max_async_payload) is ",
                      table.core.options().max_async_payload));
    }
  }
  // The first fire: for rate(), one period after now (EventBridge's rule); for cron(), the
  // first match after now.
  const std::int64_t now_ns = table.core.time().now();
  s->anchor_ns = now_ns;
  s->anchor_wall = table.core.time().to_time(now_ns);
  const Schedule::Frame frame = s->frame(now_ns, table.core.time());
  s->next_wall = s->next_after(frame.wall_of(now_ns));
  s->next_ns = s->next_wall == absl::InfiniteFuture() ? kNever : frame.ns_of(s->next_wall);
  table.generated = generated;
  table.by_name.emplace(s->name, s);
  table.arm(s);
  return s->info();
}

Result<void> ScheduleTable::cancel(std::string_view name) {
  Table& table = *state_->table;
  std::unique_lock<std::mutex> lock(table.mu);
  const auto it = table.by_name.find(name);
  if (it == table.by_name.end()) {
    return fail(ErrorCode::kNotFound, cat("schedule '", name, "' not found"));
  }
  const std::shared_ptr<Schedule> s = std::move(it->second);
  table.by_name.erase(it);
  s->cancelled = true;
  s->backlog.clear();
  table.timers.cancel(s->timer);
  table.timers.cancel(s->release_timer);
  s->timer = s->release_timer = 0;
  table.wait_not_firing(lock, s.get());
  return {};
}

std::vector<ScheduleInfo> ScheduleTable::list() const {
  const Table& table = *state_->table;
  std::lock_guard<std::mutex> lock(table.mu);
  std::vector<ScheduleInfo> out;
  out.reserve(table.by_name.size());
  for (const auto& [name, s] : table.by_name) out.push_back(s->info());
  return out;
}

void ScheduleTable::stop() {
  Table& table = *state_->table;
  std::unique_lock<std::mutex> lock(table.mu);
  if (!table.stopped) {
    table.stopped = true;
    // The schedules stay listed (their counts are the final word), with nothing to come.
    for (auto& [name, s] : table.by_name) {
      table.timers.cancel(s->timer);
      table.timers.cancel(s->release_timer);
      s->timer = s->release_timer = 0;
      s->backlog.clear();
      s->next_wall = absl::InfiniteFuture();
      s->next_ns = kNever;
    }
  }
  table.wait_not_firing(lock, nullptr);
}

}  // namespace ember::detail
