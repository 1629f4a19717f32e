#include "core/state_store.h"

#include <climits>
#include <cstdlib>
#include <string>
#include <system_error>
#include <utility>

#include <sqlite3.h>

#include "absl/strings/str_cat.h"

namespace lotus {
namespace {

constexpr std::string_view kMemoryPath = ":memory:";
// Bumped when the table layout changes; a newer file is refused rather than
// misread by an older build.
constexpr int kSchemaVersion = 1;

absl::StatusCode code_for(int rc) {
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::StatusCode::kDataLoss;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::StatusCode::kUnavailable;
    case SQLITE_FULL:
      return absl::StatusCode::kResourceExhausted;
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
      return absl::StatusCode::kFailedPrecondition;
    default:
      return absl::StatusCode::kInternal;
  }
}

// What a person can do about a failure, by SQLite result code.
std::string_view hint_for(int rc) {
  switch (rc & 0xff) {
    case SQLITE_NOTADB:
      return " (another kind of file, or damaged): move it aside to start with empty module "
             "state";
    case SQLITE_CORRUPT:
      return "; the database is corrupt: move it aside to start with empty module state, or "
             "try `sqlite3 FILE .recover`";
    case SQLITE_CANTOPEN:
      return "; check that the path is a file in a writable directory";
    case SQLITE_PERM:
    case SQLITE_READONLY:
      return "; check the permissions of the file and its directory";
    case SQLITE_FULL:
      return "; the disk is full";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return "; another process holds a lock on it (is a second lotus running?)";
    default:
      return "";
  }
}

// Resets and unbinds a cached statement when a call ends, however it ends, so
// the next call finds it ready and no bound buffer outlives its owner.
class StatementGuard {
 public:
  explicit StatementGuard(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~StatementGuard() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  StatementGuard(const StatementGuard&) = delete;
  StatementGuard& operator=(const StatementGuard&) = delete;

 private:
  sqlite3_stmt* stmt_;
};

// Binds without copying: the guard unbinds before the caller's text goes away.
// An empty string_view may have a null data pointer, which SQLite would store
// as NULL rather than "".
int bind_text(sqlite3_stmt* stmt, int index, std::string_view text) {
  if (text.size() > static_cast<size_t>(INT_MAX)) return SQLITE_TOOBIG;
  const char* data = text.data() != nullptr ? text.data() : "";
  return sqlite3_bind_text(stmt, index, data, static_cast<int>(text.size()), SQLITE_STATIC);
}

std::string_view column_text(sqlite3_stmt* stmt, int column) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, column));
  if (text == nullptr) return {};
  return {text, static_cast<size_t>(sqlite3_column_bytes(stmt, column))};
}

Status check_module(std::string_view module) {
  if (module.empty()) return absl::InvalidArgumentError("state store: module name is empty");
  return absl::OkStatus();
}

}  // namespace

Result<std::unique_ptr<StateStore>> StateStore::open(const std::filesystem::path& file) {
  const bool in_memory = file.native() == kMemoryPath;
  const std::string shown = file.string();
  if (!in_memory) {
    std::error_code ec;
    if (std::filesystem::is_directory(file, ec)) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot open state store ", shown, ": it is a directory, not a file"));
    }
    const std::filesystem::path parent = file.parent_path();
    if (!parent.empty()) {
      std::filesystem::create_directories(parent, ec);
      if (ec) {
        return absl::FailedPreconditionError(absl::StrCat("cannot open state store ", shown,
                                                          ": cannot create directory ",
                                                          parent.string(), ": ", ec.message()));
      }
    }
  }

  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(shown.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  // From here the StateStore owns the handle, even if opening failed.
  std::unique_ptr<StateStore> store(new StateStore(file, db));
  if (rc != SQLITE_OK) return store->sqlite_error("open");

  sqlite3_busy_timeout(db, 5000);
  sqlite3_extended_result_codes(db, 1);

  // Durability trade-off. With a write-ahead log and synchronous=NORMAL a
  // commit appends to the WAL without an fsync; SQLite syncs at checkpoints.
  // So every transaction that returned survives the process being killed
  // (SIGKILL, a crash, an OOM kill): its pages are in the OS page cache and
  // the WAL is replayed on the next open. An OS crash or power loss can lose
  // the last few transactions (never corrupt the file). Module state is
  // small and rewritten often, so avoiding an fsync per set() is worth it;
  // synchronous=FULL would close the gap at the cost of one fsync per write.
  // WAL also lets readers (e.g. `lotus state` inspecting a running node)
  // proceed while the nucleus writes. An in-memory store keeps its own mode.
  if (!in_memory) {
    rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return store->sqlite_error("open");
  }
  rc = sqlite3_exec(db, "PRAGMA synchronous=NORMAL", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return store->sqlite_error("configure");

  int version = 0;
  rc = sqlite3_exec(
      db, "PRAGMA user_version",
      [](void* out, int, char** values, char**) {
        *static_cast<int*>(out) = values[0] != nullptr ? std::atoi(values[0]) : 0;
        return 0;
      },
      &version, nullptr);
  if (rc != SQLITE_OK) return store->sqlite_error("read the schema version of");
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open state store ", shown, ": it has schema version ", version,
                     " from a newer LOTUS, this build understands version ", kSchemaVersion,
                     "; upgrade lotus or point data_dir elsewhere"));
  }
  rc = sqlite3_exec(db,
                    "BEGIN IMMEDIATE;"
                    "CREATE TABLE IF NOT EXISTS module_state ("
                    "  module TEXT NOT NULL,"
                    "  key TEXT NOT NULL,"
                    "  value TEXT NOT NULL,"
                    "  PRIMARY KEY (module, key)"
                    ") WITHOUT ROWID;"
                    "PRAGMA user_version=1;"
                    "COMMIT;",
                    nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    Status status = store->sqlite_error("create the schema of");
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    return status;
  }
  if (Status status = store->prepare_statements(); !status.ok()) return status;
  return store;
}

StateStore::~StateStore() {
  for (sqlite3_stmt* stmt : {get_stmt_, set_stmt_, erase_stmt_, all_stmt_}) {
    sqlite3_finalize(stmt);
  }
  // The last connection to close checkpoints the WAL into the main file.
  sqlite3_close_v2(db_);
}

Status StateStore::prepare_statements() {
  struct {
    const char* sql;
    sqlite3_stmt** stmt;
  } const statements[] = {
      {"SELECT value FROM module_state WHERE module = ?1 AND key = ?2", &get_stmt_},
      {"INSERT INTO module_state (module, key, value) VALUES (?1, ?2, ?3) "
       "ON CONFLICT (module, key) DO UPDATE SET value = excluded.value",
       &set_stmt_},
      {"DELETE FROM module_state WHERE module = ?1 AND key = ?2", &erase_stmt_},
      {"SELECT key, value FROM module_state WHERE module = ?1 ORDER BY key", &all_stmt_},
  };
  for (const auto& [sql, stmt] : statements) {
    if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt, nullptr) != SQLITE_OK) {
      return sqlite_error("prepare statements for");
    }
  }
  return absl::OkStatus();
}

Status StateStore::sqlite_error(std::string_view action) const {
  if (db_ == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot ", std::string(action), " state store ", file_.string(), ": out of memory"));
  }
  const int rc = sqlite3_extended_errcode(db_);
  std::string hint(hint_for(rc));
  if (auto at = hint.find("FILE"); at != std::string::npos) hint.replace(at, 4, file_.string());
  return Status(code_for(rc),
                absl::StrCat("cannot ", std::string(action), " state store ", file_.string(), ": ",
                             std::string(sqlite3_errmsg(db_)), hint));
}

Result<Json> StateStore::get(std::string_view module, std::string_view key) {
  if (Status status = check_module(module); !status.ok()) return status;
  std::lock_guard lock(mutex_);
  StatementGuard guard(get_stmt_);
  if (bind_text(get_stmt_, 1, module) != SQLITE_OK || bind_text(get_stmt_, 2, key) != SQLITE_OK) {
    return sqlite_error("read from");
  }
  const int rc = sqlite3_step(get_stmt_);
  if (rc == SQLITE_DONE) return Json(nullptr);
  if (rc != SQLITE_ROW) return sqlite_error("read from");
  Json value = Json::parse(column_text(get_stmt_, 0), nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    return absl::DataLossError(absl::StrCat("state store ", file_.string(), ": module '",
                                            std::string(module), "' key '", std::string(key),
                                            "' holds malformed JSON; erase or set it again"));
  }
  return value;
}

Status StateStore::set(std::string_view module, std::string_view key, const Json& value) {
  if (Status status = check_module(module); !status.ok()) return status;
  std::string text;
  try {
    text = value.dump();
  } catch (const Json::exception& e) {
    // dump() refuses strings that are not valid UTF-8.
    return absl::InvalidArgumentError(absl::StrCat("state store: cannot store module '",
                                                   std::string(module), "' key '", std::string(key),
                                                   "': ", e.what()));
  }
  std::lock_guard lock(mutex_);
  StatementGuard guard(set_stmt_);
  if (bind_text(set_stmt_, 1, module) != SQLITE_OK || bind_text(set_stmt_, 2, key) != SQLITE_OK ||
      bind_text(set_stmt_, 3, text) != SQLITE_OK) {
    return sqlite_error("write to");
  }
  if (sqlite3_step(set_stmt_) != SQLITE_DONE) return sqlite_error("write to");
  return absl::OkStatus();
}

Status StateStore::erase(std::string_view module, std::string_view key) {
  if (Status status = check_module(module); !status.ok()) return status;
  std::lock_guard lock(mutex_);
  StatementGuard guard(erase_stmt_);
  if (bind_text(erase_stmt_, 1, module) != SQLITE_OK ||
      bind_text(erase_stmt_, 2, key) != SQLITE_OK) {
    return sqlite_error("erase from");
  }
  if (sqlite3_step(erase_stmt_) != SQLITE_DONE) return sqlite_error("erase from");
  return absl::OkStatus();
}

Result<std::map<std::string, Json>> StateStore::all(std::string_view module) {
  if (Status status = check_module(module); !status.ok()) return status;
  std::lock_guard lock(mutex_);
  StatementGuard guard(all_stmt_);
  if (bind_text(all_stmt_, 1, module) != SQLITE_OK) return sqlite_error("read from");
  std::map<std::string, Json> values;
  int rc;
  while ((rc = sqlite3_step(all_stmt_)) == SQLITE_ROW) {
    std::string key(column_text(all_stmt_, 0));
    Json value = Json::parse(column_text(all_stmt_, 1), nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) {
      return absl::DataLossError(absl::StrCat("state store ", file_.string(), ": module '",
                                              std::string(module), "' key '", std::string(key),
                                              "' holds malformed JSON; erase or set it again"));
    }
    values.emplace(std::move(key), std::move(value));
  }
  if (rc != SQLITE_DONE) return sqlite_error("read from");
  return values;
}

}  // namespace lotus
