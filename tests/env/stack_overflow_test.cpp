// A handler that overflows its fiber stack hits the guard page, is reported with its function
// name and request id, and the process aborts. Each case runs in a child process.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <regex>
#include <string>

#include "ember/ember.hpp"
#include "sched/sanitizers.hpp"

namespace {

#if defined(EMBER_ASAN) || defined(EMBER_TSAN)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

volatile bool g_stop = false;  // never set: the recursion ends at the guard page

[[gnu::noinline]] int recurse(int depth) {
  if (g_stop) return depth;
  volatile char frame[512];
  frame[0] = static_cast<char>(depth);
  frame[511] = static_cast<char>(depth);
  return recurse(depth + 1) + frame[0] + frame[511];  // not a tail call
}

struct ChildResult {
  int status = 0;
  std::string err;
};

// Runs `body` in a child whose stderr is captured; returns how it ended and what it wrote.
template <typename F>
ChildResult run_child(F&& body) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    close(fds[1]);
    body();
    _exit(0);  // not reached when the overflow aborts
  }
  close(fds[1]);
  ChildResult r;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) r.err.append(buf, n);
  close(fds[0]);
  waitpid(pid, &r.status, 0);
  return r;
}

void overflow_in(ember::Dispatch dispatch) {
  ember::Engine engine({.workers = 1, .log_sink = [](const ember::LogRecord&) {}});
  auto fn =
      engine
          .register_function("deep.recursion", {.dispatch = dispatch, .stack_size = 64 * 1024},
                             [](ember::Context&, std::string_view) -> ember::Result<std::string> {
                               return std::to_string(recurse(0));
                             })
          .value();
  (void)engine.invoke(fn, "x");
}

void expect_report(const ChildResult& r) {
  ASSERT_TRUE(WIFSIGNALED(r.status)) << "child exited normally: " << r.err;
  EXPECT_EQ(WTERMSIG(r.status), SIGABRT) << r.err;
  const std::regex report(
      "ember: stack overflow in function 'deep\\.recursion' \\(request id "
      "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}, stack 65536 bytes\\)");
  EXPECT_TRUE(std::regex_search(r.err, report)) << r.err;
}

TEST(StackOverflowTest, InlineHandlerIsReportedWithNameAndRequestIdThenAborts) {
  if (kSanitized) GTEST_SKIP() << "the sanitizer owns SIGSEGV and reports the overflow itself";
  expect_report(run_child([] { overflow_in(ember::Dispatch::kInline); }));
}

TEST(StackOverflowTest, PoolHandlerOnAWorkerIsReportedToo) {
  if (kSanitized) GTEST_SKIP() << "the sanitizer owns SIGSEGV and reports the overflow itself";
  expect_report(run_child([] { overflow_in(ember::Dispatch::kPool); }));
}

TEST(StackOverflowTest, ADeepButFittingHandlerRunsNormally) {
  ember::Engine engine({.workers = 1});
  auto fn =
      engine
          .register_function("shallow", {.stack_size = 256 * 1024},
                             [](ember::Context&, std::string_view) -> ember::Result<std::string> {
                               volatile char buf[64 * 1024];
                               buf[0] = 'a';
                               buf[sizeof buf - 1] = 'b';
                               return std::string{buf[0], buf[sizeof buf - 1]};
                             })
          .value();
  EXPECT_EQ(engine.invoke(fn, "").value(), "ab");
}

}  // namespace
