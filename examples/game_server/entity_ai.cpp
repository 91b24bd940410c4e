// entity_ai — the game server's per-entity AI as a plugin: one function, "entity_ai.think",
// taking a game::Percept and answering a game::Intent, both as raw bytes (entity_ai.hpp).
//
// Built twice from this file (CMakeLists.txt): ENTITY_AI_VERSION=1 seeks the target,
// ENTITY_AI_VERSION=2 circles it, so a hot reload shows on the map. The handler is a member
// function: its Brain is the function's instance, made once per loaded version at init, which
// reads the version number ember gave it there instead of on every call.
#include "entity_ai.hpp"

#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "ember/plugin.hpp"

#ifndef ENTITY_AI_VERSION
#error "build with ENTITY_AI_VERSION=1 or 2 (see CMakeLists.txt)"
#endif

namespace {

using ember::plugin::Context;
using ember::plugin::InitContext;
using ember::plugin::Result;

constexpr int kBehaviour = ENTITY_AI_VERSION == 1 ? game::kSeek : game::kCircle;

class Brain {
 public:
  explicit Brain(InitContext& init) {
    const std::string_view v = init.function_version();
    std::from_chars(v.data(), v.data() + v.size(), version_);
  }

  // Stateless per call, so concurrent invocations of one instance are safe.
  Result<std::string> think(Context&, std::string_view in) {
    if (in.size() != sizeof(game::Percept)) {
      return ember::plugin::fail("BadPercept", "expected " + std::to_string(sizeof(game::Percept)) +
                                                   " bytes, got " + std::to_string(in.size()));
    }
    game::Percept p;
    std::memcpy(&p, in.data(), sizeof p);
    game::Intent intent = game::decide(p, kBehaviour);
    intent.version = version_;
    return std::string(reinterpret_cast<const char*>(&intent), sizeof intent);
  }

 private:
  std::uint16_t version_ = 0;
};

}  // namespace

EMBER_PLUGIN(plugin) {
  plugin.name("entity_ai").version(ENTITY_AI_VERSION == 1 ? "1.0.0" : "2.0.0");
  // Inline is the default for plugins too; said here because the tick loop relies on it. An
  // entity that thinks for 100 ms is a bug, not a slow frame.
  plugin.function<&Brain::think>("entity_ai.think").dispatch_inline().timeout_ms(100);
}
