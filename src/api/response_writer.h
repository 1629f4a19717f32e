// ResponseWriter: how a streaming route answers. Most routes return one
// HttpResponse; a streaming route (MCP's Streamable HTTP, with its SSE
// streams) writes through this instead: a whole response, or a header and
// then chunks as they come (chunked transfer), with the server's common
// headers and counters applied either way.
#pragma once

#include <functional>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "api/http_types.h"

namespace lotus::api {

// Writes `response` on `stream`: at once when the socket takes it all (the
// usual case: no wait on the reactor, and no completion handed to another
// thread), else the rest as the socket drains. The stream's socket must be
// in non-blocking mode (HttpServer sets it on accept).
boost::asio::awaitable<boost::beast::error_code> write_response(boost::beast::tcp_stream& stream,
                                                                HttpResponse& response);

class ResponseWriter {
 public:
  // `count` is told the status of every response written; `keep_alive` is
  // whether the connection may serve another request afterwards.
  ResponseWriter(boost::beast::tcp_stream& stream, bool keep_alive,
                 std::function<void(const HttpResponse&)> count);

  // One whole response. False when the client is gone.
  boost::asio::awaitable<bool> reply(HttpResponse response);
  // Starts a chunked response with the headers of `header` (its body is
  // ignored). False when the client is gone.
  boost::asio::awaitable<bool> start_stream(HttpResponse header);
  boost::asio::awaitable<bool> send_chunk(std::string_view data);
  // The last chunk: the response is complete and the connection may go on.
  boost::asio::awaitable<bool> end_stream();
  // Whether the connection may serve another request (false after an error,
  // or when the client asked to close, or a stream was left unfinished).
  bool keep_alive() const { return keep_alive_ && !open_stream_; }
  void close_after() { keep_alive_ = false; }

 private:
  void decorate(HttpResponse& response) const;

  boost::beast::tcp_stream& stream_;
  bool keep_alive_;
  bool open_stream_ = false;
  std::function<void(const HttpResponse&)> count_;
};

}  // namespace lotus::api
