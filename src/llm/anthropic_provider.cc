#include "llm/anthropic_provider.h"

#include <map>
#include <memory>
#include <utility>

#include "llm/stream_parsers.h"
#include "lotus/strings.h"

namespace lotus::llm {
namespace {

constexpr std::string_view kProvider = "anthropic";

StopReason stop_reason_of(std::string_view raw) {
  if (raw == "end_turn") return StopReason::kEndTurn;
  if (raw == "tool_use") return StopReason::kToolUse;
  if (raw == "max_tokens") return StopReason::kMaxTokens;
  if (raw == "stop_sequence") return StopReason::kStopSequence;
  return StopReason::kOther;
}

// Tool input as the model wrote it: an object, or the raw text if malformed.
Json tool_input(const std::string& text) {
  if (text.empty()) return Json::object();
  Json doc = Json::parse(text, nullptr, false);
  if (doc.is_discarded()) return Json(text);
  return doc;
}

Status stream_error(const Json& error) {
  std::string type = error.value("type", "error");
  std::string text =
      cat("anthropic: error in the stream: ", type, ": ", error.value("message", ""));
  if (type == "overloaded_error" || type == "api_error") return absl::UnavailableError(text);
  if (type == "rate_limit_error") return absl::ResourceExhaustedError(text);
  return absl::InternalError(text);
}

class BufferedDecoder : public ReplyDecoder {
 public:
  explicit BufferedDecoder(const ToolNameMap* names) : names_(names) {}
  Status feed(std::string_view bytes) override {
    body_.append(bytes);
    return absl::OkStatus();
  }
  Result<ChatResponse> finish() override {
    auto doc = parse_json(kProvider, "the reply", body_);
    if (!doc.ok()) return doc.status();
    return anthropic_parse_reply(*doc, *names_);
  }

 private:
  const ToolNameMap* names_;
  std::string body_;
};

class StreamDecoder : public ReplyDecoder {
 public:
  StreamDecoder(const ToolNameMap* names, const StreamCallback* on_text)
      : names_(names),
        on_text_(on_text),
        parser_([this](const SseEvent& event) { return on_event(event); }) {}

  Status feed(std::string_view bytes) override { return parser_.feed(bytes); }

  Result<ChatResponse> finish() override {
    if (!stopped_) {
      return absl::UnavailableError(
          "anthropic: the stream ended before message_stop (connection cut mid-reply)");
    }
    ChatResponse response = std::move(response_);
    for (auto& [index, block] : blocks_) {
      if (block.is_tool) {
        response.tool_calls.push_back(
            ToolCall{block.id, names_->from_wire(block.name), tool_input(block.json)});
      } else {
        response.text += block.text;
      }
    }
    return response;
  }

  bool emitted() const override { return emitted_; }

 private:
  struct Block {
    bool is_tool = false;
    std::string text, id, name, json;
  };

  Status on_event(const SseEvent& event) {
    if (event.data.empty()) return absl::OkStatus();
    auto doc = parse_json(kProvider, cat("the stream event ", event.event), event.data);
    if (!doc.ok()) return doc.status();
    const Json& data = *doc;
    if (!data.is_object()) return absl::OkStatus();
    std::string type = data.value("type", event.event);
    if (type == "message_start") {
      const Json& message = data.value("message", Json::object());
      response_.model = message.value("model", "");
      read_usage(message.value("usage", Json::object()));
    } else if (type == "content_block_start") {
      const Json& content = data.value("content_block", Json::object());
      Block& block = blocks_[data.value("index", 0)];
      block.is_tool = content.value("type", "") == "tool_use";
      block.id = content.value("id", "");
      block.name = content.value("name", "");
      if (!block.is_tool) block.text = content.value("text", "");
      if (!block.text.empty()) emit(block.text);
    } else if (type == "content_block_delta") {
      const Json& delta = data.value("delta", Json::object());
      Block& block = blocks_[data.value("index", 0)];
      std::string delta_type = delta.value("type", "");
      if (delta_type == "text_delta") {
        std::string text = delta.value("text", "");
        block.text += text;
        emit(text);
      } else if (delta_type == "input_json_delta") {
        block.json += delta.value("partial_json", "");
      }
    } else if (type == "message_delta") {
      const Json& delta = data.value("delta", Json::object());
      if (auto r = delta.find("stop_reason"); r != delta.end() && r->is_string()) {
        response_.raw_stop_reason = r->get<std::string>();
        response_.stop_reason = stop_reason_of(response_.raw_stop_reason);
      }
      read_usage(data.value("usage", Json::object()));
    } else if (type == "message_stop") {
      stopped_ = true;
    } else if (type == "error") {
      return stream_error(data.value("error", Json::object()));
    }
    return absl::OkStatus();
  }

  // message_delta usage is cumulative: later values replace earlier ones.
  void read_usage(const Json& usage) {
    if (!usage.is_object()) return;
    if (auto v = usage.find("input_tokens"); v != usage.end() && v->is_number_integer()) {
      response_.usage.input_tokens = v->get<int64_t>();
    }
    if (auto v = usage.find("output_tokens"); v != usage.end() && v->is_number_integer()) {
      response_.usage.output_tokens = v->get<int64_t>();
    }
  }

  void emit(std::string_view text) {
    if (text.empty()) return;
    emitted_ = true;
    if (*on_text_) (*on_text_)(text);
  }

  const ToolNameMap* names_;
  const StreamCallback* on_text_;
  SseParser parser_;
  std::map<int, Block> blocks_;
  ChatResponse response_;
  bool stopped_ = false;
  bool emitted_ = false;
};

}  // namespace

AnthropicOptions AnthropicOptions::defaults() {
  AnthropicOptions options;
  options.http.name = "anthropic";
  options.http.base_url = "https://api.anthropic.com";
  options.http.key.env_var = "ANTHROPIC_API_KEY";
  return options;
}

AnthropicProvider::AnthropicProvider(AnthropicOptions options)
    : options_(std::move(options)),
      key_(resolve_api_key(options_.http.name, options_.http.key, options_.http.env)) {}

ProbeReport AnthropicProvider::probe(std::chrono::milliseconds timeout) const {
  ModelListProbe probe;
  probe.options = &options_.http;
  probe.key = &key_;
  probe.path = "v1/models?limit=1000";  // the largest page the API serves
  if (key_.ok()) {
    probe.headers = {{"x-api-key", *key_}, {"anthropic-version", options_.api_version}};
  }
  probe.list_models = anthropic_model_ids;
  return probe_model_list(probe, timeout);
}

std::optional<std::vector<std::string>> anthropic_model_ids(const Json& reply) {
  if (reply.value("has_more", false)) return std::nullopt;
  std::vector<std::string> ids;
  for (const Json& model : reply.at("data")) ids.push_back(model.at("id").get<std::string>());
  return ids;
}

Json anthropic_request_body(const ChatRequest& request, const ToolNameMap& names) {
  Json body = {{"model", request.model}, {"max_tokens", request.max_tokens}};
  std::string system;
  Json messages = Json::array();
  // Consecutive turns of one role are merged: the API wants them alternating.
  auto append = [&messages](std::string_view role, Json blocks) {
    if (blocks.empty()) return;
    if (!messages.empty() && messages.back()["role"] == role) {
      for (auto& b : blocks) messages.back()["content"].push_back(std::move(b));
    } else {
      messages.push_back({{"role", role}, {"content", std::move(blocks)}});
    }
  };
  for (const ChatMessage& m : request.messages) {
    switch (m.role) {
      case ChatRole::kSystem:
        if (!system.empty()) system += "\n\n";
        system += m.text;
        break;
      case ChatRole::kUser:
        append("user", Json::array({{{"type", "text"}, {"text", m.text}}}));
        break;
      case ChatRole::kAssistant: {
        Json blocks = Json::array();
        if (!m.text.empty()) blocks.push_back({{"type", "text"}, {"text", m.text}});
        for (const ToolCall& call : m.tool_calls) {
          blocks.push_back(
              {{"type", "tool_use"},
               {"id", call.id},
               {"name", names.to_wire(call.name)},
               {"input", call.arguments.is_object() ? call.arguments : Json::object()}});
        }
        append("assistant", std::move(blocks));
        break;
      }
      case ChatRole::kTool: {
        Json block = {
            {"type", "tool_result"}, {"tool_use_id", m.tool_call_id}, {"content", m.text}};
        if (m.is_error) block["is_error"] = true;
        append("user", Json::array({std::move(block)}));
        break;
      }
    }
  }
  if (!system.empty()) body["system"] = system;
  body["messages"] = std::move(messages);
  if (!request.tools.empty()) {
    Json tools = Json::array();
    for (const ToolSpec& tool : request.tools) {
      tools.push_back({{"name", names.to_wire(tool.name)},
                       {"description", tool.description},
                       {"input_schema", tool.parameters}});
    }
    body["tools"] = std::move(tools);
  }
  if (request.temperature) body["temperature"] = *request.temperature;
  if (request.stream) body["stream"] = true;
  return body;
}

Result<ChatResponse> anthropic_parse_reply(const Json& reply, const ToolNameMap& names) {
  if (!reply.is_object()) return absl::InternalError("anthropic: the reply is not a JSON object");
  if (reply.value("type", "") == "error") return stream_error(reply.value("error", Json::object()));
  auto content = reply.find("content");
  if (content == reply.end() || !content->is_array()) {
    return absl::InternalError("anthropic: the reply has no content array");
  }
  ChatResponse response;
  response.model = reply.value("model", "");
  for (const Json& block : *content) {
    if (!block.is_object()) continue;
    std::string type = block.value("type", "");
    if (type == "text") {
      response.text += block.value("text", "");
    } else if (type == "tool_use") {
      response.tool_calls.push_back(ToolCall{block.value("id", ""),
                                             names.from_wire(block.value("name", "")),
                                             block.value("input", Json::object())});
    }
  }
  if (auto r = reply.find("stop_reason"); r != reply.end() && r->is_string()) {
    response.raw_stop_reason = r->get<std::string>();
    response.stop_reason = stop_reason_of(response.raw_stop_reason);
  }
  const Json& usage = reply.value("usage", Json::object());
  if (usage.is_object()) {
    response.usage.input_tokens = usage.value("input_tokens", int64_t{0});
    response.usage.output_tokens = usage.value("output_tokens", int64_t{0});
  }
  return response;
}

Result<ChatResponse> AnthropicProvider::chat(const ChatRequest& request,
                                             const StreamCallback& on_text) {
  if (!key_.ok()) return key_.status();
  ToolNameMap names(request.tools);
  ProviderCall call;
  call.options = &options_.http;
  call.api_key = *key_;
  call.http.url = join_url(options_.http.base_url, "v1/messages");
  call.http.body = anthropic_request_body(request, names).dump();
  call.http.headers = {{"content-type", "application/json"},
                       {"x-api-key", *key_},
                       {"anthropic-version", options_.api_version}};
  if (request.stream) call.http.headers.emplace_back("accept", "text/event-stream");
  for (const auto& [k, v] : options_.http.extra_headers) call.http.headers.emplace_back(k, v);
  call.http.connect_timeout = options_.http.connect_timeout;
  call.http.total_timeout = options_.http.request_timeout;
  call.http.idle_timeout = options_.http.idle_timeout;
  call.http.cancel = request.cancel;
  if (request.stream) {
    call.make_decoder = [&names, &on_text]() -> std::unique_ptr<ReplyDecoder> {
      return std::make_unique<StreamDecoder>(&names, &on_text);
    };
  } else {
    call.make_decoder = [&names]() -> std::unique_ptr<ReplyDecoder> {
      return std::make_unique<BufferedDecoder>(&names);
    };
  }
  auto response = call_with_retries(client_, call);
  if (response.ok() && response->model.empty()) response->model = request.model;
  return response;
}

}  // namespace lotus::llm
