// semver.hpp — layer versions ("1.2.3") and the constraints plugins put on them ("^1.2").
//
// The syntax (documented in ember/plugin.h): "" or "*" any; "1.2" or "^1.2" same major, at
// least 1.2; "~1.2" same major.minor, at least 1.2.0; "=1.2.3" exactly; ">=1.2", ">1.2",
// "<2", "<=2.1"; comparisons joined by commas must all hold. Missing minor/patch parts are 0.
#pragma once

#include <compare>
#include <string>
#include <string_view>
#include <vector>

#include "ember/result.hpp"

namespace ember::detail {

struct SemVer {
  int major = 0;
  int minor = 0;
  int patch = 0;
  friend auto operator<=>(const SemVer&, const SemVer&) = default;
  [[nodiscard]] std::string str() const;
};

// "1", "1.2" or "1.2.3" (digits only); kInvalidArgument saying what is wrong otherwise.
Result<SemVer> parse_version(std::string_view text);

class VersionConstraint final {
 public:
  static Result<VersionConstraint> parse(std::string_view text);
  [[nodiscard]] bool allows(const SemVer& v) const noexcept;
  [[nodiscard]] const std::string& text() const noexcept { return text_; }

 private:
  enum class Op { kEq, kGe, kGt, kLt, kLe };
  struct Term {
    Op op;
    SemVer v;
  };
  std::string text_;
  std::vector<Term> terms_;  // all must hold; none: anything
};

}  // namespace ember::detail
