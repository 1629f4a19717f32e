// HttpReplayServer: a local HTTP server that replays scripted responses.
//
// Provider adapters are tested against the documented wire formats without
// the network: the server listens on 127.0.0.1 on an ephemeral port, answers
// each request with the next queued response (status, headers, body pieces
// flushed one by one, optional delays, an optional cut mid-body) and records
// what it received. One connection at a time; every response closes its
// connection, so a client never waits on a kept-alive socket.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace lotus::testing {

struct ReplayResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  // Body pieces, each written and flushed separately.
  std::vector<std::string> pieces;
  // Transfer-Encoding: chunked (streams); else Content-Length of all pieces.
  bool chunked = false;
  std::chrono::milliseconds delay_before_headers{0};
  std::chrono::milliseconds delay_between_pieces{0};
  // Close the connection after this many pieces, the body unfinished.
  int cut_after_pieces = -1;

  static ReplayResponse json(int status, std::string body,
                             std::vector<std::pair<std::string, std::string>> headers = {}) {
    ReplayResponse r;
    r.status = status;
    r.headers = std::move(headers);
    r.headers.emplace_back("content-type", "application/json");
    r.pieces.push_back(std::move(body));
    return r;
  }

  // A streamed body (SSE or NDJSON), one chunk per piece.
  static ReplayResponse stream(std::vector<std::string> pieces,
                               std::string content_type = "text/event-stream") {
    ReplayResponse r;
    r.chunked = true;
    r.headers.emplace_back("content-type", std::move(content_type));
    r.pieces = std::move(pieces);
    return r;
  }
};

struct RecordedRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class HttpReplayServer {
 public:
  HttpReplayServer()
      : acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}),
        port_(acceptor_.local_endpoint().port()),
        thread_([this] { serve(); }) {}

  ~HttpReplayServer() {
    stopping_ = true;
    // Wake the blocking accept with a connection of our own.
    boost::system::error_code ec;
    boost::asio::io_context wake;
    boost::asio::ip::tcp::socket s(wake);
    s.connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ec);
    thread_.join();
  }

  HttpReplayServer(const HttpReplayServer&) = delete;
  HttpReplayServer& operator=(const HttpReplayServer&) = delete;

  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  unsigned short port() const { return port_; }

  void enqueue(ReplayResponse response) {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(response));
  }

  std::vector<RecordedRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

  size_t pending() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
  }

 private:
  void serve() {
    while (!stopping_) {
      boost::asio::ip::tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec || stopping_) break;
      handle(socket);
    }
  }

  void handle(boost::asio::ip::tcp::socket& socket) {
    namespace http = boost::beast::http;
    boost::system::error_code ec;
    boost::beast::flat_buffer buffer;
    http::request<http::string_body> request;
    http::read(socket, buffer, request, ec);
    if (ec) return;

    RecordedRequest recorded;
    recorded.method = std::string(request.method_string());
    recorded.target = std::string(request.target());
    for (const auto& field : request) {
      std::string name(field.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      recorded.headers[name] = std::string(field.value());
    }
    recorded.body = request.body();

    ReplayResponse reply;
    {
      std::lock_guard lock(mutex_);
      requests_.push_back(std::move(recorded));
      if (queue_.empty()) {
        reply = ReplayResponse::json(500, R"({"error":{"message":"no scripted response left"}})");
      } else {
        reply = std::move(queue_.front());
        queue_.pop_front();
      }
    }

    std::this_thread::sleep_for(reply.delay_before_headers);
    http::response<http::empty_body> head{static_cast<http::status>(reply.status), 11};
    for (const auto& [name, value] : reply.headers) head.set(name, value);
    head.keep_alive(false);
    if (reply.chunked) {
      head.chunked(true);
    } else {
      size_t total = 0;
      for (const auto& piece : reply.pieces) total += piece.size();
      head.content_length(total);
    }
    http::response_serializer<http::empty_body> serializer{head};
    http::write_header(socket, serializer, ec);
    if (ec) return;
    int sent = 0;
    bool cut = false;
    for (const auto& piece : reply.pieces) {
      if (reply.cut_after_pieces >= 0 && sent >= reply.cut_after_pieces) {
        cut = true;
        break;
      }
      if (sent > 0) std::this_thread::sleep_for(reply.delay_between_pieces);
      if (reply.chunked) {
        boost::asio::write(socket, http::make_chunk(boost::asio::buffer(piece)), ec);
      } else {
        boost::asio::write(socket, boost::asio::buffer(piece), ec);
      }
      if (ec) return;
      ++sent;
    }
    if (reply.chunked && !cut) boost::asio::write(socket, http::make_chunk_last(), ec);
    socket.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  unsigned short port_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  std::deque<ReplayResponse> queue_;
  std::vector<RecordedRequest> requests_;
  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace lotus::testing
