// PgConnection: one blocking libpq connection, for the server profile's L4.
//
// Statements take text parameters (or raw bytes, for vectors) and results
// come back as text, read with small typed accessors. A dropped link is
// reset once before a statement fails with Unavailable; errors name the
// server (password masked) and what was being done. Not thread-safe: its
// owner locks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lotus/status.h"

struct pg_conn;
struct pg_result;

namespace lotus::memory {

// A statement parameter: text, raw bytes (bytea), or NULL.
struct PgParam {
  std::string value;
  bool binary = false;
  bool null = false;

  static PgParam text(std::string value) { return PgParam{std::move(value), false, false}; }
  static PgParam number(double value);
  static PgParam number(int64_t value) { return text(std::to_string(value)); }
  static PgParam floats(const std::vector<float>& v);
};

class PgResult {
 public:
  explicit PgResult(pg_result* result) : result_(result) {}
  ~PgResult();
  PgResult(PgResult&& other) noexcept : result_(other.result_) { other.result_ = nullptr; }
  PgResult& operator=(PgResult&& other) noexcept;
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;

  int rows() const;
  bool null(int row, int col) const;
  std::string text(int row, int col) const;
  double real(int row, int col) const;
  int64_t integer(int row, int col) const;
  // A bytea column (text form "\x...") holding floats.
  std::vector<float> floats(int row, int col) const;
  // Rows a command touched (UPDATE, DELETE).
  int64_t affected() const;
  pg_result* get() const { return result_; }

 private:
  pg_result* result_;
};

class PgConnection {
 public:
  // Connects to a postgresql:// URL (or a libpq conninfo string).
  static Result<std::unique_ptr<PgConnection>> connect(const std::string& url);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs one statement; `action` names it in errors ("store in").
  Result<PgResult> exec(std::string_view sql, const std::vector<PgParam>& params = {},
                        std::string_view action = "use");
  // Runs statements without parameters (several may be separated by ';').
  Status run(std::string_view sql, std::string_view action = "use");

  // The URL with any password masked: what messages name.
  const std::string& display() const { return display_; }

 private:
  PgConnection(pg_conn* conn, std::string display) : conn_(conn), display_(std::move(display)) {}
  Status error(std::string_view action, pg_result* result) const;

  pg_conn* conn_;
  std::string display_;
};

// `url` with the password of its user info replaced by "***".
std::string mask_postgres_url(std::string_view url);

}  // namespace lotus::memory
