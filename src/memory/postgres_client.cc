#include "memory/postgres_client.h"

#include <cstdio>
#include <cstdlib>

#include <libpq-fe.h>

#include "lotus/strings.h"

namespace lotus::memory {

PgParam PgParam::number(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.17g", value);
  return text(buffer);
}

PgParam PgParam::floats(const std::vector<float>& v) {
  PgParam p;
  p.value.assign(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  p.binary = true;
  return p;
}

PgResult::~PgResult() { PQclear(result_); }

PgResult& PgResult::operator=(PgResult&& other) noexcept {
  if (this != &other) {
    PQclear(result_);
    result_ = other.result_;
    other.result_ = nullptr;
  }
  return *this;
}

int PgResult::rows() const { return result_ != nullptr ? PQntuples(result_) : 0; }

bool PgResult::null(int row, int col) const { return PQgetisnull(result_, row, col) != 0; }

std::string PgResult::text(int row, int col) const {
  return std::string(PQgetvalue(result_, row, col),
                     static_cast<size_t>(PQgetlength(result_, row, col)));
}

double PgResult::real(int row, int col) const {
  return std::strtod(PQgetvalue(result_, row, col), nullptr);
}

int64_t PgResult::integer(int row, int col) const {
  return std::strtoll(PQgetvalue(result_, row, col), nullptr, 10);
}

std::vector<float> PgResult::floats(int row, int col) const {
  const char* text = PQgetvalue(result_, row, col);
  const size_t length = static_cast<size_t>(PQgetlength(result_, row, col));
  if (length < 2 || text[0] != '\\' || text[1] != 'x') return {};
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  const size_t bytes = (length - 2) / 2;
  std::vector<float> out(bytes / sizeof(float));
  auto* dest = reinterpret_cast<unsigned char*>(out.data());
  for (size_t i = 0; i < out.size() * sizeof(float); ++i) {
    const int hi = nibble(text[2 + 2 * i]), lo = nibble(text[3 + 2 * i]);
    if (hi < 0 || lo < 0) return {};
    dest[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return out;
}

int64_t PgResult::affected() const {
  const char* n = PQcmdTuples(result_);
  return n != nullptr && *n != '\0' ? std::strtoll(n, nullptr, 10) : 0;
}

std::string mask_postgres_url(std::string_view url) {
  const auto scheme = url.find("://");
  const auto at = url.find('@');
  if (scheme == std::string_view::npos || at == std::string_view::npos || at < scheme) {
    return std::string(url);
  }
  const auto colon = url.find(':', scheme + 3);
  if (colon == std::string_view::npos || colon > at) return std::string(url);
  return cat(url.substr(0, colon + 1), "***", url.substr(at));
}

Result<std::unique_ptr<PgConnection>> PgConnection::connect(const std::string& url) {
  const std::string display = mask_postgres_url(url);
  PGconn* conn = PQconnectdb(url.c_str());
  if (conn == nullptr) return absl::ResourceExhaustedError("memory: cannot allocate a connection");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = PQerrorMessage(conn);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
      message.pop_back();
    }
    PQfinish(conn);
    return absl::UnavailableError(
        cat("memory: cannot connect to PostgreSQL at ", display, ": ", message));
  }
  // Quiet NOTICEs (CREATE ... IF NOT EXISTS) instead of printing to stderr.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  return std::unique_ptr<PgConnection>(new PgConnection(conn, display));
}

PgConnection::~PgConnection() { PQfinish(conn_); }

Status PgConnection::error(std::string_view action, pg_result* result) const {
  std::string message = result != nullptr ? PQresultErrorMessage(result) : PQerrorMessage(conn_);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
    message.pop_back();
  }
  const bool link_down = PQstatus(conn_) != CONNECTION_OK;
  return Status(link_down ? absl::StatusCode::kUnavailable : absl::StatusCode::kInternal,
                cat("memory: cannot ", action, " PostgreSQL at ", display_, ": ", message));
}

Result<PgResult> PgConnection::exec(std::string_view sql, const std::vector<PgParam>& params,
                                    std::string_view action) {
  if (PQstatus(conn_) != CONNECTION_OK) {
    PQreset(conn_);
    if (PQstatus(conn_) != CONNECTION_OK) return error(action, nullptr);
  }
  std::vector<const char*> values;
  std::vector<int> lengths, formats;
  for (const PgParam& p : params) {
    values.push_back(p.null ? nullptr : p.value.c_str());
    lengths.push_back(static_cast<int>(p.value.size()));
    formats.push_back(p.binary ? 1 : 0);
  }
  const std::string text(sql);
  PgResult result(PQexecParams(conn_, text.c_str(), static_cast<int>(params.size()), nullptr,
                               values.data(), lengths.data(), formats.data(), 0));
  PGresult* raw = result.get();
  const auto status = PQresultStatus(raw);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return error(action, raw);
  return result;
}

Status PgConnection::run(std::string_view sql, std::string_view action) {
  if (PQstatus(conn_) != CONNECTION_OK) {
    PQreset(conn_);
    if (PQstatus(conn_) != CONNECTION_OK) return error(action, nullptr);
  }
  const std::string text(sql);
  PgResult result(PQexec(conn_, text.c_str()));
  PGresult* raw = result.get();
  const auto status = PQresultStatus(raw);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return error(action, raw);
  return absl::OkStatus();
}

}  // namespace lotus::memory
