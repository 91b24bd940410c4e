// chrome_trace.cpp — chrome_trace_json(): spans as Chrome trace-event JSON (the "JSON Object
// Format" of the Trace Event Format), which Perfetto and chrome://tracing open.
//
// The output, one event per line, is fully determined by the set of spans (not their order):
//
//   {"traceEvents":[
//   {"ph":"M","name":"process_name","pid":1,"tid":0,"args":{"name":"ember"}},
//   {"ph":"M","name":"thread_name","pid":1,"tid":1,"args":{"name":"caller 0"}},
//   {"ph":"X","name":"pricing.quote","cat":"invoke","pid":1,"tid":1,"ts":0.000,"dur":12.345,
//    "args":{"trace_id":"<32 hex>","span_id":"<16 hex>","parent_span_id":"","version":"$LATEST",
//            "request_id":"...","fiber":3,"outcome":"ok","attempt":0}},
//   {"ph":"s","name":"invoke","cat":"invoke","id":"0x<child span id>","pid":1,"tid":1,"ts":...},
//   {"ph":"f","bp":"e","name":"invoke","cat":"invoke","id":"0x<child span id>","pid":1,"tid":2,...}
//   ],"displayTimeUnit":"ns"}
//
//  - Everything is in one process (pid 1, named "ember"); each Span::thread is a track (tid),
//    named by the first non-empty Span::thread_name seen on it in the order below, or
//    "thread <n>".
//  - ts and dur are microseconds with 3 decimals, i.e. exact nanoseconds. ts counts from the
//    earliest start_ns of the input, so the numbers stay small (the engine's clock has an
//    arbitrary origin anyway) and keep their nanoseconds in a double.
//  - Order: process_name, thread_name by tid, then the complete ("X") events by (tid, start,
//    longer first, span id) — an enclosing span before the spans it contains even when they
//    start at the same nanosecond — then the flow events, child by child in that order.
//  - A flow arrow joins a span to its parent when the parent (same trace id and span id) is in
//    the input and ran on another thread: "s" on the parent's track, "f" (binding to the
//    enclosing slice) on the child's at its start. The "s" is at the child's start too, clamped
//    into the parent's slice: a child that started after its parent returned (an async invoke)
//    gets its arrow from the parent's last nanosecond, so it still leaves the parent's slice.
//    Flow ids are the child's span id as a hex string, which JavaScript cannot round.
//  - Spans with the same trace and span id (there should be none) are all drawn; the first in
//    the order above is the one children link to.
//  - Empty input: {"traceEvents":[],"displayTimeUnit":"ns"}.
#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "ember/observe.hpp"
#include "ember/result.hpp"
#include "observe/json_writer.hpp"

namespace ember {

namespace {

using detail::append_fixed;
using detail::append_int;
using detail::append_json_string;

constexpr std::string_view kProcessName = "ember";

// The outcome of a span: "ok", or its code's name (error_code_name).
std::string_view outcome_name(const std::optional<ErrorCode>& error) {
  return error.has_value() ? error_code_name(*error) : std::string_view("ok");
}

void append_hex(std::string& out, std::uint64_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int shift = 60; shift >= 0; shift -= 4) out.push_back(kHex[(v >> shift) & 0xF]);
}

// Nanoseconds since the origin as microseconds: exact, since every value is >= 0 and the
// subtraction is done modulo 2^64 (any two int64 differ by less than 2^64).
void append_ts(std::string& out, std::int64_t ns, std::int64_t origin_ns) {
  append_fixed(out, static_cast<std::uint64_t>(ns) - static_cast<std::uint64_t>(origin_ns), false,
               3, 3);
}

// Where the flow arrow to `child` leaves `parent`: the child's start, clamped into the parent's
// slice [start, start + duration), as an offset from the parent's start.
std::uint64_t flow_offset(const Span& parent, const Span& child) {
  if (child.start_ns <= parent.start_ns || parent.duration_ns <= 0) return 0;
  const std::uint64_t offset =
      static_cast<std::uint64_t>(child.start_ns) - static_cast<std::uint64_t>(parent.start_ns);
  const auto duration = static_cast<std::uint64_t>(parent.duration_ns);
  return std::min(offset, duration - 1);
}

using SpanKey = std::tuple<std::uint64_t, std::uint64_t, std::uint64_t>;  // trace hi, lo, span
SpanKey key_of(const Span& s) { return {s.trace_id.hi, s.trace_id.lo, s.span_id}; }
SpanKey parent_key_of(const Span& s) { return {s.trace_id.hi, s.trace_id.lo, s.parent_span_id}; }

class EventWriter final {
 public:
  explicit EventWriter(std::string& out) : out_(out) {}
  // Starts an event: "{" after the right separator.
  std::string& next() {
    out_ += first_ ? "\n{" : ",\n{";
    first_ = false;
    return out_;
  }

 private:
  std::string& out_;
  bool first_ = true;
};

void write_metadata(EventWriter& events, std::string_view what, std::uint32_t tid,
                    std::string_view name) {
  std::string& out = events.next();
  out += "\"ph\":\"M\",\"name\":";
  append_json_string(out, what);
  out += ",\"pid\":1,\"tid\":";
  append_int(out, tid);
  out += ",\"args\":{\"name\":";
  append_json_string(out, name);
  out += "}}";
}

void write_span(EventWriter& events, const Span& s, std::int64_t origin_ns) {
  std::string& out = events.next();
  out += "\"ph\":\"X\",\"name\":";
  append_json_string(out, s.function);
  out += ",\"cat\":\"invoke\",\"pid\":1,\"tid\":";
  append_int(out, s.thread);
  out += ",\"ts\":";
  append_ts(out, s.start_ns, origin_ns);
  out += ",\"dur\":";
  append_fixed(out, s.duration_ns, 3, 3);
  out += ",\"args\":{\"trace_id\":\"";
  append_hex(out, s.trace_id.hi);
  append_hex(out, s.trace_id.lo);
  out += "\",\"span_id\":\"";
  append_hex(out, s.span_id);
  out += "\",\"parent_span_id\":\"";
  if (s.parent_span_id != 0) append_hex(out, s.parent_span_id);
  out += "\",\"version\":";
  append_json_string(out, s.version);
  out += ",\"request_id\":";
  append_json_string(out, s.request_id);
  out += ",\"fiber\":";
  append_int(out, s.fiber);
  out += ",\"outcome\":";
  append_json_string(out, outcome_name(s.error));
  out += ",\"attempt\":";
  append_int(out, s.attempt);
  out += "}}";
}

// One end of a flow arrow ("s" or "f"), identified by the child's span id.
void write_flow(EventWriter& events, bool start, std::uint64_t id, std::uint32_t tid,
                std::uint64_t ts_ns) {
  std::string& out = events.next();
  out += start ? "\"ph\":\"s\"" : "\"ph\":\"f\",\"bp\":\"e\"";
  out += ",\"name\":\"invoke\",\"cat\":\"invoke\",\"id\":\"0x";
  append_hex(out, id);
  out += "\",\"pid\":1,\"tid\":";
  append_int(out, tid);
  out += ",\"ts\":";
  append_fixed(out, ts_ns, false, 3, 3);
  out += '}';
}

}  // namespace

std::string chrome_trace_json(const std::vector<Span>& spans) {
  std::string out = "{\"traceEvents\":[";
  if (spans.empty()) return out + "],\"displayTimeUnit\":\"ns\"}";
  out.reserve(spans.size() * 480);

  std::vector<const Span*> order;
  order.reserve(spans.size());
  for (const Span& s : spans) order.push_back(&s);
  std::stable_sort(order.begin(), order.end(), [](const Span* a, const Span* b) {
    if (a->thread != b->thread) return a->thread < b->thread;
    if (a->start_ns != b->start_ns) return a->start_ns < b->start_ns;
    if (a->duration_ns != b->duration_ns) return a->duration_ns > b->duration_ns;
    return a->span_id < b->span_id;
  });
  std::int64_t origin_ns = spans.front().start_ns;
  std::map<SpanKey, const Span*> by_id;
  for (const Span* s : order) {
    origin_ns = std::min(origin_ns, s->start_ns);
    by_id.emplace(key_of(*s), s);  // the first one wins
  }

  EventWriter events(out);
  write_metadata(events, "process_name", 0, kProcessName);
  for (std::size_t i = 0; i < order.size();) {
    const std::uint32_t thread = order[i]->thread;
    std::string_view name;
    for (; i < order.size() && order[i]->thread == thread; ++i) {
      if (name.empty()) name = order[i]->thread_name;
    }
    write_metadata(events, "thread_name", thread,
                   name.empty() ? "thread " + std::to_string(thread) : std::string(name));
  }

  for (const Span* s : order) write_span(events, *s, origin_ns);

  for (const Span* child : order) {
    if (child->parent_span_id == 0) continue;
    const auto it = by_id.find(parent_key_of(*child));
    if (it == by_id.end() || it->second->thread == child->thread) continue;
    const Span& parent = *it->second;
    // Offsets from the origin; parent_ts + flow_offset() is at most the larger of the two, so
    // it cannot wrap.
    const std::uint64_t parent_ts =
        static_cast<std::uint64_t>(parent.start_ns) - static_cast<std::uint64_t>(origin_ns);
    const std::uint64_t child_ts =
        static_cast<std::uint64_t>(child->start_ns) - static_cast<std::uint64_t>(origin_ns);
    write_flow(events, true, child->span_id, parent.thread,
               parent_ts + flow_offset(parent, *child));
    write_flow(events, false, child->span_id, child->thread, child_ts);
  }

  out += "\n],\"displayTimeUnit\":\"ns\"}";
  return out;
}

}  // namespace ember
