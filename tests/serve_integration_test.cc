// `lotus serve` as a user runs it: the daemon starts, says where it listens
// and how to get in, keeps its token private, answers over HTTP, and stops
// cleanly on SIGTERM.
#include <signal.h>
#include <sys/stat.h>

#include <regex>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/api_client.h"
#include "lotus/event.h"
#include "support/test_env.h"

namespace lotus {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

class ServeTest : public ::testing::Test {
 protected:
  // The built-in modules (reasoning, memory, fs, shell, file_watcher) load
  // from the source tree, as for a user.
  std::map<std::string, std::string> env() const {
    return {{"HOME", (dir_.path() / "home").string()},
            {"XDG_CONFIG_HOME", (dir_.path() / "config").string()},
            {"XDG_DATA_HOME", (dir_.path() / "data").string()}};
  }
  std::unique_ptr<testing::Child> serve(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {LOTUS_BINARY, "serve", "--port", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<testing::Child>(
        args, env(), dir_.path() / ("serve" + std::to_string(runs_++) + ".txt"));
  }
  // The port the daemon printed.
  static uint16_t port_of(const std::string& output) {
    std::smatch match;
    std::regex pattern("serving on http://127\\.0\\.0\\.1:([0-9]+)");
    if (!std::regex_search(output, match, pattern)) return 0;
    return static_cast<uint16_t>(std::stoi(match[1]));
  }

  testing::TempDir dir_;
  int runs_ = 0;
};

TEST_F(ServeTest, StartsAnswersAndStopsCleanly) {
  auto daemon = serve();
  ASSERT_TRUE(daemon->wait_for_output("Ctrl-C stops", 30s)) << daemon->output();
  const std::string output = daemon->output();
  const uint16_t port = port_of(output);
  ASSERT_NE(port, 0) << output;

  const fs::path token_file = dir_.path() / "config/lotus/api-token";
  const std::string token = testing::read_file(token_file).substr(0, 64);
  ASSERT_EQ(token.size(), 64u);
  struct stat info {};
  ASSERT_EQ(::stat(token_file.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600);
  // The UI link carries the token; the file's place is said too.
  EXPECT_THAT(output, HasSubstr("/#token=" + token));
  EXPECT_THAT(output, HasSubstr(token_file.string()));

  const fs::path daemon_file = dir_.path() / "data/lotus/daemon.json";
  Json info_json = Json::parse(testing::read_file(daemon_file), nullptr, false);
  EXPECT_EQ(info_json.value("url", ""), "http://127.0.0.1:" + std::to_string(port));

  api::ApiClient client("127.0.0.1", port);
  EXPECT_EQ(client.get("/health").status, 200);
  EXPECT_EQ(client.get("/api/modules").status, 401);
  client.set_token(token);
  auto modules = client.get("/api/modules");
  EXPECT_EQ(modules.status, 200) << modules.body;

  daemon->signal(SIGTERM);
  auto result = daemon->wait(30s);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_FALSE(fs::exists(daemon_file));
  EXPECT_FALSE(client.get("/health").error.empty());  // nobody listens any more

  // A second start keeps the same token, so clients keep working.
  auto again = serve();
  ASSERT_TRUE(again->wait_for_output("Ctrl-C stops", 30s)) << again->output();
  EXPECT_THAT(again->output(), HasSubstr("/#token=" + token));
  again->signal(SIGINT);
  EXPECT_EQ(again->wait(30s).exit_code, 0);
}

TEST_F(ServeTest, ATakenPortOrABadConfigIsAClearError) {
  auto first = serve();
  ASSERT_TRUE(first->wait_for_output("Ctrl-C stops", 30s)) << first->output();
  const uint16_t port = port_of(first->output());
  ASSERT_NE(port, 0);

  auto second = std::make_unique<testing::Child>(
      std::vector<std::string>{LOTUS_BINARY, "serve", "--port", std::to_string(port)}, env(),
      dir_.path() / "second.txt");
  auto taken = second->wait(30s);
  EXPECT_EQ(taken.exit_code, 1);
  EXPECT_THAT(taken.output, HasSubstr("port is in use"));
  EXPECT_THAT(taken.output, HasSubstr(std::to_string(port)));
  first->signal(SIGTERM);
  EXPECT_EQ(first->wait(30s).exit_code, 0);

  testing::write_file(dir_.path() / "config/lotus/config.yaml", "api:\n  prot: 80\n");
  auto typo = serve();
  auto refused = typo->wait(30s);
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_THAT(refused.output, HasSubstr("api: unknown key \"prot\""));
}

TEST_F(ServeTest, TheCliTalksToARunningDaemon) {
  testing::write_file(dir_.path() / "config/lotus/config.yaml", R"(llm:
  providers:
    script:
      type: scripted
      script:
        - {text: "Adding it.", tool_calls: [{id: c1, name: shell__run, arguments: {command: "echo 40"}}]}
        - {text: "The daemon answered."}
  default_model: script:replay
)");
  auto daemon = serve();
  ASSERT_TRUE(daemon->wait_for_output("Ctrl-C stops", 30s)) << daemon->output();
  const uint16_t port = port_of(daemon->output());
  api::ApiClient client("127.0.0.1", port);
  client.set_token(testing::read_file(dir_.path() / "config/lotus/api-token").substr(0, 64));

  auto run = [&](std::vector<std::string> args, std::chrono::seconds limit = 60s) {
    args.insert(args.begin(), LOTUS_BINARY);
    testing::Child child(args, env(), dir_.path() / ("cli" + std::to_string(runs_++) + ".txt"));
    child.close_input();
    return child.wait(limit);
  };

  // A module unloaded in the daemon is gone from `lotus modules`: it asked
  // the daemon, it did not boot modules of its own.
  ASSERT_EQ(client.post("/api/modules/file_watcher/unload").status, 200);
  auto modules = run({"modules"});
  EXPECT_EQ(modules.exit_code, 0) << modules.output;
  EXPECT_THAT(modules.output, HasSubstr("reasoning"));
  EXPECT_THAT(modules.output, ::testing::Not(HasSubstr("file_watcher")));
  auto standalone = run({"--standalone", "modules"});
  EXPECT_THAT(standalone.output, HasSubstr("file_watcher"));

  auto health = run({"health", "--json"});
  Json parsed = Json::parse(health.output.substr(health.output.find('{')), nullptr, false);
  ASSERT_TRUE(parsed.is_object()) << health.output;
  EXPECT_FALSE(parsed["modules"].contains("file_watcher"));

  // lotus events follows the daemon's bus.
  testing::Child events({LOTUS_BINARY, "events", "test.*"}, env(), dir_.path() / "events.txt");
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    client.post("/api/events", Json{{"channel", "test.ping"}, {"data", {{"n", i}}}});
    seen = events.wait_for_output("test.ping", 100ms);
  }
  EXPECT_TRUE(seen) << events.output();
  events.signal(SIGINT);
  EXPECT_EQ(events.wait(30s).exit_code, 0);

  // lotus ask runs the task in the daemon; --allow answers its approval.
  auto ask = run({"ask", "--allow", "shell.run", "--conversation", "through-daemon", "add it"});
  EXPECT_EQ(ask.exit_code, 0) << ask.output;
  EXPECT_THAT(ask.output, HasSubstr("The daemon answered."));
  auto history = client.get("/api/conversations/through-daemon");
  EXPECT_EQ(history.status, 200) << history.body;
  EXPECT_THAT(history.body, HasSubstr("The daemon answered."));

  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(30s).exit_code, 0);
}

TEST_F(ServeTest, LotusMemoryGoesThroughARunningDaemon) {
  auto daemon = serve();
  ASSERT_TRUE(daemon->wait_for_output("Ctrl-C stops", 30s)) << daemon->output();
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), LOTUS_BINARY);
    testing::Child child(args, env(), dir_.path() / ("cli" + std::to_string(runs_++) + ".txt"));
    child.close_input();
    return child.wait(60s);
  };
  auto added = run({"memory", "add", "--json", "The", "boiler", "is", "serviced", "in", "March"});
  ASSERT_EQ(added.exit_code, 0) << added.output;
  Json memory = Json::parse(added.output.substr(added.output.find('{')), nullptr, false);
  ASSERT_TRUE(memory.is_object()) << added.output;
  const std::string id = memory.value("id", "");
  ASSERT_FALSE(id.empty()) << added.output;

  // The daemon's memory module holds it: a search through the daemon finds it
  // at once, and the daemon's stats count it.
  auto found = run({"memory", "search", "when is the boiler serviced"});
  EXPECT_EQ(found.exit_code, 0) << found.output;
  EXPECT_THAT(found.output, HasSubstr(id));
  auto stats = run({"memory", "stats"});
  EXPECT_EQ(stats.exit_code, 0) << stats.output;
  EXPECT_THAT(stats.output, HasSubstr("daemon       http://127.0.0.1:"));
  EXPECT_THAT(stats.output, ::testing::ContainsRegex("total +1\n"));

  auto refused = run({"memory", "reindex"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.output, HasSubstr("lotus serve is running"));
  auto bad = run({"memory", "add", "--importance", "3", "too", "important"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.output, HasSubstr("importance"));

  auto forgot = run({"memory", "forget", "--yes", id});
  EXPECT_EQ(forgot.exit_code, 0) << forgot.output;
  EXPECT_THAT(forgot.output, HasSubstr("forgot 1 memory"));
  auto gone = run({"memory", "search", "boiler", "serviced"});
  EXPECT_THAT(gone.output, HasSubstr("no memories match"));

  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(30s).exit_code, 0);
}

}  // namespace
}  // namespace lotus
