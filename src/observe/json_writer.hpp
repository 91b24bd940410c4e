// json_writer.hpp — the pieces of hand-written JSON that log_format.cpp and chrome_trace.cpp
// share: string escaping that always yields valid JSON and valid UTF-8, and exact fixed-point
// numbers from integer nanoseconds (no binary floating point, so 12.345 ms prints as 12.345).
//
//   std::string out = "{\"message\":";
//   append_json_string(out, record.message);             // "\"a\\tb\"", bad bytes -> U+FFFD
//   out += ",\"durationMs\":";
//   append_fixed(out, 12'345'678, /*scale_digits=*/6, /*decimals=*/3);  // "12.346"
//   out += '}';
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "observe/utf8.hpp"

namespace ember::detail {

// Appends `text` as a JSON string, quotes included (RFC 8259): `"` and `\` escaped, control
// characters U+0000..U+001F as \b \f \n \r \t or \u00XX, everything else as is. Each byte that
// is not part of a valid UTF-8 sequence becomes U+FFFD, so the output is valid UTF-8 whatever
// the input (strict parsers, nlohmann::json's among them, refuse invalid UTF-8).
inline void append_json_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.reserve(out.size() + text.size() + 2);
  out.push_back('"');
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t len = utf8_sequence_length(text, i);
    if (len == 0) {
      out.append("\xEF\xBF\xBD");  // U+FFFD REPLACEMENT CHARACTER
      ++i;
      continue;
    }
    if (len > 1) {
      out.append(text.substr(i, len));
      i += len;
      continue;
    }
    const char c = text[i++];
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\b':
        out.append("\\b");
        break;
      case '\f':
        out.append("\\f");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out.append("\\u00");
          out.push_back(kHex[static_cast<unsigned char>(c) >> 4]);
          out.push_back(kHex[static_cast<unsigned char>(c) & 0xF]);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

// Appends an integer in decimal.
template <typename Int>
void append_int(std::string& out, Int value) {
  char buf[24];  // 20 digits of UINT64_MAX, or a sign and 19 digits
  out.append(buf, static_cast<std::size_t>(std::to_chars(buf, buf + sizeof buf, value).ptr - buf));
}

// Appends magnitude / 10^scale_digits (negated if `negative`) in fixed notation with exactly
// `decimals` fraction digits, rounded half away from zero: (123'456, 3, 2) -> "123.46". A value
// that rounds to zero prints without a sign. Precondition: 0 <= decimals <= scale_digits <= 18.
inline void append_fixed(std::string& out, std::uint64_t magnitude, bool negative, int scale_digits,
                         int decimals) {
  const auto pow10 = [](int n) {
    std::uint64_t p = 1;
    while (n-- > 0) p *= 10;
    return p;
  };
  const std::uint64_t drop = pow10(scale_digits - decimals);
  std::uint64_t q = magnitude / drop;
  // remainder < drop <= 10^18, so doubling it cannot overflow.
  if ((magnitude % drop) * 2 >= drop) ++q;
  const std::uint64_t unit = pow10(decimals);
  if (negative && q != 0) out.push_back('-');
  append_int(out, q / unit);
  if (decimals == 0) return;
  out.push_back('.');
  const std::size_t at = out.size();
  out.append(static_cast<std::size_t>(decimals), '0');
  std::uint64_t frac = q % unit;
  for (std::size_t k = static_cast<std::size_t>(decimals); k > 0 && frac != 0; --k, frac /= 10) {
    out[at + k - 1] = static_cast<char>('0' + frac % 10);
  }
}

// The same for a signed value: append_fixed(out, 12'345'678, 6, 3) -> "12.346" (ns as ms).
inline void append_fixed(std::string& out, std::int64_t value, int scale_digits, int decimals) {
  // 0 - u is the magnitude for every negative value, INT64_MIN included.
  const auto u = static_cast<std::uint64_t>(value);
  append_fixed(out, value < 0 ? 0 - u : u, value < 0, scale_digits, decimals);
}

}  // namespace ember::detail
