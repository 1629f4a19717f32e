// ApiClient and EventStreamClient: blocking clients of the daemon's API, used
// by the CLI when a `lotus serve` is running (and by the API tests, which
// also send what a browser or an attacker would: a forged Host, an Origin,
// an oversized or malformed body). Each request opens its own connection.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

namespace lotus::api {

struct ApiReply {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string error;  // set when no HTTP answer came (connection refused, reset)

  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
  std::string header(const std::string& name) const;
  // The JSON error message, or the transport error, or "HTTP <status>".
  std::string error_message() const;
};

class ApiClient {
 public:
  using Headers = std::vector<std::pair<std::string, std::string>>;

  ApiClient(std::string host, uint16_t port,
            std::chrono::milliseconds timeout = std::chrono::seconds(30))
      : host_(std::move(host)), port_(port), timeout_(timeout) {}

  // Sent with Host: <host>:<port> and the token as a bearer header unless
  // `headers` say otherwise (an empty value removes a header).
  ApiReply request(boost::beast::http::verb method, const std::string& target,
                   const std::string& body = {}, Headers headers = {}) const;
  ApiReply get(const std::string& target, Headers headers = {}) const;
  ApiReply post(const std::string& target, const std::string& body = {},
                Headers headers = {}) const;
  ApiReply post(const std::string& target, const nlohmann::json& body) const;

  void set_token(std::string token) { token_ = std::move(token); }
  const std::string& host() const { return host_; }
  uint16_t port() const { return port_; }

 private:
  std::string host_;
  uint16_t port_;
  std::chrono::milliseconds timeout_;
  std::string token_;
};

// A blocking WebSocket client of the event stream (/api/events).
class EventStreamClient {
 public:
  // Connects and completes the handshake; error() says why when it failed.
  // A read waiting longer than `read_timeout` fails (0: wait for ever).
  EventStreamClient(const std::string& host, uint16_t port, const std::string& target,
                    const std::string& token, bool token_as_subprotocol = false,
                    std::chrono::seconds read_timeout = std::chrono::seconds(0));
  ~EventStreamClient();
  EventStreamClient(const EventStreamClient&) = delete;
  EventStreamClient& operator=(const EventStreamClient&) = delete;

  bool open() const { return open_; }
  const std::string& error() const { return error_; }
  const std::string& subprotocol() const { return subprotocol_; }
  // The socket, for poll() beside other input; reads then do not block.
  int native_handle();

  // The next frame's text; nullopt when the server closed (close_reason()
  // then says how) or the connection failed.
  std::optional<std::string> read();
  // Reads until `count` events arrived or the stream ended.
  std::vector<nlohmann::json> read_events(size_t count);
  const boost::beast::websocket::close_reason& close_reason() const { return close_reason_; }
  void close();

 private:
  boost::asio::io_context io_;
  boost::beast::websocket::stream<boost::asio::ip::tcp::socket> socket_;
  bool open_ = false;
  std::string error_;
  std::string subprotocol_;
  boost::beast::websocket::close_reason close_reason_;
};

}  // namespace lotus::api
