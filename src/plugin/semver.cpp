#include "plugin/semver.hpp"

#include <algorithm>
#include <charconv>

#include "core/str_cat.hpp"

namespace ember::detail {

std::string SemVer::str() const { return cat(major, ".", minor, ".", patch); }

Result<SemVer> parse_version(std::string_view text) {
  SemVer v;
  int* parts[] = {&v.major, &v.minor, &v.patch};
  std::string_view rest = text;
  for (int i = 0; i < 3; ++i) {
    const char* end = rest.data() + rest.size();
    auto [p, ec] = std::from_chars(rest.data(), end, *parts[i]);
    if (ec != std::errc() || p == rest.data() || *parts[i] < 0) {
      return fail(ErrorCode::kInvalidArgument,
                  cat("version '", text, "' is not MAJOR[.MINOR[.PATCH]] (numbers)"));
    }
    rest = std::string_view(p, static_cast<std::size_t>(end - p));
    if (rest.empty()) return v;
    if (rest[0] != '.' || i == 2) {
      return fail(ErrorCode::kInvalidArgument,
                  cat("version '", text, "' is not MAJOR[.MINOR[.PATCH]] (numbers)"));
    }
    rest.remove_prefix(1);
  }
  return v;
}

Result<VersionConstraint> VersionConstraint::parse(std::string_view text) {
  VersionConstraint c;
  c.text_ = std::string(text);
  std::string_view all = text;
  while (!all.empty() && all.front() == ' ') all.remove_prefix(1);
  bool more = !all.empty();
  while (more) {
    const std::size_t comma = all.find(',');
    std::string_view term = all.substr(0, comma);
    more = comma != std::string_view::npos;  // a comma promises another term, even at the end
    all = more ? all.substr(comma + 1) : std::string_view();
    while (!term.empty() && term.front() == ' ') term.remove_prefix(1);
    while (!term.empty() && term.back() == ' ') term.remove_suffix(1);
    if (term == "*") continue;
    if (term.empty()) {
      return fail(ErrorCode::kInvalidArgument,
                  cat("version constraint '", text, "' has an empty term"));
    }
    std::string_view op;
    for (std::string_view candidate : {">=", "<=", ">", "<", "=", "^", "~"}) {
      if (term.substr(0, candidate.size()) == candidate) {
        op = candidate;
        break;
      }
    }
    std::string_view number = term.substr(op.size());
    while (!number.empty() && number.front() == ' ') number.remove_prefix(1);
    auto v = parse_version(number);
    if (!v) {
      return fail(ErrorCode::kInvalidArgument,
                  cat("version constraint '", text, "': ", v.error().message));
    }
    const int parts = 1 + static_cast<int>(std::count(number.begin(), number.end(), '.'));
    if (op.empty() || op == "^") {
      c.terms_.push_back({Op::kGe, *v});
      c.terms_.push_back({Op::kLt, SemVer{v->major + 1, 0, 0}});
    } else if (op == "~") {
      c.terms_.push_back({Op::kGe, *v});
      c.terms_.push_back(
          {Op::kLt, parts == 1 ? SemVer{v->major + 1, 0, 0} : SemVer{v->major, v->minor + 1, 0}});
    } else if (op == "=") {
      c.terms_.push_back({Op::kEq, *v});
    } else if (op == ">=") {
      c.terms_.push_back({Op::kGe, *v});
    } else if (op == ">") {
      c.terms_.push_back({Op::kGt, *v});
    } else if (op == "<") {
      c.terms_.push_back({Op::kLt, *v});
    } else {
      c.terms_.push_back({Op::kLe, *v});
    }
  }
  return c;
}

bool VersionConstraint::allows(const SemVer& v) const noexcept {
  for (const Term& t : terms_) {
    bool ok = false;
    switch (t.op) {
      case Op::kEq:
        ok = v == t.v;
        break;
      case Op::kGe:
        ok = v >= t.v;
        break;
      case Op::kGt:
        ok = v > t.v;
        break;
      case Op::kLt:
        ok = v < t.v;
        break;
      case Op::kLe:
        ok = v <= t.v;
        break;
    }
    if (!ok) return false;
  }
  return true;
}

}  // namespace ember::detail
