#include "core/state_store.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

namespace lotus {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A fresh directory per test, removed afterwards.
class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::path(::testing::TempDir()) / "state_store_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::unique_ptr<StateStore> open_store(const fs::path& file) {
    auto store = StateStore::open(file);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  fs::path dir_;
};

TEST_F(StateStoreTest, MissingKeyIsNullNotAnError) {
  auto store = open_store(dir_ / "state.db");
  ASSERT_NE(store, nullptr);
  auto value = store->get("memory", "cursor");
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_TRUE(value->is_null());
  auto all = store->all("memory");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_TRUE(all->empty());
}

TEST_F(StateStoreTest, SetGetOverwriteEraseRoundTrip) {
  auto store = open_store(dir_ / "state.db");
  ASSERT_NE(store, nullptr);
  Json value = {{"count", 3}, {"names", {"a", "b"}}, {"ratio", 0.5}, {"ok", true}};
  ASSERT_TRUE(store->set("memory", "summary", value).ok());
  EXPECT_EQ(*store->get("memory", "summary"), value);

  ASSERT_TRUE(store->set("memory", "summary", "replaced").ok());
  EXPECT_EQ(*store->get("memory", "summary"), Json("replaced"));

  ASSERT_TRUE(store->erase("memory", "summary").ok());
  EXPECT_TRUE(store->get("memory", "summary")->is_null());
  EXPECT_TRUE(store->erase("memory", "summary").ok()) << "erasing a missing key is fine";
}

TEST_F(StateStoreTest, KeepsEveryJsonTypeExactly) {
  auto store = open_store(":memory:");
  ASSERT_NE(store, nullptr);
  const std::vector<Json> values = {
      Json(nullptr),     Json(true),
      Json(-42),         Json(uint64_t{18446744073709551615u}),
      Json(3.25),        Json(""),
      Json("ünïcødé ✓"), Json::array(),
      Json::object(),    Json{{"nested", {{"deep", {1, 2, {{"x", nullptr}}}}}}},
  };
  for (size_t i = 0; i < values.size(); ++i) {
    ASSERT_TRUE(store->set("m", std::to_string(i), values[i]).ok());
  }
  for (size_t i = 0; i < values.size(); ++i) {
    auto got = store->get("m", std::to_string(i));
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, values[i]) << "index " << i;
    EXPECT_EQ(got->type(), values[i].type()) << "index " << i;
  }
}

TEST_F(StateStoreTest, ModulesAreSeparateNamespaces) {
  auto store = open_store(":memory:");
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->set("a", "k", 1).ok());
  ASSERT_TRUE(store->set("b", "k", 2).ok());
  ASSERT_TRUE(store->set("ab", "k", 3).ok());
  EXPECT_EQ(*store->get("a", "k"), Json(1));
  EXPECT_EQ(*store->get("b", "k"), Json(2));
  ASSERT_TRUE(store->erase("a", "k").ok());
  EXPECT_TRUE(store->get("a", "k")->is_null());
  EXPECT_EQ(*store->get("b", "k"), Json(2));
  EXPECT_EQ(store->all("ab")->size(), 1u);
}

TEST_F(StateStoreTest, AllReturnsEveryKeyOfOneModuleSorted) {
  auto store = open_store(":memory:");
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->set("m", "zeta", 26).ok());
  ASSERT_TRUE(store->set("m", "alpha", 1).ok());
  ASSERT_TRUE(store->set("m", "", "empty key").ok());
  ASSERT_TRUE(store->set("m", "nulled", nullptr).ok());
  ASSERT_TRUE(store->set("other", "alpha", "not mine").ok());
  auto all = store->all("m");
  ASSERT_TRUE(all.ok()) << all.status();
  std::map<std::string, Json> expected = {
      {"", "empty key"}, {"alpha", 1}, {"nulled", nullptr}, {"zeta", 26}};
  EXPECT_EQ(*all, expected);
}

TEST_F(StateStoreTest, EmptyModuleNameIsRejected) {
  auto store = open_store(":memory:");
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->set("", "k", 1).message(), HasSubstr("module name is empty"));
  EXPECT_FALSE(store->get("", "k").ok());
  EXPECT_FALSE(store->erase("", "k").ok());
  EXPECT_FALSE(store->all("").ok());
}

TEST_F(StateStoreTest, KeysWithSqlAndBinaryLookingTextAreLiteral) {
  auto store = open_store(":memory:");
  ASSERT_NE(store, nullptr);
  const std::string odd_key = "k'; DROP TABLE module_state; --";
  const std::string with_nul("a\0b", 3);
  ASSERT_TRUE(store->set("m", odd_key, 1).ok());
  ASSERT_TRUE(store->set("m", with_nul, 2).ok());
  ASSERT_TRUE(store->set("m", "a", 3).ok());
  EXPECT_EQ(*store->get("m", odd_key), Json(1));
  EXPECT_EQ(*store->get("m", with_nul), Json(2));
  EXPECT_EQ(*store->get("m", "a"), Json(3));
}

TEST_F(StateStoreTest, InvalidUtf8ValueIsAnErrorNotACrash) {
  auto store = open_store(":memory:");
  ASSERT_NE(store, nullptr);
  Status status = store->set("m", "k", Json(std::string("\xff\xfe")));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("module 'm' key 'k'"));
  EXPECT_TRUE(store->get("m", "k")->is_null());
}

TEST_F(StateStoreTest, StatePersistsAcrossReopen) {
  const fs::path file = dir_ / "nested" / "deeper" / "state.db";
  {
    auto store = open_store(file);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->file(), file);
    ASSERT_TRUE(store->set("reasoning", "iterations", 7).ok());
    ASSERT_TRUE(store->set("reasoning", "last", {{"task", "debug"}}).ok());
    ASSERT_TRUE(store->set("memory", "gone", 1).ok());
    ASSERT_TRUE(store->erase("memory", "gone").ok());
  }
  EXPECT_TRUE(fs::exists(file)) << "parent directories are created";
  auto store = open_store(file);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(*store->get("reasoning", "iterations"), Json(7));
  EXPECT_EQ(*store->get("reasoning", "last"), (Json{{"task", "debug"}}));
  EXPECT_TRUE(store->get("memory", "gone")->is_null());
  EXPECT_EQ(store->all("reasoning")->size(), 2u);
}

TEST_F(StateStoreTest, CommittedStateIsVisibleToASecondConnectionWhileOpen) {
  // The WAL is not checkpointed yet while the first store is open; a second
  // opener (another process after a kill would be the same) still sees it.
  const fs::path file = dir_ / "state.db";
  auto writer = open_store(file);
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->set("m", "k", "committed").ok());
  EXPECT_TRUE(fs::exists(fs::path(file.string() + "-wal"))) << "WAL mode is on";
  auto reader = open_store(file);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(*reader->get("m", "k"), Json("committed"));
}

TEST_F(StateStoreTest, CommittedStateSurvivesSigkill) {
  const fs::path file = dir_ / "state.db";
  const pid_t child = fork();
  ASSERT_NE(child, -1);
  if (child == 0) {
    // No destructor, no checkpoint: only what set() committed to the WAL.
    auto store = StateStore::open(file);
    if (!store.ok()) _exit(2);
    for (int i = 0; i < 100; ++i) {
      if (!(*store)->set("m", "key" + std::to_string(i), i).ok()) _exit(3);
    }
    kill(getpid(), SIGKILL);
    _exit(4);
  }
  int wstatus = 0;
  ASSERT_EQ(waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFSIGNALED(wstatus)) << "child exited with " << WEXITSTATUS(wstatus);
  ASSERT_EQ(WTERMSIG(wstatus), SIGKILL);
  auto store = open_store(file);
  ASSERT_NE(store, nullptr);
  auto all = store->all("m");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 100u);
  EXPECT_EQ(all->at("key99"), Json(99));
}

TEST_F(StateStoreTest, InMemoryStoreStartsEmptyEachTime) {
  {
    auto store = open_store(":memory:");
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->set("m", "k", 1).ok());
  }
  auto store = StateStore::open_in_memory();
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE((*store)->get("m", "k")->is_null());
  EXPECT_FALSE(fs::exists(":memory:"));
}

TEST_F(StateStoreTest, ConcurrentWritersAndReadersFromFourThreads) {
  auto store = open_store(dir_ / "state.db");
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 4;
  constexpr int kKeys = 250;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string module = "module" + std::to_string(t);
      for (int i = 0; i < kKeys; ++i) {
        const std::string key = "key" + std::to_string(i);
        if (!store->set(module, key, {{"thread", t}, {"i", i}}).ok()) ++failures;
        // Everyone also hammers one shared key and reads back its own writes.
        if (!store->set("shared", "counter", i).ok()) ++failures;
        auto mine = store->get(module, key);
        if (!mine.ok() || (*mine)["i"] != i) ++failures;
        if (!store->get("shared", "counter").ok()) ++failures;
        if (i % 50 == 0 && !store->all(module).ok()) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    auto all = store->all("module" + std::to_string(t));
    ASSERT_TRUE(all.ok()) << all.status();
    ASSERT_EQ(all->size(), static_cast<size_t>(kKeys));
    EXPECT_EQ(all->at("key7"), (Json{{"thread", t}, {"i", 7}}));
  }
  EXPECT_EQ(*store->get("shared", "counter"), Json(kKeys - 1));
}

TEST_F(StateStoreTest, FileThatIsNotADatabaseGivesAClearError) {
  const fs::path file = dir_ / "state.db";
  {
    std::ofstream out(file, std::ios::binary);
    for (int i = 0; i < 400; ++i) out << "this is not a sqlite database, just some text\n";
  }
  auto store = StateStore::open(file);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(store.status().message(), HasSubstr(file.string()));
  EXPECT_THAT(store.status().message(), HasSubstr("not a database"));
  EXPECT_THAT(store.status().message(), HasSubstr("move it aside"));
}

TEST_F(StateStoreTest, CorruptedDatabaseGivesAClearError) {
  const fs::path file = dir_ / "state.db";
  {
    auto store = open_store(file);
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 200; ++i) {
      ASSERT_TRUE(store->set("m", "key" + std::to_string(i), std::string(200, 'x')).ok());
    }
  }
  ASSERT_FALSE(fs::exists(fs::path(file.string() + "-wal"))) << "closing checkpoints the WAL";
  // Keep the valid header page and scribble over the b-tree pages after it.
  {
    std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(4096);
    const std::string garbage(8192, '\xA5');
    io.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  auto store = StateStore::open(file);
  Status status = store.ok() ? (*store)->all("m").status() : store.status();
  ASSERT_FALSE(status.ok()) << "a corrupt tree must not read as valid state";
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_THAT(status.message(), HasSubstr(file.string()));
  EXPECT_THAT(status.message(), HasSubstr("move it aside"));
}

TEST_F(StateStoreTest, DirectoryInPlaceOfTheFileIsAClearError) {
  fs::create_directories(dir_ / "state.db");
  auto store = StateStore::open(dir_ / "state.db");
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr("is a directory"));
  EXPECT_THAT(store.status().message(), HasSubstr((dir_ / "state.db").string()));
}

TEST_F(StateStoreTest, UncreatableParentDirectoryIsAClearError) {
  { std::ofstream(dir_ / "plain_file") << "x"; }
  const fs::path file = dir_ / "plain_file" / "sub" / "state.db";
  auto store = StateStore::open(file);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr("cannot create directory"));
  EXPECT_THAT(store.status().message(), HasSubstr(file.string()));
}

TEST_F(StateStoreTest, NewerSchemaVersionIsRefused) {
  const fs::path file = dir_ / "state.db";
  { ASSERT_NE(open_store(file), nullptr); }
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  auto store = StateStore::open(file);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr("schema version 99"));
}

TEST_F(StateStoreTest, MalformedStoredValueIsReportedWithModuleAndKey) {
  const fs::path file = dir_ / "state.db";
  { ASSERT_NE(open_store(file), nullptr); }
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "INSERT INTO module_state VALUES ('m', 'bad', '{not json')", nullptr,
                           nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  auto store = open_store(file);
  ASSERT_NE(store, nullptr);
  auto value = store->get("m", "bad");
  ASSERT_FALSE(value.ok());
  EXPECT_THAT(value.status().message(), HasSubstr("module 'm' key 'bad'"));
  EXPECT_FALSE(store->all("m").ok());
  ASSERT_TRUE(store->erase("m", "bad").ok()) << "the way out the message suggests works";
  EXPECT_TRUE(store->get("m", "bad")->is_null());
}

}  // namespace
}  // namespace lotus
