// plugin_test_support.hpp — helpers the plugin tests (tests/plugin/*_test.cpp) share: where the
// build put the plugins and fixtures, short forms for checking a Result, the hello shadow
// copies this process has mapped, and a scratch directory to copy plugin files into.
//
//   ScratchDir dir;
//   const std::string copy = dir.copy(plugin_file("libhello.so"));
//   ASSERT_TRUE(ok(engine().load_plugin(copy)));
//   EXPECT_EQ(code_of(engine().invoke("hello.nope", "")), "NotFound");
#pragma once

#include <stdlib.h>  // mkdtemp
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>

#include "test_support.hpp"

namespace ember::testing {

// Concatenates anything a stream prints.
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

inline bool has(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// The path of `file` in the directory the build puts the plugins, layers and fixtures in
// (EMBER_PLUGIN_DIR, set by tests/CMakeLists.txt).
inline std::string plugin_file(std::string_view file) { return cat(EMBER_PLUGIN_DIR, "/", file); }

// Success, or a failure that shows the error's code and message: ASSERT_TRUE(ok(r)).
template <typename T>
::testing::AssertionResult ok(const Result<T>& r) {
  if (r) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << error_code_name(r.error().code) << ": " << r.error().message;
}

// The name of a result's error code ("Ok" if it succeeded): reads well when an expectation fails.
template <typename T>
std::string_view code_of(const Result<T>& r) {
  return error_code_name(r ? ErrorCode::kOk : r.error().code);
}

// What an invoke answered, or "error <code>: <message>", so a mismatch shows what happened.
inline std::string describe(const Result<std::string>& r) {
  return r ? *r : cat("error ", error_code_name(r.error().code), ": ", r.error().message);
}

// The shadow copies of hello builds this process has mapped now, as /proc/self/maps names
// them: "<shadow dir>/ember-<pid>-<16 hex>-libhello.so (deleted)" (shared_object.cpp unlinks
// the copy once it is mapped). One entry per module, however many segments it maps.
inline std::set<std::string> mapped_hello_modules() {
  std::ifstream maps("/proc/self/maps");
  const std::string shadow = cat("/ember-", ::getpid(), "-");
  std::set<std::string> out;
  std::string line;
  while (std::getline(maps, line)) {
    const auto slash = line.find('/');  // the path is the only field with a '/'
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    std::string_view name = path;
    if (name.ends_with(" (deleted)")) name.remove_suffix(std::string_view(" (deleted)").size());
    if (has(name, shadow) && (name.ends_with("-libhello.so") || name.ends_with("-libhello_b.so"))) {
      out.insert(path);
    }
  }
  return out;
}

// A fresh directory under the test's temporary directory, removed with everything in it. If it
// cannot be made, the test fails and path() is empty.
class ScratchDir final {
 public:
  ScratchDir() {
    std::string pattern = ::testing::TempDir() + "ember-plugin-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp(" << pattern << "): " << std::strerror(errno);
      return;
    }
    path_ = pattern;
  }
  ~ScratchDir() {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  [[nodiscard]] const std::string& path() const { return path_; }
  // The path of `name` here (whether or not it exists).
  [[nodiscard]] std::string file(std::string_view name) const {
    return path_ + "/" + std::string(name);
  }

  // Copies `from` (all of it, or its first `bytes`) here as `name` (by default, the file name
  // of `from`), replacing what was there, with mode 0644 whatever the umask (tests that want
  // 0666 set it themselves). Returns the copy's path.
  std::string copy(const std::string& from, std::string_view name = {},
                   std::uintmax_t bytes = static_cast<std::uintmax_t>(-1)) const {
    const std::string to =
        file(name.empty() ? std::filesystem::path(from).filename().string() : std::string(name));
    std::error_code ec;
    std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing, ec);
    EXPECT_FALSE(ec) << "copying " << from << " to " << to << ": " << ec.message();
    if (bytes < std::filesystem::file_size(to, ec)) std::filesystem::resize_file(to, bytes, ec);
    EXPECT_FALSE(ec) << "truncating " << to << ": " << ec.message();
    ::chmod(to.c_str(), 0644);
    return to;
  }

  // Writes `data` to `name` here, with mode 0644 as copy() does. Returns its path.
  std::string write(std::string_view name, std::string_view data) const {
    const std::string to = file(name);
    std::ofstream out(to, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.close();
    EXPECT_TRUE(out) << "writing " << to;
    ::chmod(to.c_str(), 0644);
    return to;
  }

 private:
  std::string path_;
};

}  // namespace ember::testing
