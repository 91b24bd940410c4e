// ember list: what a plugin or layer file declares (or every file of a directory), read with
// Engine::inspect_plugin — nothing is initialised, and a plugin's layers need not be present.

#include <iostream>

#include "cli.hpp"
#include "manifest_format.hpp"
#include "text.hpp"

namespace ember::cli {

int run_list(const ListArgs& args) {
  constexpr std::string_view kCommand = "list";
  auto files = target_files(args.target);
  if (!files) {
    print_error(kCommand, files.error().message);
    return kExitFailure;
  }
  if (files->directory && files->files.empty()) {
    print_error(kCommand, cat("directory \"", args.target, "\" holds no *.so file"));
    return kExitFailure;
  }
  Engine engine{{.workers = 1}};
  int exit_code = kExitOk;
  bool first = true;
  // A directory lists as a JSON array, a file as one object.
  if (args.json && files->directory) std::cout << "[";
  for (const std::string& file : files->files) {
    auto manifest = engine.inspect_plugin(file);
    if (!manifest) {
      print_error(kCommand, manifest.error().message);
      exit_code = kExitFailure;
      continue;
    }
    if (args.json) {
      std::cout << (first ? "" : ",") << manifest_json(*manifest);
    } else {
      std::cout << (first ? "" : "\n") << manifest_text(*manifest);
    }
    first = false;
  }
  if (args.json && files->directory) std::cout << "]";
  if (args.json && (files->directory || !first)) std::cout << "\n";
  std::cout << std::flush;
  return exit_code;
}

}  // namespace ember::cli
