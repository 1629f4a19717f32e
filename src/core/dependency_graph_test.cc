#include "core/dependency_graph.h"

#include <filesystem>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace lotus {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

Manifest module(std::string name, std::vector<std::string> deps = {},
                std::string priority = "normal", std::string version = "1.0.0") {
  std::string text = "name: " + name + "\nversion: \"" + version +
                     "\"\ntype: core\npriority: " + priority + "\ndependencies:\n  modules: [";
  for (size_t i = 0; i < deps.size(); ++i) text += (i ? ", \"" : "\"") + deps[i] + "\"";
  text += "]\n";
  Result<Manifest> m = parse_manifest(text, "modules/" + name + "/manifest.yaml");
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *std::move(m) : Manifest{};
}

std::vector<std::string> names(const ResolvedOrder& r) {
  std::vector<std::string> out;
  for (const Manifest* m : r.order) out.push_back(m->name);
  return out;
}

std::vector<std::pair<std::string, std::string>> reasons(const ResolvedOrder& r) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, status] : r.excluded)
    out.emplace_back(name, std::string(status.message()));
  return out;
}

TEST(DependencyGraphTest, EmptyInput) {
  ResolvedOrder r = resolve_load_order({});
  EXPECT_THAT(r.order, IsEmpty());
  EXPECT_THAT(r.excluded, IsEmpty());
}

TEST(DependencyGraphTest, DependenciesLoadFirst) {
  std::vector<Manifest> ms = {module("code_assistant", {"reasoning", "memory", "providers"}),
                              module("reasoning", {"memory", "providers"}), module("providers"),
                              module("memory")};
  ResolvedOrder r = resolve_load_order(ms);
  EXPECT_THAT(names(r), ElementsAre("memory", "providers", "reasoning", "code_assistant"));
  EXPECT_THAT(r.excluded, IsEmpty());
  EXPECT_EQ(r.order[0], &ms[3]);  // points into the input
}

TEST(DependencyGraphTest, ReadyModulesGoByPriorityThenName) {
  std::vector<Manifest> ms = {
      module("zeta", {}, "low"),     module("beta", {}, "normal"),
      module("alpha", {}, "normal"), module("gamma", {}, "critical"),
      module("delta", {}, "high"),   module("epsilon", {"zeta"}, "critical")};
  // epsilon is critical but waits for zeta (low), which is only ready last.
  EXPECT_THAT(names(resolve_load_order(ms)),
              ElementsAre("gamma", "delta", "alpha", "beta", "zeta", "epsilon"));
}

TEST(DependencyGraphTest, OrderDoesNotDependOnInputOrder) {
  std::vector<Manifest> a = {module("a"), module("b", {"a"}), module("c", {}, "high")};
  std::vector<Manifest> b = {a[2], a[1], a[0]};
  EXPECT_EQ(names(resolve_load_order(a)), names(resolve_load_order(b)));
  EXPECT_THAT(names(resolve_load_order(a)), ElementsAre("c", "a", "b"));
}

TEST(DependencyGraphTest, CycleIsNamedAndTheRestStillLoads) {
  std::vector<Manifest> ms = {module("c", {"a"}), module("a", {"b"}), module("b", {"c"}),
                              module("user", {"b"}), module("free")};
  ResolvedOrder r = resolve_load_order(ms);
  EXPECT_THAT(names(r), ElementsAre("free"));
  for (const auto& [name, status] : r.excluded) {
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << name;
  }
  EXPECT_THAT(reasons(r), ElementsAre(Pair("a", "dependency cycle: a -> b -> c -> a"),
                                      Pair("b", "dependency cycle: a -> b -> c -> a"),
                                      Pair("c", "dependency cycle: a -> b -> c -> a"),
                                      Pair("user",
                                           "module \"user\" needs \"b\", which failed: dependency "
                                           "cycle: a -> b -> c -> a")));
}

TEST(DependencyGraphTest, SelfDependencyIsACycle) {
  ResolvedOrder r = resolve_load_order({module("narcissus", {"narcissus"})});
  EXPECT_THAT(reasons(r),
              ElementsAre(Pair("narcissus", "dependency cycle: narcissus -> narcissus")));
}

TEST(DependencyGraphTest, EachMemberOfATangleReportsItsShortestCycle) {
  // a <-> b and b <-> c form one strongly connected component.
  ResolvedOrder r =
      resolve_load_order({module("a", {"b"}), module("b", {"a", "c"}), module("c", {"b"})});
  EXPECT_THAT(reasons(r), ElementsAre(Pair("a", "dependency cycle: a -> b -> a"),
                                      Pair("b", "dependency cycle: a -> b -> a"),
                                      Pair("c", "dependency cycle: b -> c -> b")));
}

TEST(DependencyGraphTest, MissingDependencyExcludesTransitively) {
  std::vector<Manifest> ms = {module("needs_missing", {"ghost"}), module("top", {"middle"}),
                              module("middle", {"needs_missing"}), module("fine")};
  ResolvedOrder r = resolve_load_order(ms);
  EXPECT_THAT(names(r), ElementsAre("fine"));
  EXPECT_THAT(
      reasons(r),
      ElementsAre(
          Pair("middle",
               "module \"middle\" needs \"needs_missing\", which failed: module \"needs_missing\" "
               "needs \"ghost\", which is not available"),
          Pair("needs_missing", "module \"needs_missing\" needs \"ghost\", which is not available"),
          Pair("top",
               "module \"top\" needs \"middle\", which failed: module \"middle\" needs "
               "\"needs_missing\", which failed: module \"needs_missing\" needs \"ghost\", which "
               "is not available")));
}

TEST(DependencyGraphTest, AlreadyFailedModulesAndTheirDependents) {
  std::vector<Manifest> ms = {module("memory"), module("reasoning", {"memory"}),
                              module("voice", {"speech"}), module("other")};
  ResolvedOrder r = resolve_load_order(
      ms,
      std::map<std::string, Status>{{"memory", absl::UnavailableError("cannot open memory.db")},
                                    {"speech", absl::InternalError("crashed 5 times in 60 s")}});
  EXPECT_THAT(names(r), ElementsAre("other"));
  EXPECT_THAT(reasons(r).size(), 3u);
  // A module that failed keeps its own status; those that needed it fail their precondition.
  EXPECT_EQ(r.excluded[0].first, "memory");
  EXPECT_EQ(r.excluded[0].second, absl::UnavailableError("cannot open memory.db"));
  EXPECT_EQ(r.excluded[1].second.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(reasons(r)[1], Pair("reasoning",
                                  "module \"reasoning\" needs \"memory\", which "
                                  "failed: cannot open memory.db"));
  EXPECT_THAT(reasons(r)[2], Pair("voice",
                                  "module \"voice\" needs \"speech\", which failed: "
                                  "crashed 5 times in 60 s"));

  ResolvedOrder by_name = resolve_load_order(ms, std::set<std::string>{"memory"});
  EXPECT_THAT(names(by_name), ElementsAre("other"));
  EXPECT_THAT(reasons(by_name),
              ElementsAre(Pair("memory", "module \"memory\" failed earlier"),
                          Pair("reasoning",
                               "module \"reasoning\" needs \"memory\", which failed: "
                               "module \"memory\" failed earlier"),
                          Pair("voice",
                               "module \"voice\" needs \"speech\", which is not "
                               "available")));
}

TEST(DependencyGraphTest, VersionConstraints) {
  std::vector<Manifest> ms = {
      module("memory", {}, "normal", "1.4.2"), module("ok_ge", {"memory>=1.0"}),
      module("ok_caret", {"memory^1.2"}),      module("ok_tilde", {"memory~1.4"}),
      module("ok_eq", {"memory==1.4.2"}),      module("ok_range", {"memory>=1.0,<2"}),
      module("bad_ge", {"memory>=2.0"}),       module("bad_lt", {"memory<1.4.2"}),
      module("bad_tilde", {"memory~1.3"}),     module("bad_caret", {"memory^2"}),
  };
  ResolvedOrder r = resolve_load_order(ms);
  EXPECT_THAT(names(r),
              ElementsAre("memory", "ok_caret", "ok_eq", "ok_ge", "ok_range", "ok_tilde"));
  EXPECT_THAT(
      reasons(r),
      ElementsAre(
          Pair("bad_caret",
               "module \"bad_caret\" needs \"memory^2\", but \"memory\" is version "
               "1.4.2"),
          Pair("bad_ge",
               "module \"bad_ge\" needs \"memory>=2.0\", but \"memory\" is version 1.4.2"),
          Pair("bad_lt",
               "module \"bad_lt\" needs \"memory<1.4.2\", but \"memory\" is version 1.4.2"),
          Pair("bad_tilde",
               "module \"bad_tilde\" needs \"memory~1.3\", but \"memory\" is version 1.4.2")));
}

TEST(DependencyGraphTest, DuplicateNamesAreAmbiguous) {
  Manifest first = module("twin");
  Manifest second = module("twin");
  second.path = "other/twin/manifest.yaml";
  ResolvedOrder r = resolve_load_order({first, second, module("user", {"twin"})});
  EXPECT_THAT(names(r), IsEmpty());
  EXPECT_THAT(reasons(r),
              ElementsAre(Pair("twin",
                               "module \"twin\" is defined more than once: "
                               "modules/twin/manifest.yaml, other/twin/manifest.yaml"),
                          Pair("user",
                               "module \"user\" needs \"twin\", which failed: module \"twin\" is "
                               "defined more than once: modules/twin/manifest.yaml, "
                               "other/twin/manifest.yaml")));
}

TEST(DependencyGraphTest, FixtureManifests) {
  const std::filesystem::path dir =
      std::filesystem::path(LOTUS_SOURCE_DIR) / "tests" / "fixtures" / "manifests";
  std::vector<Manifest> ms;
  for (const char* name : {"cycle_a", "cycle_b", "needs_missing", "code_assistant"}) {
    Result<Manifest> m = load_manifest(dir / name / "manifest.yaml");
    ASSERT_TRUE(m.ok()) << m.status();
    ms.push_back(*std::move(m));
  }
  ms.push_back(module("reasoning", {"memory", "providers"}, "critical"));
  ms.push_back(module("memory", {}, "critical"));
  ms.push_back(module("providers", {}, "critical"));
  ResolvedOrder r = resolve_load_order(ms);
  EXPECT_THAT(names(r), ElementsAre("memory", "providers", "reasoning", "code_assistant"));
  EXPECT_THAT(reasons(r),
              ElementsAre(Pair("cycle_a", "dependency cycle: cycle_a -> cycle_b -> cycle_a"),
                          Pair("cycle_b", "dependency cycle: cycle_a -> cycle_b -> cycle_a"),
                          Pair("needs_missing",
                               "module \"needs_missing\" needs \"ghost\", which "
                               "is not available")));
}

}  // namespace
}  // namespace lotus
