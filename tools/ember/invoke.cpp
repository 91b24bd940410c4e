// ember invoke: load a plugin (or a directory of them), invoke one function once, print its
// payload on stdout and its REPORT line on stderr.
#include <iostream>
#include <mutex>
#include <string>

#include "cli.hpp"
#include "ember/engine.hpp"
#include "ember/observe.hpp"
#include "text.hpp"

namespace ember::cli {
namespace {

// The engine's log lines, written to stderr as they come (from the calling thread or a
// worker): REPORT always, the rest (handler lines, START, END, the engine's own) with --log.
class LogEcho {
 public:
  explicit LogEcho(bool all) : all_(all) {}
  void write(const LogRecord& record) {
    if (!all_ && record.kind != LogKind::kReport) return;
    const std::string line = format_log_line(record, LogFormat::kText);
    std::lock_guard<std::mutex> lock(mu_);
    std::cerr << line << "\n" << std::flush;
  }

 private:
  const bool all_;
  std::mutex mu_;  // one line at a time on stderr (std::mutex: visible to TSan)
};

// Errors that are the function's own outcome (Lambda's X-Amz-Function-Error: the payload is
// the error), as opposed to the invoke being refused before the handler ran.
bool is_function_error(ErrorCode code) {
  return code == ErrorCode::kHandlerFailed || code == ErrorCode::kTimeout ||
         code == ErrorCode::kCancelled || code == ErrorCode::kRecursionLimit;
}

}  // namespace

int run_invoke(const InvokeArgs& args) {
  constexpr std::string_view kCommand = "invoke";
  auto payload = read_payload(args.payload);
  if (!payload) {
    print_error(kCommand, payload.error().message);
    return kExitFailure;
  }
  LogEcho echo(args.log);  // outlives the engine: its workers may log until they stop
  Engine engine{
      {.workers = 2, .log_sink = [&echo](const LogRecord& record) { echo.write(record); }}};
  auto fn = load_function(engine, kCommand, args.target, args.function, {.report_logs = true});
  if (!fn) return kExitFailure;
  InvokeOptions options;
  options.dispatch = args.dispatch;
  options.timeout = args.timeout;
  Result<std::string> out = engine.invoke(*fn, *payload, options);
  // Drain before printing: a pool-dispatched handler released at its deadline may still be
  // running, and its REPORT line comes when it returns.
  engine.shutdown();

  if (out) {
    std::cout << *out << "\n" << std::flush;
    return kExitOk;
  }
  if (is_function_error(out.error().code)) {
    std::cout << function_error_json(out.error()) << "\n" << std::flush;
  } else {
    print_error(kCommand,
                cat(args.function, ": ", out.error().code_name(), ": ", out.error().message));
  }
  return kExitFailure;
}

}  // namespace ember::cli
