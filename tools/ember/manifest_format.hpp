// manifest_format.hpp — how `ember list` shows what a plugin or layer file declares
// (ember::PluginManifest, from Engine::inspect_plugin): a table for people, JSON for programs.
//
//   std::cout << manifest_text(manifest);   // "plugin hello 1.0.0\n  file ...\n\n  FUNCTION ..."
//   std::cout << manifest_json(manifest);   // {"kind":"plugin","name":"hello",...}
#pragma once

#include <string>
#include <string_view>

#include "ember/deploy.hpp"

namespace ember::cli {

// A plugin: its name, version and file, a table of its functions (timeout, memory, reserved
// concurrency — "-" when it shares the unreserved pool —, dispatch, stack, max queue wait,
// init, shutdown) and its required layers with their version constraints ("any" when
// unconstrained). A layer: its name, version, file and services. Ends with a newline.
[[nodiscard]] std::string manifest_text(const PluginManifest& manifest);

// The same as one JSON object (no trailing newline):
//   {"kind":"plugin"|"layer","name":…,"version":…,"path":…,
//    "functions":[{"name":…,"timeout_ms":3000,"memory_mb":128,"reserved_concurrency":null|n,
//                  "dispatch":"inline"|"pool","stack_bytes":262144,"max_queue_wait_ms":1000,
//                  "report_logs":false,"has_init":false,"has_shutdown":false}],
//    "layers":[{"name":…,"constraint":…}],"services":[…]}
// Durations are milliseconds (a number, fractional if need be).
[[nodiscard]] std::string manifest_json(const PluginManifest& manifest);

// A JSON string literal (quotes included) of `s`: control characters escaped, bytes that are
// not valid UTF-8 replaced by U+FFFD so that the output is always valid JSON.
[[nodiscard]] std::string json_string(std::string_view s);

// "256 KiB", "1 MiB", "1000 B": a byte size in the largest binary unit that divides it.
[[nodiscard]] std::string format_bytes(std::size_t bytes);

}  // namespace ember::cli
