// registry.hpp — the functions of one engine, by name.
//
// Records are immutable once published (their counters aside) and live as long as the engine,
// so a FunctionHandle is a plain pointer. Lookups are lock-free (NameTable); registration
// takes a mutex.
#pragma once

#include <absl/base/thread_annotations.h>
#include <absl/container/flat_hash_map.h>
#include <absl/synchronization/mutex.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/concurrency_gate.hpp"
#include "core/name_table.hpp"
#include "ember/function.hpp"
#include "ember/options.hpp"

namespace ember::detail {

class EngineCore;

struct FunctionRecord {
  EngineCore* owner = nullptr;
  std::string name;
  std::string version = "$LATEST";
  FunctionConfig config;
  std::int64_t timeout_ns = 0;
  std::int64_t max_queue_wait_ns = 0;
  std::size_t stack_size = 0;                 // StackPool::round_size'd
  BytesHandler bytes;                         // set for bytes handlers
  TypedHandler typed;                         // set (typed.call) for typed handlers
  ConcurrencyGate* gate = nullptr;            // own_gate or the engine's unreserved gate
  std::unique_ptr<ConcurrencyGate> own_gate;  // reserved functions only
  std::atomic<int> queued{0};                 // async invokes waiting for a slot
  bool typed_flag = false;                    // == static_cast<bool>(typed.call)
  [[nodiscard]] bool is_typed() const noexcept { return typed_flag; }
};

class Registry final {
 public:
  [[nodiscard]] FunctionRecord* find(std::string_view name) const;  // lock-free
  // Publishes `record` unless its name is taken; returns nullptr in that case.
  FunctionRecord* insert(std::unique_ptr<FunctionRecord> record) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  NameTable<FunctionRecord> by_name_;  // lock-free reads; inserts under mu_
  std::vector<std::unique_ptr<FunctionRecord>> records_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ember::detail
