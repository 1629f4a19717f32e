// EventSocket: one WebSocket client of the live event stream
// (GET /api/events?pattern=...&filter=... upgraded to a WebSocket).
//
// Every matching bus event is sent as one text frame holding the event's
// JSON. The bus hands events over on its own threads through a tap that only
// appends to this client's bounded queue, so a client never slows the bus or
// the others: when a client reads so slowly that its queue fills, it is
// unsubscribed and closed with a notice (close code 1008, reason "slow
// consumer ...") as soon as the frame being written goes out, and the queue
// is freed; if even that frame is not taken within 5 s, the connection is
// cut.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket.hpp>

#include "api/http_types.h"
#include "bus/bus.h"

namespace lotus::api {

// Counters shared by every event socket of one server.
struct EventSocketStats {
  std::atomic<uint64_t> connected{0};  // open now
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> dropped_clients{0};  // closed for reading too slowly
};

class EventSocket : public std::enable_shared_from_this<EventSocket> {
 public:
  struct Options {
    std::string pattern = "**";
    SubscriptionFilter filter;
    size_t queue_limit = 4096;
    std::string subprotocol;  // echoed in the handshake when the client offered one
  };

  EventSocket(boost::beast::tcp_stream stream, Bus& bus, Options options, EventSocketStats& stats);
  ~EventSocket();

  // Completes the handshake for `upgrade`, then streams until the client
  // leaves, the server stops (stop()) or the client is dropped.
  boost::asio::awaitable<void> run(HttpRequest upgrade);
  // Closes from any thread (server shutdown): a close frame, then waiting
  // for the client's at most kCloseGrace before the connection is cut.
  void stop();
  // Cuts the connection from any thread, for a stream that did not end
  // after stop() (its thread never came to send the close frame).
  void abort();
  // run() has returned (or never will be called: see HttpServer).
  bool ended() const { return ended_.load(); }

  // How long a client stopped by the server has to answer the close frame.
  static constexpr std::chrono::milliseconds kCloseGrace{500};

 private:
  void push(const EventPtr& event);  // bus threads
  void wake();
  void start_drop_deadline();
  boost::asio::awaitable<void> read_until_closed();
  boost::asio::awaitable<void> close_with(boost::beast::websocket::close_code code,
                                          std::string reason);

  boost::beast::websocket::stream<boost::beast::tcp_stream> socket_;
  Bus& bus_;
  Options options_;
  EventSocketStats& stats_;
  boost::asio::steady_timer wake_timer_;
  // Started when the queue overflows: a client that does not even take the
  // frame being written within the grace period loses its connection.
  boost::asio::steady_timer drop_timer_;

  std::mutex mutex_;
  std::deque<EventPtr> queue_;
  bool wake_posted_ = false;
  bool overflowed_ = false;
  std::atomic<bool> closing_{false};
  std::atomic<bool> ended_{false};
  std::optional<SubscriptionId> subscription_;
};

}  // namespace lotus::api
