// gateway_test_server — an engine behind an ember::http::Gateway for aws_cli_test.sh, which
// drives it with the real AWS CLI.
//
//   gateway_test_server PLUGIN_DIR
//
// Loads PLUGIN_DIR/libhello.so (version 1 of each hello.* function), points alias "live" of
// hello.greet and hello.tag at it, reloads the plugin from PLUGIN_DIR/libhello_b.so (version
// 2: hello.tag answers "B" instead of "A"), and registers a C++ "echo" with reserved
// concurrency. Then it serves on a free loopback port, prints the port on a line of its own,
// and runs until its stdin closes or it gets SIGINT, SIGTERM or SIGHUP. Errors go to stderr
// with exit status 1.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <thread>

#include "ember/ember.hpp"
#include "ember/http.hpp"

namespace {

int die(const std::string& what, const ember::Error& error) {
  std::cerr << "gateway_test_server: " << what << ": " << error.code_name() << ": " << error.message
            << std::endl;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: gateway_test_server PLUGIN_DIR" << std::endl;
    return 2;
  }
  const std::string dir = argv[1];

  // Every thread started from here on inherits the mask, so only sigwait below sees these.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  ember::Engine engine{{.workers = 2}};
  if (auto ok = engine.status(); !ok) return die("engine", ok.error());
  if (auto r = engine.load_plugin(dir + "/libhello.so"); !r) return die("load", r.error());
  for (const char* fn : {"hello.greet", "hello.tag"}) {
    if (auto r = engine.set_alias(fn, "live", {.version = "1"}); !r) return die(fn, r.error());
  }
  if (auto r = engine.reload_plugin("hello", dir + "/libhello_b.so"); !r) {
    return die("reload", r.error());
  }
  auto echo = engine.register_function(
      "echo", {.reserved_concurrency = 2},
      [](ember::Context&, std::string_view in) -> ember::Result<std::string> {
        return std::string(in);
      });
  if (!echo) return die("register echo", echo.error());

  auto gateway = ember::http::Gateway::start(engine);
  if (!gateway) return die("gateway", gateway.error());
  std::cout << (*gateway)->port() << std::endl;

  // EOF on stdin (the test's end of the pipe closed) ends the server as a signal does.
  std::thread stdin_watch([] {
    char buf[256];
    while (read(STDIN_FILENO, buf, sizeof(buf)) > 0) {
    }
    kill(getpid(), SIGTERM);
  });
  stdin_watch.detach();  // it may still be blocked in read() when a signal ends the server

  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::cerr << "gateway_test_server: stopping (signal " << sig << ")" << std::endl;
  (*gateway)->stop();
  engine.shutdown();
  return 0;
}
