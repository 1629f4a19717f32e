// RedisConnection: one TCP connection to Redis, driven by Boost.Asio on an
// io_context the owner runs; hiredis only formats commands and parses replies.
//
// Commands may be sent from any thread; they are pipelined (everything queued
// while a write is in flight goes out in the next write) and each reply goes
// to its callback, in order, on the io thread. A connection in subscriber
// mode hands pub/sub messages to a push handler instead. When the link drops,
// commands in flight fail with Unavailable, commands not yet written stay
// buffered (bounded, counted) and the connection reconnects with exponential
// backoff, replaying its handshake (AUTH, SELECT, on_connect commands) first.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "lotus/status.h"
#include "lotus/task.h"

namespace lotus {

// A parsed RESP reply, owned (hiredis's reply objects are freed right away).
struct RedisReply {
  enum class Type { kString, kArray, kInteger, kNil, kStatus, kError };
  Type type = Type::kNil;
  std::string str;  // kString, kStatus, kError
  long long integer = 0;
  std::vector<RedisReply> elements;  // kArray

  bool is_error() const { return type == Type::kError; }
  bool is_nil() const { return type == Type::kNil; }
  bool is_array() const { return type == Type::kArray; }
  // A short rendering for messages and debugging.
  std::string to_string() const;
};

// Where Redis is: parsed from redis://[user[:password]@]host[:port][/db].
struct RedisAddress {
  std::string host = "127.0.0.1";
  uint16_t port = 6379;
  int db = 0;
  std::string user;
  std::string password;
  // The URL with any password masked: what messages name.
  std::string display;
};
Result<RedisAddress> parse_redis_url(std::string_view url);

struct RedisConnectionStats {
  bool connected = false;
  uint64_t commands = 0;    // accepted for sending
  uint64_t replies = 0;     // replies matched to a command
  uint64_t pushes = 0;      // pub/sub messages handed to the push handler
  uint64_t reconnects = 0;  // successful connects after the first
  uint64_t failed = 0;      // commands failed because the link dropped
  uint64_t dropped = 0;     // refused because the buffer was full
  uint64_t waited = 0;      // sends that waited for the writer (outbox_high_water)
  size_t buffered = 0;      // queued, not yet written
  size_t in_flight = 0;     // written, reply not yet read
};

class RedisConnection : public std::enable_shared_from_this<RedisConnection> {
 public:
  using Args = std::vector<std::string>;
  using Callback = std::function<void(Result<RedisReply>)>;
  using PushHandler = std::function<void(RedisReply&&)>;
  // Run on the io thread after each (re)connect and handshake; the commands
  // it returns are sent before anything buffered (e.g. re-subscriptions).
  using ConnectHook = std::function<std::vector<Args>()>;
  using StateHandler = std::function<void(bool connected)>;

  struct Options {
    RedisAddress address;
    std::string client_name;  // CLIENT SETNAME, shown by CLIENT LIST
    std::chrono::milliseconds connect_timeout{2000};
    std::chrono::milliseconds backoff_initial{50};
    std::chrono::milliseconds backoff_max{2000};
    size_t max_buffered = 100000;  // commands held while disconnected
    // While connected, a sender finding this many bytes not yet written
    // waits (up to outbox_wait) for the writer to take them: a publisher
    // faster than Redis then stays in step instead of growing the buffer
    // without bound (each growth copies it and faults in fresh pages). Never
    // on the io thread itself.
    size_t outbox_high_water = 4 << 20;
    std::chrono::milliseconds outbox_wait{100};
    bool reconnect = true;
  };

  static std::shared_ptr<RedisConnection> create(boost::asio::io_context& io, Options options);
  RedisConnection(boost::asio::io_context& io, Options options);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Set before connect(). A push handler puts the connection in subscriber
  // mode: "message" and "pmessage" arrays go to it instead of a callback.
  void set_push_handler(PushHandler handler) { push_handler_ = std::move(handler); }
  void set_connect_hook(ConnectHook hook) { connect_hook_ = std::move(hook); }
  void set_state_handler(StateHandler handler) { state_handler_ = std::move(handler); }

  // Connects, blocking the calling thread (never the io thread) until the
  // handshake is done. The error names the URL and the reason. After a
  // failure nothing is retried; after success drops are retried with backoff.
  Status connect();

  // Queues a command; `done` (may be empty) runs on the io thread with the
  // reply, an error reply as an error status, or Unavailable/ResourceExhausted.
  void send(const Args& args, Callback done);
  // The same with the command already in RESP form (see append_command):
  // the publish path formats straight into one buffer, with no Args.
  void send_formatted(std::string_view command, Callback done);

  // RESP request form: the array header, then each argument.
  static void append_array_header(std::string& out, size_t count);
  static void append_argument(std::string& out, std::string_view arg);
  static void append_command(std::string& out, const Args& args);
  // Sends and blocks the calling thread (never the io thread) for the reply.
  Result<RedisReply> send_and_wait(const Args& args,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // The same as an awaitable; the awaiting coroutine resumes on `resume_on`.
  Task<Result<RedisReply>> call(Args args, boost::asio::any_io_executor resume_on);

  // Closes the socket; queued and in-flight commands fail with Cancelled.
  void close();

  RedisConnectionStats stats() const;
  const RedisAddress& address() const { return options_.address; }
  bool connected() const { return connected_.load(); }

 private:
  struct Reader;

  void start_connect();
  void on_connected();
  void on_handshake_done();
  void start_read();
  void flush_locked();
  void start_write();
  // Sends writing_buffer_; once it is out, what queued up meanwhile goes
  // next (start_write), and a failed write fails the link.
  void write_buffer();
  void handle_reply(RedisReply reply);
  void fail_link(std::string_view why);
  void schedule_reconnect();

  boost::asio::io_context& io_;
  const Options options_;
  boost::asio::ip::tcp::socket socket_;
  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::steady_timer retry_timer_;
  boost::asio::steady_timer connect_timer_;
  std::unique_ptr<Reader> reader_;
  std::vector<char> read_buffer_;

  PushHandler push_handler_;
  ConnectHook connect_hook_;
  StateHandler state_handler_;
  std::function<void(Status)> first_connect_;  // set while connect() waits

  // Shared with sending threads.
  mutable std::mutex mutex_;
  std::condition_variable outbox_taken_;  // the writer took the outbox
  size_t outbox_waiters_ = 0;
  std::string outbox_;  // formatted commands not yet written
  std::deque<Callback> outbox_callbacks_;
  bool writing_ = false;
  bool link_up_ = false;  // handshake done and socket open
  bool closed_ = false;

  // io thread only.
  std::string writing_buffer_;
  std::deque<Callback> in_flight_;
  std::chrono::milliseconds backoff_{0};
  bool ever_connected_ = false;
  uint64_t generation_ = 0;  // bumps on every drop, so stale handlers step aside

  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> commands_{0};
  std::atomic<uint64_t> replies_{0};
  std::atomic<uint64_t> pushes_{0};
  std::atomic<uint64_t> reconnects_{0};
  std::atomic<uint64_t> failed_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> waited_{0};
  std::atomic<size_t> in_flight_count_{0};
};

}  // namespace lotus
