// What an engine can tell about code without running it, and about what it runs:
// Engine::inspect_plugin (a plugin or layer file's descriptor, read without init, layers or
// publication, so `ember list` works on a plugin whose layer is absent) and Engine::functions()
// (every live function with its config, versions, aliases and deploying plugin, for `ember
// list`-like views and the HTTP gateway's /functions). Also ember::function_error on the
// errors plugins produce.
#include <string>
#include <string_view>
#include <vector>

#include "plugin_test_support.hpp"

namespace ember::testing {
namespace {

const PluginManifest::Function* find_function(const PluginManifest& m, std::string_view name) {
  for (const auto& f : m.functions) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

const FunctionInfo* find_info(const std::vector<FunctionInfo>& list, std::string_view name) {
  for (const auto& f : list) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

class CatalogTest : public EngineTest {
 protected:
  // The engine shows no trace of an inspection: no plugin, layer or function, no failure.
  void expect_untouched() {
    EXPECT_TRUE(engine().plugins().empty());
    EXPECT_TRUE(engine().functions().empty());
    const EngineStats s = engine().stats();
    EXPECT_EQ(s.plugins_loaded, 0);
    EXPECT_EQ(s.layers_loaded, 0);
    EXPECT_EQ(s.plugin_load_failures, 0u);
    EXPECT_TRUE(mapped_hello_modules().empty());
  }
};

TEST_P(CatalogTest, InspectReadsAPluginWithoutLoadingIt) {
  const std::string path = plugin_file("libhello.so");
  auto m = engine().inspect_plugin(path);
  ASSERT_TRUE(ok(m));
  EXPECT_EQ(m->kind, PluginManifest::Kind::kPlugin);
  EXPECT_EQ(m->name, "hello");
  EXPECT_EQ(m->version, "1.0.0");
  EXPECT_EQ(m->path, path);
  const auto* greet = find_function(*m, "hello.greet");
  ASSERT_NE(greet, nullptr);
  EXPECT_EQ(greet->config.timeout, FunctionConfig{}.timeout);
  EXPECT_FALSE(greet->has_init);
  EXPECT_TRUE(m->layers.empty());
  EXPECT_TRUE(m->services.empty());
  expect_untouched();
  EXPECT_EQ(code_of(engine().function("hello.greet")), "NotFound");
  // The same file loads afterwards, with the functions the manifest listed.
  auto info = engine().load_plugin(path);
  ASSERT_TRUE(ok(info));
  EXPECT_EQ(info->functions.size(), m->functions.size());
}

TEST_P(CatalogTest, InspectDoesNotRunInitAndAppliesTheDeployersOptions) {
  auto m = engine().inspect_plugin(plugin_file("libsession.so"), {.report_logs = true});
  ASSERT_TRUE(ok(m));
  const auto* count = find_function(*m, "session.count");
  ASSERT_NE(count, nullptr);
  EXPECT_TRUE(count->has_init);
  EXPECT_TRUE(count->has_shutdown);
  EXPECT_TRUE(count->config.report_logs);
  EXPECT_FALSE(logs_.contains("session instance up"));  // what session's init logs
  // A plugin whose init fails inspects fine: init is not run.
  auto fails = engine().inspect_plugin(plugin_file("libfixture_init_fails.so"));
  ASSERT_TRUE(ok(fails));
  EXPECT_TRUE(find_function(*fails, "init.fails") != nullptr);
  expect_untouched();
}

TEST_P(CatalogTest, InspectListsRequiredLayersEvenWhenTheyAreAbsent) {
  auto inc = engine().inspect_plugin(plugin_file("libcounter_inc.so"));
  ASSERT_TRUE(ok(inc));
  ASSERT_EQ(inc->layers.size(), 1u);
  EXPECT_EQ(inc->layers[0].name, "counter");
  EXPECT_EQ(inc->layers[0].constraint, "^1.0");
  // libfixture_missing_layer.so requires "nope", which exists nowhere: load refuses it,
  // inspection reports the requirement.
  auto missing = engine().inspect_plugin(plugin_file("libfixture_missing_layer.so"));
  ASSERT_TRUE(ok(missing));
  ASSERT_EQ(missing->layers.size(), 1u);
  EXPECT_EQ(missing->layers[0].name, "nope");
  expect_untouched();
}

TEST_P(CatalogTest, InspectReadsALayer) {
  auto m = engine().inspect_plugin(plugin_file("libcounter.so"));
  ASSERT_TRUE(ok(m));
  EXPECT_EQ(m->kind, PluginManifest::Kind::kLayer);
  EXPECT_EQ(m->name, "counter");
  EXPECT_EQ(m->version, "1.2.0");
  EXPECT_FALSE(m->services.empty());
  EXPECT_TRUE(m->functions.empty());
  expect_untouched();
}

TEST_P(CatalogTest, InspectRefusesBadFilesNamingThem) {
  ScratchDir dir;
  struct Case {
    std::string path;
    std::string_view code;
    std::string_view needle;
  };
  const std::vector<Case> cases = {
      {dir.file("absent.so"), "NotFound", "absent.so"},
      {dir.write("text.so", "not an ELF object"), "PluginInvalid", "text.so"},
      {plugin_file("libfixture_null_handler.so"), "PluginInvalid", "'handler' is NULL"},
      {plugin_file("libfixture_abi_v2.so"), "PluginInvalid", "ABI version"},
      {plugin_file("libfixture_no_entry.so"), "PluginInvalid", "no entry symbol"},
      {plugin_file("libbadlayer.so"), "PluginInvalid", "ABI version"},
  };
  for (const Case& c : cases) {
    auto m = engine().inspect_plugin(c.path);
    ASSERT_FALSE(m.has_value()) << c.path;
    EXPECT_EQ(code_of(m), c.code) << m.error().message;
    EXPECT_TRUE(has(m.error().message, c.needle)) << m.error().message;
    EXPECT_TRUE(has(m.error().message, std::filesystem::path(c.path).filename().string()))
        << m.error().message;
  }
  expect_untouched();
}

TEST_P(CatalogTest, FunctionsListsEveryLiveFunctionWithItsConfigAndDeployer) {
  add("zeta", [](Context&, std::string_view in) -> Result<std::string> { return std::string(in); },
      {.timeout = absl::Milliseconds(250), .memory_mb = 512, .reserved_concurrency = 3});
  ASSERT_TRUE(ok(engine().register_function<int, int>(
      "alpha", {}, [](Context&, const int& x) -> Result<int> { return x + 1; })));
  ASSERT_TRUE(ok(engine().load_plugin(plugin_file("libhello.so"))));
  ASSERT_TRUE(ok(engine().set_alias("hello.greet", "live", {.version = "1"})));
  ASSERT_TRUE(ok(engine().reload_plugin("hello")));

  const std::vector<FunctionInfo> list = engine().functions();
  std::vector<std::string> names;
  for (const auto& f : list) names.push_back(f.name);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));

  const FunctionInfo* zeta = find_info(list, "zeta");
  ASSERT_NE(zeta, nullptr);
  EXPECT_EQ(zeta->plugin, "");
  EXPECT_EQ(zeta->config.timeout, absl::Milliseconds(250));
  EXPECT_EQ(zeta->config.memory_mb, 512);
  EXPECT_EQ(zeta->config.reserved_concurrency, 3);
  EXPECT_EQ(zeta->versions, std::vector<std::string>{"$LATEST"});
  EXPECT_FALSE(zeta->typed);

  const FunctionInfo* alpha = find_info(list, "alpha");
  ASSERT_NE(alpha, nullptr);
  EXPECT_TRUE(alpha->typed);

  const FunctionInfo* greet = find_info(list, "hello.greet");
  ASSERT_NE(greet, nullptr);
  EXPECT_EQ(greet->plugin, "hello");
  EXPECT_EQ(greet->versions, (std::vector<std::string>{"1", "2"}));  // the alias keeps 1
  EXPECT_EQ(greet->aliases, std::vector<std::string>{"live"});
  const FunctionInfo* tag = find_info(list, "hello.tag");
  ASSERT_NE(tag, nullptr);
  EXPECT_EQ(tag->versions, std::vector<std::string>{"2"});  // version 1 retired on reload

  // Unloaded plugins' functions leave the list.
  ASSERT_TRUE(ok(engine().unload_plugin("hello")));
  EXPECT_EQ(find_info(engine().functions(), "hello.greet"), nullptr);
  EXPECT_EQ(engine().functions().size(), 2u);
}

TEST_P(CatalogTest, FunctionErrorOfAPluginsFailureIsItsTypeAndMessage) {
  ASSERT_TRUE(ok(engine().load_plugin(plugin_file("libhello.so"))));
  auto r = engine().invoke("hello.fail", "");
  ASSERT_FALSE(r.has_value());
  const FunctionError e = function_error(r.error());
  EXPECT_EQ(e.type, "ValidationError");
  EXPECT_FALSE(has(e.message, "hello.fail")) << e.message;  // the engine's prefix is gone
  EXPECT_FALSE(e.message.empty());
  EXPECT_EQ(function_error_json(r.error()),
            cat("{\"errorMessage\":\"", e.message, "\",\"errorType\":\"ValidationError\"}"));
}

TEST_P(CatalogTest, OptionsAndShuttingDownSayHowTheEngineRuns) {
  EXPECT_EQ(engine().options().workers, GetParam());
  EXPECT_EQ(engine().options().max_sync_payload, EngineOptions{}.max_sync_payload);
  EXPECT_FALSE(engine().shutting_down());
  engine().shutdown(absl::ZeroDuration());
  EXPECT_TRUE(engine().shutting_down());
  Engine defaulted({.workers = 0, .log_sink = [](const LogRecord&) {}});
  EXPECT_GE(defaulted.options().workers, 1);
}

INSTANTIATE_TEST_SUITE_P(Workers, CatalogTest, EMBER_WORKER_COUNTS);

}  // namespace
}  // namespace ember::testing
