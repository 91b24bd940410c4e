// duration.hpp — the ember tool's durations and numbers as people type and read them.
//
//   parse_duration("500ms")            -> 500 ms   ("3s", "1m", "1h30m", "2.5s" too)
//   format_nanos(1234.0, true)         -> "1.23 µs" (false: "1.23 us", for non-UTF-8 terminals)
//   format_count(1234567)              -> "1,234,567"
#pragma once

#include <absl/time/time.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "ember/result.hpp"

namespace ember::cli {

// Parses a positive, finite duration written as absl::ParseDuration reads it: a number and a
// unit (ns, us, ms, s, m, h), repeated ("1h30m"). A bare number, zero, a negative duration or
// "inf" is refused with kInvalidArgument quoting the text and showing the expected form.
[[nodiscard]] Result<absl::Duration> parse_duration(std::string_view text);

// A duration in nanoseconds with three significant digits and the unit that suits it:
// "812 ns", "1.23 µs", "45.6 ms", "2.00 s". `unicode` false writes "us" for microseconds.
[[nodiscard]] std::string format_nanos(double ns, bool unicode);

// A count with thousands separators: "1,234,567".
[[nodiscard]] std::string format_count(std::uint64_t n);

}  // namespace ember::cli
