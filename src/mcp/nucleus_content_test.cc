#include "mcp/nucleus_content.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace lotus::mcp {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<std::string> updated(std::string channel, Json data) {
  return nucleus_resources_updated_by(Event::make(std::move(channel), "nucleus", std::move(data)));
}

TEST(NucleusContentTest, AModuleChangingUpdatesItsManifestAndHealth) {
  EXPECT_THAT(updated("system.module_loaded", {{"module", "fs"}}),
              ElementsAre("lotus://health", "lotus://modules/fs/manifest"));
  EXPECT_THAT(updated("system.module_failed", {{"name", "shell"}, {"error", "x"}}),
              ElementsAre("lotus://health", "lotus://modules/shell/manifest"));
  // Health changes even when the event names no module it can tell.
  EXPECT_THAT(updated("system.module_error", {{"module", 7}}), ElementsAre("lotus://health"));
}

TEST(NucleusContentTest, AFinishedTaskUpdatesItsConversation) {
  EXPECT_THAT(updated("cognition.task_complete", {{"conversation_id", "c1"}, {"ok", true}}),
              ElementsAre("lotus://conversations/c1"));
  EXPECT_THAT(updated("cognition.task_complete", {{"ok", true}}), IsEmpty());
}

TEST(NucleusContentTest, OtherEventsUpdateNothing) {
  EXPECT_THAT(updated("system.boot", {{"module", "fs"}}), IsEmpty());
  EXPECT_THAT(updated("system.module_loaded", Json::array()), IsEmpty());
}

}  // namespace
}  // namespace lotus::mcp
