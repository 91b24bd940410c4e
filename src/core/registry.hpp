// registry.hpp — the functions of one engine: versions, the names that route to them, aliases.
//
// Three kinds of object, after Lambda's model:
//  - FunctionRecord: one published version of a function (its handler and config). Immutable
//    once published (counters aside). Registered C++ functions have one, "$LATEST"; every
//    plugin load publishes a numbered one ("1", "2", ...).
//  - Route: a name a caller resolves — "fn" ($LATEST), "fn:3" (a version), "fn:live" (an
//    alias) — and the version(s) it currently leads to. A FunctionHandle is a Route*, so a
//    handle resolved once follows deploys: a reload re-points "fn" atomically.
//  - FunctionEntry: one function name's routes, live versions and concurrency (reserved
//    concurrency belongs to the function, not to a version, as in Lambda).
//
// Routes and entries live as long as the engine (handles are plain pointers to routes).
// Records live as long as the engine too: an invoker may have read a record from a route an
// instant before the route moved on, and must still be able to look at it (it then backs off;
// see EngineCore::pin). The code behind a record (a plugin module) is unloaded as soon as no
// route leads to it and no invocation pins it. Lookups are lock-free (NameTable); writers are
// serialised by the engine's config mutex.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/concurrency_gate.hpp"
#include "core/name_table.hpp"
#include "core/pins.hpp"
#include "core/stats.hpp"
#include "ember/function.hpp"
#include "ember/options.hpp"
#include "env/function_env.hpp"

namespace ember::detail {

class EngineCore;
struct FunctionEntry;

// The code a plugin version runs: pinned by each of its invocations. Implemented by the
// plugin module (src/plugin/); core only counts.
struct CodeOwner {
  virtual ~CodeOwner() = default;
};

struct FunctionRecord {
  EngineCore* owner = nullptr;
  FunctionEntry* entry = nullptr;
  std::string name;
  std::string version = "$LATEST";
  FunctionConfig config;
  std::int64_t timeout_ns = 0;
  std::int64_t max_queue_wait_ns = 0;
  std::size_t stack_size = 0;       // StackPool::round_size'd
  BytesHandler bytes;               // set for bytes handlers
  TypedHandler typed;               // set (typed.call) for typed handlers
  ConcurrencyGate* gate = nullptr;  // the entry's reserved gate or the engine's unreserved one
  std::atomic<int> queued{0};       // async invokes waiting for a slot
  bool typed_flag = false;          // == static_cast<bool>(typed.call)
  // The version's instances, for a function with a Lifecycle (a plugin function with init);
  // null for a stateless one, which then skips every step of the environment.
  FunctionEnv* env = nullptr;
  std::unique_ptr<FunctionEnv> env_owned;
  // Plugin versions: each invocation pins the record (pins) so that its module stays loaded
  // until the last one returns. Null for registered C++ functions (nothing to pin).
  CodeOwner* code = nullptr;
  std::unique_ptr<PinCounter> pins;   // set with `code`
  std::atomic<bool> retiring{false};  // no route leads here any more; the unloader waits
  FunctionStats* stats = nullptr;     // the function's metrics (owned by its entry)
  // Set when a freshly initialised version is published; its first invocation clears it and
  // is the cold start, reporting init_ns (the version's init, 0 if it has none).
  std::atomic<bool> cold{false};
  std::int64_t init_ns = 0;
  [[nodiscard]] bool is_typed() const noexcept { return typed_flag; }
};

struct Route {
  EngineCore* owner = nullptr;
  FunctionEntry* entry = nullptr;
  std::string name;       // the key: "fn", "fn:3", "fn:live"
  std::string qualifier;  // "", "3", "live"
  bool is_alias = false;
  // Where invokes go. Null: nowhere now (unloaded, or an alias deleted); an invoke fails
  // with kNotFound. With a secondary, a share of invokes (secondary_share / 2^32, so 2^32 is
  // all of them) goes there.
  std::atomic<FunctionRecord*> primary{nullptr};
  std::atomic<FunctionRecord*> secondary{nullptr};
  std::atomic<std::uint64_t> secondary_share{0};

  // The version this invoke goes to (weighted pick between two for a split alias).
  [[nodiscard]] FunctionRecord* pick() const noexcept;
  // True if an invoke may still be routed to `r` (the check after pinning).
  [[nodiscard]] bool leads_to(const FunctionRecord* r) const noexcept {
    return primary.load(std::memory_order_seq_cst) == r ||
           secondary.load(std::memory_order_seq_cst) == r;
  }
};

struct FunctionEntry {
  std::string name;
  Route* latest = nullptr;                          // "fn": the newest version
  absl::flat_hash_map<std::string, Route*> routes;  // "3", "live" -> route (every one made)
  std::vector<FunctionRecord*> versions;            // live versions, oldest first
  const void* deployer = nullptr;  // the plugin that owns the name now (null: registered/none)
  bool registered = false;         // a C++ registration (never unloaded)
  int next_version = 1;
  std::int64_t reserved = 0;                  // reserved concurrency (0: unreserved pool)
  std::unique_ptr<ConcurrencyGate> own_gate;  // made on first reservation, kept
  std::unique_ptr<FunctionStats> stats = std::make_unique<FunctionStats>();  // all versions
  [[nodiscard]] bool live() const noexcept { return registered || !versions.empty(); }
};

class Registry final {
 public:
  // The route of that exact key ("fn", "fn:3", "fn:live"), or nullptr. Lock-free.
  [[nodiscard]] Route* find(std::string_view key) const noexcept { return by_name_.find(key); }

  // Writers, serialised by the caller (EngineCore::config_mu_).
  [[nodiscard]] FunctionEntry* entry(std::string_view name) const;
  FunctionEntry* make_entry(std::string_view name, EngineCore* owner);
  // The route "name:qualifier" of `entry` (qualifier "" = the latest route), made on demand.
  Route* route(FunctionEntry& entry, std::string_view qualifier, EngineCore* owner);
  FunctionRecord* adopt(std::unique_ptr<FunctionRecord> record);
  [[nodiscard]] std::vector<FunctionEntry*> entries() const;

 private:
  NameTable<Route> by_name_;  // lock-free reads
  absl::flat_hash_map<std::string, std::unique_ptr<FunctionEntry>> entries_;
  std::vector<std::unique_ptr<Route>> routes_;
  std::vector<std::unique_ptr<FunctionRecord>> records_;
};

}  // namespace ember::detail
