#include "sched/fiber.hpp"

#include <memory>
#include <utility>

#if defined(__SANITIZE_ADDRESS__)
#define EMBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMBER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define EMBER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define EMBER_TSAN 1
#endif
#endif

#if defined(EMBER_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(EMBER_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

namespace ember::detail {

namespace {

// The fiber running on each thread. Per thread, not per engine: a thread runs one fiber at a
// time whatever engine it belongs to, so several engines coexist.
thread_local Fiber* tls_current_fiber = nullptr;

// Boost.Context stack allocator over a stack the Fiber already owns: the Fiber returns it to
// the StackPool itself, after the context has finished.
struct OwnedStack {
  Stack stack;
  boost::context::stack_context allocate() {
    boost::context::stack_context sc;
    sc.sp = stack.top;
    sc.size = stack.size;
    return sc;
  }
  void deallocate(boost::context::stack_context&) noexcept {}
};

}  // namespace

Fiber* current_fiber() noexcept { return tls_current_fiber; }

Fiber::Fiber(Scheduler& owner, StackPool& stacks, std::size_t stack_size, std::uint32_t id)
    : owner_(owner),
      stacks_(stacks), stack_(stacks.acquire(stack_size)), id_(id) {
  if (!valid()) return;
  self_ = boost::context::fiber(std::allocator_arg, OwnedStack{stack_},
                                [this](boost::context::fiber&& caller) {
                                  return body(std::move(caller));
                                });
#if defined(EMBER_TSAN)
  tsan_fiber_ = __tsan_create_fiber(0);
#endif
}

Fiber::~Fiber() {
  if (!valid()) return;
  stopping_ = true;
  task_ = nullptr;
  switch_in();  // the loop sees stopping_ and returns; the context ends
#if defined(EMBER_TSAN)
  __tsan_destroy_fiber(tsan_fiber_);
#endif
  stacks_.release(stack_);
}

boost::context::fiber Fiber::body(boost::context::fiber&& caller) {
  caller_ = std::move(caller);
  arrived();
  while (!stopping_) {
    Task* task = task_;
    task->run(task);
    task_ = nullptr;
    switch_out();
  }
#if defined(EMBER_ASAN)
  // This stack is about to die: no fake stack to save.
  __sanitizer_start_switch_fiber(nullptr, caller_stack_bottom_, caller_stack_size_);
#endif
#if defined(EMBER_TSAN)
  __tsan_switch_to_fiber(tsan_caller_, 0);
#endif
  return std::move(caller_);
}

void Fiber::switch_in() noexcept {
  Fiber* previous = tls_current_fiber;
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

void Fiber::switch_out() noexcept {
#if defined(EMBER_ASAN)
  __sanitizer_start_switch_fiber(&asan_fake_stack_, caller_stack_bottom_, caller_stack_size_);
#endif
#if defined(EMBER_TSAN)
  __tsan_switch_to_fiber(tsan_caller_, 0);
#endif
  caller_ = std::move(caller_).resume();
  arrived();
}

void Fiber::arrived() noexcept {
#if defined(EMBER_ASAN)
  __sanitizer_finish_switch_fiber(asan_fake_stack_, &caller_stack_bottom_, &caller_stack_size_);
#endif
}

}  // namespace ember::detail
