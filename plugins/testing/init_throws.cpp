// init_throws.cpp — fixture: a C++ plugin whose instance constructor throws. The wrapper
// (plugin.hpp) turns the exception into a failed init with "std::runtime_error: config file
// missing"; the loader must refuse the plugin and leave the engine as it was.

#include <stdexcept>
#include <string>
#include <string_view>

#include "ember/plugin.hpp"

namespace {

using ember::plugin::Context;
using ember::plugin::Result;

struct State {
  State() { throw std::runtime_error("config file missing"); }
  Result<std::string> handle(Context&, std::string_view) { return std::string("unreachable"); }
};

}  // namespace

EMBER_PLUGIN(plugin) {
  plugin.name("fixture_init_throws").version("1.0.0");
  plugin.function<&State::handle>("init.throws");
}
