// tools/ember/manifest_format.cpp: what `ember list` prints for a plugin or layer manifest.
#include "manifest_format.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace ember::cli {
namespace {

PluginManifest sample_plugin() {
  PluginManifest m;
  m.name = "orders";
  m.version = "2.1.0";
  m.path = "/srv/plugins/liborders.so";
  PluginManifest::Function quote;
  quote.name = "orders.quote";
  quote.config.timeout = absl::Seconds(5);
  quote.config.memory_mb = 512;
  quote.config.reserved_concurrency = 8;
  quote.config.dispatch = Dispatch::kPool;
  quote.config.stack_size = std::size_t{1} << 20;
  quote.config.max_queue_wait = absl::Milliseconds(250);
  quote.has_init = true;
  PluginManifest::Function audit;
  audit.name = "orders.audit";
  audit.config.timeout = absl::Microseconds(1500);
  audit.has_shutdown = true;
  m.functions = {quote, audit};
  m.layers = {{"geo", ">=1.2.0 <2.0.0"}, {"cache", ""}};
  return m;
}

TEST(ManifestTextTest, ShowsNameVersionFileEachFunctionsConfigAndLayers) {
  const std::string text = manifest_text(sample_plugin());
  for (const char* expected : {"plugin orders 2.1.0\n",
                               "file  /srv/plugins/liborders.so",
                               "FUNCTION",
                               "TIMEOUT",
                               "MEMORY",
                               "RESERVED",
                               "DISPATCH",
                               "STACK",
                               "INIT",
                               "SHUTDOWN",
                               "orders.quote",
                               "5s",
                               "512 MB",
                               "pool",
                               "1 MiB",
                               "250ms",
                               "orders.audit",
                               "1.5ms",
                               "128 MB",
                               "inline",
                               "256 KiB",
                               "requires layers",
                               "geo    >=1.2.0 <2.0.0",
                               "cache  any"}) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << "\n" << text;
  }
}

TEST(ManifestTextTest, RowsAreAlignedUnderTheirHeadings) {
  const std::string text = manifest_text(sample_plugin());
  const std::size_t header = text.find("FUNCTION");
  const std::size_t header_line = text.rfind('\n', header) + 1;
  const std::size_t dispatch_col = text.find("DISPATCH", header) - header_line;
  const std::size_t quote = text.find("  orders.quote");
  const std::size_t quote_line = text.rfind('\n', quote) + 1;
  EXPECT_EQ(text.substr(quote_line + dispatch_col, 4), "pool") << text;
}

TEST(ManifestTextTest, ReservedConcurrencyAndInitShowPerFunction) {
  const std::string text = manifest_text(sample_plugin());
  const std::string quote_row = text.substr(text.find("  orders.quote"));
  const std::string audit_row = text.substr(text.find("  orders.audit"));
  EXPECT_NE(quote_row.substr(0, quote_row.find('\n')).find(" 8 "), std::string::npos);
  EXPECT_NE(quote_row.substr(0, quote_row.find('\n')).find("yes   no"), std::string::npos);
  EXPECT_NE(audit_row.substr(0, audit_row.find('\n')).find(" - "), std::string::npos);
  EXPECT_NE(audit_row.substr(0, audit_row.find('\n')).find("no    yes"), std::string::npos);
}

TEST(ManifestTextTest, PluginWithoutLayersSaysSo) {
  PluginManifest m = sample_plugin();
  m.layers.clear();
  EXPECT_NE(manifest_text(m).find("requires no layers"), std::string::npos);
}

TEST(ManifestTextTest, LayerShowsItsServices) {
  PluginManifest m;
  m.kind = PluginManifest::Kind::kLayer;
  m.name = "counter";
  m.version = "1.2.0";
  m.path = "libcounter.so";
  m.services = {"counter", "stats"};
  const std::string text = manifest_text(m);
  EXPECT_NE(text.find("layer counter 1.2.0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("services  counter, stats"), std::string::npos) << text;
  EXPECT_EQ(text.find("FUNCTION"), std::string::npos) << text;
}

TEST(ManifestJsonTest, IsValidJsonWithEveryField) {
  const auto j = nlohmann::json::parse(manifest_json(sample_plugin()));
  EXPECT_EQ(j["kind"], "plugin");
  EXPECT_EQ(j["name"], "orders");
  EXPECT_EQ(j["version"], "2.1.0");
  EXPECT_EQ(j["path"], "/srv/plugins/liborders.so");
  ASSERT_EQ(j["functions"].size(), 2u);
  const auto& quote = j["functions"][0];
  EXPECT_EQ(quote["name"], "orders.quote");
  EXPECT_EQ(quote["timeout_ms"], 5000);
  EXPECT_EQ(quote["memory_mb"], 512);
  EXPECT_EQ(quote["reserved_concurrency"], 8);
  EXPECT_EQ(quote["dispatch"], "pool");
  EXPECT_EQ(quote["stack_bytes"], 1 << 20);
  EXPECT_EQ(quote["max_queue_wait_ms"], 250);
  EXPECT_EQ(quote["report_logs"], false);
  EXPECT_EQ(quote["has_init"], true);
  EXPECT_EQ(quote["has_shutdown"], false);
  const auto& audit = j["functions"][1];
  EXPECT_TRUE(audit["reserved_concurrency"].is_null());
  EXPECT_DOUBLE_EQ(audit["timeout_ms"].get<double>(), 1.5);
  EXPECT_EQ(audit["has_shutdown"], true);
  ASSERT_EQ(j["layers"].size(), 2u);
  EXPECT_EQ(j["layers"][0]["name"], "geo");
  EXPECT_EQ(j["layers"][0]["constraint"], ">=1.2.0 <2.0.0");
  EXPECT_EQ(j["layers"][1]["constraint"], "");
  EXPECT_TRUE(j["services"].empty());
}

TEST(ManifestJsonTest, LayerListsServices) {
  PluginManifest m;
  m.kind = PluginManifest::Kind::kLayer;
  m.name = "counter";
  m.services = {"counter"};
  const auto j = nlohmann::json::parse(manifest_json(m));
  EXPECT_EQ(j["kind"], "layer");
  EXPECT_EQ(j["services"], nlohmann::json::array({"counter"}));
  EXPECT_TRUE(j["functions"].empty());
}

TEST(JsonStringTest, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(json_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json_string("line\nnext\ttab"), "\"line\\nnext\\ttab\"");
  EXPECT_EQ(json_string(std::string("\x01", 1)), "\"\\u0001\"");
  EXPECT_EQ(nlohmann::json::parse(json_string("caf\u00e9 \u2588")), "caf\u00e9 \u2588");
}

TEST(JsonStringTest, ReplacesInvalidUtf8SoTheOutputStaysValid) {
  for (const std::string& bad : {std::string("\xff"), std::string("a\xc3"),
                                 std::string("\xed\xa0\x80"), std::string("\xc0\xaf")}) {
    const std::string out = json_string(bad);
    EXPECT_TRUE(nlohmann::json::accept(out)) << out;
    EXPECT_NE(out.find("\\ufffd"), std::string::npos) << out;
  }
}

TEST(FormatBytesTest, UsesTheLargestBinaryUnitThatDivides) {
  EXPECT_EQ(format_bytes(256 * 1024), "256 KiB");
  EXPECT_EQ(format_bytes(2 * 1024 * 1024), "2 MiB");
  EXPECT_EQ(format_bytes(1000), "1000 B");
  EXPECT_EQ(format_bytes(0), "0 B");
}

}  // namespace
}  // namespace ember::cli
