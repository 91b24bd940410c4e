// fiber.hpp — a pooled, reusable fiber on a guard-paged stack (Boost.Context underneath).
//
// A Fiber is created once and then runs task after task: its body is a loop that runs the
// assigned Task and switches back out. Handing a pooled fiber a new task costs one switch
// pair, not a fiber creation. Whoever calls switch_in() is the fiber's resumer until it
// switches out again; a fiber never migrates between threads while a task runs on it
// (schedulers resume a suspended fiber only from its home executor's thread).
//
// Switches are annotated for AddressSanitizer and ThreadSanitizer, so sanitizer builds see
// each fiber's stack as a stack of its own.
#pragma once

#include <atomic>
#include <boost/context/fiber.hpp>
#include <cstddef>
#include <cstdint>

#include "sched/sanitizers.hpp"
#include "sched/stack_guard.hpp"
#include "sched/stack_pool.hpp"

namespace ember::detail {

class Executor;
class LazyHost;
class Scheduler;

// A unit of work for a fiber. Derived records (invocations) put their own data after it.
struct Task {
  void (*run)(Task*) = nullptr;      // runs on the fiber; must not throw
  void (*abandon)(Task*) = nullptr;  // completes it with an error when no fiber can be had
  std::size_t stack_size = 0;        // which fiber stacks may run it (StackPool::round_size'd)
  // While a worker runs this task, the scheduler's timer thread watches this deadline (engine
  // time) and reports the task overdue once it passes, even if the worker never gets control
  // back. kNever (INT64_MAX): not watched.
  std::atomic<std::int64_t> watch_deadline{INT64_MAX};
  // For the stack-overflow report (stack_guard.hpp), called from a signal handler on the
  // faulting thread while the task is stuck mid-run: async-signal-safe (no allocation, no
  // locks); writes a NUL-free description (e.g. "function 'x' (request id y") of at most
  // `size` bytes into buf, returns the length. The report closes the parenthesis.
  // nullptr: the task is reported as "a fiber task".
  std::size_t (*describe)(const Task*, char* buf, std::size_t size) noexcept = nullptr;
};

class Fiber final {
 public:
  // Maps (or reuses) a stack of `stack_size` bytes; check valid() afterwards.
  Fiber(Scheduler& owner, StackPool& stacks, std::size_t stack_size, std::uint32_t id);
  // Ends the fiber's loop (it must be idle, not suspended inside a task) and returns its stack.
  ~Fiber();
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;

  [[nodiscard]] bool valid() const noexcept { return stack_.top != nullptr; }
  // Gives the fiber a task. Its home executor is `home`, or, for an inline invocation on a
  // non-worker thread, an InlineHost that `lazy` builds the first time the fiber suspends.
  void assign(Task* task, Executor* home, LazyHost* lazy = nullptr) noexcept {
    task_ = task;
    home_ = home;
    lazy_home_ = lazy;
  }
  // Runs the fiber until it switches out: its task finished (idle() is then true) or it
  // suspended (someone will make it ready on its home executor later). Inline, so that the
  // switch happens in the caller's frame (see Fiber::body).
  inline void switch_in() noexcept;
  // From inside the fiber: back to whoever switched in. Returns when resumed.
  void switch_out() noexcept;

  [[nodiscard]] bool idle() const noexcept { return task_ == nullptr; }
  [[nodiscard]] Task* task() const noexcept { return task_; }
  [[nodiscard]] Scheduler& owner() const noexcept { return owner_; }
  // The executor that resumes this fiber when it becomes ready. Call it (from the fiber)
  // before publishing the fiber to a waker: for inline roots it builds the host on first use.
  [[nodiscard]] Executor* home() noexcept;
  // The home as given, or the lazy host to inherit (for a nested inline child).
  [[nodiscard]] Executor* home_if_built() const noexcept { return home_; }
  [[nodiscard]] LazyHost* lazy_home() const noexcept { return lazy_home_; }
  [[nodiscard]] std::uint32_t id() const noexcept { return id_; }
  [[nodiscard]] std::size_t stack_size() const noexcept { return stack_.size; }
  // The fiber's stack mapping (guard page included), for fault handling and stack measurement.
  [[nodiscard]] const Stack& stack() const noexcept { return stack_; }
  // Counts the tasks this fiber has started; with id() it makes request ids unique.
  [[nodiscard]] std::uint64_t next_sequence() noexcept { return ++sequence_; }

  Fiber* next_free = nullptr;  // intrusive free-list link, owned by whichever pool holds it

 private:
  void arrived() noexcept;  // first thing after gaining control inside the fiber
  boost::context::fiber body(boost::context::fiber&& caller);

  Scheduler& owner_;
  StackPool& stacks_;
  Stack stack_;
  std::uint32_t id_;
  std::uint64_t sequence_ = 0;
  Task* task_ = nullptr;
  Executor* home_ = nullptr;
  LazyHost* lazy_home_ = nullptr;
  bool stopping_ = false;
  boost::context::fiber self_;    // the suspended fiber (empty while it runs)
  boost::context::fiber caller_;  // whoever switched in (valid while it runs)
  // Sanitizer bookkeeping (unused in plain builds).
  void* asan_fake_stack_ = nullptr;
  const void* caller_stack_bottom_ = nullptr;
  std::size_t caller_stack_size_ = 0;
  void* tsan_fiber_ = nullptr;
  void* tsan_caller_ = nullptr;
};

// The fiber running on each thread. Per thread, not per engine: a thread runs one fiber at a
// time whatever engine it belongs to, so several engines coexist. initial-exec: libember is
// linked, not dlopen'ed, so its TLS is static and a read is one instruction, not a call.
extern constinit thread_local Fiber* tls_current_fiber [[gnu::tls_model("initial-exec")]];

// The fiber running on this thread, or nullptr outside any fiber.
[[nodiscard]] inline Fiber* current_fiber() noexcept { return tls_current_fiber; }

inline void Fiber::switch_in() noexcept {
  Fiber* previous = tls_current_fiber;
  // A thread's first switch into any fiber gives it an alternate signal stack, so that an
  // overflow is reported (stack_guard.hpp). Checked on root switches only: nested ones come
  // after a root switch on the same thread.
  if (previous == nullptr && !tls_fault_handling_ready) [[unlikely]] {
    ensure_alt_signal_stack();
  }
  tls_current_fiber = this;
#if defined(EMBER_ASAN)
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, static_cast<char*>(stack_.top) - stack_.size,
                                 stack_.size);
#endif
#if defined(EMBER_TSAN)
  tsan_caller_ = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(tsan_fiber_, 0);
#endif
  self_ = std::move(self_).resume();
#if defined(EMBER_ASAN)
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
  tls_current_fiber = previous;
}

}  // namespace ember::detail
