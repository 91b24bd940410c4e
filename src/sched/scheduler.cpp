#include "sched/scheduler.hpp"

#include <immintrin.h>

#include <algorithm>
#include <chrono>

namespace ember::detail {

constinit thread_local Worker* tls_worker = nullptr;
constinit thread_local InlineFiberCache tls_inline_cache;

Executor* Fiber::home() noexcept {
  if (home_ == nullptr && lazy_home_ != nullptr) home_ = &lazy_home_->get();
  return home_;
}

// ---- FiberList / FiberPool ----

Fiber* FiberList::take(std::size_t stack_size) noexcept {
  for (auto& [size, head] : heads_) {
    if (size == stack_size) {
      Fiber* f = head;
      if (f != nullptr) head = f->next_free;
      return f;
    }
  }
  return nullptr;
}

void FiberList::give(Fiber* f) noexcept {
  const std::size_t size = f->stack_size();
  for (auto& [s, head] : heads_) {
    if (s == size) {
      f->next_free = head;
      head = f;
      return;
    }
  }
  f->next_free = nullptr;
  heads_.emplace_back(size, f);
}

FiberPool::~FiberPool() {
  std::lock_guard<std::mutex> lock(mu_);
  all_.clear();
}

Fiber* FiberPool::create(std::size_t stack_size) {
  std::lock_guard<std::mutex> lock(mu_);
  auto fiber = std::make_unique<Fiber>(owner_, stacks_, stack_size,
                                       static_cast<std::uint32_t>(all_.size() + 1));
  if (!fiber->valid()) return nullptr;
  all_.push_back(std::move(fiber));
  return all_.back().get();
}

Fiber* FiberPool::take_shared(std::size_t stack_size) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (Fiber* f = shared_.take(stack_size)) return f;
  }
  return create(stack_size);
}

void FiberPool::give_shared(Fiber* f) {
  std::lock_guard<std::mutex> lock(mu_);
  shared_.give(f);
}

std::size_t FiberPool::size() {
  std::lock_guard<std::mutex> lock(mu_);
  return all_.size();
}

// ---- Worker ----

Worker::Worker(Scheduler& scheduler, int index) : scheduler_(scheduler), index_(index) {
  ready_local_.reserve(64);
  ready_batch_.reserve(64);
}

void Worker::start() {
  thread_ = std::thread([this] { loop(); });
}

Worker::~Worker() {
  if (thread_.joinable()) thread_.join();
}

void Worker::ready(Fiber* f) noexcept {
  if (tls_worker == this) {
    ready_local_.push_back(f);
    return;
  }
  ready_remote_.enqueue(f);
  wake_if_parked();
}

bool Worker::wake_if_parked() noexcept {
  // Pairs with the fence in loop(): either we see parked_ or the worker sees our work.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (parked_.load(std::memory_order_relaxed) &&
      parked_.exchange(false, std::memory_order_acq_rel)) {
    scheduler_.parked_count_.fetch_sub(1, std::memory_order_relaxed);
    parker_.unpark();
    return true;
  }
  return false;
}

void Worker::resume(Fiber* f) {
  Task* task = f->task();
  const std::int64_t watched = task->watch_deadline.load(std::memory_order_relaxed);
  if (watched != kNever) [[unlikely]] {
    running_.store(task, std::memory_order_seq_cst);
    scheduler_.timer_thread_.watch(watched);
    f->switch_in();
    running_.store(nullptr, std::memory_order_release);
  } else {
    f->switch_in();
  }
  if (f->idle()) {
    if (&f->owner() == &scheduler_) {
      free_.give(f);
    } else {
      f->owner().release_fiber(f);  // a nested invoke into another engine ran here
    }
  }
}

void Worker::start_task(Task* t) {
  Fiber* f = free_.take(t->stack_size);
  if (f == nullptr) f = scheduler_.fibers_.create(t->stack_size);
  if (f == nullptr) {
    t->abandon(t);
    return;
  }
  f->assign(t, this);
  resume(f);
}

bool Worker::run_ready() {
  Fiber* f;
  while (ready_remote_.try_dequeue(f)) ready_local_.push_back(f);
  if (ready_local_.empty()) return false;
  idle_.store(false, std::memory_order_relaxed);
  // Fibers made ready while this batch runs go to the next round (fair to new tasks).
  ready_batch_.swap(ready_local_);
  for (Fiber* fiber : ready_batch_) resume(fiber);
  ready_batch_.clear();
  return true;
}

bool Worker::offer(Task* t) noexcept {
  if (!idle_.load(std::memory_order_relaxed)) return false;
  Task* expected = nullptr;
  return mailbox_.compare_exchange_strong(expected, t, std::memory_order_acq_rel);
}

Task* Worker::take_from_mailbox() noexcept {
  // Taken by CAS: an idle worker may steal it (its owner may have become busy, even blocked,
  // between a submitter seeing it idle and the hand-off).
  Task* t = mailbox_.load(std::memory_order_acquire);
  if (t == nullptr || !mailbox_.compare_exchange_strong(t, nullptr, std::memory_order_acq_rel)) {
    return nullptr;
  }
  return t;
}

bool Worker::take_mailbox() {
  Task* t = take_from_mailbox();
  if (t == nullptr) return false;
  idle_.store(false, std::memory_order_relaxed);
  start_task(t);
  return true;
}

bool Worker::run_new_task() {
  Task* t = nullptr;
  if (tasks_.try_dequeue(t) || (t = scheduler_.take_injected()) != nullptr ||
      (t = scheduler_.steal(index_)) != nullptr) {
    idle_.store(false, std::memory_order_relaxed);
    start_task(t);
    return true;
  }
  return false;
}

bool Worker::has_work() noexcept {
  if (mailbox_.load(std::memory_order_acquire) != nullptr || !ready_local_.empty() ||
      ready_remote_.size_approx() != 0 || tasks_.size_approx() != 0 ||
      scheduler_.injection_.size_approx() != 0) {
    return true;
  }
  for (auto& w : scheduler_.workers_) {
    if (w.get() != this &&
        (w->tasks_.size_approx() != 0 || w->mailbox_.load(std::memory_order_acquire) != nullptr)) {
      return true;
    }
  }
  return false;
}

void Worker::loop() {
  tls_worker = this;
  TimeSource& time = scheduler_.time_;
  std::int64_t spins = 0;
  std::chrono::steady_clock::time_point spin_until;
  for (;;) {
    std::int64_t next_timer = timers_.earliest();
    if (next_timer != kNever) next_timer = timers_.fire_expired(time.now());
    bool worked = take_mailbox();
    worked = run_ready() || worked;
    worked = run_new_task() || worked;
    if (worked) {
      spins = 0;
      idle_.store(false, std::memory_order_relaxed);
      continue;
    }
    if (scheduler_.stopping_.load(std::memory_order_acquire)) break;
    idle_.store(true, std::memory_order_relaxed);
    // Idle: spin briefly, then keep looking for spin_before_park (real time) but give the core
    // away between looks: on a machine with no spare core a spinning worker would otherwise
    // starve the threads that submit work. Then park.
    if (spins++ < 64) {
      _mm_pause();
      continue;
    }
    if (spins == 65)
      spin_until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(scheduler_.spin_ns_);
    if (std::chrono::steady_clock::now() < spin_until) {
      std::this_thread::yield();
      continue;
    }
    // Park: announce it, then look once more so that a submission racing with us is seen
    // either by us (here) or by the submitter (parked_ is true).
    parked_.store(true, std::memory_order_relaxed);
    scheduler_.parked_count_.fetch_add(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!has_work() && !scheduler_.stopping_.load(std::memory_order_acquire)) {
      time.park_until(parker_, next_timer);
    }
    if (parked_.exchange(false, std::memory_order_acq_rel)) {
      scheduler_.parked_count_.fetch_sub(1, std::memory_order_relaxed);
    }
    spins = 0;
  }
  free_.drain([this](Fiber* f) { scheduler_.fibers_.give_shared(f); });
  tls_worker = nullptr;
}

// ---- InlineHost ----

void InlineHost::ready(Fiber* f) noexcept {
  // Unpark under the lock: the host takes mu_ once more before it returns, so it (and this
  // object on its stack) outlive our touching it.
  std::lock_guard<std::mutex> lock(mu_);
  ready_.push_back(f);
  parker_.unpark();
}

void InlineHost::run_until_idle(Fiber* root) {
  TimeSource& time = scheduler_.time();
  while (!root->idle()) {
    const std::int64_t next_timer = timers_.fire_expired(time.now());
    {
      std::lock_guard<std::mutex> lock(mu_);
      batch_.swap(ready_);
    }
    for (Fiber* f : batch_) {
      f->switch_in();
      if (f->idle() && f != root) scheduler_.release_fiber(f);
    }
    const bool worked = !batch_.empty();
    batch_.clear();
    if (worked || root->idle()) continue;
    time.park_until(parker_, next_timer);
  }
  std::lock_guard<std::mutex> lock(mu_);  // see ready()
}

// ---- Scheduler ----

Scheduler::Scheduler(TimeSource& time, int workers, std::int64_t spin_ns)
    : time_(time),
      spin_ns_(spin_ns),
      anchor_(new CacheAnchor(this)),
      fibers_(*this, stacks_),
      timer_thread_(time, workers_) {
  workers_.reserve(static_cast<std::size_t>(workers));
  for (int i = 0; i < workers; ++i) workers_.push_back(std::make_unique<Worker>(*this, i));
  for (auto& w : workers_) w->start();  // only now: loops read workers_ (stealing)
}

Scheduler::~Scheduler() {
  timer_thread_.stop();  // it scans workers_: stop it before they go
  stopping_.store(true, std::memory_order_release);
  for (auto& w : workers_) {
    w->parker_.unpark();
  }
  for (auto& w : workers_) {
    if (w->thread_.joinable()) w->thread_.join();
  }
  workers_.clear();
  {
    // Thread caches still holding our fibers must not hand them back from now on.
    std::lock_guard<std::mutex> lock(anchor_->mu);
    anchor_->scheduler = nullptr;
  }
  anchor_->unref();
}

Worker* Scheduler::current_worker() const noexcept {
  Worker* w = tls_worker;
  return (w != nullptr && &w->scheduler_ == this) ? w : nullptr;
}

void Scheduler::submit(Task* t) noexcept {
  if (Worker* w = current_worker()) {
    w->push_task(t);
  } else {
    bool offered = false;
    for (auto& worker : workers_) {
      if ((offered = worker->offer(t))) break;
    }
    // If the idle worker it went to is parked, or got busy meanwhile, notify_work wakes a
    // parked one, which takes it (mailboxes can be stolen).
    if (!offered) injection_.enqueue(t);
  }
  notify_work();
}

void Scheduler::notify_work() noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (parked_count_.load(std::memory_order_relaxed) == 0) return;
  for (auto& w : workers_) {
    if (w->wake_if_parked()) return;
  }
}

Task* Scheduler::take_injected() noexcept {
  Task* t = nullptr;
  return injection_.try_dequeue(t) ? t : nullptr;
}

Task* Scheduler::steal(int thief) noexcept {
  const int n = static_cast<int>(workers_.size());
  for (int i = 1; i < n; ++i) {
    Worker& victim = *workers_[static_cast<std::size_t>((thief + i) % n)];
    Task* t = nullptr;
    if (victim.tasks_.try_dequeue(t)) return t;
    if ((t = victim.take_from_mailbox()) != nullptr) return t;
  }
  return nullptr;
}

namespace {

// Lets go of a slot: its fiber goes back to its scheduler if that still exists.
void release_slot(InlineFiberCache::Slot& slot) {
  if (slot.anchor == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(slot.anchor->mu);
    if (slot.anchor->scheduler != nullptr) {
      for (int i = 0; i < slot.count; ++i) slot.anchor->scheduler->give_back_shared(slot.fibers[i]);
    }
  }
  slot.anchor->unref();
  slot = InlineFiberCache::Slot{};
}

// Empties this thread's cache when the thread exits.
struct InlineFiberCacheCleanup {
  ~InlineFiberCacheCleanup() {
    for (auto& slot : tls_inline_cache.slots) release_slot(slot);
  }
};

// This thread's cache slot for `anchor`, moved to the front (slot 0 is what the inline fast
// path looks at). With `claim`, a scheduler without a slot takes the least recently used one.
InlineFiberCache::Slot* cache_slot(CacheAnchor* anchor, bool claim) {
  InlineFiberCache& cache = tls_inline_cache;
  int found = -1;
  for (int i = 0; i < InlineFiberCache::kSlots; ++i) {
    if (cache.slots[i].anchor == anchor) {
      found = i;
      break;
    }
  }
  if (found < 0) {
    if (!claim) return nullptr;
    static thread_local InlineFiberCacheCleanup cleanup;  // registered on first claim
    (void)&cleanup;
    found = 0;
    for (int i = 1; i < InlineFiberCache::kSlots; ++i) {
      if (cache.slots[i].last_use < cache.slots[found].last_use) found = i;
    }
    release_slot(cache.slots[found]);
    anchor->refs.fetch_add(1, std::memory_order_relaxed);
    cache.slots[found].anchor = anchor;
  }
  InlineFiberCache::Slot slot = cache.slots[found];
  for (int i = found; i > 0; --i) cache.slots[i] = cache.slots[i - 1];
  slot.last_use = ++cache.clock;
  cache.slots[0] = slot;
  return &cache.slots[0];
}

}  // namespace

void Scheduler::give_back_shared(Fiber* f) { fibers_.give_shared(f); }

Fiber* Scheduler::acquire_fiber_slow(std::size_t stack_size) {
  if (Worker* w = current_worker()) {
    if (Fiber* f = w->free_.take(stack_size)) return f;
    return fibers_.create(stack_size);
  }
  if (tls_worker == nullptr) {
    InlineFiberCache::Slot* slot = cache_slot(anchor_, false);
    if (slot != nullptr) {
      for (int i = slot->count - 1; i >= 0; --i) {
        if (slot->fibers[i]->stack_size() == stack_size) {
          Fiber* f = slot->fibers[i];
          slot->fibers[i] = slot->fibers[--slot->count];
          return f;
        }
      }
    }
  }
  return fibers_.take_shared(stack_size);
}

void Scheduler::release_fiber_slow(Fiber* f) {
  if (&f->owner() != this) {
    f->owner().release_fiber(f);
    return;
  }
  if (Worker* w = current_worker()) {
    w->free_.give(f);
    return;
  }
  if (tls_worker == nullptr) {
    InlineFiberCache::Slot* slot = cache_slot(anchor_, true);
    if (slot->count < InlineFiberCache::kFibersPerSlot) {
      slot->fibers[slot->count++] = f;
      return;
    }
  }
  fibers_.give_shared(f);
}

}  // namespace ember::detail
