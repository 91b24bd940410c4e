// chrome_trace_test.cpp — tests src/observe/chrome_trace.cpp: spans built by hand, rendered,
// and parsed back with nlohmann::json (strict: invalid JSON or UTF-8 throws), checking the
// metadata, complete events, flow arrows, nesting, ordering and escaping.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "ember/observe.hpp"
#include "ember/result.hpp"

namespace ember {
namespace {

using nlohmann::json;

constexpr TraceId kTrace{.hi = 0x0123456789abcdefULL, .lo = 0xfedcba9876543210ULL};
constexpr std::int64_t kOrigin = 5'000'000'000;  // the engine clock's arbitrary origin

// A root on thread 1, an inline child nested in it on thread 1, and a pooled child on thread 2.
std::vector<Span> three_spans() {
  Span root{.trace_id = kTrace,
            .span_id = 0x1111,
            .function = "pricing.quote",
            .version = "$LATEST",
            .request_id = "req-root",
            .start_ns = kOrigin,
            .duration_ns = 10'000'000,
            .thread = 1,
            .thread_name = "caller 0",
            .fiber = 7};
  Span inline_child{.trace_id = kTrace,
                    .span_id = 0x2222,
                    .parent_span_id = 0x1111,
                    .function = "pricing.tax",
                    .version = "3",
                    .request_id = "req-inline",
                    .start_ns = kOrigin + 1'000'500,
                    .duration_ns = 2'000'250,
                    .thread = 1,
                    .thread_name = "caller 0",
                    .fiber = 8};
  Span pooled_child{.trace_id = kTrace,
                    .span_id = 0xfedcba9876543210ULL,
                    .parent_span_id = 0x1111,
                    .function = "pricing.fx",
                    .version = "$LATEST",
                    .request_id = "req-pooled",
                    .start_ns = kOrigin + 4'000'001,
                    .duration_ns = 3'000'000,
                    .error = ErrorCode::kTimeout,
                    .thread = 2,
                    .thread_name = "worker 0",
                    .fiber = 9,
                    .attempt = 2};
  return {root, inline_child, pooled_child};
}

json render(const std::vector<Span>& spans) { return json::parse(chrome_trace_json(spans)); }

std::vector<json> events_of(const json& trace, std::string_view ph) {
  std::vector<json> out;
  for (const json& e : trace.at("traceEvents")) {
    if (e.at("ph") == ph) out.push_back(e);
  }
  return out;
}

// ts/dur in microseconds with 3 decimals -> exact nanoseconds.
std::int64_t ns(const json& us) { return std::llround(us.get<double>() * 1000.0); }

TEST(ChromeTraceTest, EmptyInputIsAValidEmptyTrace) {
  const std::string text = chrome_trace_json({});
  EXPECT_EQ(text, R"({"traceEvents":[],"displayTimeUnit":"ns"})");
  const json j = json::parse(text);
  EXPECT_TRUE(j.at("traceEvents").is_array());
  EXPECT_TRUE(j.at("traceEvents").empty());
}

TEST(ChromeTraceTest, IsValidJsonWithNanosecondDisplayUnit) {
  const json j = render(three_spans());
  EXPECT_EQ(j.at("displayTimeUnit"), "ns");
  ASSERT_TRUE(j.at("traceEvents").is_array());
  // process_name, 2 thread_name, 3 X, one flow pair.
  EXPECT_EQ(j.at("traceEvents").size(), 8u);
}

TEST(ChromeTraceTest, NamesTheProcessAndEachThreadOnce) {
  const std::vector<json> meta = events_of(render(three_spans()), "M");
  ASSERT_EQ(meta.size(), 3u);
  EXPECT_EQ(meta[0], json::parse(R"({"ph":"M","name":"process_name","pid":1,"tid":0,
                                     "args":{"name":"ember"}})"));
  EXPECT_EQ(meta[1], json::parse(R"({"ph":"M","name":"thread_name","pid":1,"tid":1,
                                     "args":{"name":"caller 0"}})"));
  EXPECT_EQ(meta[2], json::parse(R"({"ph":"M","name":"thread_name","pid":1,"tid":2,
                                     "args":{"name":"worker 0"}})"));
}

TEST(ChromeTraceTest, OneCompleteEventPerSpanWithExactFields) {
  const std::vector<json> x = events_of(render(three_spans()), "X");
  ASSERT_EQ(x.size(), 3u);
  EXPECT_EQ(x[0], json::parse(R"({"ph":"X","name":"pricing.quote","cat":"invoke","pid":1,"tid":1,
      "ts":0.0,"dur":10000.0,"args":{"trace_id":"0123456789abcdeffedcba9876543210",
      "span_id":"0000000000001111","parent_span_id":"","version":"$LATEST",
      "request_id":"req-root","fiber":7,"outcome":"ok","attempt":0}})"));
  EXPECT_EQ(x[1], json::parse(R"({"ph":"X","name":"pricing.tax","cat":"invoke","pid":1,"tid":1,
      "ts":1000.5,"dur":2000.25,"args":{"trace_id":"0123456789abcdeffedcba9876543210",
      "span_id":"0000000000002222","parent_span_id":"0000000000001111","version":"3",
      "request_id":"req-inline","fiber":8,"outcome":"ok","attempt":0}})"));
  EXPECT_EQ(x[2], json::parse(R"({"ph":"X","name":"pricing.fx","cat":"invoke","pid":1,"tid":2,
      "ts":4000.001,"dur":3000.0,"args":{"trace_id":"0123456789abcdeffedcba9876543210",
      "span_id":"fedcba9876543210","parent_span_id":"0000000000001111","version":"$LATEST",
      "request_id":"req-pooled","fiber":9,"outcome":"Timeout","attempt":2}})"));
}

TEST(ChromeTraceTest, TimesAreMicrosecondsWithThreeDecimals) {
  const std::string text = chrome_trace_json(three_spans());
  EXPECT_NE(text.find(R"("ts":0.000,"dur":10000.000)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("ts":1000.500,"dur":2000.250)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("ts":4000.001,"dur":3000.000)"), std::string::npos) << text;
}

TEST(ChromeTraceTest, FlowArrowOnlyForTheCrossThreadChild) {
  const json j = render(three_spans());
  const std::vector<json> s = events_of(j, "s");
  const std::vector<json> f = events_of(j, "f");
  ASSERT_EQ(s.size(), 1u);
  ASSERT_EQ(f.size(), 1u);
  // Leaves the parent's track (tid 1) at the child's start, lands on the child's (tid 2).
  EXPECT_EQ(s[0], json::parse(R"({"ph":"s","name":"invoke","cat":"invoke",
      "id":"0xfedcba9876543210","pid":1,"tid":1,"ts":4000.001})"));
  EXPECT_EQ(f[0], json::parse(R"({"ph":"f","bp":"e","name":"invoke","cat":"invoke",
      "id":"0xfedcba9876543210","pid":1,"tid":2,"ts":4000.001})"));
  // The arrow's start lies inside the parent's slice, its end at the child's start.
  const json root = events_of(j, "X")[0];
  EXPECT_GE(ns(s[0].at("ts")), ns(root.at("ts")));
  EXPECT_LT(ns(s[0].at("ts")), ns(root.at("ts")) + ns(root.at("dur")));
}

TEST(ChromeTraceTest, NestedEventsOnATrackAreContainedInTime) {
  const std::vector<json> x = events_of(render(three_spans()), "X");
  for (std::size_t a = 0; a < x.size(); ++a) {
    for (std::size_t b = 0; b < x.size(); ++b) {
      if (a == b || x[a].at("tid") != x[b].at("tid")) continue;
      const std::int64_t a0 = ns(x[a].at("ts")), a1 = a0 + ns(x[a].at("dur"));
      const std::int64_t b0 = ns(x[b].at("ts")), b1 = b0 + ns(x[b].at("dur"));
      const bool disjoint = a1 <= b0 || b1 <= a0;
      const bool nested = (a0 <= b0 && b1 <= a1) || (b0 <= a0 && a1 <= b1);
      EXPECT_TRUE(disjoint || nested) << x[a] << " overlaps " << x[b];
    }
  }
  // The inline child sits inside the root, on the same track.
  EXPECT_EQ(x[1].at("tid"), x[0].at("tid"));
  EXPECT_GE(ns(x[1].at("ts")), ns(x[0].at("ts")));
  EXPECT_LE(ns(x[1].at("ts")) + ns(x[1].at("dur")), ns(x[0].at("ts")) + ns(x[0].at("dur")));
}

TEST(ChromeTraceTest, OutputDoesNotDependOnInputOrder) {
  std::vector<Span> spans = three_spans();
  spans.push_back(spans[1]);
  spans.back().span_id = 0x3333;
  spans.back().start_ns = spans[1].start_ns;  // same start as a sibling: broken by span id
  spans.back().duration_ns = spans[1].duration_ns;
  const std::string expected = chrome_trace_json(spans);
  std::mt19937 rng(7);
  for (int i = 0; i < 20; ++i) {
    std::shuffle(spans.begin(), spans.end(), rng);
    EXPECT_EQ(chrome_trace_json(spans), expected);
  }
}

TEST(ChromeTraceTest, MetadataFirstThenSpansByThreadAndStartThenFlows) {
  std::vector<Span> spans = three_spans();
  std::reverse(spans.begin(), spans.end());
  const json j = render(spans);
  std::string phases;
  for (const json& e : j.at("traceEvents")) phases += e.at("ph").get<std::string>();
  EXPECT_EQ(phases, "MMMXXXsf");
  const std::vector<json> x = events_of(j, "X");
  EXPECT_EQ(x[0].at("name"), "pricing.quote");
  EXPECT_EQ(x[1].at("name"), "pricing.tax");
  EXPECT_EQ(x[2].at("name"), "pricing.fx");
}

TEST(ChromeTraceTest, EnclosingSpanComesFirstWhenStartsTie) {
  std::vector<Span> spans = three_spans();
  spans[1].start_ns = spans[0].start_ns;  // the inline child starts with its parent
  spans[1].span_id = 0x0001;              // and has the smaller id
  spans[1].parent_span_id = spans[0].span_id;
  const std::vector<json> x = events_of(render(spans), "X");
  EXPECT_EQ(x[0].at("name"), "pricing.quote");
  EXPECT_EQ(x[1].at("name"), "pricing.tax");
}

TEST(ChromeTraceTest, EscapesOddFunctionAndThreadNames) {
  std::vector<Span> spans = three_spans();
  spans[0].function = "we\"ird\\name\n\t\x01\x7f caf\xC3\xA9 \xff";
  spans[0].thread_name = "caller \"0\"\n";
  spans[0].request_id = "\xC0\xAF";
  const std::string text = chrome_trace_json(spans);
  const json j = json::parse(text);
  EXPECT_NE(text.find(R"("name":"we\"ird\\name\n\t\u0001)"), std::string::npos) << text;
  const std::vector<json> x = events_of(j, "X");
  EXPECT_EQ(x[0].at("name"), "we\"ird\\name\n\t\x01\x7f caf\xC3\xA9 \xEF\xBF\xBD");
  EXPECT_EQ(x[0].at("args").at("request_id"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(events_of(j, "M")[1].at("args").at("name"), "caller \"0\"\n");
}

TEST(ChromeTraceTest, OutcomeNamesEveryErrorCode) {
  const std::vector<std::pair<ErrorCode, std::string>> names = {
      {ErrorCode::kOk, "Ok"},
      {ErrorCode::kNotFound, "NotFound"},
      {ErrorCode::kAlreadyExists, "AlreadyExists"},
      {ErrorCode::kInvalidArgument, "InvalidArgument"},
      {ErrorCode::kThrottled, "Throttled"},
      {ErrorCode::kQueueFull, "QueueFull"},
      {ErrorCode::kTimeout, "Timeout"},
      {ErrorCode::kCancelled, "Cancelled"},
      {ErrorCode::kHandlerFailed, "HandlerFailed"},
      {ErrorCode::kPayloadTooLarge, "PayloadTooLarge"},
      {ErrorCode::kRecursionLimit, "RecursionLimit"},
      {ErrorCode::kShuttingDown, "ShuttingDown"},
      {ErrorCode::kNotInHandler, "NotInHandler"},
      {ErrorCode::kInternal, "Internal"},
      {ErrorCode::kPluginInvalid, "PluginInvalid"},
  };
  for (const auto& [code, name] : names) {
    std::vector<Span> spans = three_spans();
    spans.resize(1);
    spans[0].error = code;
    EXPECT_EQ(events_of(render(spans), "X")[0].at("args").at("outcome"), name) << name;
  }
}

TEST(ChromeTraceTest, ArrowToAnAsyncChildLeavesFromInsideItsParent) {
  // The parent returned before its async child started on another thread.
  Span parent{.trace_id = kTrace,
              .span_id = 1,
              .function = "p",
              .start_ns = 0,
              .duration_ns = 1'000,
              .thread = 1};
  Span child{.trace_id = kTrace,
             .span_id = 2,
             .parent_span_id = 1,
             .function = "c",
             .start_ns = 5'000,
             .duration_ns = 10,
             .thread = 2};
  const json j = render({parent, child});
  const std::vector<json> s = events_of(j, "s");
  const std::vector<json> f = events_of(j, "f");
  ASSERT_EQ(s.size(), 1u);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(ns(s[0].at("ts")), 999);  // the parent's last nanosecond
  EXPECT_EQ(s[0].at("tid"), 1);
  EXPECT_EQ(ns(f[0].at("ts")), 5'000);
  EXPECT_EQ(f[0].at("tid"), 2);
  EXPECT_EQ(s[0].at("id"), f[0].at("id"));
}

TEST(ChromeTraceTest, NoArrowWhenTheParentIsMissingOrInAnotherTrace) {
  std::vector<Span> spans = three_spans();
  spans[0].trace_id.lo ^= 1;  // the root is now in another trace with the same span id
  EXPECT_TRUE(events_of(render(spans), "s").empty());
  spans.erase(spans.begin());  // and now gone
  const json j = render(spans);
  EXPECT_TRUE(events_of(j, "s").empty());
  EXPECT_TRUE(events_of(j, "f").empty());
  EXPECT_EQ(events_of(j, "X").size(), 2u);
}

TEST(ChromeTraceTest, UnnamedThreadGetsADefaultName) {
  std::vector<Span> spans = three_spans();
  for (Span& s : spans) s.thread_name.clear();
  const std::vector<json> meta = events_of(render(spans), "M");
  ASSERT_EQ(meta.size(), 3u);
  EXPECT_EQ(meta[1].at("args").at("name"), "thread 1");
  EXPECT_EQ(meta[2].at("args").at("name"), "thread 2");
}

TEST(ChromeTraceTest, TimesCountFromTheEarliestStartWithoutOverflow) {
  Span first{.span_id = 1, .start_ns = std::numeric_limits<std::int64_t>::min(), .thread = 1};
  Span last{.span_id = 2,
            .start_ns = std::numeric_limits<std::int64_t>::max(),
            .duration_ns = 1,
            .thread = 2};
  const std::string text = chrome_trace_json({last, first});
  EXPECT_TRUE(json::accept(text));
  EXPECT_NE(text.find(R"("ts":0.000,"dur":0.000)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("ts":18446744073709551.615,"dur":0.001)"), std::string::npos) << text;
}

}  // namespace
}  // namespace ember
