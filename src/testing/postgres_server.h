// PostgresServer: a real PostgreSQL for one test, like RedisServer: initdb in
// a temporary folder, `postgres` on a free loopback port (its socket in the
// same folder), ready when it accepts connections; stopped at teardown.
// PostgreSQL refuses to run as root, so as root the folder is handed to the
// `postgres` user (else `nobody`) and initdb and the server run as that user.
// create_database() gives each test a fresh database; url() names it.
#pragma once

#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "testing/free_port.h"
#include "testing/temp_dir.h"

namespace lotus::testing {

class PostgresServer {
 public:
  PostgresServer() {
    bin_ = find_bin();
    drop_to_ = unprivileged_user();
    if (drop_to_.uid != 0) {
      if (chown(dir_.path().c_str(), drop_to_.uid, drop_to_.gid) != 0) {
        throw std::runtime_error("cannot hand " + dir_.path().string() + " to the postgres user");
      }
    }
    // --no-sync and fsync=off: a test server needs no crash safety of its own.
    run_or_throw({(bin_ / "initdb").string(), "-D", data_dir().string(), "-U", "lotus",
                  "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"},
                 "initdb");
    for (int attempt = 0;; ++attempt) {
      port_ = free_loopback_port();
      try {
        start();
        return;
      } catch (const std::runtime_error&) {
        if (attempt == 4) throw;
      }
    }
  }
  ~PostgresServer() { stop(); }
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  int port() const { return port_; }
  const std::filesystem::path& dir() const { return dir_.path(); }
  // A URL for `database` (the default database "postgres" when empty).
  std::string url(const std::string& database = "postgres") const {
    return "postgresql://lotus@127.0.0.1:" + std::to_string(port_) + "/" + database;
  }

  // Creates an empty database and returns its URL.
  std::string create_database(const std::string& name) {
    std::string error = execute(url(), "CREATE DATABASE \"" + name + "\"");
    if (!error.empty()) throw std::runtime_error("CREATE DATABASE " + name + ": " + error);
    return url(name);
  }

  // Runs `sql` on a fresh connection to `database_url`; "" or the error.
  static std::string execute(const std::string& database_url, const std::string& sql) {
    PGconn* conn = PQconnectdb(database_url.c_str());
    std::string error;
    if (PQstatus(conn) != CONNECTION_OK) {
      error = PQerrorMessage(conn);
    } else {
      PGresult* result = PQexec(conn, sql.c_str());
      const auto status = PQresultStatus(result);
      if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        error = PQresultErrorMessage(result);
      }
      PQclear(result);
    }
    PQfinish(conn);
    return error;
  }

  // The first column of the first row of `sql`'s result ("" on error).
  static std::string query_value(const std::string& database_url, const std::string& sql) {
    PGconn* conn = PQconnectdb(database_url.c_str());
    std::string out;
    if (PQstatus(conn) == CONNECTION_OK) {
      PGresult* result = PQexec(conn, sql.c_str());
      if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) > 0) {
        out = PQgetvalue(result, 0, 0);
      }
      PQclear(result);
    }
    PQfinish(conn);
    return out;
  }

  void start() {
    if (pid_ > 0) return;
    std::vector<std::string> argv = {(bin_ / "postgres").string(),
                                     "-D",
                                     data_dir().string(),
                                     "-p",
                                     std::to_string(port_),
                                     "-k",
                                     dir_.path().string(),
                                     "-c",
                                     "listen_addresses=127.0.0.1",
                                     "-c",
                                     "fsync=off",
                                     "-c",
                                     "full_page_writes=off",
                                     "-c",
                                     "max_connections=50",
                                     "-c",
                                     "shared_buffers=16MB",
                                     "-c",
                                     "logging_collector=off"};
    pid_ = spawn(argv, dir_.path() / "postgres.log");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    const std::string conninfo = "host=127.0.0.1 port=" + std::to_string(port_) +
                                 " user=lotus dbname=postgres connect_timeout=2";
    while (std::chrono::steady_clock::now() < deadline) {
      if (PQping(conninfo.c_str()) == PQPING_OK) return;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("postgres exited at start: " + log_tail());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    stop();
    throw std::runtime_error("postgres did not accept connections within 30 s: " + log_tail());
  }

  // Fast shutdown (SIGINT: sessions ended, then a clean stop); SIGKILL when
  // it takes more than 10 s.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGINT);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  struct User {
    uid_t uid = 0;
    gid_t gid = 0;
  };

  std::filesystem::path data_dir() const { return dir_.path() / "data"; }

  // $LOTUS_PG_BIN, else the newest /usr/lib/postgresql/<version>/bin.
  static std::filesystem::path find_bin() {
    if (const char* env = std::getenv("LOTUS_PG_BIN"); env != nullptr && *env != '\0') return env;
    std::filesystem::path best;
    int best_version = -1;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
      const std::string name = entry.path().filename().string();
      const int version = std::atoi(name.c_str());
      if (version > best_version && std::filesystem::exists(entry.path() / "bin" / "postgres")) {
        best_version = version;
        best = entry.path() / "bin";
      }
    }
    if (best.empty()) {
      throw std::runtime_error(
          "no PostgreSQL server under /usr/lib/postgresql (apt-get install postgresql, or set "
          "LOTUS_PG_BIN)");
    }
    return best;
  }

  // Root cannot run PostgreSQL: pick the user to run it as (uid 0 = stay).
  static User unprivileged_user() {
    if (geteuid() != 0) return {};
    for (const char* name : {"postgres", "nobody"}) {
      if (const passwd* pw = getpwnam(name); pw != nullptr && pw->pw_uid != 0) {
        return {pw->pw_uid, pw->pw_gid};
      }
    }
    throw std::runtime_error("running as root and there is no postgres or nobody user");
  }

  // Forks and execs `argv` as drop_to_ (when set), output to `log`.
  pid_t spawn(const std::vector<std::string>& argv, const std::filesystem::path& log) {
    std::vector<std::string> copy = argv;
    std::vector<char*> args;  // built before fork: the child only execs
    for (auto& a : copy) args.push_back(a.data());
    args.push_back(nullptr);
    const std::string log_path = log.string();
    const User user = drop_to_;
    const pid_t pid = fork();
    if (pid == 0) {
      if (user.uid != 0) {
        if (setgroups(0, nullptr) != 0 || setgid(user.gid) != 0 || setuid(user.uid) != 0) {
          _exit(126);
        }
      }
      FILE* out = std::fopen(log_path.c_str(), "a");
      if (out != nullptr) {
        dup2(fileno(out), 1);
        dup2(fileno(out), 2);
      }
      // Let the child own its session: a SIGINT to the test's terminal does
      // not reach it, stop() does.
      setsid();
      execv(args[0], args.data());
      _exit(127);
    }
    if (pid < 0) throw std::runtime_error("fork failed");
    return pid;
  }

  void run_or_throw(const std::vector<std::string>& argv, const std::string& what) {
    const pid_t pid = spawn(argv, dir_.path() / (what + ".log"));
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::ifstream in(dir_.path() / (what + ".log"));
      std::stringstream text;
      text << in.rdbuf();
      throw std::runtime_error(what + " failed (status " + std::to_string(status) +
                               "): " + text.str());
    }
  }

  std::string log_tail() const {
    std::ifstream in(dir_.path() / "postgres.log");
    std::stringstream text;
    text << in.rdbuf();
    std::string all = text.str();
    return all.size() > 2000 ? all.substr(all.size() - 2000) : all;
  }

  TempDir dir_;
  std::filesystem::path bin_;
  User drop_to_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace lotus::testing
