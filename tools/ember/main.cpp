// ember — the command-line face of the engine: invoke, list, bench and serve plugins.
// Parses the command line with CLI11 and runs one subcommand (cli.hpp). Exit codes: 0 ok,
// 1 the work failed, 2 the command line was wrong (CLI11's own parse-error codes map to 2).

#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>
#include <map>
#include <optional>
#include <string>

#include "cli.hpp"
#include "duration.hpp"
#include "text.hpp"

#ifndef EMBER_VERSION_STRING
#define EMBER_VERSION_STRING "unknown"
#endif

namespace {

using ember::cli::kExitFailure;
using ember::cli::kExitOk;
using ember::cli::kExitUsage;

// Option values as CLI11 fills them; turned into the subcommands' argument structs after.
struct RawPayload {
  std::string text;
  std::string file;
  CLI::Option* text_option = nullptr;
  CLI::Option* file_option = nullptr;
  [[nodiscard]] ember::cli::PayloadSource source() const {
    ember::cli::PayloadSource s;
    if (text_option->count() > 0) s.text = text;
    if (file_option->count() > 0) s.file = file;
    return s;
  }
};

struct RawDuration {
  std::string text;
  CLI::Option* option = nullptr;
  [[nodiscard]] std::optional<absl::Duration> value() const {
    if (option->count() == 0) return std::nullopt;
    return ember::cli::parse_duration(text).value();  // the validator accepted it
  }
};

struct RawDispatch {
  std::string text;
  CLI::Option* option = nullptr;
  [[nodiscard]] std::optional<ember::Dispatch> value() const {
    if (option->count() == 0) return std::nullopt;
    return text == "pool" ? ember::Dispatch::kPool : ember::Dispatch::kInline;
  }
};

const CLI::Validator& duration_validator() {
  static const CLI::Validator validator(
      [](std::string& text) {
        auto d = ember::cli::parse_duration(text);
        return d ? std::string() : d.error().message;
      },
      "");
  return validator;
}

void add_payload(CLI::App& cmd, RawPayload& raw) {
  raw.text_option = cmd.add_option("-p,--payload", raw.text,
                                   "The request payload, as given (JSON by convention); "
                                   "default: empty")
                        ->type_name("JSON");
  raw.file_option = cmd.add_option("-f,--payload-file", raw.file,
                                   "Read the payload from this file ('-': standard input)")
                        ->type_name("FILE");
  raw.text_option->excludes(raw.file_option);
}

void add_duration(CLI::App& cmd, const std::string& name, RawDuration& raw,
                  const std::string& help) {
  raw.option =
      cmd.add_option(name, raw.text, help)->type_name("DURATION")->check(duration_validator());
}

void add_dispatch(CLI::App& cmd, RawDispatch& raw) {
  raw.option = cmd.add_option("--dispatch", raw.text,
                              "inline: the calling thread runs the handler; pool: a worker "
                              "does. Default: the function's own")
                   ->type_name("inline|pool")
                   ->check(CLI::IsMember({"inline", "pool"}).description(""));
}

constexpr const char* kExitCodes =
    "Exit status: 0 success; 1 failure (load error, handler error); 2 bad arguments.";

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "ember: load function plugins, invoke them, list them, benchmark them, serve "
      "them over HTTP (Lambda's Invoke API).",
      "ember"};
  app.set_version_flag("--version", std::string("ember ") + EMBER_VERSION_STRING);
  app.require_subcommand(1);
  app.footer(kExitCodes);
  // The usage line shown after an argument error, by subcommand.
  std::map<const CLI::App*, std::string> usage;
  usage[&app] = "usage: ember <invoke|list|bench|serve> ... (ember --help; ember <command> --help)";

  ember::cli::InvokeArgs invoke_args;
  RawPayload invoke_payload;
  RawDuration invoke_timeout;
  RawDispatch invoke_dispatch;
  CLI::App* invoke = app.add_subcommand(
      "invoke", "Invoke a function once: its payload on stdout, its REPORT line on stderr");
  invoke
      ->add_option("plugin", invoke_args.target,
                   "A plugin file, or a directory of plugins (its layer files are skipped: "
                   "the loader finds them)")
      ->required();
  invoke
      ->add_option("function", invoke_args.function,
                   "The function: name, name:version or name:alias")
      ->required();
  add_payload(*invoke, invoke_payload);
  add_duration(*invoke, "-t,--timeout", invoke_timeout,
               "Deadline for this invoke (500ms, 3s, 1m); never beyond the function's timeout");
  add_dispatch(*invoke, invoke_dispatch);
  invoke->add_flag("-l,--log", invoke_args.log,
                   "Also print the handler's log lines and START/END on stderr");
  invoke->footer(ember::cli::cat(
      "A handler error prints {\"errorMessage\",\"errorType\"} on stdout and exits 1.\n",
      kExitCodes));
  usage[invoke] =
      "usage: ember invoke <plugin.so|dir> <function> [--payload JSON | --payload-file F] "
      "[--timeout D] [--dispatch inline|pool] [--log]";

  ember::cli::ListArgs list_args;
  CLI::App* list = app.add_subcommand(
      "list", "Show what a plugin declares: functions and their config, required layers");
  list->add_option("plugin", list_args.target,
                   "A plugin or layer file, or a directory of them (nothing is initialised)")
      ->required();
  list->add_flag("--json", list_args.json,
                 "JSON: an object per file (an array of them for a directory)");
  list->footer(kExitCodes);
  usage[list] = "usage: ember list <plugin.so|dir> [--json]";

  ember::cli::BenchArgs bench_args;
  RawPayload bench_payload;
  RawDuration bench_duration;
  RawDuration bench_timeout;
  RawDispatch bench_dispatch;
  CLI::App* bench = app.add_subcommand(
      "bench", "Invoke a function from N threads for a while; throughput and latency");
  bench->add_option("plugin", bench_args.target, "A plugin file, or a directory of plugins")
      ->required();
  bench->add_option("function", bench_args.function, "The function to invoke")->required();
  bench
      ->add_option("-c,--concurrency", bench_args.concurrency,
                   "Caller threads, each invoking back to back (default 1)")
      ->check(CLI::Range(1, 10000));
  add_duration(*bench, "-d,--duration", bench_duration, "How long to run (default 5s)");
  add_dispatch(*bench, bench_dispatch);
  add_payload(*bench, bench_payload);
  add_duration(*bench, "-t,--timeout", bench_timeout, "Deadline of each invoke");
  bench->footer(kExitCodes);
  usage[bench] =
      "usage: ember bench <plugin.so|dir> <function> [--concurrency N] [--duration D] "
      "[--dispatch inline|pool] [--payload JSON | --payload-file F] [--timeout D]";

  ember::cli::ServeArgs serve_args;
  RawDuration serve_drain;
  CLI::App* serve = app.add_subcommand(
      "serve", "Serve a directory's plugins over HTTP (Lambda's Invoke API), reloading them");
  serve
      ->add_option("dir", serve_args.dir,
                   "Directory of plugins: each is loaded and reloaded when its file changes; "
                   "plugins copied in later are loaded too")
      ->required();
  serve->add_option("--port", serve_args.port, "TCP port (0: any free one; default 9000)")
      ->check(CLI::Range(0, 65535));
  serve->add_option("--host", serve_args.host, "Address to bind (default 127.0.0.1)");
  serve->add_flag("--allow-remote", serve_args.allow_remote,
                  "Allow a non-loopback --host: anyone who reaches it can run every function");
  serve->add_flag("-l,--log", serve_args.log, "START/END/REPORT lines for every invocation");
  add_duration(*serve, "--drain", serve_drain,
               "On SIGINT/SIGTERM, how long to wait for invocations in flight (default 10s)");
  serve->footer(ember::cli::cat(
      "Prints \"ember serve: listening on <url>\" on stdout once serving. Endpoints: POST "
      "/2015-03-31/functions/<name>/invocations, GET /healthz, /metrics, /functions.\n",
      kExitCodes));
  usage[serve] = "usage: ember serve <dir> [--port P] [--host H] [--allow-remote] [--log]";

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) {
      return app.exit(e);  // --help, --version
    }
    const CLI::App* failed = &app;
    for (const CLI::App* sub : app.get_subcommands()) failed = sub;
    std::string what = e.what();
    // CLI11 says only that a subcommand is required; name the word that is not one.
    if (failed == &app && argc > 1) {
      what = ember::cli::cat(argv[1][0] == '-' ? "unknown option \"" : "unknown command \"",
                             argv[1], "\"");
    }
    std::cerr << "ember" << (failed == &app ? "" : " " + failed->get_name()) << ": " << what << "\n"
              << usage[failed] << "\n"
              << std::flush;
    return kExitUsage;
  }

  try {
    if (*invoke) {
      invoke_args.payload = invoke_payload.source();
      invoke_args.timeout = invoke_timeout.value();
      invoke_args.dispatch = invoke_dispatch.value();
      return ember::cli::run_invoke(invoke_args);
    }
    if (*list) return ember::cli::run_list(list_args);
    if (*bench) {
      bench_args.payload = bench_payload.source();
      if (auto d = bench_duration.value()) bench_args.duration = *d;
      bench_args.timeout = bench_timeout.value();
      bench_args.dispatch = bench_dispatch.value();
      return ember::cli::run_bench(bench_args);
    }
    if (*serve) {
      if (auto d = serve_drain.value()) serve_args.drain = *d;
      return ember::cli::run_serve(serve_args);
    }
  } catch (const std::exception& e) {
    std::cerr << "ember: internal error: " << e.what() << "\n";
    return kExitFailure;
  }
  return kExitOk;
}
