#include "core/concurrency_gate.hpp"

namespace ember::detail {

ConcurrencyGate::ConcurrencyGate(std::string description, std::int64_t limit, AdmitFn admit,
                                 void* context)
    : limit_(limit), description_(std::move(description)), admit_(admit), admit_context_(context) {}

ConcurrencyGate::Enqueued ConcurrencyGate::acquire_or_enqueue(GateWaiter* w, int max_queued,
                                                              TimerThread& timers,
                                                              Timer* queue_timer) {
  if (try_acquire()) return Enqueued::kAdmitted;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (w->function_queued->load(std::memory_order_relaxed) >= max_queued) return Enqueued::kFull;
    w->prev = tail_;
    w->next = nullptr;
    if (tail_ != nullptr)
      tail_->next = w;
    else
      head_ = w;
    tail_ = w;
    w->queued = true;
    w->function_queued->fetch_add(1, std::memory_order_relaxed);
    waiting_.fetch_add(1, std::memory_order_seq_cst);
    timers.add(queue_timer);
  }
  // A slot freed between our failed try_acquire and the enqueue saw waiting_ == 0: look again.
  hand_off();
  return Enqueued::kQueued;
}

void ConcurrencyGate::unlink(GateWaiter* w) {
  if (w->prev != nullptr)
    w->prev->next = w->next;
  else
    head_ = w->next;
  if (w->next != nullptr)
    w->next->prev = w->prev;
  else
    tail_ = w->prev;
  w->prev = w->next = nullptr;
  w->queued = false;
  w->function_queued->fetch_sub(1, std::memory_order_relaxed);
  waiting_.fetch_sub(1, std::memory_order_seq_cst);
}

bool ConcurrencyGate::remove(GateWaiter* w) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!w->queued) return false;
  unlink(w);
  return true;
}

std::vector<GateWaiter*> ConcurrencyGate::remove_all() {
  std::vector<GateWaiter*> out;
  std::lock_guard<std::mutex> lock(mu_);
  while (head_ != nullptr) {
    GateWaiter* w = head_;
    unlink(w);
    out.push_back(w);
  }
  return out;
}

void ConcurrencyGate::hand_off() {
  // Admit in small batches: the admit callback runs outside the lock (it submits work).
  for (;;) {
    GateWaiter* batch[16];
    int n = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      while (n < 16 && head_ != nullptr && try_acquire()) {
        GateWaiter* w = head_;
        unlink(w);
        batch[n++] = w;
      }
    }
    for (int i = 0; i < n; ++i) admit_(batch[i], admit_context_);
    if (n < 16) return;
  }
}

void ConcurrencyGate::set_limit(std::int64_t limit) noexcept {
  limit_.store(limit, std::memory_order_relaxed);
  if (waiting_.load(std::memory_order_seq_cst) != 0) hand_off();
}

}  // namespace ember::detail
