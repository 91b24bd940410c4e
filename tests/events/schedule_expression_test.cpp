// Tests of src/events/schedule_expression: EventBridge rate/cron parsing and next fire times.
// Deterministic: every time is a fixed absl::Time; nothing reads a clock.
#include "events/schedule_expression.hpp"

#include <absl/time/civil_time.h>
#include <absl/time/time.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

using ember::detail::ScheduleExpression;

absl::Time Utc(int year, int month, int day, int hour = 0, int minute = 0, int second = 0) {
  return absl::FromCivil(absl::CivilSecond(year, month, day, hour, minute, second),
                         absl::UTCTimeZone());
}

ScheduleExpression Parsed(std::string_view text) {
  auto parsed = ScheduleExpression::parse(text);
  if (!parsed) {
    ADD_FAILURE() << parsed.error().message;
    return ScheduleExpression::parse("cron(0 0 1 1 ? 1970)").value();  // fires never (past)
  }
  return *std::move(parsed);
}

// The next `count` fire times of `text` after `after`, each shown as "2024-03-06 10:00 Wed" in
// `zone`, each search starting from the previous fire; "none" ends the list early.
std::vector<std::string> Fires(std::string_view text, absl::Time after, int count,
                               absl::TimeZone zone = absl::UTCTimeZone()) {
  const ScheduleExpression expression = Parsed(text);
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) {
    const std::optional<absl::Time> next = expression.next_after(after, absl::UnixEpoch(), zone);
    if (!next) {
      out.push_back("none");
      break;
    }
    out.push_back(absl::FormatTime("%Y-%m-%d %H:%M %a", *next, zone));
    after = *next;
  }
  return out;
}

using Strings = std::vector<std::string>;

// A text that must not parse, and the error after `schedule "<text>": `.
struct BadCase {
  std::string_view text;
  std::string_view error;
};

void ExpectErrors(std::span<const BadCase> cases) {
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.text);
    const auto parsed = ScheduleExpression::parse(c.text);
    ASSERT_FALSE(parsed.has_value());
    EXPECT_EQ(parsed.error().code, ember::ErrorCode::kInvalidArgument);
    EXPECT_EQ(parsed.error().message,
              "schedule \"" + std::string(c.text) + "\": " + std::string(c.error));
  }
}

// ---- rate -------------------------------------------------------------------------------------

TEST(ScheduleRateTest, ParsesDocumentedExamples) {
  const ScheduleExpression five = Parsed("rate(5 minutes)");
  EXPECT_TRUE(five.is_rate());
  EXPECT_EQ(five.period(), absl::Minutes(5));
  EXPECT_EQ(five.text(), "rate(5 minutes)");
  EXPECT_EQ(Parsed("rate(1 hour)").period(), absl::Hours(1));
  EXPECT_EQ(Parsed("rate(7 days)").period(), absl::Hours(7 * 24));
  EXPECT_EQ(Parsed("rate(1 minute)").period(), absl::Minutes(1));
  EXPECT_EQ(Parsed("rate(1 day)").period(), absl::Hours(24));
  EXPECT_EQ(Parsed("rate(999999999 days)").period(), absl::Hours(24) * 999999999);
}

TEST(ScheduleRateTest, AcceptsSecondsAsAnEmberExtension) {
  EXPECT_EQ(Parsed("rate(5 seconds)").period(), absl::Seconds(5));
  EXPECT_EQ(Parsed("rate(1 second)").period(), absl::Seconds(1));
}

TEST(ScheduleRateTest, FiresAtAnchorPlusWholePeriodsStrictlyAfter) {
  const ScheduleExpression every = Parsed("rate(5 minutes)");
  const absl::Time anchor = Utc(2024, 1, 1, 12, 0, 0) + absl::Milliseconds(250);
  const absl::TimeZone utc = absl::UTCTimeZone();
  // The first fire is one period after the anchor, also for a time before the anchor.
  EXPECT_EQ(every.next_after(anchor, anchor, utc), anchor + absl::Minutes(5));
  EXPECT_EQ(every.next_after(anchor - absl::Hours(3), anchor, utc), anchor + absl::Minutes(5));
  EXPECT_EQ(every.next_after(absl::InfinitePast(), anchor, utc), anchor + absl::Minutes(5));
  // Exactly on a fire time: the next one; in between: the next boundary, sub-second included.
  EXPECT_EQ(every.next_after(anchor + absl::Minutes(5), anchor, utc), anchor + absl::Minutes(10));
  EXPECT_EQ(every.next_after(anchor + absl::Minutes(7), anchor, utc), anchor + absl::Minutes(10));
  EXPECT_EQ(every.next_after(anchor + absl::Minutes(10) - absl::Nanoseconds(1), anchor, utc),
            anchor + absl::Minutes(10));
  EXPECT_EQ(every.next_after(anchor + absl::Hours(24 * 365), anchor, utc),
            anchor + absl::Hours(24 * 365) + absl::Minutes(5));
  // A rate ignores the zone: the same instants in any zone.
  EXPECT_EQ(every.next_after(anchor, anchor, absl::FixedTimeZone(5 * 3600)),
            anchor + absl::Minutes(5));
}

TEST(ScheduleRateTest, HasNoFireBeyondTheEndOfTime) {
  const ScheduleExpression every = Parsed("rate(999999999 days)");
  const absl::Time anchor = Utc(2024, 1, 1);
  const absl::TimeZone utc = absl::UTCTimeZone();
  EXPECT_EQ(every.next_after(absl::InfiniteFuture(), anchor, utc), std::nullopt);
  EXPECT_EQ(every.next_after(anchor, absl::InfiniteFuture(), utc), std::nullopt);
  EXPECT_EQ(every.next_after(anchor, absl::InfinitePast(), utc), std::nullopt);
  EXPECT_EQ(every.next_after(anchor, anchor, utc), anchor + absl::Hours(24) * 999999999);
  // The largest finite time: no whole period fits after it.
  const absl::Time last = absl::FromUnixSeconds(std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(Parsed("rate(1 second)").next_after(last, absl::UnixEpoch(), utc), std::nullopt);
}

TEST(ScheduleRateTest, RefusesBadValuesWithPositionAndToken) {
  const BadCase cases[] = {
      {"rate(1 minutes)",
       R"m(position 8, token "minutes": the unit must be singular when the value is 1: expected "minute")m"},
      {"rate(1 days)",
       R"m(position 8, token "days": the unit must be singular when the value is 1: expected "day")m"},
      {"rate(5 minute)",
       R"m(position 8, token "minute": the unit must be plural when the value is not 1: expected "minutes")m"},
      {"rate(0 minutes)", R"m(position 6, token "0": the rate value must be at least 1)m"},
      {"rate(-1 minutes)",
       R"m(position 6, token "-1": the rate value must be a positive whole number (digits only, no sign))m"},
      {"rate(+5 minutes)",
       R"m(position 6, token "+5": the rate value must be a positive whole number (digits only, no sign))m"},
      {"rate(1.5 hours)",
       R"m(position 6, token "1.5": the rate value must be a positive whole number (digits only, no sign))m"},
      {"rate(05 minutes)",
       R"m(position 6, token "05": the rate value must not have leading zeros)m"},
      {"rate(1000000000 minutes)",
       R"m(position 6, token "1000000000": the rate value must be at most 999999999)m"},
      {"rate(5 weeks)",
       R"m(position 8, token "weeks": expected a unit: minute(s), hour(s), day(s) or second(s))m"},
      {"rate(5 Minutes)",
       R"m(position 8, token "Minutes": expected a unit: minute(s), hour(s), day(s) or second(s))m"},
      {"rate(5)",
       R"m(position 7, token ")": expected a space and a unit (minute(s), hour(s), day(s) or second(s)))m"},
      {"rate(5 )",
       R"m(position 8, token ")": expected a unit (minute(s), hour(s), day(s) or second(s)))m"},
      {"rate()",
       R"m(position 6, token ")": expected a positive whole number and a unit, e.g. "rate(5 minutes)")m"},
  };
  ExpectErrors(cases);
}

TEST(ScheduleRateTest, AcceptsExactlyOneSpaceAndNoOther) {
  const BadCase cases[] = {
      {"rate(5  minutes)",
       R"m(position 8, token " ": expected exactly one space between the value and the unit)m"},
      {"rate( 5 minutes)",
       R"m(position 6, token " ": expected a positive whole number and a unit, e.g. "rate(5 minutes)")m"},
      {"rate(5 minutes )",
       R"m(position 15, token " ": unexpected text after the unit; expected ")")m"},
      {"rate(5 minutes please)",
       R"m(position 15, token " please": unexpected text after the unit; expected ")")m"},
      {"rate(5\tminutes)",
       R"m(position 6, token "5	minutes": the rate value must be a positive whole number (digits only, no sign))m"},
  };
  ExpectErrors(cases);
}

// ---- what surrounds the arguments
// ----------------------------------------------------------------

TEST(ScheduleParseTest, RefusesUnknownFunctionsParenthesesAndTrailingText) {
  const BadCase cases[] = {
      {"", R"m(position 1, end of text: expected "rate(" or "cron(")m"},
      {"every(5 minutes)",
       R"m(position 1, token "every": unknown schedule function "every"; expected "rate(" or "cron(")m"},
      {"Cron(0 10 * * ? *)",
       R"m(position 1, token "Cron": unknown schedule function "Cron"; expected "rate(" or "cron(")m"},
      {" rate(5 minutes)", R"m(position 1, token " ": expected "rate(" or "cron(")m"},
      {"rate 5 minutes", R"m(position 5, token " ": expected "(" after "rate")m"},
      {"cron", R"m(position 5, end of text: expected "(" after "cron")m"},
      {"rate(5 minutes", R"m(position 15, end of text: expected ")" to close "rate(")m"},
      {"cron(0 10 * * ? *", R"m(position 18, end of text: expected ")" to close "cron(")m"},
      {"rate(5 minutes)x", R"m(position 16, token "x": unexpected text after ")")m"},
      {"cron(0 10 * * ? *) ", R"m(position 19, token " ": unexpected text after ")")m"},
      {"cron(0 10 * * ? *))", R"m(position 19, token ")": unexpected text after ")")m"},
  };
  ExpectErrors(cases);
}

TEST(ScheduleParseTest, KeepsTheMessageShortForAHugeText) {
  const std::string huge = "cron(0 10 * * ? *" + std::string(100000, ' ');
  const auto parsed = ScheduleExpression::parse(huge);
  ASSERT_FALSE(parsed.has_value());
  EXPECT_LT(parsed.error().message.size(), 600u);
  EXPECT_NE(parsed.error().message.find("position 100018, end of text"), std::string::npos)
      << parsed.error().message;
}

// ---- cron: EventBridge's documented examples
// ------------------------------------------------------

TEST(ScheduleCronTest, FiresDocumentedDailyExamplesInUtc) {
  const absl::Time wednesday = Utc(2024, 3, 6, 9, 30);
  EXPECT_EQ(Fires("cron(0 10 * * ? *)", wednesday, 3),
            (Strings{"2024-03-06 10:00 Wed", "2024-03-07 10:00 Thu", "2024-03-08 10:00 Fri"}));
  EXPECT_EQ(Fires("cron(15 12 * * ? *)", wednesday, 2),
            (Strings{"2024-03-06 12:15 Wed", "2024-03-07 12:15 Thu"}));
  EXPECT_EQ(Fires("cron(0 18 ? * MON-FRI *)", wednesday, 4),
            (Strings{"2024-03-06 18:00 Wed", "2024-03-07 18:00 Thu", "2024-03-08 18:00 Fri",
                     "2024-03-11 18:00 Mon"}));
  EXPECT_EQ(Fires("cron(0 8 1 * ? *)", wednesday, 3),
            (Strings{"2024-04-01 08:00 Mon", "2024-05-01 08:00 Wed", "2024-06-01 08:00 Sat"}));
  const ScheduleExpression daily = Parsed("cron(0 10 * * ? *)");
  EXPECT_FALSE(daily.is_rate());
  EXPECT_EQ(daily.period(), absl::ZeroDuration());
  EXPECT_EQ(daily.text(), "cron(0 10 * * ? *)");
}

TEST(ScheduleCronTest, FiresDocumentedMinuteStepExamples) {
  EXPECT_EQ(Fires("cron(0/15 * * * ? *)", Utc(2024, 3, 6, 9, 30), 3),
            (Strings{"2024-03-06 09:45 Wed", "2024-03-06 10:00 Wed", "2024-03-06 10:15 Wed"}));
  EXPECT_EQ(Fires("cron(0/10 * ? * MON-FRI *)", Utc(2024, 3, 8, 23, 45), 3),
            (Strings{"2024-03-08 23:50 Fri", "2024-03-11 00:00 Mon", "2024-03-11 00:10 Mon"}));
  EXPECT_EQ(Fires("cron(0/5 8-17 ? * MON-FRI *)", Utc(2024, 3, 8, 17, 52), 3),
            (Strings{"2024-03-08 17:55 Fri", "2024-03-11 08:00 Mon", "2024-03-11 08:05 Mon"}));
}

TEST(ScheduleCronTest, FiresOnTheFirstMondayWithHash) {
  EXPECT_EQ(Fires("cron(0 9 ? * 2#1 *)", Utc(2024, 3, 6), 3),
            (Strings{"2024-04-01 09:00 Mon", "2024-05-06 09:00 Mon", "2024-06-03 09:00 Mon"}));
  EXPECT_EQ(Fires("cron(0 9 ? * MON#1 *)", Utc(2024, 3, 6), 1), (Strings{"2024-04-01 09:00 Mon"}));
}

TEST(ScheduleCronTest, FiresStrictlyAfterTheGivenTime) {
  const ScheduleExpression daily = Parsed("cron(0 10 * * ? *)");
  const absl::TimeZone utc = absl::UTCTimeZone();
  EXPECT_EQ(daily.next_after(Utc(2024, 3, 6, 10, 0), absl::UnixEpoch(), utc), Utc(2024, 3, 7, 10));
  EXPECT_EQ(daily.next_after(Utc(2024, 3, 6, 10, 0) - absl::Nanoseconds(1), absl::UnixEpoch(), utc),
            Utc(2024, 3, 6, 10));
  EXPECT_EQ(daily.next_after(Utc(2024, 3, 6, 9, 59, 59), absl::UnixEpoch(), utc),
            Utc(2024, 3, 6, 10));
}

TEST(ScheduleCronTest, EvaluatesInTheGivenZone) {
  const absl::TimeZone tokyo = absl::FixedTimeZone(9 * 3600);
  const ScheduleExpression daily = Parsed("cron(0 10 * * ? *)");
  EXPECT_EQ(daily.next_after(Utc(2024, 3, 6, 0, 0), absl::UnixEpoch(), tokyo),
            Utc(2024, 3, 6, 1, 0));  // 10:00 at +09:00
}

// ---- cron: syntax that EventBridge leaves open
// -----------------------------------------------------

TEST(ScheduleCronSyntaxTest, AcceptsNamesInAnyCaseAndLeadingZeros) {
  const absl::Time wednesday = Utc(2024, 3, 6, 9, 30);
  const Strings expected = {"2024-03-06 18:05 Wed", "2024-03-07 18:05 Thu"};
  EXPECT_EQ(Fires("cron(5 18 ? * mon-Fri *)", wednesday, 2), expected);
  EXPECT_EQ(Fires("cron(05 18 ? MAR-dec 2-6 *)", wednesday, 2), expected);
  EXPECT_EQ(Fires("cron(0 0 1 jan ? *)", wednesday, 1), (Strings{"2025-01-01 00:00 Wed"}));
}

TEST(ScheduleCronSyntaxTest, ToleratesSeveralSpacesBetweenFields) {
  EXPECT_EQ(Fires("cron(0  10   * * ? *)", Utc(2024, 3, 6), 1), (Strings{"2024-03-06 10:00 Wed"}));
}

TEST(ScheduleCronSyntaxTest, WrapsRangesWhoseStartIsAboveTheirEnd) {
  EXPECT_EQ(Fires("cron(0 12 ? * FRI-MON *)", Utc(2024, 3, 6), 5),
            (Strings{"2024-03-08 12:00 Fri", "2024-03-09 12:00 Sat", "2024-03-10 12:00 Sun",
                     "2024-03-11 12:00 Mon", "2024-03-15 12:00 Fri"}));
  EXPECT_EQ(Fires("cron(0 22-1 * * ? *)", Utc(2024, 3, 6, 12), 4),
            (Strings{"2024-03-06 22:00 Wed", "2024-03-06 23:00 Wed", "2024-03-07 00:00 Thu",
                     "2024-03-07 01:00 Thu"}));
  EXPECT_EQ(Fires("cron(0 0 30-2 * ? *)", Utc(2024, 4, 3), 4),
            (Strings{"2024-04-30 00:00 Tue", "2024-05-01 00:00 Wed", "2024-05-02 00:00 Thu",
                     "2024-05-30 00:00 Thu"}));
  EXPECT_EQ(Fires("cron(0 0 1 NOV-FEB ? *)", Utc(2024, 3, 6), 4),
            (Strings{"2024-11-01 00:00 Fri", "2024-12-01 00:00 Sun", "2025-01-01 00:00 Wed",
                     "2025-02-01 00:00 Sat"}));
}

TEST(ScheduleCronSyntaxTest, StepsFromAStartWithinARangeAndAcrossAWrap) {
  const absl::Time start = Utc(2024, 3, 6, 9, 0);
  EXPECT_EQ(Fires("cron(5/15 9 * * ? *)", start, 5),
            (Strings{"2024-03-06 09:05 Wed", "2024-03-06 09:20 Wed", "2024-03-06 09:35 Wed",
                     "2024-03-06 09:50 Wed", "2024-03-07 09:05 Thu"}));
  EXPECT_EQ(Fires("cron(*/20 9 * * ? *)", start, 3),
            (Strings{"2024-03-06 09:20 Wed", "2024-03-06 09:40 Wed", "2024-03-07 09:00 Thu"}));
  EXPECT_EQ(Fires("cron(10-30/10 9 * * ? *)", start, 4),
            (Strings{"2024-03-06 09:10 Wed", "2024-03-06 09:20 Wed", "2024-03-06 09:30 Wed",
                     "2024-03-07 09:10 Thu"}));
  EXPECT_EQ(Fires("cron(50-10/10 * * * ? *)", Utc(2024, 3, 6, 9, 30), 4),
            (Strings{"2024-03-06 09:50 Wed", "2024-03-06 10:00 Wed", "2024-03-06 10:10 Wed",
                     "2024-03-06 10:50 Wed"}));
  EXPECT_EQ(Fires("cron(0,30 6,18 * * ? *)", start, 3),
            (Strings{"2024-03-06 18:00 Wed", "2024-03-06 18:30 Wed", "2024-03-07 06:00 Thu"}));
  EXPECT_EQ(Fires("cron(0 0 1 1 ? 2030/50)", start, 5),
            (Strings{"2030-01-01 00:00 Tue", "2080-01-01 00:00 Mon", "2130-01-01 00:00 Sun",
                     "2180-01-01 00:00 Sat", "none"}));
  EXPECT_EQ(Fires("cron(0 0 1 */5 ? *)", start, 3),
            (Strings{"2024-06-01 00:00 Sat", "2024-11-01 00:00 Fri", "2025-01-01 00:00 Wed"}));
}

// ---- cron: L, W and #
// ------------------------------------------------------------------------------

TEST(ScheduleCronSpecialDaysTest, LastDayOfMonthFollowsLeapYears) {
  EXPECT_EQ(Fires("cron(0 0 L * ? *)", Utc(2024, 1, 15), 4),
            (Strings{"2024-01-31 00:00 Wed", "2024-02-29 00:00 Thu", "2024-03-31 00:00 Sun",
                     "2024-04-30 00:00 Tue"}));
  EXPECT_EQ(Fires("cron(0 0 L 2 ? *)", Utc(2023, 1, 1), 2),
            (Strings{"2023-02-28 00:00 Tue", "2024-02-29 00:00 Thu"}));
  // 2100 is not a leap year (divisible by 100, not by 400).
  EXPECT_EQ(Fires("cron(0 0 L 2 ? 2100)", Utc(2024, 1, 1), 2),
            (Strings{"2100-02-28 00:00 Sun", "none"}));
  EXPECT_EQ(Fires("cron(0 12 29 2 ? *)", Utc(2024, 3, 1), 2),
            (Strings{"2028-02-29 12:00 Tue", "2032-02-29 12:00 Sun"}));
}

TEST(ScheduleCronSpecialDaysTest, LastWeekdayMovesBackFromAWeekend) {
  // 2024: May 31 is a Friday, Jun 30 a Sunday, Aug 31 a Saturday.
  EXPECT_EQ(Fires("cron(0 0 LW * ? *)", Utc(2024, 5, 1), 4),
            (Strings{"2024-05-31 00:00 Fri", "2024-06-28 00:00 Fri", "2024-07-31 00:00 Wed",
                     "2024-08-30 00:00 Fri"}));
}

TEST(ScheduleCronSpecialDaysTest, NearestWeekdayStaysInTheMonth) {
  // The 15th: a Wednesday in May, a Saturday in June (back to Friday the 14th), a Sunday in
  // September (on to Monday the 16th).
  EXPECT_EQ(
      Fires("cron(0 0 15W 5,6,9 ? 2024)", Utc(2024, 1, 1), 4),
      (Strings{"2024-05-15 00:00 Wed", "2024-06-14 00:00 Fri", "2024-09-16 00:00 Mon", "none"}));
  // The 1st on a Saturday (June) moves to Monday the 3rd, not back into May; on a Sunday
  // (September) to Monday the 2nd.
  EXPECT_EQ(Fires("cron(0 0 1W 6,9 ? 2024)", Utc(2024, 1, 1), 3),
            (Strings{"2024-06-03 00:00 Mon", "2024-09-02 00:00 Mon", "none"}));
  // The 31st on a Sunday (March 2024) moves back to Friday the 29th; months without a 31st
  // have no fire.
  EXPECT_EQ(Fires("cron(0 0 31W * ? *)", Utc(2024, 3, 1), 3),
            (Strings{"2024-03-29 00:00 Fri", "2024-05-31 00:00 Fri", "2024-07-31 00:00 Wed"}));
  EXPECT_EQ(Fires("cron(0 0 30W 2 ? *)", Utc(2024, 1, 1), 1), (Strings{"none"}));
  // Lower case w, and a nearest weekday that fell before `after` within its own month.
  EXPECT_EQ(Fires("cron(0 0 15w * ? *)", Utc(2024, 6, 14, 12), 1),
            (Strings{"2024-07-15 00:00 Mon"}));
}

TEST(ScheduleCronSpecialDaysTest, LastAndNthDayOfWeek) {
  // 5L: the last Thursday (Thanksgiving 2024 is Nov 28).
  EXPECT_EQ(Fires("cron(0 0 ? 11 5L 2024)", Utc(2024, 1, 1), 2),
            (Strings{"2024-11-28 00:00 Thu", "none"}));
  EXPECT_EQ(Fires("cron(0 0 ? * FRIL *)", Utc(2024, 3, 1), 2),
            (Strings{"2024-03-29 00:00 Fri", "2024-04-26 00:00 Fri"}));
  // 6#5: the fifth Friday, only in months that have one (2024: Mar, May, Aug, Nov).
  EXPECT_EQ(Fires("cron(0 0 ? * 6#5 *)", Utc(2024, 3, 30), 3),
            (Strings{"2024-05-31 00:00 Fri", "2024-08-30 00:00 Fri", "2024-11-29 00:00 Fri"}));
  // L alone in day-of-week: the week's last day, Saturday.
  EXPECT_EQ(Fires("cron(0 0 ? * L *)", Utc(2024, 3, 6), 2),
            (Strings{"2024-03-09 00:00 Sat", "2024-03-16 00:00 Sat"}));
}

// ---- cron: limits
// ---------------------------------------------------------------------------------

TEST(ScheduleCronLimitsTest, FiresOnlyWithinTheYearRange) {
  EXPECT_EQ(Fires("cron(59 23 31 12 ? 2199)", Utc(2024, 1, 1), 2),
            (Strings{"2199-12-31 23:59 Tue", "none"}));
  EXPECT_EQ(Fires("cron(* * * * ? 1970)", Utc(1900, 1, 1), 2),
            (Strings{"1970-01-01 00:00 Thu", "1970-01-01 00:01 Thu"}));
  const ScheduleExpression yearly = Parsed("cron(0 0 1 1 ? *)");
  const absl::TimeZone utc = absl::UTCTimeZone();
  EXPECT_EQ(yearly.next_after(absl::InfinitePast(), absl::UnixEpoch(), utc), Utc(1970, 1, 1));
  EXPECT_EQ(yearly.next_after(absl::InfiniteFuture(), absl::UnixEpoch(), utc), std::nullopt);
  EXPECT_EQ(yearly.next_after(Utc(2199, 1, 1), absl::UnixEpoch(), utc), std::nullopt);
  EXPECT_EQ(yearly.next_after(Utc(2500, 1, 1), absl::UnixEpoch(), utc), std::nullopt);
}

TEST(ScheduleCronLimitsTest, NeverFiresWhenNoDateMatches) {
  EXPECT_EQ(Fires("cron(0 0 1 1 ? 2020-2022)", Utc(2024, 1, 1), 1), (Strings{"none"}));
  EXPECT_EQ(Fires("cron(0 0 30 2 ? *)", Utc(1970, 1, 1), 1), (Strings{"none"}));
  EXPECT_EQ(Fires("cron(0 0 31 4,6,9,11 ? *)", Utc(1970, 1, 1), 1), (Strings{"none"}));
  EXPECT_EQ(Fires("cron(0 0 ? 2 1#5 2026)", Utc(2024, 1, 1), 1), (Strings{"none"}));
}

// ---- cron: daylight-saving time
// ---------------------------------------------------------------------

class ScheduleCronDstTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!absl::LoadTimeZone("America/New_York", &new_york_)) {
      GTEST_SKIP() << "no tz database entry for America/New_York (install tzdata)";
    }
  }
  std::optional<absl::Time> Next(std::string_view text, absl::Time after) const {
    return Parsed(text).next_after(after, absl::UnixEpoch(), new_york_);
  }
  absl::TimeZone new_york_;
};

// 2024-03-10 02:00 EST the clocks went forward to 03:00 EDT (07:00 UTC).
TEST_F(ScheduleCronDstTest, SkippedTimeFiresOnceWhenTheClocksJumpPastIt) {
  EXPECT_EQ(Next("cron(30 2 * * ? *)", Utc(2024, 3, 9, 12)), Utc(2024, 3, 10, 7, 0));
  EXPECT_EQ(Next("cron(30 2 * * ? *)", Utc(2024, 3, 10, 7, 0)), Utc(2024, 3, 11, 6, 30));
  // Four skipped quarter hours: one fire at 03:00 EDT, then none until the next night.
  EXPECT_EQ(Next("cron(0/15 2 * * ? *)", Utc(2024, 3, 10, 6, 59)), Utc(2024, 3, 10, 7, 0));
  EXPECT_EQ(Next("cron(0/15 2 * * ? *)", Utc(2024, 3, 10, 7, 0)), Utc(2024, 3, 11, 6, 0));
  // A daily local time keeps its wall-clock hour across the change.
  EXPECT_EQ(Next("cron(0 9 * * ? *)", Utc(2024, 3, 9, 15)), Utc(2024, 3, 10, 13, 0));
  EXPECT_EQ(Next("cron(0 9 * * ? *)", Utc(2024, 3, 8, 12)), Utc(2024, 3, 8, 14, 0));
}

// 2024-11-03 02:00 EDT the clocks went back to 01:00 EST (06:00 UTC): 01:00-01:59 twice.
TEST_F(ScheduleCronDstTest, RepeatedTimeFiresOnceAtItsFirstOccurrence) {
  EXPECT_EQ(Next("cron(30 1 * * ? *)", Utc(2024, 11, 2, 12)), Utc(2024, 11, 3, 5, 30));  // EDT
  EXPECT_EQ(Next("cron(30 1 * * ? *)", Utc(2024, 11, 3, 5, 30)), Utc(2024, 11, 4, 6, 30));
  // Every 20 minutes: 01:00, 01:20, 01:40 EDT, then nothing in the second 01:xx, then 02:00 EST.
  absl::Time after = Utc(2024, 11, 3, 4, 50);
  std::vector<absl::Time> fires;
  for (int i = 0; i < 4; ++i) {
    const std::optional<absl::Time> next = Next("cron(0/20 * * * ? *)", after);
    ASSERT_TRUE(next.has_value());
    fires.push_back(after = *next);
  }
  EXPECT_EQ(fires, (std::vector<absl::Time>{Utc(2024, 11, 3, 5, 0), Utc(2024, 11, 3, 5, 20),
                                            Utc(2024, 11, 3, 5, 40), Utc(2024, 11, 3, 7, 0)}));
  // Asked from inside the second pass (01:10 EST), the repeated minutes are already done.
  EXPECT_EQ(Next("cron(0/20 * * * ? *)", Utc(2024, 11, 3, 6, 10)), Utc(2024, 11, 3, 7, 0));
}

// ---- cron: cost
// ------------------------------------------------------------------------------------

TEST(ScheduleCronCostTest, FindsAOnceAYearTimeInAFewSteps) {
  // Stepping minute by minute would take about 525,000 steps per call.
  const absl::TimeZone utc = absl::UTCTimeZone();
  const ScheduleExpression new_year = Parsed("cron(0 0 1 1 ? *)");
  int steps = 0;
  EXPECT_EQ(new_year.next_after(Utc(2024, 1, 1), absl::UnixEpoch(), utc, &steps), Utc(2025, 1, 1));
  EXPECT_LE(steps, 8);
  const ScheduleExpression new_years_eve = Parsed("cron(59 23 31 12 ? *)");
  EXPECT_EQ(new_years_eve.next_after(Utc(2024, 1, 1), absl::UnixEpoch(), utc, &steps),
            Utc(2024, 12, 31, 23, 59));
  EXPECT_LE(steps, 8);
  // Every fire from 1970 to 2199, each found in a few steps, then none.
  absl::Time after = absl::InfinitePast();
  int fired = 0;
  while (const auto next = new_year.next_after(after, absl::UnixEpoch(), utc, &steps)) {
    ASSERT_LE(steps, 8) << absl::FormatTime(*next);
    after = *next;
    ++fired;
  }
  EXPECT_EQ(fired, 2199 - 1970 + 1);
}

TEST(ScheduleCronCostTest, ProvesNeverInAFewStepsPerYear) {
  const absl::TimeZone utc = absl::UTCTimeZone();
  int steps = 0;
  EXPECT_EQ(
      Parsed("cron(0 0 30 2 ? *)").next_after(Utc(1970, 1, 1), absl::UnixEpoch(), utc, &steps),
      std::nullopt);
  EXPECT_LE(steps, 4 * (2199 - 1970 + 1));
  EXPECT_EQ(Parsed("cron(* * 31 2,4,6,9,11 ? *)")
                .next_after(Utc(1970, 1, 1), absl::UnixEpoch(), utc, &steps),
            std::nullopt);
  EXPECT_LE(steps, 12 * (2199 - 1970 + 1));
}

// ---- cron: errors
// ----------------------------------------------------------------------------------

TEST(ScheduleCronErrorTest, RefusesAWrongNumberOfFields) {
  const BadCase cases[] = {
      {"cron(0 10 * * ?)",
       R"m(position 16, token ")": expected 6 fields (minutes hours day-of-month month day-of-week year), found 5)m"},
      {"cron(0 10 * * ? * *)",
       R"m(position 19, token "*": expected 6 fields (minutes hours day-of-month month day-of-week year), found 7)m"},
      {"cron()",
       R"m(position 6, token ")": expected 6 fields (minutes hours day-of-month month day-of-week year))m"},
      {"cron( 0 10 * * ? *)",
       R"m(position 6, token " ": unexpected space before the first field)m"},
      {"cron(0 10 * * ? * )", R"m(position 18, token " ": unexpected space after the last field)m"},
      {"cron(0\t10 * * ? *)",
       R"m(position 7, token "	": fields are separated by spaces; other whitespace is not accepted)m"},
  };
  ExpectErrors(cases);
}

TEST(ScheduleCronErrorTest, RequiresExactlyOneQuestionMarkDayField) {
  const BadCase cases[] = {
      {"cron(0/5 * * * * *)",
       R"m(position 16, token "*": day-of-month and day-of-week cannot both be set; one must be "?")m"},
      {"cron(0 10 1 * MON *)",
       R"m(position 15, token "MON": day-of-month and day-of-week cannot both be set; one must be "?")m"},
      {"cron(0 10 ? * ? *)",
       R"m(position 15, token "?": day-of-month and day-of-week cannot both be "?"; set one of them)m"},
      {"cron(0 0 1,? * ? *)", R"m(position 12, token "?": "?" must be the whole field)m"},
      {"cron(? 0 1 * ? *)",
       R"m(position 6, token "?": "?" is allowed only in day-of-month and day-of-week)m"},
  };
  ExpectErrors(cases);
}

TEST(ScheduleCronErrorTest, NamesTheFieldOfAnOutOfRangeValue) {
  const BadCase cases[] = {
      {"cron(60 * * * ? *)", R"m(position 6, token "60": minutes: 60 is outside 0..59)m"},
      {"cron(0 24 * * ? *)", R"m(position 8, token "24": hours: 24 is outside 0..23)m"},
      {"cron(0 0 0 * ? *)", R"m(position 10, token "0": day-of-month: 0 is outside 1..31)m"},
      {"cron(0 0 32 * ? *)", R"m(position 10, token "32": day-of-month: 32 is outside 1..31)m"},
      {"cron(0 0 ? 13 MON *)", R"m(position 12, token "13": month: 13 is outside 1..12)m"},
      {"cron(0 0 ? 0 MON *)", R"m(position 12, token "0": month: 0 is outside 1..12)m"},
      {"cron(0 0 ? * 8 *)", R"m(position 14, token "8": day-of-week: 8 is outside 1..7)m"},
      {"cron(0 0 ? * 0 *)", R"m(position 14, token "0": day-of-week: 0 is outside 1..7)m"},
      {"cron(0 0 1 * ? 1969)", R"m(position 16, token "1969": year: 1969 is outside 1970..2199)m"},
      {"cron(0 0 1 * ? 2200)", R"m(position 16, token "2200": year: 2200 is outside 1970..2199)m"},
      {"cron(0 0 1 * ? 2025-99999999999)",
       R"m(position 21, token "99999999999": year: 99999999999 is outside 1970..2199)m"},
      {"cron(0 0 32W * ? *)", R"m(position 10, token "32": day-of-month: 32 is outside 1..31)m"},
      {"cron(0 0 ? * 8L *)", R"m(position 14, token "8": day-of-week: 8 is outside 1..7)m"},
      {"cron(0 0 ? * 8#1 *)", R"m(position 14, token "8": day-of-week: 8 is outside 1..7)m"},
      {"cron(0 0 ? * 3#6 *)",
       R"m(position 16, token "6": day-of-week: 6 is outside 1..5 (the week of the month after "#"))m"},
      {"cron(0 0 ? * 3#0 *)",
       R"m(position 16, token "0": day-of-week: 0 is outside 1..5 (the week of the month after "#"))m"},
  };
  ExpectErrors(cases);
}

TEST(ScheduleCronErrorTest, RefusesBadNames) {
  const BadCase cases[] = {
      {"cron(0 0 ? * MONDAY *)",
       R"m(position 14, token "MONDAY": day-of-week: "MONDAY" is not 1..7 or SUN..SAT)m"},
      {"cron(0 0 1 JANUARY ? *)",
       R"m(position 12, token "JANUARY": month: "JANUARY" is not 1..12 or JAN..DEC)m"},
      {"cron(0 0 1 MON ? *)",
       R"m(position 12, token "MON": month: "MON" is not 1..12 or JAN..DEC)m"},
      {"cron(JAN 0 1 * ? *)", R"m(position 6, token "JAN": minutes: "JAN" is not a number 0..59)m"},
      {"cron(0 0 1 * ? MMXX)",
       R"m(position 16, token "MMXX": year: "MMXX" is not a number 1970..2199)m"},
  };
  ExpectErrors(cases);
}

TEST(ScheduleCronErrorTest, RefusesBadStepsAndRanges) {
  const BadCase cases[] = {
      {"cron(0/0 * * * ? *)", R"m(position 8, token "0": minutes: step 0 is outside 1..59)m"},
      {"cron(*/60 * * * ? *)", R"m(position 8, token "60": minutes: step 60 is outside 1..59)m"},
      {"cron(0 0/24 * * ? *)", R"m(position 10, token "24": hours: step 24 is outside 1..23)m"},
      {"cron(0/ * * * ? *)", R"m(position 8, token " ": minutes: expected a step after "/")m"},
      {"cron(0/x * * * ? *)", R"m(position 8, token "x": minutes: expected a step after "/")m"},
      {"cron(0 0 ? * 1/2 *)",
       R"m(position 15, token "/": day-of-week: "/" is not allowed in this field)m"},
      {"cron(0 0 1 * ? 2030-2025)",
       R"m(position 16, token "2030-2025": year: range 2030-2025 runs backwards)m"},
      {"cron(0 1-2-3 * * ? *)",
       R"m(position 11, token "-": hours: expected ",", "-", "/" or a space here)m"},
      {"cron(0,,5 * * * ? *)", R"m(position 8, token ",": minutes: expected a number 0..59)m"},
      {"cron(0, * * * ? *)", R"m(position 8, token " ": minutes: expected a number 0..59)m"},
      {"cron(0 1- * * ? *)", R"m(position 10, token " ": hours: expected a number 0..23)m"},
      {"cron(*5 * * * ? *)",
       R"m(position 7, token "5": minutes: expected ",", "-", "/" or a space here)m"},
  };
  ExpectErrors(cases);
}

TEST(ScheduleCronErrorTest, RequiresLWAndHashToBeTheWholeField) {
  const BadCase cases[] = {
      {"cron(0 0 1,L * ? *)",
       R"m(position 12, token "L": day-of-month: "L", "LW" and "nW" must be the whole field)m"},
      {"cron(0 0 L-3 * ? *)",
       R"m(position 10, token "L": day-of-month: "L", "LW" and "nW" must be the whole field)m"},
      {"cron(0 0 1-5W * ? *)",
       R"m(position 12, token "5W": day-of-month: "L", "LW" and "nW" must be the whole field)m"},
      {"cron(0 0 W * ? *)",
       R"m(position 10, token "W": day-of-month: "L", "LW" and "nW" must be the whole field)m"},
      {"cron(0 0 ? * 1,5L *)",
       R"m(position 15, token ",": day-of-week: "L" must follow a single day; "L", "dL" and "d#n" must be the whole field)m"},
      {"cron(0 0 ? * 1-3#2 *)",
       R"m(position 15, token "-": day-of-week: "#" must follow a single day; "L", "dL" and "d#n" must be the whole field)m"},
      {"cron(0 0 ? * 2#1,3 *)",
       R"m(position 16, token "1,3": day-of-week: expected the week of the month, 1..5, after "#")m"},
      {"cron(0 0 ? * 2# *)",
       R"m(position 16, token " ": day-of-week: expected the week of the month, 1..5, after "#")m"},
      {"cron(0 L * * ? *)", R"m(position 8, token "L": hours: "L" is not a number 0..23)m"},
      {"cron(0 0 1 * ? L)", R"m(position 16, token "L": year: "L" is not a number 1970..2199)m"},
  };
  ExpectErrors(cases);
}

}  // namespace
