// HttpServer: the daemon's HTTP/1.1 and WebSocket listener (Boost.Beast on
// Asio coroutines).
//
// Each connection runs as one coroutine on its own strand: read a request
// (header first, so an oversized body is refused with 413 before it is
// read), check Host, Origin and the bearer token (RequestGuard), route it,
// answer, repeat while the client keeps the connection alive. An upgrade to
// WebSocket on the event stream path hands the connection to an EventSocket.
#pragma once

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
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
  Status start(size_t threads = 2);
  // Closes the listener and every open connection, joins the threads.
  void stop();

  uint16_t port() const { return port_; }
  std::string url() const;
  const HttpServerStats& stats() const { return stats_; }
  const EventSocketStats& event_socket_stats() const { return socket_stats_; }

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(boost::beast::tcp_stream stream);
  boost::asio::awaitable<HttpResponse> answer(const HttpRequest& request);
  // nullopt when the request may go on; else the refusal to send.
  std::optional<HttpResponse> refuse(const HttpRequest& request, bool needs_token) const;
  boost::asio::awaitable<void> serve_event_socket(boost::beast::tcp_stream stream,
                                                  HttpRequest request);
  void count(const HttpResponse& response);

  ApiOptions options_;
  RequestGuard guard_;
  Router router_;
  Bus& bus_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  HttpServerStats stats_;
  EventSocketStats socket_stats_;

  std::mutex sockets_mutex_;
  std::list<std::weak_ptr<EventSocket>> sockets_;
};

}  // namespace lotus::api
