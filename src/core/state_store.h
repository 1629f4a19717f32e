// StateStore: persistent per-module key/value state, so a module's state
// survives hot reloads, supervisor restarts and nucleus restarts.
//
// Values are JSON, stored as text in one SQLite table keyed by (module, key).
// One connection guarded by one mutex serves every thread; statements are
// prepared once. The database runs in WAL mode with synchronous=NORMAL, see
// state_store.cc for what that means for durability.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "lotus/event.h"
#include "lotus/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace lotus {

class StateStore {
 public:
  // Opens (creating it and its parent directories if needed) the state
  // database at `file`. The path ":memory:" opens a private in-memory store
  // that vanishes when closed, for tests.
  static Result<std::unique_ptr<StateStore>> open(const std::filesystem::path& file);
  static Result<std::unique_ptr<StateStore>> open_in_memory() { return open(":memory:"); }

  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  // The value stored under (module, key), or Json null if there is none.
  Result<Json> get(std::string_view module, std::string_view key);
  // Stores `value` under (module, key), replacing what was there, in its own
  // transaction. Storing null is allowed and is distinct from erasing only in
  // that the key still shows up in all().
  Status set(std::string_view module, std::string_view key, const Json& value);
  // Removes (module, key); erasing a missing key is not an error.
  Status erase(std::string_view module, std::string_view key);
  // Every key of `module` with its value, sorted by key.
  Result<std::map<std::string, Json>> all(std::string_view module);

  const std::filesystem::path& file() const { return file_; }

 private:
  StateStore(std::filesystem::path file, sqlite3* db) : file_(std::move(file)), db_(db) {}

  Status prepare_statements();
  Status sqlite_error(std::string_view action) const;

  const std::filesystem::path file_;
  std::mutex mutex_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* get_stmt_ = nullptr;
  sqlite3_stmt* set_stmt_ = nullptr;
  sqlite3_stmt* erase_stmt_ = nullptr;
  sqlite3_stmt* all_stmt_ = nullptr;
};

}  // namespace lotus
