// cli_test_support.hpp — what the CLI tests share: the built binary and plugin directory (compile
// definitions from tests/tools/CMakeLists.txt), a scratch directory, a tiny HTTP client.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "subprocess.hpp"

namespace ember::cli_test {

inline const std::string kEmber = EMBER_CLI_PATH;
inline const std::string kPlugins = EMBER_PLUGIN_DIR;

inline std::string plugin(const std::string& file) { return kPlugins + "/" + file; }

// A sanitizer build of ember reports to stderr; its exit code alone may look like a failure the
// test expected (ASan exits 1), so every run is checked for a report.
inline void expect_no_sanitizer_report(const Output& o) {
  for (const char* report : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                             "runtime error:", "WARNING: ThreadSanitizer"}) {
    EXPECT_EQ(o.err.find(report), std::string::npos) << o.err;
  }
}

// `ember args...`, run to completion, with a UTF-8 locale unless env says otherwise.
inline Output ember(std::vector<std::string> args,
                    std::map<std::string, std::optional<std::string>> env = {},
                    const std::string& stdin_data = "") {
  std::vector<std::string> argv;
  argv.reserve(args.size() + 1);
  argv.push_back(kEmber);
  for (std::string& a : args) argv.push_back(std::move(a));
  env.try_emplace("LC_ALL", std::nullopt);
  env.try_emplace("LC_CTYPE", std::nullopt);
  env.try_emplace("LANG", "C.UTF-8");
  Output o = run(argv, env, stdin_data);
  expect_no_sanitizer_report(o);
  return o;
}

inline bool contains(const std::string& text, std::string_view what) {
  return text.find(what) != std::string::npos;
}

// The run of digits and commas right after `prefix` in `text`, up to a newline ("1,234"), or ""
// if `prefix` is not followed by one and a newline.
inline std::string digits_after(const std::string& text, std::string_view prefix) {
  const std::size_t at = text.find(prefix);
  if (at == std::string::npos) return "";
  const std::size_t from = at + prefix.size();
  const std::size_t to = text.find_first_not_of("0123456789,", from);
  if (to == from || to == std::string::npos || text[to] != '\n') return "";
  return text.substr(from, to - from);
}

// A fresh directory, removed with everything in it at the end of the test.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }
  // Copies a built plugin in (under its own name unless `as` is given); returns the new path.
  std::string add_plugin(const std::string& file, const std::string& as = "") const;
  // Writes a file; returns its path.
  std::string write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

// One HTTP/1.1 request over a plain socket to 127.0.0.1:port (Connection: close).
struct HttpResponse {
  int status = 0;  // 0: no answer
  std::string body;
};
HttpResponse http_request(int port, const std::string& method, const std::string& target,
                          const std::string& body = "");

}  // namespace ember::cli_test
