// HttpServer: the daemon's HTTP/1.1 and WebSocket listener (Boost.Beast on
// Asio coroutines).
//
// Each connection runs as one coroutine on its own strand: read a request
// (header first, so an oversized body is refused with 413 before it is
// read), check Host, Origin and the bearer token (RequestGuard), route it,
// answer, repeat while the client keeps the connection alive. An upgrade to
// WebSocket on the event stream path hands the connection to an EventSocket.
//
// Connections run on the bus's threads, not threads of their own: a request
// handed to a module, and the module's reply to the waiting call, can then
// stay on the thread that read it (see bus/continuation.h) instead of
// crossing to another pool and back; the finished response is posted to
// its connection.
// So the server keeps count of its coroutines and stop() ends them all
// before it returns: none may run once the server or the routes are gone.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "api/api_options.h"
#include "api/event_socket.h"
#include "api/request_guard.h"
#include "api/router.h"
#include "bus/bus.h"

namespace lotus::api {

struct HttpServerStats {
  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> unauthorized{0};  // 401
  std::atomic<uint64_t> forbidden{0};     // 403: Host or Origin refused
  std::atomic<uint64_t> client_errors{0};
  std::atomic<uint64_t> server_errors{0};
};

class HttpServer {
 public:
  static constexpr std::string_view kEventStreamPath = "/api/events";

  HttpServer(ApiOptions options, std::string token, Router router, Bus& bus);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens; the error names the address and what went wrong
  // (e.g. the port is taken, with the key to change it).
  Status start();
  // Closes the listener, ends the event streams with a close frame, cancels
  // whatever the other connections wait for, and returns once every
  // connection has finished. Call it while the bus's threads still run.
  void stop();

  uint16_t port() const { return port_; }
  std::string url() const;
  const HttpServerStats& stats() const { return stats_; }
  const EventSocketStats& event_socket_stats() const { return socket_stats_; }

 private:
  boost::asio::awaitable<void> accept_loop();
  // A coroutine of the server: the accept loop, the idle sweep or a
  // connection.
  struct Coroutine;
  boost::asio::awaitable<void> serve(boost::beast::tcp_stream stream,
                                     std::shared_ptr<Coroutine> self);
  boost::asio::awaitable<HttpResponse> answer(const HttpRequest& request);
  // nullopt when the request may go on; else the refusal to send.
  std::optional<HttpResponse> refuse(const HttpRequest& request, bool needs_token) const;
  boost::asio::awaitable<void> serve_event_socket(boost::beast::tcp_stream stream,
                                                  HttpRequest request);
  void count(const HttpResponse& response);

  // Runs `work` on `strand`, counted until it finishes and cancelled by stop().
  void spawn(const boost::asio::any_io_executor& strand, boost::asio::awaitable<void> work);
  void spawn(std::shared_ptr<Coroutine> coroutine, boost::asio::awaitable<void> work);
  // Closes the connections whose request (or the idle wait for one) took
  // longer than api.request_timeout_ms. One sweep for all, rather than a
  // timer armed and cancelled at every read: that cost each request two
  // hand-offs between threads.
  boost::asio::awaitable<void> sweep_idle();
  void finished(const Coroutine& coroutine);
  // Ends the event streams with a close frame and waits for them to end;
  // cuts those still open after `backstop`.
  void close_event_sockets(std::chrono::milliseconds backstop);

  ApiOptions options_;
  RequestGuard guard_;
  Router router_;
  Bus& bus_;
  boost::asio::ip::tcp::acceptor acceptor_;  // on a strand of the bus's executor
  uint16_t port_ = 0;
  bool started_ = false;
  std::atomic<bool> stopping_{false};

  std::mutex coroutines_mutex_;
  std::condition_variable coroutines_ended_;
  std::unordered_map<uint64_t, std::shared_ptr<Coroutine>> coroutines_;
  uint64_t next_coroutine_ = 0;
  HttpServerStats stats_;
  EventSocketStats socket_stats_;

  std::mutex sockets_mutex_;
  std::list<std::weak_ptr<EventSocket>> sockets_;
};

}  // namespace lotus::api
