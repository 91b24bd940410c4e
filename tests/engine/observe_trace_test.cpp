// Engine observability end to end, besides metrics (observe_metrics_test.cpp): Lambda-shaped
// log lines (START, handler lines, END, REPORT, "Task timed out"), rendered by format_log_line
// in both formats and compared with golden lines; sampled traces (the span tree of nested and
// async invokes, propagation of an incoming trace, the span buffer, Chrome trace JSON); and
// lifecycle observers (invoke events, masks, unsubscribe, shutdown, observers that throw).
//
// Time moves only through the ManualClock (which starts at 1970-01-02T00:00:00Z): a handler
// that calls clock_.advance(d) runs for exactly d. Handlers that hold a slot block on an Event.
#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "test_support.hpp"

namespace ember::testing {
namespace {

constexpr std::int64_t kMs = 1'000'000;  // nanoseconds
constexpr std::string_view kReturnedLate = "handler returned after its caller was released";

// One log line as the sink saw it, rendered in both formats while its views were valid.
struct Line {
  LogKind kind;
  LogLevel level;
  std::string function, request_id, message, version;
  std::optional<InvocationReport> report;
  std::string text, json;
};

// A LogSink that keeps every line (thread-safe); throws on messages equal to `throw_on`.
class Lines {
 public:
  LogSink sink() {
    return [this](const LogRecord& r) {
      if (!throw_on_.empty() && r.message == throw_on_) throw std::runtime_error("sink failed");
      Line l{r.kind,
             r.level,
             std::string(r.function),
             std::string(r.request_id),
             std::string(r.message),
             std::string(r.version),
             r.report != nullptr ? std::optional(*r.report) : std::nullopt,
             format_log_line(r, LogFormat::kText),
             format_log_line(r, LogFormat::kJson)};
      {
        std::lock_guard<std::mutex> lock(mu_);
        all_.push_back(std::move(l));
      }
      changed_.notify();
    };
  }
  void throw_on(std::string message) { throw_on_ = std::move(message); }
  std::vector<Line> all() {
    std::lock_guard<std::mutex> lock(mu_);
    return all_;
  }
  std::vector<Line> of(std::string_view request_id) {
    std::vector<Line> out;
    for (Line& l : all()) {
      if (l.request_id == request_id) out.push_back(std::move(l));
    }
    return out;
  }
  void wait_for(std::string_view message) {
    changed_.wait([&] {
      std::lock_guard<std::mutex> lock(mu_);
      return std::any_of(all_.begin(), all_.end(), [&](const Line& l) {
        return l.message.find(message) != std::string::npos;
      });
    });
  }

 private:
  std::string throw_on_;  // set before the engine starts
  std::mutex mu_;
  std::vector<Line> all_;  // guarded by mu_
  Condition changed_;
};

// What handlers saw of themselves, by function name (thread-safe).
class Inside {
 public:
  struct Seen {
    std::string request_id;
    TraceContext trace;
  };
  void note(const Context& ctx) {
    std::lock_guard<std::mutex> lock(mu_);
    seen_[std::string(ctx.function_name())] = {std::string(ctx.request_id()), ctx.trace()};
  }
  Seen operator[](const std::string& function) {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_[function];
  }

 private:
  std::mutex mu_;
  std::map<std::string, Seen> seen_;  // guarded by mu_
};

// Handlers that hold their slot until release(): payload "block" blocks, anything else echoes.
class Gate {
 public:
  BytesHandler handler(Inside& inside) {
    return [this, &inside](Context& ctx, std::string_view in) -> Result<std::string> {
      inside.note(ctx);
      if (in != "block") return std::string(in);
      started_.set();
      release_.wait();
      return std::string("released");
    };
  }
  void wait_started() { started_.wait(); }
  void release() { release_.set(); }

 private:
  Event started_, release_;
};

// Keeps every lifecycle event it is told of (thread-safe); throws after keeping it if asked.
class Observer final : public LifecycleObserver {
 public:
  struct Seen {
    LifecycleEventType type;
    absl::Time time;
    std::string function, version, request_id, reason;
    std::int64_t duration_ns;
    std::optional<std::int64_t> init_duration_ns;
    std::int64_t billed_duration_ms;
    int memory_size_mb, max_memory_used_mb;
    std::optional<ErrorCode> error;
    std::uint64_t count;
  };
  explicit Observer(bool throws = false) : throws_(throws) {}
  void on_event(const LifecycleEvent& e) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen_.push_back({e.type, e.time, std::string(e.function), std::string(e.version),
                       std::string(e.request_id), std::string(e.reason), e.duration_ns,
                       e.init_duration_ns, e.billed_duration_ms, e.memory_size_mb,
                       e.max_memory_used_mb,
                       e.error != nullptr ? std::optional(e.error->code) : std::nullopt, e.count});
    }
    if (throws_) throw std::runtime_error("observer failed");
  }
  std::vector<Seen> seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }
  std::vector<LifecycleEventType> types() {
    std::vector<LifecycleEventType> out;
    for (const Seen& s : seen()) out.push_back(s.type);
    return out;
  }

 private:
  const bool throws_;
  std::mutex mu_;
  std::vector<Seen> seen_;  // guarded by mu_
};

using Type = LifecycleEventType;

// The fixture's engine writes its lines to lines_. TearDown releases the gate and joins the
// caller thread before the engine goes, so that a failed assertion cannot hang.
class ObservedEngineTest : public EngineTest {
 protected:
  void TearDown() override {
    gate_.release();
    if (caller_.joinable()) caller_.join();
    engine_.reset();
  }
  // A sync invoke on a thread of its own; join_caller() waits for its result.
  void invoke_on_thread(FunctionHandle fn, std::string payload) {
    caller_ = std::thread(
        [this, fn, payload = std::move(payload)] { called_ = engine().invoke(fn, payload); });
  }
  Result<std::string> join_caller() {
    caller_.join();
    return called_;
  }
  EngineOptions observed(double sample_rate = 0) {
    EngineOptions o = options();
    o.log_sink = lines_.sink();
    o.trace_sample_rate = sample_rate;
    return o;
  }
  Engine& start(EngineOptions o) {
    engine_ = std::make_unique<Engine>(std::move(o));
    return *engine_;
  }
  // A handler that notes what it saw, runs for the milliseconds its payload says ("" = 0)
  // on the ManualClock, and returns its function's name.
  BytesHandler runs_for() {
    return [this](Context& ctx, std::string_view in) -> Result<std::string> {
      inside_.note(ctx);
      if (!in.empty()) clock_.advance(absl::Nanoseconds(std::stoll(std::string(in))));
      return std::string(ctx.function_name());
    };
  }

  Lines lines_;
  Inside inside_;
  Gate gate_;
  std::thread caller_;
  Result<std::string> called_;
};

// ---- Log lines ----

using ObserveLogTest = ObservedEngineTest;

TEST_P(ObserveLogTest, ReportLogsWrapHandlerLinesInStartEndAndReport) {
  start(observed());
  auto fn = add("report.me",
                [this](Context& ctx, std::string_view) -> Result<std::string> {
                  inside_.note(ctx);
                  ctx.log("first");
                  clock_.advance(absl::Microseconds(1500));
                  ctx.log(LogLevel::kWarn, "second");
                  return std::string("done");
                },
                {.memory_mb = 256, .report_logs = true});
  // Times (UTC, milliseconds truncated) of each invocation's start and end.
  const std::string times[2][2] = {{"1970-01-02T00:00:00.000Z", "1970-01-02T00:00:00.001Z"},
                                   {"1970-01-02T00:00:00.001Z", "1970-01-02T00:00:00.003Z"}};
  int i = 0;
  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    SCOPED_TRACE(i);
    ASSERT_EQ(engine().invoke(fn, "", {.dispatch = d}).value(), "done");
    const std::string rid = inside_["report.me"].request_id;
    const std::string& t0 = times[i][0];
    const std::string& t1 = times[i][1];
    ++i;
    const std::vector<Line> lines = lines_.of(rid);
    ASSERT_EQ(lines.size(), 5u);
    const LogKind kinds[] = {LogKind::kStart, LogKind::kHandler, LogKind::kHandler, LogKind::kEnd,
                             LogKind::kReport};
    for (int k = 0; k < 5; ++k) {
      EXPECT_EQ(lines[k].kind, kinds[k]) << k;
      EXPECT_EQ(lines[k].function, "report.me") << k;
      EXPECT_EQ(lines[k].version, "$LATEST") << k;
      EXPECT_EQ(lines[k].report.has_value(), k == 4) << k;
      EXPECT_EQ(lines[k].level, k == 2 ? LogLevel::kWarn : LogLevel::kInfo) << k;
    }
    const std::string meta = "\"requestId\":\"" + rid + "\"";
    EXPECT_EQ(lines[0].text, "START RequestId: " + rid + " Version: $LATEST");
    EXPECT_EQ(lines[0].json, "{\"time\":\"" + t0 + "\",\"type\":\"platform.start\",\"record\":{" +
                                 meta + ",\"version\":\"$LATEST\"}}");
    EXPECT_EQ(lines[1].text, t0 + "\t" + rid + "\tINFO\tfirst");
    EXPECT_EQ(lines[1].json, "{\"timestamp\":\"" + t0 + "\",\"level\":\"INFO\"," + meta +
                                 ",\"function\":\"report.me\",\"version\":\"$LATEST\","
                                 "\"message\":\"first\"}");
    EXPECT_EQ(lines[2].text, t1 + "\t" + rid + "\tWARN\tsecond");
    EXPECT_EQ(lines[3].text, "END RequestId: " + rid);
    EXPECT_EQ(lines[3].json,
              "{\"time\":\"" + t1 + "\",\"type\":\"platform.end\",\"record\":{" + meta + "}}");
    // REPORT: every figure exact but Max Memory Used (the process's peak), whose shape is.
    ASSERT_TRUE(lines[4].report.has_value());
    const InvocationReport& report = *lines[4].report;
    EXPECT_EQ(report.duration_ns, 1'500'000);
    EXPECT_EQ(report.billed_duration_ms, 2);
    EXPECT_EQ(report.memory_size_mb, 256);
    EXPECT_GT(report.max_memory_used_mb, 0);
    EXPECT_FALSE(report.init_duration_ns.has_value());  // registered in C++: no init
    const std::string used = std::to_string(report.max_memory_used_mb);
    EXPECT_TRUE(std::regex_match(lines[4].text, std::regex("REPORT RequestId: " + rid +
                                                           "\tDuration: 1\\.50 ms\tBilled "
                                                           "Duration: 2 ms\tMemory Size: 256 MB"
                                                           "\tMax Memory Used: [1-9][0-9]* MB")))
        << lines[4].text;
    EXPECT_EQ(lines[4].text, "REPORT RequestId: " + rid +
                                 "\tDuration: 1.50 ms\tBilled Duration: 2 ms\tMemory Size: 256 "
                                 "MB\tMax Memory Used: " +
                                 used + " MB");
    EXPECT_EQ(lines[4].json, "{\"time\":\"" + t1 + "\",\"type\":\"platform.report\",\"record\":{" +
                                 meta +
                                 ",\"metrics\":{\"durationMs\":1.500,\"billedDurationMs\":2,"
                                 "\"memorySizeMB\":256,\"maxMemoryUsedMB\":" +
                                 used + "}}}");
  }
  EXPECT_EQ(lines_.all().size(), 10u);  // nothing else was written
}

TEST_P(ObserveLogTest, ReportBillsTheDurationRoundedUpToAWholeMillisecondAndAtLeastOne) {
  start(observed());
  auto fn = add("billed", runs_for(), {.report_logs = true});
  const std::pair<const char*, std::int64_t> cases[] = {
      {"", 1}, {"1", 1}, {"999999", 1}, {"1000000", 1}, {"1000001", 2}, {"2500000", 3}};
  for (const auto& [ns, billed] : cases) {
    ASSERT_TRUE(engine().invoke(fn, ns));
    const std::vector<Line> lines = lines_.of(inside_["billed"].request_id);
    ASSERT_EQ(lines.size(), 3u) << ns;
    ASSERT_TRUE(lines[2].report.has_value()) << ns;
    EXPECT_EQ(lines[2].report->duration_ns, std::string(ns).empty() ? 0 : std::stoll(ns)) << ns;
    EXPECT_EQ(lines[2].report->billed_duration_ms, billed) << ns;
    EXPECT_NE(lines[2].text.find("\tBilled Duration: " + std::to_string(billed) + " ms\t"),
              std::string::npos)
        << lines[2].text;
  }
}

TEST_P(ObserveLogTest, WithoutReportLogsOnlyHandlerLinesAreWritten) {
  start(observed());
  auto fn = add("quiet", [this](Context& ctx, std::string_view) -> Result<std::string> {
    inside_.note(ctx);
    ctx.log("hello");
    return std::string("ok");
  });
  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    ASSERT_TRUE(engine().invoke(fn, "", {.dispatch = d}));
    const std::vector<Line> lines = lines_.of(inside_["quiet"].request_id);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].kind, LogKind::kHandler);
    EXPECT_EQ(lines[0].message, "hello");
  }
  for (const Line& l : lines_.all()) EXPECT_EQ(l.kind, LogKind::kHandler) << l.text;
}

TEST_P(ObserveLogTest, TaskTimedOutIsLoggedOnEveryKindOfTimeout) {
  start(observed());
  const FunctionConfig config{.timeout = absl::Milliseconds(100)};
  auto overrun = add(
      "overrun",
      [this](Context& ctx, std::string_view) -> Result<std::string> {
        inside_.note(ctx);
        clock_.advance(absl::Milliseconds(150));  // no suspension point: an overrun
        return std::string("late");
      },
      config);
  auto sleeper = add(
      "sleeper",
      [this](Context& ctx, std::string_view) -> Result<std::string> {
        inside_.note(ctx);
        clock_.advance(absl::Milliseconds(100));
        auto slept = ctx.sleep_for(absl::Milliseconds(1));  // kTimeout: the deadline passed
        if (!slept) return tl::unexpected(slept.error());
        return std::string("slept");
      },
      config);
  auto pooled = add("pooled", gate_.handler(inside_),
                    {.timeout = absl::Milliseconds(100), .dispatch = Dispatch::kPool});
  EXPECT_EQ(engine().invoke(overrun, "").error().code, ErrorCode::kTimeout);
  EXPECT_EQ(engine().invoke(sleeper, "").error().code, ErrorCode::kTimeout);
  invoke_on_thread(pooled, "block");
  gate_.wait_started();
  clock_.advance(absl::Milliseconds(100));
  EXPECT_EQ(join_caller().error().code, ErrorCode::kTimeout);
  gate_.release();
  lines_.wait_for(kReturnedLate);

  for (const char* fn : {"overrun", "sleeper", "pooled"}) {
    const std::string rid = inside_[fn].request_id;
    std::vector<Line> timed_out;
    for (const Line& l : lines_.of(rid)) {
      if (l.message == "Task timed out after 0.10 seconds") timed_out.push_back(l);
    }
    EXPECT_EQ(timed_out.size(), 1u) << fn;
    if (timed_out.empty()) continue;
    EXPECT_EQ(timed_out[0].kind, LogKind::kEngine) << fn;
    EXPECT_EQ(timed_out[0].level, LogLevel::kError) << fn;
    EXPECT_EQ(timed_out[0].function, fn);
    EXPECT_TRUE(std::regex_match(timed_out[0].text,
                                 std::regex("1970-01-02T00:00:00\\.[0-9]{3}Z\t" + rid +
                                            "\tERROR\tTask timed out after 0\\.10 seconds")))
        << timed_out[0].text;
  }
}

TEST_P(ObserveLogTest, ASinkThatThrowsLosesTheLineNotTheInvoke) {
  lines_.throw_on("boom");
  start(observed());
  auto observer = std::make_shared<Observer>();
  ASSERT_TRUE(engine().subscribe(observer, lifecycle_mask(Type::kLogsDropped)));
  auto fn = add("noisy", [](Context& ctx, std::string_view) -> Result<std::string> {
    ctx.log("before");
    ctx.log("boom");
    ctx.log("after");
    return std::string("ok");
  });
  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    EXPECT_EQ(engine().invoke(fn, "", {.dispatch = d}).value(), "ok");
  }
  EXPECT_EQ(engine().metrics().logs_dropped, 2u);
  std::vector<std::string> written;
  for (const Line& l : lines_.all()) written.push_back(l.message);
  EXPECT_EQ(written, (std::vector<std::string>{"before", "after", "before", "after"}));
  const auto seen = observer->seen();
  ASSERT_EQ(seen.size(), 2u);
  for (const auto& e : seen) {
    EXPECT_EQ(e.type, Type::kLogsDropped);
    EXPECT_EQ(e.count, 1u);
    EXPECT_NE(e.reason.find("sink"), std::string::npos) << e.reason;
  }
}

// ---- Traces ----

using ObserveTraceTest = ObservedEngineTest;

const Span* span_of(const std::vector<Span>& spans, std::string_view function) {
  for (const Span& s : spans) {
    if (s.function == function) return &s;
  }
  ADD_FAILURE() << "no span of " << function;
  return nullptr;
}

TEST_P(ObserveTraceTest, SpansOfNestedAndAsyncInvokesFormOneTree) {
  start(observed(1.0));
  auto child_inline = add("child.inline", runs_for());
  auto child_pool = add("child.pool",
                        [this](Context& ctx, std::string_view) -> Result<std::string> {
                          inside_.note(ctx);
                          clock_.advance(absl::Milliseconds(4));
                          throw std::runtime_error("child failed");
                        },
                        {.dispatch = Dispatch::kPool});
  auto child_async = add("child.async", runs_for());
  auto root = add("root", [&](Context& ctx, std::string_view) -> Result<std::string> {
    inside_.note(ctx);
    clock_.advance(absl::Milliseconds(1));
    EXPECT_TRUE(ctx.invoke(child_inline, std::to_string(2 * kMs)));
    EXPECT_EQ(ctx.invoke(child_pool, "").error().code, ErrorCode::kHandlerFailed);
    Event done;
    EXPECT_TRUE(ctx.engine().invoke_async(child_async, std::to_string(8 * kMs),
                                          [&](Result<std::string>) { done.set(); }));
    done.wait();  // this thread is the root's; the async child runs on a worker
    clock_.advance(absl::Milliseconds(16));
    return std::string("root");
  });
  ASSERT_EQ(engine().invoke(root, "").value(), "root");

  const std::vector<Span> spans = engine().take_spans();
  ASSERT_EQ(spans.size(), 4u);
  const Span* r = span_of(spans, "root");
  ASSERT_NE(r, nullptr);
  EXPECT_TRUE(r->trace_id.valid());
  EXPECT_EQ(r->parent_span_id, 0u);
  EXPECT_EQ(r->duration_ns, 31 * kMs);
  EXPECT_FALSE(r->error.has_value());
  EXPECT_EQ(r->thread_name.rfind("caller ", 0), 0u) << r->thread_name;
  std::set<std::uint64_t> ids;
  const std::tuple<const char*, std::int64_t, std::int64_t> children[] = {
      {"child.inline", 1 * kMs, 2 * kMs},
      {"child.pool", 3 * kMs, 4 * kMs},
      {"child.async", 7 * kMs, 8 * kMs}};
  for (const auto& [name, offset, duration] : children) {
    const Span* c = span_of(spans, name);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->trace_id, r->trace_id) << name;
    EXPECT_EQ(c->parent_span_id, r->span_id) << name;
    EXPECT_EQ(c->start_ns - r->start_ns, offset) << name;
    EXPECT_EQ(c->duration_ns, duration) << name;
  }
  EXPECT_EQ(span_of(spans, "child.inline")->thread, r->thread);  // inline: the root's thread
  EXPECT_EQ(span_of(spans, "child.pool")->thread_name.rfind("worker ", 0), 0u);
  EXPECT_EQ(span_of(spans, "child.async")->thread_name.rfind("worker ", 0), 0u);
  EXPECT_EQ(span_of(spans, "child.pool")->error, ErrorCode::kHandlerFailed);
  EXPECT_FALSE(span_of(spans, "child.inline")->error.has_value());
  for (const Span& s : spans) {
    EXPECT_NE(s.span_id, 0u);
    EXPECT_TRUE(ids.insert(s.span_id).second) << "span id twice: " << s.span_id;
    EXPECT_EQ(s.version, "$LATEST");
    // What the handler saw of itself is what its span says.
    const Inside::Seen seen = inside_[s.function];
    EXPECT_EQ(s.request_id, seen.request_id) << s.function;
    EXPECT_EQ(seen.trace.trace_id, s.trace_id) << s.function;
    EXPECT_EQ(seen.trace.span_id, s.span_id) << s.function;
    EXPECT_TRUE(seen.trace.sampled) << s.function;
  }
  EXPECT_TRUE(engine().take_spans().empty());  // taken: the buffer is empty
  EXPECT_EQ(engine().metrics().spans_dropped, 0u);
}

TEST_P(ObserveTraceTest, ChromeTraceJsonHasOneCompleteEventPerSpan) {
  start(observed(1.0));
  auto leaf = add("leaf", runs_for(), {.dispatch = Dispatch::kPool});
  auto root = add("root", [&](Context& ctx, std::string_view) -> Result<std::string> {
    inside_.note(ctx);
    return ctx.invoke(leaf, std::to_string(3 * kMs));
  });
  ASSERT_TRUE(engine().invoke(root, ""));
  ASSERT_TRUE(engine().invoke(leaf, ""));
  const std::vector<Span> spans = engine().take_spans();
  ASSERT_EQ(spans.size(), 3u);
  const nlohmann::json trace = nlohmann::json::parse(chrome_trace_json(spans));
  std::multiset<std::string> request_ids, functions;
  for (const auto& e : trace.at("traceEvents")) {
    if (e.at("ph") != "X") continue;
    request_ids.insert(e.at("args").at("request_id").get<std::string>());
    functions.insert(e.at("name").get<std::string>());
  }
  EXPECT_EQ(functions, (std::multiset<std::string>{"leaf", "leaf", "root"}));
  std::multiset<std::string> expected_ids;
  for (const Span& s : spans) expected_ids.insert(s.request_id);
  EXPECT_EQ(request_ids, expected_ids);
}

TEST_P(ObserveTraceTest, AtRateZeroNothingIsTracedOrRecorded) {
  start(observed(0.0));
  auto child = add("child", runs_for(), {.dispatch = Dispatch::kPool});
  auto root = add("root", [&](Context& ctx, std::string_view) -> Result<std::string> {
    inside_.note(ctx);
    return ctx.invoke(child, "");
  });
  ASSERT_TRUE(engine().invoke(root, ""));
  for (const char* fn : {"root", "child"}) {
    const TraceContext t = inside_[fn].trace;
    EXPECT_FALSE(t.valid()) << fn;
    EXPECT_EQ(t.span_id, 0u) << fn;
    EXPECT_FALSE(t.sampled) << fn;
  }
  EXPECT_TRUE(engine().take_spans().empty());
}

TEST_P(ObserveTraceTest, SampledIncomingTraceIsRecordedEvenAtRateZero) {
  start(observed(0.0));
  auto child = add("child", runs_for());
  auto root = add("root", [&](Context& ctx, std::string_view) -> Result<std::string> {
    inside_.note(ctx);
    return ctx.invoke(child, "");
  });
  const TraceContext incoming{
      .trace_id = {.hi = 0x1234, .lo = 0x5678}, .span_id = 0x99, .sampled = true};
  ASSERT_TRUE(engine().invoke(root, "", {.trace = incoming}));
  const std::vector<Span> spans = engine().take_spans();
  ASSERT_EQ(spans.size(), 2u);
  const Span* r = span_of(spans, "root");
  const Span* c = span_of(spans, "child");
  ASSERT_TRUE(r != nullptr && c != nullptr);
  EXPECT_EQ(r->trace_id, incoming.trace_id);
  EXPECT_EQ(r->parent_span_id, 0x99u);  // a child of the caller's span
  EXPECT_NE(r->span_id, 0x99u);
  EXPECT_EQ(c->trace_id, incoming.trace_id);
  EXPECT_EQ(c->parent_span_id, r->span_id);
  EXPECT_EQ(inside_["root"].trace.trace_id, incoming.trace_id);
  EXPECT_EQ(inside_["root"].trace.span_id, r->span_id);
  EXPECT_TRUE(inside_["root"].trace.sampled);
}

TEST_P(ObserveTraceTest, UnsampledIncomingTraceIsPropagatedButNotRecorded) {
  start(observed(0.0));
  auto child = add("child", runs_for(), {.dispatch = Dispatch::kPool});
  auto root = add("root", [&](Context& ctx, std::string_view) -> Result<std::string> {
    inside_.note(ctx);
    return ctx.invoke(child, "");
  });
  const TraceContext incoming{.trace_id = {.hi = 7, .lo = 8}, .span_id = 0x77, .sampled = false};
  ASSERT_TRUE(engine().invoke(root, "", {.trace = incoming}));
  const TraceContext r = inside_["root"].trace, c = inside_["child"].trace;
  EXPECT_TRUE(r.valid());
  EXPECT_EQ(r.trace_id, incoming.trace_id);
  EXPECT_FALSE(r.sampled);
  EXPECT_NE(r.span_id, 0u);
  EXPECT_NE(r.span_id, incoming.span_id);  // its own span
  EXPECT_EQ(c.trace_id, incoming.trace_id);
  EXPECT_FALSE(c.sampled);
  EXPECT_NE(c.span_id, r.span_id);
  EXPECT_TRUE(engine().take_spans().empty());
}

TEST_P(ObserveTraceTest, AFullSpanBufferKeepsTheOldestAndCountsTheRestDropped) {
  EngineOptions o = observed(1.0);
  o.trace_buffer_spans = 2;
  start(o);
  auto fn = add("leaf", runs_for());
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(engine().invoke(fn, ""));
    ids.push_back(inside_["leaf"].request_id);
  }
  const std::vector<Span> spans = engine().take_spans();
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0].request_id, ids[0]);
  EXPECT_EQ(spans[1].request_id, ids[1]);
  EXPECT_EQ(engine().metrics().spans_dropped, 1u);
  ASSERT_TRUE(engine().invoke(fn, ""));  // room again after take_spans
  EXPECT_EQ(engine().take_spans().size(), 1u);
  EXPECT_EQ(engine().metrics().spans_dropped, 1u);
}

// A pool invocation whose caller was released at the deadline failed (the caller got kTimeout
// and it counts as an error and a timeout), even if its handler later returned a value.
TEST_P(ObserveTraceTest, APoolInvocationReleasedAtItsDeadlineIsRecordedAsATimeout) {
  start(observed(1.0));
  auto observer = std::make_shared<Observer>();
  ASSERT_TRUE(engine().subscribe(observer, lifecycle_mask(Type::kInvokeEnd)));
  auto fn = add("slow", gate_.handler(inside_),
                {.timeout = absl::Milliseconds(100), .dispatch = Dispatch::kPool});
  invoke_on_thread(fn, "block");
  gate_.wait_started();
  clock_.advance(absl::Milliseconds(100));
  EXPECT_EQ(join_caller().error().code, ErrorCode::kTimeout);
  gate_.release();
  lines_.wait_for(kReturnedLate);

  const std::vector<Span> spans = engine().take_spans();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0].duration_ns, 100 * kMs);
  EXPECT_EQ(spans[0].error, ErrorCode::kTimeout);
  const auto seen = observer->seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].error, ErrorCode::kTimeout);
}

// ---- Lifecycle observers ----

using ObserveLifecycleTest = ObservedEngineTest;

TEST_P(ObserveLifecycleTest, InvokeEventsArriveInOrderWithOneRequestId) {
  start(observed());
  auto observer = std::make_shared<Observer>();
  ASSERT_TRUE(engine().subscribe(observer));
  auto ok = add("ok", runs_for(), {.memory_mb = 512});
  auto bad = add("bad",
                 [this](Context& ctx, std::string_view) -> Result<std::string> {
                   inside_.note(ctx);
                   return fail(ErrorCode::kInvalidArgument, "bad input");
                 },
                 {.dispatch = Dispatch::kPool});
  const absl::Time t0 = clock_.now();
  ASSERT_TRUE(engine().invoke(ok, std::to_string(2 * kMs)));
  EXPECT_EQ(engine().invoke(bad, "").error().code, ErrorCode::kInvalidArgument);

  const auto seen = observer->seen();  // pool events come before the caller's result
  ASSERT_EQ(seen.size(), 6u);
  const std::pair<const char*, int> by_function[] = {{"ok", 0}, {"bad", 3}};
  for (const auto& [fn, at] : by_function) {
    const std::string rid = inside_[fn].request_id;
    const bool failed = std::string(fn) == "bad";
    const Type order[] = {Type::kInvokeStart, Type::kInvokeEnd, Type::kInvokeReport};
    for (int k = 0; k < 3; ++k) {
      const auto& e = seen[at + k];
      EXPECT_EQ(e.type, order[k]) << fn << k;
      EXPECT_EQ(e.function, fn);
      EXPECT_EQ(e.version, "$LATEST");
      EXPECT_EQ(e.request_id, rid) << fn << k;
      if (k > 0) {
        EXPECT_EQ(e.error, failed ? std::optional(ErrorCode::kInvalidArgument) : std::nullopt)
            << fn << k;
      }
    }
  }
  const auto& report = seen[2];
  EXPECT_EQ(seen[0].time, t0);
  EXPECT_EQ(seen[1].time, t0 + absl::Milliseconds(2));
  EXPECT_EQ(report.duration_ns, 2 * kMs);
  EXPECT_EQ(report.billed_duration_ms, 2);
  EXPECT_EQ(report.memory_size_mb, 512);
  EXPECT_GT(report.max_memory_used_mb, 0);
  EXPECT_FALSE(report.init_duration_ns.has_value());
  EXPECT_EQ(seen[5].memory_size_mb, 128);
}

TEST_P(ObserveLifecycleTest, ASubscriptionGetsOnlyTheEventsOfItsMask) {
  start(observed());
  auto ends = std::make_shared<Observer>();
  auto starts_and_reports = std::make_shared<Observer>();
  ASSERT_TRUE(engine().subscribe(ends, lifecycle_mask(Type::kInvokeEnd)));
  ASSERT_TRUE(engine().subscribe(starts_and_reports, lifecycle_mask(Type::kInvokeStart) |
                                                         lifecycle_mask(Type::kInvokeReport)));
  auto fn = add("fn", runs_for());
  ASSERT_TRUE(engine().invoke(fn, ""));
  engine().shutdown();
  EXPECT_EQ(ends->types(), std::vector<Type>{Type::kInvokeEnd});
  EXPECT_EQ(starts_and_reports->types(),
            (std::vector<Type>{Type::kInvokeStart, Type::kInvokeReport}));
}

TEST_P(ObserveLifecycleTest, UnsubscribeStopsEventsAndIsNotFoundTheSecondTime) {
  start(observed());
  auto observer = std::make_shared<Observer>();
  auto other = std::make_shared<Observer>();
  auto id = engine().subscribe(observer);
  auto other_id = engine().subscribe(other);
  ASSERT_TRUE(id && other_id);
  EXPECT_NE(*id, *other_id);
  auto fn = add("fn", runs_for());
  ASSERT_TRUE(engine().invoke(fn, ""));
  EXPECT_EQ(observer->seen().size(), 3u);
  ASSERT_TRUE(engine().unsubscribe(*id));
  ASSERT_TRUE(engine().invoke(fn, ""));
  EXPECT_EQ(observer->seen().size(), 3u);  // no more
  EXPECT_EQ(other->seen().size(), 6u);     // the other subscription is untouched
  auto again = engine().unsubscribe(*id);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(engine().unsubscribe(*other_id + 1000).error().code, ErrorCode::kNotFound);
}

TEST_P(ObserveLifecycleTest, SubscribeRefusesANullObserverAndAnEmptyMask) {
  start(observed());
  auto null = engine().subscribe(nullptr);
  ASSERT_FALSE(null);
  EXPECT_EQ(null.error().code, ErrorCode::kInvalidArgument);
  for (LifecycleEventMask mask : {LifecycleEventMask{0}, LifecycleEventMask{0x80}}) {
    auto empty = engine().subscribe(std::make_shared<Observer>(), mask);
    ASSERT_FALSE(empty) << mask;
    EXPECT_EQ(empty.error().code, ErrorCode::kInvalidArgument) << mask;
  }
}

TEST_P(ObserveLifecycleTest, ShutdownIsToldOnceWithItsReason) {
  start(observed());
  auto observer = std::make_shared<Observer>();
  ASSERT_TRUE(engine().subscribe(observer));
  engine().shutdown();
  engine().shutdown();
  engine_.reset();  // the destructor shuts down too
  auto seen = observer->seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].type, Type::kShutdown);
  EXPECT_EQ(seen[0].reason, "shutdown requested");
  EXPECT_EQ(seen[0].time, clock_.now());

  start(observed());  // an engine destroyed without shutdown() says so
  auto other = std::make_shared<Observer>();
  ASSERT_TRUE(engine().subscribe(other, lifecycle_mask(Type::kShutdown)));
  engine_.reset();
  seen = other->seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].reason, "engine destroyed");
}

TEST_P(ObserveLifecycleTest, AnObserverThatThrowsDoesNotBreakTheInvoke) {
  start(observed());
  auto thrower = std::make_shared<Observer>(/*throws=*/true);
  auto observer = std::make_shared<Observer>();
  ASSERT_TRUE(engine().subscribe(thrower));
  ASSERT_TRUE(engine().subscribe(observer));
  auto fn = add("fn", runs_for());
  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    EXPECT_EQ(engine().invoke(fn, "", {.dispatch = d}).value(), "fn");
  }
  EXPECT_EQ(thrower->seen().size(), 6u);
  EXPECT_EQ(observer->seen().size(), 6u);  // told after the thrower, every time
  // observe.hpp: "a throw is caught and counted as a dropped event".
  EXPECT_EQ(engine().metrics().logs_dropped, 6u);
}

INSTANTIATE_TEST_SUITE_P(Workers, ObserveLogTest, EMBER_WORKER_COUNTS);
INSTANTIATE_TEST_SUITE_P(Workers, ObserveTraceTest, EMBER_WORKER_COUNTS);
INSTANTIATE_TEST_SUITE_P(Workers, ObserveLifecycleTest, EMBER_WORKER_COUNTS);

}  // namespace
}  // namespace ember::testing
