// prometheus_parse.hpp — a strict parser of the Prometheus text exposition format 0.0.4, for
// tests: written from the format's description, independently of src/observe/prometheus.cpp, so
// that the writer's output is checked rather than echoed.
//
// Strict where the format is, and stricter where ember's writer promises more: every family has
// exactly one HELP and one TYPE line, both before its samples; a family's samples are grouped;
// label names and values are checked and unescaped (only \\, \" and \n are escapes); a
// histogram's series have `le` last and ascending, cumulative counts ending in +Inf equal to
// _count, and a _sum. Errors are collected and reported as test failures by parse():
//
//   const Exposition e = parse(text.str());        // ADD_FAILURE()s each error
//   expect_histograms_well_formed(e);
//   EXPECT_EQ(e.family("ember_invocations_total")->samples[0].value, 42);
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ember::prometheus_parse {

struct Sample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
  [[nodiscard]] std::optional<std::string> label(std::string_view n) const {
    for (const auto& [k, v] : labels) {
      if (k == n) return v;
    }
    return std::nullopt;
  }
};

struct Family {
  std::string name;
  std::string type = "untyped";
  std::string help;
  int help_lines = 0;
  int type_lines = 0;
  std::vector<Sample> samples;
};

struct Exposition {
  std::vector<Family> families;  // in order of appearance
  std::vector<std::string> errors;
  [[nodiscard]] const Family* family(std::string_view name) const {
    for (const auto& f : families) {
      if (f.name == name) return &f;
    }
    return nullptr;
  }
};

// [a-zA-Z_:][a-zA-Z0-9_:]*; label names the same without ':' and not starting "__".
inline bool valid_name(std::string_view s, bool colons) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (!(std::isalpha(c) || c == '_' || (colons && c == ':') || (i > 0 && std::isdigit(c)))) {
      return false;
    }
  }
  return true;
}
inline bool valid_metric_name(std::string_view s) { return valid_name(s, true); }
inline bool valid_label_name(std::string_view s) {
  return !s.starts_with("__") && valid_name(s, false);
}

// Decodes code points; false on anything RFC 3629 forbids.
inline bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    int len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    std::uint32_t cp = len == 1 ? b : b & (0x7F >> len);
    for (int k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c >> 6) != 2) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    const std::uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

inline std::optional<double> parse_value(std::string_view s) {
  if (s == "+Inf") return std::numeric_limits<double>::infinity();
  if (s == "-Inf") return -std::numeric_limits<double>::infinity();
  if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (s.empty() || s.find_first_not_of("0123456789+-.eE") != std::string_view::npos) return {};
  const std::string text(s);
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return {};
  return v;
}

class Parser {
 public:
  Exposition parse(std::string_view text) {
    if (!text.empty() && text.back() != '\n') error("text does not end in a newline");
    while (!text.empty()) {
      const std::size_t nl = text.find('\n');
      line(text.substr(0, nl));
      text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
      ++line_no_;
    }
    // Stricter than the format (which allows untyped, undocumented and empty families): what
    // ember's writer promises.
    for (const Family& f : out_.families) {
      if (f.help_lines != 1) out_.errors.push_back("family '" + f.name + "' has no HELP");
      if (f.type_lines != 1) out_.errors.push_back("family '" + f.name + "' has no TYPE");
      if (f.samples.empty()) out_.errors.push_back("family '" + f.name + "' has no samples");
    }
    return std::move(out_);
  }

 private:
  void error(const std::string& what) {
    out_.errors.push_back("line " + std::to_string(line_no_) + ": " + what);
  }

  Family& family(const std::string& name) {
    for (auto& f : out_.families) {
      if (f.name == name) return f;
    }
    out_.families.push_back(Family{name});
    return out_.families.back();
  }

  // The family a sample name belongs to: its own, or a histogram's for x_bucket/x_sum/x_count.
  std::string family_of(const std::string& sample) {
    for (std::string suffix : {"_bucket", "_sum", "_count"}) {
      if (sample.size() > suffix.size() && sample.ends_with(suffix)) {
        const std::string stem = sample.substr(0, sample.size() - suffix.size());
        for (auto& f : out_.families) {
          if (f.name == stem && f.type == "histogram") return stem;
        }
      }
    }
    return sample;
  }

  // Reads up to the closing quote, undoing \\ \" \n; anything else escaped is an error.
  std::optional<std::string> quoted(std::string_view& s, bool quotes) {
    std::string v;
    while (!s.empty()) {
      const char c = s.front();
      s.remove_prefix(1);
      if (quotes && c == '"') return v;
      if (c != '\\') {
        v.push_back(c);
        continue;
      }
      if (s.empty()) break;
      const char e = s.front();
      s.remove_prefix(1);
      if (e == '\\') {
        v.push_back('\\');
      } else if (e == 'n') {
        v.push_back('\n');
      } else if (e == '"' && quotes) {
        v.push_back('"');
      } else {
        error(std::string("bad escape \\") + e);
        return std::nullopt;
      }
    }
    if (!quotes) return v;
    error("unterminated label value");
    return std::nullopt;
  }

  void line(std::string_view l) {
    if (l.empty()) return;
    if (l.front() == '#') return comment(l);
    std::size_t n = 0;
    while (n < l.size() && l[n] != '{' && l[n] != ' ') ++n;
    Sample s{std::string(l.substr(0, n))};
    if (!valid_metric_name(s.name)) return error("bad metric name '" + s.name + "'");
    l.remove_prefix(n);
    if (!l.empty() && l.front() == '{') {
      l.remove_prefix(1);
      while (!l.empty() && l.front() != '}') {
        const std::size_t eq = l.find("=\"");
        if (eq == std::string_view::npos) return error("label without =\"");
        std::string name(l.substr(0, eq));
        if (!valid_label_name(name)) return error("bad label name '" + name + "'");
        if (s.label(name)) return error("label '" + name + "' twice");
        l.remove_prefix(eq + 2);
        auto value = quoted(l, true);
        if (!value) return;
        if (!valid_utf8(*value)) return error("label value not UTF-8");
        s.labels.emplace_back(std::move(name), std::move(*value));
        if (!l.empty() && l.front() == ',') l.remove_prefix(1);
      }
      if (l.empty()) return error("unterminated label set");
      l.remove_prefix(1);
    }
    if (l.empty() || l.front() != ' ') return error("no space before the value");
    l.remove_prefix(1);
    const std::size_t sp = l.find(' ');
    const auto value = parse_value(l.substr(0, sp));
    if (!value) return error("bad value '" + std::string(l.substr(0, sp)) + "'");
    if (sp != std::string_view::npos) return error("unexpected timestamp or trailing text");
    s.value = *value;
    const std::string fam = family_of(s.name);
    Family& f = family(fam);
    if (!f.samples.empty() && current_ != fam) error("samples of '" + fam + "' are not grouped");
    current_ = fam;
    f.samples.push_back(std::move(s));
  }

  void comment(std::string_view l) {
    if (!l.starts_with("# HELP ") && !l.starts_with("# TYPE ")) return;  // a plain comment
    const bool help = l.starts_with("# HELP ");
    l.remove_prefix(7);
    const std::size_t sp = l.find(' ');
    const std::string name(l.substr(0, sp));
    if (!valid_metric_name(name)) return error("bad metric name in HELP/TYPE '" + name + "'");
    std::string_view rest = sp == std::string_view::npos ? "" : l.substr(sp + 1);
    Family& f = family(name);
    if (!f.samples.empty()) error("HELP/TYPE of '" + name + "' after its samples");
    if (help) {
      if (++f.help_lines > 1) error("second HELP for '" + name + "'");
      auto text = quoted(rest, false);
      if (text) f.help = *text;
    } else {
      if (++f.type_lines > 1) error("second TYPE for '" + name + "'");
      static const std::vector<std::string_view> kTypes = {"counter", "gauge", "histogram",
                                                           "summary", "untyped"};
      if (std::find(kTypes.begin(), kTypes.end(), rest) == kTypes.end()) {
        error("bad type '" + std::string(rest) + "'");
      }
      f.type = std::string(rest);
    }
  }

  Exposition out_;
  std::string current_;
  int line_no_ = 1;
};

inline Exposition parse(const std::string& text) {
  Exposition e = Parser().parse(text);
  for (const auto& err : e.errors) ADD_FAILURE() << err << "\nin:\n" << text;
  return e;
}

// Every histogram family: per label set, le last and ascending, counts cumulative, the last
// bucket +Inf and equal to _count, one _count and one _sum, and nothing else.
inline void expect_histograms_well_formed(const Exposition& e) {
  using Key = std::vector<std::pair<std::string, std::string>>;
  for (const Family& f : e.families) {
    if (f.type != "histogram") continue;
    std::map<Key, std::vector<const Sample*>> series;
    std::map<Key, double> counts;
    std::map<Key, int> sums;
    for (const Sample& s : f.samples) {
      if (s.name == f.name + "_bucket") {
        auto key = s.labels;
        ASSERT_FALSE(key.empty()) << "a bucket without le in " << f.name;
        ASSERT_EQ(key.back().first, "le") << "le comes last in " << f.name;
        key.pop_back();
        series[key].push_back(&s);
      } else if (s.name == f.name + "_count") {
        EXPECT_FALSE(counts.contains(s.labels)) << "_count twice in " << f.name;
        counts[s.labels] = s.value;
      } else {
        ASSERT_EQ(s.name, f.name + "_sum");
        EXPECT_FALSE(s.label("le").has_value()) << f.name;
        ++sums[s.labels];
      }
    }
    ASSERT_EQ(series.size(), counts.size()) << f.name;
    ASSERT_EQ(series.size(), sums.size()) << f.name;
    for (const auto& [key, buckets] : series) {
      double previous_le = -std::numeric_limits<double>::infinity();
      double previous_count = 0;
      for (const Sample* b : buckets) {
        const std::optional<double> le = parse_value(*b->label("le"));
        ASSERT_TRUE(le.has_value()) << f.name << " le=" << *b->label("le");
        EXPECT_GT(*le, previous_le) << f.name;
        EXPECT_GE(b->value, previous_count) << f.name;
        previous_le = *le;
        previous_count = b->value;
      }
      EXPECT_EQ(*buckets.back()->label("le"), "+Inf");
      ASSERT_TRUE(counts.contains(key)) << f.name;
      EXPECT_EQ(buckets.back()->value, counts[key]);
      EXPECT_EQ(sums[key], 1) << "one _sum per series in " << f.name;
    }
  }
}

}  // namespace ember::prometheus_parse
