// Function names, validated by Engine::register_function: 1-64 characters of [A-Za-z0-9._-],
// starting with a letter or digit. A rejected name says why, and registers nothing.
#include <string>
#include <string_view>

#include "test_support.hpp"

namespace ember::testing {
namespace {

class NamesTest : public ::testing::Test {
 protected:
  Result<FunctionHandle> add(std::string_view name) {
    return engine_.register_function(name, {}, echo_handler());
  }
  // Registering `name` fails with kInvalidArgument whose message has every fragment, and
  // leaves nothing registered under it.
  void expect_rejected(std::string_view name, std::initializer_list<std::string_view> fragments) {
    SCOPED_TRACE(::testing::Message() << "name \"" << name << "\"");
    auto r = add(name);
    ASSERT_FALSE(r) << "accepted";
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    for (std::string_view f : fragments) {
      EXPECT_NE(r.error().message.find(f), std::string::npos)
          << "'" << f << "' not in: " << r.error().message;
    }
    auto lookup = engine_.function(name);
    ASSERT_FALSE(lookup);
    EXPECT_EQ(lookup.error().code, ErrorCode::kNotFound);
  }

  ManualClock clock_;
  Engine engine_{{.workers = 1, .clock = &clock_}};
};

TEST_F(NamesTest, EmptyNameIsRejected) { expect_rejected("", {"function name is empty"}); }

TEST_F(NamesTest, SixtyFourCharactersAreAcceptedAndSixtyFiveAreNot) {
  const std::string longest(64, 'a');
  auto ok = add(longest);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->name(), longest);
  expect_rejected(std::string(65, 'b'), {"65 characters", "at most 64"});
  expect_rejected(std::string(1000, 'c'), {"1000 characters"});
}

TEST_F(NamesTest, ForbiddenCharacterIsNamedWithItsPosition) {
  expect_rejected("order book", {"'order book'", "character ' '", "position 5"});
  expect_rejected("pricing:quote", {"character ':'", "position 7"});
  expect_rejected("a/b", {"character '/'", "position 1"});
  expect_rejected("x*", {"character '*'", "position 1"});
  expect_rejected("tab\there", {"byte 9", "position 3"});
}

TEST_F(NamesTest, NonAsciiBytesAreNamedByValueAndPosition) {
  expect_rejected("caf\xc3\xa9", {"byte 195", "position 3"});
  expect_rejected(std::string_view("ab\0c", 4), {"byte 0", "position 2"});
}

TEST_F(NamesTest, NameMustStartWithALetterOrDigit) {
  expect_rejected(".hidden", {"'.hidden'", "must start with a letter or digit"});
  expect_rejected("-flag", {"must start with a letter or digit"});
  expect_rejected("_private", {"must start with a letter or digit"});
  expect_rejected(" padded", {"must start with a letter or digit"});
}

TEST_F(NamesTest, LettersDigitsDotsUnderscoresAndDashesAreAccepted) {
  for (std::string_view name : {"a", "Z", "9lives", "pricing.quote", "snake_case_name",
                                "kebab-case-name", "A.b_c-D9", "ends.with.dot.", "ends-", "x__"}) {
    auto r = add(name);
    ASSERT_TRUE(r) << name << ": " << r.error().message;
    EXPECT_EQ(r->name(), name);
    auto found = engine_.function(name);
    ASSERT_TRUE(found) << name;
    EXPECT_EQ(*found, *r);
  }
}

TEST_F(NamesTest, NamesAreCaseSensitive) {
  auto lower = add("quote");
  auto upper = add("Quote");
  ASSERT_TRUE(lower);
  ASSERT_TRUE(upper) << upper.error().message;
  EXPECT_NE(*lower, *upper);
  EXPECT_EQ(engine_.function("QUOTE").error().code, ErrorCode::kNotFound);
}

TEST_F(NamesTest, RejectedNameLeavesTheEngineUnchanged) {
  expect_rejected("pricing:quote", {"':'"});
  // The part before the colon was not registered either, and the engine still works.
  EXPECT_EQ(engine_.function("pricing").error().code, ErrorCode::kNotFound);
  auto fn = add("pricing");
  ASSERT_TRUE(fn) << fn.error().message;
  EXPECT_EQ(engine_.invoke(*fn, "ok").value(), "ok");
  // The qualifier syntax is for lookups: "pricing:$LATEST" finds it, never registers it.
  EXPECT_EQ(engine_.function("pricing:$LATEST").value(), *fn);
}

TEST_F(NamesTest, TypedRegistrationValidatesNamesToo) {
  auto r = engine_.register_function<int, int>(
      "bad name", {}, [](Context&, const int& v) -> Result<int> { return v; });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("position 3"), std::string::npos) << r.error().message;
  EXPECT_FALSE(engine_.function("bad name"));
}

}  // namespace
}  // namespace ember::testing
