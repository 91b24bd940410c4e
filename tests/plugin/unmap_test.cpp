// After unloading, a plugin's object must really be gone; one that something pins in memory
// is reported (a log line and EngineStats::modules_pinned), not silently counted as unloaded.
#include <gtest/gtest.h>

#include <string>

#include "ember/ember.hpp"
#include "plugin_test_support.hpp"

namespace ember {
namespace {

using testing::plugin_file;

TEST(PluginUnmapTest, AnUnloadedPluginLeavesNoPinnedModule) {
  testing::LogCapture logs;
  Engine engine({.workers = 1, .log_sink = logs.sink()});
  ASSERT_TRUE(engine.load_plugin(plugin_file("libhello.so")));
  ASSERT_TRUE(engine.unload_plugin("hello"));
  EXPECT_EQ(engine.stats().modules_pinned, 0u);
  EXPECT_FALSE(logs.contains("still mapped"));
}

TEST(PluginUnmapTest, APluginThatPinsItselfIsReportedAfterUnload) {
  testing::LogCapture logs;
  Engine engine({.workers = 1, .log_sink = logs.sink()});
  ASSERT_TRUE(engine.load_plugin(plugin_file("libfixture_pins_itself.so")));
  EXPECT_EQ(engine.invoke("pinned.ok", "").value_or("error"), "ok");
  ASSERT_TRUE(engine.unload_plugin("pinned"));
  EXPECT_EQ(engine.stats().modules_pinned, 1u);
  EXPECT_TRUE(logs.contains("plugin 'pinned'"));
  EXPECT_TRUE(logs.contains("still mapped after dlclose"));
  // It is gone from the engine all the same.
  EXPECT_EQ(engine.function("pinned.ok").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(engine.stats().plugins_loaded, 0);
}

}  // namespace
}  // namespace ember
