// event_queue_internal.hpp — what the queue store (event_queue.cpp) and the mapping logic
// (batch_mapping.cpp) share: QueueMappings' state, and a record's id, size and batch payload.
#pragma once

#include <absl/container/btree_map.h>
#include <absl/container/flat_hash_map.h>
#include <absl/random/random.h>
#include <absl/time/time.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "events/batch_mapping.hpp"

namespace ember::detail {

// A record's JSON beyond its body and key (id, field names, attempt, timestamp), rounded up:
// a batch's size is estimated from it before it is written.
constexpr std::size_t kRecordBytes = 160;
constexpr std::size_t kEnvelopeBytes = 16;

inline std::size_t record_bytes(const QueueRecord& r) noexcept {
  return r.body.size() + r.key.size() + kRecordBytes;
}

// A record id (sequence number `seq` of the queue with `nonce`), or a mapping id (`seq` of the
// engine's mappings, with the engine's nonce).
void format_id(char (&out)[36], std::uint64_t seq, std::uint64_t nonce) noexcept;
std::string record_id(const QueueState& q, const QueueRecord& r);

// The payload a batch hands over: {"Records":[...]}, pushedAt on the wall clock as `now` (engine
// time) is `now_time`.
std::string batch_payload(const QueueState& q, const std::vector<QueueRecord>& records,
                          std::int64_t now, absl::Time now_time);

struct Verdict;  // batch_mapping.cpp

// A record that ended without success, on its way to on_failure.
struct EndedRecord {
  std::shared_ptr<Mapping> mapping;
  std::string id;
  QueueRecord record;
  EventCondition condition;
  Error error;
};

struct QueueMappings::State {
  State(EngineCore& c, EventDispatcher& e, EventTimers& t)
      : core(c), events(e), timers(t), nonce(absl::Uniform<std::uint64_t>(absl::BitGen())) {}

  // What a pass over a queue collected under its lock, to act on outside it.
  struct Collected {
    std::vector<std::unique_ptr<Flight>> flights;
    std::vector<EndedRecord> ended;
    std::int64_t ended_flights = 0;
  };

  static Result<std::string> push(QueueState& q, std::string_view body, std::string_view key);
  void pump(QueueState& q, bool host);
  void pump_here(QueueState& q, bool host);
  void arm_pump_locked(QueueState& q);
  void collect_locked(QueueState& q, std::int64_t now, Collected& out);
  void take_batch_locked(QueueState& q, std::int64_t now, Flight& f, Collected& out);
  void arm_window_locked(QueueState& q, std::int64_t due);
  void start(QueueState& q, std::vector<std::unique_ptr<Flight>> flights, bool host);
  void on_result(QueueState& q, std::unique_ptr<Flight> f, Result<std::string> result);
  Verdict judge(const QueueState& q, const Flight& f, Result<std::string>& result);
  bool advance_locked(QueueState& q, Flight& f, std::int64_t now, Collected& out);
  void end_record_locked(QueueState& q, const std::shared_ptr<Mapping>& m, QueueRecord&& r,
                         EventCondition condition, Collected& out);
  void give_back_locked(QueueState& q, Flight& f, bool throttled);
  void deliver(std::vector<EndedRecord> ended, bool host);
  void deliver_now(std::vector<EndedRecord>& ended);
  void add_flights(std::int64_t n);
  void finish_flights(std::int64_t n);
  void close_all();

  static void append_locked(QueueState& q, QueueRecord&& r);
  static void put_back_locked(QueueState& q, std::vector<QueueRecord>& records);
  static void end_flight_locked(QueueState& q, Flight& f);

  EngineCore& core;
  EventDispatcher& events;
  EventTimers& timers;
  const std::uint64_t nonce;  // mapping ids; queues draw their own

  mutable std::mutex mu;  // guards the tables; taken before any queue's mutex
  absl::btree_map<std::string, std::shared_ptr<QueueState>> queues;
  absl::flat_hash_map<std::string, QueueState*> mapped;  // mapping id -> its queue
  std::uint64_t next_mapping = 0;
  bool stopped = false;

  // Flights out, engine-wide: stop() and the destructor wait for them. Taken after a queue's.
  std::mutex flight_mu;
  std::condition_variable flight_cv;
  std::int64_t out_flights = 0;  // guarded by flight_mu
  bool deadline_passed = false;  // guarded by flight_mu
};

}  // namespace ember::detail
