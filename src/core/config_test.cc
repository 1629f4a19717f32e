#include "core/config.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace lotus {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// ::testing::StartsWith does not take absl::string_view, which Status::message() returns here.
MATCHER_P(StartsWith, prefix, "starts with \"" + std::string(prefix) + "\"") {
  return std::string(arg).rfind(prefix, 0) == 0;
}

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::path(::testing::TempDir()) / "config_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    home_ = pattern;
    env_["HOME"] = home_.string();
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(default_file(), fs::perms::owner_all, ec);
    fs::remove_all(home_, ec);
  }

  ConfigSources sources() {
    ConfigSources sources;
    sources.env = [this](const char* name) -> std::optional<std::string> {
      auto it = env_.find(name);
      if (it == env_.end()) return std::nullopt;
      return it->second;
    };
    sources.builtin_modules_dir = "/opt/lotus/modules";
    return sources;
  }

  fs::path default_file() const { return home_ / ".config" / "lotus" / "config.yaml"; }

  void write(const fs::path& file, std::string_view text) {
    fs::create_directories(file.parent_path());
    std::ofstream(file) << text;
  }

  // Loads with `text` as the default config file; returns the error message.
  std::string error_for(std::string_view text) {
    write(default_file(), text);
    Result<Config> config = load_config(sources());
    EXPECT_FALSE(config.ok()) << "expected an error for:\n" << text;
    return config.ok() ? "" : std::string(config.status().message());
  }

  Config load_ok(const ConfigSources& from) {
    Result<Config> config = load_config(from);
    EXPECT_TRUE(config.ok()) << config.status();
    return config.ok() ? *config : Config{};
  }

  fs::path home_;
  std::map<std::string, std::string> env_;
};

TEST_F(ConfigTest, DefaultsWithoutFileOrEnvironment) {
  Config config = load_ok(sources());
  EXPECT_THAT(config.module_dirs,
              ElementsAre(fs::path("/opt/lotus/modules"), home_ / ".local/share/lotus/modules"));
  EXPECT_EQ(config.data_dir, home_ / ".local/share/lotus");
  EXPECT_EQ(config.bus, "local");
  EXPECT_EQ(config.threads, 0u);
  EXPECT_GE(config.effective_threads(), 1u);
  EXPECT_EQ(config.idle_spin, std::chrono::microseconds(100));
  EXPECT_EQ(config.log_level, "info");
  EXPECT_EQ(config.shutdown_deadline, std::chrono::milliseconds(5000));
  EXPECT_EQ(config.supervision.max_restarts, 5);
  EXPECT_EQ(config.supervision.window, std::chrono::seconds(60));
  EXPECT_EQ(config.supervision.backoff_initial, std::chrono::milliseconds(100));
  EXPECT_EQ(config.supervision.backoff_max, std::chrono::milliseconds(30000));
  EXPECT_TRUE(config.module_config.empty());
  EXPECT_TRUE(config.disabled_modules.empty());
  EXPECT_TRUE(config.config_file.empty());
}

TEST_F(ConfigTest, XdgDataHomeMovesDataAndModulesUnlessRelative) {
  env_["XDG_DATA_HOME"] = "/xdg/data";
  Config config = load_ok(sources());
  EXPECT_EQ(config.data_dir, fs::path("/xdg/data/lotus"));
  EXPECT_THAT(config.module_dirs,
              ElementsAre(fs::path("/opt/lotus/modules"), fs::path("/xdg/data/lotus/modules")));

  env_["XDG_DATA_HOME"] = "relative/data";  // the XDG spec says to ignore it
  EXPECT_EQ(load_ok(sources()).data_dir, home_ / ".local/share/lotus");
}

TEST_F(ConfigTest, NoBuiltinDirMeansOnlyTheUserModuleDir) {
  ConfigSources from = sources();
  from.builtin_modules_dir.clear();
  EXPECT_THAT(load_ok(from).module_dirs, ElementsAre(home_ / ".local/share/lotus/modules"));
}

TEST_F(ConfigTest, ReadsEveryKeyFromTheDefaultFile) {
  write(default_file(), R"(# LOTUS config
module_dirs: [/srv/modules, ~/my-modules, relative/mods]
data_dir: ~/lotus-data
bus: redis://cache.internal:6380/2
threads: 6
idle_spin_us: 250
log_level: debug
shutdown_deadline_ms: 1500
supervision:
  max_restarts: 3
  window_seconds: 30
  backoff_initial_ms: 50
  backoff_max_ms: 2000
modules:
  code_assistant:
    model: fast
    max_file_size: 100000
    ratio: 0.25
    strict: true
    quoted_number: "42"
    languages: [python, cpp]
    nothing: ~
    nested: {deep: {x: 1}}
  memory:
disabled: [voice, screen]
)");
  Config config = load_ok(sources());
  EXPECT_EQ(config.config_file, default_file());
  EXPECT_THAT(config.module_dirs, ElementsAre(fs::path("/srv/modules"), home_ / "my-modules",
                                              default_file().parent_path() / "relative/mods"));
  EXPECT_EQ(config.data_dir, home_ / "lotus-data");
  EXPECT_EQ(config.bus, "redis://cache.internal:6380/2");
  EXPECT_EQ(config.threads, 6u);
  EXPECT_EQ(config.effective_threads(), 6u);
  EXPECT_EQ(config.idle_spin, std::chrono::microseconds(250));
  EXPECT_EQ(config.log_level, "debug");
  EXPECT_EQ(config.shutdown_deadline, std::chrono::milliseconds(1500));
  EXPECT_EQ(config.supervision.max_restarts, 3);
  EXPECT_EQ(config.supervision.window, std::chrono::seconds(30));
  EXPECT_EQ(config.supervision.backoff_initial, std::chrono::milliseconds(50));
  EXPECT_EQ(config.supervision.backoff_max, std::chrono::milliseconds(2000));
  ASSERT_EQ(config.module_config.count("code_assistant"), 1u);
  const Json& overrides = config.module_config.at("code_assistant");
  EXPECT_EQ(overrides, (Json{{"model", "fast"},
                             {"max_file_size", 100000},
                             {"ratio", 0.25},
                             {"strict", true},
                             {"quoted_number", "42"},
                             {"languages", {"python", "cpp"}},
                             {"nothing", nullptr},
                             {"nested", {{"deep", {{"x", 1}}}}}}));
  EXPECT_TRUE(overrides["max_file_size"].is_number_integer());
  EXPECT_TRUE(overrides["quoted_number"].is_string());
  EXPECT_EQ(config.module_config.at("memory"), Json::object());
  EXPECT_THAT(config.disabled_modules, ElementsAre("screen", "voice"));
}

TEST_F(ConfigTest, PartialFileKeepsOtherDefaultsAndEmptyValuesKeepDefaults) {
  write(default_file(), "threads: 2\nbus:\nsupervision:\n  max_restarts: 9\n  window_seconds:\n");
  Config config = load_ok(sources());
  EXPECT_EQ(config.threads, 2u);
  EXPECT_EQ(config.bus, "local");
  EXPECT_EQ(config.supervision.max_restarts, 9);
  EXPECT_EQ(config.supervision.window, std::chrono::seconds(60));
  EXPECT_EQ(config.log_level, "info");
}

TEST_F(ConfigTest, EmptyOrCommentOnlyFileIsFine) {
  write(default_file(), "");
  EXPECT_EQ(load_ok(sources()).config_file, default_file());
  write(default_file(), "# nothing configured yet\n");
  EXPECT_EQ(load_ok(sources()).bus, "local");
}

TEST_F(ConfigTest, XdgConfigHomeIsWhereTheDefaultFileLives) {
  write(default_file(), "threads: 1\n");
  write(home_ / "xdg-config" / "lotus" / "config.yaml", "threads: 7\n");
  env_["XDG_CONFIG_HOME"] = (home_ / "xdg-config").string();
  Config config = load_ok(sources());
  EXPECT_EQ(config.threads, 7u);
  EXPECT_EQ(config.config_file, home_ / "xdg-config" / "lotus" / "config.yaml");
}

TEST_F(ConfigTest, ExplicitFileReplacesTheDefaultLocation) {
  write(default_file(), "threads: 1\n");
  write(home_ / "other.yaml", "threads: 3\n");
  ConfigSources from = sources();
  from.config_file = "~/other.yaml";
  Config config = load_ok(from);
  EXPECT_EQ(config.threads, 3u);
  EXPECT_EQ(config.config_file, home_ / "other.yaml");
}

TEST_F(ConfigTest, MissingExplicitFileIsAnErrorNamingIt) {
  ConfigSources from = sources();
  from.config_file = home_ / "nope.yaml";
  Result<Config> config = load_config(from);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(config.status().message(), HasSubstr("~/nope.yaml does not exist"));
}

TEST_F(ConfigTest, ConfigFileThatIsADirectoryIsAnError) {
  fs::create_directories(default_file());
  Result<Config> config = load_config(sources());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("is a directory"));
}

TEST_F(ConfigTest, EnvironmentOverridesTheFile) {
  write(default_file(),
        "module_dirs: [/from/file]\ndata_dir: /file/data\nbus: redis://file-host\n"
        "threads: 4\nlog_level: warn\n");
  env_["LOTUS_MODULE_PATH"] = "/env/a::~/env-b:";
  env_["LOTUS_DATA_DIR"] = "/env/data";
  env_["LOTUS_BUS"] = "local";
  env_["LOTUS_THREADS"] = "12";
  env_["LOTUS_IDLE_SPIN_US"] = "0";
  env_["LOTUS_LOG_LEVEL"] = "trace";
  Config config = load_ok(sources());
  EXPECT_THAT(config.module_dirs, ElementsAre(fs::path("/env/a"), home_ / "env-b"));
  EXPECT_EQ(config.data_dir, fs::path("/env/data"));
  EXPECT_EQ(config.bus, "local");
  EXPECT_EQ(config.threads, 12u);
  EXPECT_EQ(config.idle_spin, std::chrono::microseconds(0));
  EXPECT_EQ(config.log_level, "trace");
}

TEST_F(ConfigTest, EmptyEnvironmentVariablesCountAsUnset) {
  write(default_file(), "threads: 4\nbus: redis://file-host\n");
  env_["LOTUS_THREADS"] = "";
  env_["LOTUS_BUS"] = "";
  env_["LOTUS_MODULE_PATH"] = "";
  Config config = load_ok(sources());
  EXPECT_EQ(config.threads, 4u);
  EXPECT_EQ(config.bus, "redis://file-host");
  EXPECT_EQ(config.module_dirs.size(), 2u);
}

TEST_F(ConfigTest, EnvironmentOverridesDefaultsWithoutAFile) {
  env_["LOTUS_DATA_DIR"] = "relative-data";
  Config config = load_ok(sources());
  EXPECT_TRUE(config.data_dir.is_absolute());
  EXPECT_EQ(config.data_dir, (fs::current_path() / "relative-data").lexically_normal());
}

TEST_F(ConfigTest, CallerAppliesFlagsLastAndCanRevalidate) {
  env_["LOTUS_LOG_LEVEL"] = "debug";
  Config config = load_ok(sources());
  config.log_level = "error";  // --log-level error
  EXPECT_TRUE(validate(config).ok());
  config.log_level = "verbose";
  EXPECT_THAT(validate(config).message(), HasSubstr("log_level: unknown log level 'verbose'"));
}

TEST_F(ConfigTest, BadEnvironmentValuesNameTheVariable) {
  env_["LOTUS_THREADS"] = "many";
  EXPECT_THAT(load_config(sources()).status().message(),
              AllOf(StartsWith("LOTUS_THREADS:"), HasSubstr("got 'many'")));
  env_["LOTUS_THREADS"] = "-1";
  EXPECT_THAT(load_config(sources()).status().message(), StartsWith("LOTUS_THREADS:"));
  env_["LOTUS_THREADS"] = "4096";
  EXPECT_THAT(load_config(sources()).status().message(), StartsWith("LOTUS_THREADS:"));
  env_.erase("LOTUS_THREADS");

  env_["LOTUS_IDLE_SPIN_US"] = "forever";
  EXPECT_THAT(load_config(sources()).status().message(),
              AllOf(StartsWith("LOTUS_IDLE_SPIN_US:"), HasSubstr("between 0 and 10000"),
                    HasSubstr("got 'forever'")));
  env_["LOTUS_IDLE_SPIN_US"] = "20000";
  EXPECT_THAT(load_config(sources()).status().message(), StartsWith("LOTUS_IDLE_SPIN_US:"));
  env_.erase("LOTUS_IDLE_SPIN_US");

  env_["LOTUS_LOG_LEVEL"] = "INFO";
  EXPECT_THAT(load_config(sources()).status().message(),
              AllOf(StartsWith("LOTUS_LOG_LEVEL:"), HasSubstr("trace, debug, info")));
  env_.erase("LOTUS_LOG_LEVEL");

  env_["LOTUS_BUS"] = "kafka://broker";
  EXPECT_THAT(load_config(sources()).status().message(),
              AllOf(StartsWith("LOTUS_BUS:"), HasSubstr("redis://")));
  env_.erase("LOTUS_BUS");

  env_["LOTUS_MODULE_PATH"] = ":::";
  EXPECT_THAT(load_config(sources()).status().message(), StartsWith("LOTUS_MODULE_PATH:"));
  env_["LOTUS_MODULE_PATH"] = "~bob/modules";
  EXPECT_THAT(load_config(sources()).status().message(),
              AllOf(StartsWith("LOTUS_MODULE_PATH:"), HasSubstr("~user")));
}

TEST_F(ConfigTest, UnknownKeyListsKnownKeysAndSuggests) {
  std::string message = error_for("bus: local\nthread: 4\n");
  EXPECT_THAT(message, StartsWith("~/.config/lotus/config.yaml:2:1: unknown key 'thread'"));
  EXPECT_THAT(message, HasSubstr("did you mean 'threads'?"));
  EXPECT_THAT(message,
              HasSubstr("known keys: api, bus, data_dir, disabled, idle_spin_us, llm, log_level, "
                        "mcp, module_dirs, modules, redis, shutdown_deadline_ms, supervision, "
                        "threads, tools"));

  message = error_for("flux_capacitor: on\n");
  EXPECT_THAT(message, HasSubstr("unknown key 'flux_capacitor'; known keys:"));
  EXPECT_THAT(message, Not(HasSubstr("did you mean")));
}

TEST_F(ConfigTest, UnknownSupervisionKeyNamesItsSection) {
  std::string message = error_for("supervision:\n  max_restart: 3\n");
  EXPECT_THAT(message, StartsWith("~/.config/lotus/config.yaml:2:3: supervision: unknown key "
                                  "'max_restart' (did you mean 'max_restarts'?)"));
  EXPECT_THAT(message, HasSubstr("backoff_initial_ms, backoff_max_ms, max_restarts, "
                                 "window_seconds"));
}

TEST_F(ConfigTest, TypeErrorsNameFileLineColumnAndKeyPath) {
  EXPECT_EQ(error_for("log_level: info\nsupervision:\n  window_seconds: 10\n"
                      "  max_restarts: lots\n"),
            "~/.config/lotus/config.yaml:4:17: supervision.max_restarts: expected an integer, "
            "got 'lots'");
  EXPECT_EQ(error_for("threads: [1, 2]\n"),
            "~/.config/lotus/config.yaml:1:10: threads: expected an integer, got a list");
  EXPECT_EQ(error_for("threads: 1.5\n"),
            "~/.config/lotus/config.yaml:1:10: threads: expected an integer, got '1.5'");
  EXPECT_THAT(error_for("idle_spin_us: 60000\n"),
              HasSubstr(":1:15: idle_spin_us: must be between 0 and 10000, got 60000"));
  EXPECT_THAT(error_for("bus: {host: x}\n"),
              HasSubstr(":1:6: bus: expected 'local' or a redis:// URL, got a mapping"));
  EXPECT_THAT(error_for("data_dir: [a]\n"), HasSubstr(":1:11: data_dir: expected a path"));
  EXPECT_THAT(error_for("module_dirs: /one/dir\n"),
              HasSubstr(":1:14: module_dirs: expected a list of directories, got '/one/dir'"));
  EXPECT_THAT(error_for("module_dirs: [/ok, [nested]]\n"),
              HasSubstr("module_dirs[1]: expected a path, got a list"));
  EXPECT_THAT(error_for("supervision: 5\n"), HasSubstr(":1:14: supervision: expected a mapping"));
  EXPECT_THAT(error_for("modules: [a, b]\n"),
              HasSubstr("modules: expected a mapping of module name to config overrides"));
  EXPECT_THAT(error_for("modules:\n  memory: 5\n"),
              HasSubstr(":2:11: modules.memory: expected a mapping of config overrides, got '5'"));
  EXPECT_THAT(error_for("disabled: voice\n"),
              HasSubstr("disabled: expected a list of module names, got 'voice'"));
  EXPECT_THAT(error_for("disabled: [voice, {a: b}]\n"),
              HasSubstr("disabled[1]: expected a module name, got a mapping"));
  EXPECT_THAT(error_for("disabled: ['']\n"), HasSubstr("disabled[0]: module name is empty"));
}

TEST_F(ConfigTest, OutOfRangeValuesAreErrors) {
  EXPECT_THAT(error_for("threads: -1\n"), HasSubstr("threads: must be between 0 and 1024, got -1"));
  EXPECT_THAT(error_for("threads: 100000\n"), HasSubstr("threads: must be between 0 and 1024"));
  EXPECT_THAT(error_for("shutdown_deadline_ms: -5\n"), HasSubstr("shutdown_deadline_ms: must be"));
  EXPECT_THAT(error_for("supervision: {window_seconds: 0}\n"),
              HasSubstr("supervision.window_seconds: must be between 1 and"));
  EXPECT_THAT(error_for("supervision: {backoff_initial_ms: 0}\n"),
              HasSubstr("supervision.backoff_initial_ms: must be between 1 and"));
  EXPECT_THAT(error_for("threads: 99999999999999999999999\n"),
              HasSubstr("threads: expected an integer"));
}

TEST_F(ConfigTest, ToolsSectionReadsPolicyRiskAndLimits) {
  write(default_file(), R"(tools:
  policy:
    "shell.*": deny
    fs.read: allow
  risk: {medium: ask}
  timeout_ms: 1500
  approval_timeout_ms: 60000
  max_result_bytes: 4096
)");
  Config config = load_ok(sources());
  ASSERT_EQ(config.tools.policy.size(), 2u);
  EXPECT_EQ(config.tools.policy[0], (std::pair<std::string, std::string>{"shell.*", "deny"}));
  EXPECT_EQ(config.tools.policy[1], (std::pair<std::string, std::string>{"fs.read", "allow"}));
  EXPECT_EQ(config.tools.risk["medium"], "ask");
  EXPECT_EQ(config.tools.risk["high"], "ask");  // untouched default
  EXPECT_EQ(config.tools.timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(config.tools.approval_timeout, std::chrono::milliseconds(60000));
  EXPECT_EQ(config.tools.max_result_bytes, 4096u);
}

TEST_F(ConfigTest, ToolsSectionErrorsNameTheKey) {
  EXPECT_THAT(error_for("tools:\n  policy: {fs.write: maybe}\n"),
              HasSubstr("tools.policy.fs.write: expected allow, ask or deny"));
  EXPECT_THAT(error_for("tools:\n  risk: {extreme: deny}\n"), HasSubstr("unknown key 'extreme'"));
  EXPECT_THAT(error_for("tools:\n  timeout_ms: 0\n"), HasSubstr("tools.timeout_ms: must be"));
  EXPECT_THAT(error_for("tools:\n  policy: [fs.read]\n"),
              HasSubstr("tools.policy: expected a mapping of tool pattern"));
}

TEST_F(ConfigTest, BackoffMaxBelowInitialIsAnError) {
  EXPECT_THAT(error_for("supervision:\n  backoff_initial_ms: 500\n  backoff_max_ms: 100\n"),
              HasSubstr("supervision.backoff_max_ms (100) must not be less than "
                        "supervision.backoff_initial_ms (500)"));
}

TEST_F(ConfigTest, InvalidLogLevelAndBusInTheFile) {
  EXPECT_THAT(error_for("log_level: loud\n"),
              StartsWith("~/.config/lotus/config.yaml:1:12: log_level: unknown log level 'loud'; "
                         "expected one of trace, debug, info, warn, error, off"));
  EXPECT_THAT(error_for("bus: redis://\n"),
              StartsWith("~/.config/lotus/config.yaml:1:6: bus: bad bus 'redis://': missing host"));
  // "off" is a YAML 1.1 boolean; here it must stay the log level.
  write(default_file(), "log_level: off\n");
  EXPECT_EQ(load_ok(sources()).log_level, "off");
}

TEST_F(ConfigTest, YamlSyntaxErrorNamesFileLineAndColumn) {
  std::string message = error_for("threads: 2\nmodule_dirs: [/a, /b\nbus: local\n");
  EXPECT_THAT(message, StartsWith("~/.config/lotus/config.yaml:"));
  EXPECT_THAT(message, HasSubstr("end of sequence flow not found"));
  EXPECT_THAT(error_for("key: value\n  bad indent: x\n"),
              StartsWith("~/.config/lotus/config.yaml:2:"));
}

TEST_F(ConfigTest, TopLevelMustBeAMapping) {
  EXPECT_THAT(error_for("- threads\n- bus\n"),
              HasSubstr("config.yaml:1:1: expected a mapping of settings"));
  EXPECT_THAT(error_for("just some words\n"), HasSubstr("expected a mapping of settings"));
}

TEST_F(ConfigTest, DuplicateKeysAreErrors) {
  EXPECT_THAT(error_for("threads: 1\nbus: local\nthreads: 2\n"),
              HasSubstr("config.yaml:3:1: threads: duplicate key"));
  EXPECT_THAT(error_for("modules:\n  a: {x: 1, x: 2}\n"), HasSubstr("modules.a.x: duplicate key"));
}

TEST_F(ConfigTest, NonTextKeysAreErrors) {
  EXPECT_THAT(error_for("[a, b]: 1\n"), HasSubstr("keys must be plain text"));
}

TEST_F(ConfigTest, TildeUserIsNotExpanded) {
  EXPECT_THAT(error_for("data_dir: ~bob/lotus\n"),
              HasSubstr(":1:11: data_dir: only ~ and ~/ are expanded, not ~user"));
  EXPECT_THAT(error_for("data_dir: ''\n"), HasSubstr("data_dir: expected a path, got an empty"));
}

TEST_F(ConfigTest, ExplicitRelativeFileResolvesPathsAgainstItsDirectory) {
  write(home_ / "conf" / "lotus.yaml", "data_dir: ../state\nmodule_dirs: [mods, /abs]\n");
  ConfigSources from = sources();
  from.config_file = home_ / "conf" / "lotus.yaml";
  Config config = load_ok(from);
  EXPECT_EQ(config.data_dir, home_ / "state");
  EXPECT_THAT(config.module_dirs, ElementsAre(home_ / "conf" / "mods", fs::path("/abs")));
}

TEST_F(ConfigTest, ModuleOverlayScalarsFollowYamlCoreSchema) {
  write(default_file(), R"(modules:
  m:
    int: 42
    negative: -7
    float: 1.5e3
    yes_word: yes
    date: 2024-01-01
    hex: 0x1F
    version: 1.2.3
    tagged: !!str 12
    block: |
      two
      lines
    list_of_maps: [{a: 1}, {b: [true, null]}]
)");
  Json m = load_ok(sources()).module_config.at("m");
  EXPECT_EQ(m["int"], 42);
  EXPECT_EQ(m["negative"], -7);
  EXPECT_EQ(m["float"], 1500.0);
  EXPECT_TRUE(m["float"].is_number_float());
  EXPECT_EQ(m["yes_word"], "yes");
  EXPECT_EQ(m["date"], "2024-01-01");
  EXPECT_EQ(m["hex"], "0x1F");
  EXPECT_EQ(m["version"], "1.2.3");
  EXPECT_EQ(m["tagged"], "12");
  EXPECT_EQ(m["block"], "two\nlines\n");
  EXPECT_EQ(m["list_of_maps"], Json::parse(R"([{"a": 1}, {"b": [true, null]}])"));
}

TEST(ValidateBusTest, AcceptsLocalAndRedisUrls) {
  for (const char* bus :
       {"local", "redis://localhost", "redis://localhost:6379", "redis://cache.internal:6380/2",
        "redis://user:secret@host:1/0", "redis://:secret@host", "redis://[::1]:6379",
        "redis://10.0.0.1", "redis://my_host/", "redis://h:65535"}) {
    EXPECT_TRUE(validate_bus(bus).ok()) << bus << ": " << validate_bus(bus);
  }
}

TEST(ValidateBusTest, RejectsMalformedBusesWithAReason) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "unknown bus"},
      {"Local", "unknown bus"},
      {"redis", "unknown bus"},
      {"http://host", "unknown bus"},
      {"redis://", "missing host"},
      {"redis://:6379", "missing host"},
      {"redis://user:pw@", "missing host"},
      {"redis://host:", "empty port"},
      {"redis://host:0", "port must be a number from 1 to 65535"},
      {"redis://host:70000", "port must be"},
      {"redis://host:+80", "port must be"},
      {"redis://host:http", "port must be"},
      {"redis://host/db1", "database must be a number"},
      {"redis://host?timeout=1", "query parameters"},
      {"redis://::1:6379", "[brackets]"},
      {"redis://[::1", "missing ']'"},
      {"redis://[zz]:1", "malformed IPv6"},
      {"redis://bad host", "invalid character in host"},
  };
  for (const auto& [bus, reason] : cases) {
    Status status = validate_bus(bus);
    EXPECT_FALSE(status.ok()) << bus;
    EXPECT_THAT(status.message(), HasSubstr(reason)) << bus;
    EXPECT_THAT(status.message(), HasSubstr("expected 'local' or redis://")) << bus;
  }
}

TEST(ValidateBusTest, ErrorsDoNotRevealPasswords) {
  Status status = validate_bus("redis://admin:hunter2@host:99999");
  EXPECT_THAT(status.message(), Not(HasSubstr("hunter2")));
  EXPECT_THAT(status.message(), HasSubstr("redis://admin:****@host:99999"));
}

TEST(ValidateLogLevelTest, AcceptsExactlyTheSpdlogNames) {
  for (const char* level : {"trace", "debug", "info", "warn", "error", "off"}) {
    EXPECT_TRUE(validate_log_level(level).ok()) << level;
  }
  for (const char* level : {"", "INFO", "warning", "critical", "verbose"}) {
    EXPECT_FALSE(validate_log_level(level).ok()) << level;
  }
}

TEST(ConfigValidateTest, ChecksEveryField) {
  Config config;
  config.data_dir = "/data";
  EXPECT_TRUE(validate(config).ok());

  Config no_data = config;
  no_data.data_dir.clear();
  EXPECT_THAT(validate(no_data).message(), HasSubstr("set LOTUS_DATA_DIR"));

  Config bad = config;
  bad.bus = "redis://";
  EXPECT_THAT(validate(bad).message(), StartsWith("bus: "));
  bad = config;
  bad.threads = 5000;
  EXPECT_THAT(validate(bad).message(), StartsWith("threads: "));
  bad = config;
  bad.shutdown_deadline = std::chrono::milliseconds(-1);
  EXPECT_THAT(validate(bad).message(), StartsWith("shutdown_deadline_ms: "));
  bad = config;
  bad.supervision.max_restarts = -1;
  EXPECT_THAT(validate(bad).message(), StartsWith("supervision.max_restarts: "));
  bad = config;
  bad.supervision.window = std::chrono::seconds(0);
  EXPECT_THAT(validate(bad).message(), StartsWith("supervision.window_seconds: "));
  bad = config;
  bad.supervision.backoff_initial = std::chrono::milliseconds(0);
  EXPECT_THAT(validate(bad).message(), StartsWith("supervision.backoff_initial_ms: "));
  bad = config;
  bad.module_config["m"] = Json::array();
  EXPECT_THAT(validate(bad).message(), StartsWith("modules.m: "));
}

TEST(ConfigDescribeTest, SummarizesEverySettingAndMasksPasswords) {
  Config config;
  config.config_file = "/etc/lotus.yaml";
  config.module_dirs = {"/opt/lotus/modules", "/home/u/.local/share/lotus/modules"};
  config.data_dir = "/home/u/.local/share/lotus";
  config.bus = "redis://admin:hunter2@cache:6379/1";
  config.threads = 4;
  config.log_level = "debug";
  config.module_config["code_assistant"] = Json::object();
  config.module_config["memory"] = Json::object();
  config.disabled_modules = {"voice"};
  const std::string text = describe(config);
  EXPECT_THAT(text, HasSubstr("config file:       /etc/lotus.yaml\n"));
  EXPECT_THAT(text, HasSubstr("module dirs:       /opt/lotus/modules\n"
                              "                   /home/u/.local/share/lotus/modules\n"));
  EXPECT_THAT(text, HasSubstr("data dir:          /home/u/.local/share/lotus\n"));
  EXPECT_THAT(text, HasSubstr("bus:               redis://admin:****@cache:6379/1\n"));
  EXPECT_THAT(text, Not(HasSubstr("hunter2")));
  EXPECT_THAT(text, HasSubstr("threads:           4\n"));
  EXPECT_THAT(text, HasSubstr("log level:         debug\n"));
  EXPECT_THAT(text, HasSubstr("shutdown deadline: 5 s\n"));
  EXPECT_THAT(text, HasSubstr("supervision:       at most 5 restarts in 60 s; backoff 100 ms "
                              "doubling to 30 s\n"));
  EXPECT_THAT(text, HasSubstr("module config:     code_assistant, memory\n"));
  EXPECT_THAT(text, HasSubstr("disabled modules:  voice\n"));

  Config defaults;
  const std::string plain = describe(defaults);
  EXPECT_THAT(plain, HasSubstr("config file:       none (built-in defaults)"));
  EXPECT_THAT(plain, HasSubstr("threads:           0 (one per hardware thread: "));
  EXPECT_THAT(plain, HasSubstr("disabled modules:  none"));
}

TEST(ConfigSourcesTest, ProcessEnvReadsTheRealEnvironment) {
  ASSERT_EQ(setenv("LOTUS_CONFIG_TEST_VARIABLE", "value", 1), 0);
  EXPECT_EQ(ConfigSources::process_env("LOTUS_CONFIG_TEST_VARIABLE"), "value");
  unsetenv("LOTUS_CONFIG_TEST_VARIABLE");
  EXPECT_EQ(ConfigSources::process_env("LOTUS_CONFIG_TEST_VARIABLE"), std::nullopt);
  ConfigSources defaults;
  ASSERT_TRUE(static_cast<bool>(defaults.env));
}

}  // namespace
}  // namespace lotus

namespace lotus {
namespace {

TEST_F(ConfigTest, TheMcpSectionIsTheMcpModulesConfig) {
  write(default_file(),
        "modules:\n  mcp: {servers: {a: {command: x}}}\n"
        "mcp:\n  mcpServers:\n    files: {command: npx, args: [-y, server-filesystem, /tmp]}\n");
  Config config = load_ok(sources());
  const Json& mcp = config.module_config.at("mcp");
  EXPECT_EQ(mcp["servers"]["a"]["command"], "x");
  EXPECT_EQ(mcp["mcpServers"]["files"]["args"][2], "/tmp");
  EXPECT_THAT(error_for("mcp: [1]\n"), HasSubstr("mcp: expected a mapping"));
}

}  // namespace
}  // namespace lotus
