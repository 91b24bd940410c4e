#include "manifest_format.hpp"

#include <absl/strings/str_format.h>
#include <absl/strings/str_join.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "text.hpp"

namespace ember::cli {
namespace {

std::string_view dispatch_name(Dispatch d) { return d == Dispatch::kPool ? "pool" : "inline"; }

// A duration in milliseconds as a JSON number: integral when it is a whole number of them.
std::string json_millis(absl::Duration d) {
  if (d % absl::Milliseconds(1) == absl::ZeroDuration()) {
    return cat(absl::ToInt64Milliseconds(d));
  }
  return absl::StrFormat("%.6g", absl::ToDoubleMilliseconds(d));
}

// Length of the valid UTF-8 sequence at s[i], or 0 if there is none.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  std::size_t n = 0;
  std::uint32_t min = 0;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    n = 2;
    min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  std::uint32_t cp = c & (0x7F >> n);
  for (std::size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  // Overlong forms, surrogates and code points past Unicode are not UTF-8.
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

// A table whose columns are as wide as their widest cell, two spaces apart.
std::string table(const std::vector<std::vector<std::string>>& rows, std::string_view indent) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (std::size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line(indent);
    for (std::size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line.append(widths[c] - row[c].size() + 2, ' ');
    }
    append(&out, line, "\n");
  }
  return out;
}

}  // namespace

std::string format_bytes(std::size_t bytes) {
  if (bytes != 0 && bytes % (std::size_t{1} << 20) == 0) return cat(bytes >> 20, " MiB");
  if (bytes != 0 && bytes % (std::size_t{1} << 10) == 0) return cat(bytes >> 10, " KiB");
  return cat(bytes, " B");
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t n = utf8_sequence(s, i);
    if (n == 0) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7F) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  out += '"';
  return out;
}

std::string manifest_text(const PluginManifest& manifest) {
  const bool layer = manifest.kind == PluginManifest::Kind::kLayer;
  std::string out = cat(layer ? "layer " : "plugin ", manifest.name, " ", manifest.version,
                        "\n  file  ", manifest.path, "\n");
  if (layer) {
    append(&out, "  services  ",
           manifest.services.empty() ? "(none)" : absl::StrJoin(manifest.services, ", "), "\n");
    return out;
  }
  out += "\n";
  if (manifest.functions.empty()) {
    out += "  (no functions)\n";
  } else {
    std::vector<std::vector<std::string>> rows = {{"FUNCTION", "TIMEOUT", "MEMORY", "RESERVED",
                                                   "DISPATCH", "STACK", "QUEUE WAIT", "INIT",
                                                   "SHUTDOWN"}};
    for (const PluginManifest::Function& f : manifest.functions) {
      const FunctionConfig& c = f.config;
      rows.push_back({f.name, absl::FormatDuration(c.timeout), cat(c.memory_mb, " MB"),
                      c.reserved_concurrency ? cat(*c.reserved_concurrency) : "-",
                      std::string(dispatch_name(c.dispatch)), format_bytes(c.stack_size),
                      absl::FormatDuration(c.max_queue_wait), f.has_init ? "yes" : "no",
                      f.has_shutdown ? "yes" : "no"});
    }
    out += table(rows, "  ");
  }
  out += "\n";
  if (manifest.layers.empty()) {
    out += "  requires no layers\n";
  } else {
    out += "  requires layers\n";
    std::vector<std::vector<std::string>> rows;
    for (const PluginManifest::LayerRequirement& l : manifest.layers) {
      rows.push_back({l.name, l.constraint.empty() ? "any" : l.constraint});
    }
    out += table(rows, "    ");
  }
  return out;
}

std::string manifest_json(const PluginManifest& manifest) {
  const bool layer = manifest.kind == PluginManifest::Kind::kLayer;
  std::string out =
      cat("{\"kind\":", layer ? "\"layer\"" : "\"plugin\"",
          ",\"name\":", json_string(manifest.name), ",\"version\":", json_string(manifest.version),
          ",\"path\":", json_string(manifest.path), ",\"functions\":[");
  for (std::size_t i = 0; i < manifest.functions.size(); ++i) {
    const PluginManifest::Function& f = manifest.functions[i];
    const FunctionConfig& c = f.config;
    append(&out, i == 0 ? "" : ",", "{\"name\":", json_string(f.name),
           ",\"timeout_ms\":", json_millis(c.timeout), ",\"memory_mb\":", c.memory_mb,
           ",\"reserved_concurrency\":",
           c.reserved_concurrency ? cat(*c.reserved_concurrency) : "null", ",\"dispatch\":\"",
           dispatch_name(c.dispatch), "\",\"stack_bytes\":", c.stack_size,
           ",\"max_queue_wait_ms\":", json_millis(c.max_queue_wait),
           ",\"report_logs\":", c.report_logs ? "true" : "false",
           ",\"has_init\":", f.has_init ? "true" : "false",
           ",\"has_shutdown\":", f.has_shutdown ? "true" : "false", "}");
  }
  out += "],\"layers\":[";
  for (std::size_t i = 0; i < manifest.layers.size(); ++i) {
    append(&out, i == 0 ? "" : ",", "{\"name\":", json_string(manifest.layers[i].name),
           ",\"constraint\":", json_string(manifest.layers[i].constraint), "}");
  }
  out += "],\"services\":[";
  for (std::size_t i = 0; i < manifest.services.size(); ++i) {
    append(&out, i == 0 ? "" : ",", json_string(manifest.services[i]));
  }
  out += "]}";
  return out;
}

}  // namespace ember::cli
