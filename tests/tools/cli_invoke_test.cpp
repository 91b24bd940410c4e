// `ember invoke`, run as a user would: the built binary, its stdout, stderr and exit code.
#include <nlohmann/json.hpp>

#include "cli_test_support.hpp"

namespace ember::cli_test {
namespace {

TEST(CliInvokeTest, PrintsThePayloadOnStdoutAndTheReportLineOnStderr) {
  const Output o = ember({"invoke", plugin("libhello.so"), "hello.greet", "--payload", "\"you\""});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "hello, \"you\"\n");
  EXPECT_TRUE(contains(o.err, "REPORT RequestId: ")) << o.err;
  for (const char* field :
       {"\tDuration: ", " ms\tBilled Duration: ", "\tMemory Size: 128 MB", "\tMax Memory Used: "}) {
    EXPECT_TRUE(contains(o.err, field)) << field << "\n" << o.err;
  }
  // Without --log, only the REPORT line.
  EXPECT_FALSE(contains(o.err, "START RequestId")) << o.err;
  EXPECT_FALSE(contains(o.err, "END RequestId")) << o.err;
}

TEST(CliInvokeTest, LogAlsoPrintsStartEndAndTheHandlersOwnLines) {
  const Output o = ember({"invoke", plugin("libsession.so"), "session.count", "--log"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "1\n");
  EXPECT_TRUE(contains(o.err, "START RequestId: ")) << o.err;
  EXPECT_TRUE(contains(o.err, "END RequestId: ")) << o.err;
  EXPECT_TRUE(contains(o.err, "REPORT RequestId: ")) << o.err;
  EXPECT_TRUE(contains(o.err, "session instance up for session.count")) << o.err;
  // The cold start's init shows on the REPORT line.
  EXPECT_TRUE(contains(o.err, "Init Duration: ")) << o.err;
}

TEST(CliInvokeTest, HandlerErrorPrintsLambdasErrorJsonAndExits1) {
  const Output o = ember({"invoke", plugin("libhello.so"), "hello.fail"});  // empty payload
  EXPECT_EQ(o.exit_code, 1) << o.err;
  const auto error = nlohmann::json::parse(o.out);
  EXPECT_EQ(error["errorType"], "ValidationError");
  EXPECT_EQ(error["errorMessage"], "payload must not be empty");
  EXPECT_TRUE(contains(o.err, "REPORT RequestId: ")) << o.err;
}

TEST(CliInvokeTest, HandlerExceptionReportsItsType) {
  const Output o = ember({"invoke", plugin("libhello.so"), "hello.throw"});
  EXPECT_EQ(o.exit_code, 1) << o.err;
  const auto error = nlohmann::json::parse(o.out);
  EXPECT_EQ(error["errorType"], "std::runtime_error");
  EXPECT_EQ(error["errorMessage"], "boom from hello");
}

TEST(CliInvokeTest, TimeoutIsAFunctionErrorNamedAsLambdaNamesIt) {
  // The handler sleeps far longer than the deadline; the deadline ends it.
  const Output o = ember(
      {"invoke", plugin("libhello.so"), "hello.sleep", "--payload", "600000", "--timeout", "50ms"});
  EXPECT_EQ(o.exit_code, 1) << o.err;
  const auto error = nlohmann::json::parse(o.out);
  EXPECT_EQ(error["errorType"], "Sandbox.Timedout") << o.out;
}

TEST(CliInvokeTest, PoolDispatchRunsTheHandlerOnAWorker) {
  const Output o = ember(
      {"invoke", plugin("libhello.so"), "hello.greet", "--payload", "pool", "--dispatch", "pool"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "hello, pool\n");
}

TEST(CliInvokeTest, UnknownFunctionIsNamedWithTheFunctionsThereAre) {
  const Output o = ember({"invoke", plugin("libhello.so"), "hello.nope"});
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_EQ(o.out, "");
  EXPECT_TRUE(contains(o.err, "ember invoke: ")) << o.err;
  EXPECT_TRUE(contains(o.err, "\"hello.nope\"")) << o.err;
  EXPECT_TRUE(contains(o.err, "hello.greet")) << o.err;
}

TEST(CliInvokeTest, MissingPluginFileIsNamed) {
  const Output o = ember({"invoke", "/nonexistent/libghost.so", "ghost.fn"});
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_TRUE(contains(o.err, "/nonexistent/libghost.so")) << o.err;
}

TEST(CliInvokeTest, FileThatIsNoPluginIsNamed) {
  ScratchDir dir;
  const std::string junk = dir.write("libjunk.so", "not an ELF object");
  const Output o = ember({"invoke", junk, "junk.fn"});
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_TRUE(contains(o.err, junk)) << o.err;
}

TEST(CliInvokeTest, LayerFileIsRefusedAsNotAPlugin) {
  const Output o = ember({"invoke", plugin("libcounter.so"), "counter.inc"});
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_TRUE(contains(o.err, "libcounter.so")) << o.err;
  EXPECT_TRUE(contains(o.err, "layer")) << o.err;
}

TEST(CliInvokeTest, DirectoryLoadsEveryPluginAndLeavesLayersToTheLoader) {
  ScratchDir dir;
  dir.add_plugin("libhello.so");
  dir.add_plugin("libcounter.so");  // a layer: skipped, then found for counter_inc
  dir.add_plugin("libcounter_inc.so");
  const Output inc = ember({"invoke", dir.path(), "counter.inc"});
  EXPECT_EQ(inc.exit_code, 0) << inc.err;
  EXPECT_EQ(inc.out, "1\n");
  const Output greet = ember({"invoke", dir.path(), "hello.greet", "-p", "dir"});
  EXPECT_EQ(greet.exit_code, 0) << greet.err;
  EXPECT_EQ(greet.out, "hello, dir\n");
  EXPECT_FALSE(contains(greet.err, "skipped")) << greet.err;
}

TEST(CliInvokeTest, DirectoryReportsFilesThatFailedAndServesTheRest) {
  ScratchDir dir;
  dir.add_plugin("libhello.so");
  const std::string junk = dir.write("libjunk.so", "not an ELF object");
  const Output o = ember({"invoke", dir.path(), "hello.greet", "-p", "x"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "hello, x\n");
  EXPECT_TRUE(contains(o.err, "skipped")) << o.err;
  EXPECT_TRUE(contains(o.err, junk)) << o.err;
}

TEST(CliInvokeTest, EmptyDirectoryIsNamed) {
  ScratchDir dir;
  const Output o = ember({"invoke", dir.path(), "hello.greet"});
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_TRUE(contains(o.err, dir.path())) << o.err;
}

TEST(CliInvokeTest, ReadsThePayloadFromAFile) {
  ScratchDir dir;
  const std::string file = dir.write("payload.json", "{\"name\": \"file\"}");
  const Output o = ember({"invoke", plugin("libhello.so"), "hello.greet", "--payload-file", file});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "hello, {\"name\": \"file\"}\n");
}

TEST(CliInvokeTest, ReadsThePayloadFromStdinWithADash) {
  const Output o =
      ember({"invoke", plugin("libc_hello.so"), "c.echo", "--payload-file", "-"}, {}, "from stdin");
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "from stdin\n");
}

TEST(CliInvokeTest, MissingPayloadFileIsNamed) {
  const Output o =
      ember({"invoke", plugin("libhello.so"), "hello.greet", "-f", "/nonexistent/payload.json"});
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_TRUE(contains(o.err, "/nonexistent/payload.json")) << o.err;
}

}  // namespace
}  // namespace ember::cli_test
