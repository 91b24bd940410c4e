// deploy.hpp — deploying code into a running engine: plugin options, what a load reports,
// and alias routing (Lambda's versions and aliases).
//
//   auto info = engine.load_plugin("plugins/libhello.so").value();     // publishes version 1
//   engine.reload_plugin("hello", "plugins/libhello.so");               // version 2, drained
//   engine.set_alias("hello.greet", "live", {.version = "1"});          // pin an alias...
//   engine.set_alias("hello.greet", "live",                             // ...then canary 10%
//                    {.version = "1", .additional_version = "2", .additional_weight = 0.1});
//   engine.invoke("hello.greet:live", "you");
//
// Every load of a plugin publishes a new immutable version of each of its functions ("1",
// "2", ...). The plain name ("fn", or "fn:$LATEST") runs the newest; "fn:3" runs version 3
// while it is loaded; an alias runs the version it points at, or splits invokes between two
// by weight. A version stays loaded while it is the newest or an alias points at it; after
// that its invocations drain, its instances shut down and its shared object is closed.
#pragma once

#include <absl/time/time.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ember/options.hpp"

namespace ember {

struct PluginOptions {
  // Where shadow copies are made before dlopen (so the original may be rebuilt or replaced
  // while the copy runs). Empty: $TMPDIR, else /tmp. The copy is unlinked once mapped.
  std::string shadow_dir;
  // Directories searched for required layers, as lib<name>.so or <name>.so. Empty: the
  // plugin file's own directory.
  std::vector<std::string> layer_dirs;
  // Load a plugin file that anyone may write to (refused by default: it is code we run).
  bool allow_world_writable = false;
  // Reload the plugin when its file changes on disk (inotify on its directory), once no
  // change has been seen for watch_debounce. A failed reload is logged; the old keeps serving.
  bool watch = false;
  absl::Duration watch_debounce = absl::Milliseconds(250);
  // How long reload/unload wait for the old version's invocations before returning; a
  // version still busy then is closed later, when its last invocation has returned.
  absl::Duration drain_timeout = absl::Seconds(30);
  // Write START / END / REPORT lines around each invocation of the plugin's functions
  // (FunctionConfig::report_logs). The deployer's choice, not the plugin's, as in Lambda.
  bool report_logs = false;
};

// One function version a load published.
struct PublishedFunction {
  std::string name;
  std::string version;  // "1", "2", ...
};

// What load_plugin / reload_plugin did.
struct PluginInfo {
  std::string name;     // the plugin's name (its descriptor's)
  std::string version;  // the plugin's own version string (for people)
  std::string path;     // the file it was loaded from
  std::vector<PublishedFunction> functions;
  std::vector<std::string> layers;  // "counter 1.2.0"
};

// Where an alias leads: one version, or two with a share of invokes for the second.
struct AliasConfig {
  std::string version;             // a loaded version number ("3")
  std::string additional_version;  // empty: none
  double additional_weight = 0.0;  // 0..1: the share of invokes that go to additional_version
};

// What a plugin or layer file declares, read without loading it into an engine
// (Engine::inspect_plugin): no layer is loaded, no init runs, nothing is published.
struct PluginManifest {
  enum class Kind : std::uint8_t { kPlugin, kLayer };
  Kind kind = Kind::kPlugin;
  std::string name;     // the descriptor's name
  std::string version;  // the descriptor's version string
  std::string path;     // the file inspected
  struct Function {
    std::string name;
    FunctionConfig config;  // as the plugin declares it (with PluginOptions applied)
    bool has_init = false;
    bool has_shutdown = false;
  };
  std::vector<Function> functions;  // plugins only
  struct LayerRequirement {
    std::string name;
    std::string constraint;  // as written: ">=1.2.0 <2.0.0", "" for any version
  };
  std::vector<LayerRequirement> layers;  // plugins: the layers it requires
  std::vector<std::string> services;     // layers: the services it offers
};

// One function of an engine as Engine::functions() lists it.
struct FunctionInfo {
  std::string name;
  std::string plugin;                 // the plugin that deployed it; "" if registered in C++
  FunctionConfig config;              // of its newest version
  std::vector<std::string> versions;  // live versions, oldest first ("$LATEST" for C++ ones)
  std::vector<std::string> aliases;   // sorted
  bool typed = false;                 // registered with register_function<In, Out>
};

}  // namespace ember
