#include "api/api_client.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace lotus::api {

namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;

std::string ApiReply::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

std::string ApiReply::error_message() const {
  if (!error.empty()) return error;
  nlohmann::json parsed = json();
  if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_string()) {
    return parsed["error"].get<std::string>();
  }
  return "HTTP " + std::to_string(status);
}

ApiReply ApiClient::request(http::verb method, const std::string& target, const std::string& body,
                            Headers headers) const {
  ApiReply reply;
  try {
    boost::asio::io_context io;
    boost::asio::ip::tcp::resolver resolver(io);
    boost::beast::tcp_stream stream(io);
    stream.expires_after(timeout_);
    stream.connect(resolver.resolve(host_, std::to_string(port_)));
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, host_ + ":" + std::to_string(port_));
    if (!token_.empty()) req.set(http::field::authorization, "Bearer " + token_);
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    for (const auto& [name, value] : headers) {
      if (value.empty()) {
        req.erase(name);
      } else {
        req.set(name, value);
      }
    }
    req.body() = body;
    req.prepare_payload();
    http::write(stream, req);
    boost::beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 << 20);
    http::read(stream, buffer, parser);
    auto& res = parser.get();
    reply.status = static_cast<int>(res.result_int());
    for (const auto& field : res) {
      std::string name(field.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      reply.headers[name] = std::string(field.value());
    }
    reply.body = res.body();
    boost::beast::error_code ec;
    stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
  } catch (const std::exception& e) {
    reply.error = e.what();
  }
  return reply;
}

ApiReply ApiClient::get(const std::string& target, Headers headers) const {
  return request(http::verb::get, target, {}, std::move(headers));
}

ApiReply ApiClient::post(const std::string& target, const std::string& body,
                         Headers headers) const {
  return request(http::verb::post, target, body, std::move(headers));
}

ApiReply ApiClient::post(const std::string& target, const nlohmann::json& body) const {
  return post(target, body.dump());
}

EventStreamClient::EventStreamClient(const std::string& host, uint16_t port,
                                     const std::string& target, const std::string& token,
                                     bool token_as_subprotocol, std::chrono::seconds read_timeout)
    : socket_(io_) {
  try {
    boost::asio::ip::tcp::resolver resolver(io_);
    boost::asio::connect(socket_.next_layer(), resolver.resolve(host, std::to_string(port)));
    if (read_timeout.count() > 0) {
      timeval limit{static_cast<time_t>(read_timeout.count()), 0};
      ::setsockopt(socket_.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit,
                   sizeof limit);
    }
    socket_.set_option(websocket::stream_base::decorator([&](websocket::request_type& req) {
      if (token.empty()) return;
      if (token_as_subprotocol) {
        req.set(http::field::sec_websocket_protocol, "lotus.events, lotus.token." + token);
      } else {
        req.set(http::field::authorization, "Bearer " + token);
      }
    }));
    websocket::response_type response;
    socket_.handshake(response, host + ":" + std::to_string(port), target);
    subprotocol_ = std::string(response[http::field::sec_websocket_protocol]);
    open_ = true;
  } catch (const boost::system::system_error& e) {
    error_ = e.code().message();
  }
}

EventStreamClient::~EventStreamClient() {
  boost::beast::error_code ec;
  socket_.next_layer().close(ec);
}

int EventStreamClient::native_handle() { return socket_.next_layer().native_handle(); }

std::optional<std::string> EventStreamClient::read() {
  if (!open_) return std::nullopt;
  boost::beast::flat_buffer buffer;
  boost::beast::error_code ec;
  socket_.read(buffer, ec);
  if (ec) {
    open_ = false;
    close_reason_ = socket_.reason();
    if (error_.empty()) error_ = ec.message();
    return std::nullopt;
  }
  return boost::beast::buffers_to_string(buffer.data());
}

std::vector<nlohmann::json> EventStreamClient::read_events(size_t count) {
  std::vector<nlohmann::json> out;
  while (out.size() < count) {
    auto text = read();
    if (!text) break;
    out.push_back(nlohmann::json::parse(*text, nullptr, false));
  }
  return out;
}

void EventStreamClient::close() {
  if (!open_) return;
  boost::beast::error_code ec;
  socket_.close(websocket::close_code::normal, ec);
  open_ = false;
}

}  // namespace lotus::api
