#include "bus/redis_connection.h"

#include <hiredis/hiredis.h>

#include <charconv>
#include <future>

#include <spdlog/spdlog.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "lotus/strings.h"

namespace lotus {
namespace {

RedisReply convert(const redisReply* reply) {
  RedisReply out;
  switch (reply->type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(reply->str, reply->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(reply->str, reply->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(reply->str, reply->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = reply->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(reply->elements);
      for (size_t i = 0; i < reply->elements; ++i) {
        out.elements.push_back(convert(reply->element[i]));
      }
      break;
    default:
      out.type = RedisReply::Type::kNil;
      break;
  }
  return out;
}

bool parse_number(std::string_view text, int64_t& out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::string RedisReply::to_string() const {
  switch (type) {
    case Type::kString:
      return cat("\"", str, "\"");
    case Type::kStatus:
      return str;
    case Type::kError:
      return cat("(error) ", str);
    case Type::kInteger:
      return cat("(integer) ", integer);
    case Type::kNil:
      return "(nil)";
    case Type::kArray: {
      std::string out = "[";
      for (size_t i = 0; i < elements.size(); ++i) {
        if (i > 0) out += ", ";
        out += elements[i].to_string();
      }
      return out + "]";
    }
  }
  return "?";
}

Result<RedisAddress> parse_redis_url(std::string_view url) {
  constexpr std::string_view kScheme = "redis://";
  RedisAddress address;
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(cat("bad Redis URL \"", address.display, "\": ", why));
  };
  address.display = std::string(url);
  if (url.substr(0, kScheme.size()) != kScheme) return bad("it must start with redis://");
  std::string_view rest = url.substr(kScheme.size());
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view db = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view credentials = authority.substr(0, at);
    authority.remove_prefix(at + 1);
    if (const size_t colon = credentials.find(':'); colon != std::string_view::npos) {
      address.user = std::string(credentials.substr(0, colon));
      address.password = std::string(credentials.substr(colon + 1));
      address.display = cat(kScheme, address.user, ":****@", authority,
                            slash == std::string_view::npos ? "" : "/", db);
    } else {
      address.user = std::string(credentials);
    }
  }
  std::string_view port;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("missing ']'");
    address.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return bad("expected ':port' after ']'");
      port = authority.substr(close + 2);
    }
  } else {
    const size_t colon = authority.find(':');
    address.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (address.host.empty()) return bad("missing host");
  if (!port.empty()) {
    int64_t number = 0;
    if (!parse_number(port, number) || number < 1 || number > 65535) {
      return bad("port must be a number from 1 to 65535");
    }
    address.port = static_cast<uint16_t>(number);
  }
  if (!db.empty()) {
    int64_t number = 0;
    if (!parse_number(db, number) || number < 0 || number > 1'000'000) {
      return bad("database must be a number");
    }
    address.db = static_cast<int>(number);
  }
  return address;
}

struct RedisConnection::Reader {
  Reader() : reader(redisReaderCreate()) {}
  ~Reader() { redisReaderFree(reader); }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  redisReader* reader;
};

std::shared_ptr<RedisConnection> RedisConnection::create(boost::asio::io_context& io,
                                                         Options options) {
  return std::make_shared<RedisConnection>(io, std::move(options));
}

RedisConnection::RedisConnection(boost::asio::io_context& io, Options options)
    : io_(io),
      options_(std::move(options)),
      socket_(io),
      resolver_(io),
      retry_timer_(io),
      connect_timer_(io),
      read_buffer_(64 * 1024) {}

RedisConnection::~RedisConnection() = default;

Status RedisConnection::connect() {
  std::promise<Status> promise;
  auto future = promise.get_future();
  auto self = shared_from_this();
  boost::asio::post(io_, [self, &promise] {
    self->first_connect_ = [&promise](Status status) { promise.set_value(std::move(status)); };
    self->start_connect();
  });
  Status status = future.get();
  if (!status.ok()) {
    close();
    return absl::UnavailableError(
        cat("cannot reach Redis at ", options_.address.display, ": ", message_of(status)));
  }
  return status;
}

void RedisConnection::start_connect() {
  const uint64_t generation = generation_;
  auto self = shared_from_this();
  connect_timer_.expires_after(options_.connect_timeout);
  connect_timer_.async_wait([self, generation](boost::system::error_code ec) {
    if (ec || generation != self->generation_ || self->connected_) return;
    self->fail_link(cat("no connection within ", self->options_.connect_timeout.count(), " ms"));
  });
  resolver_.async_resolve(
      options_.address.host, std::to_string(options_.address.port),
      [self, generation](boost::system::error_code ec,
                         boost::asio::ip::tcp::resolver::results_type endpoints) {
        if (generation != self->generation_) return;
        if (ec) {
          self->fail_link(cat("cannot resolve ", self->options_.address.host, ": ", ec.message()));
          return;
        }
        boost::asio::async_connect(self->socket_, endpoints,
                                   [self, generation](boost::system::error_code ec2,
                                                      const boost::asio::ip::tcp::endpoint&) {
                                     if (generation != self->generation_) return;
                                     if (ec2) {
                                       self->fail_link(ec2.message());
                                       return;
                                     }
                                     self->on_connected();
                                   });
      });
}

namespace {

void append_header(std::string& out, char kind, size_t n) {
  char buffer[24];
  buffer[0] = kind;
  char* end = std::to_chars(buffer + 1, buffer + sizeof buffer - 2, n).ptr;
  *end++ = '\r';
  *end++ = '\n';
  out.append(buffer, static_cast<size_t>(end - buffer));
}

}  // namespace

// The RESP request form ("*<n>\r\n" then "$<len>\r\n<arg>\r\n" per
// argument), written straight into `out`: no intermediate buffers, no
// printf, on every publish.
void RedisConnection::append_array_header(std::string& out, size_t count) {
  append_header(out, '*', count);
}

void RedisConnection::append_argument(std::string& out, std::string_view arg) {
  append_header(out, '$', arg.size());
  out.append(arg);
  out.append("\r\n", 2);
}

void RedisConnection::append_command(std::string& out, const Args& args) {
  size_t total = 16;
  for (const auto& arg : args) total += arg.size() + 16;
  out.reserve(out.size() + total);
  append_array_header(out, args.size());
  for (const auto& arg : args) append_argument(out, arg);
}

void RedisConnection::on_connected() {
  boost::system::error_code ignored;
  socket_.set_option(boost::asio::ip::tcp::no_delay(true), ignored);
  reader_ = std::make_unique<Reader>();

  // Two phases. First the handshake alone, with sending threads still
  // buffering; only once it succeeded, and Redis is not still loading its
  // data set (it answers most commands with LOADING then), do the connect
  // hook's commands and everything buffered follow.
  std::vector<Args> handshake;
  if (!options_.address.password.empty()) {
    if (options_.address.user.empty()) {
      handshake.push_back({"AUTH", options_.address.password});
    } else {
      handshake.push_back({"AUTH", options_.address.user, options_.address.password});
    }
  }
  if (options_.address.db != 0) {
    handshake.push_back({"SELECT", std::to_string(options_.address.db)});
  }
  if (!options_.client_name.empty()) {
    handshake.push_back({"CLIENT", "SETNAME", options_.client_name});
  }
  handshake.push_back({"INFO", "persistence"});

  auto self = shared_from_this();
  const uint64_t generation = generation_;
  auto failure = std::make_shared<std::string>();
  std::string buffer;
  for (size_t i = 0; i < handshake.size(); ++i) {
    append_command(buffer, handshake[i]);
    const bool last = i + 1 == handshake.size();
    const std::string what = handshake[i][0];
    in_flight_.push_back([self, generation, failure, last, what](Result<RedisReply> reply) {
      if (generation != self->generation_) return;
      if (!reply.ok() && failure->empty()) {
        failure->assign(cat(what, ": ", message_of(reply.status())));
      }
      if (!last) return;
      if (failure->empty() && reply.ok() && reply->str.find("loading:1") != std::string::npos) {
        failure->assign("Redis is still loading its data set");
      }
      if (!failure->empty()) {
        self->fail_link(*failure);
        return;
      }
      self->on_handshake_done();
    });
  }
  in_flight_count_.fetch_add(handshake.size());
  writing_buffer_ = std::move(buffer);
  boost::asio::async_write(socket_, boost::asio::buffer(writing_buffer_),
                           [self, generation](boost::system::error_code ec, size_t) {
                             if (generation != self->generation_) return;
                             if (ec) self->fail_link(ec.message());
                           });
  start_read();
}

void RedisConnection::on_handshake_done() {
  std::string buffer;
  std::deque<Callback> callbacks;
  if (connect_hook_) {
    for (auto& args : connect_hook_()) {
      append_command(buffer, args);
      const std::string what = args.size() > 1 ? cat(args[0], " ", args[1]) : args[0];
      callbacks.push_back([what, display = options_.address.display](Result<RedisReply> reply) {
        if (!reply.ok()) {
          spdlog::warn("redis {}: {} after connecting failed: {}", display, what,
                       message_of(reply.status()));
        }
      });
    }
  }
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    link_up_ = true;
    buffer += outbox_;
    outbox_.clear();
    for (auto& cb : outbox_callbacks_) callbacks.push_back(std::move(cb));
    outbox_callbacks_.clear();
    writing_ = true;
  }
  connect_timer_.cancel();
  backoff_ = std::chrono::milliseconds(0);
  if (ever_connected_) reconnects_.fetch_add(1);
  ever_connected_ = true;
  connected_ = true;
  in_flight_count_.fetch_add(callbacks.size());
  for (auto& cb : callbacks) in_flight_.push_back(std::move(cb));
  writing_buffer_ = std::move(buffer);
  write_buffer();
  if (state_handler_) state_handler_(true);
  if (first_connect_) {
    auto report = std::move(first_connect_);
    first_connect_ = nullptr;
    report(absl::OkStatus());
  }
}

void RedisConnection::send(const Args& args, Callback done) {
  std::string formatted;
  append_command(formatted, args);
  send_formatted(formatted, std::move(done));
}

void RedisConnection::send_formatted(std::string_view formatted, Callback done) {
  bool post_write = false;
  Status refused;
  {
    std::unique_lock lock(mutex_);
    if (link_up_ && outbox_.size() >= options_.outbox_high_water &&
        !io_.get_executor().running_in_this_thread()) {
      waited_.fetch_add(1, std::memory_order_relaxed);
      ++outbox_waiters_;
      outbox_taken_.wait_for(lock, options_.outbox_wait, [this] {
        return closed_ || !link_up_ || outbox_.size() < options_.outbox_high_water;
      });
      --outbox_waiters_;
    }
    if (closed_) {
      refused = absl::CancelledError(cat("redis ", options_.address.display, ": closed"));
    } else if (!link_up_ && outbox_callbacks_.size() >= options_.max_buffered) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      refused = absl::ResourceExhaustedError(cat("redis ", options_.address.display,
                                                 " is unreachable and ", options_.max_buffered,
                                                 " commands are already buffered"));
    } else {
      commands_.fetch_add(1, std::memory_order_relaxed);
      outbox_ += formatted;
      outbox_callbacks_.push_back(std::move(done));
      if (link_up_ && !writing_) {
        writing_ = true;
        post_write = true;
      }
    }
  }
  if (!refused.ok()) {
    if (done) done(std::move(refused));
    return;
  }
  if (post_write) {
    auto self = shared_from_this();
    boost::asio::post(io_, [self] { self->start_write(); });
  }
}

// Runs on the io thread with writing_ set: sends what has queued up, or clears
// writing_ when there is nothing.
void RedisConnection::start_write() {
  {
    std::lock_guard lock(mutex_);
    if (!link_up_ || outbox_.empty()) {
      writing_ = false;
      return;
    }
    writing_buffer_.clear();
    writing_buffer_.swap(outbox_);
    if (outbox_waiters_ > 0) outbox_taken_.notify_all();
    in_flight_count_.fetch_add(outbox_callbacks_.size());
    for (auto& cb : outbox_callbacks_) in_flight_.push_back(std::move(cb));
    outbox_callbacks_.clear();
  }
  write_buffer();
}

void RedisConnection::write_buffer() {
  auto self = shared_from_this();
  const uint64_t generation = generation_;
  boost::asio::async_write(socket_, boost::asio::buffer(writing_buffer_),
                           [self, generation](boost::system::error_code ec, size_t) {
                             if (generation != self->generation_) return;
                             if (ec) {
                               self->fail_link(ec.message());
                               return;
                             }
                             self->start_write();
                           });
}

void RedisConnection::start_read() {
  auto self = shared_from_this();
  const uint64_t generation = generation_;
  socket_.async_read_some(boost::asio::buffer(read_buffer_),
                          [self, generation](boost::system::error_code ec, size_t n) {
                            if (generation != self->generation_) return;
                            if (ec) {
                              self->fail_link(ec == boost::asio::error::eof
                                                  ? "connection closed by the server"
                                                  : ec.message());
                              return;
                            }
                            redisReader* reader = self->reader_->reader;
                            if (redisReaderFeed(reader, self->read_buffer_.data(), n) != REDIS_OK) {
                              self->fail_link(cat("protocol error: ", reader->errstr));
                              return;
                            }
                            for (;;) {
                              void* raw = nullptr;
                              if (redisReaderGetReply(reader, &raw) != REDIS_OK) {
                                self->fail_link(cat("protocol error: ", reader->errstr));
                                return;
                              }
                              if (raw == nullptr) break;
                              RedisReply reply = convert(static_cast<redisReply*>(raw));
                              freeReplyObject(raw);
                              self->handle_reply(std::move(reply));
                              if (generation != self->generation_)
                                return;  // a callback closed the link
                            }
                            self->start_read();
                          });
}

void RedisConnection::handle_reply(RedisReply reply) {
  if (push_handler_ && reply.is_array() && !reply.elements.empty() &&
      (reply.elements[0].str == "pmessage" || reply.elements[0].str == "message")) {
    pushes_.fetch_add(1, std::memory_order_relaxed);
    push_handler_(std::move(reply));
    return;
  }
  if (in_flight_.empty()) {
    spdlog::warn("redis {}: a reply nobody asked for: {}", options_.address.display,
                 reply.to_string());
    return;
  }
  Callback done = std::move(in_flight_.front());
  in_flight_.pop_front();
  in_flight_count_.fetch_sub(1);
  replies_.fetch_add(1, std::memory_order_relaxed);
  if (!done) return;
  if (reply.is_error()) {
    done(absl::FailedPreconditionError(cat("redis: ", reply.str)));
  } else {
    done(std::move(reply));
  }
}

void RedisConnection::fail_link(std::string_view why) {
  ++generation_;
  boost::system::error_code ignored;
  socket_.close(ignored);
  resolver_.cancel();
  connect_timer_.cancel();
  const bool was_connected = connected_.exchange(false);
  bool closed = false;
  {
    std::lock_guard lock(mutex_);
    link_up_ = false;
    if (outbox_waiters_ > 0) outbox_taken_.notify_all();
    writing_ = false;
    closed = closed_;
  }
  std::deque<Callback> failed;
  failed.swap(in_flight_);
  in_flight_count_.store(0);
  reader_.reset();
  const std::string message = cat("redis ", options_.address.display, ": ", why);
  for (auto& done : failed) {
    if (!done) continue;
    failed_.fetch_add(1, std::memory_order_relaxed);
    done(absl::UnavailableError(message));
  }
  if (was_connected && state_handler_) state_handler_(false);
  if (first_connect_) {
    auto report = std::move(first_connect_);
    first_connect_ = nullptr;
    report(absl::UnavailableError(std::string(why)));
    return;
  }
  if (closed || !options_.reconnect || !ever_connected_) return;
  if (was_connected) spdlog::warn("{}; reconnecting", message);
  schedule_reconnect();
}

void RedisConnection::schedule_reconnect() {
  backoff_ = backoff_.count() == 0 ? options_.backoff_initial
                                   : std::min(backoff_ * 2, options_.backoff_max);
  auto self = shared_from_this();
  retry_timer_.expires_after(backoff_);
  retry_timer_.async_wait([self](boost::system::error_code ec) {
    if (ec) return;
    {
      std::lock_guard lock(self->mutex_);
      if (self->closed_) return;
    }
    self->socket_ = boost::asio::ip::tcp::socket(self->io_);
    self->start_connect();
  });
}

void RedisConnection::close() {
  std::deque<Callback> buffered;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
    if (outbox_waiters_ > 0) outbox_taken_.notify_all();
    buffered.swap(outbox_callbacks_);
    outbox_.clear();
  }
  for (auto& done : buffered) {
    if (done) done(absl::CancelledError(cat("redis ", options_.address.display, ": closed")));
  }
  std::promise<void> finished;
  auto future = finished.get_future();
  auto self = shared_from_this();
  boost::asio::post(io_, [self, &finished] {
    self->retry_timer_.cancel();
    self->fail_link("closed");
    finished.set_value();
  });
  // When the io_context no longer runs (or this is its thread) the post may
  // never run; do not wait for it then.
  if (io_.stopped() || io_.get_executor().running_in_this_thread()) return;
  future.wait_for(std::chrono::seconds(5));
}

Result<RedisReply> RedisConnection::send_and_wait(const Args& args,
                                                  std::chrono::milliseconds timeout) {
  auto promise = std::make_shared<std::promise<Result<RedisReply>>>();
  auto future = promise->get_future();
  send(args, [promise](Result<RedisReply> reply) { promise->set_value(std::move(reply)); });
  if (future.wait_for(timeout) != std::future_status::ready) {
    return absl::DeadlineExceededError(cat("redis ", options_.address.display, ": no answer to ",
                                           args.empty() ? "" : args[0], " within ", timeout.count(),
                                           " ms"));
  }
  return future.get();
}

Task<Result<RedisReply>> RedisConnection::call(Args args, boost::asio::any_io_executor resume_on) {
  auto awaiter = resume_with<Result<RedisReply>>([this, &args, resume_on](auto resume) {
    send(args, [resume, resume_on](Result<RedisReply> reply) mutable {
      boost::asio::post(resume_on,
                        [resume, reply = std::move(reply)]() mutable { resume(std::move(reply)); });
    });
  });
  Result<RedisReply> reply = co_await awaiter;
  co_return reply;
}

RedisConnectionStats RedisConnection::stats() const {
  RedisConnectionStats s;
  s.connected = connected_.load();
  s.commands = commands_.load();
  s.replies = replies_.load();
  s.pushes = pushes_.load();
  s.reconnects = reconnects_.load();
  s.failed = failed_.load();
  s.dropped = dropped_.load();
  s.waited = waited_.load();
  s.in_flight = in_flight_count_.load();
  std::lock_guard lock(mutex_);
  s.buffered = outbox_callbacks_.size();
  return s;
}

}  // namespace lotus
