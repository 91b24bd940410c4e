// text.hpp — absl::StrCat / StrAppend that also take std::string_view.
//
// Debian's Abseil has its own absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0), which
// std::string_view does not convert to; these convert each string piece, numbers pass through.
//   std::string s = cat("\"", path_view, "\": ", 42);
#pragma once

#include <absl/strings/str_cat.h>
#include <absl/strings/string_view.h>

#include <string>
#include <string_view>
#include <type_traits>

namespace ember::cli {
namespace text_detail {

template <typename T>
decltype(auto) piece(const T& value) {
  if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    const std::string_view s = value;
    return absl::string_view(s.data(), s.size());
  } else {
    return (value);  // a number: absl::AlphaNum formats it
  }
}

}  // namespace text_detail

template <typename... Pieces>
[[nodiscard]] std::string cat(const Pieces&... pieces) {
  return absl::StrCat(text_detail::piece(pieces)...);
}

template <typename... Pieces>
void append(std::string* out, const Pieces&... pieces) {
  absl::StrAppend(out, text_detail::piece(pieces)...);
}

}  // namespace ember::cli
