// write_response: a response the socket takes at once, and one larger than
// the socket's buffers, which must go out whole once the client reads.
#include "api/response_writer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>

namespace lotus::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

class WriteResponseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    client_.connect(acceptor.local_endpoint());
    tcp::socket accepted = acceptor.accept();
    accepted.non_blocking(true);
    server_.emplace(std::move(accepted));
  }

  // Writes on the server side (on io_'s thread) and returns its outcome.
  std::future<beast::error_code> write(HttpResponse& response) {
    auto done = std::make_shared<std::promise<beast::error_code>>();
    auto outcome = done->get_future();
    asio::co_spawn(
        io_,
        [this, &response, done]() -> asio::awaitable<void> {
          auto writing = write_response(*server_, response);
          done->set_value(co_await std::move(writing));
        },
        [](std::exception_ptr) {});
    runner_ = std::thread([this] { io_.run(); });
    return outcome;
  }

  HttpResponse read() {
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    http::read(client_, buffer, parser);
    return parser.release();
  }

  void TearDown() override {
    if (runner_.joinable()) runner_.join();
  }

  asio::io_context io_;
  tcp::socket client_{io_};
  std::optional<beast::tcp_stream> server_;
  std::thread runner_;
};

HttpResponse response_with_body(std::string body) {
  HttpResponse response{http::status::ok, 11};
  response.set(http::field::content_type, "text/plain");
  response.body() = std::move(body);
  response.prepare_payload();
  return response;
}

TEST_F(WriteResponseTest, ASmallResponseGoesOutAtOnce) {
  HttpResponse response = response_with_body("hello");
  auto outcome = write(response);
  // Written before anyone reads: it fit the socket's buffer.
  ASSERT_EQ(outcome.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_FALSE(outcome.get());
  HttpResponse received = read();
  EXPECT_EQ(received.result(), http::status::ok);
  EXPECT_EQ(received.body(), "hello");
}

TEST_F(WriteResponseTest, AResponseLargerThanTheSocketsBuffersGoesOutWholeAsTheClientReads) {
  // Far more than the kernel buffers of a loopback connection hold.
  std::string body(32 * 1024 * 1024, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
  HttpResponse response = response_with_body(body);
  auto outcome = write(response);
  // Nobody reads yet: the rest waits for the socket to drain.
  EXPECT_EQ(outcome.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  HttpResponse received = read();
  ASSERT_EQ(outcome.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_FALSE(outcome.get());
  EXPECT_EQ(received.body().size(), body.size());
  EXPECT_TRUE(received.body() == body);
}

}  // namespace
}  // namespace lotus::api
