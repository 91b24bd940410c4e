// schedule_expression.hpp — Amazon EventBridge schedule expressions: `rate(...)` and
// `cron(...)`, parsed once and asked for their next fire time.
//
// Internal to the events module (DESIGN.md §2): the parser and the next-fire-time computation
// that `Engine::schedule` will use. Nothing here reads a clock; the caller passes every time.
//
//   auto every = ScheduleExpression::parse("rate(5 minutes)").value();
//   every.next_after(now, created_at, absl::UTCTimeZone());   // created_at + k * 5 min
//   auto weekdays = ScheduleExpression::parse("cron(0 18 ? * MON-FRI *)").value();
//   weekdays.next_after(now, created_at, absl::UTCTimeZone()); // next weekday 18:00 UTC
//
// The grammar, as EventBridge documents it, with ember's decisions where the documentation is
// silent (each one has a test):
//
//   rate(N unit)  N: decimal digits, 1..999999999, no sign, no leading zero. unit: minute,
//                 hour, day, and second (an ember extension; EventBridge's minimum is one
//                 minute). Singular exactly when N is 1 (EventBridge's rule). Exactly one
//                 space between N and unit, none elsewhere.
//   cron(Minutes Hours Day-of-month Month Day-of-week Year)
//                 six fields separated by one or more spaces (no leading or trailing space);
//                 the only whitespace accepted is ' '.
//     Minutes 0-59, Hours 0-23: , - * /      Month 1-12 or JAN-DEC: , - * /
//     Day-of-month 1-31: , - * ? / L W       Day-of-week 1-7 or SUN-SAT (1 = Sunday): , - * ? L #
//     Year 1970-2199: , - * /
//   - Names (JAN, mon) and the letters L and W are case-insensitive, as in Quartz, whose
//     syntax EventBridge's is; the words `rate` and `cron` and the rate units are lower case.
//   - Values may have leading zeros ("05"). `a/s` is a, a+s, ... up to the field's maximum;
//     `*/s` starts at the minimum; `a-b/s` steps within the range. A step is 1..(max - min).
//   - A range whose start is above its end wraps around in every field but Year: `FRI-MON` is
//     Fri, Sat, Sun, Mon; `22-2` in Hours is 22, 23, 0, 1, 2. A backwards year range is refused.
//   - Exactly one of Day-of-month and Day-of-week is `?`, and `?` is then the whole field.
//   - Day-of-month `L` (last day), `LW` (last weekday, Mon-Fri), `nW` (the weekday nearest
//     day n, never leaving the month: `1W` on a Saturday is Monday the 3rd, `31W` on a Sunday
//     is Friday the 29th; a month without day n has no fire). Day-of-week `L` alone (Saturday,
//     the last day of the week), `dL` (the month's last day d: `5L` is the last Thursday),
//     `d#n` (the n-th weekday d, n = 1..5; a month without a fifth one has no fire). Each of
//     these is the whole field (no lists or ranges around it), as in Quartz. Quartz's `L-3`
//     and a `/` in Day-of-week are refused: EventBridge does not document them.
//
// Errors are kInvalidArgument, shaped `schedule "<text>": position P, token "T": <what>`, P
// being the 1-based character position of the offending token (or `position P, end of text`).
#pragma once

#include <absl/time/civil_time.h>
#include <absl/time/time.h>

#include <bitset>
#include <optional>
#include <string>
#include <string_view>

#include "ember/result.hpp"

namespace ember::detail {

// One parsed schedule expression. A value type: copyable, immutable, thread-safe to share.
class ScheduleExpression final {
 public:
  static constexpr int kFirstYear = 1970;  // EventBridge's Year field bounds
  static constexpr int kLastYear = 2199;

  // Parses `text` (the grammar above). Errors: kInvalidArgument naming the position, token and
  // what was expected.
  [[nodiscard]] static Result<ScheduleExpression> parse(std::string_view text);

  // The first fire time strictly after `after`, or nullopt if there is none.
  //  - rate: anchor + k * period() for the least k >= 1 that is after `after` (`anchor` is when
  //    the schedule was created; its first fire is one period later). `zone` is unused.
  //  - cron: whole minutes matching every field, read as civil time in `zone` (EventBridge's
  //    default is UTC). `anchor` is unused. Daylight-saving time: a civil time skipped by a
  //    spring-forward gap fires at the first instant after the gap (02:30 -> 03:00 new time),
  //    once however many skipped minutes match; a civil time repeated by a fall-back overlap
  //    fires once, at its first occurrence. nullopt when no matching time is left before the
  //    end of 2199 (a past year range, Feb 30, ...).
  // Cost: the search jumps to the next matching year, month, day, hour and minute, so it takes
  // a few steps per month it passes over, never one per minute. `steps`, when given, receives
  // the number of candidate times examined (tests and benchmarks hold the search to that).
  [[nodiscard]] std::optional<absl::Time> next_after(absl::Time after, absl::Time anchor,
                                                     absl::TimeZone zone,
                                                     int* steps = nullptr) const;

  // The expression as it was given to parse().
  [[nodiscard]] const std::string& text() const noexcept { return text_; }
  [[nodiscard]] bool is_rate() const noexcept { return is_rate_; }
  // The rate's period (N units); absl::ZeroDuration() for a cron expression.
  [[nodiscard]] absl::Duration period() const noexcept { return period_; }

 private:
  // Which of the two day fields decides, and how.
  enum class DayRule : unsigned char {
    kMonthDays,       // Day-of-month values: days_of_month_
    kLastDay,         // Day-of-month L
    kNearestWeekday,  // Day-of-month nW: day_value_ = n
    kLastWeekday,     // Day-of-month LW
    kWeekDays,        // Day-of-week values: days_of_week_
    kLastDayOfWeek,   // Day-of-week dL: day_value_ = d
    kNthDayOfWeek,    // Day-of-week d#n: day_value_ = d, nth_ = n
  };
  // A set of field values, bit (value - field minimum); 230 bits hold the widest, Year.
  using ValueSet = std::bitset<kLastYear - kFirstYear + 1>;

  friend class ScheduleParser;  // the parser fills in the fields below

  ScheduleExpression() = default;

  [[nodiscard]] std::optional<absl::Time> next_cron_after(absl::Time after, absl::TimeZone zone,
                                                          int& steps) const;
  // The first civil minute at or after `from` that matches every field.
  [[nodiscard]] std::optional<absl::CivilMinute> next_match(absl::CivilMinute from,
                                                            int& steps) const;
  // The first day at or after `from_day` of the given month that the day rule accepts.
  [[nodiscard]] std::optional<int> first_day_from(absl::CivilMonth month, int from_day) const;

  std::string text_;
  bool is_rate_ = false;
  absl::Duration period_;
  ValueSet minutes_, hours_, days_of_month_, months_, days_of_week_, years_;
  DayRule day_rule_ = DayRule::kMonthDays;
  int day_value_ = 0;
  int nth_ = 0;
};

}  // namespace ember::detail
