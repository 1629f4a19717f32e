#include "runtime/module_factory.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/thread_pool.hpp>

#include "lotus/strings.h"
#include "testing/sync_wait.h"

namespace lotus {
namespace {

using ::testing::HasSubstr;

class BuiltinProbe : public Module {
 public:
  Task<void> initialize() override {
    on("poke", [](const Event&) -> Task<void> { co_return; });
    co_return;
  }
};

const RegisterBuiltinModule<BuiltinProbe> registered("builtin_probe");

Manifest manifest_named(const std::string& name, const std::string& extra = "") {
  auto parsed = parse_manifest("name: " + name + "\nversion: \"1.0.0\"\ntype: core\n" + extra,
                               "/modules/" + name + "/manifest.yaml");
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return *parsed;
}

TEST(ModuleFactoryTest, CreatesBuiltInModulesByName) {
  auto factory = make_module_factory(manifest_named("builtin_probe"), "/tmp");
  ASSERT_TRUE(factory.ok()) << factory.status();
  EXPECT_EQ((*factory)->origin(), "built in");
  auto first = (*factory)->create();
  auto second = (*factory)->create();
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(second.ok());
  EXPECT_NE(first->get(), second->get()) << "each create() is a fresh instance";
}

TEST(ModuleFactoryTest, UnknownBuiltInSaysWhatIsMissing) {
  auto factory = make_module_factory(manifest_named("nobody"), "/tmp");
  ASSERT_EQ(factory.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(message_of(factory.status())),
              HasSubstr("no built-in module named \"nobody\" and no runtime.library given"));
}

TEST(ModuleFactoryTest, MissingPluginLibraryNamesThePath) {
  auto factory =
      make_module_factory(manifest_named("plugged", "runtime: {library: libplugged.so}\n"), "/tmp");
  ASSERT_EQ(factory.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(message_of(factory.status())),
              HasSubstr("/modules/plugged/libplugged.so: plugin library not found"));
}

TEST(ModuleFactoryTest, LuaRuntimeIsReportedAsNotYetSupported) {
  auto factory = make_module_factory(
      manifest_named("scripted", "runtime: {kind: lua, entry: main.lua}\n"), "/tmp");
  ASSERT_EQ(factory.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(message_of(factory.status())), HasSubstr("\"lua\""));
}

class Refuser : public Module {
 public:
  explicit Refuser(bool permanent) : permanent_(permanent) {}
  Task<void> initialize() override {
    if (permanent_) throw PermanentError("no device /dev/null0");
    throw std::runtime_error("busy, try later");
    co_return;
  }

 private:
  bool permanent_;
};

TEST(ModuleLifecycleTest, PermanentErrorsAreNotRetriedOthersAre) {
  boost::asio::thread_pool pool(1);
  Refuser permanent(true);
  Status status =
      testing::sync_wait(pool.get_executor(), permanent.invoke_lifecycle(permanent.initialize()));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(message_of(status), "no device /dev/null0");
  Refuser transient(false);
  status =
      testing::sync_wait(pool.get_executor(), transient.invoke_lifecycle(transient.initialize()));
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  pool.join();
}

}  // namespace
}  // namespace lotus
