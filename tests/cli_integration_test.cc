// Runs the lotus command as a user would, in a private HOME.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lotus/event.h"
#include "support/test_env.h"
#include "testing/http_replay_server.h"

namespace lotus {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

class CliTest : public ::testing::Test {
 protected:
  std::map<std::string, std::string> env() const {
    return {{"HOME", (dir_.path() / "home").string()},
            {"XDG_CONFIG_HOME", (dir_.path() / "config").string()},
            {"XDG_DATA_HOME", (dir_.path() / "data").string()},
            {"LOTUS_MODULE_PATH", (dir_.path() / "modules").string()}};
  }
  testing::Child start(std::vector<std::string> args) {
    args.insert(args.begin(), LOTUS_BINARY);
    return testing::Child(args, env(), dir_.path() / ("out" + std::to_string(runs_++) + ".txt"));
  }
  testing::ProcessResult run(std::vector<std::string> args, const std::string& input = "") {
    testing::Child child = start(std::move(args));
    child.write_input(input);
    child.close_input();
    return child.wait(60s);
  }
  void add_module(const std::string& name) {
    testing::copy_folder(std::filesystem::path(LOTUS_TEST_MODULES_DIR) / name,
                         dir_.path() / "modules" / name);
  }
  void add_fixture(const std::string& name) {
    testing::copy_folder(std::filesystem::path(LOTUS_FIXTURES_DIR) / "manifests" / name,
                         dir_.path() / "modules" / name);
  }

  testing::TempDir dir_;
  int runs_ = 0;
};

TEST_F(CliTest, VersionAndHelp) {
  auto version = run({"--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_THAT(version.output, HasSubstr("lotus " LOTUS_VERSION));
  auto help = run({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (auto command : {"check", "modules", "health", "events", "config"}) {
    EXPECT_THAT(help.output, HasSubstr(command));
  }
  auto check_help = run({"check", "--help"});
  EXPECT_THAT(check_help.output, HasSubstr("load order"));
  auto bad = run({"--no-such-flag"});
  EXPECT_NE(bad.exit_code, 0);
}

TEST_F(CliTest, CheckReportsEveryKindOfManifestError) {
  auto result = run({"check", LOTUS_FIXTURES_DIR "/manifests"});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("bad_version/manifest.yaml:"));
  EXPECT_THAT(result.output, HasSubstr("dependency cycle"));
  EXPECT_THAT(result.output, HasSubstr("\"ghost\""));
  EXPECT_THAT(result.output, HasSubstr("errors"));
}

TEST_F(CliTest, CheckPrintsTheLoadOrderOfGoodModules) {
  add_module("counter");
  add_module("thrower");
  auto result = run({"check"});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("load order:"));
  EXPECT_THAT(result.output, HasSubstr("counter"));
  EXPECT_THAT(result.output, HasSubstr("0 errors"));
  auto missing = run({"check", (dir_.path() / "nowhere").string()});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.output, HasSubstr("not a folder"));
}

TEST_F(CliTest, ModulesAndHealthBootAndReport) {
  add_module("counter");
  add_module("crashloop");
  auto modules = run({"modules"});
  EXPECT_EQ(modules.exit_code, 0) << modules.output;
  EXPECT_THAT(modules.output, HasSubstr("counter"));
  EXPECT_THAT(modules.output, HasSubstr("running"));
  EXPECT_THAT(modules.output, HasSubstr("failed"));
  auto health = run({"health", "--json"});
  EXPECT_EQ(health.exit_code, 1) << "a failed module makes health degraded";
  EXPECT_THAT(health.output, HasSubstr("\"status\": \"degraded\""));
  EXPECT_THAT(health.output, HasSubstr("\"rss_bytes\""));
}

TEST_F(CliTest, InteractiveSessionPublishesLinesAndRunsCommands) {
  add_module("counter");
  auto result = run({}, "hello there\n/modules\n/quit\n");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("no module handles perception.user_input"));
  EXPECT_THAT(result.output, HasSubstr("counter"));
}

TEST_F(CliTest, BadConfigIsReportedWithFileAndKey) {
  testing::write_file(dir_.path() / "config" / "lotus" / "config.yaml", "threads: many\n");
  auto result = run({"modules"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.output, HasSubstr("config.yaml:1"));
  EXPECT_THAT(result.output, HasSubstr("threads"));
}

TEST_F(CliTest, BuiltInModulesBootAndKeepTheirFilesUnderTheDataDir) {
  const auto data = dir_.path() / "elsewhere";
  auto result =
      run({"--data-dir", data.string(), "--module-path", LOTUS_SOURCE_DIR "/modules", "modules"});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("memory"));
  EXPECT_THAT(result.output, HasSubstr("file_watcher"));
  EXPECT_THAT(result.output, HasSubstr("fs "));
  EXPECT_THAT(result.output, HasSubstr("shell "));
  EXPECT_THAT(result.output, Not(HasSubstr("failed")));
  EXPECT_TRUE(std::filesystem::exists(data / "modules" / "memory" / "memory.db"));
  EXPECT_TRUE(std::filesystem::exists(data / "state.db"));
}

TEST_F(CliTest, ProvidersSaysWhatToSet) {
  testing::write_file(dir_.path() / "config" / "lotus" / "config.yaml",
                      "llm:\n  providers:\n    claude: {type: anthropic, api_key_env: "
                      "LOTUS_TEST_UNSET_KEY}\n");
  auto result = run({"providers"});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("claude  not ready: no API key: set LOTUS_TEST_UNSET_KEY"));
  auto offline = run({"providers", "--offline"});
  EXPECT_EQ(offline.exit_code, 1) << offline.output;
  EXPECT_THAT(offline.output, HasSubstr("claude: not ready"));
  EXPECT_THAT(offline.output, HasSubstr("LOTUS_TEST_UNSET_KEY"));
  testing::write_file(dir_.path() / "config" / "lotus" / "config.yaml",
                      "llm:\n  providers:\n    claude: {type: nonsense}\n");
  auto bad = run({"providers"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.output, HasSubstr("llm.providers.claude.type"));
}

// The real binary checks an OpenAI-compatible server and an Ollama server that
// replay the documented model lists, and a port nothing listens on.
TEST_F(CliTest, ProvidersChecksEachConnection) {
  testing::HttpReplayServer compat, local;
  std::string closed;
  {
    testing::HttpReplayServer gone;
    closed = gone.base_url();
  }
  for (int i = 0; i < 2; ++i) {  // the text run, then the JSON one
    compat.enqueue(testing::ReplayResponse::json(
        200, R"({"object": "list", "data": [{"id": "qwen2.5-7b-instruct", "object": "model",
                 "created": 1700000000, "owned_by": "organization_owner"}]})"));
    local.enqueue(testing::ReplayResponse::json(
        200, R"({"models": [{"name": "llama3.1:latest", "model": "llama3.1:latest",
                 "modified_at": "2025-10-03T23:34:03.409490317-07:00", "size": 4920753328,
                 "digest": "46e0c10c039e", "details": {"format": "gguf", "family": "llama"}}]})"));
  }
  testing::write_file(dir_.path() / "config" / "lotus" / "config.yaml",
                      "llm:\n  providers:\n"
                      "    lmstudio: {type: openai, base_url: \"" +
                          compat.base_url() +
                          "/v1\"}\n"
                          "    local: {type: ollama, base_url: \"" +
                          local.base_url() +
                          "\"}\n"
                          "    offline-box: {type: ollama, base_url: \"" +
                          closed +
                          "\"}\n"
                          "  models:\n"
                          "    qwen: {provider: lmstudio, model: qwen2.5-7b-instruct}\n"
                          "    old: {provider: lmstudio, model: retired-model}\n"
                          "  default_model: \"local:llama3.1\"\n");
  auto result = run({"providers", "--timeout-ms", "3000"});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("lmstudio     ok  "));
  EXPECT_THAT(result.output,
              HasSubstr("(models: qwen2.5-7b-instruct ✓, retired-model ✗ not on the server)"));
  EXPECT_THAT(result.output, HasSubstr("local        ok  "));
  EXPECT_THAT(result.output, HasSubstr("(models: llama3.1 ✓)"));
  EXPECT_THAT(result.output, HasSubstr("offline-box  unreachable: cannot connect to " + closed +
                                       " (connection refused)"));

  auto json_run = run({"providers", "--json"});
  EXPECT_EQ(json_run.exit_code, 0) << json_run.output;
  Json json = Json::parse(json_run.output, nullptr, false);
  ASSERT_FALSE(json.is_discarded()) << json_run.output;
  EXPECT_EQ(json["ok"], true);
  ASSERT_EQ(json["providers"].size(), 3u);
  EXPECT_EQ(json["providers"][0]["name"], "lmstudio");
  EXPECT_EQ(json["providers"][0]["http_status"], 200);
  EXPECT_EQ(json["providers"][0]["missing"], Json::array({"retired-model"}));
  EXPECT_EQ(json["providers"][1]["state"], "ok");
  EXPECT_EQ(json["providers"][2]["state"], "unreachable");
  EXPECT_EQ(compat.requests().size(), 2u);
  EXPECT_EQ(compat.requests()[0].target, "/v1/models");
  EXPECT_EQ(local.requests()[0].target, "/api/tags");

  // Only the closed port left: nothing usable, exit 1.
  testing::write_file(
      dir_.path() / "config" / "lotus" / "config.yaml",
      "llm:\n  providers:\n    offline-box: {type: ollama, base_url: \"" + closed + "\"}\n");
  auto down = run({"providers"});
  EXPECT_EQ(down.exit_code, 1) << down.output;
  EXPECT_THAT(down.output, HasSubstr("unreachable: cannot connect to " + closed));
}

TEST_F(CliTest, EventsTailsTheBus) {
  add_module("thrower");
  testing::Child child = start({"events", "test.tick"});
  EXPECT_TRUE(child.wait_for_output("test.tick", 10s)) << child.output();
  child.signal(SIGINT);
  auto result = child.wait(10s);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, Not(HasSubstr("system.boot"))) << "only the pattern asked for";
}

TEST_F(CliTest, SigtermDuringBootShutsDownCleanly) {
  // The crash loop keeps boot busy with restarts and backoff for seconds.
  add_module("crashloop");
  add_module("counter");
  add_module("thrower");  // loads after crashloop: the signal must stop it from starting
  testing::write_file(dir_.path() / "config" / "lotus" / "config.yaml",
                      "supervision: {max_restarts: 8, backoff_initial_ms: 200, "
                      "backoff_max_ms: 2000}\n");
  testing::Child child = start({});
  std::this_thread::sleep_for(400ms);
  child.signal(SIGTERM);
  auto result = child.wait(15s);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_LT(result.elapsed, 5s) << "boot must stop at the signal, not finish its retries";
  std::string log;
  {
    std::ifstream in(dir_.path() / "data" / "lotus" / "lotus.log");
    std::stringstream s;
    s << in.rdbuf();
    log = s.str();
  }
  EXPECT_THAT(log, HasSubstr("boot interrupted"));
}

}  // namespace
}  // namespace lotus

namespace lotus {
namespace {

// `lotus ask` end to end: the real binary, the built-in modules (reasoning,
// fs, ...), the scripted provider replaying a file of model turns.
class AskTest : public CliTest {
 protected:
  void SetUp() override {
    testing::write_file(dir_.path() / "work" / "hello.txt", "hi there\n");
    testing::write_file(dir_.path() / "script.yaml", R"(responses:
  - text: "Let me look."
    tool_calls: [{name: fs__read, arguments: {path: hello.txt}}]
  - tool_calls: [{name: fs__write, arguments: {path: out.txt, content: "written"}}]
  - text: "The file says hi there."
)");
    write_config("{demo: {type: scripted, file: " + (dir_.path() / "script.yaml").string() + "}}");
  }
  void write_config(const std::string& providers) {
    testing::write_file(dir_.path() / "config" / "lotus" / "config.yaml",
                        "llm:\n  providers: " + providers +
                            "\n  default_model: demo:replay\n"
                            "modules:\n  fs: {roots: [" +
                            (dir_.path() / "work").string() + "]}\n");
  }
  testing::ProcessResult ask(std::vector<std::string> args) {
    args.insert(args.begin(), {"--module-path", LOTUS_SOURCE_DIR "/modules", "ask"});
    return run(std::move(args));
  }
};

TEST_F(AskTest, AnswersThroughToolsAndRefusesWhatNobodyApproved) {
  auto result = ask({"what does hello.txt say?"});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("The file says hi there."));
  EXPECT_THAT(result.output, HasSubstr("fs.read(path=hello.txt)"));
  EXPECT_THAT(result.output, HasSubstr("hi there"));  // the tool result shown
  // stdin is not a terminal: the write that needs approval is refused.
  EXPECT_THAT(result.output, HasSubstr("fs.write needs a person's approval"));
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "work" / "out.txt"));
}

TEST_F(AskTest, AllowRunsAToolWithoutAsking) {
  auto result = ask({"--allow", "fs.write", "what does hello.txt say?"});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(testing::read_file(dir_.path() / "work" / "out.txt"), "written");
  auto json = ask({"--json", "again"});
  EXPECT_THAT(json.output, HasSubstr("\"ok\": true"));
  EXPECT_THAT(json.output, HasSubstr("\"tool_calls\": 2"));
}

TEST_F(AskTest, WithoutAProviderItFailsSayingWhatToSet) {
  write_config("{}");
  auto result = ask({"hello?"});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("ANTHROPIC_API_KEY"));
}

}  // namespace
}  // namespace lotus
