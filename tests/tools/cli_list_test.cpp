// `ember list`: what a plugin or layer file declares, read without initialising it.
#include <nlohmann/json.hpp>

#include "cli_test_support.hpp"

namespace ember::cli_test {
namespace {

TEST(CliListTest, NamesThePluginItsFunctionsAndTheirConfig) {
  const Output o = ember({"list", plugin("libhello.so")});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  for (const char* expected :
       {"plugin hello 1.0.0", "libhello.so", "hello.greet", "hello.fail", "hello.sleep", "TIMEOUT",
        "3s", "128 MB", "inline", "256 KiB", "requires no layers"}) {
    EXPECT_TRUE(contains(o.out, expected)) << expected << "\n" << o.out;
  }
}

TEST(CliListTest, ShowsInitAndShutdownOfAStatefulPlugin) {
  const Output o = ember({"list", plugin("libsession.so")});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  const std::size_t row = o.out.find("  session.count");
  ASSERT_NE(row, std::string::npos) << o.out;
  const std::string line = o.out.substr(row, o.out.find('\n', row) - row);
  EXPECT_TRUE(contains(line, "yes   yes")) << line;
}

TEST(CliListTest, ShowsTheRequiredLayerAndItsConstraintEvenWithoutTheLayerFile) {
  ScratchDir dir;  // counter_inc alone: libcounter.so is not beside it
  const std::string inc = dir.add_plugin("libcounter_inc.so");
  const Output o = ember({"list", inc});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_TRUE(contains(o.out, "plugin counter_inc 1.0.0")) << o.out;
  EXPECT_TRUE(contains(o.out, "counter.inc")) << o.out;
  EXPECT_TRUE(contains(o.out, "requires layers\n    counter  ^1.0\n")) << o.out;
}

TEST(CliListTest, ShowsALayerAndItsServices) {
  const Output o = ember({"list", plugin("libcounter.so")});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_TRUE(contains(o.out, "layer counter 1.2.0")) << o.out;
  EXPECT_TRUE(contains(o.out, "services  counter")) << o.out;
}

TEST(CliListTest, JsonIsMachineReadable) {
  const Output o = ember({"list", plugin("libcounter_inc.so"), "--json"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  const auto j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["kind"], "plugin");
  EXPECT_EQ(j["name"], "counter_inc");
  ASSERT_EQ(j["functions"].size(), 1u);
  EXPECT_EQ(j["functions"][0]["name"], "counter.inc");
  EXPECT_EQ(j["functions"][0]["timeout_ms"], 3000);
  EXPECT_EQ(j["functions"][0]["memory_mb"], 128);
  EXPECT_EQ(j["functions"][0]["dispatch"], "inline");
  ASSERT_EQ(j["layers"].size(), 1u);
  EXPECT_EQ(j["layers"][0]["name"], "counter");
  EXPECT_EQ(j["layers"][0]["constraint"], "^1.0");
}

TEST(CliListTest, DirectoryListsEveryFileAsAJsonArray) {
  ScratchDir dir;
  dir.add_plugin("libhello.so");
  dir.add_plugin("libcounter.so");
  const Output o = ember({"list", dir.path(), "--json"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  const auto j = nlohmann::json::parse(o.out);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["kind"], "layer");  // sorted by file name: libcounter.so, libhello.so
  EXPECT_EQ(j[1]["name"], "hello");
}

TEST(CliListTest, UnreadableFileIsNamedAndExits1) {
  ScratchDir dir;
  const std::string junk = dir.write("libjunk.so", "not an ELF object");
  const Output o = ember({"list", junk});
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_TRUE(contains(o.err, junk)) << o.err;
  const Output missing = ember({"list", "/nonexistent/libx.so"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(contains(missing.err, "/nonexistent/libx.so")) << missing.err;
}

}  // namespace
}  // namespace ember::cli_test
