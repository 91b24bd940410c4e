// greeter — a handler plugin: one function, "greeter.greet", written against the C++ wrapper
// of ember's plugin ABI. It includes only <ember/plugin.hpp> and links nothing of ember.
#include <ember/plugin.hpp>
#include <string>
#include <string_view>

namespace {

ember::plugin::Result<std::string> greet(ember::plugin::Context& ctx, std::string_view name) {
  if (name.empty()) return ember::plugin::fail("ValidationError", "whom should I greet?");
  return std::string(GREETING) + ", " + std::string(name) + " (version " +
         std::string(ctx.function_version()) + ")";
}

}  // namespace

EMBER_PLUGIN(plugin) {
  plugin.name("greeter").version(GREETING == std::string_view("hello") ? "1.0.0" : "2.0.0");
  plugin.function<&greet>("greeter.greet").timeout_ms(500);
}
