// Boots a real nucleus with the file_watcher module watching a temporary
// folder, changes files in it and checks the perception.file_changed events
// that reach the bus; drives the module directly for health and shutdown.
#include "file_watcher.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/module_host.h"
#include "core/nucleus.h"
#include "lotus/manifest.h"
#include "lotus/strings.h"
#include "testing/sync_wait.h"
#include "testing/temp_dir.h"

namespace lotus::perception {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

const fs::path kManifest =
    fs::path(LOTUS_SOURCE_DIR) / "modules" / "perception" / "file_watcher" / "manifest.yaml";

using testing::TempDir;

void write_file(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::app);
  out << text;
}

struct Seen {
  std::string path;
  std::string change;
  bool is_dir = false;
  std::string from;
  std::string source;
};

// Collects what reaches a bus subscription (a tap, so it runs on the
// publishing thread) and waits, with a deadline, for what a test expects.
class ChangeLog {
 public:
  ChangeLog(Bus& bus, SubscriptionFilter filter = {}) : bus_(bus) {
    Subscriber tap;
    tap.tap = [this](const EventPtr& event) {
      std::lock_guard lock(mutex_);
      seen_.push_back(Seen{event->data.value("path", ""), event->data.value("change", ""),
                           event->data.value("is_dir", false), event->data.value("from", ""),
                           event->source});
      changed_.notify_all();
    };
    id_ = *bus.subscribe(kFileChangedChannel, std::move(filter), tap);
  }
  ~ChangeLog() { bus_.unsubscribe(id_); }

  bool wait_until(const std::function<bool(const std::vector<Seen>&)>& done,
                  std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return done(seen_); });
  }
  bool wait_for(const fs::path& path, std::string_view change) {
    return wait_until([&](const std::vector<Seen>& seen) { return count(seen, path, change) > 0; });
  }
  static size_t count(const std::vector<Seen>& seen, const fs::path& path,
                      std::string_view change) {
    return std::count_if(seen.begin(), seen.end(), [&](const Seen& s) {
      return s.path == path.string() && (change.empty() || s.change == change);
    });
  }
  std::vector<Seen> snapshot() {
    std::lock_guard lock(mutex_);
    return seen_;
  }
  std::string dump() {
    std::string out;
    for (const Seen& s : snapshot()) out += cat(s.change, " ", s.path, s.is_dir ? "/" : "", "\n");
    return out;
  }

 private:
  Bus& bus_;
  SubscriptionId id_ = 0;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Seen> seen_;
};

class FileWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    fs::create_directories(modules() / "file_watcher");
    fs::copy_file(kManifest, modules() / "file_watcher" / "manifest.yaml");
    fs::create_directories(watched());
  }

  fs::path modules() const { return dir_.path() / "modules"; }
  fs::path watched() const { return dir_.path() / "watched"; }

  Config config(Json module_config) const {
    Config c;
    c.module_dirs = {modules()};
    c.data_dir = dir_.path() / "data";
    c.threads = 2;
    c.shutdown_deadline = 5000ms;
    c.module_config["file_watcher"] = std::move(module_config);
    return c;
  }
  Config watching(const Json& extra = Json::object()) const {
    Json module_config{{"paths", {watched().string()}}};
    module_config.update(extra);
    return config(std::move(module_config));
  }

  static void boot(Nucleus& nucleus) {
    ASSERT_TRUE(nucleus.boot().ok());
    for (const auto& m : nucleus.modules()) {
      if (m.name == "file_watcher") {
        ASSERT_EQ(m.state, "running") << m.error;
        return;
      }
    }
    FAIL() << "file_watcher was not discovered";
  }

  static Json call_tool(Nucleus& nucleus, std::string_view tool, Json arguments) {
    Event request = Event::make(ModuleHost::tool_channel("file_watcher", tool), "test",
                                Json{{"arguments", std::move(arguments)}});
    auto reply =
        testing::sync_wait(nucleus.bus().executor(), nucleus.bus().request(std::move(request), 5s));
    if (!reply.ok()) return Json{{"ok", false}, {"error", std::string(message_of(reply.status()))}};
    return (*reply)->data;
  }

  TempDir dir_;
};

TEST(FileWatcherManifest, IsAValidBuiltInContract) {
  auto manifest = load_manifest(kManifest);
  ASSERT_TRUE(manifest.ok()) << message_of(manifest.status());
  EXPECT_EQ(manifest->name, "file_watcher");
  EXPECT_TRUE(manifest->runtime.library.empty()) << "built in, not a plugin";
  EXPECT_TRUE(manifest->may_publish("perception.file_changed"));
  EXPECT_TRUE(manifest->has_permission("file.read"));
  EXPECT_FALSE(manifest->hotload);
  EXPECT_EQ(manifest->config_defaults["paths"], Json::array()) << "nothing is watched unasked";
  EXPECT_EQ(manifest->config_defaults["debounce_ms"], 50);
  const auto* watch = manifest->find_tool("watch");
  ASSERT_NE(watch, nullptr);
  EXPECT_EQ(watch->parameters["required"], Json::array({"path"}));
  EXPECT_EQ(watch->parameters["properties"]["recursive"]["type"], "boolean");
  EXPECT_NE(manifest->find_tool("unwatch"), nullptr);
  EXPECT_NE(manifest->find_tool("list_watched"), nullptr);
}

TEST_F(FileWatcherTest, ReportsCreateModifyRenameAndDelete) {
  Nucleus nucleus(watching());
  ChangeLog log(nucleus.bus());
  boot(nucleus);

  fs::path a = watched() / "notes.txt";
  write_file(a, "first\n");
  ASSERT_TRUE(log.wait_for(a, "created")) << log.dump();
  write_file(a, "second\n");
  ASSERT_TRUE(log.wait_for(a, "modified")) << log.dump();

  fs::path b = watched() / "renamed.txt";
  fs::rename(a, b);
  ASSERT_TRUE(log.wait_for(a, "moved_from")) << log.dump();
  ASSERT_TRUE(log.wait_for(b, "moved_to")) << log.dump();
  fs::remove(b);
  ASSERT_TRUE(log.wait_for(b, "deleted")) << log.dump();

  auto seen = log.snapshot();
  for (const Seen& s : seen) {
    EXPECT_EQ(s.source, "file_watcher");
    EXPECT_FALSE(s.is_dir) << s.path;
  }
  auto moved_to =
      std::find_if(seen.begin(), seen.end(), [](const Seen& s) { return s.change == "moved_to"; });
  EXPECT_EQ(moved_to->from, a.string()) << "a rename says where the file came from";
  // In the order they happened.
  auto position = [&](const fs::path& p, std::string_view change) {
    return std::find_if(seen.begin(), seen.end(),
                        [&](const Seen& s) { return s.path == p.string() && s.change == change; }) -
           seen.begin();
  };
  EXPECT_LT(position(a, "created"), position(a, "modified"));
  EXPECT_LT(position(a, "modified"), position(a, "moved_from"));
  EXPECT_LT(position(b, "moved_to"), position(b, "deleted"));
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(FileWatcherTest, WatchesNewSubfoldersAndFollowsRenamedOnes) {
  Nucleus nucleus(watching());
  ChangeLog log(nucleus.bus());
  boot(nucleus);

  // Made in one go: the inner folders and file exist before a watch can be
  // put on the outer one, and are reported all the same.
  fs::create_directories(watched() / "src" / "app");
  write_file(watched() / "src" / "app" / "main.py", "print()\n");
  ASSERT_TRUE(log.wait_for(watched() / "src" / "app" / "main.py", "created")) << log.dump();
  auto seen = log.snapshot();
  ASSERT_EQ(ChangeLog::count(seen, watched() / "src", "created"), 1u) << log.dump();
  ASSERT_EQ(ChangeLog::count(seen, watched() / "src" / "app", "created"), 1u) << log.dump();
  for (const Seen& s : seen) {
    if (s.path == (watched() / "src").string()) {
      EXPECT_TRUE(s.is_dir);
    }
  }

  // The deepest folder is watched: later changes in it are seen.
  write_file(watched() / "src" / "app" / "main.py", "print(1)\n");
  ASSERT_TRUE(log.wait_for(watched() / "src" / "app" / "main.py", "modified")) << log.dump();

  // A renamed folder keeps being watched under its new name.
  fs::rename(watched() / "src", watched() / "lib");
  ASSERT_TRUE(log.wait_for(watched() / "lib", "moved_to")) << log.dump();
  write_file(watched() / "lib" / "app" / "util.py", "x = 1\n");
  ASSERT_TRUE(log.wait_for(watched() / "lib" / "app" / "util.py", "created")) << log.dump();
  EXPECT_EQ(ChangeLog::count(log.snapshot(), watched() / "src" / "app" / "util.py", ""), 0u);

  fs::remove_all(watched() / "lib");
  ASSERT_TRUE(log.wait_for(watched() / "lib" / "app" / "util.py", "deleted")) << log.dump();
  ASSERT_TRUE(log.wait_for(watched() / "lib", "deleted")) << log.dump();
  Json listed = call_tool(nucleus, "list_watched", Json::object());
  ASSERT_EQ(listed["ok"], true) << listed.dump();
  EXPECT_EQ(listed["result"]["directories"], 1) << "the removed folders' watches are gone";
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(FileWatcherTest, FoldersMovedInAreWatchedAndFoldersMovedOutAreNot) {
  fs::path outside = dir_.path() / "outside";
  fs::create_directories(outside / "incoming" / "deep");
  fs::create_directories(watched() / "leaving" / "deep");
  Nucleus nucleus(watching());
  ChangeLog log(nucleus.bus());
  boot(nucleus);
  ASSERT_EQ(call_tool(nucleus, "list_watched", Json::object())["result"]["directories"], 3);

  fs::rename(outside / "incoming", watched() / "incoming");
  ASSERT_TRUE(log.wait_for(watched() / "incoming", "moved_to")) << log.dump();
  fs::rename(watched() / "leaving", outside / "leaving");
  ASSERT_TRUE(log.wait_for(watched() / "leaving", "moved_from")) << log.dump();

  write_file(outside / "leaving" / "deep" / "not-ours.txt", "x\n");
  write_file(watched() / "incoming" / "deep" / "ours.txt", "y\n");
  ASSERT_TRUE(log.wait_for(watched() / "incoming" / "deep" / "ours.txt", "created")) << log.dump();
  for (const Seen& s : log.snapshot()) {
    EXPECT_THAT(s.path, ::testing::Not(HasSubstr("not-ours"))) << log.dump();
  }
  EXPECT_EQ(call_tool(nucleus, "list_watched", Json::object())["result"]["directories"], 3)
      << "watches follow the folders that are in the tree";
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(FileWatcherTest, SubscriptionFilterSeesOnlyMatchingFiles) {
  Nucleus nucleus(watching());
  ChangeLog all(nucleus.bus());
  auto filter = SubscriptionFilter::parse(Json("*.py"));
  ASSERT_TRUE(filter.ok());
  ChangeLog python(nucleus.bus(), *filter);
  boot(nucleus);

  write_file(watched() / "a.py", "a = 1\n");
  write_file(watched() / "b.txt", "b\n");
  fs::create_directories(watched() / "pkg");
  write_file(watched() / "pkg" / "c.py", "c = 1\n");
  write_file(watched() / "last.txt", "done\n");
  ASSERT_TRUE(all.wait_for(watched() / "last.txt", "created")) << all.dump();

  auto seen = python.snapshot();
  EXPECT_EQ(ChangeLog::count(seen, watched() / "a.py", "created"), 1u) << python.dump();
  EXPECT_EQ(ChangeLog::count(seen, watched() / "pkg" / "c.py", "created"), 1u) << python.dump();
  for (const Seen& s : seen) {
    EXPECT_THAT(s.path, ::testing::EndsWith(".py"));
  }
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(FileWatcherTest, IgnoredNamesAreNeitherReportedNorEntered) {
  // Made before boot, so the start-up walk must skip them too.
  fs::create_directories(watched() / ".git" / "objects");
  fs::create_directories(watched() / "node_modules" / "left-pad");
  Nucleus nucleus(watching());
  ChangeLog log(nucleus.bus());
  boot(nucleus);

  write_file(watched() / ".git" / "HEAD", "ref: refs/heads/main\n");
  write_file(watched() / "node_modules" / "left-pad" / "index.js", "x\n");
  fs::create_directories(watched() / "build" / "obj");
  write_file(watched() / "build" / "obj" / "main.o",
             "\x7f"
             "ELF");
  write_file(watched() / ".main.py.swp", "swap\n");
  write_file(watched() / "main.py~", "backup\n");
  write_file(watched() / "main.py", "print()\n");
  ASSERT_TRUE(log.wait_for(watched() / "main.py", "created")) << log.dump();

  for (const Seen& s : log.snapshot()) {
    EXPECT_EQ(s.path, (watched() / "main.py").string()) << "not ignored: " << s.path;
  }
  Json listed = call_tool(nucleus, "list_watched", Json::object());
  EXPECT_EQ(listed["result"]["directories"], 1)
      << "ignored folders get no watch: " << listed.dump();
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(FileWatcherTest, ToolsWatchListAndUnwatch) {
  Nucleus nucleus(config(Json::object()));  // nothing watched by default
  ChangeLog log(nucleus.bus());
  boot(nucleus);

  Json listed = call_tool(nucleus, "list_watched", Json::object());
  ASSERT_EQ(listed["ok"], true) << listed.dump();
  EXPECT_EQ(listed["result"]["watched"], Json::array());

  fs::path first = dir_.path() / "first";
  fs::path second = dir_.path() / "second";
  fs::create_directories(first / "nested");
  fs::create_directories(second);
  Json watched_reply = call_tool(nucleus, "watch", Json{{"path", first.string()}});
  ASSERT_EQ(watched_reply["ok"], true) << watched_reply.dump();
  EXPECT_EQ(watched_reply["result"]["path"], first.string());
  EXPECT_EQ(watched_reply["result"]["recursive"], true);
  EXPECT_EQ(watched_reply["result"]["directories"], 2);
  Json flat = call_tool(nucleus, "watch", Json{{"path", second.string()}, {"recursive", false}});
  ASSERT_EQ(flat["ok"], true) << flat.dump();
  EXPECT_EQ(flat["result"]["recursive"], false);

  write_file(first / "nested" / "a.txt", "a\n");
  ASSERT_TRUE(log.wait_for(first / "nested" / "a.txt", "created")) << log.dump();

  listed = call_tool(nucleus, "list_watched", Json::object());
  ASSERT_EQ(listed["result"]["watched"].size(), 2u) << listed.dump();
  EXPECT_EQ(listed["result"]["watched"][0]["path"], first.string());
  EXPECT_EQ(listed["result"]["watched"][0]["directories"], 2);
  EXPECT_EQ(listed["result"]["watched"][0]["source"], "tool");

  Json again = call_tool(nucleus, "watch", Json{{"path", first.string() + "/"}});
  EXPECT_EQ(again["result"]["already_watched"], true) << again.dump();

  Json unwatched = call_tool(nucleus, "unwatch", Json{{"path", first.string()}});
  ASSERT_EQ(unwatched["ok"], true) << unwatched.dump();
  EXPECT_EQ(unwatched["result"]["directories_released"], 2);
  // Changes in the unwatched folder are no longer reported; the second one
  // still is (and, being flat, its new subfolders are reported, not entered).
  write_file(first / "nested" / "b.txt", "b\n");
  fs::create_directories(second / "sub");
  write_file(second / "sub" / "hidden.txt", "h\n");
  write_file(second / "c.txt", "c\n");
  ASSERT_TRUE(log.wait_for(second / "c.txt", "created")) << log.dump();
  auto seen = log.snapshot();
  EXPECT_EQ(ChangeLog::count(seen, first / "nested" / "b.txt", ""), 0u) << log.dump();
  EXPECT_EQ(ChangeLog::count(seen, second / "sub", "created"), 1u) << log.dump();
  EXPECT_EQ(ChangeLog::count(seen, second / "sub" / "hidden.txt", ""), 0u) << log.dump();
  ASSERT_TRUE(nucleus.shutdown().ok());

  // Folders added by the tool are watched again after a restart.
  Nucleus restarted(config(Json::object()));
  boot(restarted);
  listed = call_tool(restarted, "list_watched", Json::object());
  ASSERT_EQ(listed["result"]["watched"].size(), 1u) << listed.dump();
  EXPECT_EQ(listed["result"]["watched"][0]["path"], second.string());
  EXPECT_EQ(listed["result"]["watched"][0]["recursive"], false);
  ASSERT_TRUE(restarted.shutdown().ok());
}

TEST_F(FileWatcherTest, BadPathsGiveClearErrors) {
  Nucleus nucleus(config(Json{{"paths", {(dir_.path() / "no-such-folder").string()}}}));
  boot(nucleus);  // a missing configured folder degrades, it does not fail the module

  auto error_of = [&](std::string_view tool, Json arguments) {
    Json reply = call_tool(nucleus, tool, std::move(arguments));
    EXPECT_EQ(reply["ok"], false) << reply.dump();
    return reply.value("error", "");
  };
  fs::path missing = dir_.path() / "missing";
  EXPECT_THAT(error_of("watch", Json{{"path", missing.string()}}),
              HasSubstr(cat("\"", missing.string(), "\" does not exist")));
  fs::path file = dir_.path() / "file.txt";
  write_file(file, "x");
  EXPECT_THAT(error_of("watch", Json{{"path", file.string()}}), HasSubstr("is not a directory"));
  EXPECT_THAT(error_of("watch", Json{{"path", "relative/dir"}}),
              HasSubstr("must be an absolute path"));
  EXPECT_THAT(error_of("watch", Json::object()), HasSubstr("\"path\" is required"));
  EXPECT_THAT(error_of("watch", Json{{"path", watched().string()}, {"recursive", "yes"}}),
              HasSubstr("\"recursive\" must be true or false"));
  EXPECT_THAT(error_of("unwatch", Json{{"path", watched().string()}}),
              HasSubstr("is not watched (watched: nothing)"));
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(FileWatcherTest, RepeatedWritesBecomeOneEvent) {
  // A wide window, so a slow machine cannot split the burst in two.
  Nucleus nucleus(watching(Json{{"debounce_ms", 400}}));
  ChangeLog log(nucleus.bus());
  boot(nucleus);

  // A new file's first writes fold into its "created".
  fs::path file = watched() / "log.txt";
  {
    std::ofstream out(file);
    for (int i = 0; i < 20; ++i) out << "line " << i << std::endl;
  }
  ASSERT_TRUE(log.wait_for(file, "created")) << log.dump();
  EXPECT_EQ(ChangeLog::count(log.snapshot(), file, "modified"), 0u) << log.dump();

  {
    std::ofstream out(file, std::ios::app);
    for (int i = 0; i < 50; ++i) out << "more " << i << std::endl;
  }
  write_file(watched() / "marker.txt", "m\n");  // noted after the burst, so published after it
  ASSERT_TRUE(log.wait_for(watched() / "marker.txt", "created")) << log.dump();
  EXPECT_EQ(ChangeLog::count(log.snapshot(), file, "modified"), 1u) << log.dump();

  // A deletion is not held back, and what waited before it goes first.
  write_file(file, "last\n");
  fs::remove(file);
  ASSERT_TRUE(log.wait_for(file, "deleted")) << log.dump();
  auto seen = log.snapshot();
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen[seen.size() - 2].change, "modified") << log.dump();
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(FileWatcherTest, NamesThatAreNotUtf8AreStillReported) {
  Nucleus nucleus(watching());
  ChangeLog log(nucleus.bus());
  boot(nucleus);
  write_file(watched() / "caf\xe9.txt", "latin-1 name\n");
  fs::path shown = watched() / "caf\xef\xbf\xbd.txt";  // U+FFFD for the bad byte
  ASSERT_TRUE(log.wait_for(shown, "created")) << log.dump();
  EXPECT_NO_THROW(Json(shown.string()).dump()) << "the event must serialize";
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(FileWatcherTest, DeletedRootIsReportedAndDropped) {
  Nucleus nucleus(watching());
  ChangeLog log(nucleus.bus());
  boot(nucleus);
  fs::remove_all(watched());
  ASSERT_TRUE(log.wait_for(watched(), "deleted")) << log.dump();
  Json listed;
  // The drop happens on the watcher thread just after the event.
  for (int i = 0; i < 100; ++i) {
    listed = call_tool(nucleus, "list_watched", Json::object());
    if (listed["result"]["watched"].empty()) break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(listed["result"]["watched"], Json::array()) << listed.dump();
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST(FileWatcherErrors, WatchLimitNamesTheSysctlToRaise) {
  std::string message(message_of(watch_error(ENOSPC, "/home/me")));
  EXPECT_THAT(message, HasSubstr("\"/home/me\""));
  EXPECT_THAT(message, HasSubstr("fs.inotify.max_user_watches"));
  EXPECT_THAT(message, HasSubstr("sysctl fs.inotify.max_user_watches="));
  EXPECT_EQ(watch_error(ENOSPC, "/x").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(message_of(inotify_init_error(EMFILE))),
              HasSubstr("fs.inotify.max_user_instances"));
  EXPECT_EQ(watch_error(EACCES, "/x").code(), absl::StatusCode::kPermissionDenied);
}

// --- the module on its own, with a stand-in for the nucleus --------------------

class FakeContext final : public ModuleContext {
 public:
  explicit FakeContext(Json config) : config_(std::move(config)) {}

  const std::string& module_name() const override { return name_; }
  const Json& config() const override { return config_; }
  Status publish(std::string_view channel, Json data, EventMetadata) override {
    std::lock_guard lock(mutex_);
    published_.push_back(Json{{"channel", std::string(channel)}, {"data", std::move(data)}});
    changed_.notify_all();
    return absl::OkStatus();
  }
  Task<Result<EventPtr>> request(std::string_view, Json, std::chrono::milliseconds,
                                 EventMetadata) override {
    co_return absl::UnimplementedError("no bus here");
  }
  Task<Result<ChatResponse>> chat(ChatRequest, StreamCallback) override {
    co_return absl::UnimplementedError("no LLM here");
  }
  Status reply(const Event&, Json) override { return absl::UnimplementedError("no bus here"); }
  std::filesystem::path data_dir() override { return std::filesystem::temp_directory_path(); }
  Result<Json> get_state(std::string_view key) override {
    std::lock_guard lock(mutex_);
    if (!state_.contains(std::string(key))) return absl::NotFoundError("no such key");
    return state_[std::string(key)];
  }
  Status set_state(std::string_view key, const Json& value) override {
    std::lock_guard lock(mutex_);
    state_[std::string(key)] = value;
    return absl::OkStatus();
  }
  Task<void> sleep(std::chrono::milliseconds) override { co_return; }
  void log(LogLevel, std::string_view) override {}

  bool wait_for_count(size_t n, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return published_.size() >= n; });
  }
  std::vector<Json> published() {
    std::lock_guard lock(mutex_);
    return published_;
  }

 private:
  std::string name_ = "file_watcher";
  Json config_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Json> published_;
  Json state_ = Json::object();
};

// Runs a task that never waits on anything (all of FileWatcher's do not).
template <typename T>
T run_now(Task<T> task) {
  std::optional<T> result;
  std::exception_ptr failure;
  start_detached(
      [](Task<T> inner, std::optional<T>* out) -> Task<void> {
        out->emplace(co_await std::move(inner));
      }(std::move(task), &result),
      [&failure](std::exception_ptr e) { failure = std::move(e); });
  if (failure) std::rethrow_exception(failure);
  return std::move(*result);
}
void run_now(Task<void> task) {
  std::exception_ptr failure;
  bool done = false;
  start_detached(std::move(task), [&](std::exception_ptr e) {
    failure = std::move(e);
    done = true;
  });
  if (failure) std::rethrow_exception(failure);
  ASSERT_TRUE(done);
}

TEST(FileWatcherModule, HealthCountsAndShutdownPublishesWhatWaits) {
  TempDir dir;
  // A window far longer than the test: only shutdown can release the event.
  FakeContext context(Json{{"paths", {dir.path().string()}},
                           {"recursive", true},
                           {"ignore", Json::array()},
                           {"debounce_ms", 60000}});
  FileWatcher watcher;
  watcher.attach(&context);
  run_now(watcher.initialize());

  fs::remove(dir.path() / "gone.txt");  // nothing: no event
  write_file(dir.path() / "kept.txt", "k\n");
  write_file(dir.path() / "kept.txt", "more\n");
  fs::create_directories(dir.path() / "sub");
  // Nothing is published while the window is open, so wait for the watch
  // count, which the watcher thread raises once it has seen "sub".
  Json health;
  for (int i = 0; i < 500; ++i) {
    health = run_now(watcher.health_check());
    if (health["watched_directories"] == 2) break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(health["watched"], 1) << health.dump();
  EXPECT_EQ(health["watched_directories"], 2) << health.dump();
  EXPECT_EQ(health["status"], "healthy") << health.dump();
  EXPECT_TRUE(context.published().empty());

  run_now(watcher.shutdown());
  auto published = context.published();
  ASSERT_EQ(published.size(), 2u) << Json(published).dump();
  EXPECT_EQ(published[0]["channel"], "perception.file_changed");
  EXPECT_EQ(published[0]["data"]["path"], (dir.path() / "kept.txt").string());
  EXPECT_EQ(published[0]["data"]["change"], "created");
  EXPECT_EQ(published[1]["data"]["path"], (dir.path() / "sub").string());
  EXPECT_EQ(published[1]["data"]["is_dir"], true);
  health = run_now(watcher.health_check());
  EXPECT_EQ(health["events_published"], 2);
  EXPECT_GE(health["events_coalesced"].get<int>(), 1) << "the second write folded into created";
}

TEST(FileWatcherModule, AMissingConfiguredFolderDegradesHealthWithTheReason) {
  TempDir dir;
  FakeContext context(Json{{"paths", {(dir.path() / "nope").string(), dir.path().string()}},
                           {"ignore", Json::array()},
                           {"debounce_ms", 0}});
  FileWatcher watcher;
  watcher.attach(&context);
  run_now(watcher.initialize());
  Json health = run_now(watcher.health_check());
  EXPECT_EQ(health["status"], "degraded") << health.dump();
  EXPECT_EQ(health["watched"], 1) << "the folder that exists is watched";
  ASSERT_EQ(health["recent_problems"].size(), 1u) << health.dump();
  EXPECT_THAT(health["recent_problems"][0].get<std::string>(),
              HasSubstr(cat("config paths: watched folder \"", (dir.path() / "nope").string(),
                            "\" does not exist")));
  run_now(watcher.shutdown());
}

TEST(FileWatcherModule, InvalidConfigIsRefusedAtInitialize) {
  FakeContext context(Json{{"paths", "/not/a/list"}});
  FileWatcher watcher;
  watcher.attach(&context);
  try {
    run_now(watcher.initialize());
    ADD_FAILURE() << "initialize accepted paths that are not a list";
  } catch (const std::exception& e) {
    EXPECT_THAT(e.what(), HasSubstr("paths must be a list"));
  }
}

}  // namespace
}  // namespace lotus::perception
