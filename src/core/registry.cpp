#include "core/registry.hpp"

#include "core/str_cat.hpp"

namespace ember::detail {

namespace {

// Per-thread xorshift for weighted alias routing: no shared state, no atomics. The seed only
// needs to differ between threads.
std::uint32_t next_random() noexcept {
  thread_local std::uint64_t state =
      0x9e3779b97f4a7c15ULL ^ reinterpret_cast<std::uintptr_t>(&state);
  std::uint64_t x = state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  state = x;
  return static_cast<std::uint32_t>(x >> 32);
}

}  // namespace

FunctionRecord* Route::pick() const noexcept {
  FunctionRecord* p = primary.load(std::memory_order_acquire);
  if (const std::uint64_t share = secondary_share.load(std::memory_order_relaxed); share != 0)
      [[unlikely]] {
    if (next_random() < share) {
      if (FunctionRecord* s = secondary.load(std::memory_order_acquire)) return s;
    }
  }
  return p;
}

FunctionEntry* Registry::entry(std::string_view name) const {
  auto it = entries_.find(absl::string_view(name.data(), name.size()));
  return it == entries_.end() ? nullptr : it->second.get();
}

FunctionEntry* Registry::make_entry(std::string_view name, EngineCore* owner) {
  auto& slot = entries_[absl::string_view(name.data(), name.size())];
  if (!slot) {
    slot = std::make_unique<FunctionEntry>();
    slot->name = std::string(name);
    slot->latest = route(*slot, "", owner);
  }
  return slot.get();
}

Route* Registry::route(FunctionEntry& entry, std::string_view qualifier, EngineCore* owner) {
  if (qualifier.empty() && entry.latest != nullptr) return entry.latest;
  if (!qualifier.empty()) {
    auto it = entry.routes.find(absl::string_view(qualifier.data(), qualifier.size()));
    if (it != entry.routes.end()) return it->second;
  }
  auto r = std::make_unique<Route>();
  r->owner = owner;
  r->entry = &entry;
  r->qualifier = std::string(qualifier);
  r->name = qualifier.empty() ? entry.name : cat(entry.name, ":", qualifier);
  Route* raw = r.get();
  routes_.push_back(std::move(r));
  if (!qualifier.empty()) entry.routes[raw->qualifier] = raw;
  by_name_.insert(raw);
  return raw;
}

std::vector<FunctionEntry*> Registry::entries() const {
  std::vector<FunctionEntry*> out;
  out.reserve(entries_.size());
  for (const auto& [name, e] : entries_) out.push_back(e.get());
  return out;
}

FunctionRecord* Registry::adopt(std::unique_ptr<FunctionRecord> record) {
  records_.push_back(std::move(record));
  return records_.back().get();
}

}  // namespace ember::detail
