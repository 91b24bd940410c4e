// names.hpp — validation of function names and qualifiers.
#pragma once

#include <string_view>

#include "ember/result.hpp"

namespace ember::detail {

inline constexpr std::size_t kMaxFunctionNameLength = 64;

// 1-64 characters of [A-Za-z0-9._-], the first a letter or digit. The error names the
// offending character and its position.
Result<void> validate_function_name(std::string_view name);

struct QualifiedName {
  std::string_view name;
  std::string_view qualifier;  // empty when none was given
};
// "name" or "name:qualifier".
QualifiedName split_qualifier(std::string_view text) noexcept;

}  // namespace ember::detail
