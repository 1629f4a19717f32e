#include "memory/server_memory.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <future>
#include <set>
#include <system_error>
#include <tuple>
#include <unordered_set>
#include <utility>

#include "bus/io_thread.h"
#include "bus/redis_connection.h"
#include "lotus/strings.h"
#include "memory/hashing_embedder.h"
#include "memory/memory_policy.h"
#include "memory/postgres_client.h"
#include "memory/relations.h"

namespace lotus::memory {

struct ServerMemory::StreamEntry {
  std::string id;  // the stream entry id
  int64_t seq = 0;
  double created_at = 0;
};

namespace {

// Taken while the schema is created and while a node consolidates, so two
// nodes never do either at once.
constexpr int64_t kSchemaLock = 0x4c4f545553'01;
constexpr int64_t kConsolidationLock = 0x4c4f545553'02;

// The change log records what happened; followers apply a memory's tier as
// it is now, so the codes are for people reading the table.
constexpr int64_t kChangeDelete = 0;
constexpr int64_t kChangeLongTerm = 1;
constexpr int64_t kChangeShortTerm = 2;
constexpr int64_t kChangeArchived = 3;

constexpr const char* kRowColumns =
    "m.seq, m.id, m.content, m.type, m.metadata, m.importance, m.created_at, m.module, "
    "m.collection, m.tier, m.recalls";

// A PostgreSQL array literal of texts: {"a","b"}.
std::string text_array(const std::vector<std::string>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ",";
    out += "\"";
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += "\"";
  }
  return out + "}";
}

std::string int_array(const std::vector<int64_t>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ",";
    out += std::to_string(items[i]);
  }
  return out + "}";
}

// Appends the SQL conditions of `filter` (on alias m) with their parameters.
void append_filter(const MemoryFilter& filter, std::string& sql, std::vector<PgParam>& params) {
  auto next = [&params] { return cat("$", params.size() + 1); };
  if (!filter.ids.empty()) {
    sql += cat(" AND m.id = ANY(", next(), "::text[])");
    params.push_back(PgParam::text(text_array(filter.ids)));
  }
  if (!filter.types.empty()) {
    std::vector<std::string> types;
    for (MemoryType t : filter.types) types.emplace_back(to_string(t));
    sql += cat(" AND m.type = ANY(", next(), "::text[])");
    params.push_back(PgParam::text(text_array(types)));
  }
  if (!filter.module.empty()) {
    sql += cat(" AND m.module = ", next());
    params.push_back(PgParam::text(filter.module));
  }
  if (!filter.collection.empty()) {
    sql += cat(" AND m.collection = ", next());
    params.push_back(PgParam::text(filter.collection));
  }
  if (filter.since > 0) {
    sql += cat(" AND m.created_at >= ", next());
    params.push_back(PgParam::number(filter.since));
  }
  if (filter.until > 0) {
    sql += cat(" AND m.created_at < ", next());
    params.push_back(PgParam::number(filter.until));
  }
  if (filter.min_importance > 0) {
    sql += cat(" AND m.importance >= ", next());
    params.push_back(PgParam::number(filter.min_importance));
  }
}

std::string format_number(double x) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.17g", x);
  return buffer;
}

// Rolls back unless committed.
class PgTransaction {
 public:
  explicit PgTransaction(PgConnection& pg) : pg_(pg) { status_ = pg_.run("BEGIN", "begin in"); }
  ~PgTransaction() {
    if (status_.ok() && !done_) pg_.run("ROLLBACK", "roll back in").IgnoreError();
  }
  const Status& status() const { return status_; }
  Status commit() {
    done_ = true;
    return pg_.run("COMMIT", "commit to");
  }

 private:
  PgConnection& pg_;
  Status status_;
  bool done_ = false;
};

}  // namespace

ServerMemory::ServerMemory(ServerMemoryOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<ServerMemory>> ServerMemory::open(ServerMemoryOptions options) {
  EmbeddedMemoryOptions& local = options.local;
  if (local.dir.empty()) return absl::InvalidArgumentError("memory: no data directory given");
  if (options.postgres_url.empty()) {
    return absl::InvalidArgumentError(
        "memory: the server profile needs modules.memory.postgres (postgresql://...)");
  }
  if (options.redis_url.empty()) {
    return absl::InvalidArgumentError(
        "memory: the server profile needs a Redis URL (modules.memory.redis, or a redis:// bus)");
  }
  if (local.reembed) {
    return absl::UnimplementedError(
        "memory: re-embedding is not supported in the server profile yet; reindex with the "
        "embedder the memories were made with");
  }
  if (!local.embedder) local.embedder = std::make_shared<HashingEmbedder>();
  if (!local.clock) local.clock = [] { return now_seconds(); };
  if (local.embedder->dimension() == 0) {
    return absl::InvalidArgumentError("memory: the embedder has dimension 0");
  }
  std::error_code ec;
  std::filesystem::create_directories(local.dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        cat("memory: cannot create ", local.dir.string(), ": ", ec.message()));
  }
  auto address = parse_redis_url(options.redis_url);
  if (!address.ok()) return address.status();

  std::unique_ptr<ServerMemory> store(new ServerMemory(std::move(options)));
  auto pg = PgConnection::connect(store->options_.postgres_url);
  if (!pg.ok()) return pg.status();
  store->pg_ = std::move(*pg);

  store->io_ = std::make_unique<IoThread>();
  RedisConnection::Options redis_options;
  redis_options.address = *address;
  redis_options.client_name = "lotus-memory";
  store->redis_ = RedisConnection::create(store->io_->context(), redis_options);
  if (Status s = store->redis_->connect(); !s.ok()) return s;

  std::lock_guard lock(store->mutex_);
  if (Status s = store->create_schema(); !s.ok()) return s;
  if (Status s = store->check_embedder(); !s.ok()) return s;
  if (Status s = store->load_or_rebuild_index(); !s.ok()) return s;
  if (Status s = store->load_short_term(); !s.ok()) return s;
  if (auto stream = store->reconcile_stream(); !stream.ok()) return stream.status();
  return store;
}

ServerMemory::~ServerMemory() {
  if (pg_ != nullptr && index_ != nullptr) {
    std::lock_guard lock(mutex_);
    save_index_locked().IgnoreError();
  }
  if (redis_ != nullptr) redis_->close();
  if (io_ != nullptr) io_->stop();
}

Status ServerMemory::create_schema() {
  PgTransaction tx(*pg_);
  if (!tx.status().ok()) return tx.status();
  if (auto locked = pg_->exec(cat("SELECT pg_advisory_xact_lock(", kSchemaLock, ")"), {},
                              "lock the schema of");
      !locked.ok()) {
    return locked.status();
  }
  Status s = pg_->run(
      "CREATE TABLE IF NOT EXISTS lotus_memories ("
      "  seq BIGSERIAL PRIMARY KEY,"
      "  id TEXT NOT NULL UNIQUE,"
      "  content TEXT NOT NULL,"
      "  type TEXT NOT NULL,"
      "  metadata TEXT NOT NULL,"
      "  importance DOUBLE PRECISION NOT NULL,"
      "  created_at DOUBLE PRECISION NOT NULL,"
      "  module TEXT NOT NULL,"
      "  collection TEXT NOT NULL,"
      "  tier TEXT NOT NULL,"
      "  recalls INTEGER NOT NULL DEFAULT 0,"
      "  embedding BYTEA,"
      "  words TSVECTOR GENERATED ALWAYS AS (to_tsvector('english', content)) STORED);"
      "CREATE INDEX IF NOT EXISTS lotus_memories_words ON lotus_memories USING GIN (words);"
      "CREATE INDEX IF NOT EXISTS lotus_memories_tier ON lotus_memories (tier, created_at);"
      "CREATE TABLE IF NOT EXISTS lotus_memory_changes ("
      "  n BIGSERIAL PRIMARY KEY, seq BIGINT NOT NULL, op SMALLINT NOT NULL);"
      "CREATE TABLE IF NOT EXISTS lotus_memory_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
      "create the memory tables in");
  if (!s.ok()) return s;
  if (s = pg_->run(relation_sql::kSchema, "create the fact tables in"); !s.ok()) return s;
  return tx.commit();
}

Status ServerMemory::check_embedder() {
  const std::string name = options_.local.embedder->name();
  const std::string dimension = std::to_string(options_.local.embedder->dimension());
  auto inserted = pg_->exec(
      "INSERT INTO lotus_memory_meta (key, value) VALUES ('embedder', $1), ('dimension', $2) "
      "ON CONFLICT (key) DO NOTHING",
      {PgParam::text(name), PgParam::text(dimension)}, "record the embedder in");
  if (!inserted.ok()) return inserted.status();
  auto meta =
      pg_->exec("SELECT key, value FROM lotus_memory_meta WHERE key IN ('embedder', 'dimension')",
                {}, "read");
  if (!meta.ok()) return meta.status();
  std::string stored_name, stored_dimension;
  for (int i = 0; i < meta->rows(); ++i) {
    (meta->text(i, 0) == "embedder" ? stored_name : stored_dimension) = meta->text(i, 1);
  }
  if (stored_name != name || stored_dimension != dimension) {
    return absl::FailedPreconditionError(
        cat("memory: PostgreSQL at ", pg_->display(), " holds vectors made by embedder \"",
            stored_name, "\" (dimension ", stored_dimension, ") but the configured embedder is \"",
            name, "\" (dimension ", dimension,
            "); configure the embedder the memories were made with (re-embedding in the "
            "server profile is not supported yet)"));
  }
  return absl::OkStatus();
}

Result<int64_t> ServerMemory::high_water_mark() {
  auto r = pg_->exec("SELECT coalesce(max(n), 0) FROM lotus_memory_changes", {}, "read");
  if (!r.ok()) return r.status();
  return r->integer(0, 0);
}

Result<int64_t> ServerMemory::long_term_count() {
  auto r = pg_->exec("SELECT count(*) FROM lotus_memories WHERE tier = 'long_term'", {}, "read");
  if (!r.ok()) return r.status();
  return r->integer(0, 0);
}

Status ServerMemory::load_or_rebuild_index() {
  const EmbeddedMemoryOptions& local = options_.local;
  if (local.reindex) {
    rebuild_reason_ = "reindex requested";
    return rebuild_index();
  }
  int64_t position = 0;
  auto loaded = VectorIndex::load(index_file(), local.embedder->name(), local.embedder->dimension(),
                                  local.index, &position);
  if (!loaded.ok()) {
    if (loaded.status().code() == absl::StatusCode::kFailedPrecondition) return loaded.status();
    auto long_term = long_term_count();
    if (!long_term.ok()) return long_term.status();
    Status rebuilt = rebuild_index();
    // A new, empty store has no index yet: nothing was rebuilt worth telling.
    if (rebuilt.ok() && (*long_term > 0 || loaded.status().code() != absl::StatusCode::kNotFound)) {
      rebuild_reason_ = std::string(message_of(loaded.status()));
    }
    return rebuilt;
  }
  auto mark = high_water_mark();
  if (!mark.ok()) return mark.status();
  if (position > *mark) {
    rebuild_reason_ = cat("the index file reflects change ", position, " but PostgreSQL has only ",
                          *mark, " (another database?)");
    return rebuild_index();
  }
  index_ = std::move(*loaded);
  applied_ = position;
  saved_at_ = position;
  if (Status s = sync_locked(); !s.ok()) return s;
  auto long_term = long_term_count();
  if (!long_term.ok()) return long_term.status();
  if (static_cast<int64_t>(index_->size()) != *long_term) {
    rebuild_reason_ = cat("the index holds ", index_->size(), " vectors but PostgreSQL has ",
                          *long_term, " long-term memories");
    return rebuild_index();
  }
  return absl::OkStatus();
}

Status ServerMemory::rebuild_index() {
  const EmbeddedMemoryOptions& local = options_.local;
  index_ = std::make_unique<VectorIndex>(local.embedder->name(), local.embedder->dimension(),
                                         local.index);
  // The mark is read first: whatever changes after it is replayed by the next
  // sync, which is idempotent.
  auto mark = high_water_mark();
  if (!mark.ok()) return mark.status();
  auto total = long_term_count();
  if (!total.ok()) return total.status();
  // In pages by seq, so a large store is never one huge result.
  constexpr int kPage = 2000;
  int64_t after = 0;
  size_t done = 0;
  for (;;) {
    auto page = pg_->exec(
        "SELECT seq, embedding FROM lotus_memories WHERE tier = 'long_term' AND seq > $1 "
        "ORDER BY seq LIMIT $2",
        {PgParam::number(after), PgParam::number(int64_t{kPage})}, "read");
    if (!page.ok()) return page.status();
    std::vector<uint64_t> labels;
    std::vector<std::vector<float>> vectors;
    for (int i = 0; i < page->rows(); ++i) {
      after = page->integer(i, 0);
      labels.push_back(static_cast<uint64_t>(after));
      vectors.push_back(page->floats(i, 1));
    }
    // Inserted on every core: hnswlib inserts are most of a rebuild's time.
    if (Status s = index_->add_many(labels, vectors); !s.ok()) return s;
    done += labels.size();
    if (local.progress && !labels.empty()) {
      local.progress("rebuilding memory index", done, static_cast<size_t>(*total));
    }
    if (page->rows() < kPage) break;
  }
  applied_ = *mark;
  saved_at_ = -1;
  return save_index_locked();
}

Status ServerMemory::load_short_term() {
  auto rows =
      pg_->exec("SELECT seq, embedding FROM lotus_memories WHERE tier = 'short_term'", {}, "read");
  if (!rows.ok()) return rows.status();
  for (int i = 0; i < rows->rows(); ++i) short_term_[rows->integer(i, 0)] = rows->floats(i, 1);
  return absl::OkStatus();
}

void ServerMemory::apply(int64_t seq, const std::string& tier, std::vector<float> vector) {
  const auto label = static_cast<uint64_t>(seq);
  if (tier == "long_term") {
    short_term_.erase(seq);
    if (!index_->contains(label) && vector.size() == index_->dimension()) {
      index_->add(label, vector.data()).IgnoreError();
    }
  } else if (tier == "short_term") {
    index_->remove(label);
    if (vector.size() == index_->dimension()) short_term_[seq] = std::move(vector);
  } else {  // archived, or gone
    index_->remove(label);
    short_term_.erase(seq);
  }
}

Status ServerMemory::sync() {
  std::lock_guard lock(mutex_);
  return sync_locked();
}

Status ServerMemory::sync_locked() {
  // Each memory changed since the mark, once, in its state now.
  auto changes = pg_->exec(
      "SELECT c.seq, c.n, m.tier, m.embedding FROM (SELECT seq, max(n) AS n "
      "FROM lotus_memory_changes WHERE n > $1 GROUP BY seq) c "
      "LEFT JOIN lotus_memories m ON m.seq = c.seq ORDER BY c.n",
      {PgParam::number(applied_)}, "follow the changes in");
  if (!changes.ok()) return changes.status();
  for (int i = 0; i < changes->rows(); ++i) {
    const std::string tier = changes->null(i, 2) ? std::string() : changes->text(i, 2);
    apply(changes->integer(i, 0), tier,
          changes->null(i, 3) ? std::vector<float>() : changes->floats(i, 3));
    applied_ = std::max(applied_, changes->integer(i, 1));
  }
  return absl::OkStatus();
}

Status ServerMemory::save_index() {
  std::lock_guard lock(mutex_);
  return save_index_locked();
}

Status ServerMemory::save_index_locked() {
  if (saved_at_ == applied_) return absl::OkStatus();
  if (Status s = index_->save(index_file(), applied_); !s.ok()) return s;
  saved_at_ = applied_;
  return absl::OkStatus();
}

// --- Redis -----------------------------------------------------------------

Result<RedisReply> ServerMemory::redis(std::vector<std::string> args) {
  auto reply = redis_->send_and_wait(args);
  if (!reply.ok()) return reply.status();
  if (reply->is_error()) {
    return absl::InternalError(cat("memory: Redis at ", redis_->address().display, " refused ",
                                   args[0], ": ", reply->str));
  }
  return reply;
}

Result<std::vector<RedisReply>> ServerMemory::redis_pipeline(
    const std::vector<std::vector<std::string>>& cmds) {
  std::vector<RedisReply> out;
  if (cmds.empty()) return out;
  // Sent back to back; replies come in order, so waiting for the last one
  // means every earlier callback has run.
  auto replies = std::make_shared<std::vector<Result<RedisReply>>>();
  replies->reserve(cmds.size());
  for (size_t i = 0; i + 1 < cmds.size(); ++i) {
    redis_->send(cmds[i], [replies](Result<RedisReply> r) { replies->push_back(std::move(r)); });
  }
  auto last = redis_->send_and_wait(cmds.back());
  replies->push_back(std::move(last));
  for (auto& r : *replies) {
    if (!r.ok()) return r.status();
    out.push_back(std::move(*r));
  }
  return out;
}

void ServerMemory::put_working(const std::vector<MemoryRecord>& records, double t) {
  const EmbeddedMemoryOptions& local = options_.local;
  const std::string ttl = std::to_string(
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(local.working_ttl_seconds))));
  std::vector<std::vector<std::string>> cmds;
  for (const MemoryRecord& r : records) {
    const std::string k = key("working:" + r.id);
    cmds.push_back({"HSET", k, "content", r.content, "type", std::string(to_string(r.type)),
                    "importance", format_number(r.importance), "module", r.module, "collection",
                    r.collection, "created_at", format_number(r.created_at)});
    cmds.push_back({"EXPIRE", k, ttl});
    cmds.push_back({"ZADD", key("working"), format_number(t), r.id});
  }
  cmds.push_back({"ZCARD", key("working")});
  auto replies = redis_pipeline(cmds);
  if (!replies.ok()) return;
  const auto size = static_cast<size_t>(replies->back().integer);
  if (size <= local.working_capacity) return;
  // Least recently used beyond capacity.
  auto evicted = redis({"ZPOPMIN", key("working"), std::to_string(size - local.working_capacity)});
  if (!evicted.ok()) return;
  std::vector<std::string> del = {"DEL"};
  for (size_t i = 0; i < evicted->elements.size(); i += 2) {
    del.push_back(key("working:" + evicted->elements[i].str));
  }
  if (del.size() > 1) redis(std::move(del)).IgnoreError();
}

void ServerMemory::touch_working(std::vector<RecallHit>& hits, double t) {
  if (hits.empty()) return;
  const EmbeddedMemoryOptions& local = options_.local;
  std::vector<std::vector<std::string>> cmds;
  for (const RecallHit& hit : hits) cmds.push_back({"ZSCORE", key("working"), hit.record.id});
  auto scores = redis_pipeline(cmds);
  if (!scores.ok()) return;
  const std::string ttl = std::to_string(
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(local.working_ttl_seconds))));
  std::vector<std::vector<std::string>> refresh;
  for (size_t i = 0; i < hits.size(); ++i) {
    const RedisReply& score = (*scores)[i];
    if (score.is_nil() || score.is_error()) continue;
    const double last_used = std::strtod(score.str.c_str(), nullptr);
    if (t - last_used > local.working_ttl_seconds) continue;
    hits[i].in_working_memory = true;
    refresh.push_back({"ZADD", key("working"), format_number(t), hits[i].record.id});
    refresh.push_back({"EXPIRE", key("working:" + hits[i].record.id), ttl});
  }
  redis_pipeline(refresh).IgnoreError();
}

void ServerMemory::erase_working(const std::vector<std::string>& ids) {
  if (ids.empty()) return;
  std::vector<std::string> zrem = {"ZREM", key("working")};
  std::vector<std::string> del = {"DEL"};
  for (const std::string& id : ids) {
    zrem.push_back(id);
    del.push_back(key("working:" + id));
  }
  redis_pipeline({zrem, del}).IgnoreError();
}

size_t ServerMemory::expire_working(double t) {
  // By the store's clock, like the embedded profile; the hashes' own TTL is
  // the backstop when no node is running.
  auto expired = redis({"ZRANGEBYSCORE", key("working"), "-inf",
                        cat("(", format_number(t - options_.local.working_ttl_seconds))});
  if (!expired.ok() || expired->elements.empty()) return 0;
  std::vector<std::string> ids;
  for (const RedisReply& e : expired->elements) ids.push_back(e.str);
  erase_working(ids);
  return ids.size();
}

Result<std::vector<ServerMemory::StreamEntry>> ServerMemory::reconcile_stream() {
  std::vector<StreamEntry> entries;
  auto range = redis({"XRANGE", key("short_term"), "-", "+"});
  if (!range.ok()) return range.status();
  std::unordered_map<int64_t, size_t> in_stream;
  std::vector<std::string> stale;
  for (const RedisReply& entry : range->elements) {
    if (entry.elements.size() != 2) continue;
    StreamEntry e;
    e.id = entry.elements[0].str;
    const auto& fields = entry.elements[1].elements;
    for (size_t i = 0; i + 1 < fields.size(); i += 2) {
      if (fields[i].str == "seq") e.seq = std::strtoll(fields[i + 1].str.c_str(), nullptr, 10);
      if (fields[i].str == "created_at")
        e.created_at = std::strtod(fields[i + 1].str.c_str(), nullptr);
    }
    if (in_stream.count(e.seq) != 0) {
      stale.push_back(e.id);
      continue;
    }
    in_stream[e.seq] = entries.size();
    entries.push_back(std::move(e));
  }
  auto short_term = pg_->exec(
      "SELECT seq, id, created_at FROM lotus_memories WHERE tier = 'short_term' ORDER BY seq", {},
      "read");
  if (!short_term.ok()) return short_term.status();
  std::unordered_set<int64_t> in_pg;
  std::vector<std::vector<std::string>> add;
  std::vector<StreamEntry> added;
  for (int i = 0; i < short_term->rows(); ++i) {
    const int64_t seq = short_term->integer(i, 0);
    in_pg.insert(seq);
    if (in_stream.count(seq) != 0) continue;
    add.push_back({"XADD", key("short_term"), "*", "seq", std::to_string(seq), "id",
                   short_term->text(i, 1), "created_at", short_term->text(i, 2)});
    added.push_back(StreamEntry{"", seq, short_term->real(i, 2)});
  }
  std::vector<StreamEntry> kept;
  for (StreamEntry& e : entries) {
    if (in_pg.count(e.seq) == 0) {
      stale.push_back(e.id);
    } else {
      kept.push_back(std::move(e));
    }
  }
  if (!stale.empty()) {
    std::vector<std::string> xdel = {"XDEL", key("short_term")};
    xdel.insert(xdel.end(), stale.begin(), stale.end());
    if (auto r = redis(std::move(xdel)); !r.ok()) return r.status();
  }
  if (!add.empty()) {
    auto ids = redis_pipeline(add);
    if (!ids.ok()) return ids.status();
    for (size_t i = 0; i < added.size(); ++i) added[i].id = (*ids)[i].str;
    kept.insert(kept.end(), added.begin(), added.end());
  }
  return kept;
}

// --- Reads -----------------------------------------------------------------

Result<std::vector<ServerMemory::Row>> ServerMemory::fetch_rows(const std::vector<int64_t>& seqs,
                                                                const MemoryFilter& filter,
                                                                bool with_vectors) {
  std::vector<Row> rows;
  if (seqs.empty()) return rows;
  std::string sql = cat("SELECT ", kRowColumns, with_vectors ? ", m.embedding" : "",
                        " FROM lotus_memories m WHERE m.seq = ANY($1::bigint[])");
  std::vector<PgParam> params = {PgParam::text(int_array(seqs))};
  append_filter(filter, sql, params);
  auto result = pg_->exec(sql, params, "read");
  if (!result.ok()) return result.status();
  for (int i = 0; i < result->rows(); ++i) {
    Row row;
    row.key = result->integer(i, 0);
    row.record.id = result->text(i, 1);
    row.record.content = result->text(i, 2);
    row.record.type = parse_memory_type(result->text(i, 3)).value_or(MemoryType::kEpisodic);
    row.record.metadata = Json::parse(result->text(i, 4), nullptr, /*allow_exceptions=*/false);
    if (row.record.metadata.is_discarded()) row.record.metadata = Json::object();
    row.record.importance = result->real(i, 5);
    row.record.created_at = result->real(i, 6);
    row.record.module = result->text(i, 7);
    row.record.collection = result->text(i, 8);
    row.record.tier = parse_memory_tier(result->text(i, 9)).value_or(MemoryTier::kShortTerm);
    row.recalls = result->integer(i, 10);
    if (with_vectors) row.vector = result->floats(i, 11);
    rows.push_back(std::move(row));
  }
  return rows;
}

Result<std::vector<int64_t>> ServerMemory::keyword_search(std::string_view query, size_t k) {
  // Any of the query's words (not all of them, as plainto_tsquery would),
  // stemmed by PostgreSQL's english configuration, ranked by ts_rank.
  std::string terms;
  std::set<std::string> seen;
  for (const std::string& word : HashingEmbedder::words(query)) {
    if (is_stopword(word) || !seen.insert(word).second) continue;
    std::string clean;
    for (char c : word) {
      if (std::isalnum(static_cast<unsigned char>(c)) != 0 ||
          static_cast<unsigned char>(c) >= 0x80) {
        clean += c;
      }
    }
    if (clean.empty()) continue;
    if (!terms.empty()) terms += " | ";
    terms += cat("'", clean, "'");
  }
  std::vector<int64_t> seqs;
  if (terms.empty()) return seqs;
  auto result = pg_->exec(
      "SELECT m.seq FROM lotus_memories m, to_tsquery('english', $1) q WHERE m.words @@ q "
      "ORDER BY ts_rank(m.words, q) DESC, m.seq DESC LIMIT $2",
      {PgParam::text(terms), PgParam::number(static_cast<int64_t>(k))}, "search");
  if (!result.ok()) return result.status();
  for (int i = 0; i < result->rows(); ++i) seqs.push_back(result->integer(i, 0));
  return seqs;
}

Result<std::vector<RecallHit>> ServerMemory::recall(std::string_view query, size_t limit,
                                                    const MemoryFilter& filter) {
  std::vector<RecallHit> hits;
  if (limit == 0) return hits;
  auto query_vector = options_.local.embedder->embed(query);
  if (!query_vector.ok()) return query_vector.status();
  const std::vector<float>& q = *query_vector;
  const size_t candidates = std::max<size_t>(limit * 2, 20) * (filter.empty() ? 1 : 10);

  std::lock_guard lock(mutex_);
  const double t = now();
  // What other nodes stored a moment ago is found too.
  if (Status s = sync_locked(); !s.ok()) return s;

  const auto by_meaning =
      rank_by_meaning(q, short_term_, *index_, candidates, options_.local.min_similarity);

  auto by_words = keyword_search(query, candidates);
  if (!by_words.ok()) return by_words.status();

  const std::vector<int64_t> seqs = keys_of(by_meaning, *by_words);
  auto rows = fetch_rows(seqs, filter, /*with_vectors=*/false);
  if (!rows.ok()) return rows.status();
  std::unordered_map<int64_t, Row*> by_seq;
  for (Row& row : *rows) by_seq[row.key] = &row;
  hits = fuse_rankings(
      by_meaning, *by_words, by_seq, options_.local, t, [](const std::string&) { return false; },
      limit);
  touch_working(hits, t);

  std::vector<std::string> short_term_ids;
  for (const RecallHit& hit : hits) {
    if (hit.record.tier == MemoryTier::kShortTerm) short_term_ids.push_back(hit.record.id);
  }
  if (!short_term_ids.empty()) {
    pg_->exec("UPDATE lotus_memories SET recalls = recalls + 1 WHERE id = ANY($1::text[])",
              {PgParam::text(text_array(short_term_ids))}, "count recalls in")
        .IgnoreError();
  }
  return hits;
}

Result<MemoryRecord> ServerMemory::get(std::string_view id) {
  std::lock_guard lock(mutex_);
  auto seq = pg_->exec("SELECT seq FROM lotus_memories WHERE id = $1",
                       {PgParam::text(std::string(id))}, "read");
  if (!seq.ok()) return seq.status();
  if (seq->rows() == 0) return absl::NotFoundError(cat("memory: no memory with id ", id));
  auto rows = fetch_rows({seq->integer(0, 0)}, MemoryFilter(), false);
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return absl::NotFoundError(cat("memory: no memory with id ", id));
  return std::move(rows->front().record);
}

// --- Writes ----------------------------------------------------------------

Result<MemoryRecord> ServerMemory::remember(MemoryInput input) {
  std::vector<MemoryInput> inputs;
  inputs.push_back(std::move(input));
  auto records = remember_all(std::move(inputs));
  if (!records.ok()) return records.status();
  return std::move(records->front());
}

Result<std::vector<MemoryRecord>> ServerMemory::remember_all(std::vector<MemoryInput> inputs) {
  std::vector<std::string> metadata_texts;
  auto prepared = prepare_records(std::move(inputs), options_.local, &metadata_texts);
  if (!prepared.ok()) return prepared.status();
  std::vector<MemoryRecord> records = std::move(*prepared);
  if (records.empty()) return records;
  std::vector<std::string> contents;
  for (const MemoryRecord& record : records) contents.push_back(record.content);
  auto vectors = embed_checked(*options_.local.embedder, contents);
  if (!vectors.ok()) return vectors.status();

  std::lock_guard lock(mutex_);
  const double t = now();
  std::vector<int64_t> seqs;
  {
    PgTransaction tx(*pg_);
    if (!tx.status().ok()) return tx.status();
    for (size_t i = 0; i < records.size(); ++i) {
      MemoryRecord& record = records[i];
      record.created_at = t;
      auto inserted = pg_->exec(
          "INSERT INTO lotus_memories (id, content, type, metadata, importance, created_at, "
          "module, collection, tier, embedding) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) "
          "RETURNING seq",
          {PgParam::text(record.id), PgParam::text(record.content),
           PgParam::text(std::string(to_string(record.type))), PgParam::text(metadata_texts[i]),
           PgParam::number(record.importance), PgParam::number(record.created_at),
           PgParam::text(record.module), PgParam::text(record.collection),
           PgParam::text(std::string(to_string(record.tier))), PgParam::floats((*vectors)[i])},
          "store in");
      if (!inserted.ok()) return inserted.status();
      const int64_t seq = inserted->integer(0, 0);
      seqs.push_back(seq);
      auto logged =
          pg_->exec("INSERT INTO lotus_memory_changes (seq, op) VALUES ($1, $2)",
                    {PgParam::number(seq),
                     PgParam::number(record.tier == MemoryTier::kLongTerm ? kChangeLongTerm
                                                                          : kChangeShortTerm)},
                    "store in");
      if (!logged.ok()) return logged.status();
    }
    if (Status s = tx.commit(); !s.ok()) return s;
  }
  // Committed: what follows only brings this node, L1 and L2 along; a failure
  // is caught up by the next sync or stream reconciliation.
  std::vector<std::vector<std::string>> stream;
  for (size_t i = 0; i < records.size(); ++i) {
    apply(seqs[i], std::string(to_string(records[i].tier)), (*vectors)[i]);
    if (records[i].tier == MemoryTier::kShortTerm) {
      stream.push_back({"XADD", key("short_term"), "*", "seq", std::to_string(seqs[i]), "id",
                        records[i].id, "created_at", format_number(t)});
    }
  }
  redis_pipeline(stream).IgnoreError();
  put_working(records, t);
  return records;
}

Result<size_t> ServerMemory::forget_matching(const MemoryFilter& filter) {
  std::lock_guard lock(mutex_);
  std::string sql = "DELETE FROM lotus_memories m WHERE TRUE";
  std::vector<PgParam> params;
  append_filter(filter, sql, params);
  sql += " RETURNING m.seq, m.id, m.tier";
  std::vector<std::string> ids;
  bool short_term = false;
  {
    PgTransaction tx(*pg_);
    if (!tx.status().ok()) return tx.status();
    auto deleted = pg_->exec(sql, params, "forget in");
    if (!deleted.ok()) return deleted.status();
    std::vector<int64_t> seqs;
    for (int i = 0; i < deleted->rows(); ++i) {
      seqs.push_back(deleted->integer(i, 0));
      ids.push_back(deleted->text(i, 1));
      short_term = short_term || deleted->text(i, 2) == "short_term";
    }
    if (!seqs.empty()) {
      auto logged = pg_->exec(
          "INSERT INTO lotus_memory_changes (seq, op) SELECT unnest($1::bigint[]), $2::smallint",
          {PgParam::text(int_array(seqs)), PgParam::number(kChangeDelete)}, "forget in");
      if (!logged.ok()) return logged.status();
    }
    if (Status s = tx.commit(); !s.ok()) return s;
  }
  sync_locked().IgnoreError();
  erase_working(ids);
  if (short_term) reconcile_stream().IgnoreError();
  return ids.size();
}

// --- Facts -----------------------------------------------------------------
// Read from and written to PostgreSQL directly: every node sees each fact as
// soon as it is committed, with nothing to keep in step.

Result<Relation> ServerMemory::relate(Relation input) {
  auto prepared = prepare_relation(std::move(input), now());
  if (!prepared.ok()) return prepared.status();
  Relation relation = std::move(*prepared);
  std::lock_guard lock(mutex_);
  PgTransaction tx(*pg_);
  if (!tx.status().ok()) return tx.status();
  for (const std::string* name : {&relation.subject, &relation.object}) {
    auto added = pg_->exec(relation_sql::kAddEntity,
                           {PgParam::text(*name), PgParam::number(relation.created_at)},
                           "store an entity in");
    if (!added.ok()) return added.status();
  }
  auto stored =
      pg_->exec(relation_sql::kUpsertRelation,
                {PgParam::text(relation.id), PgParam::text(relation.subject),
                 PgParam::text(relation.predicate), PgParam::text(relation.object),
                 PgParam::number(relation.confidence), PgParam::text(relation.metadata.dump()),
                 PgParam::number(relation.created_at), PgParam::text(relation.module)},
                "store a relation in");
  if (!stored.ok()) return stored.status();
  if (stored->rows() != 1)
    return absl::InternalError("memory: the relation upsert returned no row");
  relation.id = stored->text(0, 0);
  relation.created_at = stored->real(0, 1);
  relation.module = stored->text(0, 2);
  if (Status s = tx.commit(); !s.ok()) return s;
  return relation;
}

Result<std::vector<Relation>> ServerMemory::relations(const RelationQuery& input) {
  auto query = prepare_relation_query(input);
  if (!query.ok()) return query.status();
  std::lock_guard lock(mutex_);
  auto rows = pg_->exec(
      relation_sql::kSelectRelations,
      {PgParam::text(query->subject), PgParam::text(query->predicate), PgParam::text(query->object),
       PgParam::text(query->entity), PgParam::number(static_cast<int64_t>(query->limit))},
      "read relations from");
  if (!rows.ok()) return rows.status();
  std::vector<Relation> out;
  for (int i = 0; i < rows->rows(); ++i) {
    Relation r;
    r.id = rows->text(i, 0);
    r.subject = rows->text(i, 1);
    r.predicate = rows->text(i, 2);
    r.object = rows->text(i, 3);
    r.confidence = rows->real(i, 4);
    r.metadata = Json::parse(rows->text(i, 5), nullptr, false);
    if (r.metadata.is_discarded()) r.metadata = Json::object();
    r.created_at = rows->real(i, 6);
    r.module = rows->text(i, 7);
    out.push_back(std::move(r));
  }
  return out;
}

Result<size_t> ServerMemory::unrelate(std::string_view id) {
  std::lock_guard lock(mutex_);
  auto removed = pg_->exec(relation_sql::kDeleteRelation, {PgParam::text(std::string(id))},
                           "remove a relation from");
  if (!removed.ok()) return removed.status();
  return static_cast<size_t>(removed->affected());
}

Result<ConsolidationReport> ServerMemory::consolidate() {
  const EmbeddedMemoryOptions& local = options_.local;
  ConsolidationReport report;
  std::lock_guard lock(mutex_);
  const double t = now();
  if (Status s = sync_locked(); !s.ok()) return s;
  report.working_expired = expire_working(t);

  PgTransaction tx(*pg_);
  if (!tx.status().ok()) return tx.status();
  // One node consolidates at a time; the others find nothing to do.
  auto locked = pg_->exec(cat("SELECT pg_try_advisory_xact_lock(", kConsolidationLock, ")"), {},
                          "lock for consolidation");
  if (!locked.ok()) return locked.status();
  if (locked->text(0, 0) != "t") return report;

  // Due: entries of the short-term stream older than the window, and the
  // oldest beyond the cap.
  auto entries = reconcile_stream();
  if (!entries.ok()) return entries.status();
  std::sort(entries->begin(), entries->end(),
            [](const StreamEntry& a, const StreamEntry& b) { return a.created_at < b.created_at; });
  const size_t excess =
      entries->size() > local.short_term_max ? entries->size() - local.short_term_max : 0;
  std::vector<int64_t> due;
  std::unordered_map<int64_t, std::string> entry_of;
  for (size_t i = 0; i < entries->size(); ++i) {
    const StreamEntry& e = (*entries)[i];
    if (i < excess || e.created_at < t - local.short_term_seconds) {
      due.push_back(e.seq);
      entry_of[e.seq] = e.id;
    }
  }
  auto rows = fetch_rows(due, MemoryFilter(), /*with_vectors=*/true);
  if (!rows.ok()) return rows.status();
  std::vector<Row*> promote, archive;
  std::vector<Row> archived_rows;
  for (Row& row : *rows) {
    if (row.record.tier != MemoryTier::kShortTerm) continue;
    (worth_promoting(row, local) ? promote : archive).push_back(&row);
  }
  for (Row* row : archive) archived_rows.push_back(*row);
  MemoryRecord summary = summary_of(archived_rows, *local.embedder, t);
  std::vector<float> summary_vector;
  if (!summary.id.empty()) {
    auto v = local.embedder->embed(summary.content);
    if (v.ok() && v->size() == local.embedder->dimension()) summary_vector = std::move(*v);
  }

  std::vector<int64_t> promoted_seqs, archived_seqs;
  for (Row* row : promote) promoted_seqs.push_back(row->key);
  for (Row* row : archive) archived_seqs.push_back(row->key);
  for (const auto& [tier, seqs, op] : {std::tuple{"long_term", &promoted_seqs, kChangeLongTerm},
                                       std::tuple{"archived", &archived_seqs, kChangeArchived}}) {
    if (seqs->empty()) continue;
    auto updated =
        pg_->exec("UPDATE lotus_memories SET tier = $1 WHERE seq = ANY($2::bigint[])",
                  {PgParam::text(tier), PgParam::text(int_array(*seqs))}, "consolidate in");
    if (!updated.ok()) return updated.status();
    auto logged = pg_->exec(
        "INSERT INTO lotus_memory_changes (seq, op) SELECT unnest($1::bigint[]), $2::smallint",
        {PgParam::text(int_array(*seqs)), PgParam::number(op)}, "consolidate in");
    if (!logged.ok()) return logged.status();
  }
  int64_t summary_seq = 0;
  if (!summary.id.empty() && !summary_vector.empty()) {
    auto inserted = pg_->exec(
        "INSERT INTO lotus_memories (id, content, type, metadata, importance, created_at, "
        "module, collection, tier, embedding) VALUES ($1,$2,$3,$4,$5,$6,$7,'',$8,$9) "
        "RETURNING seq",
        {PgParam::text(summary.id), PgParam::text(summary.content),
         PgParam::text(std::string(to_string(summary.type))),
         PgParam::text(summary.metadata.dump()), PgParam::number(summary.importance),
         PgParam::number(summary.created_at), PgParam::text(summary.module),
         PgParam::text(std::string(to_string(summary.tier))), PgParam::floats(summary_vector)},
        "consolidate in");
    if (!inserted.ok()) return inserted.status();
    summary_seq = inserted->integer(0, 0);
    auto logged = pg_->exec("INSERT INTO lotus_memory_changes (seq, op) VALUES ($1, $2)",
                            {PgParam::number(summary_seq), PgParam::number(kChangeLongTerm)},
                            "consolidate in");
    if (!logged.ok()) return logged.status();
  }
  if (Status s = tx.commit(); !s.ok()) return s;

  std::vector<std::string> done_entries = {"XDEL", key("short_term")};
  for (Row* row : promote) {
    apply(row->key, "long_term", std::move(row->vector));
    report.promoted_ids.push_back(row->record.id);
    done_entries.push_back(entry_of[row->key]);
  }
  for (Row* row : archive) {
    apply(row->key, "archived", {});
    report.archived_ids.push_back(row->record.id);
    done_entries.push_back(entry_of[row->key]);
  }
  if (done_entries.size() > 2) redis(std::move(done_entries)).IgnoreError();
  if (summary_seq != 0) {
    apply(summary_seq, "long_term", std::move(summary_vector));
    report.summary_id = summary.id;
  }
  report.promoted = promote.size();
  report.archived = archive.size();
  // Catch up (this node's own changes included), then save once enough
  // changed: replaying the change log at the next open is cheaper than
  // rewriting the file often.
  if (Status s = sync_locked(); !s.ok()) return s;
  if (applied_ - std::max<int64_t>(0, saved_at_) >=
      static_cast<int64_t>(local.index_save_min_changes)) {
    if (Status s = save_index_locked(); !s.ok()) return s;
    report.index_saved = true;
  }
  return report;
}

Result<Json> ServerMemory::stats() {
  std::lock_guard lock(mutex_);
  if (Status s = sync_locked(); !s.ok()) return s;
  Json tiers = Json::object();
  auto counts = pg_->exec("SELECT tier, count(*) FROM lotus_memories GROUP BY tier", {}, "read");
  if (!counts.ok()) return counts.status();
  for (int i = 0; i < counts->rows(); ++i) tiers[counts->text(i, 0)] = counts->integer(i, 1);
  auto sizes = redis_pipeline({{"ZCARD", key("working")}, {"XLEN", key("short_term")}});
  if (!sizes.ok()) return sizes.status();
  auto facts = pg_->exec(relation_sql::kCounts, {}, "read");
  if (!facts.ok()) return facts.status();
  return Json{
      {"profile", "server"},
      {"tiers", tiers},
      {"facts", {{"entities", facts->integer(0, 0)}, {"relations", facts->integer(0, 1)}}},
      {"working", {{"size", (*sizes)[0].integer}, {"capacity", options_.local.working_capacity}}},
      {"short_term_stream", {{"key", key("short_term")}, {"length", (*sizes)[1].integer}}},
      {"index",
       {{"file", index_file().string()},
        {"vectors", index_->size()},
        {"deleted", index_->deleted()},
        {"applied_change", applied_},
        {"journal_pending", applied_ - std::max<int64_t>(0, saved_at_)},
        {"rebuilt_because", rebuild_reason_}}},
      {"embedder",
       {{"name", options_.local.embedder->name()},
        {"dimension", options_.local.embedder->dimension()}}},
      {"postgres", pg_->display()},
      {"redis", redis_->address().display}};
}

}  // namespace lotus::memory
