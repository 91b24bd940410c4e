#include "sched/stack_guard.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "sched/fiber.hpp"
#include "sched/sanitizers.hpp"
#include "sched/stack_pool.hpp"

// Painting writes, and measuring reads, stack memory below the stack pointer: ASan may hold
// stale poison there (frames left by a switch or an unwind) and TSan would only slow the
// pass down, so both are exempt from instrumentation.
#define EMBER_UNINSTRUMENTED __attribute__((no_sanitize("address", "thread")))

namespace ember::detail {

constinit thread_local bool tls_fault_handling_ready = false;

namespace {

// Room left between the paint and the painting frame: that frame's spills, and the red zone.
constexpr std::uintptr_t kPaintMargin = 1024;

std::uintptr_t stack_bottom(const Stack& s) noexcept {
  return reinterpret_cast<std::uintptr_t>(s.top) - s.size;
}

#if !defined(EMBER_ASAN) && !defined(EMBER_TSAN)

// An alternate stack of ours smaller than this would do, but a host's must be at least this
// big for us to keep it: the report needs ~1 KiB, and a handler we pass faults on to more.
constexpr std::size_t kEnoughAltStack = 16 * 1024;
constexpr std::size_t kAltStackFloor = 64 * 1024;
// A fault counts as an overflow also when the interrupted stack pointer is below the stack,
// up to this far below its guard page: a frame bigger than a page can jump the guard page
// and fault in unmapped memory further down.
constexpr std::uintptr_t kFarOverflowReach = 64 * 1024;

// The handlers found when ours was installed; written once, before ours is installed, and
// read only by ours. Process-wide, like the signal disposition itself.
struct sigaction previous_segv;
struct sigaction previous_bus;

// The calling thread's alternate signal stack while it is ours; disabled and unmapped when
// the thread exits.
class AltSignalStack final {
 public:
  AltSignalStack() = default;
  AltSignalStack(const AltSignalStack&) = delete;
  AltSignalStack& operator=(const AltSignalStack&) = delete;
  ~AltSignalStack() {
    if (mapping_ == nullptr) return;
    stack_t current{};
    if (sigaltstack(nullptr, &current) == 0 && current.ss_sp == usable() &&
        (current.ss_flags & SS_DISABLE) == 0) {
      stack_t off{};
      off.ss_flags = SS_DISABLE;
      if (sigaltstack(&off, nullptr) != 0) return;  // still in use: leak it rather than unmap
    }
    munmap(mapping_, mapping_size_);
  }

  void install() noexcept {
    stack_t current{};
    if (sigaltstack(nullptr, &current) != 0) return;
    if ((current.ss_flags & SS_ONSTACK) != 0) return;  // running on it: cannot change it
    if ((current.ss_flags & SS_DISABLE) == 0 && current.ss_size >= kEnoughAltStack) return;
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    // SIGSTKSZ is sysconf(_SC_SIGSTKSZ) on current glibc: what this CPU's signal frame needs.
    std::size_t size =
        std::max<std::size_t>(kAltStackFloor, 4 * static_cast<std::size_t>(SIGSTKSZ));
    size = (size + page - 1) / page * page;
    void* mapping = mmap(nullptr, size + page, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (mapping == MAP_FAILED) return;
    // A guard page of its own: a handler that overflows the alternate stack faults for good
    // instead of writing over whatever is mapped below.
    if (mprotect(mapping, page, PROT_NONE) != 0) {
      munmap(mapping, size + page);
      return;
    }
    stack_t ours{};
    ours.ss_sp = static_cast<char*>(mapping) + page;
    ours.ss_size = size;
    ours.ss_flags = 0;
    if (sigaltstack(&ours, nullptr) != 0) {
      munmap(mapping, size + page);
      return;
    }
    mapping_ = mapping;
    mapping_size_ = size + page;
  }

 private:
  void* usable() const noexcept {
    return static_cast<char*>(mapping_) + static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  }

  void* mapping_ = nullptr;
  std::size_t mapping_size_ = 0;
};

// A thread_local with a destructor: registered with the thread's exit handlers on first use,
// which is the cold path of ensure_alt_signal_stack().
thread_local AltSignalStack tls_alt_stack;

// The report, built on the alternate stack: no allocation, nothing that is not
// async-signal-safe.
class ReportLine final {
 public:
  void add(const char* text, std::size_t n) noexcept {
    n = std::min(n, sizeof buf_ - len_);
    std::memcpy(buf_ + len_, text, n);
    len_ += n;
  }
  void add(const char* text) noexcept { add(text, std::strlen(text)); }
  void add_decimal(std::size_t value) noexcept {
    char digits[24];
    std::size_t n = 0;
    do {
      digits[n++] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value != 0);
    while (n > 0) add(&digits[--n], 1);
  }
  // Lets `fill` write up to `room` bytes straight into the line (leaving `keep` bytes free).
  template <typename Fill>
  void add_from(std::size_t keep, Fill&& fill) noexcept {
    const std::size_t room = sizeof buf_ - len_ > keep ? sizeof buf_ - len_ - keep : 0;
    if (room == 0) return;
    len_ += std::min(room, fill(buf_ + len_, room));
  }
  void write_to_stderr() const noexcept {
    std::size_t done = 0;
    while (done < len_) {
      const ssize_t n = write(STDERR_FILENO, buf_ + done, len_ - done);
      if (n > 0) {
        done += static_cast<std::size_t>(n);
      } else if (n < 0 && errno != EINTR) {
        return;
      }
    }
  }

 private:
  char buf_[512];
  std::size_t len_ = 0;
};

[[noreturn]] void report_overflow_and_abort(const Fiber& fiber) noexcept {
  ReportLine line;
  line.add("ember: stack overflow in ");
  const Task* task = fiber.task();
  if (task != nullptr && task->describe != nullptr) {
    // Keep room for the rest of the line, whatever the description's length.
    line.add_from(/*keep=*/128,
                  [task](char* out, std::size_t room) { return task->describe(task, out, room); });
    line.add(", stack ");
  } else {
    line.add("a fiber task (stack ");
  }
  line.add_decimal(fiber.stack().size);
  line.add(" bytes): the fiber ran past its guard page; aborting\n");
  line.write_to_stderr();
  std::abort();
}

// The stack pointer of the interrupted code, or 0 where we do not know how to read it.
std::uintptr_t interrupted_stack_pointer(void* context) noexcept {
  const auto* uc = static_cast<const ucontext_t*>(context);
#if defined(__x86_64__)
  return static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
#elif defined(__aarch64__)
  return static_cast<std::uintptr_t>(uc->uc_mcontext.sp);
#else
  (void)uc;
  return 0;
#endif
}

bool is_overflow(const Fiber& fiber, const siginfo_t* info, void* context) noexcept {
  const Stack& s = fiber.stack();
  const auto guard = reinterpret_cast<std::uintptr_t>(s.mapping);
  const std::uintptr_t bottom = stack_bottom(s);
  const auto address = reinterpret_cast<std::uintptr_t>(info->si_addr);
  if (address >= guard && address < bottom) return true;
  const std::uintptr_t sp = interrupted_stack_pointer(context);
  return sp != 0 && sp < bottom && sp + kFarOverflowReach >= guard;
}

// Hands a fault that is not ours to whoever had the signal before us.
void pass_on(int sig, siginfo_t* info, void* context) noexcept {
  const struct sigaction& previous = sig == SIGBUS ? previous_bus : previous_segv;
  // sa_handler and sa_sigaction share storage: SIG_DFL / SIG_IGN read the same through both.
  if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    if ((previous.sa_flags & SA_SIGINFO) != 0) {
      previous.sa_sigaction(sig, info, context);
    } else {
      previous.sa_handler(sig);
    }
    return;
  }
  // The default action (an ignored fault cannot be ignored either): restore it and return, so
  // the faulting instruction runs again and the fault kills the process as if we were never
  // here. A signal sent by kill() or raise() has no instruction to re-run: send it again; it
  // is blocked until this handler returns.
  struct sigaction fallback {};
  fallback.sa_handler = SIG_DFL;
  sigemptyset(&fallback.sa_mask);
  sigaction(sig, &fallback, nullptr);
  if (info == nullptr || info->si_code <= 0) raise(sig);
}

void on_fault(int sig, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  // initial-exec TLS: a plain load, safe in a signal handler.
  const Fiber* fiber = tls_current_fiber;
  // si_code > 0: raised by the CPU, not sent by kill() or raise().
  if (fiber != nullptr && fiber->valid() && info != nullptr && info->si_code > 0 &&
      is_overflow(*fiber, info, context)) {
    report_overflow_and_abort(*fiber);
  }
  errno = saved_errno;
  pass_on(sig, info, context);
}

#endif  // !EMBER_ASAN && !EMBER_TSAN

}  // namespace

void install_stack_overflow_handler() noexcept {
#if !defined(EMBER_ASAN) && !defined(EMBER_TSAN)
  static std::once_flag once;
  std::call_once(once, [] {
    // Read the previous handlers before ours can run: it reads them.
    sigaction(SIGSEGV, nullptr, &previous_segv);
    sigaction(SIGBUS, nullptr, &previous_bus);
    struct sigaction ours {};
    ours.sa_sigaction = on_fault;
    sigemptyset(&ours.sa_mask);
    ours.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &ours, nullptr);
    sigaction(SIGBUS, &ours, nullptr);
  });
#endif
}

void ensure_alt_signal_stack() noexcept {
  if (tls_fault_handling_ready) return;
  tls_fault_handling_ready = true;
#if !defined(EMBER_ASAN) && !defined(EMBER_TSAN)
  install_stack_overflow_handler();
  tls_alt_stack.install();
#endif
}

[[gnu::noinline]] EMBER_UNINSTRUMENTED void paint_stack_below_here() noexcept {
  const Fiber* fiber = tls_current_fiber;
  if (fiber == nullptr) return;
  const Stack& s = fiber->stack();
  const std::uintptr_t bottom = stack_bottom(s);
  const auto here = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  // Not on this fiber's stack (a signal handler on the alternate stack, say): leave it.
  if (here <= bottom + kPaintMargin || here > reinterpret_cast<std::uintptr_t>(s.top)) return;
  auto* word = reinterpret_cast<std::uint64_t*>((bottom + 7) & ~std::uintptr_t{7});
  auto* const end = reinterpret_cast<std::uint64_t*>((here - kPaintMargin) & ~std::uintptr_t{7});
  while (word < end) *word++ = kStackPaint;
}

EMBER_UNINSTRUMENTED std::size_t stack_high_water() noexcept {
  const Fiber* fiber = tls_current_fiber;
  if (fiber == nullptr) return 0;
  const Stack& s = fiber->stack();
  const std::uintptr_t bottom = stack_bottom(s);
  const auto top = reinterpret_cast<std::uintptr_t>(s.top);
  const auto here = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  if (here <= bottom || here > top) return 0;
  // Everything from this frame up is in use; the scan stops there at the latest.
  const auto* word = reinterpret_cast<const std::uint64_t*>((bottom + 7) & ~std::uintptr_t{7});
  const auto* const end = reinterpret_cast<const std::uint64_t*>(here & ~std::uintptr_t{7});
  while (word < end && *word == kStackPaint) ++word;
  return top - reinterpret_cast<std::uintptr_t>(word);
}

}  // namespace ember::detail
