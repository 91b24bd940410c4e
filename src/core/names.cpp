#include "core/names.hpp"

#include "core/str_cat.hpp"

namespace ember::detail {

namespace {
bool is_alnum(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
}  // namespace

Result<void> validate_function_name(std::string_view name) {
  if (name.empty()) return fail(ErrorCode::kInvalidArgument, "function name is empty");
  if (name.size() > kMaxFunctionNameLength) {
    return fail(ErrorCode::kInvalidArgument,
                cat("function name '", name.substr(0, 16), "...' is ", name.size(),
                    " characters; at most ", kMaxFunctionNameLength, " are allowed"));
  }
  if (!is_alnum(name[0])) {
    return fail(ErrorCode::kInvalidArgument,
                cat("function name '", name, "' must start with a letter or digit"));
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (!is_alnum(c) && c != '.' && c != '_' && c != '-') {
      const bool printable = c >= 0x20 && c < 0x7f;
      return fail(ErrorCode::kInvalidArgument,
                  cat("function name '", printable ? name : std::string_view("<binary>"),
                      "' has character ",
                      printable ? cat("'", c, "'")
                                : cat("byte ", static_cast<int>(static_cast<unsigned char>(c))),
                      " at position ", i, "; allowed are letters, digits, '.', '_', '-'"));
    }
  }
  return {};
}

QualifiedName split_qualifier(std::string_view text) noexcept {
  const std::size_t colon = text.find(':');
  if (colon == std::string_view::npos) return {text, {}};
  return {text.substr(0, colon), text.substr(colon + 1)};
}

}  // namespace ember::detail
