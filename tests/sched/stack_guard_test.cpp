// Stack guard: a fiber that runs past its guard page is reported (the task's description, the
// stack size) and the process aborts; every other fault reaches the handler installed before
// ours or the default action; threads get an alternate signal stack unless they have one.
// Stack high-water marks: paint, use, measure, on inline and worker fibers.
#include "sched/stack_guard.hpp"

#include <alloca.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "events.hpp"
#include "sched/fiber.hpp"
#include "sched/sanitizers.hpp"
#include "sched/scheduler.hpp"
#include "sched/time_source.hpp"

namespace ember::detail {
namespace {

#if defined(EMBER_ASAN) || defined(EMBER_TSAN)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
constexpr const char* kSanitizerOwnsSegv =
    "the sanitizer owns SIGSEGV and the alternate signal stack; ember installs neither";

const std::size_t kSmallStack = StackPool::round_size(64 * 1024);
const std::size_t kBigStack = StackPool::round_size(256 * 1024);
constexpr std::size_t kKiB = 1024;

using ember::testing::Event;

// A task whose body is a std::function, optionally with a description for overflow reports.
struct BodyTask : Task {
  BodyTask(std::size_t stack, std::function<void()> b, decltype(Task::describe) describe_fn)
      : body(std::move(b)) {
    run = [](Task* t) { static_cast<BodyTask*>(t)->body(); };
    abandon = [](Task*) { std::abort(); };
    stack_size = stack;
    describe = describe_fn;
  }
  std::function<void()> body;
};

std::size_t describe_deep_recursion(const Task*, char* buf, std::size_t size) noexcept {
  static constexpr char kText[] = "function 'deep.recursion' (request id 0123-abcd";
  const std::size_t n = std::min(size, sizeof kText - 1);
  std::memcpy(buf, kText, n);
  return n;
}

// What the report says for a deep.recursion task on a kSmallStack fiber (a POSIX regex).
std::string deep_recursion_report() {
  return "ember: stack overflow in function 'deep\\.recursion' \\(request id 0123-abcd, stack " +
         std::to_string(kSmallStack) + " bytes\\): the fiber ran past its guard page; aborting";
}

// Never set: the recursion has no end the compiler can see, yet it is not "infinite" to it.
volatile bool g_stop_recursing = false;

// Recurses until the stack runs out: a volatile frame per call, and work after the call, so
// it is neither inlined nor turned into a loop.
[[gnu::noinline]] std::size_t recurse_without_bound(std::size_t depth) {
  volatile char frame[256];
  frame[0] = static_cast<char>(depth);
  if (g_stop_recursing) return depth;
  return recurse_without_bound(depth + 1) + static_cast<std::size_t>(frame[0]);
}

// Writes all of an N-byte local array: about N bytes of stack used.
template <std::size_t N>
[[gnu::noinline]] void use_stack() {
  volatile char buf[N];
  for (std::size_t i = 0; i < N; ++i) buf[i] = static_cast<char>(i);
  (void)buf[0];
}

// Switches into a fiber of `scheduler` on this thread, runs `task` to the end, returns the
// fiber to the scheduler; returns the fiber (for identity checks).
Fiber* run_inline(Scheduler& scheduler, Task& task) {
  Fiber* f = scheduler.acquire_fiber(task.stack_size);
  if (f == nullptr) std::abort();
  f->assign(&task, nullptr);
  f->switch_in();
  scheduler.release_fiber(f);
  return f;
}

// Runs a fiber that does nothing: the first root switch on this thread installs the handler.
void run_a_trivial_fiber() {
  TimeSource time{nullptr};
  Scheduler scheduler{time, 0, 0};
  BodyTask t(
      kSmallStack, [] {}, nullptr);
  run_inline(scheduler, t);
}

bool our_handler_is_installed(int sig) {
  struct sigaction current {};
  sigaction(sig, nullptr, &current);
  return (current.sa_flags & SA_ONSTACK) != 0 && (current.sa_flags & SA_SIGINFO) != 0;
}

// A page that faults on any access.
volatile char* inaccessible_page() {
  void* p = mmap(nullptr, static_cast<std::size_t>(sysconf(_SC_PAGESIZE)), PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) std::abort();
  return static_cast<volatile char*>(p);
}

// Death tests re-run the binary for the child (threadsafe style): each child starts with no
// handler of ours installed, as a host process would, and may start threads.
class StackGuardDeathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (kSanitized) GTEST_SKIP() << kSanitizerOwnsSegv;
    GTEST_FLAG_SET(death_test_style, "threadsafe");
  }
};

// Runs `body` as a task on a kSmallStack fiber switched into from this thread.
void run_on_this_thread(std::function<void()> body, decltype(Task::describe) describe) {
  TimeSource time{nullptr};
  Scheduler scheduler{time, 1, 0};
  BodyTask t(kSmallStack, std::move(body), describe);
  run_inline(scheduler, t);
}

// Runs `body` as a task on a worker's fiber and waits for ever: the task ends the process.
void run_on_a_worker(std::function<void()> body, decltype(Task::describe) describe) {
  TimeSource time{nullptr};
  Scheduler scheduler{time, 2, 0};
  BodyTask t(kSmallStack, std::move(body), describe);
  scheduler.submit(&t);
  Event never;
  never.wait();
}

// Overflows a fiber switched into from inside another fiber (a nested inline invocation).
void overflow_in_a_nested_fiber() {
  TimeSource time{nullptr};
  Scheduler scheduler{time, 0, 0};
  BodyTask inner(
      kSmallStack, [] { recurse_without_bound(0); }, describe_deep_recursion);
  BodyTask outer(
      kBigStack, [&] { run_inline(scheduler, inner); }, nullptr);
  run_inline(scheduler, outer);
}

void overflow() { recurse_without_bound(0); }

TEST_F(StackGuardDeathTest, OverflowOnAnInlineFiberIsReportedWithItsFunctionAndRequestId) {
  EXPECT_EXIT(run_on_this_thread(overflow, describe_deep_recursion),
              ::testing::KilledBySignal(SIGABRT), deep_recursion_report());
}

TEST_F(StackGuardDeathTest, OverflowOnAWorkerFiberIsReportedWithItsFunctionAndRequestId) {
  EXPECT_EXIT(run_on_a_worker(overflow, describe_deep_recursion),
              ::testing::KilledBySignal(SIGABRT), deep_recursion_report());
}

TEST_F(StackGuardDeathTest, OverflowOfATaskWithoutDescriptionIsReportedAsAFiberTask) {
  EXPECT_EXIT(run_on_this_thread(overflow, nullptr), ::testing::KilledBySignal(SIGABRT),
              "ember: stack overflow in a fiber task \\(stack " + std::to_string(kSmallStack) +
                  " bytes\\): the fiber ran past its guard page; aborting");
}

TEST_F(StackGuardDeathTest, OverflowInANestedFiberNamesTheNestedTask) {
  EXPECT_EXIT(overflow_in_a_nested_fiber(), ::testing::KilledBySignal(SIGABRT),
              deep_recursion_report());
}

// A fault that is not an overflow crashes as it would without ember: with SIGSEGV, whether it
// happens outside any fiber or on a fiber but away from its guard page.
void fault_outside_a_fiber() {
  run_a_trivial_fiber();
  if (!our_handler_is_installed(SIGSEGV)) _exit(3);
  *inaccessible_page() = 1;
}

void fault_on_a_fiber() { *inaccessible_page() = 1; }

TEST_F(StackGuardDeathTest, OtherFaultsOutsideAFiberStillKillWithSigsegv) {
  EXPECT_EXIT(fault_outside_a_fiber(), ::testing::KilledBySignal(SIGSEGV), "");
}

TEST_F(StackGuardDeathTest, OtherFaultsOnAFiberStillKillWithSigsegv) {
  EXPECT_EXIT(run_on_this_thread(fault_on_a_fiber, describe_deep_recursion),
              ::testing::KilledBySignal(SIGSEGV), "");
  EXPECT_EXIT(run_on_a_worker(fault_on_a_fiber, describe_deep_recursion),
              ::testing::KilledBySignal(SIGSEGV), "");
}

void raise_segv() { raise(SIGSEGV); }

TEST_F(StackGuardDeathTest, SigsegvSentByRaiseOnAFiberStillKills) {
  EXPECT_EXIT(run_on_this_thread(raise_segv, describe_deep_recursion),
              ::testing::KilledBySignal(SIGSEGV), "");
}

void host_segv_handler(int, siginfo_t*, void*) {
  static constexpr char kText[] = "host handler saw the fault\n";
  (void)!write(STDERR_FILENO, kText, sizeof kText - 1);
  _exit(42);
}

void fault_after_the_host_installed_a_handler() {
  struct sigaction host {};
  host.sa_sigaction = host_segv_handler;
  host.sa_flags = SA_SIGINFO;
  sigemptyset(&host.sa_mask);
  sigaction(SIGSEGV, &host, nullptr);
  run_a_trivial_fiber();  // installs ours on top
  if (!our_handler_is_installed(SIGSEGV)) _exit(3);
  *inaccessible_page() = 1;
}

TEST_F(StackGuardDeathTest, OtherFaultsGoToTheHandlerInstalledBeforeOurs) {
  EXPECT_EXIT(fault_after_the_host_installed_a_handler(), ::testing::ExitedWithCode(42),
              "host handler saw the fault");
}

// A frame bigger than a page can jump the guard page: the fault is then below it, but the
// stack pointer is below the stack too. Forked (not re-run) so that the memory below the
// fiber's guard page can first be reserved, PROT_NONE, to make that fault certain.
[[gnu::noinline]] void jump_below_the_guard_page(std::uintptr_t bottom, std::size_t page) {
  char here = 0;
  const std::size_t depth = reinterpret_cast<std::uintptr_t>(&here) - bottom;
  auto* p = static_cast<volatile char*>(alloca(depth + page + 8 * kKiB));
  p[0] = here;
}

TEST_F(StackGuardDeathTest, FrameThatJumpsTheGuardPageIsReportedToo) {
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  TimeSource time{nullptr};
  Scheduler scheduler{time, 0, 0};
  // Stacks are mapped top-down, the first ones often into holes with something mapped just
  // below; a later one lands where the space below is free.
  const std::size_t reach = 64 * kKiB;
  std::vector<Fiber*> tried;
  Fiber* f = nullptr;
  void* reserved = MAP_FAILED;
  while (f == nullptr && tried.size() < 16) {
    Fiber* candidate = scheduler.acquire_fiber(kSmallStack);
    ASSERT_NE(candidate, nullptr);
    tried.push_back(candidate);
    char* below = static_cast<char*>(candidate->stack().mapping) - reach;
    reserved = mmap(below, reach, PROT_NONE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE, -1, 0);
    if (reserved == below) {
      f = candidate;
    } else if (reserved != MAP_FAILED) {
      munmap(reserved, reach);  // an old kernel took the address as a hint only
    }
  }
  for (Fiber* other : tried) {
    if (other != f) scheduler.release_fiber(other);
  }
  if (f == nullptr) GTEST_SKIP() << "no fiber stack with free memory below it to reserve";
  const Stack& stack = f->stack();
  const auto bottom = reinterpret_cast<std::uintptr_t>(stack.top) - stack.size;
  BodyTask t(
      kSmallStack, [bottom, page] { jump_below_the_guard_page(bottom, page); },
      describe_deep_recursion);
  int err[2];
  ASSERT_EQ(pipe(err), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    const rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    dup2(err[1], STDERR_FILENO);
    f->assign(&t, nullptr);
    f->switch_in();
    _exit(0);  // the jump did not fault
  }
  close(err[1]);
  std::string text;
  char buf[256];
  for (ssize_t n; (n = read(err[0], buf, sizeof buf)) != 0;) {
    if (n > 0) text.append(buf, static_cast<std::size_t>(n));
    if (n < 0 && errno != EINTR) break;
  }
  close(err[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  munmap(reserved, reach);
  scheduler.release_fiber(f);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGABRT) << text;
  EXPECT_NE(text.find("stack overflow in function 'deep.recursion' (request id 0123-abcd"),
            std::string::npos)
      << text;
}

// ---- alternate signal stacks ----

stack_t alt_stack_of_this_thread() {
  stack_t s{};
  sigaltstack(nullptr, &s);
  return s;
}

TEST(StackGuardTest, AThreadGetsAnAlternateSignalStackOnItsFirstFiber) {
  if (kSanitized) GTEST_SKIP() << kSanitizerOwnsSegv;
  TimeSource time{nullptr};
  Scheduler scheduler{time, 0, 0};
  stack_t before{};
  stack_t after{};
  bool ready_before = true;
  std::thread thread([&] {
    before = alt_stack_of_this_thread();
    ready_before = tls_fault_handling_ready;
    BodyTask t(
        kSmallStack, [] {}, nullptr);
    run_inline(scheduler, t);
    after = alt_stack_of_this_thread();
  });
  thread.join();
  EXPECT_FALSE(ready_before);
  EXPECT_NE(before.ss_flags & SS_DISABLE, 0) << "a new thread has no alternate stack";
  EXPECT_EQ(after.ss_flags & SS_DISABLE, 0);
  EXPECT_GE(after.ss_size, 64 * kKiB);
  EXPECT_TRUE(our_handler_is_installed(SIGSEGV));
  EXPECT_TRUE(our_handler_is_installed(SIGBUS));
}

TEST(StackGuardTest, AnAlternateSignalStackTheHostInstalledIsKept) {
  if (kSanitized) GTEST_SKIP() << kSanitizerOwnsSegv;
  TimeSource time{nullptr};
  Scheduler scheduler{time, 0, 0};
  std::vector<char> host_stack(32 * kKiB);
  stack_t after{};
  std::thread thread([&] {
    stack_t host{};
    host.ss_sp = host_stack.data();
    host.ss_size = host_stack.size();
    sigaltstack(&host, nullptr);
    BodyTask t(
        kSmallStack, [] {}, nullptr);
    run_inline(scheduler, t);
    after = alt_stack_of_this_thread();
    stack_t off{};
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, nullptr);
  });
  thread.join();
  EXPECT_EQ(after.ss_sp, host_stack.data());
  EXPECT_EQ(after.ss_size, host_stack.size());
}

// ---- stack high-water marks ----

// Locals in ASan's fake stack frames (detect_stack_use_after_return) live on the heap.
bool locals_live_on_the_heap() {
#if defined(EMBER_ASAN)
  return __asan_get_current_fake_stack() != nullptr;
#else
  return false;
#endif
}

// On a fiber of `scheduler`, on this thread: paints, runs `use`, measures.
std::size_t high_water_inline(Scheduler& scheduler, const std::function<void()>& use,
                              Fiber** fiber = nullptr) {
  std::size_t high_water = 0;
  BodyTask t(
      kBigStack,
      [&] {
        paint_stack_below_here();
        use();
        high_water = stack_high_water();
      },
      nullptr);
  Fiber* f = run_inline(scheduler, t);
  if (fiber != nullptr) *fiber = f;
  return high_water;
}

class StackHighWaterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (locals_live_on_the_heap()) GTEST_SKIP() << "ASan's fake stacks hold the locals";
  }
  TimeSource time_{nullptr};
  Scheduler scheduler_{time_, 0, 0};  // inline fibers only
};

// What a task that only paints and measures reports: the frames that start and run a task.
constexpr std::size_t kLittle = 8 * kKiB;

TEST_F(StackHighWaterTest, CountsTheStackATaskUsed) {
  const std::size_t used = high_water_inline(scheduler_, [] { use_stack<64 * kKiB>(); });
  EXPECT_GE(used, 64 * kKiB);
  EXPECT_LT(used, 80 * kKiB);
}

TEST_F(StackHighWaterTest, ATaskThatUsesLittleReportsLittle) {
  const std::size_t used = high_water_inline(scheduler_, [] {});
  EXPECT_GT(used, 0u);
  EXPECT_LT(used, kLittle);
  const std::size_t a_bit_more = high_water_inline(scheduler_, [] { use_stack<2 * kKiB>(); });
  EXPECT_GE(a_bit_more, 2 * kKiB);
  EXPECT_LT(a_bit_more, kLittle + 2 * kKiB);
}

TEST_F(StackHighWaterTest, RepaintingAPooledFiberForgetsItsEarlierUse) {
  Fiber* first = nullptr;
  Fiber* second = nullptr;
  Fiber* third = nullptr;
  const std::size_t big = high_water_inline(
      scheduler_, [] { use_stack<128 * kKiB>(); }, &first);
  const std::size_t small = high_water_inline(
      scheduler_, [] {}, &second);
  const std::size_t medium = high_water_inline(
      scheduler_, [] { use_stack<32 * kKiB>(); }, &third);
  ASSERT_EQ(second, first) << "the fiber was not reused";
  ASSERT_EQ(third, first) << "the fiber was not reused";
  EXPECT_GE(big, 128 * kKiB);
  EXPECT_LT(big, 144 * kKiB);
  EXPECT_LT(small, kLittle);
  EXPECT_GE(medium, 32 * kKiB);
  EXPECT_LT(medium, 48 * kKiB);
}

TEST_F(StackHighWaterTest, WorksOnWorkerFibers) {
  std::size_t used = 0;
  Event done;
  BodyTask t(
      kBigStack,
      [&] {
        paint_stack_below_here();
        use_stack<48 * kKiB>();
        used = stack_high_water();
        done.set();
      },
      nullptr);
  {
    Scheduler workers{time_, 1, 0};  // joined before the task and the event go
    workers.submit(&t);
    done.wait();
  }
  EXPECT_GE(used, 48 * kKiB);
  EXPECT_LT(used, 64 * kKiB);
}

TEST_F(StackHighWaterTest, IsZeroOutsideAFiber) {
  paint_stack_below_here();  // does nothing here: the thread's own stack is not painted
  EXPECT_EQ(stack_high_water(), 0u);
}

}  // namespace
}  // namespace ember::detail
