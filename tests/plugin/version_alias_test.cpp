// Versions and aliases (src/core/deploy.cpp): every load publishes version N+1 of each function;
// "fn" and "fn:$LATEST" run the newest, "fn:N" runs version N while it is loaded, "fn:alias"
// the version an alias points at (or a weighted split of two). A version stays loaded while it
// is the newest or an alias points at it. hello.tag answers "A" from libhello.so, "B" from
// libhello_b.so; hello.info answers "<function> <version> <remaining ms>".
#include <set>
#include <string>
#include <vector>

#include "plugin_test_support.hpp"

namespace ember::testing {
namespace {

class VersionAliasTest : public EngineTest {
 protected:
  void SetUp() override { before_ = mapped_hello_modules(); }

  // Hello modules mapped now that were not when the test began.
  std::size_t hello_modules() {
    std::size_t n = 0;
    for (const std::string& m : mapped_hello_modules()) n += before_.contains(m) ? 0 : 1;
    return n;
  }

  std::string answer(std::string_view name, std::string_view payload = "") {
    return describe(engine().invoke(name, payload));
  }

  // Loads libhello.so: version 1 of each hello function.
  ::testing::AssertionResult load_hello() {
    return ok(engine().load_plugin(plugin_file("libhello.so")));
  }

  using Strings = std::vector<std::string>;
  Strings versions(std::string_view function) {
    auto v = engine().versions(function);
    return v ? *v : Strings{cat("error: ", v.error().message)};
  }
  Strings aliases(std::string_view function) {
    auto v = engine().aliases(function);
    return v ? *v : Strings{cat("error: ", v.error().message)};
  }

  std::set<std::string> before_;
};

TEST_P(VersionAliasTest, EachLoadPublishesANewVersionAndQualifiedNamesRunIt) {
  auto loaded = engine().load_plugin(plugin_file("libhello.so"));
  ASSERT_TRUE(ok(loaded));
  ASSERT_FALSE(loaded->functions.empty());
  for (const PublishedFunction& f : loaded->functions) EXPECT_EQ(f.version, "1") << f.name;
  EXPECT_TRUE(answer("hello.info").starts_with("hello.info 1 ")) << answer("hello.info");
  EXPECT_TRUE(answer("hello.info:1").starts_with("hello.info 1 ")) << answer("hello.info:1");
  EXPECT_TRUE(answer("hello.info:$LATEST").starts_with("hello.info 1 "));

  // An alias keeps hello.info's version 1 loaded; hello.tag's version 1 has none.
  ASSERT_TRUE(ok(engine().set_alias("hello.info", "keep", {.version = "1"})));
  auto reloaded = engine().reload_plugin("hello", plugin_file("libhello.so"));
  ASSERT_TRUE(ok(reloaded));
  for (const PublishedFunction& f : reloaded->functions) EXPECT_EQ(f.version, "2") << f.name;

  EXPECT_TRUE(answer("hello.info").starts_with("hello.info 2 ")) << answer("hello.info");
  EXPECT_TRUE(answer("hello.info:$LATEST").starts_with("hello.info 2 "));
  EXPECT_TRUE(answer("hello.info:2").starts_with("hello.info 2 ")) << answer("hello.info:2");
  EXPECT_TRUE(answer("hello.info:1").starts_with("hello.info 1 ")) << answer("hello.info:1");
  EXPECT_TRUE(answer("hello.info:keep").starts_with("hello.info 1 "));
  EXPECT_EQ(versions("hello.info"), (Strings{"1", "2"}));
  EXPECT_EQ(versions("hello.tag"), Strings{"2"});
  EXPECT_EQ(answer("hello.tag:2"), "A");

  auto tag1 = engine().invoke("hello.tag:1", "");
  ASSERT_EQ(code_of(tag1), "NotFound") << describe(tag1);
  EXPECT_TRUE(has(tag1.error().message, "'1'")) << tag1.error().message;
  auto info3 = engine().invoke("hello.info:3", "");
  ASSERT_EQ(code_of(info3), "NotFound") << describe(info3);
  EXPECT_TRUE(has(info3.error().message, "'3'")) << info3.error().message;
}

TEST_P(VersionAliasTest, AnAliasKeepsItsVersionLoadedUntilItMoves) {
  ASSERT_TRUE(load_hello());
  ASSERT_TRUE(ok(engine().set_alias("hello.tag", "live", {.version = "1"})));
  ASSERT_TRUE(ok(engine().reload_plugin("hello", plugin_file("libhello_b.so"))));

  EXPECT_EQ(answer("hello.tag"), "B");
  EXPECT_EQ(answer("hello.tag:live"), "A");
  EXPECT_EQ(answer("hello.tag:1"), "A");
  EXPECT_EQ(answer("hello.tag:2"), "B");
  EXPECT_EQ(versions("hello.tag"), (Strings{"1", "2"}));
  EXPECT_EQ(hello_modules(), 2u);

  // Nothing leads to version 1 any more: it is unloaded, its shared object unmapped.
  ASSERT_TRUE(ok(engine().set_alias("hello.tag", "live", {.version = "2"})));
  EXPECT_EQ(answer("hello.tag:live"), "B");
  EXPECT_EQ(versions("hello.tag"), Strings{"2"});
  auto old = engine().invoke("hello.tag:1", "");
  ASSERT_EQ(code_of(old), "NotFound") << describe(old);
  EXPECT_TRUE(has(old.error().message, "unloaded")) << old.error().message;
  EXPECT_EQ(hello_modules(), 1u);
  const EngineStats s = engine().stats();
  EXPECT_EQ(s.modules_draining, 0);
  EXPECT_EQ(s.modules_pinned, 0u);
}

// 20000 draws at p = 0.25: mean 5000 "B", standard deviation sqrt(20000 * 0.25 * 0.75) ~ 61.
// The band 4000..6000 is +-16 standard deviations: a correct split leaves it with probability
// below 1e-50, while a split that ignored the weight (0 or 1, or 0.5) is far outside.
TEST_P(VersionAliasTest, AWeightedAliasSplitsInvokesByWeight) {
  ASSERT_TRUE(load_hello());  // version 1 answers "A"; the alias keeps it across the reload to "B"
  ASSERT_TRUE(ok(engine().set_alias("hello.tag", "live", {.version = "1"})));
  ASSERT_TRUE(ok(engine().reload_plugin("hello", plugin_file("libhello_b.so"))));
  ASSERT_EQ(versions("hello.tag"), (Strings{"1", "2"}));

  auto count_b = [&](int invokes) {
    int b = 0;
    for (int i = 0; i < invokes; ++i) {
      const std::string r = answer("hello.tag:live");
      if (r == "B") {
        ++b;
      } else if (r != "A") {
        ADD_FAILURE() << r;
        return -1;
      }
    }
    return b;
  };
  ASSERT_TRUE(ok(
      engine().set_alias("hello.tag", "live",
                         {.version = "1", .additional_version = "2", .additional_weight = 0.25})));
  const int b = count_b(20000);
  EXPECT_GE(b, 4000);
  EXPECT_LE(b, 6000);

  ASSERT_TRUE(ok(engine().set_alias(
      "hello.tag", "live", {.version = "1", .additional_version = "2", .additional_weight = 0.0})));
  EXPECT_EQ(count_b(2000), 0);
  ASSERT_TRUE(ok(engine().set_alias(
      "hello.tag", "live", {.version = "1", .additional_version = "2", .additional_weight = 1.0})));
  EXPECT_EQ(count_b(2000), 2000);
  EXPECT_EQ(versions("hello.tag"), (Strings{"1", "2"}));  // the split keeps both loaded
}

TEST_P(VersionAliasTest, SetAliasRefusesBadNamesVersionsAndWeights) {
  ASSERT_TRUE(load_hello());
  ASSERT_TRUE(ok(engine().set_alias("hello.tag", "live", {.version = "1"})));
  ASSERT_TRUE(ok(engine().reload_plugin("hello", plugin_file("libhello_b.so"))));
  ASSERT_EQ(versions("hello.tag"), (Strings{"1", "2"}));

  for (const char* bad : {"123", "", "a:b"}) {
    auto r = engine().set_alias("hello.tag", bad, {.version = "1"});
    EXPECT_EQ(code_of(r), "InvalidArgument") << "alias '" << bad << "'";
  }
  auto unknown = engine().set_alias("hello.tag", "canary", {.version = "7"});
  ASSERT_EQ(code_of(unknown), "NotFound");
  EXPECT_TRUE(has(unknown.error().message, "'7'")) << unknown.error().message;
  auto unknown2 =
      engine().set_alias("hello.tag", "canary", {.version = "1", .additional_version = "9"});
  ASSERT_EQ(code_of(unknown2), "NotFound");
  EXPECT_TRUE(has(unknown2.error().message, "'9'")) << unknown2.error().message;
  EXPECT_EQ(code_of(engine().set_alias("hello.tag", "canary",
                                       {.version = "1", .additional_version = "1"})),
            "InvalidArgument");
  for (double weight : {1.5, -0.1}) {
    auto r = engine().set_alias(
        "hello.tag", "canary",
        {.version = "1", .additional_version = "2", .additional_weight = weight});
    EXPECT_EQ(code_of(r), "InvalidArgument") << weight;
  }
  EXPECT_EQ(code_of(engine().set_alias("nope.fn", "live", {.version = "1"})), "NotFound");
  // None of the refused calls made an alias or moved one.
  EXPECT_EQ(aliases("hello.tag"), Strings{"live"});
  EXPECT_EQ(answer("hello.tag:live"), "A");

  add("cpp.echo", echo_handler());
  auto cpp = engine().set_alias("cpp.echo", "live", {.version = "$LATEST"});
  ASSERT_EQ(code_of(cpp), "InvalidArgument");
  EXPECT_TRUE(has(cpp.error().message, "only $LATEST")) << cpp.error().message;
}

TEST_P(VersionAliasTest, DeletedAliasIsNotFoundAndAliasesAreListedSorted) {
  ASSERT_TRUE(load_hello());
  for (const char* a : {"zeta", "alpha", "mid-1"}) {
    ASSERT_TRUE(ok(engine().set_alias("hello.tag", a, {.version = "1"}))) << a;
  }
  EXPECT_EQ(aliases("hello.tag"), (Strings{"alpha", "mid-1", "zeta"}));
  EXPECT_EQ(aliases("hello.greet"), Strings{});

  ASSERT_TRUE(ok(engine().delete_alias("hello.tag", "mid-1")));
  EXPECT_EQ(aliases("hello.tag"), (Strings{"alpha", "zeta"}));
  auto invoked = engine().invoke("hello.tag:mid-1", "");
  ASSERT_EQ(code_of(invoked), "NotFound") << describe(invoked);
  EXPECT_TRUE(has(invoked.error().message, "deleted")) << invoked.error().message;
  auto resolved = engine().function("hello.tag:mid-1");
  ASSERT_EQ(code_of(resolved), "NotFound");
  EXPECT_TRUE(has(resolved.error().message, "deleted")) << resolved.error().message;

  EXPECT_EQ(code_of(engine().delete_alias("hello.tag", "mid-1")), "NotFound");
  EXPECT_EQ(code_of(engine().delete_alias("hello.tag", "never")), "NotFound");
  EXPECT_EQ(code_of(engine().delete_alias("nope.fn", "live")), "NotFound");
  EXPECT_EQ(answer("hello.tag:alpha"), "A");  // the others are untouched
}

TEST_P(VersionAliasTest, AHandleOfAnAliasFollowsItsMoves) {
  ASSERT_TRUE(load_hello());
  ASSERT_TRUE(ok(engine().set_alias("hello.tag", "live", {.version = "1"})));
  auto live = engine().function("hello.tag:live");
  ASSERT_TRUE(ok(live));
  ASSERT_TRUE(ok(engine().reload_plugin("hello", plugin_file("libhello_b.so"))));
  EXPECT_EQ(describe(engine().invoke(*live, "")), "A");
  EXPECT_EQ(live->version(), "1");

  ASSERT_TRUE(ok(engine().set_alias("hello.tag", "live", {.version = "2"})));
  EXPECT_EQ(describe(engine().invoke(*live, "")), "B");
  EXPECT_EQ(live->version(), "2");

  ASSERT_TRUE(ok(engine().delete_alias("hello.tag", "live")));
  auto gone = engine().invoke(*live, "");
  EXPECT_EQ(code_of(gone), "NotFound") << describe(gone);
  EXPECT_EQ(live->version(), "");
}

TEST_P(VersionAliasTest, HandlesReportTheirQualifierAndTheVersionTheyRun) {
  add("cpp.echo", echo_handler());
  EXPECT_EQ(versions("cpp.echo"), Strings{"$LATEST"});
  auto cpp = engine().function("cpp.echo");
  ASSERT_TRUE(ok(cpp));
  EXPECT_EQ(cpp->version(), "$LATEST");
  EXPECT_EQ(cpp->qualifier(), "");

  ASSERT_TRUE(load_hello());
  auto plain = engine().function("hello.tag");
  auto latest = engine().function("hello.tag:$LATEST");
  auto one = engine().function("hello.tag:1");
  ASSERT_TRUE(ok(plain));
  ASSERT_TRUE(ok(latest));
  ASSERT_TRUE(ok(one));
  ASSERT_TRUE(ok(engine().set_alias("hello.tag", "live", {.version = "1"})));
  auto live = engine().function("hello.tag:live");
  ASSERT_TRUE(ok(live));
  EXPECT_EQ(plain->name(), "hello.tag");
  EXPECT_EQ(plain->qualifier(), "");
  EXPECT_EQ(live->qualifier(), "live");
  EXPECT_EQ(one->qualifier(), "1");
  EXPECT_EQ(live->name(), "hello.tag");
  EXPECT_EQ(plain->version(), "1");
  EXPECT_EQ(latest->version(), "1");

  ASSERT_TRUE(ok(engine().reload_plugin("hello", plugin_file("libhello_b.so"))));
  EXPECT_EQ(plain->version(), "2");
  EXPECT_EQ(latest->version(), "2");
  EXPECT_EQ(live->version(), "1");
  EXPECT_EQ(one->version(), "1");
  EXPECT_EQ(describe(engine().invoke(*one, "")), "A");
}

INSTANTIATE_TEST_SUITE_P(Workers, VersionAliasTest, EMBER_WORKER_COUNTS);

}  // namespace
}  // namespace ember::testing
