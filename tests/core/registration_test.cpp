// Registration and configuration: duplicate names, FunctionConfig and EngineOptions validation
// (each error names its field and changes nothing), reservations, lookups and handles.
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace ember::testing {
namespace {

void expect_error(const Error& e, ErrorCode code,
                  std::initializer_list<std::string_view> fragments) {
  EXPECT_EQ(e.code, code) << e.message;
  for (std::string_view f : fragments) {
    EXPECT_NE(e.message.find(f), std::string::npos) << "'" << f << "' not in: " << e.message;
  }
}

class RegistrationTest : public ::testing::Test {
 protected:
  ManualClock clock_;
  LogCapture logs_;
  Engine engine_{{.workers = 2,
                  .concurrency_limit = 10,
                  .min_unreserved_concurrency = 4,
                  .clock = &clock_,
                  .log_sink = logs_.sink()}};
};

TEST_F(RegistrationTest, DuplicateNameIsAlreadyExistsAndKeepsTheFirst) {
  auto first = engine_.register_function("echo", {}, echo_handler());
  ASSERT_TRUE(first);
  auto second = engine_.register_function(
      "echo", {}, [](Context&, std::string_view) -> Result<std::string> { return "second"; });
  ASSERT_FALSE(second);
  expect_error(second.error(), ErrorCode::kAlreadyExists, {"'echo'", "already registered"});
  EXPECT_EQ(engine_.function("echo").value(), *first);
  EXPECT_EQ(engine_.invoke("echo", "first").value(), "first");
  // A typed registration under a taken name is refused the same way.
  auto typed = engine_.register_function<int, int>(
      "echo", {}, [](Context&, const int& v) -> Result<int> { return v; });
  ASSERT_FALSE(typed);
  EXPECT_EQ(typed.error().code, ErrorCode::kAlreadyExists);
}

struct BadConfig {
  const char* what;
  std::function<void(FunctionConfig&)> spoil;
  const char* fragment;
};

TEST_F(RegistrationTest, EachInvalidConfigFieldIsNamedAndNothingIsRegistered) {
  const std::vector<BadConfig> cases = {
      {"zero timeout", [](FunctionConfig& c) { c.timeout = absl::ZeroDuration(); },
       "FunctionConfig.timeout"},
      {"negative timeout", [](FunctionConfig& c) { c.timeout = absl::Seconds(-1); },
       "FunctionConfig.timeout"},
      {"infinite timeout", [](FunctionConfig& c) { c.timeout = absl::InfiniteDuration(); },
       "FunctionConfig.timeout"},
      {"memory 127", [](FunctionConfig& c) { c.memory_mb = 127; },
       "FunctionConfig.memory_mb = 127"},
      {"memory 10241", [](FunctionConfig& c) { c.memory_mb = 10241; },
       "FunctionConfig.memory_mb = 10241"},
      {"reserved 0", [](FunctionConfig& c) { c.reserved_concurrency = 0; },
       "FunctionConfig.reserved_concurrency = 0"},
      {"reserved -3", [](FunctionConfig& c) { c.reserved_concurrency = -3; },
       "FunctionConfig.reserved_concurrency = -3"},
      {"stack 0", [](FunctionConfig& c) { c.stack_size = 0; }, "FunctionConfig.stack_size = 0"},
      {"stack 16 KiB - 1", [](FunctionConfig& c) { c.stack_size = 16 * 1024 - 1; },
       "FunctionConfig.stack_size = 16383"},
      {"negative queue wait", [](FunctionConfig& c) { c.max_queue_wait = absl::Milliseconds(-1); },
       "FunctionConfig.max_queue_wait"},
      {"infinite queue wait",
       [](FunctionConfig& c) { c.max_queue_wait = absl::InfiniteDuration(); },
       "FunctionConfig.max_queue_wait"},
  };
  const EngineStats before = engine_.stats();
  for (const BadConfig& bad : cases) {
    SCOPED_TRACE(bad.what);
    FunctionConfig config;
    bad.spoil(config);
    auto r = engine_.register_function("fn", config, echo_handler());
    ASSERT_FALSE(r);
    expect_error(r.error(), ErrorCode::kInvalidArgument, {"function 'fn'", bad.fragment});
    EXPECT_EQ(engine_.function("fn").error().code, ErrorCode::kNotFound);
  }
  // Nothing was reserved by the refused reservations, and the name is still free.
  EXPECT_EQ(engine_.stats().unreserved_available, before.unreserved_available);
  ASSERT_TRUE(engine_.register_function("fn", {}, echo_handler()));
}

TEST_F(RegistrationTest, BoundaryConfigValuesAreAccepted) {
  FunctionConfig low{.timeout = absl::Nanoseconds(1),
                     .memory_mb = 128,
                     .reserved_concurrency = 1,
                     .stack_size = 16 * 1024,
                     .max_queue_wait = absl::ZeroDuration()};
  auto a = engine_.register_function("low", low, echo_handler());
  EXPECT_TRUE(a) << a.error().message;
  FunctionConfig high{.memory_mb = 10240, .stack_size = (std::size_t{16} << 10) + 1};
  auto b = engine_.register_function("high", high, echo_handler());
  EXPECT_TRUE(b) << b.error().message;
}

TEST_F(RegistrationTest, EmptyHandlerIsRejected) {
  auto r = engine_.register_function("nothing", {}, BytesHandler{});
  ASSERT_FALSE(r);
  expect_error(r.error(), ErrorCode::kInvalidArgument, {"'nothing'", "handler is empty"});
  EXPECT_EQ(engine_.function("nothing").error().code, ErrorCode::kNotFound);
}

TEST_F(RegistrationTest, ReservationsShrinkTheUnreservedPool) {
  EXPECT_EQ(engine_.stats().unreserved_available, 10);
  ASSERT_TRUE(engine_.register_function("a", {.reserved_concurrency = 4}, echo_handler()));
  EXPECT_EQ(engine_.stats().unreserved_available, 6);
  ASSERT_TRUE(engine_.register_function("b", {.reserved_concurrency = 2}, echo_handler()));
  EXPECT_EQ(engine_.stats().unreserved_available, 4);
  ASSERT_TRUE(engine_.register_function("shared", {}, echo_handler()));
  EXPECT_EQ(engine_.stats().unreserved_available, 4);
}

TEST_F(RegistrationTest, ReservationLeavingTooLittleUnreservedIsRefusedAndChangesNothing) {
  ASSERT_TRUE(engine_.register_function("big", {.reserved_concurrency = 6}, echo_handler()));
  auto r = engine_.register_function("more", {.reserved_concurrency = 1}, echo_handler());
  ASSERT_FALSE(r);
  expect_error(r.error(), ErrorCode::kInvalidArgument,
               {"'more'", "reserved_concurrency 1", "would leave 3 unreserved",
                "min_unreserved_concurrency 4"});
  EXPECT_EQ(engine_.function("more").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(engine_.stats().unreserved_available, 4);
  ASSERT_TRUE(engine_.register_function("more", {}, echo_handler()));  // unreserved is fine
}

TEST_F(RegistrationTest, ConcurrentReservationsNeverExceedTheEngine) {
  // 8 threads each try to reserve 2 of the 6 that may be reserved: exactly 3 succeed.
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      auto r = engine_.register_function("r" + std::to_string(i), {.reserved_concurrency = 2},
                                         echo_handler());
      if (r) granted.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(granted.load(), 3);
  EXPECT_EQ(engine_.stats().unreserved_available, 4);
}

TEST_F(RegistrationTest, ConcurrentRegistrationsOfOneNameHaveOneWinner) {
  std::atomic<int> winners{0}, duplicates{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      auto r = engine_.register_function("contested", {}, echo_handler());
      if (r) {
        winners.fetch_add(1);
      } else if (r.error().code == ErrorCode::kAlreadyExists) {
        duplicates.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(winners.load(), 1);
  EXPECT_EQ(duplicates.load(), 7);
}

TEST_F(RegistrationTest, FunctionResolvesToTheRegisteredHandle) {
  auto fn = engine_.register_function("x", {}, echo_handler());
  ASSERT_TRUE(fn);
  EXPECT_TRUE(fn->valid());
  EXPECT_EQ(fn->name(), "x");
  EXPECT_EQ(fn->version(), "$LATEST");
  EXPECT_EQ(engine_.function("x").value(), *fn);
  EXPECT_EQ(engine_.function("x:$LATEST").value(), *fn);
  auto missing = engine_.function("y");
  ASSERT_FALSE(missing);
  expect_error(missing.error(), ErrorCode::kNotFound, {"'y'"});
  auto wrong_version = engine_.function("x:3");
  ASSERT_FALSE(wrong_version);
  expect_error(wrong_version.error(), ErrorCode::kNotFound, {"'x'", "'3'"});
}

TEST_F(RegistrationTest, DefaultHandleIsInvalidAndNamesNothing) {
  FunctionHandle none;
  EXPECT_FALSE(none.valid());
  EXPECT_EQ(none.name(), "");
  EXPECT_EQ(none.version(), "");
  EXPECT_EQ(none, FunctionHandle{});
}

TEST_F(RegistrationTest, TypedFunctionsResolveLikeBytesFunctions) {
  auto fn = engine_.register_function<int, int>(
      "double", {}, [](Context&, const int& v) -> Result<int> { return 2 * v; });
  ASSERT_TRUE(fn);
  EXPECT_EQ(fn->name(), "double");
  EXPECT_EQ(fn->version(), "$LATEST");
  auto found = engine_.function("double");
  ASSERT_TRUE(found);
  EXPECT_EQ(engine_.invoke<int>(*found, 21).value(), 42);
}

// ---- EngineOptions ----

struct BadOptions {
  const char* what;
  std::function<void(EngineOptions&)> spoil;
  const char* fragment;
};

std::vector<BadOptions> bad_options() {
  return {
      {"workers -1", [](EngineOptions& o) { o.workers = -1; }, "EngineOptions.workers = -1"},
      {"workers 1025", [](EngineOptions& o) { o.workers = 1025; }, "EngineOptions.workers = 1025"},
      {"limit 0", [](EngineOptions& o) { o.concurrency_limit = 0; },
       "EngineOptions.concurrency_limit = 0"},
      {"min unreserved > limit",
       [](EngineOptions& o) {
         o.concurrency_limit = 10;
         o.min_unreserved_concurrency = 11;
       },
       "EngineOptions.min_unreserved_concurrency = 11"},
      {"min unreserved -1", [](EngineOptions& o) { o.min_unreserved_concurrency = -1; },
       "EngineOptions.min_unreserved_concurrency = -1"},
      {"depth 0", [](EngineOptions& o) { o.max_invoke_depth = 0; },
       "EngineOptions.max_invoke_depth = 0"},
      {"sync payload 0", [](EngineOptions& o) { o.max_sync_payload = 0; },
       "EngineOptions.max_sync_payload = 0"},
      {"async payload 0", [](EngineOptions& o) { o.max_async_payload = 0; },
       "EngineOptions.max_async_payload = 0"},
      {"queued -1", [](EngineOptions& o) { o.max_queued_per_function = -1; },
       "EngineOptions.max_queued_per_function = -1"},
      {"negative spin", [](EngineOptions& o) { o.spin_before_park = absl::Microseconds(-1); },
       "EngineOptions.spin_before_park"},
  };
}

TEST(EngineOptionsTest, CreateRefusesEachInvalidFieldByName) {
  ManualClock clock;
  for (const BadOptions& bad : bad_options()) {
    SCOPED_TRACE(bad.what);
    EngineOptions o{.workers = 1, .clock = &clock};
    bad.spoil(o);
    auto engine = Engine::create(o);
    ASSERT_FALSE(engine);
    expect_error(engine.error(), ErrorCode::kInvalidArgument, {bad.fragment});
  }
}

TEST(EngineOptionsTest, EngineWithInvalidOptionsRefusesEveryCallWithThatError) {
  ManualClock clock;
  for (const BadOptions& bad : bad_options()) {
    SCOPED_TRACE(bad.what);
    EngineOptions o{.workers = 1, .clock = &clock};
    bad.spoil(o);
    Engine engine{o};
    auto status = engine.status();
    ASSERT_FALSE(status);
    expect_error(status.error(), ErrorCode::kInvalidArgument, {bad.fragment});
    auto reg = engine.register_function("f", {}, echo_handler());
    ASSERT_FALSE(reg);
    EXPECT_EQ(reg.error(), status.error());
    auto by_name = engine.invoke("f", "");
    ASSERT_FALSE(by_name);
    EXPECT_EQ(by_name.error(), status.error());
    auto lookup = engine.function("f");
    ASSERT_FALSE(lookup);
    EXPECT_EQ(lookup.error(), status.error());
    engine.shutdown();  // harmless, as is the destructor
    EXPECT_EQ(engine.stats().in_flight, 0);
  }
}

TEST(EngineOptionsTest, ValidOptionsCreateAWorkingEngine) {
  ManualClock clock;
  for (int workers : {0, 1, 3}) {  // 0: one per hardware thread
    auto engine = Engine::create({.workers = workers,
                                  .concurrency_limit = 1,
                                  .min_unreserved_concurrency = 1,
                                  .max_invoke_depth = 1,
                                  .max_sync_payload = 1,
                                  .max_async_payload = 1,
                                  .max_queued_per_function = 0,
                                  .spin_before_park = absl::ZeroDuration(),
                                  .clock = &clock});
    ASSERT_TRUE(engine) << engine.error().message;
    EXPECT_TRUE((*engine)->status());
    auto fn = (*engine)->register_function("echo", {}, echo_handler());
    ASSERT_TRUE(fn);
    EXPECT_EQ((*engine)->invoke(*fn, "x", {.dispatch = Dispatch::kPool}).value(), "x");
  }
}

}  // namespace
}  // namespace ember::testing
