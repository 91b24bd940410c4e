// Layers: one shared object loaded once per engine for every plugin that requires it, whose
// state (the counter layer's count) all those plugins share; unloaded with its last user, and
// loaded fresh when needed again; separate per engine; found through PluginOptions.layer_dirs.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "plugin_test_support.hpp"

namespace ember::testing {
namespace {

const std::string kCounterInc = plugin_file("libcounter_inc.so");
const std::string kCounterRead = plugin_file("libcounter_read.so");
constexpr std::string_view kLayerLoaded = "layer 'counter' 1.2.0 loaded from ";

std::string answer_of(Engine& engine, std::string_view name, const InvokeOptions& options = {}) {
  return describe(engine.invoke(name, "", options));
}

class LayerTest : public EngineTest {
 protected:
  PluginInfo load(const std::string& path, const PluginOptions& options = {}) {
    auto info = engine().load_plugin(path, options);
    EXPECT_TRUE(info.has_value()) << path << ": " << info.error().message;
    return info.value_or(PluginInfo{});
  }
  std::string answer(std::string_view name, const InvokeOptions& options = {}) {
    return answer_of(engine(), name, options);
  }
  std::int64_t layers_loaded() { return engine().stats().layers_loaded; }
  long lines_containing(std::string_view needle) {
    const std::vector<std::string> lines = logs_.lines();
    return std::count_if(lines.begin(), lines.end(),
                         [&](const std::string& l) { return l.find(needle) != std::string::npos; });
  }
};

TEST_P(LayerTest, TwoPluginsShareOneCopyOfTheLayersState) {
  load(kCounterInc);
  load(kCounterRead);
  EXPECT_EQ(layers_loaded(), 1);
  EXPECT_EQ(lines_containing(kLayerLoaded), 1) << "loaded once for both plugins";
  EXPECT_EQ(answer("counter.read"), "0");
  EXPECT_EQ(answer("counter.inc"), "1");
  EXPECT_EQ(answer("counter.inc", {.dispatch = Dispatch::kPool}), "2");
  EXPECT_EQ(answer("counter.inc"), "3");
  EXPECT_EQ(answer("counter.read"), "3");
  EXPECT_EQ(answer("counter.read", {.dispatch = Dispatch::kPool}), "3");
}

TEST_P(LayerTest, LoadReportsTheLayersAPluginUses) {
  const PluginInfo info = load(kCounterInc);
  EXPECT_EQ(info.layers, std::vector<std::string>{"counter 1.2.0"});
  load(kCounterRead);
  const std::vector<PluginInfo> loaded = engine().plugins();
  ASSERT_EQ(loaded.size(), 2u);
  for (const PluginInfo& p : loaded) {
    EXPECT_EQ(p.layers, std::vector<std::string>{"counter 1.2.0"}) << p.name;
  }
}

TEST_P(LayerTest, LayerStaysWhileAUserIsLoadedAndGoesWithTheLast) {
  load(kCounterInc);
  load(kCounterRead);
  ASSERT_EQ(answer("counter.inc"), "1");
  ASSERT_EQ(answer("counter.inc"), "2");

  ASSERT_TRUE(engine().unload_plugin("counter_inc").has_value());
  EXPECT_EQ(layers_loaded(), 1);
  EXPECT_EQ(answer("counter.read"), "2") << "the same copy, state and all";
  EXPECT_EQ(engine().stats().plugins_loaded, 1);

  ASSERT_TRUE(engine().unload_plugin("counter_read").has_value());
  EXPECT_EQ(layers_loaded(), 0);
  EXPECT_EQ(engine().stats().plugins_loaded, 0);
  EXPECT_EQ(engine().stats().modules_pinned, 0u) << "every object was unmapped";
}

TEST_P(LayerTest, LayerLoadedAgainAfterItsLastUserWentStartsFresh) {
  load(kCounterInc);
  ASSERT_EQ(answer("counter.inc"), "1");
  ASSERT_EQ(answer("counter.inc"), "2");
  ASSERT_TRUE(engine().unload_plugin("counter_inc").has_value());
  ASSERT_EQ(layers_loaded(), 0);
  EXPECT_EQ(engine().stats().modules_pinned, 0u);

  // A count that starts at 0 again proves the layer was unmapped and mapped anew.
  load(kCounterRead);
  EXPECT_EQ(layers_loaded(), 1);
  EXPECT_EQ(answer("counter.read"), "0");
  load(kCounterInc);
  EXPECT_EQ(answer("counter.inc"), "1");
  EXPECT_EQ(lines_containing(kLayerLoaded), 2);
}

TEST_P(LayerTest, ServiceTheLayerDoesNotExportIsNullNotACrash) {
  load(kCounterRead);
  EXPECT_EQ(answer("counter.bogus"), "null");
  EXPECT_EQ(answer("counter.bogus", {.dispatch = Dispatch::kPool}), "null");
  EXPECT_EQ(answer("counter.read"), "0");  // and the real service still answers
}

TEST_P(LayerTest, EachEngineHasItsOwnCopyOfTheLayer) {
  Engine other{options()};
  load(kCounterInc);
  ASSERT_TRUE(other.load_plugin(kCounterInc).has_value());
  ASSERT_TRUE(other.load_plugin(kCounterRead).has_value());
  EXPECT_EQ(answer("counter.inc"), "1");
  EXPECT_EQ(answer("counter.inc"), "2");
  EXPECT_EQ(answer_of(other, "counter.read"), "0");
  EXPECT_EQ(answer_of(other, "counter.inc"), "1");
  EXPECT_EQ(answer("counter.inc"), "3");
  EXPECT_EQ(layers_loaded(), 1);
  EXPECT_EQ(other.stats().layers_loaded, 1);
  // Unloading in one engine leaves the other's copy alone.
  ASSERT_TRUE(engine().unload_plugin("counter_inc").has_value());
  EXPECT_EQ(layers_loaded(), 0);
  EXPECT_EQ(answer_of(other, "counter.read"), "1");
}

TEST_P(LayerTest, LayerIsLookedForBesideThePluginByDefault) {
  ScratchDir dir;
  const std::string alone = dir.copy(kCounterInc);
  auto r = engine().load_plugin(alone);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound) << r.error().message;
  for (const std::string& needle :
       {alone, std::string("requires layer 'counter' ^1.0"),
        "no libcounter.so or counter.so in " + dir.path() + " (PluginOptions.layer_dirs)"}) {
    EXPECT_TRUE(mentions(r.error(), needle)) << needle << " in: " << r.error().message;
  }
  EXPECT_EQ(layers_loaded(), 0);
  EXPECT_EQ(engine().stats().plugins_loaded, 0);
  EXPECT_EQ(engine().function("counter.inc").error().code, ErrorCode::kNotFound);
}

TEST_P(LayerTest, LayerDirsSayWhereToLookForLayers) {
  ScratchDir dir;
  const std::string alone = dir.copy(kCounterInc);
  const PluginInfo info = load(alone, {.layer_dirs = {dir.path(), EMBER_PLUGIN_DIR}});
  EXPECT_EQ(info.layers, std::vector<std::string>{"counter 1.2.0"});
  EXPECT_EQ(layers_loaded(), 1);
  EXPECT_EQ(answer("counter.inc"), "1");
  EXPECT_EQ(lines_containing(std::string(kLayerLoaded) + EMBER_PLUGIN_DIR + "/libcounter.so"), 1);
}

TEST_P(LayerTest, MissingLayerErrorListsEveryLayerDir) {
  ScratchDir a, b;
  auto r = engine().load_plugin(kCounterInc, {.layer_dirs = {a.path(), b.path()}});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(mentions(r.error(), "in " + a.path() + ", " + b.path() + " (")) << r.error().message;
  EXPECT_EQ(layers_loaded(), 0);
}

TEST_P(LayerTest, WorldWritableLayerIsRefusedUnlessAllowed) {
  ScratchDir dir;
  const std::string layer = dir.copy(plugin_file("libcounter.so"));
  ASSERT_EQ(::chmod(layer.c_str(), 0666), 0) << std::strerror(errno);
  const std::string plugin = dir.copy(kCounterInc);  // 0644: only the layer is at fault
  auto r = engine().load_plugin(plugin);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << r.error().message;
  EXPECT_TRUE(mentions(r.error(), "layer '" + layer + "': the file is world-writable"))
      << r.error().message;
  EXPECT_EQ(layers_loaded(), 0);
  EXPECT_EQ(engine().stats().plugins_loaded, 0);
  EXPECT_EQ(engine().stats().plugin_load_failures, 1u);

  load(plugin, {.allow_world_writable = true});
  EXPECT_EQ(layers_loaded(), 1);
  EXPECT_EQ(answer("counter.inc"), "1");
  EXPECT_EQ(lines_containing(std::string(kLayerLoaded) + layer), 1);
}

INSTANTIATE_TEST_SUITE_P(Workers, LayerTest, EMBER_WORKER_COUNTS);

}  // namespace
}  // namespace ember::testing
