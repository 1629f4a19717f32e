#include "memory/embedded_memory.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <system_error>
#include <tuple>
#include <unordered_set>
#include <utility>

#include <sqlite3.h>

#include "lotus/strings.h"
#include "memory/hashing_embedder.h"
#include "memory/importance.h"
#include "memory/memory_policy.h"
#include "memory/relations.h"

namespace lotus::memory {
namespace {

constexpr int kSchemaVersion = 2;  // 2: term_stats
constexpr int kJournalAdd = 1;
constexpr int kJournalDelete = 0;
// Imports at least this large insert into the index on every core.
constexpr size_t kParallelIndexBatch = 64;

// A prepared statement that finalizes itself.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql) {
    rc_ = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() const { return stmt_; }
  void bind(int i, std::string_view text) {
    sqlite3_bind_text(stmt_, i, text.data() != nullptr ? text.data() : "",
                      static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  void bind(int i, double x) { sqlite3_bind_double(stmt_, i, x); }
  void bind(int i, int64_t x) { sqlite3_bind_int64(stmt_, i, x); }
  void bind_blob(int i, const std::vector<float>& v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size() * sizeof(float)),
                      SQLITE_TRANSIENT);
  }
  int step() { return sqlite3_step(stmt_); }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p != nullptr ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
                        : std::string();
  }
  double real(int col) const { return sqlite3_column_double(stmt_, col); }
  int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::vector<float> floats(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    const auto bytes = static_cast<size_t>(sqlite3_column_bytes(stmt_, col));
    std::vector<float> v(bytes / sizeof(float));
    if (p != nullptr && !v.empty()) std::memcpy(v.data(), p, v.size() * sizeof(float));
    return v;
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

// Commits on commit(), rolls back otherwise.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {
    ok_ = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK;
  }
  ~Transaction() {
    if (ok_ && !done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  bool ok() const { return ok_; }
  bool commit() {
    done_ = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK;
    return done_;
  }

 private:
  sqlite3* db_;
  bool ok_ = false;
  bool done_ = false;
};

constexpr const char* kRowColumns =
    "seq, id, content, type, metadata, importance, created_at, module, collection, tier, recalls";

// Appends the SQL conditions of `filter` (on table alias m) and the values
// to bind for them, in order, as (is_text, value).
void append_filter(const MemoryFilter& filter, std::string& sql,
                   std::vector<std::pair<bool, std::string>>& binds) {
  if (!filter.ids.empty()) {
    sql += " AND m.id IN (";
    for (size_t i = 0; i < filter.ids.size(); ++i) {
      sql += i == 0 ? "?" : ",?";
      binds.emplace_back(true, filter.ids[i]);
    }
    sql += ")";
  }
  if (!filter.types.empty()) {
    sql += " AND m.type IN (";
    for (size_t i = 0; i < filter.types.size(); ++i) {
      sql += i == 0 ? "?" : ",?";
      binds.emplace_back(true, std::string(to_string(filter.types[i])));
    }
    sql += ")";
  }
  if (!filter.module.empty()) {
    sql += " AND m.module = ?";
    binds.emplace_back(true, filter.module);
  }
  if (!filter.collection.empty()) {
    sql += " AND m.collection = ?";
    binds.emplace_back(true, filter.collection);
  }
  if (filter.since > 0) {
    sql += " AND m.created_at >= ?";
    binds.emplace_back(false, std::to_string(filter.since));
  }
  if (filter.until > 0) {
    sql += " AND m.created_at < ?";
    binds.emplace_back(false, std::to_string(filter.until));
  }
  if (filter.min_importance > 0) {
    sql += " AND m.importance >= ?";
    binds.emplace_back(false, std::to_string(filter.min_importance));
  }
}

void bind_all(Statement& stmt, const std::vector<std::pair<bool, std::string>>& binds, int first) {
  int i = first;
  for (const auto& [is_text, value] : binds) {
    if (is_text) {
      stmt.bind(i++, std::string_view(value));
    } else {
      stmt.bind(i++, std::stod(value));
    }
  }
}

// The distinct words of `text` keyword search counts and looks for:
// stopwords match nearly every row and say nothing, so they are left out.
std::vector<std::string> terms_of(std::string_view text) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (std::string& word : HashingEmbedder::words(text)) {
    if (is_stopword(word) || !seen.insert(word).second) continue;
    out.push_back(std::move(word));
  }
  return out;
}

// Adds `sign` to the document count of each term of each text. Runs inside
// the caller's transaction.
bool count_terms(sqlite3* db, const std::vector<std::string_view>& texts, int64_t sign) {
  std::map<std::string, int64_t> delta;
  for (std::string_view text : texts) {
    for (std::string& term : terms_of(text)) delta[std::move(term)] += sign;
  }
  Statement upsert(db,
                   "INSERT INTO term_stats (term, docs) VALUES (?1, ?2) "
                   "ON CONFLICT (term) DO UPDATE SET docs = docs + excluded.docs");
  for (const auto& [term, n] : delta) {
    upsert.bind(1, std::string_view(term));
    upsert.bind(2, n);
    if (upsert.step() != SQLITE_DONE) return false;
    upsert.reset();
  }
  return true;
}

}  // namespace

EmbeddedMemory::EmbeddedMemory(EmbeddedMemoryOptions options)
    : options_(std::move(options)),
      working_(options_.working_capacity, options_.working_ttl_seconds) {}

Result<std::unique_ptr<EmbeddedMemory>> EmbeddedMemory::open(EmbeddedMemoryOptions options) {
  if (options.dir.empty()) return absl::InvalidArgumentError("memory: no data directory given");
  if (!options.embedder) options.embedder = std::make_shared<HashingEmbedder>();
  if (!options.clock) options.clock = [] { return now_seconds(); };
  if (options.embedder->dimension() == 0) {
    return absl::InvalidArgumentError("memory: the embedder has dimension 0");
  }
  std::unique_ptr<EmbeddedMemory> store(new EmbeddedMemory(std::move(options)));
  if (Status s = store->open_database(); !s.ok()) return s;
  if (store->options_.reindex) {
    const auto [name, dimension] = store->stored_embedder();
    const bool same = name == store->options_.embedder->name() &&
                      dimension == std::to_string(store->options_.embedder->dimension());
    if (Status s =
            same && !store->options_.reembed ? store->check_embedder() : store->reembed_all();
        !s.ok()) {
      return s;
    }
  } else if (Status s = store->check_embedder(); !s.ok()) {
    return s;
  }
  if (Status s = store->load_or_rebuild_index(); !s.ok()) return s;
  if (Status s = store->load_short_term(); !s.ok()) return s;
  return store;
}

EmbeddedMemory::~EmbeddedMemory() {
  if (db_ != nullptr && index_ != nullptr) {
    std::lock_guard lock(mutex_);
    save_index_locked().IgnoreError();
  }
  sqlite3_close_v2(db_);
}

Status EmbeddedMemory::sqlite_error(std::string_view action) const {
  const std::string file = database_file().string();
  if (db_ == nullptr) return absl::ResourceExhaustedError(cat("cannot ", action, " ", file));
  const int rc = sqlite3_extended_errcode(db_);
  const auto code = (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB
                        ? absl::StatusCode::kDataLoss
                    : (rc & 0xff) == SQLITE_BUSY ? absl::StatusCode::kUnavailable
                                                 : absl::StatusCode::kInternal;
  return Status(code, cat("memory: cannot ", action, " ", file, ": ", sqlite3_errmsg(db_)));
}

Status EmbeddedMemory::exec(const char* sql) {
  if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return sqlite_error("update");
  }
  return absl::OkStatus();
}

Status EmbeddedMemory::open_database() {
  std::error_code ec;
  std::filesystem::create_directories(options_.dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        cat("memory: cannot create ", options_.dir.string(), ": ", ec.message()));
  }
  const std::string file = database_file().string();
  if (sqlite3_open_v2(file.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return sqlite_error("open");
  }
  sqlite3_busy_timeout(db_, 5000);
  sqlite3_extended_result_codes(db_, 1);
  // WAL + synchronous=NORMAL, as in the state store: a committed transaction
  // survives the process being killed; an OS crash may lose the last few.
  if (Status s = exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"); !s.ok()) return s;
  int version = 0;
  {
    Statement stmt(db_, "PRAGMA user_version");
    if (stmt.ok() && stmt.step() == SQLITE_ROW) version = static_cast<int>(stmt.integer(0));
  }
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(cat("memory: ", file, " has schema version ", version,
                                             " from a newer LOTUS; upgrade lotus"));
  }
  Status s = exec(
      "BEGIN IMMEDIATE;"
      "CREATE TABLE IF NOT EXISTS memories ("
      "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
      "  id TEXT NOT NULL UNIQUE,"
      "  content TEXT NOT NULL,"
      "  type TEXT NOT NULL,"
      "  metadata TEXT NOT NULL,"
      "  importance REAL NOT NULL,"
      "  created_at REAL NOT NULL,"
      "  module TEXT NOT NULL,"
      "  collection TEXT NOT NULL,"
      "  tier TEXT NOT NULL,"
      "  recalls INTEGER NOT NULL DEFAULT 0,"
      "  embedding BLOB);"
      "CREATE INDEX IF NOT EXISTS memories_tier ON memories (tier, created_at);"
      "CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5("
      "  content, content='memories', content_rowid='seq', tokenize='porter unicode61');"
      "CREATE TRIGGER IF NOT EXISTS memories_ai AFTER INSERT ON memories BEGIN"
      "  INSERT INTO memories_fts (rowid, content) VALUES (new.seq, new.content); END;"
      "CREATE TRIGGER IF NOT EXISTS memories_ad AFTER DELETE ON memories BEGIN"
      "  INSERT INTO memories_fts (memories_fts, rowid, content)"
      "  VALUES ('delete', old.seq, old.content); END;"
      "CREATE TABLE IF NOT EXISTS index_journal ("
      "  n INTEGER PRIMARY KEY AUTOINCREMENT, seq INTEGER NOT NULL, op INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
      "CREATE TABLE IF NOT EXISTS term_stats ("
      "  term TEXT PRIMARY KEY, docs INTEGER NOT NULL) WITHOUT ROWID;"
      "COMMIT;");
  if (s.ok() && version < 2) s = count_all_terms();
  if (s.ok()) s = exec(std::string(relation_sql::kSchema).c_str());
  return s;
}

Status EmbeddedMemory::count_all_terms() {
  // Schema 1 had no term counts: count what is there once.
  Transaction tx(db_);
  if (!tx.ok()) return sqlite_error("upgrade");
  if (Status s = exec("DELETE FROM term_stats"); !s.ok()) return s;
  Statement stmt(db_, "SELECT content FROM memories");
  std::vector<std::string> batch;
  auto flush = [&] {
    std::vector<std::string_view> texts(batch.begin(), batch.end());
    const bool ok = count_terms(db_, texts, 1);
    batch.clear();
    return ok;
  };
  while (stmt.step() == SQLITE_ROW) {
    batch.push_back(stmt.text(0));
    if (batch.size() == 1000 && !flush()) return sqlite_error("upgrade");
  }
  if (!flush()) return sqlite_error("upgrade");
  if (Status s = exec("PRAGMA user_version=2"); !s.ok()) return s;
  if (!tx.commit()) return sqlite_error("upgrade");
  return absl::OkStatus();
}

std::pair<std::string, std::string> EmbeddedMemory::stored_embedder() {
  std::map<std::string, std::string> meta;
  Statement stmt(db_, "SELECT key, value FROM meta");
  while (stmt.step() == SQLITE_ROW) meta[stmt.text(0)] = stmt.text(1);
  return {meta["embedder"], meta["dimension"]};
}

Status EmbeddedMemory::check_embedder() {
  std::map<std::string, std::string> meta;
  std::tie(meta["embedder"], meta["dimension"]) = stored_embedder();
  const std::string name = options_.embedder->name();
  const std::string dimension = std::to_string(options_.embedder->dimension());
  if (meta["embedder"].empty()) {
    Statement stmt(db_,
                   "INSERT OR REPLACE INTO meta (key, value) VALUES ('embedder', ?1), "
                   "('dimension', ?2)");
    stmt.bind(1, std::string_view(name));
    stmt.bind(2, std::string_view(dimension));
    if (stmt.step() != SQLITE_DONE) return sqlite_error("write to");
    return absl::OkStatus();
  }
  if (meta["embedder"] != name || meta["dimension"] != dimension) {
    return absl::FailedPreconditionError(
        cat("memory: ", database_file().string(), " holds vectors made by embedder \"",
            meta["embedder"], "\" (dimension ", meta["dimension"],
            ") but the configured embedder is \"", name, "\" (dimension ", dimension,
            "); run `lotus memory reindex` to re-embed every memory with the configured "
            "embedder, or configure the one the memories were made with"));
  }
  return absl::OkStatus();
}

Status EmbeddedMemory::reembed_all() {
  std::vector<std::pair<int64_t, std::string>> rows;
  {
    Statement stmt(db_, "SELECT seq, content FROM memories ORDER BY seq");
    while (stmt.step() == SQLITE_ROW) rows.emplace_back(stmt.integer(0), stmt.text(1));
  }
  // One transaction: a failure half way (a server gone) leaves every memory
  // as it was, with the old embedder still recorded.
  Transaction tx(db_);
  if (!tx.ok()) return sqlite_error("reindex");
  Statement update(db_, "UPDATE memories SET embedding = ?1 WHERE seq = ?2");
  constexpr size_t kChunk = 256;
  const size_t dimension = options_.embedder->dimension();
  if (options_.progress) options_.progress("re-embedding memories", 0, rows.size());
  for (size_t start = 0; start < rows.size(); start += kChunk) {
    const size_t end = std::min(rows.size(), start + kChunk);
    std::vector<std::string> texts;
    for (size_t i = start; i < end; ++i) texts.push_back(std::move(rows[i].second));
    auto vectors = options_.embedder->embed_batch(texts);
    if (!vectors.ok()) return vectors.status();
    if (vectors->size() != texts.size()) {
      return absl::InternalError(cat("memory: embedder \"", options_.embedder->name(),
                                     "\" returned ", vectors->size(), " vectors for ", texts.size(),
                                     " texts"));
    }
    for (size_t i = start; i < end; ++i) {
      const std::vector<float>& v = (*vectors)[i - start];
      if (v.size() != dimension) {
        return absl::InternalError(cat("memory: embedder \"", options_.embedder->name(),
                                       "\" returned ", v.size(), " numbers, expected ", dimension));
      }
      update.bind_blob(1, v);
      update.bind(2, rows[i].first);
      if (update.step() != SQLITE_DONE) return sqlite_error("reindex");
      update.reset();
    }
    if (options_.progress) options_.progress("re-embedding memories", end, rows.size());
  }
  Statement meta(db_,
                 "INSERT OR REPLACE INTO meta (key, value) VALUES ('embedder', ?1), "
                 "('dimension', ?2)");
  meta.bind(1, std::string_view(options_.embedder->name()));
  meta.bind(2, std::string_view(std::to_string(options_.embedder->dimension())));
  if (meta.step() != SQLITE_DONE) return sqlite_error("reindex");
  if (Status s = exec("DELETE FROM index_journal"); !s.ok()) return s;
  if (!tx.commit()) return sqlite_error("reindex");
  std::error_code ec;
  std::filesystem::remove(index_file(), ec);
  std::filesystem::remove(VectorIndex::meta_file(index_file()), ec);
  return absl::OkStatus();
}

Status EmbeddedMemory::load_or_rebuild_index() {
  if (options_.reindex) {
    // Whatever the file holds, the index is built anew from the database.
    rebuild_reason_ = "reindex requested";
    return rebuild_index();
  }
  int64_t position = 0;
  auto loaded = VectorIndex::load(index_file(), options_.embedder->name(),
                                  options_.embedder->dimension(), options_.index, &position);
  if (loaded.ok()) {
    index_ = std::move(*loaded);
    return replay_journal(position);
  }
  if (loaded.status().code() == absl::StatusCode::kFailedPrecondition) return loaded.status();
  Status rebuilt = rebuild_index();
  // A new, empty store has no index yet: nothing was rebuilt worth telling.
  if (rebuilt.ok() &&
      (index_->size() > 0 || loaded.status().code() != absl::StatusCode::kNotFound)) {
    rebuild_reason_ = std::string(message_of(loaded.status()));
  }
  return rebuilt;
}

Status EmbeddedMemory::rebuild_index() {
  index_ = std::make_unique<VectorIndex>(options_.embedder->name(), options_.embedder->dimension(),
                                         options_.index);
  size_t total = 0;
  {
    Statement count(db_, "SELECT count(*) FROM memories WHERE tier = 'long_term'");
    if (count.step() == SQLITE_ROW) total = static_cast<size_t>(count.integer(0));
  }
  Statement stmt(db_, "SELECT seq, embedding FROM memories WHERE tier = 'long_term' ORDER BY seq");
  // Read in chunks and inserted on every core: rebuilding a large index is
  // minutes of work (hnswlib inserts dominate, SQLite reads are quick).
  constexpr size_t kChunk = 2000;
  std::vector<uint64_t> labels;
  std::vector<std::vector<float>> vectors;
  size_t done = 0;
  int rc;
  do {
    rc = stmt.step();
    if (rc == SQLITE_ROW) {
      labels.push_back(static_cast<uint64_t>(stmt.integer(0)));
      vectors.push_back(stmt.floats(1));
    }
    if (labels.size() == kChunk || (rc != SQLITE_ROW && !labels.empty())) {
      if (Status s = index_->add_many(labels, vectors); !s.ok()) return s;
      done += labels.size();
      labels.clear();
      vectors.clear();
      if (options_.progress) options_.progress("rebuilding memory index", done, total);
    }
  } while (rc == SQLITE_ROW);
  if (rc != SQLITE_DONE) return sqlite_error("read");
  index_dirty_ = true;
  return save_index_locked();
}

Status EmbeddedMemory::replay_journal(int64_t after) {
  Statement stmt(db_,
                 "SELECT j.n, j.seq, j.op, m.embedding, m.tier FROM index_journal j "
                 "LEFT JOIN memories m ON m.seq = j.seq WHERE j.n > ?1 ORDER BY j.n");
  stmt.bind(1, after);
  int rc;
  while ((rc = stmt.step()) == SQLITE_ROW) {
    index_dirty_ = true;
    const auto seq = static_cast<uint64_t>(stmt.integer(1));
    if (stmt.integer(2) == kJournalAdd && stmt.text(4) == "long_term") {
      std::vector<float> v = stmt.floats(3);
      if (v.size() == index_->dimension()) {
        if (Status s = index_->add(seq, v.data()); !s.ok()) return s;
      }
    } else {
      index_->remove(seq);
    }
  }
  if (rc != SQLITE_DONE) return sqlite_error("read the index journal of");
  return absl::OkStatus();
}

Status EmbeddedMemory::load_short_term() {
  Statement stmt(db_, "SELECT seq, embedding FROM memories WHERE tier = 'short_term'");
  int rc;
  while ((rc = stmt.step()) == SQLITE_ROW) short_term_[stmt.integer(0)] = stmt.floats(1);
  if (rc != SQLITE_DONE) return sqlite_error("read");
  return absl::OkStatus();
}

Status EmbeddedMemory::save_index() {
  std::lock_guard lock(mutex_);
  return save_index_locked();
}

Status EmbeddedMemory::save_index_locked() {
  if (!index_dirty_) return absl::OkStatus();
  int64_t position = 0;
  {
    Statement stmt(db_, "SELECT coalesce(max(n), 0) FROM index_journal");
    if (stmt.step() == SQLITE_ROW) position = stmt.integer(0);
  }
  if (Status s = index_->save(index_file(), position); !s.ok()) return s;
  Statement trim(db_, "DELETE FROM index_journal WHERE n <= ?1");
  trim.bind(1, position);
  if (trim.step() != SQLITE_DONE) return sqlite_error("trim the index journal of");
  index_dirty_ = false;
  return absl::OkStatus();
}

Result<MemoryRecord> EmbeddedMemory::remember(MemoryInput input) {
  std::vector<MemoryInput> inputs;
  inputs.push_back(std::move(input));
  auto records = remember_all(std::move(inputs));
  if (!records.ok()) return records.status();
  return std::move(records->front());
}

Result<std::vector<MemoryRecord>> EmbeddedMemory::remember_all(std::vector<MemoryInput> inputs) {
  std::vector<std::string> metadata_texts;
  auto prepared = prepare_records(std::move(inputs), options_, &metadata_texts);
  if (!prepared.ok()) return prepared.status();
  std::vector<MemoryRecord> records = std::move(*prepared);
  if (records.empty()) return records;
  std::vector<std::string> contents;
  contents.reserve(records.size());
  for (const MemoryRecord& record : records) contents.push_back(record.content);
  auto vectors = embed_checked(*options_.embedder, contents);
  if (!vectors.ok()) return vectors.status();

  std::lock_guard lock(mutex_);
  const double t = now();
  std::vector<int64_t> seqs;
  seqs.reserve(records.size());
  Transaction tx(db_);
  if (!tx.ok()) return sqlite_error("store in");
  Statement insert(db_,
                   "INSERT INTO memories (id, content, type, metadata, importance, created_at, "
                   "module, collection, tier, embedding) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)");
  Statement journal(db_, "INSERT INTO index_journal (seq, op) VALUES (?1, ?2)");
  for (size_t i = 0; i < records.size(); ++i) {
    MemoryRecord& record = records[i];
    record.created_at = t;
    insert.bind(1, std::string_view(record.id));
    insert.bind(2, std::string_view(record.content));
    insert.bind(3, to_string(record.type));
    insert.bind(4, std::string_view(metadata_texts[i]));
    insert.bind(5, record.importance);
    insert.bind(6, record.created_at);
    insert.bind(7, std::string_view(record.module));
    insert.bind(8, std::string_view(record.collection));
    insert.bind(9, to_string(record.tier));
    insert.bind_blob(10, (*vectors)[i]);
    if (insert.step() != SQLITE_DONE) return sqlite_error("store in");
    insert.reset();
    const int64_t seq = sqlite3_last_insert_rowid(db_);
    seqs.push_back(seq);
    if (record.tier == MemoryTier::kLongTerm) {
      journal.bind(1, seq);
      journal.bind(2, int64_t{kJournalAdd});
      if (journal.step() != SQLITE_DONE) return sqlite_error("store in");
      journal.reset();
    }
  }
  if (!count_terms(db_, {contents.begin(), contents.end()}, 1)) return sqlite_error("store in");
  if (!tx.commit()) return sqlite_error("store in");

  std::vector<uint64_t> labels;
  std::vector<std::vector<float>> long_term;
  for (size_t i = 0; i < records.size(); ++i) {
    if (records[i].tier == MemoryTier::kLongTerm) {
      labels.push_back(static_cast<uint64_t>(seqs[i]));
      long_term.push_back((*vectors)[i]);
    } else {
      short_term_[seqs[i]] = (*vectors)[i];
    }
  }
  if (!labels.empty()) {
    // Committed: a failure here only leaves the index behind the journal,
    // which the next open replays. A large import inserts on every core.
    index_->add_many(labels, long_term, labels.size() >= kParallelIndexBatch ? 0 : 1).IgnoreError();
    index_dirty_ = true;
  }
  for (size_t i = 0; i < records.size(); ++i) {
    working_.put(records[i], std::move((*vectors)[i]), t);
  }
  return records;
}

Result<std::vector<EmbeddedMemory::Row>> EmbeddedMemory::fetch_rows(
    const std::vector<int64_t>& seqs, const MemoryFilter& filter, bool with_vectors) {
  std::vector<Row> rows;
  if (seqs.empty()) return rows;
  std::string sql = cat("SELECT ", kRowColumns, with_vectors ? ", embedding" : "",
                        " FROM memories m WHERE m.seq IN (");
  for (size_t i = 0; i < seqs.size(); ++i) sql += i == 0 ? "?" : ",?";
  sql += ")";
  std::vector<std::pair<bool, std::string>> binds;
  append_filter(filter, sql, binds);
  Statement stmt(db_, sql);
  if (!stmt.ok()) return sqlite_error("read");
  int i = 1;
  for (int64_t seq : seqs) stmt.bind(i++, seq);
  bind_all(stmt, binds, i);
  int rc;
  while ((rc = stmt.step()) == SQLITE_ROW) {
    Row row;
    row.key = stmt.integer(0);
    row.record.id = stmt.text(1);
    row.record.content = stmt.text(2);
    row.record.type = parse_memory_type(stmt.text(3)).value_or(MemoryType::kEpisodic);
    row.record.metadata = Json::parse(stmt.text(4), nullptr, /*allow_exceptions=*/false);
    if (row.record.metadata.is_discarded()) row.record.metadata = Json::object();
    row.record.importance = stmt.real(5);
    row.record.created_at = stmt.real(6);
    row.record.module = stmt.text(7);
    row.record.collection = stmt.text(8);
    row.record.tier = parse_memory_tier(stmt.text(9)).value_or(MemoryTier::kShortTerm);
    row.recalls = stmt.integer(10);
    if (with_vectors) row.vector = stmt.floats(11);
    rows.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) return sqlite_error("read");
  return rows;
}

Result<std::vector<int64_t>> EmbeddedMemory::keyword_search(std::string_view query, size_t k) {
  std::vector<int64_t> seqs;
  const std::vector<std::string> terms = terms_of(query);
  if (terms.empty()) return seqs;
  std::map<std::string, int64_t> docs;
  {
    std::string sql = "SELECT term, docs FROM term_stats WHERE term IN (";
    for (size_t i = 0; i < terms.size(); ++i) sql += i == 0 ? "?" : ",?";
    sql += ")";
    Statement stmt(db_, sql);
    if (!stmt.ok()) return sqlite_error("search");
    for (size_t i = 0; i < terms.size(); ++i) {
      stmt.bind(static_cast<int>(i) + 1, std::string_view(terms[i]));
    }
    int rc;
    while ((rc = stmt.step()) == SQLITE_ROW) docs[stmt.text(0)] = stmt.integer(1);
    if (rc != SQLITE_DONE) return sqlite_error("search");
  }
  // The rarest words first, as many as the postings budget allows. A word
  // with no count of its own (one only stemming relates to stored words:
  // restarting ~ restarts) is taken as rare; one in no memory is left out.
  std::vector<std::pair<int64_t, const std::string*>> by_count;
  for (const std::string& term : terms) {
    const auto it = docs.find(term);
    const int64_t count = it != docs.end() ? it->second : 1;
    if (count > 0) by_count.emplace_back(count, &term);
  }
  std::sort(by_count.begin(), by_count.end());
  int64_t total = 1;
  {
    Statement stmt(db_, "SELECT coalesce(max(seq), 1) FROM memories");
    if (stmt.step() == SQLITE_ROW) total = std::max<int64_t>(1, stmt.integer(0));
  }
  // Each word's matches read straight off its FTS5 doclist (no bm25: that
  // looks up every matching row's length, which is what made keyword search
  // slow), scored by the inverse document frequency of the words they hold.
  std::vector<double>& score = keyword_scores_;
  std::vector<int64_t> matched;  // the keys with a score, each once
  Statement stmt(db_, "SELECT rowid FROM memories_fts WHERE memories_fts MATCH ?1");
  if (!stmt.ok()) return sqlite_error("search");
  int64_t postings = 0;
  for (const auto& [count, term] : by_count) {
    postings += count;
    if (postings > static_cast<int64_t>(options_.keyword_max_postings)) break;
    const double n = static_cast<double>(count);
    const double idf = std::log(1.0 + (static_cast<double>(total) - n + 0.5) / (n + 0.5));
    stmt.bind(1, std::string_view(cat("\"", *term, "\"")));
    int rc;
    while ((rc = stmt.step()) == SQLITE_ROW) {
      const int64_t seq = stmt.integer(0);
      if (seq < 0) continue;
      const auto at = static_cast<size_t>(seq);
      if (at >= score.size()) score.resize(std::max(at + 1, score.size() * 2), 0.0);
      if (score[at] == 0.0) matched.push_back(seq);
      score[at] += idf;
    }
    if (rc != SQLITE_DONE) {
      for (int64_t seq : matched) score[static_cast<size_t>(seq)] = 0.0;
      return sqlite_error("search");
    }
    stmt.reset();
  }
  std::vector<std::pair<double, int64_t>> ranked;
  ranked.reserve(matched.size());
  for (int64_t seq : matched) {
    double& s = score[static_cast<size_t>(seq)];
    ranked.emplace_back(s, seq);
    s = 0.0;
  }
  const size_t n = std::min(k, ranked.size());
  // Best first; among equals the newer memory.
  std::partial_sort(ranked.begin(), ranked.begin() + static_cast<ptrdiff_t>(n), ranked.end(),
                    [](const auto& a, const auto& b) {
                      return a.first != b.first ? a.first > b.first : a.second > b.second;
                    });
  for (size_t i = 0; i < n; ++i) seqs.push_back(ranked[i].second);
  return seqs;
}

Result<std::vector<RecallHit>> EmbeddedMemory::recall(std::string_view query, size_t limit,
                                                      const MemoryFilter& filter) {
  std::vector<RecallHit> hits;
  if (limit == 0) return hits;
  auto query_vector = options_.embedder->embed(query);
  if (!query_vector.ok()) return query_vector.status();
  const std::vector<float>& q = *query_vector;
  // A filter can reject most nearest neighbours, so look further for one.
  const size_t candidates = std::max<size_t>(limit * 2, 20) * (filter.empty() ? 1 : 10);

  std::lock_guard lock(mutex_);
  const double t = now();

  // Meaning: short-term vectors exhaustively, long-term through the index.
  const auto by_meaning =
      rank_by_meaning(q, short_term_, *index_, candidates, options_.min_similarity);

  // Words: FTS5 over every tier; the filter is applied with the rows below.
  auto by_words = keyword_search(query, candidates);
  if (!by_words.ok()) return by_words.status();

  const std::vector<int64_t> seqs = keys_of(by_meaning, *by_words);
  auto rows = fetch_rows(seqs, filter, /*with_vectors=*/false);
  if (!rows.ok()) return rows.status();
  std::unordered_map<int64_t, Row*> by_seq;
  for (Row& row : *rows) by_seq[row.key] = &row;
  hits = fuse_rankings(
      by_meaning, *by_words, by_seq, options_, t,
      [this, t](const std::string& id) { return working_.touch(id, t) != nullptr; }, limit);

  // Counted for consolidation, where recalled short-term memories are
  // promoted; long-term ones need no count, which keeps most recalls read-only.
  std::vector<const std::string*> short_term_ids;
  for (const RecallHit& hit : hits) {
    if (hit.record.tier == MemoryTier::kShortTerm) short_term_ids.push_back(&hit.record.id);
  }
  if (!short_term_ids.empty()) {
    std::string sql = "UPDATE memories SET recalls = recalls + 1 WHERE id IN (";
    for (size_t i = 0; i < short_term_ids.size(); ++i) sql += i == 0 ? "?" : ",?";
    sql += ")";
    Statement update(db_, sql);
    for (size_t i = 0; i < short_term_ids.size(); ++i) {
      update.bind(static_cast<int>(i) + 1, std::string_view(*short_term_ids[i]));
    }
    update.step();
  }
  return hits;
}

Result<MemoryRecord> EmbeddedMemory::get(std::string_view id) {
  std::lock_guard lock(mutex_);
  Statement stmt(db_, "SELECT seq FROM memories WHERE id = ?1");
  stmt.bind(1, id);
  if (stmt.step() != SQLITE_ROW) return absl::NotFoundError(cat("memory: no memory with id ", id));
  auto rows = fetch_rows({stmt.integer(0)}, MemoryFilter(), false);
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return absl::NotFoundError(cat("memory: no memory with id ", id));
  return std::move(rows->front().record);
}

Result<std::vector<int64_t>> EmbeddedMemory::matching_seqs(const MemoryFilter& filter) {
  std::string sql = "SELECT m.seq FROM memories m WHERE 1";
  std::vector<std::pair<bool, std::string>> binds;
  append_filter(filter, sql, binds);
  Statement stmt(db_, sql);
  if (!stmt.ok()) return sqlite_error("read");
  bind_all(stmt, binds, 1);
  std::vector<int64_t> seqs;
  int rc;
  while ((rc = stmt.step()) == SQLITE_ROW) seqs.push_back(stmt.integer(0));
  if (rc != SQLITE_DONE) return sqlite_error("read");
  return seqs;
}

Result<size_t> EmbeddedMemory::count(const MemoryFilter& filter) {
  std::lock_guard lock(mutex_);
  auto seqs = matching_seqs(filter);
  if (!seqs.ok()) return seqs.status();
  return seqs->size();
}

Result<std::vector<MemoryRecord>> EmbeddedMemory::list(const MemoryFilter& filter, size_t limit) {
  std::lock_guard lock(mutex_);
  auto seqs = matching_seqs(filter);
  if (!seqs.ok()) return seqs.status();
  std::sort(seqs->begin(), seqs->end(), std::greater<>());
  if (seqs->size() > limit) seqs->resize(limit);
  auto rows = fetch_rows(*seqs, MemoryFilter(), false);
  if (!rows.ok()) return rows.status();
  std::sort(rows->begin(), rows->end(), [](const Row& a, const Row& b) { return a.key > b.key; });
  std::vector<MemoryRecord> out;
  for (Row& row : *rows) out.push_back(std::move(row.record));
  return out;
}

Result<size_t> EmbeddedMemory::forget_seqs(const std::vector<int64_t>& seqs) {
  if (seqs.empty()) return size_t{0};
  auto rows = fetch_rows(seqs, MemoryFilter(), false);
  if (!rows.ok()) return rows.status();
  Transaction tx(db_);
  if (!tx.ok()) return sqlite_error("forget in");
  Statement erase(db_, "DELETE FROM memories WHERE seq = ?1");
  Statement journal(db_, "INSERT INTO index_journal (seq, op) VALUES (?1, ?2)");
  for (const Row& row : *rows) {
    erase.bind(1, row.key);
    if (erase.step() != SQLITE_DONE) return sqlite_error("forget in");
    erase.reset();
    if (row.record.tier == MemoryTier::kLongTerm) {
      journal.bind(1, row.key);
      journal.bind(2, int64_t{kJournalDelete});
      if (journal.step() != SQLITE_DONE) return sqlite_error("forget in");
      journal.reset();
    }
  }
  std::vector<std::string_view> texts;
  for (const Row& row : *rows) texts.push_back(row.record.content);
  if (!count_terms(db_, texts, -1)) return sqlite_error("forget in");
  if (!tx.commit()) return sqlite_error("forget in");
  for (const Row& row : *rows) {
    if (row.record.tier == MemoryTier::kLongTerm) {
      index_->remove(static_cast<uint64_t>(row.key));
      index_dirty_ = true;
    }
    short_term_.erase(row.key);
    working_.erase(row.record.id);
  }
  return rows->size();
}

Result<size_t> EmbeddedMemory::forget_matching(const MemoryFilter& filter) {
  std::lock_guard lock(mutex_);
  auto seqs = matching_seqs(filter);
  if (!seqs.ok()) return seqs.status();
  return forget_seqs(*seqs);
}

// --- Facts -----------------------------------------------------------------

namespace {

Relation relation_from_row(const Statement& stmt) {
  Relation r;
  r.id = stmt.text(0);
  r.subject = stmt.text(1);
  r.predicate = stmt.text(2);
  r.object = stmt.text(3);
  r.confidence = stmt.real(4);
  r.metadata = Json::parse(stmt.text(5), nullptr, false);
  if (r.metadata.is_discarded()) r.metadata = Json::object();
  r.created_at = stmt.real(6);
  r.module = stmt.text(7);
  return r;
}

}  // namespace

Result<Relation> EmbeddedMemory::relate(Relation input) {
  auto prepared = prepare_relation(std::move(input), now());
  if (!prepared.ok()) return prepared.status();
  Relation relation = std::move(*prepared);
  std::lock_guard lock(mutex_);
  if (Status s = exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  auto failed = [&] {
    Status error = sqlite_error("store a relation in");
    exec("ROLLBACK").IgnoreError();
    return error;
  };
  Statement entity(db_, std::string(relation_sql::kAddEntity));
  for (const std::string* name : {&relation.subject, &relation.object}) {
    entity.reset();
    entity.bind(1, std::string_view(*name));
    entity.bind(2, relation.created_at);
    if (!entity.ok() || entity.step() != SQLITE_DONE) return failed();
  }
  Statement upsert(db_, std::string(relation_sql::kUpsertRelation));
  if (!upsert.ok()) return failed();
  upsert.bind(1, std::string_view(relation.id));
  upsert.bind(2, std::string_view(relation.subject));
  upsert.bind(3, std::string_view(relation.predicate));
  upsert.bind(4, std::string_view(relation.object));
  upsert.bind(5, relation.confidence);
  upsert.bind(6, std::string_view(relation.metadata.dump()));
  upsert.bind(7, relation.created_at);
  upsert.bind(8, std::string_view(relation.module));
  if (upsert.step() != SQLITE_ROW) return failed();
  relation.id = upsert.text(0);
  relation.created_at = upsert.real(1);
  relation.module = upsert.text(2);
  upsert.reset();
  if (Status s = exec("COMMIT"); !s.ok()) return failed();
  return relation;
}

Result<std::vector<Relation>> EmbeddedMemory::relations(const RelationQuery& input) {
  auto query = prepare_relation_query(input);
  if (!query.ok()) return query.status();
  std::lock_guard lock(mutex_);
  Statement stmt(db_, std::string(relation_sql::kSelectRelations));
  if (!stmt.ok()) return sqlite_error("read relations from");
  stmt.bind(1, std::string_view(query->subject));
  stmt.bind(2, std::string_view(query->predicate));
  stmt.bind(3, std::string_view(query->object));
  stmt.bind(4, std::string_view(query->entity));
  stmt.bind(5, static_cast<int64_t>(query->limit));
  std::vector<Relation> out;
  int rc;
  while ((rc = stmt.step()) == SQLITE_ROW) out.push_back(relation_from_row(stmt));
  if (rc != SQLITE_DONE) return sqlite_error("read relations from");
  return out;
}

Result<size_t> EmbeddedMemory::unrelate(std::string_view id) {
  std::lock_guard lock(mutex_);
  Statement stmt(db_, std::string(relation_sql::kDeleteRelation));
  if (!stmt.ok()) return sqlite_error("remove a relation from");
  stmt.bind(1, id);
  if (stmt.step() != SQLITE_DONE) return sqlite_error("remove a relation from");
  return static_cast<size_t>(sqlite3_changes(db_));
}

Result<ConsolidationReport> EmbeddedMemory::consolidate() {
  ConsolidationReport report;
  std::lock_guard lock(mutex_);
  const double t = now();
  report.working_expired = working_.expire(t);

  // Due: short-term memories older than the window, and the oldest beyond
  // the cap.
  std::vector<int64_t> due;
  {
    Statement stmt(db_,
                   "SELECT seq, created_at FROM memories WHERE tier = 'short_term' "
                   "ORDER BY created_at");
    std::vector<std::pair<int64_t, double>> all;
    while (stmt.step() == SQLITE_ROW) all.emplace_back(stmt.integer(0), stmt.real(1));
    const size_t excess =
        all.size() > options_.short_term_max ? all.size() - options_.short_term_max : 0;
    for (size_t i = 0; i < all.size(); ++i) {
      if (i < excess || all[i].second < t - options_.short_term_seconds) {
        due.push_back(all[i].first);
      }
    }
  }
  auto rows = fetch_rows(due, MemoryFilter(), /*with_vectors=*/true);
  if (!rows.ok()) return rows.status();
  std::vector<Row*> promote, archive;
  std::vector<Row> archived_rows;
  for (Row& row : *rows) (worth_promoting(row, options_) ? promote : archive).push_back(&row);
  for (Row* row : archive) archived_rows.push_back(*row);

  MemoryRecord summary = summary_of(archived_rows, *options_.embedder, t);
  std::vector<float> summary_vector;
  if (!summary.id.empty()) {
    auto v = options_.embedder->embed(summary.content);
    if (v.ok()) summary_vector = std::move(*v);
  }

  Transaction tx(db_);
  if (!tx.ok()) return sqlite_error("consolidate");
  Statement set_tier(db_, "UPDATE memories SET tier = ?1 WHERE seq = ?2");
  Statement journal(db_, "INSERT INTO index_journal (seq, op) VALUES (?1, ?2)");
  for (Row* row : promote) {
    set_tier.bind(1, std::string_view("long_term"));
    set_tier.bind(2, row->key);
    if (set_tier.step() != SQLITE_DONE) return sqlite_error("consolidate");
    set_tier.reset();
    journal.bind(1, row->key);
    journal.bind(2, int64_t{kJournalAdd});
    if (journal.step() != SQLITE_DONE) return sqlite_error("consolidate");
    journal.reset();
  }
  for (Row* row : archive) {
    set_tier.bind(1, std::string_view("archived"));
    set_tier.bind(2, row->key);
    if (set_tier.step() != SQLITE_DONE) return sqlite_error("consolidate");
    set_tier.reset();
  }
  int64_t summary_seq = 0;
  if (!summary.id.empty() && summary_vector.size() == options_.embedder->dimension()) {
    Statement insert(db_,
                     "INSERT INTO memories (id, content, type, metadata, importance, created_at, "
                     "module, collection, tier, embedding) "
                     "VALUES (?1,?2,?3,?4,?5,?6,?7,'',?8,?9)");
    insert.bind(1, std::string_view(summary.id));
    insert.bind(2, std::string_view(summary.content));
    insert.bind(3, to_string(summary.type));
    insert.bind(4, std::string_view(summary.metadata.dump()));
    insert.bind(5, summary.importance);
    insert.bind(6, summary.created_at);
    insert.bind(7, std::string_view(summary.module));
    insert.bind(8, to_string(summary.tier));
    insert.bind_blob(9, summary_vector);
    if (insert.step() != SQLITE_DONE) return sqlite_error("consolidate");
    summary_seq = sqlite3_last_insert_rowid(db_);
    if (!count_terms(db_, {summary.content}, 1)) return sqlite_error("consolidate");
    journal.bind(1, summary_seq);
    journal.bind(2, int64_t{kJournalAdd});
    if (journal.step() != SQLITE_DONE) return sqlite_error("consolidate");
    journal.reset();
  }
  if (!tx.commit()) return sqlite_error("consolidate");

  for (Row* row : promote) {
    if (row->vector.size() == index_->dimension()) {
      index_->add(static_cast<uint64_t>(row->key), row->vector.data()).IgnoreError();
    }
    short_term_.erase(row->key);
    report.promoted_ids.push_back(row->record.id);
    index_dirty_ = true;
  }
  for (Row* row : archive) {
    short_term_.erase(row->key);
    report.archived_ids.push_back(row->record.id);
  }
  if (summary_seq != 0) {
    index_->add(static_cast<uint64_t>(summary_seq), summary_vector.data()).IgnoreError();
    index_dirty_ = true;
    report.summary_id = summary.id;
  }
  report.promoted = promote.size();
  report.archived = archive.size();
  // Saving rewrites the whole file, so it waits until replaying the journal
  // at the next open would cost more than a save; close() always saves.
  int64_t pending = 0;
  {
    Statement count(db_, "SELECT count(*) FROM index_journal");
    if (count.step() == SQLITE_ROW) pending = count.integer(0);
  }
  if (index_dirty_ && static_cast<size_t>(pending) >= options_.index_save_min_changes) {
    if (Status s = save_index_locked(); !s.ok()) return s;
    report.index_saved = true;
  }
  return report;
}

Result<Json> EmbeddedMemory::stats() {
  std::lock_guard lock(mutex_);
  Json tiers = Json::object();
  {
    Statement stmt(db_, "SELECT tier, count(*) FROM memories GROUP BY tier");
    while (stmt.step() == SQLITE_ROW) tiers[stmt.text(0)] = stmt.integer(1);
  }
  int64_t journal = 0;
  {
    Statement stmt(db_, "SELECT count(*) FROM index_journal");
    if (stmt.step() == SQLITE_ROW) journal = stmt.integer(0);
  }
  Json facts = {{"entities", 0}, {"relations", 0}};
  {
    Statement stmt(db_, std::string(relation_sql::kCounts));
    if (stmt.step() == SQLITE_ROW)
      facts = {{"entities", stmt.integer(0)}, {"relations", stmt.integer(1)}};
  }
  return Json{
      {"profile", "embedded"},
      {"tiers", tiers},
      {"facts", facts},
      {"working", {{"size", working_.size()}, {"capacity", working_.capacity()}}},
      {"index",
       {{"file", index_file().string()},
        {"vectors", index_->size()},
        {"deleted", index_->deleted()},
        {"journal_pending", journal},
        {"rebuilt_because", rebuild_reason_}}},
      {"embedder",
       {{"name", options_.embedder->name()}, {"dimension", options_.embedder->dimension()}}},
      {"database", database_file().string()}};
}

}  // namespace lotus::memory
