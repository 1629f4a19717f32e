#include "mcp/http_session.h"

#include <string>
#include <thread>
#include <vector>

#include "llm/http_client.h"
#include "llm/stream_parsers.h"
#include "lotus/event.h"
#include "lotus/strings.h"
#include "mcp/json_rpc.h"

namespace lotus::mcp {

std::shared_ptr<HttpSession> HttpSession::create(std::string url,
                                                 std::map<std::string, std::string> headers,
                                                 OnMessage on_message, OnBroken on_broken) {
  return std::shared_ptr<HttpSession>(new HttpSession(std::move(url), std::move(headers),
                                                      std::move(on_message), std::move(on_broken)));
}

HttpSession::HttpSession(std::string url, std::map<std::string, std::string> headers,
                         OnMessage on_message, OnBroken on_broken)
    : url_(std::move(url)),
      headers_(std::move(headers)),
      on_message_(std::move(on_message)),
      on_broken_(std::move(on_broken)) {}

bool HttpSession::send(std::string message) {
  {
    std::lock_guard lock(mutex_);
    if (broken_ || cancel_.load()) return false;
    ++active_;
  }
  std::thread([self = shared_from_this(), message = std::move(message)] {
    self->post(message);
    std::lock_guard lock(self->mutex_);
    --self->active_;
    self->idle_.notify_all();
  }).detach();
  return true;
}

void HttpSession::post(const std::string& message) {
  llm::HttpRequest request;
  request.url = url_;
  request.body = message;
  request.cancel = &cancel_;
  request.total_timeout = std::chrono::milliseconds(0);  // the client's call timeout decides
  request.headers = {{"Content-Type", "application/json"},
                     {"Accept", "application/json, text/event-stream"}};
  for (const auto& [name, value] : headers_) request.headers.emplace_back(name, value);
  // Until the server has named a session (its answer to initialize does, in
  // a header known once the response is complete), what arrives is held back
  // until then: a request the client sends on seeing the answer would
  // otherwise leave without the session id, and the server refuse it.
  bool holding = false;
  std::vector<std::string> held;
  {
    std::lock_guard lock(mutex_);
    holding = session_id_.empty();
    if (!session_id_.empty()) request.headers.emplace_back("Mcp-Session-Id", session_id_);
    if (!protocol_version_.empty()) {
      request.headers.emplace_back("MCP-Protocol-Version", protocol_version_);
    }
  }
  // Remembers the negotiated version from the initialize answer.
  auto deliver = [this, &holding, &held](std::string_view text) {
    Json parsed = Json::parse(text, nullptr, false);
    if (parsed.is_object() && parsed.contains("result") && parsed["result"].is_object()) {
      if (auto v = parsed["result"].find("protocolVersion");
          v != parsed["result"].end() && v->is_string()) {
        std::lock_guard lock(mutex_);
        protocol_version_ = v->get<std::string>();
      }
    }
    if (holding) {
      held.emplace_back(text);
    } else {
      on_message_(text);
    }
  };
  bool sse = false;
  bool decided = false;
  std::string json_body;
  llm::SseParser parser([&](const llm::SseEvent& event) {
    if (!event.data.empty()) deliver(event.data);
    return absl::OkStatus();
  });
  llm::HttpClient http;
  auto response = http.perform(request, [&](std::string_view bytes) -> Status {
    if (!decided) {
      // The body's first byte tells an event stream from one JSON message.
      decided = true;
      size_t first = bytes.find_first_not_of(" \t\r\n");
      sse = first != std::string_view::npos && bytes[first] != '{' && bytes[first] != '[';
    }
    if (sse) return parser.feed(bytes);
    json_body.append(bytes);
    return absl::OkStatus();
  });
  if (response.ok()) {
    if (std::string id = response->header("mcp-session-id"); !id.empty()) {
      std::lock_guard lock(mutex_);
      session_id_ = id;
    }
  }
  holding = false;
  for (const std::string& text : held) on_message_(text);
  if (!response.ok()) {
    if (cancel_.load()) return;
    std::string why = cat("cannot reach ", url_, ": ", message_of(response.status()));
    answer_error(message, why);
    broke(why);
    return;
  }
  if (response->status == 404) {
    std::string why = "the server ended the session (HTTP 404)";
    answer_error(message, why);
    broke(why);
    return;
  }
  if (response->status < 200 || response->status >= 300) {
    answer_error(message, cat("HTTP ", response->status, ": ", response->body.substr(0, 300)));
    return;
  }
  if (!json_body.empty()) {
    Json parsed = Json::parse(json_body, nullptr, false);
    if (parsed.is_array()) {
      for (const Json& item : parsed) deliver(item.dump());
    } else {
      deliver(json_body);
    }
  }
}

void HttpSession::answer_error(const std::string& message, const std::string& why) {
  Json sent = Json::parse(message, nullptr, false);
  if (!sent.is_object() || !sent.contains("id") || !sent.contains("method")) return;
  on_message_(make_error(sent["id"], RpcError{kInternalError, why, Json()}));
}

void HttpSession::broke(const std::string& why) {
  {
    std::lock_guard lock(mutex_);
    if (broken_) return;
    broken_ = true;
    error_ = why;
  }
  if (on_broken_) on_broken_(why);
}

void HttpSession::close() {
  std::string session;
  {
    std::lock_guard lock(mutex_);
    if (cancel_.load()) return;
    session = session_id_;
  }
  cancel_.store(true);
  {
    std::unique_lock lock(mutex_);
    idle_.wait(lock, [this] { return active_ == 0; });
  }
  if (session.empty()) return;
  llm::HttpRequest request;
  request.method = "DELETE";
  request.url = url_;
  request.total_timeout = std::chrono::milliseconds(2000);
  request.headers = {{"Mcp-Session-Id", session}};
  for (const auto& [name, value] : headers_) request.headers.emplace_back(name, value);
  llm::HttpClient http;
  (void)http.perform(request);
}

std::string HttpSession::error() const {
  std::lock_guard lock(mutex_);
  return error_;
}

}  // namespace lotus::mcp
