#include "core/registry.hpp"

namespace ember::detail {

FunctionRecord* Registry::find(std::string_view name) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

FunctionRecord* Registry::insert(std::unique_ptr<FunctionRecord> record) {
  absl::MutexLock lock(&mu_);
  FunctionRecord* r = record.get();
  auto [it, inserted] = by_name_.try_emplace(std::string_view(r->name), r);
  if (!inserted) return nullptr;
  records_.push_back(std::move(record));
  return r;
}

}  // namespace ember::detail
