// entity_ai.hpp — what one entity's AI sees and decides, shared by the entity_ai plugin (which
// ember invokes once per entity per tick) and by the game_server host (which compiles the same
// decision in, to measure what an invoke costs beside a plain call).
//
//   game::Percept p{.entity = 7, .tick = 60, .x = 30, .y = -4, .target_x = 0, .target_y = 0};
//   game::Intent i = game::decide(p, game::kSeek);   // a step of at most kSpeed towards (0, 0)
//
// Both structs travel as raw bytes through the plugin ABI: trivially copyable, fixed layout,
// and an Intent small enough (12 bytes) that a std::string holding it needs no heap block.
// Header-only and C++17, as plugins may be built with an older standard than the host.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

namespace game {

// The AI's input: one entity and where its target is.
struct Percept {
  std::uint32_t entity = 0;
  std::uint32_t tick = 0;
  float x = 0, y = 0;
  float target_x = 0, target_y = 0;
};

// The AI's output: a move for this tick, and who decided it.
struct Intent {
  float dx = 0, dy = 0;
  std::uint16_t version = 0;   // the ember function version that served it ("1" -> 1)
  std::uint8_t behaviour = 0;  // a Behaviour
  std::uint8_t reserved = 0;
};

static_assert(std::is_trivially_copyable_v<Percept> && sizeof(Percept) == 24);
// 15 bytes is libstdc++'s short-string capacity: a response this small is never allocated.
static_assert(std::is_trivially_copyable_v<Intent> && sizeof(Intent) == 12);

enum Behaviour : std::uint8_t {
  kSeek = 1,    // version 1: close in on the target, stop kArrive short of it
  kCircle = 2,  // version 2: circle the target at kOrbit
};

inline constexpr float kSpeed = 1.5f;   // distance an entity may move per tick
inline constexpr float kArrive = 2.0f;  // seek stops this far from the target
inline constexpr float kOrbit = 12.0f;  // circle keeps this far from the target

[[nodiscard]] inline const char* behaviour_name(int behaviour) {
  return behaviour == kSeek ? "seek" : behaviour == kCircle ? "circle" : "?";
}

// One decision. Pure and cheap (a square root and a few multiplies): the point of the example
// is the cost around it.
[[nodiscard]] inline Intent decide(const Percept& p, int behaviour) {
  const float rx = p.target_x - p.x;
  const float ry = p.target_y - p.y;
  const float d = std::sqrt(rx * rx + ry * ry);
  // Unit vector towards the target; any direction will do when standing on it.
  const float ux = d > 1e-3f ? rx / d : 1.0f;
  const float uy = d > 1e-3f ? ry / d : 0.0f;
  Intent out;
  out.behaviour = static_cast<std::uint8_t>(behaviour);
  if (behaviour == kSeek) {
    const float step = std::fmin(kSpeed, std::fmax(0.0f, d - kArrive));
    out.dx = ux * step;
    out.dy = uy * step;
    return out;
  }
  // Circle: a radial part that closes the gap to the orbit, the rest of the speed tangential.
  const float radial = std::fmax(-kSpeed, std::fmin(kSpeed, (d - kOrbit) * 0.25f));
  const float tangential = std::sqrt(kSpeed * kSpeed - radial * radial);
  out.dx = ux * radial - uy * tangential;
  out.dy = uy * radial + ux * tangential;
  return out;
}

}  // namespace game
