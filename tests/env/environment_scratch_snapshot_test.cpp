// Execution environments: scratch directories (FunctionConfig::scratch_dir: one private
// directory per instance under EngineOptions::scratch_root, seen by init and the handler,
// measured in REPORT lines, removed when the instance is shut down) and snapshot start
// (FunctionConfig::snapshot_start: init once at registration, cold starts clone it).
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace ember::testing {
namespace {

constexpr std::int64_t kMs = 1'000'000;  // nanoseconds

// What init and clone made: the scratch directory init saw, and data a clone copies.
struct Box {
  std::uint64_t id = 0;
  std::string init_scratch;
  std::vector<int> data;
  const Box* cloned_from = nullptr;
};

class Gate {
 public:
  void arrive() {
    started_.fetch_add(1);
    changed_.notify();
    release_.wait();
  }
  void wait_started(int n) {
    changed_.wait([&] { return started_.load() >= n; });
  }
  void release() { release_.set(); }

 private:
  std::atomic<int> started_{0};
  Condition changed_;
  Event release_;
};

class Reports {
 public:
  LogSink sink() {
    return [this](const LogRecord& r) {
      if (r.kind != LogKind::kReport || r.report == nullptr) return;
      std::lock_guard<std::mutex> lock(mu_);
      all_.push_back(*r.report);
    };
  }
  std::vector<InvocationReport> all() {
    std::lock_guard<std::mutex> lock(mu_);
    return all_;
  }

 private:
  std::mutex mu_;
  std::vector<InvocationReport> all_;
};

template <typename Pred>
bool eventually(Pred pred) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::mutex mu;
  std::condition_variable cv;
  std::unique_lock<std::mutex> lock(mu);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    cv.wait_for(lock, std::chrono::milliseconds(1));
  }
  return true;
}

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0;
}

// An engine on a ManualClock whose scratch root is a fresh mkdtemp directory, and a Lifecycle
// over Box with counted hooks. Init puts {1, 2, 3} in data; clone copies it.
class EnvScratchSnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && tmp[0] == '/' ? tmp : "/tmp") + "/ember-envtest-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  void TearDown() override {
    engine_.reset();
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  Engine& engine() {
    if (!engine_) {
      EngineOptions o;
      o.workers = 2;
      o.clock = &clock_;
      o.log_sink = reports_.sink();
      o.scratch_root = root_;
      engine_ = std::make_unique<Engine>(o);
    }
    return *engine_;
  }
  Lifecycle lifecycle() {
    Lifecycle l;
    l.init = [this](InitContext& ctx) -> Result<void*> {
      inits_.fetch_add(1);
      if (fail_init_) return fail(ErrorCode::kInternal, "snapshot refused");
      auto* box = new Box;
      box->id = ctx.instance_id();
      box->init_scratch = std::string(ctx.scratch_dir());
      box->data = {1, 2, 3};
      return static_cast<void*>(box);
    };
    l.clone = [this](const void* snapshot, InitContext& ctx) -> Result<void*> {
      clones_.fetch_add(1);
      if (clone_takes_ > absl::ZeroDuration()) clock_.advance(clone_takes_);
      if (fail_clone_) return fail(ErrorCode::kInternal, "clone refused");
      const auto* from = static_cast<const Box*>(snapshot);
      auto* box = new Box(*from);
      box->id = ctx.instance_id();
      box->init_scratch = std::string(ctx.scratch_dir());
      box->cloned_from = from;
      return static_cast<void*>(box);
    };
    l.shutdown = [this](void* state) {
      shutdowns_.fetch_add(1);
      delete static_cast<Box*>(state);
    };
    l.state_type = &typeid(Box);
    return l;
  }
  // Payload "block" waits on gate_; "write:<n>" appends n bytes to a file in the scratch
  // directory. Answers the scratch directory.
  BytesHandler handler() {
    return [this](Context& ctx, std::string_view in) -> Result<std::string> {
      Box* box = ctx.state<Box>();
      if (box == nullptr) return fail(ErrorCode::kInternal, "no state");
      if (box->init_scratch != ctx.scratch_dir())
        return fail(ErrorCode::kInternal, "init and handler see different directories");
      if (in == "block") gate_.arrive();
      if (in.starts_with("write:")) {
        std::ofstream f(std::string(ctx.scratch_dir()) + "/data.bin",
                        std::ios::binary | std::ios::app);
        f << std::string(std::stoul(std::string(in.substr(6))), 'x');
        if (!f) return fail(ErrorCode::kInternal, "write failed");
      }
      return std::string(ctx.scratch_dir());
    };
  }
  FunctionHandle add(std::string_view name, FunctionConfig config) {
    auto fn = engine().register_function(name, config, lifecycle(), handler());
    EXPECT_TRUE(fn.has_value()) << (fn ? "" : fn.error().message);
    return fn.value_or(FunctionHandle{});
  }
  InstanceStats stats(std::string_view name) {
    auto s = engine().instance_stats(name);
    EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message);
    return s.value_or(InstanceStats{});
  }

  std::string root_;
  std::atomic<int> inits_{0}, clones_{0}, shutdowns_{0};
  bool fail_init_ = false, fail_clone_ = false;
  absl::Duration clone_takes_;
  Gate gate_;
  ManualClock clock_;
  Reports reports_;
  std::unique_ptr<Engine> engine_;  // last: destroyed first
};

// ---- scratch directories ----

TEST_F(EnvScratchSnapshotTest, ScratchDirIsAPrivateDirectoryUnderTheRoot) {
  auto fn = add("scratch.one", {.scratch_dir = true});
  std::uint64_t id = 0;
  auto idf = engine().register_function("scratch.id", {.scratch_dir = true}, lifecycle(),
                                        [&](Context& ctx, std::string_view) -> Result<std::string> {
                                          id = ctx.instance_id();
                                          return std::string(ctx.scratch_dir());
                                        });
  ASSERT_TRUE(idf);
  auto dir = engine().invoke(fn, "");
  ASSERT_TRUE(dir) << dir.error().message;
  ASSERT_FALSE(dir->empty());
  EXPECT_EQ(dir->rfind(root_ + "/", 0), 0u) << *dir << " not under " << root_;
  EXPECT_TRUE(is_dir(*dir));
  EXPECT_EQ(mode_of(*dir), 0700u);
  auto named = engine().invoke(*idf, "");
  ASSERT_TRUE(named);
  EXPECT_EQ(*named, root_ + "/scratch.id-" + std::to_string(id));
  auto again = engine().invoke(fn, "");
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *dir) << "a warm instance keeps its directory";
}

TEST_F(EnvScratchSnapshotTest, EachInstanceHasItsOwnScratchDir) {
  auto fn = add("scratch.two", {.timeout = absl::Minutes(1), .scratch_dir = true});
  Result<std::string> held;
  std::thread holder([&] { held = engine().invoke(fn, "block"); });
  gate_.wait_started(1);
  auto other = engine().invoke(fn, "");
  gate_.release();
  holder.join();
  ASSERT_TRUE(held && other);
  EXPECT_NE(*held, *other);
  EXPECT_TRUE(is_dir(*held));
  EXPECT_TRUE(is_dir(*other));
}

TEST_F(EnvScratchSnapshotTest, ReportCountsTheBytesInTheScratchDir) {
  auto fn = add("scratch.bytes", {.report_logs = true, .scratch_dir = true});
  ASSERT_TRUE(engine().invoke(fn, "write:1000"));
  ASSERT_TRUE(engine().invoke(fn, "write:500"));
  const auto reports = reports_.all();
  ASSERT_EQ(reports.size(), 2u);
  ASSERT_TRUE(reports[0].scratch_used_bytes.has_value());
  EXPECT_EQ(*reports[0].scratch_used_bytes, 1000);
  ASSERT_TRUE(reports[1].scratch_used_bytes.has_value());
  EXPECT_EQ(*reports[1].scratch_used_bytes, 1500) << "the directory lives with the instance";
  engine().shutdown();
  EXPECT_EQ(stats("scratch.bytes").scratch_bytes_max, 1500u);
}

TEST_F(EnvScratchSnapshotTest, ScratchDirIsRemovedWhenItsInstanceIsReaped) {
  auto fn = add("scratch.reap", {.idle_ttl = absl::Minutes(1), .scratch_dir = true});
  auto dir = engine().invoke(fn, "write:10");
  ASSERT_TRUE(dir);
  ASSERT_TRUE(is_dir(*dir));
  clock_.advance(absl::Minutes(1));
  ASSERT_TRUE(eventually(
      [&] { return stats("scratch.reap").reaped == 1 && !std::filesystem::exists(*dir); }));
  EXPECT_FALSE(std::filesystem::exists(*dir));
  EXPECT_EQ(shutdowns_.load(), 1);
}

TEST_F(EnvScratchSnapshotTest, ScratchDirIsRemovedWhenItsInstanceIsDiscarded) {
  auto fn =
      engine().register_function("scratch.throw", {.scratch_dir = true}, lifecycle(),
                                 [](Context& ctx, std::string_view in) -> Result<std::string> {
                                   if (in == "throw")
                                     throw std::runtime_error(std::string(ctx.scratch_dir()));
                                   return std::string(ctx.scratch_dir());
                                 });
  ASSERT_TRUE(fn);
  auto dir = engine().invoke(*fn, "");
  ASSERT_TRUE(dir);
  ASSERT_FALSE(engine().invoke(*fn, "throw"));
  EXPECT_FALSE(std::filesystem::exists(*dir));
}

TEST_F(EnvScratchSnapshotTest, ScratchDirsAreRemovedAtEngineShutdown) {
  auto fn = add("scratch.end",
                {.reserved_concurrency = 2, .provisioned_concurrency = 1, .scratch_dir = true});
  auto dir = engine().invoke(fn, "write:100");
  ASSERT_TRUE(dir);
  ASSERT_TRUE(is_dir(*dir));
  engine().shutdown();
  EXPECT_FALSE(std::filesystem::exists(*dir));
  EXPECT_EQ(shutdowns_.load(), 1);
  engine_.reset();
  EXPECT_FALSE(std::filesystem::exists(root_)) << "the root is removed once it is empty";
}

TEST_F(EnvScratchSnapshotTest, NoScratchDirUnlessAskedFor) {
  auto fn = add("scratch.none", {});
  auto dir = engine().invoke(fn, "");
  ASSERT_TRUE(dir) << dir.error().message;  // the handler also checked init saw "" too
  EXPECT_EQ(*dir, "");
  EXPECT_TRUE(std::filesystem::is_empty(root_));
}

TEST_F(EnvScratchSnapshotTest, ScratchDirOfAFailedInitIsRemoved) {
  std::string seen;
  Lifecycle l = lifecycle();
  l.init = [&](InitContext& ctx) -> Result<void*> {
    seen = std::string(ctx.scratch_dir());
    if (!is_dir(seen)) return fail(ErrorCode::kInternal, "no directory before init");
    return fail(ErrorCode::kInternal, "init refused");
  };
  auto fn = engine().register_function("scratch.initfail", {.scratch_dir = true}, std::move(l),
                                       handler());
  ASSERT_TRUE(fn);
  auto out = engine().invoke(*fn, "");
  ASSERT_FALSE(out);
  EXPECT_TRUE(mentions(out.error(), "init refused")) << out.error().message;
  ASSERT_FALSE(seen.empty());
  EXPECT_FALSE(std::filesystem::exists(seen));
}

// ---- snapshot start ----

TEST_F(EnvScratchSnapshotTest, SnapshotInitRunsOnceAtRegistration) {
  (void)add("snap.once", {.snapshot_start = true});
  EXPECT_EQ(inits_.load(), 1);
  EXPECT_EQ(clones_.load(), 0);
  const InstanceStats s = stats("snap.once");
  EXPECT_EQ(s.instances, 0) << "the snapshot serves no invocation";
  EXPECT_EQ(s.cold_starts, 0u);
}

TEST_F(EnvScratchSnapshotTest, ColdStartsCloneTheSnapshot) {
  std::atomic<const Box*> snapshot{nullptr};
  auto fn = engine().register_function(
      "snap.clone", {.timeout = absl::Minutes(1), .snapshot_start = true}, lifecycle(),
      [&](Context& ctx, std::string_view in) -> Result<std::string> {
        Box* box = ctx.state<Box>();
        if (box == nullptr || box->cloned_from == nullptr)
          return fail(ErrorCode::kInternal, "not a clone");
        snapshot = box->cloned_from;
        if (box->data != std::vector<int>{1, 2, 3})
          return fail(ErrorCode::kInternal, "data not copied");
        box->data.push_back(4);  // this instance's own copy
        if (in == "block") gate_.arrive();
        return std::string(ctx.cold_start() ? "cold" : "warm");
      });
  ASSERT_TRUE(fn) << fn.error().message;
  std::vector<Result<std::string>> out(3);
  std::vector<std::thread> callers;
  for (int i = 0; i < 3; ++i)
    callers.emplace_back([&, i] { out[i] = engine().invoke(*fn, "block"); });
  gate_.wait_started(3);
  gate_.release();
  for (auto& t : callers) t.join();
  for (const auto& r : out) {
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r, "cold");
  }
  EXPECT_EQ(inits_.load(), 1);
  EXPECT_EQ(clones_.load(), 3);
  ASSERT_NE(snapshot.load(), nullptr);
  EXPECT_EQ(snapshot.load()->data, (std::vector<int>{1, 2, 3}))
      << "clones do not touch the snapshot";
  const InstanceStats s = stats("snap.clone");
  EXPECT_EQ(s.snapshot_restores, 3u);
  EXPECT_EQ(s.cold_starts, 3u);
  EXPECT_EQ(s.instances, 3);
  EXPECT_EQ(engine().metrics().function("snap.clone")->cold_starts, 3u);
  engine_.reset();
  EXPECT_EQ(shutdowns_.load(), 4) << "three instances and the snapshot";
}

TEST_F(EnvScratchSnapshotTest, ReportOfARestoreCarriesRestoreDuration) {
  clone_takes_ = absl::Milliseconds(30);
  auto fn = add("snap.report", {.report_logs = true, .snapshot_start = true});
  ASSERT_TRUE(engine().invoke(fn, ""));
  ASSERT_TRUE(engine().invoke(fn, ""));
  const auto reports = reports_.all();
  ASSERT_EQ(reports.size(), 2u);
  ASSERT_TRUE(reports[0].restore_duration_ns.has_value());
  EXPECT_EQ(*reports[0].restore_duration_ns, 30 * kMs);
  EXPECT_FALSE(reports[0].init_duration_ns.has_value());
  EXPECT_FALSE(reports[1].restore_duration_ns.has_value());
  EXPECT_FALSE(reports[1].init_duration_ns.has_value());
  const MetricsSnapshot m = engine().metrics();
  EXPECT_EQ(m.function("snap.report")->init_duration.count, 1u) << "one sample per cold start";
}

TEST_F(EnvScratchSnapshotTest, SnapshotStartWithoutCloneIsRefused) {
  struct Pinned {
    Pinned() = default;
    Pinned(const Pinned&) = delete;
    std::atomic<int> n{0};
  };
  Lifecycle l = lifecycle_for<Pinned>();
  ASSERT_FALSE(static_cast<bool>(l.clone)) << "lifecycle_for gives no clone to a non-copyable";
  auto fn = engine().register_function("snap.noclone", {.snapshot_start = true}, std::move(l),
                                       echo_handler());
  ASSERT_FALSE(fn);
  EXPECT_EQ(fn.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(mentions(fn.error(), "snapshot_start")) << fn.error().message;
  EXPECT_EQ(engine().function("snap.noclone").error().code, ErrorCode::kNotFound);
}

TEST_F(EnvScratchSnapshotTest, LifecycleForClonesACopyableState) {
  struct Tally {
    int n = 41;
  };
  auto fn =
      engine().register_function("snap.tally", {.snapshot_start = true}, lifecycle_for<Tally>(),
                                 [](Context& ctx, std::string_view) -> Result<std::string> {
                                   Tally* t = ctx.state<Tally>();
                                   if (t == nullptr) return fail(ErrorCode::kInternal, "no state");
                                   return std::to_string(++t->n);
                                 });
  ASSERT_TRUE(fn) << fn.error().message;
  EXPECT_EQ(engine().invoke(*fn, "").value(), "42");
  EXPECT_EQ(engine().invoke(*fn, "").value(), "43");
  EXPECT_EQ(stats("snap.tally").snapshot_restores, 1u);
}

TEST_F(EnvScratchSnapshotTest, SnapshotInitFailureRegistersNothing) {
  fail_init_ = true;
  auto fn =
      engine().register_function("snap.broken", {.snapshot_start = true}, lifecycle(), handler());
  ASSERT_FALSE(fn);
  EXPECT_EQ(fn.error().code, ErrorCode::kInitFailed);
  EXPECT_TRUE(mentions(fn.error(), "snap.broken")) << fn.error().message;
  EXPECT_EQ(engine().function("snap.broken").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(clones_.load(), 0);
  EXPECT_EQ(shutdowns_.load(), 0);
}

TEST_F(EnvScratchSnapshotTest, CloneFailureFailsTheInvocationWithInitFailed) {
  fail_clone_ = true;
  auto fn = add("snap.badclone", {.snapshot_start = true});
  auto out = engine().invoke(fn, "");
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kInitFailed);
  EXPECT_TRUE(mentions(out.error(), "clone refused")) << out.error().message;
  const InstanceStats s = stats("snap.badclone");
  EXPECT_EQ(s.init_failures, 1u);
  EXPECT_EQ(s.instances, 0);
  EXPECT_EQ(s.snapshot_restores, 0u);
  EXPECT_EQ(inits_.load(), 1);
}

TEST_F(EnvScratchSnapshotTest, CloneIsHeldToInitTimeout) {
  clone_takes_ = absl::Seconds(3);
  auto fn = add("snap.slowclone", {.init_timeout = absl::Seconds(2), .snapshot_start = true});
  auto out = engine().invoke(fn, "");
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kInitFailed);
  EXPECT_TRUE(mentions(out.error(), "init_timeout")) << out.error().message;
  EXPECT_EQ(shutdowns_.load(), 1) << "the late clone was released";
  EXPECT_EQ(stats("snap.slowclone").instances, 0);
  EXPECT_EQ(stats("snap.slowclone").init_failures, 1u);
}

TEST_F(EnvScratchSnapshotTest, SnapshotHasNoScratchDirButItsClonesDo) {
  auto fn = engine().register_function(
      "snap.scratch", {.snapshot_start = true, .scratch_dir = true}, lifecycle(),
      [](Context& ctx, std::string_view) -> Result<std::string> {
        const Box* box = ctx.state<Box>();
        if (box == nullptr || box->cloned_from == nullptr)
          return fail(ErrorCode::kInternal, "not a clone");
        return box->cloned_from->init_scratch + "|" + std::string(ctx.scratch_dir());
      });
  ASSERT_TRUE(fn) << fn.error().message;
  auto out = engine().invoke(*fn, "");
  ASSERT_TRUE(out) << out.error().message;
  const std::string snap_dir = out->substr(0, out->find('|'));
  const std::string own_dir = out->substr(out->find('|') + 1);
  EXPECT_EQ(snap_dir, "");
  EXPECT_TRUE(is_dir(own_dir)) << own_dir;
}

}  // namespace
}  // namespace ember::testing
