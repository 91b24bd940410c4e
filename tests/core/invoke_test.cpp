// Sync invokes: inline and pool dispatch, nested invokes, typed invokes, handler errors.
#include <stdexcept>
#include <thread>

#include "test_support.hpp"

namespace ember::testing {
namespace {

using InvokeTest = EngineTest;

TEST_P(InvokeTest, InlineInvokeReturnsHandlerResult) {
  auto fn = add("echo", echo_handler());
  auto r = engine().invoke(fn, "hello");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "hello");
}

TEST_P(InvokeTest, InlineInvokeRunsOnTheCallingThread) {
  std::thread::id ran_on;
  auto fn = add("where", [&](Context&, std::string_view) -> Result<std::string> {
    ran_on = std::this_thread::get_id();
    return "";
  });
  ASSERT_TRUE(engine().invoke(fn, "", {.dispatch = Dispatch::kInline}));
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST_P(InvokeTest, PoolInvokeRunsOnAWorkerThread) {
  std::thread::id ran_on;
  auto fn = add("where", [&](Context&, std::string_view in) -> Result<std::string> {
    ran_on = std::this_thread::get_id();
    return std::string(in) + "!";
  });
  auto r = engine().invoke(fn, "x", {.dispatch = Dispatch::kPool});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "x!");
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST_P(InvokeTest, FunctionDefaultDispatchIsUsedAndCanBeOverridden) {
  std::thread::id ran_on;
  auto fn = add("pooled",
                [&](Context&, std::string_view) -> Result<std::string> {
                  ran_on = std::this_thread::get_id();
                  return "";
                },
                {.dispatch = Dispatch::kPool});
  ASSERT_TRUE(engine().invoke(fn, ""));
  EXPECT_NE(ran_on, std::this_thread::get_id());
  ASSERT_TRUE(engine().invoke(fn, "", {.dispatch = Dispatch::kInline}));
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST_P(InvokeTest, InvokeByNameAndQualifier) {
  add("echo", echo_handler());
  EXPECT_EQ(engine().invoke("echo", "a").value(), "a");
  EXPECT_EQ(engine().invoke("echo:$LATEST", "b").value(), "b");
  auto missing = engine().invoke("nope", "");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("'nope'"), std::string::npos);
  auto bad_version = engine().invoke("echo:7", "");
  ASSERT_FALSE(bad_version);
  EXPECT_EQ(bad_version.error().code, ErrorCode::kNotFound);
  EXPECT_NE(bad_version.error().message.find("'7'"), std::string::npos);
}

TEST_P(InvokeTest, HandlerErrorIsPassedThroughUnchanged) {
  auto fn = add("fails", [](Context&, std::string_view) -> Result<std::string> {
    return fail(ErrorCode::kInvalidArgument, "bad order id");
  });
  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    auto r = engine().invoke(fn, "", {.dispatch = d});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(r.error().message, "bad order id");
  }
  EXPECT_EQ(engine().stats().handler_errors, 2u);
}

TEST_P(InvokeTest, StdExceptionBecomesHandlerFailedWithTypeAndWhat) {
  auto fn = add("throws", [](Context&, std::string_view) -> Result<std::string> {
    throw std::out_of_range("index 7");
  });
  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    auto r = engine().invoke(fn, "", {.dispatch = d});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kHandlerFailed);
    EXPECT_NE(r.error().message.find("std::out_of_range"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("index 7"), std::string::npos);
    EXPECT_NE(r.error().message.find("'throws'"), std::string::npos);
  }
}

struct NotAnException {
  int code;
};

TEST_P(InvokeTest, NonStdExceptionsBecomeHandlerFailedWithTheirType) {
  auto throws_int = add("int", [](Context&, std::string_view) -> Result<std::string> { throw 42; });
  auto throws_struct = add(
      "struct", [](Context&, std::string_view) -> Result<std::string> { throw NotAnException{3}; });
  auto r1 = engine().invoke(throws_int, "");
  ASSERT_FALSE(r1);
  EXPECT_EQ(r1.error().code, ErrorCode::kHandlerFailed);
  EXPECT_NE(r1.error().message.find("threw int"), std::string::npos) << r1.error().message;
  auto r2 = engine().invoke(throws_struct, "", {.dispatch = Dispatch::kPool});
  ASSERT_FALSE(r2);
  EXPECT_NE(r2.error().message.find("NotAnException"), std::string::npos) << r2.error().message;
  // The engine keeps working after handlers threw.
  auto echo = add("echo", echo_handler());
  EXPECT_EQ(engine().invoke(echo, "ok").value(), "ok");
}

TEST_P(InvokeTest, NestedInlineInvokeRunsOnTheSameThreadWithDepth) {
  std::thread::id outer_thread, inner_thread;
  int inner_depth = -1;
  add("inner", [&](Context& ctx, std::string_view in) -> Result<std::string> {
    inner_thread = std::this_thread::get_id();
    inner_depth = ctx.depth();
    return "<" + std::string(in) + ">";
  });
  auto outer = add("outer", [&](Context& ctx, std::string_view in) -> Result<std::string> {
    outer_thread = std::this_thread::get_id();
    auto r = ctx.invoke("inner", in);
    if (!r) return r;
    return "outer" + *r;
  });
  auto r = engine().invoke(outer, "x");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "outer<x>");
  EXPECT_EQ(outer_thread, inner_thread);
  EXPECT_EQ(inner_depth, 1);
}

TEST_P(InvokeTest, NestedPoolInvokeSuspendsTheCallerFiber) {
  add("inner",
      [](Context&, std::string_view in) -> Result<std::string> {
        return std::string(in) + "+inner";
      },
      {.dispatch = Dispatch::kPool});
  auto outer = add("outer", [](Context& ctx, std::string_view in) -> Result<std::string> {
    return ctx.invoke("inner", in);
  });
  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    auto r = engine().invoke(outer, "x", {.dispatch = d});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r, "x+inner");
  }
}

TEST_P(InvokeTest, EngineInvokeFromInsideAHandlerIsANestedInvoke) {
  int inner_depth = -1;
  add("inner", [&](Context& ctx, std::string_view) -> Result<std::string> {
    inner_depth = ctx.depth();
    return "in";
  });
  auto outer = add("outer", [&](Context& ctx, std::string_view) -> Result<std::string> {
    return ctx.engine().invoke("inner", "");
  });
  ASSERT_TRUE(engine().invoke(outer, ""));
  EXPECT_EQ(inner_depth, 1);
}

TEST_P(InvokeTest, RecursionPastTheLimitFailsWithRecursionLimit) {
  auto fn = add("loop", [](Context& ctx, std::string_view) -> Result<std::string> {
    return ctx.invoke("loop", "");
  });
  auto r = engine().invoke(fn, "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kRecursionLimit);
  EXPECT_NE(r.error().message.find("max_invoke_depth 16"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("loop -> loop"), std::string::npos);
}

TEST_P(InvokeTest, RecursionLimitIsConfigurable) {
  EngineOptions o = options();
  o.max_invoke_depth = 3;
  Engine engine{o};
  std::atomic<int> deepest{0};
  auto fn = engine
                .register_function("r", {},
                                   [&](Context& ctx, std::string_view) -> Result<std::string> {
                                     deepest = std::max(deepest.load(), ctx.depth());
                                     return ctx.invoke("r", "");
                                   })
                .value();
  auto r = engine.invoke(fn, "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kRecursionLimit);
  EXPECT_EQ(deepest.load(), 2);  // depths 0, 1, 2: three invocations
}

struct Order {
  int quantity;
  double price;
};
struct Quote {
  double total;
};

TEST_P(InvokeTest, TypedInvokePassesValuesWithoutSerialising) {
  const Order* seen = nullptr;
  auto fn = engine().register_function<Order, Quote>(
      "quote", {}, [&](Context&, const Order& o) -> Result<Quote> {
        seen = &o;
        return Quote{o.quantity * o.price};
      });
  ASSERT_TRUE(fn);
  Order order{3, 2.5};
  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    auto q = engine().invoke<Quote>(*fn, order, {.dispatch = d});
    ASSERT_TRUE(q) << q.error().message;
    EXPECT_DOUBLE_EQ(q->total, 7.5);
    EXPECT_EQ(seen, &order);  // by reference, not a copy
  }
}

TEST_P(InvokeTest, TypedInvokeWithWrongTypesIsAnErrorNamingThem) {
  auto fn = engine().register_function<Order, Quote>(
      "quote", {}, [](Context&, const Order& o) -> Result<Quote> { return Quote{o.price}; });
  ASSERT_TRUE(fn);
  auto wrong_in = engine().invoke<Quote>(*fn, 5);
  ASSERT_FALSE(wrong_in);
  EXPECT_EQ(wrong_in.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(wrong_in.error().message.find("Order"), std::string::npos) << wrong_in.error().message;
  EXPECT_NE(wrong_in.error().message.find("int"), std::string::npos);
  auto wrong_out = engine().invoke<int>(*fn, Order{1, 1});
  ASSERT_FALSE(wrong_out);
  EXPECT_EQ(wrong_out.error().code, ErrorCode::kInvalidArgument);
  auto as_bytes = engine().invoke(*fn, "payload");
  ASSERT_FALSE(as_bytes);
  EXPECT_EQ(as_bytes.error().code, ErrorCode::kInvalidArgument);
  auto bytes_fn = add("echo", echo_handler());
  auto typed_on_bytes = engine().invoke<Quote>(bytes_fn, Order{1, 1});
  ASSERT_FALSE(typed_on_bytes);
  EXPECT_EQ(typed_on_bytes.error().code, ErrorCode::kInvalidArgument);
}

TEST_P(InvokeTest, TypedHandlerExceptionBecomesHandlerFailed) {
  auto fn = engine().register_function<Order, Quote>(
      "quote", {},
      [](Context&, const Order&) -> Result<Quote> { throw std::runtime_error("no price"); });
  auto q = engine().invoke<Quote>(*fn, Order{1, 1});
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().code, ErrorCode::kHandlerFailed);
  EXPECT_NE(q.error().message.find("no price"), std::string::npos);
}

TEST_P(InvokeTest, TypedNestedInvokeFromContext) {
  ASSERT_TRUE((engine().register_function<Order, Quote>(
      "quote", {},
      [](Context&, const Order& o) -> Result<Quote> { return Quote{o.quantity * o.price}; })));
  auto outer = add("outer", [&](Context& ctx, std::string_view) -> Result<std::string> {
    auto quote = engine().function("quote").value();
    auto q = ctx.invoke<Quote>(quote, Order{2, 4.0});
    if (!q) return tl::unexpected(q.error());
    return std::to_string(static_cast<int>(q->total));
  });
  EXPECT_EQ(engine().invoke(outer, "").value(), "8");
}

TEST_P(InvokeTest, PayloadLimitsApplyToRequestsAndResponses) {
  EngineOptions o = options();
  o.max_sync_payload = 16;
  Engine engine{o};
  auto echo = engine.register_function("echo", {}, echo_handler()).value();
  auto big = engine.invoke(echo, std::string(17, 'x'));
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, ErrorCode::kPayloadTooLarge);
  EXPECT_NE(big.error().message.find("17 bytes"), std::string::npos);
  auto grow = engine
                  .register_function("grow", {},
                                     [](Context&, std::string_view) -> Result<std::string> {
                                       return std::string(100, 'y');
                                     })
                  .value();
  auto response = engine.invoke(grow, "", {.dispatch = Dispatch::kPool});
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().code, ErrorCode::kPayloadTooLarge);
  EXPECT_NE(response.error().message.find("response of 100 bytes"), std::string::npos);
}

TEST_P(InvokeTest, EmptyOrForeignHandlesAreRejected) {
  auto r = engine().invoke(FunctionHandle{}, "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  Engine other{options()};
  auto foreign = other.register_function("echo", {}, echo_handler()).value();
  auto r2 = engine().invoke(foreign, "");
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r2.error().message.find("another engine"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Workers, InvokeTest, EMBER_WORKER_COUNTS);

}  // namespace
}  // namespace ember::testing
