// Facts as a graph, L4 of both memory profiles: entities by name and
// relations subject -predicate-> object. The SQL is written once, in the
// dialect SQLite and PostgreSQL share (numbered $N parameters, each first used
// in order; ON CONFLICT upserts; RETURNING), and each store binds it with its
// own driver.
#pragma once

#include <string_view>

#include "lotus/memory.h"

namespace lotus::memory {

namespace relation_sql {

inline constexpr std::string_view kSchema =
    "CREATE TABLE IF NOT EXISTS lotus_entities ("
    "  name TEXT PRIMARY KEY,"
    "  created_at DOUBLE PRECISION NOT NULL);"
    "CREATE TABLE IF NOT EXISTS lotus_relations ("
    "  id TEXT PRIMARY KEY,"
    "  subject TEXT NOT NULL,"
    "  predicate TEXT NOT NULL,"
    "  object TEXT NOT NULL,"
    "  confidence DOUBLE PRECISION NOT NULL,"
    "  metadata TEXT NOT NULL,"
    "  created_at DOUBLE PRECISION NOT NULL,"
    "  module TEXT NOT NULL,"
    "  UNIQUE (subject, predicate, object));"
    "CREATE INDEX IF NOT EXISTS lotus_relations_object ON lotus_relations (object);";

// $1 name, $2 created_at.
inline constexpr std::string_view kAddEntity =
    "INSERT INTO lotus_entities (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";

// $1 id, $2 subject, $3 predicate, $4 object, $5 confidence, $6 metadata,
// $7 created_at, $8 module. Returns the stored id, created_at and module.
inline constexpr std::string_view kUpsertRelation =
    "INSERT INTO lotus_relations"
    "  (id, subject, predicate, object, confidence, metadata, created_at, module)"
    "  VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    "  ON CONFLICT (subject, predicate, object)"
    "  DO UPDATE SET confidence = excluded.confidence, metadata = excluded.metadata"
    "  RETURNING id, created_at, module";

// $1 subject, $2 predicate, $3 object, $4 entity ('' = any), $5 limit.
inline constexpr std::string_view kSelectRelations =
    "SELECT id, subject, predicate, object, confidence, metadata, created_at, module"
    "  FROM lotus_relations"
    "  WHERE ($1 = '' OR subject = $1) AND ($2 = '' OR predicate = $2)"
    "    AND ($3 = '' OR object = $3) AND ($4 = '' OR subject = $4 OR object = $4)"
    "  ORDER BY created_at, id LIMIT $5";

// $1 id.
inline constexpr std::string_view kDeleteRelation = "DELETE FROM lotus_relations WHERE id = $1";

inline constexpr std::string_view kCounts =
    "SELECT (SELECT count(*) FROM lotus_entities), (SELECT count(*) FROM lotus_relations)";

}  // namespace relation_sql

// A relation ready to store: names trimmed and none empty (the error names
// the field), at most 500 bytes each, confidence in [0, 1], metadata an
// object; a new id and `now` as its time.
Result<Relation> prepare_relation(Relation relation, double now);

// A query's limit capped at 1000 (0 is refused).
Result<RelationQuery> prepare_relation_query(RelationQuery query);

}  // namespace lotus::memory
