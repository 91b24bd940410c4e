// `ember bench`: a short, bounded run; checks what is reported, never how fast it was.
#include "cli_test_support.hpp"

namespace ember::cli_test {
namespace {

// "  invocations  1,234" -> 1234.
std::uint64_t invocations_of(const std::string& out) {
  std::string digits = digits_after(out, "invocations  ");
  std::erase(digits, ',');
  return digits.empty() ? 0 : std::stoull(digits);
}

TEST(CliBenchTest, ReportsThroughputPercentilesAndAHistogram) {
  const Output o = ember({"bench", plugin("libhello.so"), "hello.greet", "--duration", "200ms",
                          "--concurrency", "2", "--payload", "bench"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_TRUE(contains(o.out, "hello.greet: 2 callers, inline dispatch")) << o.out;
  EXPECT_GT(invocations_of(o.out), 0u) << o.out;
  for (const char* expected : {"throughput   ", "/s\n", "errors       0\n", "  p50  ", "  p90  ",
                               "  p99  ", "  p99.9", "  max  ", "histogram\n", "\u2588"}) {
    EXPECT_TRUE(contains(o.out, expected)) << expected << "\n" << o.out;
  }
  // stderr is no terminal here: one plain line, no progress bar.
  EXPECT_TRUE(contains(o.err, "ember bench: hello.greet: 2 callers for 200ms")) << o.err;
  EXPECT_FALSE(contains(o.err, "\r")) << o.err;
}

TEST(CliBenchTest, DrawsWithHashesWhenTheLocaleIsNotUtf8) {
  const Output o =
      ember({"bench", plugin("libhello.so"), "hello.greet", "-d", "100ms"}, {{"LANG", "C"}});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_TRUE(contains(o.out, "#")) << o.out;
  EXPECT_FALSE(contains(o.out, "\u2588")) << o.out;
  EXPECT_FALSE(contains(o.out, "\u00b5")) << o.out;
}

TEST(CliBenchTest, CountsErrorsByTypeWithPoolDispatch) {
  const Output o =
      ember({"bench", plugin("libhello.so"), "hello.fail", "-d", "100ms", "--dispatch", "pool"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_TRUE(contains(o.out, "pool dispatch")) << o.out;
  const std::uint64_t n = invocations_of(o.out);
  ASSERT_GT(n, 0u) << o.out;
  // Every invoke failed (empty payload), and the report says how and why.
  const std::string count = digits_after(o.out, "invocations  ");
  ASSERT_FALSE(count.empty()) << o.out;
  EXPECT_TRUE(contains(o.out, "errors       " + count + " (100.0%: ValidationError " + count + ")"))
      << o.out;
  EXPECT_TRUE(contains(o.out, "first error  ValidationError: payload must not be empty")) << o.out;
}

TEST(CliBenchTest, UnknownFunctionIsNamed) {
  const Output o = ember({"bench", plugin("libhello.so"), "hello.nope", "-d", "100ms"});
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_TRUE(contains(o.err, "\"hello.nope\"")) << o.err;
}

}  // namespace
}  // namespace ember::cli_test
