// schedule_expression.cpp — the rate/cron parser and the next-fire-time search.
#include "events/schedule_expression.hpp"

#include <absl/strings/ascii.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>

#include "core/str_cat.hpp"

namespace ember::detail {
namespace {

constexpr std::array<std::string_view, 12> kMonthNames = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<std::string_view, 7> kDayNames = {"SUN", "MON", "TUE", "WED",
                                                       "THU", "FRI", "SAT"};
constexpr int kSaturday = 7;  // EventBridge numbers the days 1 = Sunday .. 7 = Saturday
constexpr int kSunday = 1;

// One cron field: its bounds and which wildcards it takes.
struct Field {
  std::string_view name;  // as messages name it
  int min = 0;
  int max = 0;
  std::span<const std::string_view> names;  // names[i] is the value min + i
  bool wraps = true;                        // a range may run past max back to min (FRI-MON)
  bool steps = true;                        // "/" is accepted
  std::string_view expected;                // what one value looks like
  std::string_view specials;                // in a day field: how L, W and # must be written
};

constexpr Field kMinutes{.name = "minutes", .min = 0, .max = 59, .expected = "a number 0..59"};
constexpr Field kHours{.name = "hours", .min = 0, .max = 23, .expected = "a number 0..23"};
constexpr Field kDayOfMonth{.name = "day-of-month",
                            .min = 1,
                            .max = 31,
                            .expected = "a number 1..31",
                            .specials = R"("L", "LW" and "nW" must be the whole field)"};
constexpr Field kMonth{
    .name = "month", .min = 1, .max = 12, .names = kMonthNames, .expected = "1..12 or JAN..DEC"};
constexpr Field kDayOfWeek{.name = "day-of-week",
                           .min = 1,
                           .max = 7,
                           .names = kDayNames,
                           .steps = false,
                           .expected = "1..7 or SUN..SAT",
                           .specials = R"("L", "dL" and "d#n" must be the whole field)"};
// Years do not wrap: 2030-2025 is a mistake, not a range through 2199.
constexpr Field kYear{
    .name = "year", .min = 1970, .max = 2199, .wraps = false, .expected = "a number 1970..2199"};

constexpr std::string_view kSixFields =
    "expected 6 fields (minutes hours day-of-month month day-of-week year)";

bool equals_ignore_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return absl::ascii_tolower(x) == absl::ascii_tolower(y);
         });
}

bool is_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), absl::ascii_isdigit);
}

// Saturates far above every bound, so "99999999999" is reported as out of range, not wrapped.
int to_int(std::string_view digits) {
  std::int64_t value = 0;
  for (char c : digits) value = std::min<std::int64_t>(value * 10 + (c - '0'), 1'000'000'000);
  return static_cast<int>(value);
}

// The rate units: EventBridge's three, and seconds (ember's extension).
struct RateUnit {
  std::string_view singular;
  std::string_view plural;
  std::int64_t seconds;
};
constexpr std::array<RateUnit, 4> kRateUnits = {{{"second", "seconds", 1},
                                                 {"minute", "minutes", 60},
                                                 {"hour", "hours", 3600},
                                                 {"day", "days", 86400}}};
constexpr std::string_view kUnitList = "minute(s), hour(s), day(s) or second(s)";

}  // namespace

// Reads one expression left to right, remembering the text so that every error can point into
// it. A class (not free functions) because ScheduleExpression befriends it.
class ScheduleParser {
 public:
  explicit ScheduleParser(std::string_view text) : text_(text) {}

  Result<ScheduleExpression> parse() {
    std::size_t word = 0;
    while (word < text_.size() && absl::ascii_isalpha(text_[word])) ++word;
    const std::string_view function = text_.substr(0, word);
    if (function != "rate" && function != "cron") {
      if (function.empty()) return error_at(0, R"(expected "rate(" or "cron(")");  // "" too
      return error_at(
          0, function,
          cat("unknown schedule function \"", function, R"("; expected "rate(" or "cron(")"));
    }
    if (word == text_.size() || text_[word] != '(') {
      return error_at(word, cat(R"(expected "(" after ")", function, "\""));
    }
    const std::size_t close = text_.find(')', word + 1);
    if (close == std::string_view::npos) {
      return error_at(text_.size(), cat("expected \")\" to close \"", function, "(\""));
    }
    if (close + 1 < text_.size()) {
      return error_at(close + 1, text_.substr(close + 1), "unexpected text after \")\"");
    }
    ScheduleExpression out;
    auto parsed =
        function == "rate" ? parse_rate(word + 1, close, out) : parse_cron(word + 1, close, out);
    if (!parsed) return tl::unexpected(std::move(parsed.error()));
    out.text_ = std::string(text_);
    return out;
  }

 private:
  using ValueSet = ScheduleExpression::ValueSet;
  using DayRule = ScheduleExpression::DayRule;

  // `schedule "<text>": position P, token "T": what` (P 1-based).
  tl::unexpected<Error> error_at(std::size_t pos, std::string_view token,
                                 std::string_view what) const {
    // A pasted megabyte should not become a megabyte of log line.
    constexpr std::size_t kShown = 200;
    const std::string shown =
        text_.size() <= kShown ? std::string(text_) : cat(text_.substr(0, kShown), "...");
    const std::string where = pos >= text_.size() ? cat("position ", pos + 1, ", end of text")
                                                  : cat("position ", pos + 1, ", token \"",
                                                        token.substr(0, kShown), "\"");
    return fail(ErrorCode::kInvalidArgument, cat("schedule \"", shown, "\": ", where, ": ", what));
  }
  // The same, the token being the one character at `pos`.
  tl::unexpected<Error> error_at(std::size_t pos, std::string_view what) const {
    return error_at(pos, pos < text_.size() ? text_.substr(pos, 1) : std::string_view(), what);
  }

  std::size_t find_in(char c, std::size_t from, std::size_t end) const {
    const std::size_t at = text_.find(c, from);
    return at == std::string_view::npos || at > end ? end : at;
  }

  // rate(N unit), the body being text_[begin, end).
  Result<void> parse_rate(std::size_t begin, std::size_t end, ScheduleExpression& out) const {
    const std::size_t value_end = find_in(' ', begin, end);
    const std::string_view value = text_.substr(begin, value_end - begin);
    constexpr std::string_view kValueNeeded =
        "expected a positive whole number and a unit, e.g. \"rate(5 minutes)\"";
    if (value.empty()) return error_at(begin, kValueNeeded);
    if (!is_digits(value)) {
      return error_at(begin, value,
                      "the rate value must be a positive whole number (digits only, no sign)");
    }
    if (value.size() > 1 && value[0] == '0') {
      return error_at(begin, value, "the rate value must not have leading zeros");
    }
    if (value.size() > 9) return error_at(begin, value, "the rate value must be at most 999999999");
    const int n = to_int(value);
    if (n == 0) return error_at(begin, value, "the rate value must be at least 1");
    if (value_end == end) {
      return error_at(end, cat("expected a space and a unit (", kUnitList, ")"));
    }
    const std::size_t unit_begin = value_end + 1;
    if (unit_begin < end && text_[unit_begin] == ' ') {
      return error_at(unit_begin, "expected exactly one space between the value and the unit");
    }
    const std::size_t unit_end = find_in(' ', unit_begin, end);
    if (unit_end != end) {
      return error_at(unit_end, text_.substr(unit_end, end - unit_end),
                      "unexpected text after the unit; expected \")\"");
    }
    const std::string_view unit = text_.substr(unit_begin, end - unit_begin);
    if (unit.empty()) return error_at(unit_begin, cat("expected a unit (", kUnitList, ")"));
    for (const RateUnit& u : kRateUnits) {
      if (unit != u.singular && unit != u.plural) continue;
      // EventBridge's rule, kept so that an expression means the same in both places.
      if (n == 1 && unit == u.plural) {
        return error_at(
            unit_begin, unit,
            cat("the unit must be singular when the value is 1: expected \"", u.singular, "\""));
      }
      if (n != 1 && unit == u.singular) {
        return error_at(
            unit_begin, unit,
            cat("the unit must be plural when the value is not 1: expected \"", u.plural, "\""));
      }
      out.is_rate_ = true;
      out.period_ = absl::Seconds(std::int64_t{n} * u.seconds);
      return {};
    }
    return error_at(unit_begin, unit, cat("expected a unit: ", kUnitList));
  }

  // cron(six fields), the body being text_[begin, end).
  Result<void> parse_cron(std::size_t begin, std::size_t end, ScheduleExpression& out) const {
    if (begin == end) return error_at(end, kSixFields);
    if (text_[begin] == ' ') return error_at(begin, "unexpected space before the first field");
    for (std::size_t pos = begin; pos < end; ++pos) {
      if (text_[pos] != ' ' && absl::ascii_isspace(text_[pos])) {
        return error_at(pos, "fields are separated by spaces; other whitespace is not accepted");
      }
    }
    struct Span {
      std::size_t begin, end;
    };
    std::array<Span, 7> fields{};  // a seventh only to point at it
    std::size_t count = 0;
    for (std::size_t pos = begin; pos < end;) {
      const std::size_t field_end = find_in(' ', pos, end);
      if (count < fields.size()) fields[count] = {pos, field_end};
      ++count;
      pos = field_end;
      while (pos < end && text_[pos] == ' ') ++pos;
      if (pos == end && field_end != end) {
        return error_at(field_end, "unexpected space after the last field");
      }
    }
    const auto text_of = [&](Span s) { return text_.substr(s.begin, s.end - s.begin); };
    if (count != 6) {
      const std::string what = cat(kSixFields, ", found ", count);
      return count < 6 ? error_at(end, what) : error_at(fields[6].begin, text_of(fields[6]), what);
    }
    const bool any_day_of_month = text_of(fields[2]) == "?";
    const bool any_day_of_week = text_of(fields[4]) == "?";

    if (auto r = parse_list(fields[0].begin, fields[0].end, kMinutes, out.minutes_); !r) return r;
    if (auto r = parse_list(fields[1].begin, fields[1].end, kHours, out.hours_); !r) return r;
    if (!any_day_of_month) {
      if (auto r = parse_day_of_month(fields[2].begin, fields[2].end, out); !r) return r;
    }
    if (auto r = parse_list(fields[3].begin, fields[3].end, kMonth, out.months_); !r) return r;
    if (!any_day_of_week) {
      if (auto r = parse_day_of_week(fields[4].begin, fields[4].end, out); !r) return r;
    }
    if (auto r = parse_list(fields[5].begin, fields[5].end, kYear, out.years_); !r) return r;

    if (any_day_of_month == any_day_of_week) {
      return error_at(fields[4].begin, text_of(fields[4]),
                      any_day_of_month
                          ? R"(day-of-month and day-of-week cannot both be "?"; set one of them)"
                          : R"(day-of-month and day-of-week cannot both be set; one must be "?")");
    }
    return {};
  }

  // Day-of-month: L, LW, nW, or a list of values.
  Result<void> parse_day_of_month(std::size_t begin, std::size_t end,
                                  ScheduleExpression& out) const {
    const std::string_view field = text_.substr(begin, end - begin);
    if (equals_ignore_case(field, "L") || equals_ignore_case(field, "LW")) {
      out.day_rule_ = field.size() == 1 ? DayRule::kLastDay : DayRule::kLastWeekday;
      return {};
    }
    if (field.size() >= 2 && absl::ascii_toupper(field.back()) == 'W' &&
        is_digits(field.substr(0, field.size() - 1))) {
      std::size_t pos = begin;
      auto day = parse_value(pos, end - 1, kDayOfMonth);
      if (!day) return tl::unexpected(std::move(day.error()));
      out.day_rule_ = DayRule::kNearestWeekday;
      out.day_value_ = *day;
      return {};
    }
    out.day_rule_ = DayRule::kMonthDays;
    return parse_list(begin, end, kDayOfMonth, out.days_of_month_);
  }

  // Day-of-week: L, dL, d#n, or a list of values.
  Result<void> parse_day_of_week(std::size_t begin, std::size_t end,
                                 ScheduleExpression& out) const {
    const std::string_view field = text_.substr(begin, end - begin);
    if (equals_ignore_case(field, "L")) {  // Quartz: L alone is the week's last day
      out.day_rule_ = DayRule::kWeekDays;
      out.days_of_week_.set(kSaturday - kDayOfWeek.min);
      return {};
    }
    const std::size_t hash = find_in('#', begin, end);
    const bool last = hash == end && field.size() >= 2 && absl::ascii_toupper(field.back()) == 'L';
    if (hash == end && !last) {
      out.day_rule_ = DayRule::kWeekDays;
      return parse_list(begin, end, kDayOfWeek, out.days_of_week_);
    }
    const std::size_t day_end = last ? end - 1 : hash;
    std::size_t pos = begin;
    auto day = parse_value(pos, day_end, kDayOfWeek);
    if (!day) return tl::unexpected(std::move(day.error()));
    if (pos != day_end) {
      return error_at(pos, cat("day-of-week: \"", last ? "L" : "#", "\" must follow a single day; ",
                               kDayOfWeek.specials));
    }
    out.day_value_ = *day;
    if (last) {
      out.day_rule_ = DayRule::kLastDayOfWeek;
      return {};
    }
    pos = hash + 1;
    const std::string_view nth = text_.substr(pos, end - pos);
    if (!is_digits(nth)) {
      constexpr std::string_view kWeekNeeded =
          R"(day-of-week: expected the week of the month, 1..5, after "#")";
      return nth.empty() ? error_at(pos, kWeekNeeded) : error_at(pos, nth, kWeekNeeded);
    }
    if (const int n = to_int(nth); n < 1 || n > 5) {
      return error_at(
          pos, nth,
          cat("day-of-week: ", nth, R"( is outside 1..5 (the week of the month after "#"))"));
    }
    out.day_rule_ = DayRule::kNthDayOfWeek;
    out.nth_ = to_int(nth);
    return {};
  }

  // item{,item}, the field being text_[begin, end).
  Result<void> parse_list(std::size_t begin, std::size_t end, const Field& field,
                          ValueSet& set) const {
    for (std::size_t pos = begin;;) {
      const std::size_t item_end = find_in(',', pos, end);
      if (item_end == pos) return error_at(pos, cat(field.name, ": expected ", field.expected));
      if (auto r = parse_item(pos, item_end, field, set); !r) return r;
      if (item_end == end) return {};
      pos = item_end + 1;
    }
  }

  // * | a | a-b, then optionally /step.
  Result<void> parse_item(std::size_t pos, std::size_t end, const Field& field,
                          ValueSet& set) const {
    const std::size_t start = pos;
    int low = field.min;
    int high = field.max;
    bool single = false;
    if (text_[pos] == '*') {
      ++pos;
    } else {
      auto a = parse_value(pos, end, field);
      if (!a) return tl::unexpected(std::move(a.error()));
      low = high = *a;
      single = true;
      if (pos < end && text_[pos] == '-') {
        ++pos;
        auto b = parse_value(pos, end, field);
        if (!b) return tl::unexpected(std::move(b.error()));
        high = *b;
        single = false;
        if (high < low && !field.wraps) {
          const std::string_view range = text_.substr(start, pos - start);
          return error_at(start, range, cat(field.name, ": range ", range, " runs backwards"));
        }
      }
    }
    int step = 1;
    if (pos < end && text_[pos] == '/') {
      if (!field.steps) {
        return error_at(pos, cat(field.name, R"(: "/" is not allowed in this field)"));
      }
      const std::size_t step_begin = ++pos;
      while (pos < end && absl::ascii_isdigit(text_[pos])) ++pos;
      const std::string_view digits = text_.substr(step_begin, pos - step_begin);
      if (digits.empty()) {
        return error_at(step_begin, cat(field.name, R"(: expected a step after "/")"));
      }
      step = to_int(digits);
      if (step < 1 || step > field.max - field.min) {
        return error_at(
            step_begin, digits,
            cat(field.name, ": step ", digits, " is outside 1..", field.max - field.min));
      }
      if (single) high = field.max;  // a/s runs from a to the field's end
    }
    if (pos < end) {
      if (!field.specials.empty() && text_[pos] == '#') {
        return error_at(pos, cat(field.name, ": ", field.specials));
      }
      return error_at(pos, cat(field.name, R"(: expected ",", "-", "/" or a space here)"));
    }
    // Counted along the field's cycle, so that a wrapping range (FRI-MON) needs no special case.
    const int span = field.max - field.min + 1;
    const int count = (high - low + span) % span + 1;
    for (int k = 0; k < count; k += step)
      set.set(static_cast<std::size_t>((low - field.min + k) % span));
    return {};
  }

  // One number or name at text_[pos, end); advances pos past it.
  Result<int> parse_value(std::size_t& pos, std::size_t end, const Field& field) const {
    std::size_t word_end = pos;
    while (word_end < end && absl::ascii_isalnum(text_[word_end])) ++word_end;
    if (word_end == pos) {
      if (pos < end && text_[pos] == '?') {
        return error_at(pos, field.specials.empty()
                                 ? R"("?" is allowed only in day-of-month and day-of-week)"
                                 : R"("?" must be the whole field)");
      }
      return error_at(pos, cat(field.name, ": expected ", field.expected));
    }
    const std::string_view word = text_.substr(pos, word_end - pos);
    int value = 0;
    if (is_digits(word)) {
      value = to_int(word);
      if (value < field.min || value > field.max) {
        return error_at(pos, word,
                        cat(field.name, ": ", word, " is outside ", field.min, "..", field.max));
      }
    } else {
      const auto named = std::find_if(field.names.begin(), field.names.end(),
                                      [&](auto name) { return equals_ignore_case(name, word); });
      if (named == field.names.end()) {
        const bool special = !field.specials.empty() && word.find_first_of("LlWw") != word.npos;
        return error_at(pos, word,
                        special ? cat(field.name, ": ", field.specials)
                                : cat(field.name, ": \"", word, "\" is not ", field.expected));
      }
      value = field.min + static_cast<int>(named - field.names.begin());
    }
    pos = word_end;
    return value;
  }

  std::string_view text_;
};

Result<ScheduleExpression> ScheduleExpression::parse(std::string_view text) {
  return ScheduleParser(text).parse();
}

namespace {

int days_in(absl::CivilMonth month) {
  return static_cast<int>((absl::CivilDay(month + 1) - 1).day());
}

// EventBridge's number of a day: 1 = Sunday .. 7 = Saturday. absl::Weekday runs monday (0) to
// sunday (6).
int weekday_number(absl::CivilDay day) {
  return (static_cast<int>(absl::GetWeekday(day)) + 1) % 7 + 1;
}

// The weekday (Mon-Fri) nearest day `n` of the month, never leaving the month (Quartz's rule):
// a Saturday moves back to Friday unless n is the 1st (then on to Monday the 3rd), a Sunday
// moves on to Monday unless n is the last day (then back to Friday).
int nearest_weekday(absl::CivilMonth month, int n, int last) {
  const int weekday = weekday_number(absl::CivilDay(month) + (n - 1));
  if (weekday == kSaturday) return n == 1 ? 3 : n - 1;
  if (weekday == kSunday) return n == last ? n - 2 : n + 1;
  return n;
}

// The first set bit at index from..last, or -1.
template <std::size_t N>
int next_set(const std::bitset<N>& set, int from, int last) {
  for (int i = from; i <= last; ++i) {
    if (set[static_cast<std::size_t>(i)]) return i;
  }
  return -1;
}

}  // namespace

std::optional<int> ScheduleExpression::first_day_from(absl::CivilMonth month, int from) const {
  const int last = days_in(month);
  const absl::CivilDay first = absl::CivilDay(month);
  int target = 0;
  switch (day_rule_) {
    case DayRule::kMonthDays:
      for (int day = from; day <= last; ++day) {
        if (days_of_month_[static_cast<std::size_t>(day - 1)]) return day;
      }
      return std::nullopt;
    case DayRule::kWeekDays:
      for (int day = from, weekday = weekday_number(first + (from - 1)); day <= last; ++day) {
        if (days_of_week_[static_cast<std::size_t>(weekday - 1)]) return day;
        weekday = weekday % 7 + 1;
      }
      return std::nullopt;
    case DayRule::kLastDay:
      target = last;
      break;
    case DayRule::kNearestWeekday:
      if (day_value_ > last) return std::nullopt;  // 31W in April: no fire that month
      target = nearest_weekday(month, day_value_, last);
      break;
    case DayRule::kLastWeekday:
      target = nearest_weekday(month, last, last);
      break;
    case DayRule::kLastDayOfWeek:
      target = last - (weekday_number(first + (last - 1)) - day_value_ + 7) % 7;
      break;
    case DayRule::kNthDayOfWeek:
      target = 1 + (day_value_ - weekday_number(first) + 7) % 7 + 7 * (nth_ - 1);
      if (target > last) return std::nullopt;  // no fifth Monday this month
      break;
  }
  if (target < from) return std::nullopt;
  return target;
}

// Each pass either returns or jumps `t` to the start of the next year, month, day, hour or
// minute that its field allows, so a pass over a year costs at most about two steps per month.
std::optional<absl::CivilMinute> ScheduleExpression::next_match(absl::CivilMinute t,
                                                                int& steps) const {
  for (;;) {
    ++steps;
    const absl::civil_year_t year = t.year();
    if (year > kLastYear) return std::nullopt;
    if (year < kFirstYear || !years_[static_cast<std::size_t>(year - kFirstYear)]) {
      const int from = year < kFirstYear ? 0 : static_cast<int>(year - kFirstYear) + 1;
      const int next = next_set(years_, from, kLastYear - kFirstYear);
      if (next < 0) return std::nullopt;
      t = absl::CivilMinute(kFirstYear + next);
      continue;
    }
    if (!months_[static_cast<std::size_t>(t.month() - 1)]) {
      const int next = next_set(months_, t.month(), 11);  // index = month - 1
      t = next < 0 ? absl::CivilMinute(absl::CivilYear(t) + 1) : absl::CivilMinute(year, next + 1);
      continue;
    }
    const std::optional<int> day = first_day_from(absl::CivilMonth(t), t.day());
    if (!day) {
      t = absl::CivilMinute(absl::CivilMonth(t) + 1);
      continue;
    }
    if (*day != t.day()) t = absl::CivilMinute(year, t.month(), *day);
    if (!hours_[static_cast<std::size_t>(t.hour())]) {
      const int next = next_set(hours_, t.hour() + 1, 23);
      if (next < 0) {
        t = absl::CivilMinute(absl::CivilDay(t) + 1);
        continue;
      }
      t = absl::CivilMinute(year, t.month(), t.day(), next);
    }
    if (!minutes_[static_cast<std::size_t>(t.minute())]) {
      const int next = next_set(minutes_, t.minute() + 1, 59);
      if (next < 0) {
        t = absl::CivilMinute(absl::CivilHour(t) + 1);
        continue;
      }
      t = absl::CivilMinute(year, t.month(), t.day(), t.hour(), next);
    }
    return t;
  }
}

std::optional<absl::Time> ScheduleExpression::next_cron_after(absl::Time after, absl::TimeZone zone,
                                                              int& steps) const {
  // Every fire lies in [1970, 2200) in its zone, so within a day of that in UTC. Clamping
  // `after` keeps the civil arithmetic far from absl's limits (and the infinite times).
  const absl::TimeZone utc = absl::UTCTimeZone();
  const absl::Time earliest = absl::FromCivil(absl::CivilYear(kFirstYear - 1), utc);
  if (after >= absl::FromCivil(absl::CivilYear(kLastYear + 2), utc)) return std::nullopt;
  after = std::max(after, earliest);

  absl::CivilMinute from = absl::CivilMinute(absl::ToCivilSecond(after, zone)) + 1;
  for (;;) {
    const std::optional<absl::CivilMinute> match = next_match(from, steps);
    if (!match) return std::nullopt;
    const absl::TimeZone::TimeInfo info = zone.At(absl::CivilSecond(*match));
    // A skipped time fires when the clocks jump past it; a repeated one at its first occurrence.
    const absl::Time fire = info.kind == absl::TimeZone::TimeInfo::SKIPPED ? info.trans : info.pre;
    if (fire > after) return fire;
    // `after` lies in the second pass of a repeated hour whose first pass already fired this
    // minute: look further (at most the length of the overlap).
    from = *match + 1;
  }
}

std::optional<absl::Time> ScheduleExpression::next_after(absl::Time after, absl::Time anchor,
                                                         absl::TimeZone zone, int* steps) const {
  int local_steps = 0;
  int& count = steps != nullptr ? *steps : local_steps;
  count = 0;
  if (!is_rate_) return next_cron_after(after, zone, count);

  if (after == absl::InfiniteFuture() || anchor == absl::InfiniteFuture() ||
      anchor == absl::InfinitePast()) {
    return std::nullopt;
  }
  absl::Time fire = anchor + period_;
  if (after >= anchor) {
    const absl::Duration since = after - anchor;
    if (since == absl::InfiniteDuration()) return std::nullopt;
    absl::Duration remainder;
    const std::int64_t k = absl::IDivDuration(since, period_, &remainder);
    if (k == std::numeric_limits<std::int64_t>::max()) return std::nullopt;
    fire = anchor + (k + 1) * period_;  // saturates to InfiniteFuture rather than overflowing
  }
  if (fire == absl::InfiniteFuture()) return std::nullopt;
  return fire;
}

}  // namespace ember::detail
