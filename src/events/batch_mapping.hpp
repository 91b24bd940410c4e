// batch_mapping.hpp — EventQueue and queue mappings (Engine::create_queue / map_queue): batches
// by size and window, per-mapping concurrency, FIFO per partition key, retries and record age,
// bisect on error, partial batch failures, on-failure destinations.
//
// One mutex per queue guards its records, its keys and its mapping's counters: a push takes it
// once, a batch takes it once to form and once to settle. Handlers are invoked, and failed
// records handed to EventDispatcher::deliver_failure, with no lock held.
#pragma once

#include <absl/container/btree_set.h>
#include <absl/container/flat_hash_map.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/engine_core.hpp"
#include "ember/engine.hpp"
#include "ember/event_queue.hpp"
#include "events/dispatcher.hpp"
#include "events/event_timers.hpp"

namespace ember::detail {

struct QueueState;

class QueueMappings final {
 public:
  QueueMappings(EngineCore& core, EventDispatcher& events, EventTimers& timers);
  ~QueueMappings();
  QueueMappings(const QueueMappings&) = delete;
  QueueMappings& operator=(const QueueMappings&) = delete;

  Result<std::shared_ptr<EventQueue>> create_queue(std::string_view name,
                                                   const QueueOptions& options);
  Result<std::string> map(std::string_view queue, std::string_view function,
                          const MappingConfig& config);
  Result<void> unmap(std::string_view mapping_id);
  [[nodiscard]] std::vector<MappingInfo> list() const;
  // Shutdown: pushes are refused, mappings take no more records, and batches in flight get
  // until the engine-time `deadline` to finish. Idempotent.
  void stop(std::int64_t deadline);

 private:
  friend class ::ember::EventQueue;  // push() runs the mapping from the pushing thread
  friend struct QueueState;
  struct State;
  std::unique_ptr<State> state_;
};

// ---- The pieces a queue is made of (event_queue.cpp, batch_mapping.cpp) ----

// One pushed record. Its id is made from (queue nonce, seq) when needed, not stored.
struct QueueRecord {
  std::uint64_t seq = 0;        // push order within its queue
  std::int64_t pushed_ns = 0;   // engine time
  std::int64_t attempt_ns = 0;  // the last hand-over, 0 if none
  int failures = 0;             // attempts counted against max_retries
  int throttles = 0;
  std::string body;
  std::string key;
  std::shared_ptr<const Error> error;  // the last counted attempt's
};

// The records of one partition key. While a batch holds one of them (`busy`), none of the
// others is handed over: that is the FIFO per key.
struct KeyQueue {
  explicit KeyQueue(std::string k) : key(std::move(k)) {}
  std::string key;
  std::deque<QueueRecord> records;
  bool busy = false;
};

// One map_queue. Fields below `fn` are guarded by the queue's mutex, except backoff_ns.
struct Mapping {
  std::string id;
  std::string queue;
  std::string function;  // as given to map_queue
  std::string source;    // "queue:<name>", for records
  MappingConfig config;
  FunctionHandle fn;
  std::int64_t window_ns = 0;
  std::int64_t max_age_ns = 0;

  std::uint64_t batches = 0;
  std::uint64_t records_succeeded = 0;
  std::uint64_t records_failed = 0;
  std::uint64_t records_retried = 0;
  std::int64_t in_flight = 0;  // flights, each holding one of max_concurrency
  bool paused = false;         // after a throttle, until backoff_timer fires
  EventTimers::Id backoff_timer = 0;
  // Written without the lock by each accepted invoke (reset after a throttle streak).
  std::atomic<std::int64_t> backoff_ns{0};
};

// A batch in flight, and what it still owes: the halves of a bisected batch and in-place retries
// run one after another in the same flight (one slot of max_concurrency), holding its keys.
struct Flight {
  std::shared_ptr<Mapping> mapping;
  std::vector<KeyQueue*> keys;
  std::vector<QueueRecord> current;            // handed over now
  std::vector<std::vector<QueueRecord>> next;  // to run after it; back() first
};

struct QueueState {
  QueueState(std::string n, std::size_t cap, std::size_t max_body_bytes, std::uint64_t n_nonce,
             QueueMappings::State* s)
      : name(std::move(n)), capacity(cap), max_body(max_body_bytes), nonce(n_nonce), owner(s) {}

  const std::string name;
  const std::size_t capacity;
  const std::size_t max_body;         // EngineOptions::max_async_payload, which also caps a batch
  const std::uint64_t nonce;          // the second half of every record id of this queue
  QueueMappings::State* const owner;  // touched only while !closed (the engine may be gone)
  std::atomic<std::size_t> held{0};   // written under mu, read by size()

  std::mutex mu;
  bool closed = false;
  std::uint64_t next_seq = 0;
  std::deque<QueueRecord> unkeyed;  // no order promised among these
  absl::flat_hash_map<std::string, std::unique_ptr<KeyQueue>> keys;
  // Keys that may be taken now (not busy, not empty), by the seq of their first record.
  absl::btree_set<std::pair<std::uint64_t, KeyQueue*>> ready;
  std::size_t available = 0;  // unkeyed records plus the records of ready keys
  std::shared_ptr<Mapping> mapping;
  // Flights whose next part waits for a thread that may invoke (not a handler's fiber).
  std::vector<std::unique_ptr<Flight>> resume;
  bool pump_armed = false;
  EventTimers::Id window_timer = 0;
  std::int64_t window_at = 0;
  std::uint64_t window_token = 0;
};

}  // namespace ember::detail
