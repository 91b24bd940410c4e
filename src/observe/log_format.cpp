// log_format.cpp — format_log_line(): a LogRecord as Lambda's text or JSON log format; and
// lifecycle_event_name(): the Telemetry API's names of lifecycle events.
//
// What observe.hpp leaves open is settled here:
//  - Timestamps are LogRecord::time in UTC, RFC 3339 with milliseconds (truncated, not rounded):
//    "2026-11-27T21:00:00.123Z".
//  - Durations come from integer nanoseconds and are rounded half away from zero: text shows
//    milliseconds with 2 decimals ("12.35 ms", as Lambda), JSON with 3 ("durationMs":12.346,
//    microsecond resolution). Billed duration and memory figures are integers.
//  - Text keeps one record on one line: every '\n' in any field becomes '\r', as Lambda's
//    runtimes do, so that a line-based reader (and the default sink's "\n" after each line)
//    sees one record per line. Nothing else is changed: text is bytes, and tabs and invalid
//    UTF-8 pass through as they are.
//  - Text handler and engine lines have exactly four tab-separated fields; an empty request id
//    prints as "-" (Lambda prints no function name, so neither does ember).
//  - START without a version says "$LATEST", the version of a function registered in C++.
//  - JSON END is "platform.end" with {"requestId"} as its record (observe.hpp names it so;
//    Lambda's JSON format has no END line, and the Telemetry API's nearest event,
//    platform.runtimeDone, is what lifecycle_event_name() gives for kInvokeEnd).
//  - JSON REPORT carries no "status": a LogRecord does not say how the invocation ended.
//  - A REPORT record without its `report` (a caller's bug) prints the request id and no
//    figures rather than made-up ones.
//  - JSON handler and engine lines leave out requestId, function and version when empty.
//  - JSON strings are always valid JSON and UTF-8 (json_writer.hpp); no trailing newline.
#include <absl/time/time.h>

#include <string>
#include <string_view>

#include "ember/observe.hpp"
#include "ember/options.hpp"
#include "observe/json_writer.hpp"

namespace ember {

namespace {

using detail::append_fixed;
using detail::append_int;
using detail::append_json_string;

constexpr std::string_view kDefaultVersion = "$LATEST";

std::string_view level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarn:
      return "WARN";
    case LogLevel::kError:
      return "ERROR";
  }
  return "INFO";  // a value outside the enum: still a line a reader can use
}

std::string timestamp(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

std::string_view version_or_default(std::string_view version) {
  return version.empty() ? kDefaultVersion : version;
}

// A text field: newlines become carriage returns so that the record stays one line.
void append_text(std::string& out, std::string_view field) {
  for (char c : field) out.push_back(c == '\n' ? '\r' : c);
}

// ns as milliseconds with 2 decimals (text) or 3 (JSON).
void append_text_ms(std::string& out, std::int64_t ns) { append_fixed(out, ns, 6, 2); }
void append_json_ms(std::string& out, std::int64_t ns) { append_fixed(out, ns, 6, 3); }

std::string text_line(const LogRecord& r) {
  std::string out;
  switch (r.kind) {
    case LogKind::kStart:
      out = "START RequestId: ";
      append_text(out, r.request_id);
      out += " Version: ";
      append_text(out, version_or_default(r.version));
      return out;
    case LogKind::kEnd:
      out = "END RequestId: ";
      append_text(out, r.request_id);
      return out;
    case LogKind::kReport:
      out = "REPORT RequestId: ";
      append_text(out, r.request_id);
      if (r.report != nullptr) {
        const InvocationReport& m = *r.report;
        out += "\tDuration: ";
        append_text_ms(out, m.duration_ns);
        out += " ms\tBilled Duration: ";
        append_int(out, m.billed_duration_ms);
        out += " ms\tMemory Size: ";
        append_int(out, m.memory_size_mb);
        out += " MB\tMax Memory Used: ";
        append_int(out, m.max_memory_used_mb);
        out += " MB";
        if (m.init_duration_ns.has_value()) {
          out += "\tInit Duration: ";
          append_text_ms(out, *m.init_duration_ns);
          out += " ms";
        }
        if (m.restore_duration_ns.has_value()) {  // SnapStart's name for it
          out += "\tRestore Duration: ";
          append_text_ms(out, *m.restore_duration_ns);
          out += " ms";
        }
        if (m.scratch_used_bytes.has_value()) {
          out += "\tScratch Used: ";
          append_int(out, (*m.scratch_used_bytes + 1023) / 1024);
          out += " KB";
        }
      }
      return out;
    case LogKind::kHandler:
    case LogKind::kEngine:
      break;
  }
  // Handler and engine lines (and a kind outside the enum).
  out = timestamp(r.time);
  out.reserve(out.size() + r.request_id.size() + r.message.size() + 16);
  out.push_back('\t');
  append_text(out, r.request_id.empty() ? std::string_view("-") : r.request_id);
  out.push_back('\t');
  out += level_name(r.level);
  out.push_back('\t');
  append_text(out, r.message);
  return out;
}

// {"time":...,"type":<type>,"record":{"requestId":...  (the caller closes both objects)
void open_platform_json(std::string& out, const LogRecord& r, std::string_view type) {
  out += "{\"time\":";
  append_json_string(out, timestamp(r.time));
  out += ",\"type\":";
  append_json_string(out, type);
  out += ",\"record\":{\"requestId\":";
  append_json_string(out, r.request_id);
}

std::string json_line(const LogRecord& r) {
  std::string out;
  switch (r.kind) {
    case LogKind::kStart:
      open_platform_json(out, r, "platform.start");
      out += ",\"version\":";
      append_json_string(out, version_or_default(r.version));
      out += "}}";
      return out;
    case LogKind::kEnd:
      open_platform_json(out, r, "platform.end");
      out += "}}";
      return out;
    case LogKind::kReport:
      open_platform_json(out, r, "platform.report");
      if (r.report != nullptr) {
        const InvocationReport& m = *r.report;
        out += ",\"metrics\":{\"durationMs\":";
        append_json_ms(out, m.duration_ns);
        out += ",\"billedDurationMs\":";
        append_int(out, m.billed_duration_ms);
        out += ",\"memorySizeMB\":";
        append_int(out, m.memory_size_mb);
        out += ",\"maxMemoryUsedMB\":";
        append_int(out, m.max_memory_used_mb);
        if (m.init_duration_ns.has_value()) {
          out += ",\"initDurationMs\":";
          append_json_ms(out, *m.init_duration_ns);
        }
        if (m.restore_duration_ns.has_value()) {
          out += ",\"restoreDurationMs\":";
          append_json_ms(out, *m.restore_duration_ns);
        }
        if (m.scratch_used_bytes.has_value()) {
          out += ",\"scratchUsedBytes\":";
          append_int(out, *m.scratch_used_bytes);
        }
        out += '}';
      }
      out += "}}";
      return out;
    case LogKind::kHandler:
    case LogKind::kEngine:
      break;
  }
  out.reserve(r.message.size() + r.request_id.size() + r.function.size() + 96);
  out += "{\"timestamp\":";
  append_json_string(out, timestamp(r.time));
  out += ",\"level\":";
  append_json_string(out, level_name(r.level));
  if (!r.request_id.empty()) {
    out += ",\"requestId\":";
    append_json_string(out, r.request_id);
  }
  if (!r.function.empty()) {
    out += ",\"function\":";
    append_json_string(out, r.function);
  }
  if (!r.version.empty()) {
    out += ",\"version\":";
    append_json_string(out, r.version);
  }
  out += ",\"message\":";
  append_json_string(out, r.message);
  out += '}';
  return out;
}

}  // namespace

std::string format_log_line(const LogRecord& record, LogFormat format) {
  return format == LogFormat::kJson ? json_line(record) : text_line(record);
}

std::string_view lifecycle_event_name(LifecycleEventType t) noexcept {
  switch (t) {
    case LifecycleEventType::kInitStart:
      return "platform.initStart";
    case LifecycleEventType::kInitReport:
      return "platform.initReport";
    case LifecycleEventType::kInvokeStart:
      return "platform.start";
    case LifecycleEventType::kInvokeEnd:
      return "platform.runtimeDone";
    case LifecycleEventType::kInvokeReport:
      return "platform.report";
    case LifecycleEventType::kShutdown:
      return "platform.shutdown";  // not a Lambda event type: Lambda tells extensions by SHUTDOWN
    case LifecycleEventType::kLogsDropped:
      return "platform.logsDropped";
  }
  return "platform.unknown";
}

}  // namespace ember
