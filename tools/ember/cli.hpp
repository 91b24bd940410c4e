// cli.hpp — what the ember tool's subcommands share: their parsed arguments, their entry
// points (main.cpp parses with CLI11 and calls one), exit codes, and loading plugins from a
// path that names a plugin file or a directory of them.
//
//   ember invoke build/plugins/libhello.so hello.greet --payload '"you"'
//   ember list build/plugins/libcounter_inc.so --json
//   ember bench build/plugins/libhello.so hello.greet -c 4 -d 3s
//   ember serve build/plugins --port 9000
#pragma once

#include <absl/time/time.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ember/deploy.hpp"
#include "ember/engine.hpp"
#include "ember/result.hpp"

namespace ember::cli {

// Exit codes: 0 success; 1 the work failed (a handler error, a load error, a bad file);
// 2 the command line was wrong (usage).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Where an invoke's payload comes from: --payload TEXT, --payload-file PATH ("-": stdin), or
// neither (an empty payload).
struct PayloadSource {
  std::optional<std::string> text;
  std::optional<std::string> file;
};

struct InvokeArgs {
  std::string target;  // a plugin file, or a directory of plugins
  std::string function;
  PayloadSource payload;
  std::optional<absl::Duration> timeout;
  std::optional<Dispatch> dispatch;
  bool log = false;  // handler lines and START/END too, not only REPORT
};

struct ListArgs {
  std::string target;  // a plugin or layer file, or a directory of them
  bool json = false;
};

struct BenchArgs {
  std::string target;
  std::string function;
  PayloadSource payload;
  int concurrency = 1;
  absl::Duration duration = absl::Seconds(5);
  std::optional<Dispatch> dispatch;
  std::optional<absl::Duration> timeout;
};

struct ServeArgs {
  std::string dir;
  std::string host = "127.0.0.1";
  int port = 9000;
  bool allow_remote = false;
  bool log = false;                          // START/END/REPORT lines on stderr
  absl::Duration drain = absl::Seconds(10);  // how long shutdown waits for in-flight invokes
};

// Each runs one subcommand and returns the process exit code. Errors go to stderr as
// "ember <command>: <what>", naming the path or function at fault.
int run_invoke(const InvokeArgs& args);
int run_list(const ListArgs& args);
int run_bench(const BenchArgs& args);
int run_serve(const ServeArgs& args);

// Writes "ember <command>: <message>\n" to stderr.
void print_error(std::string_view command, std::string_view message);

// The payload as PayloadSource says; kNotFound / kInvalidArgument naming the file that could
// not be read.
[[nodiscard]] Result<std::string> read_payload(const PayloadSource& source);

// Plugin files a path names: the file itself, or the regular files (and symlinks to them)
// named *.so directly in a directory, sorted by name. kNotFound naming a path that does not
// exist; kInvalidArgument for one that is neither file nor directory.
struct TargetFiles {
  bool directory = false;
  std::vector<std::string> files;
};
[[nodiscard]] Result<TargetFiles> target_files(const std::string& path);

// What loading a target did.
struct LoadOutcome {
  std::vector<PluginInfo> loaded;
  std::vector<std::string> layers;  // layer files of a directory, left to the loader
  std::vector<Error> failures;      // a directory's files that could not be loaded
};
// Loads a plugin file (refusing a layer file: kInvalidArgument naming it; any load error is
// returned as is), or every plugin of a directory, skipping layer files — the loader finds
// those itself, in the plugin's directory. A directory's failures are collected, not
// returned; an error only if the directory holds no plugin that loaded.
[[nodiscard]] Result<LoadOutcome> load_target(Engine& engine, const std::string& path,
                                              const PluginOptions& options);

// What invoke and bench start with: checks the engine, loads `target` (load_target; a
// directory's skipped files reported), and resolves `function`. Prints what went wrong as
// `command`'s error (an unknown function's message lists the functions loaded) and returns
// nullopt then.
[[nodiscard]] std::optional<FunctionHandle> load_function(Engine& engine, std::string_view command,
                                                          const std::string& target,
                                                          const std::string& function,
                                                          const PluginOptions& options);

}  // namespace ember::cli
