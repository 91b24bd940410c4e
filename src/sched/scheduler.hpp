// scheduler.hpp — worker threads, fiber pool, run queues, timers and parking.
//
// Layout (DESIGN.md §3.4):
// - Each Worker owns a thread, a stealable queue of not-yet-started tasks, a queue of its own
//   suspended fibers that became ready, a timer heap, and free lists of idle fibers.
// - Threads that are not workers submit into the scheduler's injection queue.
// - A task may be stolen by any worker until it starts; once started on a fiber, the fiber is
//   resumed only by its home executor's thread, so a running handler never changes thread.
// - An idle worker spins for a while, then parks; a submission wakes one parked worker.
// - InlineHost is the executor of a thread that runs an inline invocation itself: when that
//   fiber suspends, the calling thread runs a small loop (timers, ready fibers, parking) until
//   the invocation is done.
// - The TimerThread fires timers that must not depend on any worker being free (deadlines of
//   async invocations, queue-wait limits).
#pragma once

#include <absl/container/inlined_vector.h>
#include <concurrentqueue/concurrentqueue.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "sched/fiber.hpp"
#include "sched/parker.hpp"
#include "sched/stack_pool.hpp"
#include "sched/time_source.hpp"
#include "sched/timer_heap.hpp"
#include "sched/timer_thread.hpp"

namespace ember::detail {

class Scheduler;
class Worker;

// The worker this thread is (nullptr on other threads). initial-exec TLS: one instruction.
extern constinit thread_local Worker* tls_worker [[gnu::tls_model("initial-exec")]];

// Shared by a scheduler and the per-thread caches that hold one of its fibers: tells a cache
// whether the scheduler still exists when the cache lets go of the fiber. Reference counted.
struct CacheAnchor {
  std::mutex mu;
  Scheduler* scheduler;  // guarded by mu; nullptr once the scheduler is being destroyed
  std::atomic<int> refs{1};
  explicit CacheAnchor(Scheduler* s) : scheduler(s) {}
  void unref() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
};

// Idle fibers kept per non-worker thread, one for each of the last few schedulers (engines)
// it used, so that an inline invoke from a game loop or a trading thread takes and returns its
// fiber without any atomic operation. A slot names its scheduler by anchor; the anchor's
// reference keeps the address from being reused while the slot holds it. A thread that
// rotates among more schedulers than there are slots evicts the least recently used slot, and
// the evicted fiber goes back to its scheduler if that still exists; so does every cached
// fiber when the thread exits.
struct InlineFiberCache {
  static constexpr int kSlots = 4;
  static constexpr int kFibersPerSlot = 4;  // enough for inline invokes nested 3 deep
  struct Slot {
    CacheAnchor* anchor = nullptr;
    Fiber* fibers[kFibersPerSlot] = {};
    int count = 0;
    std::uint64_t last_use = 0;
  };
  Slot slots[kSlots];
  std::uint64_t clock = 0;
};
extern constinit thread_local InlineFiberCache tls_inline_cache [[gnu::tls_model("initial-exec")]];

// Something that runs suspended fibers when they become ready, and fires timers.
class Executor {
 public:
  virtual ~Executor() = default;
  // Makes suspended fiber `f` (whose home is this executor) runnable. Thread-safe. The fiber
  // may still be switching out on this executor's thread; it is resumed only after that.
  virtual void ready(Fiber* f) noexcept = 0;
  // Arms a timer fired on this executor's thread. Call only from that thread.
  void add_timer(Timer* t) { timers_.add(t); }
  bool cancel_timer(Timer* t) { return timers_.cancel(t); }

 protected:
  TimerHeap timers_;
};

// Idle fibers by stack size; owned by one thread (no locking).
class FiberList final {
 public:
  Fiber* take(std::size_t stack_size) noexcept;
  void give(Fiber* f) noexcept;
  template <typename F>
  void drain(F&& sink) {
    for (auto& [size, head] : heads_) {
      while (head != nullptr) {
        Fiber* f = head;
        head = f->next_free;
        sink(f);
      }
    }
  }

 private:
  std::vector<std::pair<std::size_t, Fiber*>> heads_;
};

// Owns every fiber of a scheduler; hands out idle ones.
class FiberPool final {
 public:
  FiberPool(Scheduler& owner, StackPool& stacks) : owner_(owner), stacks_(stacks) {}
  ~FiberPool();  // every fiber must be idle by now
  // A fresh fiber, or nullptr if its stack could not be mapped.
  Fiber* create(std::size_t stack_size);
  // The shared free list, for threads that are not workers (mutex-protected).
  Fiber* take_shared(std::size_t stack_size);
  void give_shared(Fiber* f);
  [[nodiscard]] std::size_t size();

 private:
  Scheduler& owner_;
  StackPool& stacks_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Fiber>> all_;  // guarded by mu_
  FiberList shared_;                         // guarded by mu_
};

class Worker final : public Executor {
 public:
  Worker(Scheduler& scheduler, int index);
  ~Worker() override;
  void start();  // after every worker exists: the loop reads the scheduler's worker list
  void ready(Fiber* f) noexcept override;
  // Queues a not-yet-started task on this worker (any thread; stealable).
  void push_task(Task* t) noexcept { tasks_.enqueue(t); }
  [[nodiscard]] int index() const noexcept { return index_; }
  // Wakes the worker if it is parked. Returns true if it was.
  bool wake_if_parked() noexcept;
  FiberList& free_fibers() noexcept { return free_; }  // worker thread only

 private:
  friend class Scheduler;
  friend class TimerThread;
  friend class FiberPool;
  void loop();
  bool run_ready();
  bool run_new_task();
  bool take_mailbox();
  Task* take_from_mailbox() noexcept;  // the owner or a thief
  // Hands t to this worker if it is idle with an empty mailbox.
  bool offer(Task* t) noexcept;
  void start_task(Task* t);
  void resume(Fiber* f);
  bool has_work() noexcept;

  Scheduler& scheduler_;
  const int index_;
  moodycamel::ConcurrentQueue<Task*> tasks_;
  moodycamel::ConcurrentQueue<Fiber*> ready_remote_;
  std::atomic<Task*> running_{nullptr};  // the watched task running now, for the TimerThread
  // A task handed straight to this worker while it looks for work: one cache line between
  // submitter and worker instead of a queue's several (the pool round trip's latency).
  alignas(64) std::atomic<Task*> mailbox_{nullptr};
  std::atomic<bool> idle_{false};    // set while it looks for work (spinning or parked)
  std::vector<Fiber*> ready_local_;  // worker thread only
  std::vector<Fiber*> ready_batch_;  // worker thread only
  FiberList free_;                   // worker thread only
  Parker parker_;
  std::atomic<bool> parked_{false};
  std::thread thread_;
};

// The executor of a non-worker thread that runs an inline invocation. Lives on that thread's
// stack for the duration of the invocation.
class InlineHost final : public Executor {
 public:
  explicit InlineHost(Scheduler& scheduler) noexcept : scheduler_(scheduler) {}
  ~InlineHost() override = default;
  void ready(Fiber* f) noexcept override;
  // Runs timers and ready fibers on this thread, parking in between, until root->idle().
  void run_until_idle(Fiber* root);

 private:
  Scheduler& scheduler_;
  std::mutex mu_;
  // Built per suspended inline invocation: inline storage keeps it allocation-free.
  absl::InlinedVector<Fiber*, 4> ready_;  // guarded by mu_
  absl::InlinedVector<Fiber*, 4> batch_;  // host thread only
  Parker parker_;
};

// An InlineHost built only when an inline invocation first suspends: most never do, and the
// fast path then pays nothing for it. Lives in the inline caller's frame.
class LazyHost final {
 public:
  explicit LazyHost(Scheduler& scheduler) noexcept : scheduler_(scheduler) {}
  InlineHost& get() {
    if (!host_) host_.emplace(scheduler_);
    return *host_;
  }
  // After switch_in returned with root not idle: run the host until root is done.
  void run_until_idle(Fiber* root) { get().run_until_idle(root); }

 private:
  Scheduler& scheduler_;
  std::optional<InlineHost> host_;
};

class Scheduler final {
 public:
  Scheduler(TimeSource& time, int workers, std::int64_t spin_ns);
  ~Scheduler();  // stops and joins the workers; all work must be finished
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a task to start on some worker: the current worker's own queue when called on one
  // (a nested pool invoke stays near its caller), else the injection queue. Any thread.
  void submit(Task* t) noexcept;
  // The worker this thread is, if it is one of ours.
  [[nodiscard]] Worker* current_worker() const noexcept;

  // An idle fiber for a task started on this thread, and its return afterwards. Workers use
  // their own free lists; other threads keep one fiber per thread cached, then a shared list.
  // The cached case is inline: no call, no atomic.
  Fiber* acquire_fiber(std::size_t stack_size);
  // Any idle fiber back to where it belongs (fibers of another scheduler go to their owner).
  void release_fiber(Fiber* f);

  TimeSource& time() noexcept { return time_; }
  TimerThread& timer_thread() noexcept { return timer_thread_; }
  // Starts watching workers' running tasks (see TimerThread). Call once, before tasks run.
  void watch_running_tasks(TimerThread::OverdueFn overdue, void* context) {
    timer_thread_.set_overdue_hook(overdue, context);
  }
  [[nodiscard]] int worker_count() const noexcept { return static_cast<int>(workers_.size()); }
  [[nodiscard]] std::size_t fiber_count() { return fibers_.size(); }
  [[nodiscard]] std::size_t stacks_mapped() { return stacks_.mapped_count(); }

 private:
  friend class Worker;
  friend class InlineHost;

 public:
  // An idle fiber of ours back to the shared list (per-thread caches letting go of it).
  void give_back_shared(Fiber* f);

 private:
  Fiber* acquire_fiber_slow(std::size_t stack_size);
  void release_fiber_slow(Fiber* f);
  Task* take_injected() noexcept;
  Task* steal(int thief) noexcept;
  void notify_work() noexcept;

  TimeSource& time_;
  const std::int64_t spin_ns_;  // how long an idle worker looks for work before parking
  CacheAnchor* const anchor_;   // names this scheduler in per-thread fiber caches
  StackPool stacks_;
  FiberPool fibers_;
  moodycamel::ConcurrentQueue<Task*> injection_;
  std::atomic<int> parked_count_{0};
  std::atomic<bool> stopping_{false};
  std::vector<std::unique_ptr<Worker>> workers_;
  TimerThread timer_thread_;
};

inline Fiber* Scheduler::acquire_fiber(std::size_t stack_size) {
  if (tls_worker == nullptr) {
    InlineFiberCache::Slot& slot = tls_inline_cache.slots[0];  // the most recent scheduler
    if (slot.anchor == anchor_ && slot.count > 0 &&
        slot.fibers[slot.count - 1]->stack_size() == stack_size) {
      return slot.fibers[--slot.count];
    }
  }
  return acquire_fiber_slow(stack_size);
}

inline void Scheduler::release_fiber(Fiber* f) {
  if (tls_worker == nullptr && &f->owner() == this) {
    InlineFiberCache::Slot& slot = tls_inline_cache.slots[0];
    if (slot.anchor == anchor_ && slot.count < InlineFiberCache::kFibersPerSlot) {
      slot.fibers[slot.count++] = f;
      return;
    }
  }
  release_fiber_slow(f);
}

}  // namespace ember::detail
