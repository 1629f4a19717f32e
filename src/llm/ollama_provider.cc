#include "llm/ollama_provider.h"

#include <memory>
#include <utility>

#include "llm/stream_parsers.h"
#include "lotus/strings.h"

namespace lotus::llm {
namespace {

StopReason stop_reason_of(std::string_view raw, bool has_tool_calls) {
  if (has_tool_calls) return StopReason::kToolUse;
  if (raw == "stop" || raw.empty()) return StopReason::kEndTurn;
  if (raw == "length") return StopReason::kMaxTokens;
  return StopReason::kOther;
}

Json arguments_of(const Json& value) {
  if (value.is_object()) return value;
  if (value.is_string()) {
    Json doc = Json::parse(value.get<std::string>(), nullptr, false);
    if (!doc.is_discarded() && doc.is_object()) return doc;
    return value;
  }
  return Json::object();
}

// Appends the tool calls and text of one reply line (whole or streamed).
void read_message(const Json& line, ChatResponse& response, int& call_count) {
  const Json& message = line.value("message", Json::object());
  if (!message.is_object()) return;
  if (auto calls = message.find("tool_calls"); calls != message.end() && calls->is_array()) {
    for (const Json& call : *calls) {
      if (!call.is_object()) continue;
      const Json& function = call.value("function", Json::object());
      std::string id = call.value("id", "");
      response.tool_calls.push_back(ToolCall{id.empty() ? cat("call_", call_count) : id,
                                             function.value("name", ""),
                                             arguments_of(function.value("arguments", Json()))});
      ++call_count;
    }
  }
}

void read_done(const Json& line, ChatResponse& response) {
  response.model = line.value("model", response.model);
  response.raw_stop_reason = line.value("done_reason", "");
  response.stop_reason = stop_reason_of(response.raw_stop_reason, !response.tool_calls.empty());
  response.usage.input_tokens = line.value("prompt_eval_count", int64_t{0});
  response.usage.output_tokens = line.value("eval_count", int64_t{0});
}

Status error_line(std::string_view provider, const Json& line) {
  auto error = line.find("error");
  if (error == line.end()) return absl::OkStatus();
  std::string text = error->is_string() ? error->get<std::string>() : error->dump();
  return absl::InternalError(cat(provider, ": error in the reply: ", text));
}

class BufferedDecoder : public ReplyDecoder {
 public:
  explicit BufferedDecoder(std::string_view provider) : provider_(provider) {}
  Status feed(std::string_view bytes) override {
    body_.append(bytes);
    return absl::OkStatus();
  }
  Result<ChatResponse> finish() override {
    auto doc = parse_json(provider_, "the reply", body_);
    if (!doc.ok()) return doc.status();
    return ollama_parse_reply(provider_, *doc);
  }

 private:
  std::string provider_;
  std::string body_;
};

class StreamDecoder : public ReplyDecoder {
 public:
  StreamDecoder(std::string_view provider, const StreamCallback* on_text)
      : provider_(provider),
        on_text_(on_text),
        parser_([this](std::string_view line) { return on_line(line); }) {}

  Status feed(std::string_view bytes) override { return parser_.feed(bytes); }

  Result<ChatResponse> finish() override {
    if (Status s = parser_.finish(); !s.ok()) return s;
    if (!done_) {
      return absl::UnavailableError(
          cat(provider_, ": the stream ended before done (connection cut mid-reply)"));
    }
    return std::move(response_);
  }

  bool emitted() const override { return emitted_; }

 private:
  Status on_line(std::string_view text) {
    auto doc = parse_json(provider_, "a stream line", text);
    if (!doc.ok()) return doc.status();
    const Json& line = *doc;
    if (!line.is_object()) return absl::OkStatus();
    if (Status s = error_line(provider_, line); !s.ok()) return s;
    const Json& message = line.value("message", Json::object());
    if (message.is_object()) {
      std::string content = message.value("content", "");
      if (!content.empty()) {
        response_.text += content;
        emitted_ = true;
        if (*on_text_) (*on_text_)(content);
      }
    }
    read_message(line, response_, calls_);
    if (line.value("done", false)) {
      read_done(line, response_);
      done_ = true;
    }
    return absl::OkStatus();
  }

  std::string provider_;
  const StreamCallback* on_text_;
  NdjsonParser parser_;
  ChatResponse response_;
  int calls_ = 0;
  bool done_ = false;
  bool emitted_ = false;
};

}  // namespace

OllamaOptions OllamaOptions::defaults() {
  OllamaOptions options;
  options.http.name = "ollama";
  options.http.base_url = "http://localhost:11434";
  options.http.key.env_var = "OLLAMA_API_KEY";
  options.http.key.required = false;
  return options;
}

OllamaProvider::OllamaProvider(OllamaOptions options)
    : options_(std::move(options)),
      key_(resolve_api_key(options_.http.name, options_.http.key, options_.http.env)) {}

ProbeReport OllamaProvider::probe(std::chrono::milliseconds timeout) const {
  ModelListProbe probe;
  probe.options = &options_.http;
  probe.key = &key_;
  probe.path = "api/tags";
  if (key_.ok() && !key_->empty()) probe.headers = {{"authorization", cat("Bearer ", *key_)}};
  probe.list_models = ollama_model_ids;
  return probe_model_list(probe, timeout);
}

std::optional<std::vector<std::string>> ollama_model_ids(const Json& reply) {
  std::vector<std::string> ids;
  constexpr std::string_view kLatest = ":latest";
  for (const Json& model : reply.at("models")) {
    std::string name = model.contains("name") ? model.at("name").get<std::string>()
                                              : model.at("model").get<std::string>();
    if (name.size() > kLatest.size() &&
        name.compare(name.size() - kLatest.size(), kLatest.size(), kLatest) == 0) {
      ids.push_back(name.substr(0, name.size() - kLatest.size()));
    }
    ids.push_back(std::move(name));
  }
  return ids;
}

Json ollama_request_body(const ChatRequest& request) {
  Json messages = Json::array();
  for (const ChatMessage& m : request.messages) {
    Json message = {{"role", to_string(m.role)}, {"content", m.text}};
    if (m.role == ChatRole::kAssistant && !m.tool_calls.empty()) {
      Json calls = Json::array();
      for (const ToolCall& call : m.tool_calls) {
        calls.push_back({{"function", {{"name", call.name}, {"arguments", call.arguments}}}});
      }
      message["tool_calls"] = std::move(calls);
    }
    if (m.role == ChatRole::kTool && !m.tool_name.empty()) message["tool_name"] = m.tool_name;
    messages.push_back(std::move(message));
  }
  // Ollama streams unless told otherwise.
  Json body = {
      {"model", request.model}, {"messages", std::move(messages)}, {"stream", request.stream}};
  if (!request.tools.empty()) {
    Json tools = Json::array();
    for (const ToolSpec& tool : request.tools) {
      tools.push_back({{"type", "function"},
                       {"function",
                        {{"name", tool.name},
                         {"description", tool.description},
                         {"parameters", tool.parameters}}}});
    }
    body["tools"] = std::move(tools);
  }
  Json options = {{"num_predict", request.max_tokens}};
  if (request.temperature) options["temperature"] = *request.temperature;
  body["options"] = std::move(options);
  return body;
}

Result<ChatResponse> ollama_parse_reply(std::string_view provider, const Json& reply) {
  if (!reply.is_object()) return absl::InternalError(cat(provider, ": the reply is not an object"));
  if (Status s = error_line(provider, reply); !s.ok()) return s;
  if (!reply.contains("message"))
    return absl::InternalError(cat(provider, ": the reply has no message"));
  ChatResponse response;
  int calls = 0;
  const Json& message = reply["message"];
  if (message.is_object()) response.text = message.value("content", "");
  read_message(reply, response, calls);
  read_done(reply, response);
  return response;
}

Result<ChatResponse> OllamaProvider::chat(const ChatRequest& request,
                                          const StreamCallback& on_text) {
  if (!key_.ok()) return key_.status();
  ProviderCall call;
  call.options = &options_.http;
  call.api_key = *key_;
  call.http.url = join_url(options_.http.base_url, "api/chat");
  call.http.body = ollama_request_body(request).dump();
  call.http.headers = {{"content-type", "application/json"}};
  if (!key_->empty()) call.http.headers.emplace_back("authorization", cat("Bearer ", *key_));
  for (const auto& [k, v] : options_.http.extra_headers) call.http.headers.emplace_back(k, v);
  call.http.connect_timeout = options_.http.connect_timeout;
  call.http.total_timeout = options_.http.request_timeout;
  call.http.idle_timeout = options_.http.idle_timeout;
  call.http.cancel = request.cancel;
  std::string provider = options_.http.name;
  if (request.stream) {
    call.make_decoder = [&provider, &on_text]() -> std::unique_ptr<ReplyDecoder> {
      return std::make_unique<StreamDecoder>(provider, &on_text);
    };
  } else {
    call.make_decoder = [&provider]() -> std::unique_ptr<ReplyDecoder> {
      return std::make_unique<BufferedDecoder>(provider);
    };
  }
  auto response = call_with_retries(client_, call);
  if (response.ok() && response->model.empty()) response->model = request.model;
  return response;
}

}  // namespace lotus::llm
