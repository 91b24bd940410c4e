// Layer versions and the constraints plugins put on them (src/plugin/semver.hpp): white-box
// tests of the parser and of VersionConstraint::allows, boundaries first. The syntax is the one
// ember/plugin.h documents: missing minor/patch parts are 0, "^" and a bare version keep the
// major, "~" keeps major.minor (or the major alone for "~1"), commas join terms that must all
// hold.
#include "plugin/semver.hpp"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace ember::detail {
namespace {

SemVer v(int major, int minor, int patch) { return SemVer{major, minor, patch}; }

// The constraint `text` parsed; fails the test (and allows nothing) if it does not parse.
VersionConstraint constraint(std::string_view text) {
  auto c = VersionConstraint::parse(text);
  EXPECT_TRUE(c.has_value()) << "'" << text << "': " << (c ? "" : c.error().message);
  if (!c) return VersionConstraint::parse("=999999.0.0").value();
  return *std::move(c);
}

struct ConstraintCase {
  std::string text;
  std::vector<SemVer> allowed;
  std::vector<SemVer> refused;
};

void PrintTo(const ConstraintCase& c, std::ostream* os) { *os << "'" << c.text << "'"; }

TEST(SemverTest, ParsesMajorMinorAndPatchWithMissingPartsZero) {
  EXPECT_EQ(parse_version("1").value(), v(1, 0, 0));
  EXPECT_EQ(parse_version("1.2").value(), v(1, 2, 0));
  EXPECT_EQ(parse_version("1.2.3").value(), v(1, 2, 3));
  EXPECT_EQ(parse_version("0.0.0").value(), v(0, 0, 0));
  EXPECT_EQ(parse_version("10.20.300").value(), v(10, 20, 300));
}

TEST(SemverTest, PrintsAllThreeParts) {
  EXPECT_EQ(parse_version("1").value().str(), "1.0.0");
  EXPECT_EQ(parse_version("4.5.6").value().str(), "4.5.6");
}

TEST(SemverTest, OrdersByMajorThenMinorThenPatch) {
  EXPECT_LT(v(1, 9, 9), v(2, 0, 0));
  EXPECT_LT(v(1, 2, 9), v(1, 3, 0));
  EXPECT_LT(v(1, 2, 3), v(1, 2, 4));
  EXPECT_EQ(v(1, 2, 3), v(1, 2, 3));
}

TEST(SemverTest, RefusesTextThatIsNotMajorMinorPatchNumbers) {
  for (std::string_view bad : {"", "a", "1.", "1.2.", "1.2.3.4", "-1", "1.-2", ".1", "1..2", "1.a",
                               " 1", "1.2.3 ", "v1", "+1", "1.2-beta", "99999999999"}) {
    auto r = parse_version(bad);
    ASSERT_FALSE(r.has_value()) << "'" << bad << "' parsed as " << r->str();
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << bad;
    EXPECT_NE(r.error().message.find("'" + std::string(bad) + "'"), std::string::npos)
        << "the message quotes the text: " << r.error().message;
  }
}

class ConstraintTest : public ::testing::TestWithParam<ConstraintCase> {};

TEST_P(ConstraintTest, AllowsExactlyTheVersionsItsSyntaxDocuments) {
  const ConstraintCase& c = GetParam();
  const VersionConstraint parsed = constraint(c.text);
  EXPECT_EQ(parsed.text(), c.text);  // kept as written, for messages
  for (const SemVer& allowed : c.allowed) {
    EXPECT_TRUE(parsed.allows(allowed)) << "'" << c.text << "' should allow " << allowed.str();
  }
  for (const SemVer& refused : c.refused) {
    EXPECT_FALSE(parsed.allows(refused)) << "'" << c.text << "' should refuse " << refused.str();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Syntax, ConstraintTest,
    ::testing::Values(
        // Anything.
        ConstraintCase{"", {v(0, 0, 0), v(1, 2, 3), v(99, 0, 0)}, {}},
        ConstraintCase{"*", {v(0, 0, 0), v(1, 2, 3), v(99, 0, 0)}, {}},
        // Bare and caret: same major, at least the version.
        ConstraintCase{"1.2", {v(1, 2, 0), v(1, 2, 9), v(1, 9, 9)}, {v(1, 1, 9), v(2, 0, 0)}},
        ConstraintCase{"^1.2", {v(1, 2, 0), v(1, 3, 0), v(1, 99, 99)}, {v(1, 1, 99), v(2, 0, 0)}},
        ConstraintCase{"^1", {v(1, 0, 0), v(1, 99, 0)}, {v(0, 9, 9), v(2, 0, 0)}},
        ConstraintCase{"^1.2.3", {v(1, 2, 3), v(1, 3, 0)}, {v(1, 2, 2), v(2, 0, 0)}},
        // Tilde: same major.minor, at least the version; "~1" keeps only the major.
        ConstraintCase{"~1.2", {v(1, 2, 0), v(1, 2, 99)}, {v(1, 1, 99), v(1, 3, 0), v(2, 0, 0)}},
        ConstraintCase{"~1.2.3", {v(1, 2, 3), v(1, 2, 9)}, {v(1, 2, 2), v(1, 3, 0)}},
        ConstraintCase{"~1", {v(1, 0, 0), v(1, 9, 9)}, {v(0, 9, 9), v(2, 0, 0)}},
        // Exactly.
        ConstraintCase{"=1.2.3", {v(1, 2, 3)}, {v(1, 2, 2), v(1, 2, 4), v(1, 3, 3), v(2, 2, 3)}},
        ConstraintCase{"=1.2", {v(1, 2, 0)}, {v(1, 2, 1)}},
        // Comparisons; missing parts are 0, so ">1.2" is ">1.2.0" and "<=2.1" is "<=2.1.0".
        ConstraintCase{">=1.2", {v(1, 2, 0), v(1, 2, 1), v(7, 0, 0)}, {v(1, 1, 99), v(0, 0, 0)}},
        ConstraintCase{">1.2", {v(1, 2, 1), v(1, 3, 0), v(2, 0, 0)}, {v(1, 2, 0), v(1, 1, 9)}},
        ConstraintCase{"<2", {v(0, 0, 0), v(1, 99, 99)}, {v(2, 0, 0), v(2, 0, 1), v(3, 0, 0)}},
        ConstraintCase{"<=2.1", {v(2, 1, 0), v(2, 0, 99), v(0, 1, 0)}, {v(2, 1, 1), v(2, 2, 0)}},
        // Terms joined by commas all hold; spaces around terms and after operators are fine.
        ConstraintCase{">=1.2,<3", {v(1, 2, 0), v(2, 99, 99)}, {v(1, 1, 99), v(3, 0, 0)}},
        ConstraintCase{" >=1.2 , <3 ", {v(1, 2, 0), v(2, 99, 99)}, {v(1, 1, 99), v(3, 0, 0)}},
        ConstraintCase{">= 1.2", {v(1, 2, 0)}, {v(1, 1, 0)}},
        ConstraintCase{">1,<=1.5.0,*", {v(1, 0, 1), v(1, 5, 0)}, {v(1, 0, 0), v(1, 5, 1)}},
        ConstraintCase{">=2,<2", {}, {v(1, 9, 9), v(2, 0, 0), v(2, 0, 1)}}));

TEST(SemverTest, RefusesABadConstraintWithAMessageQuotingIt) {
  for (std::string_view bad :
       {">=x", "1.2,,2", ",1.2", "^", ">=", "1.2 <3", "==1.2", "1.2.3.4", ">=1.2;<3", "~-1"}) {
    auto c = VersionConstraint::parse(bad);
    ASSERT_FALSE(c.has_value()) << "'" << bad << "' parsed";
    EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument) << bad;
    EXPECT_NE(c.error().message.find("version constraint '" + std::string(bad) + "'"),
              std::string::npos)
        << c.error().message;
  }
}

TEST(SemverTest, BadConstraintMessagesSayWhatIsWrong) {
  auto empty_term = VersionConstraint::parse("1.2,,2");
  ASSERT_FALSE(empty_term.has_value());
  EXPECT_NE(empty_term.error().message.find("empty term"), std::string::npos)
      << empty_term.error().message;
  auto not_a_number = VersionConstraint::parse(">=x");
  ASSERT_FALSE(not_a_number.has_value());
  EXPECT_NE(not_a_number.error().message.find("version 'x'"), std::string::npos)
      << not_a_number.error().message;
}

// A trailing comma is an empty term, like the doubled comma above: it must be refused the same
// way. (Fails today: the parser stops at the end of the text after the last comma, so "1.2,"
// parses as "1.2" while "1.2, " and "1.2,,2" are refused. Reported; not fixed here.)
TEST(SemverTest, RefusesATrailingCommaAsAnEmptyTerm) {
  for (std::string_view bad : {"1.2, ", "1.2,"}) {
    auto c = VersionConstraint::parse(bad);
    ASSERT_FALSE(c.has_value()) << "'" << bad << "' parsed";
    EXPECT_NE(c.error().message.find("empty term"), std::string::npos) << c.error().message;
  }
}

}  // namespace
}  // namespace ember::detail
