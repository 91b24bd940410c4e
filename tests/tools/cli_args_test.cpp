// The ember command line itself: --help, --version, and argument errors (usage, exit 2).
#include "cli_test_support.hpp"

namespace ember::cli_test {
namespace {

TEST(CliArgsTest, HelpOfTheToolAndOfEverySubcommandExits0) {
  const Output top = ember({"--help"});
  EXPECT_EQ(top.exit_code, 0) << top.err;
  for (const char* command : {"invoke", "list", "bench", "serve"}) {
    EXPECT_TRUE(contains(top.out, command)) << top.out;
    const Output o = ember({command, "--help"});
    EXPECT_EQ(o.exit_code, 0) << command << "\n" << o.err;
    EXPECT_TRUE(contains(o.out, std::string("ember ") + command)) << o.out;
    EXPECT_TRUE(contains(o.out, "Exit status")) << o.out;
  }
}

TEST(CliArgsTest, VersionPrintsTheProjectVersion) {
  const Output o = ember({"--version"});
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_EQ(o.out, "ember " EMBER_PROJECT_VERSION "\n");
}

struct BadArgs {
  std::vector<std::string> args;
  std::string usage;  // the usage line expected on stderr
  std::string named;  // what the error must name
};

TEST(CliArgsTest, WrongArgumentsPrintAUsageLineAndExit2) {
  const std::string hello = plugin("libhello.so");
  const std::vector<BadArgs> cases = {
      {{}, "usage: ember <invoke|list|bench|serve>", ""},
      {{"frobnicate"}, "usage: ember <invoke|list|bench|serve>", "frobnicate"},
      {{"invoke"}, "usage: ember invoke ", "plugin"},
      {{"invoke", hello}, "usage: ember invoke ", "function"},
      {{"invoke", hello, "hello.greet", "--timeout", "5x"}, "usage: ember invoke ", "5x"},
      {{"invoke", hello, "hello.greet", "--timeout", "5"}, "usage: ember invoke ", "\"5\""},
      {{"invoke", hello, "hello.greet", "--dispatch", "fast"}, "usage: ember invoke ", "fast"},
      {{"invoke", hello, "hello.greet", "-p", "a", "-f", "b"}, "usage: ember invoke ", "--payload"},
      {{"invoke", hello, "hello.greet", "--bogus"}, "usage: ember invoke ", "--bogus"},
      {{"list"}, "usage: ember list ", "plugin"},
      {{"bench", hello, "hello.greet", "--concurrency", "0"}, "usage: ember bench ", "concurrency"},
      {{"bench", hello, "hello.greet", "--duration", "-1s"}, "usage: ember bench ", "-1s"},
      {{"serve"}, "usage: ember serve ", "dir"},
      {{"serve", "/tmp", "--port", "70000"}, "usage: ember serve ", "port"},
  };
  for (const BadArgs& c : cases) {
    std::string line = "ember";
    for (const std::string& a : c.args) line += " " + a;
    const Output o = ember(c.args);
    EXPECT_EQ(o.exit_code, 2) << line << "\n" << o.err;
    EXPECT_TRUE(contains(o.err, c.usage)) << line << "\n" << o.err;
    EXPECT_TRUE(contains(o.err, c.named)) << line << "\n" << o.err;
    EXPECT_EQ(o.out, "") << line;
  }
}

}  // namespace
}  // namespace ember::cli_test
