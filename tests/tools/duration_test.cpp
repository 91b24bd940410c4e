// tools/ember/duration.cpp: durations as typed on the command line, numbers as printed.
#include "duration.hpp"

#include <gtest/gtest.h>

namespace ember::cli {
namespace {

TEST(ParseDurationTest, AcceptsANumberAndAUnit) {
  EXPECT_EQ(parse_duration("500ms").value(), absl::Milliseconds(500));
  EXPECT_EQ(parse_duration("3s").value(), absl::Seconds(3));
  EXPECT_EQ(parse_duration("1m").value(), absl::Minutes(1));
  EXPECT_EQ(parse_duration("1h30m").value(), absl::Minutes(90));
  EXPECT_EQ(parse_duration("2.5s").value(), absl::Milliseconds(2500));
  EXPECT_EQ(parse_duration("750us").value(), absl::Microseconds(750));
}

TEST(ParseDurationTest, RefusesABareNumberQuotingItAndShowingTheForm) {
  auto d = parse_duration("5");
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(d.error().message.find("\"5\""), std::string::npos) << d.error().message;
  EXPECT_NE(d.error().message.find("500ms"), std::string::npos) << d.error().message;
}

TEST(ParseDurationTest, RefusesGarbageEmptyZeroNegativeAndInfinite) {
  for (const char* text : {"", "5x", "ms", "soon", "0", "0s", "-1s", "inf", "-inf"}) {
    auto d = parse_duration(text);
    EXPECT_FALSE(d) << text;
    if (!d) {
      EXPECT_NE(d.error().message.find(std::string("\"") + text + "\""), std::string::npos);
    }
  }
}

TEST(FormatNanosTest, PicksTheUnitAndThreeSignificantDigits) {
  EXPECT_EQ(format_nanos(0, true), "0 ns");
  EXPECT_EQ(format_nanos(812, true), "812 ns");
  EXPECT_EQ(format_nanos(1234, true), "1.23 \u00b5s");
  EXPECT_EQ(format_nanos(1234, false), "1.23 us");
  EXPECT_EQ(format_nanos(45'600'000, true), "45.6 ms");
  EXPECT_EQ(format_nanos(123'000'000, true), "123 ms");
  EXPECT_EQ(format_nanos(2e9, true), "2.00 s");
  // Rounding up to 1000 of a unit moves to the next unit.
  EXPECT_EQ(format_nanos(999.7, false), "1.00 us");
}

TEST(FormatCountTest, GroupsThousands) {
  EXPECT_EQ(format_count(0), "0");
  EXPECT_EQ(format_count(999), "999");
  EXPECT_EQ(format_count(1000), "1,000");
  EXPECT_EQ(format_count(1234567), "1,234,567");
  EXPECT_EQ(format_count(18446744073709551615ULL), "18,446,744,073,709,551,615");
}

}  // namespace
}  // namespace ember::cli
