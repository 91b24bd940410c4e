// ember::function_error / function_error_json: an invocation's error as Lambda reports it
// ({"errorMessage","errorType"}), for the engine's own error shapes (a C++ handler's exception,
// a timeout) and for errors a handler returns itself. Plugin errors: tests/plugin/catalog_test.
#include <stdexcept>
#include <string>
#include <thread>

#include "test_support.hpp"

namespace ember::testing {
namespace {

using FunctionErrorTest = EngineTest;

TEST_P(FunctionErrorTest, AnExceptionIsItsTypeAndWhat) {
  auto fn = add("thrower", [](Context&, std::string_view) -> Result<std::string> {
    throw std::runtime_error("disk \"full\"");
  });
  auto r = engine().invoke(fn, "");
  ASSERT_FALSE(r);
  const FunctionError e = function_error(r.error());
  EXPECT_EQ(e.type, "std::runtime_error");
  EXPECT_EQ(e.message, "disk \"full\"");
  EXPECT_EQ(function_error_json(r.error()),
            R"({"errorMessage":"disk \"full\"","errorType":"std::runtime_error"})");
}

TEST_P(FunctionErrorTest, AThrownValueWithoutMessageIsNamedByItsType) {
  auto fn = add("int_thrower", [](Context&, std::string_view) -> Result<std::string> { throw 42; });
  auto r = engine().invoke(fn, "");
  ASSERT_FALSE(r);
  const FunctionError e = function_error(r.error());
  EXPECT_EQ(e.type, "int");
  EXPECT_NE(e.message.find("not derived from std::exception"), std::string::npos) << e.message;
}

TEST_P(FunctionErrorTest, ATimeoutIsSandboxTimedout) {
  Event started, release;
  auto fn = add("slow", [&](Context&, std::string_view) -> Result<std::string> {
    started.set();
    release.wait();  // computes past its deadline
    return "late";
  });
  std::thread mover([&] {
    started.wait();
    clock_.advance(absl::Seconds(4));
    release.set();
  });
  auto r = engine().invoke(fn, "", {.dispatch = Dispatch::kInline});
  mover.join();
  ASSERT_FALSE(r);
  ASSERT_EQ(r.error().code, ErrorCode::kTimeout);
  const FunctionError e = function_error(r.error());
  EXPECT_EQ(e.type, "Sandbox.Timedout");
  EXPECT_EQ(e.message, "Task timed out after 3.00 seconds");
}

TEST_P(FunctionErrorTest, AnErrorTheHandlerReturnsKeepsItsCodeNameAndMessage) {
  auto fn = add("picky", [](Context&, std::string_view) -> Result<std::string> {
    return fail(ErrorCode::kInvalidArgument, "quantity must be positive");
  });
  auto r = engine().invoke(fn, "");
  ASSERT_FALSE(r);
  const FunctionError e = function_error(r.error());
  EXPECT_EQ(e.type, error_code_name(r.error().code));
  EXPECT_NE(e.message.find("quantity must be positive"), std::string::npos) << e.message;
}

TEST(FunctionErrorShapes, MessagesInOtherShapesAreKeptWhole) {
  // A handler-failed error that does not come from the engine's own wording.
  const Error odd{ErrorCode::kHandlerFailed, "function 'f' exploded: boom"};
  EXPECT_EQ(function_error(odd).type, "HandlerFailed");
  EXPECT_EQ(function_error(odd).message, odd.message);
  const Error bare{ErrorCode::kHandlerFailed, "no function prefix: here"};
  EXPECT_EQ(function_error(bare).type, "HandlerFailed");
  // Control characters and invalid UTF-8 still give valid JSON.
  const Error nasty{ErrorCode::kThrottled, std::string("a\nb\x01\xff\0", 6)};
  EXPECT_EQ(function_error_json(nasty),
            "{\"errorMessage\":\"a\\nb\\u0001\xEF\xBF\xBD\\u0000\",\"errorType\":\"Throttled\"}");
}

INSTANTIATE_TEST_SUITE_P(Workers, FunctionErrorTest, EMBER_WORKER_COUNTS);

}  // namespace
}  // namespace ember::testing
