#include "api/event_socket.h"

#include <absl/cleanup/cleanup.h>

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "lotus/strings.h"

namespace lotus::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

namespace {
constexpr auto kDropGrace = std::chrono::seconds(5);
}  // namespace

EventSocket::EventSocket(beast::tcp_stream stream, Bus& bus, Options options,
                         EventSocketStats& stats)
    : socket_(std::move(stream)),
      bus_(bus),
      options_(std::move(options)),
      stats_(stats),
      wake_timer_(socket_.get_executor()),
      drop_timer_(socket_.get_executor()) {}

EventSocket::~EventSocket() {
  if (subscription_) bus_.unsubscribe(*subscription_);
}

void EventSocket::push(const EventPtr& event) {
  bool post = false;
  {
    std::lock_guard lock(mutex_);
    if (overflowed_) return;
    if (queue_.size() >= options_.queue_limit) {
      overflowed_ = true;
      queue_.clear();
      stats_.dropped_clients.fetch_add(1);
      start_drop_deadline();
    } else {
      queue_.push_back(event);
    }
    post = !wake_posted_;
    wake_posted_ = true;
  }
  if (post) wake();
}

void EventSocket::wake() {
  asio::post(socket_.get_executor(), [self = shared_from_this()] { self->wake_timer_.cancel(); });
}

void EventSocket::start_drop_deadline() {
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    self->drop_timer_.expires_after(kDropGrace);
    self->drop_timer_.async_wait([self](beast::error_code ec) {
      if (ec) return;  // closed in time
      beast::error_code ignored;
      beast::get_lowest_layer(self->socket_).socket().close(ignored);
    });
  });
}

void EventSocket::stop() {
  closing_.store(true);
  {
    std::lock_guard lock(mutex_);
    wake_posted_ = true;
  }
  wake();
}

void EventSocket::abort() {
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    beast::error_code ignored;
    beast::get_lowest_layer(self->socket_).socket().close(ignored);
  });
}

asio::awaitable<void> EventSocket::read_until_closed() {
  auto self = shared_from_this();
  beast::flat_buffer buffer;
  beast::error_code ec;
  for (;;) {
    // Clients have nothing to say on this socket; reading keeps pings and
    // the close handshake going and tells us when they leave.
    co_await socket_.async_read(buffer, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
    buffer.consume(buffer.size());
  }
  closing_.store(true);
  wake();
}

asio::awaitable<void> EventSocket::close_with(websocket::close_code code, std::string reason) {
  beast::error_code ec;
  websocket::close_reason why(code);
  why.reason = reason.substr(0, 120);  // a close frame carries at most 123 bytes
  co_await socket_.async_close(why, asio::redirect_error(asio::use_awaitable, ec));
}

asio::awaitable<void> EventSocket::run(HttpRequest upgrade) {
  auto self = shared_from_this();
  absl::Cleanup ended = [this] { ended_.store(true); };
  beast::get_lowest_layer(socket_).expires_never();
  socket_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
  socket_.set_option(websocket::stream_base::decorator(
      [protocol = options_.subprotocol](websocket::response_type& response) {
        response.set(beast::http::field::server, "lotus");
        if (!protocol.empty()) response.set(beast::http::field::sec_websocket_protocol, protocol);
      }));
  // Subscribed before the handshake completes: a client that has its 101
  // gets every event published from then on.
  std::weak_ptr<EventSocket> weak = self;
  Subscriber tap;
  tap.tap = [weak](const EventPtr& event) {
    if (auto socket = weak.lock()) socket->push(event);
  };
  auto subscribed = bus_.subscribe(options_.pattern, options_.filter, std::move(tap));
  if (!subscribed.ok()) co_return;  // the pattern was checked before the upgrade
  subscription_ = *subscribed;
  beast::error_code ec;
  co_await socket_.async_accept(upgrade, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    bus_.unsubscribe(*subscription_);
    subscription_.reset();
    co_return;
  }
  stats_.accepted.fetch_add(1);
  stats_.connected.fetch_add(1);
  // Also when the server's stop() cancels the stream mid-write.
  absl::Cleanup leave = [this] {
    if (subscription_) {
      bus_.unsubscribe(*subscription_);
      subscription_.reset();
    }
    drop_timer_.cancel();
    stats_.connected.fetch_sub(1);
    // The stream is over: the reader below ends too.
    beast::error_code ignored;
    beast::get_lowest_layer(socket_).socket().close(ignored);
  };
  asio::co_spawn(socket_.get_executor(), read_until_closed(), asio::detached);

  socket_.text(true);
  for (;;) {
    std::deque<EventPtr> batch;
    bool overflowed = false;
    {
      std::lock_guard lock(mutex_);
      batch.swap(queue_);
      overflowed = overflowed_;
      wake_posted_ = false;
    }
    if (overflowed) {
      bus_.unsubscribe(*subscription_);
      subscription_.reset();
      spdlog::warn("event stream client dropped: it read too slowly ({} events were waiting)",
                   options_.queue_limit);
      auto closing = close_with(websocket::close_code::policy_error,
                                cat("slow consumer: more than ", options_.queue_limit,
                                    " events waited to be read; reconnect and read faster"));
      co_await std::move(closing);
      break;
    }
    if (closing_.load()) {
      if (socket_.is_open()) {
        // The grace runs from the close frame on (the stream's closing
        // handshake timeout): on a busy machine the frame itself may take
        // longer than that to go out, and a client must still get it.
        websocket::stream_base::timeout limits;
        limits.handshake_timeout = kCloseGrace;
        limits.idle_timeout = websocket::stream_base::none();
        limits.keep_alive_pings = false;
        socket_.set_option(limits);
        auto closing = close_with(websocket::close_code::going_away, "closing");
        co_await std::move(closing);
      }
      break;
    }
    if (batch.empty()) {
      wake_timer_.expires_at(asio::steady_timer::time_point::max());
      co_await wake_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    for (const EventPtr& event : batch) {
      std::string text = to_json(*event).dump(-1, ' ', false, Json::error_handler_t::replace);
      co_await socket_.async_write(asio::buffer(text),
                                   asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      stats_.sent.fetch_add(1, std::memory_order_relaxed);
    }
    if (ec) break;
  }
}

}  // namespace lotus::api
