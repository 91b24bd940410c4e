// `ember serve`: the gateway over a directory of plugins, started on a free port, driven over
// HTTP, stopped with a signal. Every wait is on the server's output, never on a sleep.
#include <signal.h>

#include <filesystem>
#include <memory>

#include "cli_test_support.hpp"

namespace ember::cli_test {
namespace {

#ifdef EMBER_CLI_TEST_HTTP

// A running `ember serve <dir> --port 0 ...`.
struct Server {
  std::unique_ptr<Subprocess> process;
  int port = 0;  // 0: it never said where it listens
};

Server serve(const std::string& dir, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {kEmber, "serve", dir, "--port", "0"};
  args.insert(args.end(), extra.begin(), extra.end());
  Server s;
  s.process = std::make_unique<Subprocess>(args);
  std::string port;
  if (s.process->wait_for([&](const Output& o) {
        port = digits_after(o.out, "ember serve: listening on http://127.0.0.1:");
        return !port.empty();
      })) {
    s.port = std::stoi(port);
  }
  return s;
}

std::string invoke_path(const std::string& function) {
  return "/2015-03-31/functions/" + function + "/invocations";
}

TEST(CliServeTest, ServesTheDirectorysPluginsAndStopsCleanlyOnSigterm) {
  ScratchDir dir;
  dir.add_plugin("libhello.so");
  dir.add_plugin("libcounter.so");
  dir.add_plugin("libcounter_inc.so");
  Server server = serve(dir.path());
  ASSERT_NE(server.port, 0) << server.process->output().err;
  const std::string& err = server.process->output().err;
  EXPECT_TRUE(contains(err, "loaded plugin hello 1.0.0")) << err;
  EXPECT_TRUE(contains(err, "loaded plugin counter_inc 1.0.0")) << err;

  const HttpResponse health = http_request(server.port, "GET", "/healthz");
  EXPECT_EQ(health.status, 200);
  const HttpResponse greet = http_request(server.port, "POST", invoke_path("hello.greet"), "web");
  EXPECT_EQ(greet.status, 200);
  EXPECT_EQ(greet.body, "hello, web");
  const HttpResponse inc = http_request(server.port, "POST", invoke_path("counter.inc"));
  EXPECT_EQ(inc.status, 200);
  EXPECT_EQ(inc.body, "1");

  server.process->send_signal(SIGTERM);
  const Output& o = server.process->finish();
  EXPECT_EQ(o.exit_code, 0) << o.err;
  expect_no_sanitizer_report(o);
  EXPECT_TRUE(contains(o.err, "shutting down")) << o.err;
}

TEST(CliServeTest, LoadsAPluginCopiedInWhileItRuns) {
  ScratchDir dir;
  Server server = serve(dir.path());
  ASSERT_NE(server.port, 0) << server.process->output().err;
  EXPECT_TRUE(contains(server.process->output().err, "no plugin loaded yet"));
  EXPECT_EQ(http_request(server.port, "POST", invoke_path("c.echo"), "x").status, 404);

  dir.add_plugin("libc_hello.so");
  ASSERT_TRUE(server.process->wait_for([](const Output& o) {
    return contains(o.err, "loaded plugin c_hello");
  })) << server.process->output().err;
  const HttpResponse echo = http_request(server.port, "POST", invoke_path("c.echo"), "arrived");
  EXPECT_EQ(echo.status, 200);
  EXPECT_EQ(echo.body, "arrived");

  server.process->send_signal(SIGINT);
  EXPECT_EQ(server.process->finish().exit_code, 0) << server.process->output().err;
  expect_no_sanitizer_report(server.process->output());
}

TEST(CliServeTest, LoadsAPluginOnceTheLayerItWasMissingArrives) {
  ScratchDir dir;
  Server server = serve(dir.path());
  ASSERT_NE(server.port, 0) << server.process->output().err;
  dir.add_plugin("libcounter_inc.so");
  ASSERT_TRUE(server.process->wait_for([](const Output& o) {
    return contains(o.err, "not loaded: ") && contains(o.err, "libcounter_inc.so");
  })) << server.process->output().err;
  EXPECT_FALSE(contains(server.process->output().err, "loaded plugin counter_inc"));

  dir.add_plugin("libcounter.so");
  ASSERT_TRUE(server.process->wait_for([](const Output& o) {
    return contains(o.err, "loaded plugin counter_inc");
  })) << server.process->output().err;
  EXPECT_EQ(http_request(server.port, "POST", invoke_path("counter.inc")).body, "1");

  server.process->send_signal(SIGTERM);
  EXPECT_EQ(server.process->finish().exit_code, 0) << server.process->output().err;
  expect_no_sanitizer_report(server.process->output());
}

TEST(CliServeTest, ReloadsAPluginWhoseFileIsReplaced) {
  ScratchDir dir;
  const std::string hello = dir.add_plugin("libhello.so");
  Server server = serve(dir.path());
  ASSERT_NE(server.port, 0) << server.process->output().err;
  EXPECT_EQ(http_request(server.port, "POST", invoke_path("hello.tag")).body, "A");

  // Replace the file atomically with the other build of the same plugin.
  const std::string staged = dir.path() + "/hello.staged";
  std::filesystem::copy_file(plugin("libhello_b.so"), staged);
  std::filesystem::rename(staged, hello);
  ASSERT_TRUE(server.process->wait_for([](const Output& o) {
    return contains(o.err, "reloaded after its file changed");
  })) << server.process->output().err;
  EXPECT_EQ(http_request(server.port, "POST", invoke_path("hello.tag")).body, "B");

  server.process->send_signal(SIGTERM);
  EXPECT_EQ(server.process->finish().exit_code, 0) << server.process->output().err;
  expect_no_sanitizer_report(server.process->output());
}

TEST(CliServeTest, RefusesANonLoopbackHostWithoutAllowRemote) {
  ScratchDir dir;
  const Output o = ember({"serve", dir.path(), "--port", "0", "--host", "0.0.0.0"});
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_TRUE(contains(o.err, "0.0.0.0")) << o.err;
}

TEST(CliServeTest, MissingDirectoryIsNamed) {
  const Output o = ember({"serve", "/nonexistent/plugins", "--port", "0"});
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_TRUE(contains(o.err, "/nonexistent/plugins")) << o.err;
}

#else

TEST(CliServeTest, SaysItIsUnavailableWithoutTheHttpGateway) {
  ScratchDir dir;
  const Output o = ember({"serve", dir.path(), "--port", "0"});
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_TRUE(contains(o.err, "unavailable")) << o.err;
}

#endif

}  // namespace
}  // namespace ember::cli_test
