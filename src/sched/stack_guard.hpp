// stack_guard.hpp — stack-overflow reports and stack high-water marks for fiber stacks.
//
// Overflow: every fiber stack has a PROT_NONE guard page below it (stack_pool.hpp), so a
// handler that recurses too deep faults instead of scribbling on a neighbour. Left alone, that
// fault kills the process with a bare SIGSEGV. Once a thread first switches into a fiber,
// ensure_alt_signal_stack() gives it an alternate signal stack (the overflowing stack has no
// room for a signal frame) and installs, once per process, a SIGSEGV/SIGBUS handler that
// recognises a fault in the running fiber's guard page (or one taken with the stack pointer
// already below the stack: a frame bigger than a page can jump the guard page) and writes one
// line to stderr with write(2) before aborting:
//
//   ember: stack overflow in function 'deep.recursion' (request id 0123-abcd, stack 65536
//   bytes): the fiber ran past its guard page; aborting
//
// (one line; the part after "in " up to the comma comes from Task::describe). Any other fault
// goes to the handler that was installed before ours, or to the default action: a real crash
// is never swallowed.
//
// High water: for "Max Memory Used", a task paints its fiber's unused stack with a pattern
// when it starts and later asks how much of it was written since:
//
//   paint_stack_below_here();          // first thing on the fiber
//   run_the_handler();
//   std::size_t used = stack_high_water();  // bytes from the stack's top, >= what was used
//
// Sanitizer builds (ASan, TSan): the sanitizer owns SIGSEGV and its alternate stacks, and
// reports the fault itself (ASan as "stack-overflow on address ..." with the stack trace), so
// ensure_alt_signal_stack() and install_stack_overflow_handler() install nothing there.
// Painting and measuring still work: they are exempt from instrumentation (ASan may hold
// stale poison below the stack pointer), and ASan keeps locals on the real stack unless
// detect_stack_use_after_return is on (then locals live in fake frames and are not counted).
//
// This module must not depend on src/core or src/env: it knows a Task only through its
// describe hook.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ember::detail {

// Set once this thread has run ensure_alt_signal_stack(). Fiber::switch_in reads it on every
// root switch: one initial-exec TLS load and a branch that is never taken after the first time.
extern constinit thread_local bool tls_fault_handling_ready [[gnu::tls_model("initial-exec")]];

// Prepares this thread for fiber stacks that overflow: installs the process-wide fault
// handler (once per process; see install_stack_overflow_handler) and an alternate signal stack
// for this thread (once per thread), then sets tls_fault_handling_ready.
//
// The alternate stack is max(64 KiB, 4 * SIGSTKSZ) of mmap'd memory with a guard page of its
// own; it is disabled and unmapped when the thread exits. A thread that already has an enabled
// alternate stack of at least 16 KiB (the host's, or a sanitizer's) keeps it. Should mapping
// fail, the thread goes without: an overflow then dies of a plain SIGSEGV, as before.
// Thread safety: any thread; affects only the calling thread (and the process once).
// No-op (except for the flag) under ASan and TSan.
void ensure_alt_signal_stack() noexcept;

// Installs the SIGSEGV and SIGBUS handler described above, once per process; later calls do
// nothing. Thread-safe. Runs on the alternate stack (SA_ONSTACK), so threads need
// ensure_alt_signal_stack() for overflows to be reported; other faults are handled on any
// thread. A handler installed after this one replaces it (and the report is lost). Process-wide
// state by nature: the one exception to "no mutable global state", shared by every engine.
// No-op under ASan and TSan.
void install_stack_overflow_handler() noexcept;

// The word paint_stack_below_here() fills the stack with: no repeated byte (so no compiler
// turns the fill into memset) and unlikely as data, code or stack address.
inline constexpr std::uint64_t kStackPaint = 0xC0DEF1BE5AA5E37BULL;

// From inside a fiber: fills the current fiber's stack from its lowest usable address up to
// 1 KiB below the current stack pointer with kStackPaint (the margin keeps clear of this
// function's own frame and spills). Cost: one pass of 8-byte stores over the untouched part of
// the stack, and every page of it becomes resident (stacks are mapped MAP_NORESERVE and
// normally only touched pages cost memory). Does nothing outside a fiber.
void paint_stack_below_here() noexcept;

// From inside the same fiber (the same task), after paint_stack_below_here(): how many bytes
// of the stack, counted from its top, have been written since the paint. It scans up from the
// lowest address for the first word that is not kStackPaint, so its cost is a read of the part
// that was never touched (the bigger the stack and the less used, the longer). Granularity:
// 8 bytes (a word), plus whatever stays above the paint (the frames live when it was painted,
// and its 1 KiB margin) which always counts as used. A frame that reserves stack but never
// writes it is not counted (that memory was never used); a word written with exactly
// kStackPaint is taken as untouched. Without an earlier paint the result is meaningless
// (usually the whole stack). Returns 0 outside a fiber.
[[nodiscard]] std::size_t stack_high_water() noexcept;

}  // namespace ember::detail
