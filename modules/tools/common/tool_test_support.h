// ToolModuleFixture: boots a real nucleus with built-in tool modules (their
// manifests copied from the source tree) on a temporary folder, and calls
// their tools over the bus exactly as the reasoning engine will.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/module_host.h"
#include "core/nucleus.h"
#include "lotus/strings.h"
#include "testing/sync_wait.h"
#include "testing/temp_dir.h"

namespace lotus::tools::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class ToolModuleFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    fs::create_directories(root());
    fs::create_directories(outside());
    root_ = fs::canonical(root());
    outside_ = fs::canonical(outside());
  }
  void TearDown() override {
    if (nucleus_) {
      EXPECT_TRUE(nucleus_->shutdown().ok());
    }
    nucleus_.reset();
  }

  // The folder the tools are allowed to touch, and one beside it they are not.
  fs::path root() const { return dir_.path() / "root"; }
  fs::path outside() const { return dir_.path() / "outside"; }

  // Boots `modules` (type/name under modules/, e.g. "tools/fs") with
  // `config` per module name; roots default to {root()}.
  void boot(const std::vector<std::string>& modules, std::map<std::string, Json> config = {},
            size_t threads = 2) {
    Config c;
    c.module_dirs = {dir_.path() / "modules"};
    c.data_dir = dir_.path() / "data";
    c.threads = threads;
    c.shutdown_deadline = 2000ms;
    for (const std::string& module : modules) {
      const std::string name = fs::path(module).filename().string();
      fs::create_directories(dir_.path() / "modules" / name);
      fs::copy_file(fs::path(LOTUS_SOURCE_DIR) / "modules" / module / "manifest.yaml",
                    dir_.path() / "modules" / name / "manifest.yaml",
                    fs::copy_options::overwrite_existing);
      Json module_config{{"roots", Json::array({root_.string()})}};
      if (auto it = config.find(name); it != config.end()) module_config.update(it->second);
      c.module_config[name] = std::move(module_config);
    }
    nucleus_ = std::make_unique<Nucleus>(std::move(c));
    ASSERT_TRUE(nucleus_->boot().ok());
    for (const auto& m : nucleus_->modules()) {
      ASSERT_EQ(m.state, "running") << m.name << ": " << m.error;
    }
  }

  // The reply to a tool call: {"ok": true, "result": ...} or
  // {"ok": false, "error": "..."}.
  Json call(std::string_view module, std::string_view tool, Json arguments,
            std::chrono::milliseconds timeout = 10s) {
    Event event = Event::make(ModuleHost::tool_channel(module, tool), "tester",
                              Json{{"arguments", std::move(arguments)}});
    auto reply = lotus::testing::sync_wait(nucleus_->bus().executor(),
                                           nucleus_->bus().request(std::move(event), timeout));
    if (!reply.ok())
      return Json{{"ok", false}, {"error", cat("bus: ", message_of(reply.status()))}};
    return (*reply)->data;
  }

  // The result of a call expected to succeed (an empty object otherwise,
  // with the failure recorded).
  Json ok(std::string_view module, std::string_view tool, Json arguments) {
    Json reply = call(module, tool, std::move(arguments));
    EXPECT_EQ(reply.value("ok", false), true) << module << "." << tool << ": " << reply.dump();
    return reply.value("result", Json::object());
  }

  // The error of a call expected to fail ("" otherwise, recorded).
  std::string error(std::string_view module, std::string_view tool, Json arguments) {
    Json reply = call(module, tool, std::move(arguments));
    EXPECT_EQ(reply.value("ok", true), false) << module << "." << tool << ": " << reply.dump();
    return reply.value("error", std::string());
  }

  Nucleus& nucleus() { return *nucleus_; }

  lotus::testing::TempDir dir_;
  fs::path root_;     // root(), resolved
  fs::path outside_;  // outside(), resolved
  std::unique_ptr<Nucleus> nucleus_;
};

}  // namespace lotus::tools::testing
