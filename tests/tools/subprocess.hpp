// subprocess.hpp — runs the built `ember` binary for the CLI tests and collects what it writes.
//
//   Subprocess ember({EMBER_CLI_PATH, "invoke", plugin, "hello.greet"});
//   ASSERT_TRUE(ember.wait_for([](const Output& o) { return o.out.find('\n') != npos; }));
//   ember.send_signal(SIGTERM);
//   const Output& o = ember.finish();   // o.exit_code, o.out, o.err
//
// Waiting is on the child's output or its exit, never on a sleep. A generous deadline (60 s:
// sanitizer builds on two shared cores are slow) only turns a hang into a failed test.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ember::cli_test {

struct Output {
  std::string out;     // the child's stdout so far
  std::string err;     // its stderr so far
  int exit_code = -1;  // after finish(): the exit status, or 128 + the signal that killed it
};

class Subprocess {
 public:
  // Starts argv[0] with argv, this process's environment changed by `env` (a value of
  // std::nullopt removes the variable), and `stdin_data` on its standard input (then EOF).
  explicit Subprocess(const std::vector<std::string>& argv,
                      const std::map<std::string, std::optional<std::string>>& env = {},
                      const std::string& stdin_data = "");
  // Kills the child if it is still running.
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // Reads the child's output until `done(output)` holds (true) or both its streams close or the
  // deadline passes (false).
  bool wait_for(const std::function<bool(const Output&)>& done,
                std::chrono::seconds deadline = std::chrono::seconds(60));
  void send_signal(int sig);
  // Reads the rest of the output and waits for the child to exit (killing it after the
  // deadline); the exit code is in the result.
  const Output& finish(std::chrono::seconds deadline = std::chrono::seconds(120));

  [[nodiscard]] const Output& output() const { return output_; }

 private:
  // Reads what is ready (blocking up to `timeout_ms`); false once both streams are closed.
  bool pump(int timeout_ms);

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  Output output_;
};

// Runs to completion: shorthand for Subprocess(...).finish().
Output run(const std::vector<std::string>& argv,
           const std::map<std::string, std::optional<std::string>>& env = {},
           const std::string& stdin_data = "");

}  // namespace ember::cli_test
