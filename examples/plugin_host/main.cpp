// plugin_host — load a plugin, invoke it, pin an alias, hot-reload, canary, promote.
//
//   $ plugin_host
//   loaded greeter 1.0.0: greeter.greet version 1
//   ...
#include <cstdio>
#include <ember/ember.hpp>
#include <map>
#include <string>
#include <vector>

namespace {

void show(ember::Engine& engine, const char* name) {
  auto out = engine.invoke(name, "Ada");
  std::printf("  %-22s -> %s\n", name, out ? out->c_str() : out.error().message.c_str());
}

void print_versions(ember::Engine& engine) {
  const std::vector<std::string> versions =
      engine.versions("greeter.greet").value_or(std::vector<std::string>{});
  for (const auto& v : versions) std::printf(" %s", v.c_str());
  std::printf("\n");
}

}  // namespace

int main() {
  ember::Engine engine({.workers = 2, .log_sink = [](const ember::LogRecord&) {}});

  auto v1 = engine.load_plugin(GREETER_V1);
  if (!v1) {
    std::fprintf(stderr, "load failed: %s\n", v1.error().message.c_str());
    return 1;
  }
  std::printf("loaded %s %s: greeter.greet version %s\n", v1->name.c_str(), v1->version.c_str(),
              v1->functions[0].version.c_str());
  auto greet = engine.function("greeter.greet").value();  // follows deploys
  show(engine, "greeter.greet");

  // Production traffic goes through an alias, pinned to version 1.
  (void)engine.set_alias("greeter.greet", "live", {.version = "1"});

  // Hot reload: version 2 takes the plain name; in-flight calls of version 1 would drain.
  auto v2 = engine.reload_plugin("greeter", GREETER_V2);
  if (!v2) {
    std::fprintf(stderr, "reload failed: %s\n", v2.error().message.c_str());
    return 1;
  }
  std::printf("reloaded to %s: versions loaded:", v2->version.c_str());
  print_versions(engine);
  show(engine, "greeter.greet");
  show(engine, "greeter.greet:live");

  // Canary: 20% of "live" goes to version 2.
  (void)engine.set_alias("greeter.greet", "live",
                         {.version = "1", .additional_version = "2", .additional_weight = 0.2});
  std::map<std::string, int> seen;
  for (int i = 0; i < 1000; ++i) {
    auto out = engine.invoke("greeter.greet:live", "Ada");
    seen[out ? out->substr(0, out->find(',')) : "error"]++;
  }
  std::printf("canary over 1000 invokes of greeter.greet:live:");
  for (const auto& [greeting, n] : seen) std::printf(" %s=%d", greeting.c_str(), n);
  std::printf("\n");

  // Promote: the alias moves to version 2, and version 1 is drained and unloaded.
  (void)engine.set_alias("greeter.greet", "live", {.version = "2"});
  std::printf("promoted; versions loaded:");
  print_versions(engine);
  show(engine, "greeter.greet:1");
  show(engine, "greeter.greet:live");
  auto bad = engine.invoke(greet, "");
  std::printf("  an error from the plugin -> %s\n", bad ? "?" : bad.error().message.c_str());
  return 0;
}
