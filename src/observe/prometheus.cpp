#include "observe/prometheus.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/str_cat.hpp"
#include "observe/utf8.hpp"

namespace ember::detail {

namespace {

bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Copies `text` as valid UTF-8, escaping backslash, newline and (if asked) double quote.
std::string escape(std::string_view text, bool quote) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t len = utf8_sequence_length(text, i);
    if (len == 0) {
      out.append("\xEF\xBF\xBD");  // U+FFFD REPLACEMENT CHARACTER
      ++i;
      continue;
    }
    const char c = text[i];
    if (c == '\\') {
      out.append("\\\\");
    } else if (c == '\n') {
      out.append("\\n");
    } else if (c == '"' && quote) {
      out.append("\\\"");
    } else {
      out.append(text.substr(i, len));
    }
    i += len;
  }
  return out;
}

std::string sanitize(std::string_view name, bool colons) {
  if (name.empty()) return "_";
  std::string out;
  out.reserve(name.size() + 1);
  if (is_digit(name.front())) out.push_back('_');
  for (char c : name) {
    out.push_back(is_letter(c) || is_digit(c) || (colons && c == ':') ? c : '_');
  }
  return out;
}

// Nanoseconds at or below `seconds` (>= 0): floor(seconds * 1e9), except that a product just
// under an integer is taken as that integer — 0.3 * 1e9 is 299999999.99999994 in binary, and
// the boundary a user writes as 0.3 s means 300000000 ns.
std::uint64_t le_nanoseconds(double seconds) {
  const double ns = seconds * 1e9;
  if (ns >= 18446744073709551616.0) return std::numeric_limits<std::uint64_t>::max();
  const double nearest = std::nearbyint(ns);
  const double snapped = std::fabs(ns - nearest) <= ns * 1e-12 ? nearest : std::floor(ns);
  if (snapped >= 18446744073709551616.0) return std::numeric_limits<std::uint64_t>::max();
  return static_cast<std::uint64_t>(snapped);
}

void append_sample(std::string& out, std::string_view name, std::string_view labels,
                   std::string_view value) {
  out.append(name);
  if (!labels.empty()) {
    out.push_back('{');
    out.append(labels);
    out.push_back('}');
  }
  out.push_back(' ');
  out.append(value);
  out.push_back('\n');
}

}  // namespace

SampleValue::SampleValue(double v) noexcept {
  std::string_view special;
  if (std::isnan(v)) special = "NaN";
  if (std::isinf(v)) special = v > 0 ? "+Inf" : "-Inf";
  if (!special.empty()) {
    len_ = special.copy(buf_, sizeof buf_);
    return;
  }
  std::to_chars_result r;
  const double a = std::fabs(v);
  if (a < 9007199254740992.0 && v == std::trunc(v)) {  // 2^53: every such integer is exact
    r = std::to_chars(buf_, buf_ + sizeof buf_, static_cast<std::int64_t>(v));
  } else if (a >= 1e-4 && a < 1e16) {
    r = std::to_chars(buf_, buf_ + sizeof buf_, v, std::chars_format::fixed);
  } else {
    r = std::to_chars(buf_, buf_ + sizeof buf_, v, std::chars_format::scientific);
  }
  len_ = static_cast<std::size_t>(r.ptr - buf_);  // 32 bytes always suffice (see buf_)
}

std::string format_value(double v) { return std::string(SampleValue(v).text()); }

std::string sanitize_metric_name(std::string_view name) { return sanitize(name, true); }

std::string sanitize_label_name(std::string_view name) {
  std::string out = sanitize(name, false);
  // "__x" is reserved; keep one underscore so "__name__" reads as "_name__", not "name__".
  const std::size_t underscores = out.find_first_not_of('_');
  if (underscores == std::string::npos) return "_";
  if (underscores > 1) out.erase(0, underscores - 1);
  return out;
}

std::string escape_label_value(std::string_view value) { return escape(value, true); }

std::string escape_help(std::string_view help) { return escape(help, false); }

void PrometheusText::counter(std::string_view name, std::string_view help, const Labels& labels,
                             SampleValue value) {
  scalar(Type::kCounter, name, help, labels, value);
}

void PrometheusText::gauge(std::string_view name, std::string_view help, const Labels& labels,
                           SampleValue value) {
  scalar(Type::kGauge, name, help, labels, value);
}

void PrometheusText::scalar(Type type, std::string_view name, std::string_view help,
                            const Labels& labels, SampleValue value) {
  const std::string metric = sanitize_metric_name(name);
  std::string rendered, key;
  Family* family = nullptr;
  if (!render_labels(labels, type, rendered, key) || !(family = family_for(metric, help, type)) ||
      !family->series.insert(key).second) {
    ++rejected_;
    return;
  }
  append_sample(family->samples, metric, rendered, value.text());
}

void PrometheusText::histogram(std::string_view name, std::string_view help, const Labels& labels,
                               const HistogramSnapshot& snapshot,
                               std::span<const double> le_seconds) {
  histogram(name, help, labels, to_public(snapshot), le_seconds);
}

void PrometheusText::histogram(std::string_view name, std::string_view help, const Labels& labels,
                               const ember::Histogram& durations,
                               std::span<const double> le_seconds) {
  const std::string metric = sanitize_metric_name(name);
  std::string rendered, key;
  Family* family = nullptr;
  if (!render_labels(labels, Type::kHistogram, rendered, key) ||
      !(family = family_for(metric, help, Type::kHistogram)) ||
      !family->series.insert(key).second) {
    ++rejected_;
    return;
  }
  std::vector<double> bounds;
  for (double le : le_seconds) {
    if (std::isfinite(le)) bounds.push_back(le);
  }
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());

  const std::string bucket_name = cat(metric, "_bucket");
  const std::string prefix = rendered.empty() ? std::string() : cat(rendered, ",");
  std::string& out = family->samples;
  for (double le : bounds) {
    // A negative bound holds nothing: durations are never below zero.
    const std::uint64_t below = le < 0 ? 0 : durations.count_at_or_below(le_nanoseconds(le));
    append_sample(out, bucket_name, cat(prefix, "le=\"", SampleValue(le).text(), "\""),
                  SampleValue(below).text());
  }
  append_sample(out, bucket_name, cat(prefix, "le=\"+Inf\""), SampleValue(durations.count).text());
  append_sample(out, cat(metric, "_sum"), rendered,
                SampleValue(static_cast<double>(durations.sum_ns) / 1e9).text());
  append_sample(out, cat(metric, "_count"), rendered, SampleValue(durations.count).text());
}

std::string PrometheusText::str() const {
  static constexpr std::string_view kTypeNames[] = {"counter", "gauge", "histogram"};
  std::string out;
  for (const Family& f : families_) {
    // An empty docstring is written as "# HELP name", which the format allows.
    out.append(cat("# HELP ", f.name, f.help.empty() ? "" : " ", f.help, "\n"));
    out.append(cat("# TYPE ", f.name, " ", kTypeNames[static_cast<int>(f.type)], "\n"));
    out.append(f.samples);
  }
  return out;
}

PrometheusText::Family* PrometheusText::family_for(const std::string& name, std::string_view help,
                                                   Type type) {
  if (auto it = owners_.find(name); it != owners_.end()) {
    Family& f = families_[it->second];
    // Either another family's type or a histogram's x_sum-style name: not this family.
    // A different help text is let through; the first one stays.
    return f.name == name && f.type == type ? &f : nullptr;
  }
  std::vector<std::string> names = {name};
  if (type == Type::kHistogram) {
    for (std::string_view suffix : {"_bucket", "_sum", "_count"})
      names.push_back(cat(name, suffix));
  }
  for (const std::string& n : names) {
    if (owners_.contains(n)) return nullptr;
  }
  for (std::string& n : names) owners_.emplace(std::move(n), families_.size());
  families_.push_back(Family{name, escape_help(help), type, {}, {}});
  return &families_.back();
}

bool PrometheusText::render_labels(const Labels& labels, Type type, std::string& out,
                                   std::string& key) {
  std::vector<std::string> names;
  std::vector<std::string> pairs;
  for (const Label& label : labels) {
    std::string name = sanitize_label_name(label.name);
    // "le" belongs to the histogram's buckets; a label name twice is not a label set.
    if ((type == Type::kHistogram && name == "le") ||
        std::find(names.begin(), names.end(), name) != names.end()) {
      return false;
    }
    pairs.push_back(cat(name, "=\"", escape_label_value(label.value), "\""));
    names.push_back(std::move(name));
  }
  const auto join = [](const std::vector<std::string>& parts, std::string& to) {
    for (const std::string& part : parts) {
      if (!to.empty()) to.push_back(',');
      to.append(part);
    }
  };
  join(pairs, out);
  std::sort(pairs.begin(), pairs.end());
  join(pairs, key);
  return true;
}

}  // namespace ember::detail
