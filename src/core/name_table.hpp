// name_table.hpp — names to function records, read without locks.
//
// A by-name invoke pays one lookup here: a hash and a probe, no lock and no atomic
// read-modify-write. The table is insert-only (names are never removed or re-pointed while an
// engine lives), open-addressed, and doubles when half full; readers may be reading the old
// table while a writer publishes the new one, so old tables are kept until destruction (at most
// as much memory again as the current one). Writers must be serialised by the caller.
#pragma once

#include <absl/hash/hash.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace ember::detail {

template <typename Record>
class NameTable final {
 public:
  NameTable() { publish(16); }

  // The record named `name`, or nullptr. Thread-safe, lock-free. `Record::name` is compared.
  [[nodiscard]] Record* find(std::string_view name) const noexcept {
    const Table* t = table_.load(std::memory_order_acquire);
    const std::uint64_t h = hash(name);
    for (std::size_t i = h & t->mask;; i = (i + 1) & t->mask) {
      Record* r = t->entries[i].record.load(std::memory_order_acquire);
      if (r == nullptr) return nullptr;
      if (t->entries[i].hash == h && std::string_view(r->name) == name) return r;
    }
  }

  // Adds `record` under record->name (not already present). Writers only, serialised.
  void insert(Record* record) {
    const Table* t = table_.load(std::memory_order_relaxed);
    if ((size_ + 1) * 2 > t->mask + 1) {
      publish((t->mask + 1) * 2);
      t = table_.load(std::memory_order_relaxed);
    }
    place(*t, record);
    ++size_;
  }

 private:
  struct Entry {
    std::uint64_t hash = 0;  // written before `record` is published
    std::atomic<Record*> record{nullptr};
  };
  struct Table {
    std::size_t mask;
    std::unique_ptr<Entry[]> entries;
  };

  static std::uint64_t hash(std::string_view name) noexcept {
    return absl::Hash<absl::string_view>{}(absl::string_view(name.data(), name.size()));
  }
  static void place(const Table& t, Record* record) {
    const std::uint64_t h = hash(record->name);
    std::size_t i = h & t.mask;
    while (t.entries[i].record.load(std::memory_order_relaxed) != nullptr) i = (i + 1) & t.mask;
    t.entries[i].hash = h;
    t.entries[i].record.store(record, std::memory_order_release);
  }
  void publish(std::size_t capacity) {
    auto fresh = std::make_unique<Table>(Table{capacity - 1, std::make_unique<Entry[]>(capacity)});
    if (const Table* old = table_.load(std::memory_order_relaxed)) {
      for (std::size_t i = 0; i <= old->mask; ++i) {
        if (Record* r = old->entries[i].record.load(std::memory_order_relaxed)) place(*fresh, r);
      }
    }
    table_.store(fresh.get(), std::memory_order_release);
    tables_.push_back(std::move(fresh));
  }

  std::atomic<const Table*> table_{nullptr};
  std::vector<std::unique_ptr<Table>> tables_;  // every generation; writers only
  std::size_t size_ = 0;                        // writers only
};

}  // namespace ember::detail
