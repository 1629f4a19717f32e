// RedisServer: a real redis-server for one test, on a free loopback port with
// its files in a temporary folder; started by the constructor (waits until
// it answers PING), killed at teardown. stop()/start() restart it on the
// same port and folder, which with appendonly keeps its data (fault tests).
// command() is a blocking hiredis call for assertions.
#pragma once

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "testing/free_port.h"
#include "testing/temp_dir.h"

namespace lotus::testing {

// A parsed reply of RedisServer::command: strings and integers flattened to
// text, arrays nested.
struct SyncReply {
  bool error = false;
  bool nil = false;
  std::string text;
  long long integer = 0;
  std::vector<SyncReply> elements;
};

class RedisServer {
 public:
  struct Options {
    bool appendonly = false;  // appendfsync always, so a kill -9 loses nothing acknowledged
  };

  RedisServer() : RedisServer(Options{}) {}
  explicit RedisServer(Options options) : options_(options), port_(free_loopback_port()) {
    // Tests run in parallel: another may take the port between free_loopback_port()
    // and the server's bind, so a server that exits at start gets a new one.
    for (int attempt = 0;; ++attempt) {
      try {
        start();
        return;
      } catch (const std::runtime_error&) {
        if (attempt == 4) throw;
        port_ = free_loopback_port();
      }
    }
  }
  ~RedisServer() { kill_now(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  std::string url(int db = 0) const {
    return "redis://127.0.0.1:" + std::to_string(port_) + (db != 0 ? "/" + std::to_string(db) : "");
  }
  const std::filesystem::path& dir() const { return dir_.path(); }
  bool running() const { return pid_ > 0; }

  void start() {
    if (pid_ > 0) return;
    std::vector<std::string> argv = {"redis-server",
                                     "--port",
                                     std::to_string(port_),
                                     "--bind",
                                     "127.0.0.1",
                                     "--dir",
                                     dir_.path().string(),
                                     "--save",
                                     "",
                                     "--appendonly",
                                     options_.appendonly ? "yes" : "no",
                                     "--appendfsync",
                                     "always",
                                     "--daemonize",
                                     "no",
                                     "--logfile",
                                     (dir_.path() / "redis.log").string()};
    std::vector<char*> args;  // built before fork: the child only execs
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      execvp("redis-server", args.data());
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      SyncReply pong = command({"PING"});
      if (!pong.error && pong.text == "PONG") return;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("redis-server exited at start; is it installed?");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill_now();
    throw std::runtime_error("redis-server did not answer PING within 10 s");
  }

  // SIGKILL: no shutdown save, like a crash.
  void kill_now() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // A blocking command on a fresh connection; error set when unreachable.
  SyncReply command(const std::vector<std::string>& args) const {
    SyncReply out;
    timeval timeout{2, 0};
    redisContext* context = redisConnectWithTimeout("127.0.0.1", port_, timeout);
    if (context == nullptr || context->err != 0) {
      out.error = true;
      out.text = context != nullptr ? context->errstr : "cannot allocate";
      if (context != nullptr) redisFree(context);
      return out;
    }
    std::vector<const char*> argv;
    std::vector<size_t> lengths;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lengths.push_back(a.size());
    }
    auto* reply = static_cast<redisReply*>(
        redisCommandArgv(context, static_cast<int>(args.size()), argv.data(), lengths.data()));
    if (reply == nullptr) {
      out.error = true;
      out.text = context->errstr;
    } else {
      out = convert(reply);
      freeReplyObject(reply);
    }
    redisFree(context);
    return out;
  }

 private:
  static SyncReply convert(const redisReply* reply) {
    SyncReply out;
    switch (reply->type) {
      case REDIS_REPLY_ERROR:
        out.error = true;
        out.text.assign(reply->str, reply->len);
        break;
      case REDIS_REPLY_STRING:
      case REDIS_REPLY_STATUS:
        out.text.assign(reply->str, reply->len);
        break;
      case REDIS_REPLY_INTEGER:
        out.integer = reply->integer;
        out.text = std::to_string(reply->integer);
        break;
      case REDIS_REPLY_ARRAY:
        for (size_t i = 0; i < reply->elements; ++i) {
          out.elements.push_back(convert(reply->element[i]));
        }
        break;
      default:
        out.nil = true;
        break;
    }
    return out;
  }

  Options options_;
  TempDir dir_;
  int port_;
  pid_t pid_ = -1;
};

}  // namespace lotus::testing
