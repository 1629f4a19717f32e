// Boots a real nucleus with the built-in shell module confined to a
// temporary folder and runs real commands through tool.shell.run: exit codes,
// signals, the timeout killing a command and everything it started, output
// caps, the working folder rule, the environment and argument errors.
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "../common/tool_test_support.h"
#include "lotus/manifest.h"

namespace lotus::tools {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

// True while `pid` is a live process (a zombie counts as gone).
bool alive(pid_t pid) {
  std::ifstream stat(cat("/proc/", pid, "/stat"));
  std::string text;
  if (!std::getline(stat, text)) return false;
  auto close = text.rfind(')');
  return close != std::string::npos && close + 2 < text.size() && text[close + 2] != 'Z';
}

pid_t read_pid(const fs::path& file) {
  std::ifstream in(file);
  pid_t pid = 0;
  in >> pid;
  return pid;
}

bool eventually_dead(pid_t pid) {
  for (int i = 0; i < 100 && alive(pid); ++i) std::this_thread::sleep_for(5ms);
  return !alive(pid);
}

class ShellModuleTest : public testing::ToolModuleFixture {
 protected:
  void boot_shell(Json config = Json::object()) {
    boot({"tools/shell"}, {{"shell", std::move(config)}});
  }
  Json run(Json args) { return ok("shell", "run", std::move(args)); }
  std::string refused(Json args) { return error("shell", "run", std::move(args)); }
};

TEST(ShellManifest, DeclaresRunWithItsSchemaAndPermission) {
  auto manifest =
      load_manifest(fs::path(LOTUS_SOURCE_DIR) / "modules" / "tools" / "shell" / "manifest.yaml");
  ASSERT_TRUE(manifest.ok()) << message_of(manifest.status());
  const Manifest::Tool* run = manifest->find_tool("run");
  ASSERT_NE(run, nullptr);
  for (const char* property :
       {"command", "argv", "cwd", "timeout_seconds", "env", "max_output_bytes"}) {
    EXPECT_TRUE(run->parameters["properties"][property].contains("description")) << property;
  }
  EXPECT_EQ(manifest->permissions, std::vector<std::string>{"process.exec"});
  EXPECT_EQ(manifest->config_defaults["default_timeout_seconds"], 30.0);
}

TEST_F(ShellModuleTest, RunsACommandLineAndReportsExitCodesAndOutput) {
  boot_shell();
  Json hello = run({{"command", "echo hello; echo oops >&2"}});
  EXPECT_EQ(hello["exit_code"], 0);
  EXPECT_TRUE(hello["signal"].is_null());
  EXPECT_EQ(hello["timed_out"], false);
  EXPECT_EQ(hello["stdout"], "hello\n");
  EXPECT_EQ(hello["stderr"], "oops\n");
  EXPECT_EQ(hello["cwd"], root_.string());
  EXPECT_GE(hello["duration_seconds"].get<double>(), 0.0);

  Json failed = run({{"command", "echo partial; exit 3"}});
  EXPECT_EQ(failed["exit_code"], 3);
  EXPECT_EQ(failed["stdout"], "partial\n");
  Json missing = run({{"command", "no-such-command-lotus"}});
  EXPECT_EQ(missing["exit_code"], 127);
  EXPECT_THAT(missing["stderr"].get<std::string>(), HasSubstr("not found"));

  Json killed = run({{"command", "kill -TERM $$"}});
  EXPECT_TRUE(killed["exit_code"].is_null());
  EXPECT_EQ(killed["signal"], "SIGTERM");
  EXPECT_EQ(run({{"command", "cat"}})["stdout"], "") << "stdin is empty, not the terminal";
}

TEST_F(ShellModuleTest, RunsAnArgvListWithoutAShell) {
  boot_shell();
  Json result = run({{"argv", {"printf", "%s|%s", "a b", "$HOME"}}});
  EXPECT_EQ(result["stdout"], "a b|$HOME");
  EXPECT_THAT(refused({{"argv", {"no-such-program-lotus"}}}), HasSubstr("argv[0]: cannot run"));
}

TEST_F(ShellModuleTest, WorkingFolderMustBeInsideTheRoots) {
  fs::create_directories(root() / "sub");
  fs::create_directory_symlink(outside(), root() / "out");
  boot_shell();
  EXPECT_EQ(run({{"command", "pwd"}, {"cwd", "sub"}})["stdout"], (root_ / "sub").string() + "\n");
  EXPECT_EQ(run({{"argv", {"pwd"}}, {"cwd", (root_ / "sub").string()}})["stdout"],
            (root_ / "sub").string() + "\n");
  for (const std::string& cwd : {std::string(".."), outside_.string(), std::string("out"),
                                 std::string("sub/../../outside"), std::string("/")}) {
    EXPECT_THAT(refused({{"command", "pwd"}, {"cwd", cwd}}),
                HasSubstr("cwd: \"" + cwd + "\" is outside the allowed folders"));
  }
  EXPECT_THAT(refused({{"command", "pwd"}, {"cwd", "nope"}}), HasSubstr("not an existing folder"));
}

TEST_F(ShellModuleTest, TimeoutKillsTheCommandAndEverythingItStarted) {
  boot_shell();
  const auto start = std::chrono::steady_clock::now();
  Json result = run({{"command", "sleep 30 & echo $! > child.pid; echo started; sleep 30"},
                     {"timeout_seconds", 0.3}});
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(result["timed_out"], true);
  EXPECT_EQ(result["signal"], "SIGKILL");
  EXPECT_TRUE(result["exit_code"].is_null());
  EXPECT_EQ(result["stdout"], "started\n") << "output before the kill is kept";
  EXPECT_LT(took, 2s);
  pid_t child = read_pid(root() / "child.pid");
  ASSERT_GT(child, 0);
  EXPECT_TRUE(eventually_dead(child)) << "the background sleep outlived the timeout";
}

TEST_F(ShellModuleTest, BackgroundProcessesAreKilledWhenTheCommandExits) {
  boot_shell();
  const auto start = std::chrono::steady_clock::now();
  Json result = run({{"command", "sleep 30 & echo $!"}});
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s) << "the pipe holder did not block";
  EXPECT_EQ(result["exit_code"], 0);
  pid_t child = std::stoi(result["stdout"].get<std::string>());
  EXPECT_TRUE(eventually_dead(child));
}

TEST_F(ShellModuleTest, OutputIsCutWithAMarker) {
  boot_shell({{"max_output_bytes", 1000}});
  Json result = run({{"command", "head -c 100000 /dev/zero | tr '\\0' a; echo tail >&2"}});
  const std::string out = result["stdout"];
  EXPECT_EQ(out.substr(0, 1000), std::string(1000, 'a'));
  EXPECT_THAT(out.substr(1000), HasSubstr("99000 more bytes cut; the output was 100000 bytes"));
  EXPECT_EQ(result["stdout_bytes"], 100000);
  EXPECT_EQ(result["stderr"], "tail\n");
  Json smaller = run({{"command", "printf 0123456789"}, {"max_output_bytes", 4}});
  EXPECT_THAT(smaller["stdout"].get<std::string>(), ::testing::StartsWith("0123\n[... 6 more"));
  // Bytes that are not UTF-8 reach the model as U+FFFD, never as broken JSON.
  EXPECT_EQ(run({{"command", "printf 'caf\\351'"}})["stdout"], "caf\xEF\xBF\xBD");
}

TEST_F(ShellModuleTest, EnvironmentHasAdditionsAndNoSecrets) {
  ::setenv("LOTUS_SHELL_TEST_API_KEY", "sk-should-not-leak", 1);
  ::setenv("LOTUS_SHELL_TEST_VISIBLE", "seen", 1);
  boot_shell();
  Json result =
      run({{"command", "env"}, {"env", {{"EXTRA", "1"}, {"LOTUS_SHELL_TEST_VISIBLE", "x"}}}});
  const std::string env = result["stdout"];
  EXPECT_THAT(env, HasSubstr("EXTRA=1\n"));
  EXPECT_THAT(env, HasSubstr("LOTUS_SHELL_TEST_VISIBLE=x\n"));
  EXPECT_THAT(env, Not(HasSubstr("sk-should-not-leak")));
  ::unsetenv("LOTUS_SHELL_TEST_API_KEY");
  ::unsetenv("LOTUS_SHELL_TEST_VISIBLE");
}

TEST_F(ShellModuleTest, DefendsAgainstWrongArguments) {
  boot_shell({{"max_timeout_seconds", 5.0}});
  EXPECT_THAT(refused(Json::object()), HasSubstr("command: required"));
  EXPECT_THAT(refused({{"command", 5}}), HasSubstr("command: expected a string"));
  EXPECT_THAT(refused({{"command", "ls"}, {"argv", {"ls"}}}), HasSubstr("not both"));
  EXPECT_THAT(refused({{"argv", {"ls", 3}}}), HasSubstr("argv[1]: expected a string"));
  EXPECT_THAT(refused({{"argv", Json::array()}}), HasSubstr("argv: expected a non-empty list"));
  EXPECT_THAT(refused({{"command", "ls"}, {"timeout_seconds", "soon"}}),
              HasSubstr("timeout_seconds: expected a number"));
  EXPECT_THAT(refused({{"command", "ls"}, {"timeout_seconds", 60}}),
              HasSubstr("max_timeout_seconds"));
  EXPECT_THAT(refused({{"command", "ls"}, {"env", {{"A", 1}}}}), HasSubstr("env.A: expected"));
  EXPECT_THAT(refused({{"command", "ls"}, {"env", {{"A=B", "1"}}}}), HasSubstr("not a variable"));
  EXPECT_THAT(refused({{"command", "ls"}, {"cwd", 7}}), HasSubstr("cwd: expected a path"));
  EXPECT_THAT(refused({{"command", "ls"}, {"max_output_bytes", 0}}),
              HasSubstr("max_output_bytes: must be"));
}

TEST_F(ShellModuleTest, ARunningCommandHoldsNoBusThread) {
  // One bus thread only: if the shell module held it while its command runs,
  // the fs call below could not be answered before the command ends.
  boot({"tools/shell", "tools/fs"}, {}, /*threads=*/1);
  std::thread slow([&] { run({{"command", "sleep 0.6"}}); });
  std::this_thread::sleep_for(100ms);
  const auto start = std::chrono::steady_clock::now();
  Json listed = ok("fs", "list", Json::object());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 300ms);
  EXPECT_EQ(listed["path"], root_.string());
  slow.join();
}

}  // namespace
}  // namespace lotus::tools
