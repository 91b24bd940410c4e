#include "sched/fiber.hpp"

#include <memory>
#include <utility>

namespace ember::detail {

namespace {

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

constinit thread_local Fiber* tls_current_fiber = nullptr;

Fiber::Fiber(Scheduler& owner, StackPool& stacks, std::size_t stack_size, std::uint32_t id)
    : owner_(owner), stacks_(stacks), stack_(stacks.acquire(stack_size)), id_(id) {
  if (!valid()) return;
  self_ = boost::context::fiber(
      std::allocator_arg, OwnedStack{stack_},
      [this](boost::context::fiber&& caller) { return body(std::move(caller)); });
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
  __tsan_switch_to_fiber(tsan_caller_, 0);
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
    // switch_out(), written out here: a return address that spans a context switch is
    // mispredicted, so the switch happens in this frame rather than one call deeper.
#if defined(EMBER_ASAN)
    __sanitizer_start_switch_fiber(&asan_fake_stack_, caller_stack_bottom_, caller_stack_size_);
#endif
#if defined(EMBER_TSAN)
    __tsan_switch_to_fiber(tsan_caller_, 0);
#endif
    caller_ = std::move(caller_).resume();
    arrived();
  }
#if defined(EMBER_ASAN)
  // This stack is about to die: no fake stack to save.
  __sanitizer_start_switch_fiber(nullptr, caller_stack_bottom_, caller_stack_size_);
#endif
  // TSan is switched back by ~Fiber, on the caller's side, once this context has ended: the
  // frames that still return here after this point belong to the fiber.
  return std::move(caller_);
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
