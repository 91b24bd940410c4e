// Plugins: an invoke through the C ABI, a cold load, a hot reload (DESIGN.md §5).
//
// BM_InvokePluginInline runs the C plugin's c.echo (the payload back, through the host's
// respond()), the same work as BM_InvokeInline's C++ echo in invoke_benchmark.cpp, so their
// difference is the price of the plugin boundary and of pinning the plugin's version.
#include <benchmark/benchmark.h>

#include <string>
#include <string_view>

#include "ember/ember.hpp"

namespace {

const std::string kDir = EMBER_PLUGIN_DIR;

// Load and unload lines would flood the benchmark's output.
ember::EngineOptions quiet() {
  return {.workers = 2, .log_sink = [](const ember::LogRecord&) {}};
}

// Invokes `function` of the plugin in `file`, inline, with a pre-resolved handle.
void invoke_plugin(benchmark::State& state, const char* file, const char* function) {
  ember::Engine engine(quiet());
  if (auto ok = engine.load_plugin(kDir + file); !ok) {
    state.SkipWithError(ok.error().message.c_str());
    return;
  }
  auto fn = engine.function(function).value();
  for (auto _ : state) {
    auto r = engine.invoke(fn, "ping");
    benchmark::DoNotOptimize(r);
  }
}

void BM_InvokePluginInline(benchmark::State& state) {
  invoke_plugin(state, "/libc_hello.so", "c.echo");
}
BENCHMARK(BM_InvokePluginInline)->Unit(benchmark::kNanosecond);

// The same through the C++ wrapper (plugin.hpp): hello.greet builds "hello, ping".
void BM_InvokePluginInlineCpp(benchmark::State& state) {
  invoke_plugin(state, "/libhello.so", "hello.greet");
}
BENCHMARK(BM_InvokePluginInlineCpp)->Unit(benchmark::kNanosecond);

// Load + validate + init + publish of the hello plugin, then its unload (not timed).
void BM_PluginLoadCold(benchmark::State& state) {
  ember::Engine engine(quiet());
  for (auto _ : state) {
    auto info = engine.load_plugin(kDir + "/libhello.so");
    if (!info) {
      state.SkipWithError(info.error().message.c_str());
      return;
    }
    state.PauseTiming();
    (void)engine.unload_plugin("hello");
    state.ResumeTiming();
  }
}
BENCHMARK(BM_PluginLoadCold)->Unit(benchmark::kMicrosecond)->UseRealTime();

// A reload of an idle plugin: load the other build beside it, switch, drain, shut the old
// version down, dlclose it and check it is unmapped.
void BM_PluginReload(benchmark::State& state) {
  ember::Engine engine(quiet());
  if (auto ok = engine.load_plugin(kDir + "/libhello.so"); !ok) {
    state.SkipWithError(ok.error().message.c_str());
    return;
  }
  bool b = false;
  for (auto _ : state) {
    b = !b;
    auto info = engine.reload_plugin("hello", kDir + (b ? "/libhello_b.so" : "/libhello.so"));
    if (!info) {
      state.SkipWithError(info.error().message.c_str());
      return;
    }
  }
}
BENCHMARK(BM_PluginReload)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
