#include "core/registry.hpp"

namespace ember::detail {

FunctionRecord* Registry::find(std::string_view name) const { return by_name_.find(name); }

FunctionRecord* Registry::insert(std::unique_ptr<FunctionRecord> record) {
  absl::MutexLock lock(&mu_);
  FunctionRecord* r = record.get();
  if (by_name_.find(r->name) != nullptr) return nullptr;
  by_name_.insert(r);
  records_.push_back(std::move(record));
  return r;
}

}  // namespace ember::detail
