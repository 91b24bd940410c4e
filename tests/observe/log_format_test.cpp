// log_format_test.cpp — tests src/observe/log_format.cpp: golden lines of every LogKind in
// Lambda's text and JSON formats, each JSON line parsed back with nlohmann::json (a strict
// parser: it refuses control characters and invalid UTF-8), and lifecycle_event_name().
#include <absl/time/civil_time.h>
#include <absl/time/time.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <string_view>

#include "ember/observe.hpp"
#include "ember/options.hpp"

namespace ember {
namespace {

using nlohmann::json;

constexpr std::string_view kTime = "2026-11-27T21:00:00.123Z";
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// n replacement characters.
std::string fffd(int n) {
  std::string out;
  while (n-- > 0) out += kReplacement;
  return out;
}

absl::Time test_time() {
  return absl::FromCivil(absl::CivilSecond(2026, 11, 27, 21, 0, 0), absl::UTCTimeZone()) +
         absl::Milliseconds(123);
}

LogRecord platform(LogKind kind, const InvocationReport* report = nullptr) {
  return {.request_id = "8f5e2c1a-0001",
          .kind = kind,
          .time = test_time(),
          .version = "$LATEST",
          .report = report};
}

LogRecord handler(std::string_view message, LogLevel level = LogLevel::kInfo) {
  return {.level = level,
          .function = "pricing.quote",
          .request_id = "8f5e2c1a-0001",
          .message = message,
          .kind = LogKind::kHandler,
          .time = test_time()};
}

std::string text(const LogRecord& r) { return format_log_line(r, LogFormat::kText); }
std::string json_text(const LogRecord& r) { return format_log_line(r, LogFormat::kJson); }

// Renders as JSON, checks it is one line, and parses it back (throws on invalid JSON/UTF-8).
json parsed(const LogRecord& r) {
  const std::string line = json_text(r);
  EXPECT_EQ(line.find('\n'), std::string::npos) << line;
  return json::parse(line);
}

constexpr InvocationReport kReport{.duration_ns = 12'345'678,
                                   .billed_duration_ms = 13,
                                   .memory_size_mb = 128,
                                   .max_memory_used_mb = 3};

// ---- Text ------------------------------------------------------------------------------------

TEST(LogFormatTextTest, StartLineNamesRequestAndVersion) {
  EXPECT_EQ(text(platform(LogKind::kStart)), "START RequestId: 8f5e2c1a-0001 Version: $LATEST");
  LogRecord r = platform(LogKind::kStart);
  r.version = "7";
  EXPECT_EQ(text(r), "START RequestId: 8f5e2c1a-0001 Version: 7");
}

TEST(LogFormatTextTest, StartLineWithoutVersionSaysLatest) {
  LogRecord r = platform(LogKind::kStart);
  r.version = {};
  EXPECT_EQ(text(r), "START RequestId: 8f5e2c1a-0001 Version: $LATEST");
}

TEST(LogFormatTextTest, EndLine) {
  EXPECT_EQ(text(platform(LogKind::kEnd)), "END RequestId: 8f5e2c1a-0001");
}

TEST(LogFormatTextTest, ReportLineWithoutInitDuration) {
  EXPECT_EQ(text(platform(LogKind::kReport, &kReport)),
            "REPORT RequestId: 8f5e2c1a-0001\tDuration: 12.35 ms\tBilled Duration: 13 ms\t"
            "Memory Size: 128 MB\tMax Memory Used: 3 MB");
}

TEST(LogFormatTextTest, ReportLineWithInitDuration) {
  InvocationReport report = kReport;
  report.init_duration_ns = 400'000;
  EXPECT_EQ(text(platform(LogKind::kReport, &report)),
            "REPORT RequestId: 8f5e2c1a-0001\tDuration: 12.35 ms\tBilled Duration: 13 ms\t"
            "Memory Size: 128 MB\tMax Memory Used: 3 MB\tInit Duration: 0.40 ms");
}

TEST(LogFormatTextTest, ReportDurationsRoundHalfAwayFromZeroToTwoDecimals) {
  const auto duration_text = [](std::int64_t ns) {
    InvocationReport report = kReport;
    report.duration_ns = ns;
    const std::string line = text(platform(LogKind::kReport, &report));
    const std::size_t at = line.find("Duration: ") + 10;
    return line.substr(at, line.find(" ms", at) - at);
  };
  EXPECT_EQ(duration_text(0), "0.00");
  EXPECT_EQ(duration_text(4'999), "0.00");
  EXPECT_EQ(duration_text(5'000), "0.01");
  EXPECT_EQ(duration_text(1'000'000), "1.00");
  EXPECT_EQ(duration_text(12'344'999), "12.34");
  EXPECT_EQ(duration_text(12'345'000), "12.35");  // binary doubles would make this 12.34
  EXPECT_EQ(duration_text(999'995'000), "1000.00");
  EXPECT_EQ(duration_text(1'234'567'890'123), "1234567.89");
  EXPECT_EQ(duration_text(-5'000), "-0.01");
  EXPECT_EQ(duration_text(-4'999), "0.00");  // no "-0.00"
  EXPECT_EQ(duration_text(INT64_MAX), "9223372036854.78");
  EXPECT_EQ(duration_text(INT64_MIN), "-9223372036854.78");
}

TEST(LogFormatTextTest, ReportWithoutFiguresPrintsOnlyTheRequestId) {
  EXPECT_EQ(text(platform(LogKind::kReport, nullptr)), "REPORT RequestId: 8f5e2c1a-0001");
}

TEST(LogFormatTextTest, HandlerLineHasFourTabSeparatedFields) {
  EXPECT_EQ(text(handler("quote ready")),
            "2026-11-27T21:00:00.123Z\t8f5e2c1a-0001\tINFO\tquote ready");
}

TEST(LogFormatTextTest, HandlerLineWithoutRequestIdPrintsDash) {
  LogRecord r = handler("no request");
  r.request_id = {};
  EXPECT_EQ(text(r), "2026-11-27T21:00:00.123Z\t-\tINFO\tno request");
}

TEST(LogFormatTextTest, EngineLine) {
  LogRecord r = handler("Task timed out after 3.00 seconds", LogLevel::kError);
  r.kind = LogKind::kEngine;
  EXPECT_EQ(text(r),
            "2026-11-27T21:00:00.123Z\t8f5e2c1a-0001\tERROR\tTask timed out after 3.00 seconds");
}

TEST(LogFormatTextTest, LevelNames) {
  EXPECT_EQ(text(handler("m", LogLevel::kDebug)),
            "2026-11-27T21:00:00.123Z\t8f5e2c1a-0001\tDEBUG\tm");
  EXPECT_EQ(text(handler("m", LogLevel::kInfo)),
            "2026-11-27T21:00:00.123Z\t8f5e2c1a-0001\tINFO\tm");
  EXPECT_EQ(text(handler("m", LogLevel::kWarn)),
            "2026-11-27T21:00:00.123Z\t8f5e2c1a-0001\tWARN\tm");
  EXPECT_EQ(text(handler("m", LogLevel::kError)),
            "2026-11-27T21:00:00.123Z\t8f5e2c1a-0001\tERROR\tm");
}

TEST(LogFormatTextTest, NewlinesBecomeCarriageReturnsSoOneRecordIsOneLine) {
  EXPECT_EQ(text(handler("first\nsecond\r\nthird\n")),
            "2026-11-27T21:00:00.123Z\t8f5e2c1a-0001\tINFO\tfirst\rsecond\r\rthird\r");
  LogRecord start = platform(LogKind::kStart);
  start.request_id = "a\nb";
  EXPECT_EQ(text(start), "START RequestId: a\rb Version: $LATEST");
}

TEST(LogFormatTextTest, OtherBytesPassThrough) {
  const std::string message = "tab\there \xff\x01 \xC3\xA9";
  EXPECT_EQ(text(handler(message)), "2026-11-27T21:00:00.123Z\t8f5e2c1a-0001\tINFO\t" + message);
}

TEST(LogFormatTextTest, TimestampIsUtcWithTruncatedMilliseconds) {
  LogRecord r = handler("m");
  r.time = test_time() + absl::Nanoseconds(999'999);
  EXPECT_EQ(text(r).substr(0, kTime.size()), kTime);
  r.time = absl::UnixEpoch();
  EXPECT_EQ(text(r).substr(0, 25), "1970-01-01T00:00:00.000Z\t");
}

// ---- JSON ------------------------------------------------------------------------------------

TEST(LogFormatJsonTest, StartLine) {
  const LogRecord r = platform(LogKind::kStart);
  EXPECT_EQ(json_text(r), R"({"time":"2026-11-27T21:00:00.123Z","type":"platform.start",)"
                          R"("record":{"requestId":"8f5e2c1a-0001","version":"$LATEST"}})");
  const json j = parsed(r);
  EXPECT_EQ(j.at("time"), kTime);
  EXPECT_EQ(j.at("type"), "platform.start");
  EXPECT_EQ(j.at("record"), (json{{"requestId", "8f5e2c1a-0001"}, {"version", "$LATEST"}}));
}

TEST(LogFormatJsonTest, EndLine) {
  const LogRecord r = platform(LogKind::kEnd);
  EXPECT_EQ(json_text(r), R"({"time":"2026-11-27T21:00:00.123Z","type":"platform.end",)"
                          R"("record":{"requestId":"8f5e2c1a-0001"}})");
  const json j = parsed(r);
  EXPECT_EQ(j.at("type"), "platform.end");
  EXPECT_EQ(j.at("record"), (json{{"requestId", "8f5e2c1a-0001"}}));
}

TEST(LogFormatJsonTest, ReportLineWithoutInitDuration) {
  const LogRecord r = platform(LogKind::kReport, &kReport);
  EXPECT_EQ(json_text(r), R"({"time":"2026-11-27T21:00:00.123Z","type":"platform.report",)"
                          R"("record":{"requestId":"8f5e2c1a-0001","metrics":{"durationMs":12.346,)"
                          R"("billedDurationMs":13,"memorySizeMB":128,"maxMemoryUsedMB":3}}})");
  const json j = parsed(r);
  EXPECT_EQ(j.at("type"), "platform.report");
  const json& record = j.at("record");
  EXPECT_EQ(record.at("requestId"), "8f5e2c1a-0001");
  EXPECT_FALSE(record.contains("status"));
  const json& m = record.at("metrics");
  EXPECT_DOUBLE_EQ(m.at("durationMs").get<double>(), 12.346);
  EXPECT_TRUE(m.at("billedDurationMs").is_number_integer());
  EXPECT_EQ(m.at("billedDurationMs"), 13);
  EXPECT_EQ(m.at("memorySizeMB"), 128);
  EXPECT_EQ(m.at("maxMemoryUsedMB"), 3);
  EXPECT_FALSE(m.contains("initDurationMs"));
}

TEST(LogFormatJsonTest, ReportLineWithInitDuration) {
  InvocationReport report = kReport;
  report.init_duration_ns = 400'000;
  const LogRecord r = platform(LogKind::kReport, &report);
  EXPECT_EQ(json_text(r), R"({"time":"2026-11-27T21:00:00.123Z","type":"platform.report",)"
                          R"("record":{"requestId":"8f5e2c1a-0001","metrics":{"durationMs":12.346,)"
                          R"("billedDurationMs":13,"memorySizeMB":128,"maxMemoryUsedMB":3,)"
                          R"("initDurationMs":0.400}}})");
  EXPECT_DOUBLE_EQ(parsed(r).at("record").at("metrics").at("initDurationMs").get<double>(), 0.4);
}

TEST(LogFormatJsonTest, DurationsHaveThreeDecimals) {
  const auto duration_text = [](std::int64_t ns) {
    InvocationReport report = kReport;
    report.duration_ns = ns;
    const std::string line = json_text(platform(LogKind::kReport, &report));
    const std::size_t at = line.find("\"durationMs\":") + 13;
    return line.substr(at, line.find(',', at) - at);
  };
  EXPECT_EQ(duration_text(0), "0.000");
  EXPECT_EQ(duration_text(499), "0.000");
  EXPECT_EQ(duration_text(500), "0.001");
  EXPECT_EQ(duration_text(12'345'000), "12.345");
  EXPECT_EQ(duration_text(3'000'000'000), "3000.000");
}

TEST(LogFormatJsonTest, ReportWithoutFiguresHasNoMetrics) {
  const LogRecord r = platform(LogKind::kReport, nullptr);
  EXPECT_EQ(parsed(r).at("record"), (json{{"requestId", "8f5e2c1a-0001"}}));
}

TEST(LogFormatJsonTest, HandlerLine) {
  const LogRecord r = handler("quote ready");
  EXPECT_EQ(json_text(r), R"({"timestamp":"2026-11-27T21:00:00.123Z","level":"INFO",)"
                          R"("requestId":"8f5e2c1a-0001","function":"pricing.quote",)"
                          R"("message":"quote ready"})");
  const json j = parsed(r);
  EXPECT_EQ(j.at("timestamp"), kTime);
  EXPECT_EQ(j.at("level"), "INFO");
  EXPECT_EQ(j.at("requestId"), "8f5e2c1a-0001");
  EXPECT_EQ(j.at("function"), "pricing.quote");
  EXPECT_EQ(j.at("message"), "quote ready");
  EXPECT_FALSE(j.contains("version"));
}

TEST(LogFormatJsonTest, HandlerLineWithVersion) {
  LogRecord r = handler("m", LogLevel::kWarn);
  r.version = "3";
  EXPECT_EQ(json_text(r), R"({"timestamp":"2026-11-27T21:00:00.123Z","level":"WARN",)"
                          R"("requestId":"8f5e2c1a-0001","function":"pricing.quote",)"
                          R"("version":"3","message":"m"})");
  EXPECT_EQ(parsed(r).at("version"), "3");
}

TEST(LogFormatJsonTest, EmptyRequestIdAndFunctionAreLeftOut) {
  LogRecord r = handler("engine says", LogLevel::kError);
  r.kind = LogKind::kEngine;
  r.request_id = {};
  r.function = {};
  EXPECT_EQ(json_text(r), R"({"timestamp":"2026-11-27T21:00:00.123Z","level":"ERROR",)"
                          R"("message":"engine says"})");
  const json j = parsed(r);
  EXPECT_FALSE(j.contains("requestId"));
  EXPECT_FALSE(j.contains("function"));
  EXPECT_EQ(j.at("message"), "engine says");
}

TEST(LogFormatJsonTest, EngineLineKeepsRequestId) {
  LogRecord r = handler("Task timed out after 3.00 seconds", LogLevel::kError);
  r.kind = LogKind::kEngine;
  const json j = parsed(r);
  EXPECT_EQ(j.at("requestId"), "8f5e2c1a-0001");
  EXPECT_EQ(j.at("level"), "ERROR");
  EXPECT_EQ(j.at("message"), "Task timed out after 3.00 seconds");
}

TEST(LogFormatJsonTest, EscapesQuotesBackslashesAndControlCharacters) {
  const std::string message = "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f";
  const LogRecord r = handler(message);
  const std::string line = json_text(r);
  EXPECT_NE(line.find(R"("message":"q\"b\\s/\b\f\n\r\t\u0001\u001f)"
                      "\x7f"
                      R"("})"),
            std::string::npos)
      << line;
  EXPECT_EQ(parsed(r).at("message"), message);
}

TEST(LogFormatJsonTest, EveryControlCharacterIsEscaped) {
  for (int c = 0; c < 0x20; ++c) {
    const std::string message(1, static_cast<char>(c));
    const std::string line = json_text(handler(message));
    EXPECT_FALSE(std::any_of(line.begin(), line.end(), [](char b) {
      return static_cast<unsigned char>(b) < 0x20;
    })) << c;
    EXPECT_EQ(parsed(handler(message)).at("message"), message) << c;
  }
  EXPECT_NE(json_text(handler(std::string(1, '\0'))).find(R"("\u0000")"), std::string::npos);
}

TEST(LogFormatJsonTest, InvalidUtf8BecomesReplacementCharacters) {
  // A stray byte, an overlong '/', a surrogate half, a sequence cut short at the end.
  const std::string message(
      "a\xff"
      "b\xc0\xaf"
      "c\xed\xa0\x80"
      "d\xe2\x82");
  const std::string expected = "a" + fffd(1) + "b" + fffd(2) + "c" + fffd(3) + "d" + fffd(2);
  LogRecord r = handler(message);
  EXPECT_NE(json_text(r).find("\"message\":\"" + expected + "\""), std::string::npos);
  EXPECT_EQ(parsed(r).at("message"), expected);
  // In every field, not only the message.
  r.function = "\xfe";
  r.request_id = "\x80";
  r.version = "\xf5\x80\x80\x80";  // past U+10FFFF
  const json j = parsed(r);
  EXPECT_EQ(j.at("function"), kReplacement);
  EXPECT_EQ(j.at("requestId"), kReplacement);
  EXPECT_EQ(j.at("version"), fffd(4));
}

TEST(LogFormatJsonTest, ValidMultibyteUtf8PassesThrough) {
  const std::string message = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xEF\xBF\xBF";
  const LogRecord r = handler(message);
  EXPECT_NE(json_text(r).find("\"message\":\"" + message + "\""), std::string::npos);
  EXPECT_EQ(parsed(r).at("message"), message);
}

TEST(LogFormatJsonTest, EveryByteValueGivesValidJson) {
  for (int b = 0; b < 256; ++b) {
    const std::string message{'a', static_cast<char>(b), 'z'};
    json j;
    ASSERT_NO_THROW(j = parsed(handler(message))) << b;
    if (b < 0x80) {
      EXPECT_EQ(j.at("message"), message) << b;
    } else {
      EXPECT_EQ(j.at("message"), "a\xEF\xBF\xBDz") << b;
    }
  }
}

TEST(LogFormatJsonTest, RandomBytesAlwaysParseAndValidTextRoundTrips) {
  // Strings built of pieces, valid and not, so that both kinds come up often.
  // clang-format off
  static constexpr std::string_view kPieces[] = {
      "a", " ", "\"", "\\", "\n", "\x01", "\x7f", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80",
      "\xff", "\x80", "\xC3", "\xE2\x82", "\xED\xA0\x80", "\xC0\xAF", "\xF4\x90\x80\x80"};
  // clang-format on
  std::mt19937 rng(20261127);  // fixed: the same strings every run
  std::uniform_int_distribution<std::size_t> piece(0, std::size(kPieces) - 1);
  std::uniform_int_distribution<int> length(0, 8);
  int valid = 0;
  int invalid = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string message;
    for (int n = length(rng); n > 0; --n) message += kPieces[piece(rng)];
    json j;
    ASSERT_NO_THROW(j = parsed(handler(message))) << i;
    bool input_valid = true;
    try {
      (void)json(message).dump();  // nlohmann refuses to dump invalid UTF-8
    } catch (const json::type_error&) {
      input_valid = false;
    }
    if (input_valid) {
      ++valid;
      EXPECT_EQ(j.at("message").get<std::string>(), message) << i;
    } else {
      ++invalid;
      EXPECT_NE(j.at("message").get<std::string>().find(kReplacement), std::string::npos) << i;
    }
  }
  EXPECT_GT(valid, 100);
  EXPECT_GT(invalid, 100);
}

// ---- Lifecycle event names -------------------------------------------------------------------

TEST(LogFormatLifecycleTest, NamesFollowTheTelemetryApi) {
  EXPECT_EQ(lifecycle_event_name(LifecycleEventType::kInitStart), "platform.initStart");
  EXPECT_EQ(lifecycle_event_name(LifecycleEventType::kInitReport), "platform.initReport");
  EXPECT_EQ(lifecycle_event_name(LifecycleEventType::kInvokeStart), "platform.start");
  EXPECT_EQ(lifecycle_event_name(LifecycleEventType::kInvokeEnd), "platform.runtimeDone");
  EXPECT_EQ(lifecycle_event_name(LifecycleEventType::kInvokeReport), "platform.report");
  EXPECT_EQ(lifecycle_event_name(LifecycleEventType::kShutdown), "platform.shutdown");
  EXPECT_EQ(lifecycle_event_name(LifecycleEventType::kLogsDropped), "platform.logsDropped");
}

}  // namespace
}  // namespace ember
