// event_queue.hpp — batch queue mappings: an EventQueue the host pushes records into, mapped to
// a function that receives them in batches (Lambda's event source mappings for SQS/Kinesis).
//
//   auto queue = engine.create_queue("trades").value();
//   engine.map_queue("trades", "ledger.apply", {.batch_size = 100,
//                                               .batching_window = absl::Milliseconds(5),
//                                               .report_batch_item_failures = true});
//   queue->push(R"({"px":101.5})", /*partition_key=*/"AAPL");
//
// The handler's payload is {"Records":[{"messageId","partitionKey","body","attempt",
// "pushedAt"}, ...]} (body as a JSON string). With report_batch_item_failures it may answer
// {"batchItemFailures":[{"itemIdentifier":"<messageId>"}, ...]}: only those are retried.
// Records of one partition key are handed over in push order, one batch at a time (FIFO per
// key); records without a key have no order among themselves.
#pragma once

#include <absl/time/time.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "ember/events.hpp"
#include "ember/export.hpp"
#include "ember/result.hpp"

namespace ember {

namespace detail {
struct QueueState;
}  // namespace detail

struct QueueOptions {
  // Records held (waiting or in a batch in flight). One more push is refused with kQueueFull.
  std::size_t capacity = 100'000;
};

// A queue of records. Made by Engine::create_queue; thread-safe; pushes from any thread.
class EMBER_EXPORT EventQueue final {
 public:
  // Adds a record; returns its id (UUID-shaped). Errors: kQueueFull, kPayloadTooLarge (past
  // EngineOptions::max_async_payload), kShuttingDown, kInvalidArgument (a key over 128 bytes).
  Result<std::string> push(std::string_view body, std::string_view partition_key = {});
  [[nodiscard]] std::string_view name() const noexcept;
  // Records held now (waiting, or in a batch in flight).
  [[nodiscard]] std::size_t size() const noexcept;

  explicit EventQueue(std::shared_ptr<detail::QueueState> state) noexcept;
  ~EventQueue();

 private:
  std::shared_ptr<detail::QueueState> state_;
};

struct MappingConfig {
  // Records per batch, 1..10000.
  int batch_size = 10;
  // How long a batch may wait to fill up before it goes anyway, 0..5 min. 0 = at once.
  absl::Duration batching_window = absl::ZeroDuration();
  // Batches in flight at once, 1..1000 (also capped by the function's concurrency).
  int max_concurrency = 2;
  // Retries of a failed record, 0..10000.
  int max_retries = 2;
  // A record older than this is not handed over (again): it goes to on_failure. >= 1 s.
  absl::Duration max_record_age = absl::Hours(6);
  // A batch that fails as a whole is split in two and each half retried (down to single
  // records) before the retry counts against the records.
  bool bisect_on_error = false;
  // Read {"batchItemFailures":[...]} from the handler's result; only those records fail.
  bool report_batch_item_failures = false;
  // Gets a record (EventRecord, source "queue:<queue>") for each record that failed for good.
  // Empty = the engine's EventSinks::dead_letter.
  Destination on_failure;
};

struct MappingInfo {
  std::string id;  // UUID-shaped
  std::string queue;
  std::string function;
  MappingConfig config;
  std::uint64_t batches = 0;  // handler invocations
  std::uint64_t records_succeeded = 0;
  std::uint64_t records_failed = 0;  // ended at on_failure / dead letter
  std::uint64_t records_retried = 0;
  std::int64_t in_flight_batches = 0;
};

}  // namespace ember
