#include "api/response_writer.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace lotus::api {

namespace asio = boost::asio;
namespace beast = boost::beast;

namespace {
constexpr auto kWriteTimeout = std::chrono::seconds(60);
}

asio::awaitable<beast::error_code> write_response(beast::tcp_stream& stream,
                                                  HttpResponse& response) {
  http::response_serializer<http::string_body> serializer(response);
  beast::error_code ec;
  while (!serializer.is_done() && !ec) http::write_some(stream.socket(), serializer, ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    ec = {};
    stream.expires_after(kWriteTimeout);
    co_await http::async_write(stream, serializer, asio::redirect_error(asio::use_awaitable, ec));
    // Reads keep no per-operation timer (HttpServer's sweep times them).
    stream.expires_never();
  }
  co_return ec;
}

ResponseWriter::ResponseWriter(beast::tcp_stream& stream, bool keep_alive,
                               std::function<void(const HttpResponse&)> count)
    : stream_(stream), keep_alive_(keep_alive), count_(std::move(count)) {}

void ResponseWriter::decorate(HttpResponse& response) const {
  response.set(http::field::server, "lotus");
  response.set("x-content-type-options", "nosniff");
  response.keep_alive(keep_alive_);
  if (count_) count_(response);
}

asio::awaitable<bool> ResponseWriter::reply(HttpResponse response) {
  decorate(response);
  beast::error_code ec = co_await write_response(stream_, response);
  if (ec) keep_alive_ = false;
  co_return !ec;
}

asio::awaitable<bool> ResponseWriter::start_stream(HttpResponse header) {
  decorate(header);
  http::response<http::empty_body> head{header.result(), header.version()};
  for (const auto& field : header.base()) head.set(field.name_string(), field.value());
  head.keep_alive(keep_alive_);
  head.chunked(true);
  http::response_serializer<http::empty_body> serializer{head};
  beast::error_code ec;
  stream_.expires_after(kWriteTimeout);
  co_await http::async_write_header(stream_, serializer,
                                    asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    keep_alive_ = false;
    co_return false;
  }
  open_stream_ = true;
  stream_.expires_never();  // a stream may idle between events
  co_return true;
}

asio::awaitable<bool> ResponseWriter::send_chunk(std::string_view data) {
  if (!open_stream_ || data.empty()) co_return open_stream_;
  beast::error_code ec;
  stream_.expires_after(kWriteTimeout);
  co_await asio::async_write(stream_, http::make_chunk(asio::buffer(data.data(), data.size())),
                             asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    keep_alive_ = false;
    co_return false;
  }
  stream_.expires_never();
  co_return true;
}

asio::awaitable<bool> ResponseWriter::end_stream() {
  if (!open_stream_) co_return false;
  beast::error_code ec;
  stream_.expires_after(kWriteTimeout);
  co_await asio::async_write(stream_, http::make_chunk_last(),
                             asio::redirect_error(asio::use_awaitable, ec));
  stream_.expires_never();
  open_stream_ = false;
  if (ec) keep_alive_ = false;
  co_return !ec;
}

}  // namespace lotus::api
