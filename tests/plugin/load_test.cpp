// Loading plugins: bad input is refused with a clear error naming the culprit (the file's path,
// and the descriptor field, function or layer at fault), and leaves the engine exactly as it
// was: no plugin, layer or function left behind, the failure counted, and a good plugin still
// loads and answers afterwards. Also the file checks (missing, not an ELF, truncated,
// world-writable), name clashes, and the shadow copy the loader maps instead of the file.
//
// The fixtures are plugins/testing/bad_plugin.c built once per defect (libfixture_<what>.so).
#include <link.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plugin_test_support.hpp"

namespace ember::testing {
namespace {

namespace fs = std::filesystem;

std::string fixture(std::string_view what) {
  return plugin_file("libfixture_" + std::string(what) + ".so");
}
const std::string kHello = plugin_file("libhello.so");

// Objects mapped from files under `dir` (the loader maps shadow copies, named after the file).
std::vector<std::string> mapped_from(const std::string& dir) {
  struct Search {
    const std::string* dir;
    std::vector<std::string> found;
  } search{&dir, {}};
  ::dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) {
        auto* s = static_cast<Search*>(data);
        const std::string_view name = info->dlpi_name != nullptr ? info->dlpi_name : "";
        if (name.substr(0, s->dir->size()) == *s->dir) s->found.emplace_back(name);
        return 0;
      },
      &search);
  return search.found;
}

// What a failed load must leave unchanged.
struct EngineState {
  std::vector<std::string> plugins;
  std::int64_t plugins_loaded = 0;
  std::int64_t layers_loaded = 0;
  std::uint64_t load_failures = 0;
};

EngineState state_of(Engine& engine) {
  EngineState s;
  for (const PluginInfo& p : engine.plugins()) s.plugins.push_back(p.name);
  const EngineStats stats = engine.stats();
  s.plugins_loaded = stats.plugins_loaded;
  s.layers_loaded = stats.layers_loaded;
  s.load_failures = stats.plugin_load_failures;
  return s;
}

class LoadTest : public EngineTest {
 protected:
  // Loads `path`, expects it refused with `code` and a message naming `culprit` (default:
  // `path`) and each of `needles`, then expects the engine as it was: same plugins and layers, one
  // more failure, nothing mapped from the shadow copies the load made (plugin and layers were
  // closed again), none of `declared` (the functions the plugin declares) resolvable, and each of
  // them free to be registered in C++ afterwards (nothing was reserved under their names).
  Error expect_refused(const std::string& path, ErrorCode code,
                       std::initializer_list<std::string_view> needles,
                       std::initializer_list<std::string_view> declared = {},
                       PluginOptions options = {}, std::string_view culprit = {}) {
    ScratchDir shadow;
    if (options.shadow_dir.empty()) options.shadow_dir = shadow.path();
    const EngineState before = state_of(engine());
    auto r = engine().load_plugin(path, options);
    if (r) {
      ADD_FAILURE() << path << " loaded as plugin '" << r->name << "'";
      return Error{};
    }
    const Error e = r.error();
    EXPECT_EQ(e.code, code) << e.code_name() << ": " << e.message;
    if (culprit.empty()) culprit = path;
    EXPECT_TRUE(mentions(e, culprit)) << "the message names the file: " << e.message;
    for (std::string_view needle : needles) {
      EXPECT_TRUE(mentions(e, needle)) << "the message names '" << needle << "': " << e.message;
    }
    const EngineState after = state_of(engine());
    EXPECT_EQ(after.plugins, before.plugins);
    EXPECT_EQ(after.plugins_loaded, before.plugins_loaded);
    EXPECT_EQ(after.layers_loaded, before.layers_loaded);
    EXPECT_EQ(after.load_failures, before.load_failures + 1);
    EXPECT_EQ(mapped_from(options.shadow_dir + "/"), std::vector<std::string>{});
    for (std::string_view fn : declared) {
      auto found = engine().function(fn);
      if (found.has_value()) {
        ADD_FAILURE() << fn << " was left registered";
        continue;
      }
      EXPECT_EQ(found.error().code, ErrorCode::kNotFound) << found.error().message;
      EXPECT_TRUE(engine().register_function(fn, {}, echo_handler()).has_value())
          << fn << " is still taken";
    }
    return e;
  }

  // A good plugin loads and answers after whatever the test did.
  void expect_hello_loads_and_answers() {
    auto info = engine().load_plugin(kHello);
    ASSERT_TRUE(info.has_value()) << info.error().message;
    EXPECT_EQ(info->name, "hello");
    auto r = engine().invoke("hello.greet", "still here");
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_EQ(*r, "hello, still here");
  }
};

// ---- The descriptor ----

TEST_P(LoadTest, AnotherAbiVersionIsRefusedNamingBothVersions) {
  expect_refused(fixture("abi_v2"), ErrorCode::kPluginInvalid,
                 {"built for plugin ABI version 2", "this host speaks ABI version 1"},
                 {"fixture_abi_v2.ok"});
  expect_hello_loads_and_answers();
}

TEST_P(LoadTest, DescriptorSmallerThanTheAbiRequiresIsRefusedNamingBothSizes) {
  expect_refused(fixture("small_struct"), ErrorCode::kPluginInvalid,
                 {"struct_size 8", "56 bytes ABI 1 requires"}, {"fixture_small_struct.ok"});
  expect_hello_loads_and_answers();
}

TEST_P(LoadTest, NullPluginNameIsRefusedNamingTheField) {
  expect_refused(fixture("null_name"), ErrorCode::kPluginInvalid,
                 {"descriptor field 'name' is NULL"}, {"fixture_null_name.ok"});
  expect_hello_loads_and_answers();
}

TEST_P(LoadTest, EmptyFunctionNameIsRefusedNamingTheFunctionSlot) {
  expect_refused(
      fixture("empty_function_name"), ErrorCode::kPluginInvalid,
      {"plugin 'fixture_empty_function_name'", "functions[0]: 'name'", "function name is empty"});
  expect_hello_loads_and_answers();
}

TEST_P(LoadTest, NullHandlerIsRefusedNamingTheFunction) {
  expect_refused(fixture("null_handler"), ErrorCode::kPluginInvalid,
                 {"functions[0]", "'fixture_null_handler.ok'", "'handler' is NULL"},
                 {"fixture_null_handler.ok"});
  expect_hello_loads_and_answers();
}

TEST_P(LoadTest, FunctionDeclaredTwiceIsRefusedNamingIt) {
  // A descriptor error (kPluginInvalid), found while the descriptor is read, naming both slots.
  expect_refused(fixture("duplicate_function"), ErrorCode::kPluginInvalid,
                 {"function 'dup.fn' is declared twice", "functions[1]", "functions[0]"},
                 {"dup.fn"});
  expect_hello_loads_and_answers();
}

TEST_P(LoadTest, BadFunctionConfigIsRefusedNamingTheFieldAndItsRange) {
  expect_refused(fixture("bad_config"), ErrorCode::kInvalidArgument,
                 {"bad.config", "FunctionConfig.memory_mb = 50", "must be 128..10240 (MiB)"},
                 {"bad.config"});
  expect_hello_loads_and_answers();
}

TEST_P(LoadTest, EntryReturningNullIsRefused) {
  expect_refused(fixture("entry_null"), ErrorCode::kPluginInvalid,
                 {"ember_plugin_entry_v1 returned NULL"}, {"fixture_entry_null.ok"});
  expect_hello_loads_and_answers();
}

TEST_P(LoadTest, ObjectWithoutEntrySymbolIsRefusedNamingTheSymbol) {
  expect_refused(fixture("no_entry"), ErrorCode::kPluginInvalid,
                 {"no entry symbol 'ember_plugin_entry_v1'"});
  expect_hello_loads_and_answers();
}

TEST_P(LoadTest, LayerFileGivenAsAPluginIsRefusedSayingItIsALayer) {
  expect_refused(
      plugin_file("libcounter.so"), ErrorCode::kPluginInvalid,
      {"no entry symbol 'ember_plugin_entry_v1'", "it is a layer", "ember_layer_entry_v1"});
  EXPECT_EQ(engine().stats().layers_loaded, 0);
  expect_hello_loads_and_answers();
}

// ---- Function init ----

TEST_P(LoadTest, FailedInitIsRefusedWithTheFunctionAndItsReason) {
  expect_refused(fixture("init_fails"), ErrorCode::kPluginInvalid,
                 {"init of function 'init.fails' failed (1)", "database unreachable"},
                 {"init.fails"});
  expect_hello_loads_and_answers();
}

TEST_P(LoadTest, InitThatThrowsIsRefusedWithTheExceptionTypeAndWhat) {
  expect_refused(fixture("init_throws"), ErrorCode::kPluginInvalid,
                 {"init of function 'init.throws'", "std::runtime_error: config file missing"},
                 {"init.throws"});
  expect_hello_loads_and_answers();
}

// ---- Layers ----

TEST_P(LoadTest, MissingLayerIsNotFoundNamingTheLayerTheFilesAndTheDirectories) {
  expect_refused(fixture("missing_layer"), ErrorCode::kNotFound,
                 {"requires layer 'nope' ^1", "no libnope.so or nope.so in " EMBER_PLUGIN_DIR,
                  "(PluginOptions.layer_dirs)"},
                 {"fixture_missing_layer.ok"});
  expect_hello_loads_and_answers();
}

TEST_P(LoadTest, LayerTooOldIsRefusedAndTheLayerLoadedToCheckItIsUnloadedAgain) {
  ASSERT_EQ(engine().stats().layers_loaded, 0);
  expect_refused(
      fixture("layer_too_old"), ErrorCode::kPluginInvalid,
      {"requires layer 'counter' >=2.0", plugin_file("libcounter.so"), "is version 1.2.0"},
      {"fixture_layer_too_old.ok"});
  EXPECT_EQ(engine().stats().layers_loaded, 0);
  EXPECT_FALSE(logs_.contains("layer 'counter' 1.2.0 loaded"));
  expect_hello_loads_and_answers();
}

TEST_P(LoadTest, LayerTooOldIsRefusedAndTheLoadedLayerKeepsServingItsUsers) {
  ASSERT_TRUE(engine().load_plugin(plugin_file("libcounter_inc.so")).has_value());
  ASSERT_EQ(engine().invoke("counter.inc", "").value_or("failed"), "1");
  expect_refused(fixture("layer_too_old"), ErrorCode::kPluginInvalid,
                 {"requires layer 'counter' >=2.0", "but version 1.2.0 is loaded"},
                 {"fixture_layer_too_old.ok"});
  EXPECT_EQ(engine().stats().layers_loaded, 1);
  // The same copy of the layer, state and all.
  EXPECT_EQ(engine().invoke("counter.inc", "").value_or("failed"), "2");
  expect_hello_loads_and_answers();
}

TEST_P(LoadTest, LayerOfAnotherAbiIsRefusedNamingTheLayerFileAndBothVersions) {
  // The culprit named is the layer's file (the plugin itself is fine).
  const std::string layer = plugin_file("libbadlayer.so");
  expect_refused(fixture("needs_badlayer"), ErrorCode::kPluginInvalid,
                 {"built for plugin ABI version 2; this host speaks ABI version 1"},
                 {"fixture_needs_badlayer.ok"}, {}, "layer '" + layer + "'");
  EXPECT_EQ(engine().stats().layers_loaded, 0);
  expect_hello_loads_and_answers();
}

// ---- Name clashes ----

TEST_P(LoadTest, FunctionOfAnotherPluginIsAlreadyExistsAndTheOwnerKeepsServing) {
  ASSERT_TRUE(engine().load_plugin(kHello).has_value());
  expect_refused(
      fixture("steals_hello"), ErrorCode::kAlreadyExists,
      {"plugin 'thief'", "function 'hello.greet' is already registered", "(by another plugin)"});
  EXPECT_EQ(engine().invoke("hello.greet", "owner").value_or("failed"), "hello, owner");
  EXPECT_EQ(engine().versions("hello.greet").value_or(std::vector<std::string>{}),
            std::vector<std::string>{"1"});
}

TEST_P(LoadTest, FunctionRegisteredInCppIsAlreadyExistsAndTheCppFunctionKeepsServing) {
  add("hello.greet", [](Context&, std::string_view) -> Result<std::string> { return "c++"; });
  expect_refused(kHello, ErrorCode::kAlreadyExists,
                 {"plugin 'hello'", "function 'hello.greet' is already registered (in C++)"},
                 {"hello.tag", "hello.info"});
  EXPECT_EQ(engine().invoke("hello.greet", "").value_or("failed"), "c++");
}

TEST_P(LoadTest, SamePluginTwiceIsAlreadyExistsPointingAtReload) {
  ASSERT_TRUE(engine().load_plugin(kHello).has_value());
  ScratchDir dir;
  const std::string copy = dir.copy(kHello, "libhello.so");
  expect_refused(copy, ErrorCode::kAlreadyExists,
                 {"plugin 'hello'", "is already loaded from " + kHello, "use reload_plugin"});
  EXPECT_EQ(engine().invoke("hello.greet", "first").value_or("failed"), "hello, first");
  EXPECT_EQ(engine().versions("hello.greet").value_or(std::vector<std::string>{}),
            std::vector<std::string>{"1"});
  // The same path again, too.
  auto again = engine().load_plugin(kHello);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kAlreadyExists) << again.error().message;
}

// ---- The file ----

TEST_P(LoadTest, MissingFileIsNotFoundWithTheSystemsReason) {
  ScratchDir dir;
  expect_refused(dir.file("libnothing.so"), ErrorCode::kNotFound, {std::strerror(ENOENT)});
  expect_hello_loads_and_answers();
}

TEST_P(LoadTest, DirectoryIsRefusedAsNotARegularFile) {
  ScratchDir dir;
  expect_refused(dir.path(), ErrorCode::kPluginInvalid, {"not a regular file"});
  expect_hello_loads_and_answers();
}

TEST_P(LoadTest, TextFileIsRefusedAsNotAnElfFile) {
  ScratchDir dir;
  expect_refused(dir.write("libtext.so", "this is not a shared object, just some text\n"),
                 ErrorCode::kPluginInvalid, {"not an ELF file"});
  expect_refused(dir.write("libtiny.so", "EL"), ErrorCode::kPluginInvalid,
                 {"not an ELF file (too short)"});
  expect_hello_loads_and_answers();
}

TEST_P(LoadTest, TruncatedElfHeaderIsRefused) {
  ScratchDir dir;
  expect_refused(dir.copy(kHello, "libhello-40.so", 40), ErrorCode::kPluginInvalid,
                 {"truncated ELF file (40 bytes)"});
  expect_hello_loads_and_answers();
}

// A file cut short after its ELF header (64 bytes: the header alone; 2000: the header and the
// program headers, but not the segments they describe) must be refused before dlopen: glibc
// maps segments that reach past the end of the file and touches them, and the process dies of
// SIGBUS. Each load runs in a child process (a death test that expects a clean exit), so that a
// regression fails this test instead of killing the whole binary.
TEST_P(LoadTest, TruncatedElfFileIsRefusedAndTheProcessSurvives) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // The child process runs this body again up to its death test. It finds the parent's files
  // through the environment instead of making its own, which it could not remove if it crashed;
  // the shadow copies go there too, so the parent removes everything.
  constexpr const char* kInherited = "EMBER_LOAD_TEST_TRUNCATED_DIR";
  const char* inherited = std::getenv(kInherited);
  std::optional<ScratchDir> own;
  if (inherited == nullptr) {
    own.emplace();
    ::setenv(kInherited, own->path().c_str(), 1);
  }
  const std::string dir = inherited != nullptr ? std::string(inherited) : own->path();
  struct Cut {
    std::uintmax_t bytes;
    std::string_view says;
  };
  for (const Cut& c : {Cut{64, "truncated ELF file (64 bytes; its program header table lies past"},
                       Cut{2000, "truncated ELF file (2000 bytes; its segment "}}) {
    SCOPED_TRACE(c.bytes);
    const std::string name = "libhello-" + std::to_string(c.bytes) + ".so";
    const std::string cut = own ? own->copy(kHello, name, c.bytes) : dir + "/" + name;
    EXPECT_EXIT(
        {
          expect_refused(cut, ErrorCode::kPluginInvalid, {c.says}, {}, {.shadow_dir = dir});
          expect_hello_loads_and_answers();
          std::_Exit(::testing::Test::HasFailure() ? 1 : 0);
        },
        ::testing::ExitedWithCode(0), "");
  }
  if (own) ::unsetenv(kInherited);
}

TEST_P(LoadTest, WorldWritableFileIsRefusedUnlessAllowed) {
  ScratchDir dir;
  const std::string copy = dir.copy(kHello, "libhello.so");
  ASSERT_EQ(::chmod(copy.c_str(), 0666), 0) << std::strerror(errno);
  expect_refused(copy, ErrorCode::kInvalidArgument,
                 {"world-writable", "mode 0666", "PluginOptions.allow_world_writable"},
                 {"hello.greet", "hello.tag"});
  // expect_refused registered C++ stand-ins under two of its names: free them again.
  engine_.reset();

  auto info = engine().load_plugin(copy, {.allow_world_writable = true});
  ASSERT_TRUE(info.has_value()) << info.error().message;
  EXPECT_EQ(info->path, copy);
  EXPECT_EQ(engine().invoke("hello.greet", "anyone").value_or("failed"), "hello, anyone");
}

// ---- The shadow copy ----

TEST_P(LoadTest, LoadedPluginKeepsServingAfterItsFileIsDeleted) {
  ScratchDir dir;
  const std::string copy = dir.copy(kHello, "libhello.so");
  auto info = engine().load_plugin(copy);
  ASSERT_TRUE(info.has_value()) << info.error().message;
  ASSERT_TRUE(fs::remove(copy));
  EXPECT_EQ(engine().invoke("hello.greet", "ghost").value_or("failed"), "hello, ghost");
  EXPECT_EQ(engine().invoke("hello.tag", "", {.dispatch = Dispatch::kPool}).value_or("failed"),
            "A");
  ASSERT_EQ(engine().plugins().size(), 1u);
  EXPECT_EQ(engine().plugins()[0].path, copy);  // where it came from, not the shadow copy
}

TEST_P(LoadTest, LoadedPluginKeepsItsCodeWhenItsFileIsReplaced) {
  ScratchDir dir;
  const std::string copy = dir.copy(kHello, "libhello.so");
  ASSERT_TRUE(engine().load_plugin(copy).has_value());
  ASSERT_EQ(engine().invoke("hello.tag", "").value_or("failed"), "A");
  // A build writing the other variant over the file (a new inode: what linkers do).
  ASSERT_TRUE(fs::remove(copy));
  dir.copy(plugin_file("libhello_b.so"), "libhello.so");
  EXPECT_EQ(engine().invoke("hello.tag", "").value_or("failed"), "A");
}

TEST_P(LoadTest, ShadowCopyIsMappedFromTheShadowDirUnlinkedAndUnmappedAtUnload) {
  ScratchDir shadow;
  ASSERT_TRUE(engine().load_plugin(kHello, {.shadow_dir = shadow.path()}).has_value());
  EXPECT_EQ(engine().invoke("hello.greet", "x").value_or("failed"), "hello, x");
  EXPECT_TRUE(fs::is_empty(shadow.path())) << "the copy is unlinked once mapped";
  // What expect_refused relies on: a loaded plugin shows up under the shadow dir.
  const std::vector<std::string> mapped = mapped_from(shadow.path() + "/");
  ASSERT_EQ(mapped.size(), 1u);
  EXPECT_NE(mapped[0].find("libhello.so"), std::string::npos) << mapped[0];
  ASSERT_TRUE(engine().unload_plugin("hello").has_value());
  EXPECT_EQ(mapped_from(shadow.path() + "/"), std::vector<std::string>{});
  EXPECT_EQ(engine().stats().modules_pinned, 0u);
}

TEST_P(LoadTest, MissingShadowDirIsRefusedNamingTheOption) {
  ScratchDir dir;
  const std::string missing = dir.file("no-such-dir");
  expect_refused(kHello, ErrorCode::kPluginInvalid,
                 {"cannot make a shadow copy at '" + missing + "/", "(PluginOptions.shadow_dir)"},
                 {"hello.greet", "hello.sleep"}, {.shadow_dir = missing});
  EXPECT_FALSE(fs::exists(missing));
}

// ---- The engine ----

TEST_P(LoadTest, LoadIntoAShutDownEngineIsRefusedAndLeavesNothingBehind) {
  engine().shutdown();
  expect_refused(kHello, ErrorCode::kShuttingDown, {"plugin 'hello'", "engine is shutting down"},
                 {});
  expect_refused(plugin_file("libcounter_inc.so"), ErrorCode::kShuttingDown,
                 {"plugin 'counter_inc'", "engine is shutting down"});
  EXPECT_EQ(engine().stats().layers_loaded, 0);
}

INSTANTIATE_TEST_SUITE_P(Workers, LoadTest, EMBER_WORKER_COUNTS);

}  // namespace
}  // namespace ember::testing
