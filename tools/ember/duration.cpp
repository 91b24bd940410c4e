#include "duration.hpp"

#include <absl/strings/str_format.h>

#include <cmath>

#include "text.hpp"

namespace ember::cli {

Result<absl::Duration> parse_duration(std::string_view text) {
  absl::Duration d;
  if (text.empty() || !absl::ParseDuration(absl::string_view(text.data(), text.size()), &d)) {
    return fail(
        ErrorCode::kInvalidArgument,
        cat("\"", text, "\" is not a duration: write a number and a unit, e.g. 500ms, 3s, 1m"));
  }
  if (d == absl::InfiniteDuration() || d <= absl::ZeroDuration()) {
    return fail(ErrorCode::kInvalidArgument,
                cat("\"", text, "\" is not a positive, finite duration"));
  }
  return d;
}

std::string format_nanos(double ns, bool unicode) {
  struct Unit {
    double scale;
    const char* name;
  };
  // Pick the largest unit that keeps the value >= 1, then print three significant digits.
  Unit unit{1.0, "ns"};
  if (ns >= 999.5e6) {
    unit = {1e9, "s"};
  } else if (ns >= 999.5e3) {
    unit = {1e6, "ms"};
  } else if (ns >= 999.5) {
    unit = {1e3, unicode ? "\u00b5s" : "us"};
  }
  const double v = ns / unit.scale;
  if (unit.scale == 1.0) return absl::StrFormat("%.0f %s", std::round(v), unit.name);
  if (v >= 99.95) return absl::StrFormat("%.0f %s", v, unit.name);
  if (v >= 9.995) return absl::StrFormat("%.1f %s", v, unit.name);
  return absl::StrFormat("%.2f %s", v, unit.name);
}

std::string format_count(std::uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  out.reserve(digits.size() + digits.size() / 3);
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

}  // namespace ember::cli
