// Deploys: publishing plugin versions, moving routes, aliases, and retiring versions that no
// route leads to any more (DESIGN.md §5). Invokes never take config_mu_; they read routes.
#include <absl/container/flat_hash_set.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "core/engine_core.hpp"
#include "core/names.hpp"
#include "core/str_cat.hpp"

namespace ember::detail {

namespace {

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Lambda's alias names: 1-128 of [A-Za-z0-9_-], not all digits (those are versions).
Result<void> validate_alias_name(std::string_view function, std::string_view alias) {
  auto bad = [&](std::string_view why) {
    return fail(ErrorCode::kInvalidArgument,
                cat("function '", function, "': alias name '", alias, "' ", why));
  };
  if (alias.empty() || alias.size() > 128) return bad("must be 1-128 characters");
  if (all_digits(alias)) return bad("is all digits (that is a version number)");
  for (char c : alias) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return bad("may only have letters, digits, '_' and '-'");
  }
  return {};
}

}  // namespace

Result<std::vector<FunctionRecord*>> EngineCore::publish(const void* deployer, std::string_view who,
                                                         std::vector<VersionSpec>& specs,
                                                         bool dry_run) {
  if (init_error_) return tl::unexpected<Error>(*init_error_);
  if (shutting_down_.load()) {
    return fail(ErrorCode::kShuttingDown, cat(who, ": engine is shutting down"));
  }
  std::lock_guard<std::mutex> lock(config_mu_);
  // Check everything first.
  absl::flat_hash_set<std::string_view> seen;
  std::int64_t reserved_after = reserved_total_;
  for (const VersionSpec& spec : specs) {
    if (auto ok = validate_function_name(spec.name); !ok) {
      return fail(ErrorCode::kInvalidArgument, cat(who, ": ", ok.error().message));
    }
    if (!seen.insert(spec.name).second) {
      return fail(ErrorCode::kInvalidArgument,
                  cat(who, ": function '", spec.name, "' is declared twice"));
    }
    if (auto ok = validate(spec.name, spec.config); !ok) {
      return fail(ErrorCode::kInvalidArgument, cat(who, ": ", ok.error().message));
    }
    if (auto ok = check_provisioned(spec.name, spec.config, spec.stateful || spec.env != nullptr);
        !ok) {
      return fail(ErrorCode::kInvalidArgument, cat(who, ": ", ok.error().message));
    }
    const FunctionEntry* e = registry_.entry(spec.name);
    if (e != nullptr && e->live() && e->deployer != deployer) {
      return fail(ErrorCode::kAlreadyExists,
                  cat(who, ": function '", spec.name, "' is already registered",
                      e->registered ? " (in C++)" : " (by another plugin)"));
    }
    if (e != nullptr && e->deployer == deployer) reserved_after -= e->reserved;
  }
  // The deployer's functions that the new version drops give their reservations back too.
  for (const FunctionEntry* e : registry_.entries()) {
    if (e->deployer == deployer && !seen.contains(e->name)) reserved_after -= e->reserved;
  }
  for (const VersionSpec& spec : specs) {
    const std::int64_t reserve = spec.config.reserved_concurrency.value_or(0);
    if (reserve > 0) {
      if (auto ok = check_reservation(spec.name, reserve, reserved_after); !ok) {
        return fail(ErrorCode::kInvalidArgument, cat(who, ": ", ok.error().message));
      }
      reserved_after += reserve;
    }
  }
  if (dry_run) return std::vector<FunctionRecord*>{};

  // Publish: new versions first, then move the latest routes (each switch is one store).
  std::vector<FunctionRecord*> published;
  for (VersionSpec& spec : specs) {
    FunctionEntry* entry = registry_.make_entry(spec.name, this);
    auto record = std::make_unique<FunctionRecord>();
    record->owner = this;
    record->entry = entry;
    record->stats = entry->stats.get();
    record->name = spec.name;
    record->version = cat(entry->next_version++);
    record->config = spec.config;
    record->timeout_ns = to_nanos(spec.config.timeout);
    record->max_queue_wait_ns = to_nanos(spec.config.max_queue_wait);
    record->stack_size = StackPool::round_size(spec.config.stack_size);
    record->bytes = spec.handler;
    record->code = spec.code;
    if (spec.code != nullptr) record->pins = std::make_unique<PinCounter>();
    if (spec.env != nullptr) {
      record->env_owned = std::move(spec.env);
      record->env = record->env_owned.get();
      envs_.push_back(record->env);
    }
    if (spec.init_ns) set_cold(record.get(), *spec.init_ns);  // before any route leads here
    const std::int64_t reserve = spec.config.reserved_concurrency.value_or(0);
    if (reserve > 0) {
      record->gate = reserve_gate(*entry, reserve);
    } else {
      unreserve(*entry);
      record->gate = &unreserved_;
    }
    FunctionRecord* r = registry_.adopt(std::move(record));
    entry->versions.push_back(r);
    entry->deployer = deployer;
    registry_.route(*entry, r->version, this)->primary.store(r, std::memory_order_seq_cst);
    published.push_back(r);
  }
  for (FunctionRecord* r : published) {
    r->entry->latest->primary.store(r, std::memory_order_seq_cst);
  }
  // Functions of the deployer that this version no longer has.
  std::vector<FunctionEntry*> dropped;
  for (const FunctionRecord* r : published) seen.insert(r->name);
  // (Entries are few; a scan keeps the registry simple.)
  for (FunctionEntry* e : registry_.entries()) {
    if (e->deployer == deployer && !seen.contains(e->name)) dropped.push_back(e);
  }
  for (FunctionEntry* e : dropped) remove_function(*e);
  return published;
}

int EngineCore::next_version(std::string_view function) const {
  std::lock_guard<std::mutex> lock(config_mu_);
  const FunctionEntry* e = registry_.entry(function);
  return e != nullptr ? e->next_version : 1;
}

void EngineCore::withdraw(const void* deployer) {
  std::lock_guard<std::mutex> lock(config_mu_);
  for (FunctionEntry* e : registry_.entries()) {
    if (e->deployer == deployer) remove_function(*e);
  }
}

void EngineCore::clear_route(Route& route) {
  route.secondary_share.store(0, std::memory_order_relaxed);
  route.secondary.store(nullptr, std::memory_order_seq_cst);
  route.primary.store(nullptr, std::memory_order_seq_cst);
}

void EngineCore::remove_function(FunctionEntry& e) {
  // Its versions stay until sweep() finds nothing leads to them any more.
  e.latest->primary.store(nullptr, std::memory_order_seq_cst);
  for (auto& [q, route] : e.routes) {
    if (route->is_alias) clear_route(*route);
  }
  e.deployer = nullptr;
  unreserve(e);
}

std::vector<FunctionRecord*> EngineCore::sweep() {
  std::lock_guard<std::mutex> lock(config_mu_);
  std::vector<FunctionRecord*> retired;
  for (FunctionEntry* e : registry_.entries()) {
    if (e->registered || e->versions.empty()) continue;
    absl::flat_hash_set<const FunctionRecord*> wanted;
    wanted.insert(e->latest->primary.load());
    for (auto& [q, route] : e->routes) {
      if (!route->is_alias) continue;
      wanted.insert(route->primary.load());
      wanted.insert(route->secondary.load());
    }
    auto keep = std::partition(e->versions.begin(), e->versions.end(),
                               [&](FunctionRecord* r) { return wanted.contains(r); });
    for (auto it = keep; it != e->versions.end(); ++it) {
      FunctionRecord* r = *it;
      registry_.route(*e, r->version, this)->primary.store(nullptr, std::memory_order_seq_cst);
      r->retiring.store(true, std::memory_order_seq_cst);
      retired.push_back(r);
    }
    e->versions.erase(keep, e->versions.end());
  }
  return retired;
}

bool EngineCore::unpinned(const std::vector<FunctionRecord*>& records) const {
  if (asymmetric_pins_ && !pin_barrier()) {
    log(LogLevel::kError, "", "", "membarrier failed; waiting for pinned plugin versions");
    return false;  // cannot prove it: keep waiting (the janitor retries)
  }
  return std::all_of(records.begin(), records.end(),
                     [](const FunctionRecord* r) { return r->pins->sum() == 0; });
}

bool EngineCore::wait_unpinned(const std::vector<FunctionRecord*>& records, std::int64_t deadline) {
  while (!unpinned(records)) {
    if (time_.now() >= deadline) return false;
    // Woken by the last unpin of a retiring version; polled every millisecond (real time)
    // because that wake-up may be missed, and because an injected clock may jump.
    deploy_parker_.park(1'000'000);
  }
  return true;
}

void EngineCore::wait_quiescent() {
  while (in_flight() != 0)
    time_.park_until(drain_parker_, add_saturating(time_.now(), 100'000'000));
}

Result<void> EngineCore::set_alias(std::string_view function, std::string_view alias,
                                   std::string_view version, std::string_view additional_version,
                                   double additional_weight) {
  if (auto ok = validate_alias_name(function, alias); !ok) return ok;
  if (!(additional_weight >= 0.0 && additional_weight <= 1.0)) {
    return fail(ErrorCode::kInvalidArgument,
                cat("function '", function, "': alias '", alias, "': additional_weight ",
                    additional_weight, " must be 0..1"));
  }
  std::lock_guard<std::mutex> lock(config_mu_);
  FunctionEntry* e = registry_.entry(function);
  if (e == nullptr || !e->live())
    return fail(ErrorCode::kNotFound, cat("function '", function, "' is not registered"));
  if (e->registered) {
    return fail(ErrorCode::kInvalidArgument,
                cat("function '", function,
                    "' is registered in C++ and has only $LATEST; aliases point at published "
                    "(plugin) versions"));
  }
  auto live_version = [&](std::string_view v) -> FunctionRecord* {
    for (FunctionRecord* r : e->versions) {
      if (r->version == v) return r;
    }
    return nullptr;
  };
  FunctionRecord* primary = live_version(version);
  if (primary == nullptr) {
    return fail(ErrorCode::kNotFound, cat("function '", function, "' has no loaded version '",
                                          version, "' (alias '", alias, "')"));
  }
  FunctionRecord* secondary = nullptr;
  if (!additional_version.empty()) {
    secondary = live_version(additional_version);
    if (secondary == nullptr) {
      return fail(ErrorCode::kNotFound,
                  cat("function '", function, "' has no loaded version '", additional_version,
                      "' (alias '", alias, "', additional version)"));
    }
    if (secondary == primary) {
      return fail(ErrorCode::kInvalidArgument,
                  cat("function '", function, "': alias '", alias,
                      "' splits traffic between version ", version, " and itself"));
    }
  }
  Route* route = registry_.route(*e, alias, this);
  route->is_alias = true;
  const auto share = static_cast<std::uint64_t>(std::round(additional_weight * 4294967296.0));
  // Secondary first, then the share, then the primary: a reader may see a mix for an instant,
  // and every mix leads to a live version (both are pinned-checked by leads_to).
  route->secondary.store(secondary, std::memory_order_seq_cst);
  route->secondary_share.store(secondary != nullptr ? share : 0, std::memory_order_relaxed);
  route->primary.store(primary, std::memory_order_seq_cst);
  return {};
}

Result<void> EngineCore::delete_alias(std::string_view function, std::string_view alias) {
  std::lock_guard<std::mutex> lock(config_mu_);
  FunctionEntry* e = registry_.entry(function);
  auto it = e != nullptr ? e->routes.find(absl::string_view(alias.data(), alias.size()))
                         : decltype(e->routes)::iterator{};
  if (e == nullptr || it == e->routes.end() || !it->second->is_alias ||
      it->second->primary.load() == nullptr) {
    return fail(ErrorCode::kNotFound, cat("function '", function, "' has no alias '", alias, "'"));
  }
  clear_route(*it->second);
  return {};
}

Result<std::vector<std::string>> EngineCore::versions(std::string_view function) const {
  std::lock_guard<std::mutex> lock(config_mu_);
  const FunctionEntry* e = registry_.entry(function);
  if (e == nullptr || !e->live())
    return fail(ErrorCode::kNotFound, cat("function '", function, "' is not registered"));
  std::vector<std::string> out;
  for (const FunctionRecord* r : e->versions) out.push_back(r->version);
  return out;
}

Result<std::vector<std::string>> EngineCore::aliases(std::string_view function) const {
  std::lock_guard<std::mutex> lock(config_mu_);
  const FunctionEntry* e = registry_.entry(function);
  if (e == nullptr || !e->live())
    return fail(ErrorCode::kNotFound, cat("function '", function, "' is not registered"));
  std::vector<std::string> out;
  for (const auto& [q, route] : e->routes) {
    if (route->is_alias && route->primary.load() != nullptr) out.push_back(route->qualifier);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<FunctionInfo> EngineCore::function_list() const {
  std::lock_guard<std::mutex> lock(config_mu_);
  std::vector<FunctionInfo> out;
  for (const FunctionEntry* e : registry_.entries()) {
    if (!e->live() || e->versions.empty()) continue;
    const FunctionRecord& newest = *e->versions.back();
    FunctionInfo info;
    info.name = e->name;
    info.config = newest.config;
    info.typed = newest.is_typed();
    for (const FunctionRecord* r : e->versions) info.versions.push_back(r->version);
    for (const auto& [q, route] : e->routes) {
      if (route->is_alias && route->primary.load() != nullptr) info.aliases.push_back(q);
    }
    std::sort(info.aliases.begin(), info.aliases.end());
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(),
            [](const FunctionInfo& a, const FunctionInfo& b) { return a.name < b.name; });
  return out;
}

}  // namespace ember::detail
