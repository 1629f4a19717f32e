#include "llm/openai_provider.h"

#include <map>
#include <memory>
#include <utility>

#include "llm/stream_parsers.h"
#include "lotus/strings.h"

namespace lotus::llm {
namespace {

StopReason stop_reason_of(std::string_view raw) {
  if (raw == "stop") return StopReason::kEndTurn;
  if (raw == "tool_calls" || raw == "function_call") return StopReason::kToolUse;
  if (raw == "length") return StopReason::kMaxTokens;
  return StopReason::kOther;
}

// Arguments arrive as a JSON text; keep the raw text if it is malformed.
Json arguments_of(const Json& value) {
  if (value.is_object()) return value;
  if (!value.is_string()) return Json::object();
  const std::string& text = value.get_ref<const std::string&>();
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) return Json::object();
  Json doc = Json::parse(text, nullptr, false);
  if (doc.is_discarded()) return Json(text);
  return doc;
}

void read_usage(const Json& usage, TokenUsage& out) {
  if (!usage.is_object()) return;
  out.input_tokens = usage.value("prompt_tokens", out.input_tokens);
  out.output_tokens = usage.value("completion_tokens", out.output_tokens);
}

Status error_in_reply(std::string_view provider, const Json& error) {
  std::string text = error.is_string()
                         ? error.get<std::string>()
                         : cat(error.value("type", "error"), ": ", error.value("message", ""));
  return absl::InternalError(cat(provider, ": error in the reply: ", text));
}

class BufferedDecoder : public ReplyDecoder {
 public:
  BufferedDecoder(std::string_view provider, const ToolNameMap* names)
      : provider_(provider), names_(names) {}
  Status feed(std::string_view bytes) override {
    body_.append(bytes);
    return absl::OkStatus();
  }
  Result<ChatResponse> finish() override {
    auto doc = parse_json(provider_, "the reply", body_);
    if (!doc.ok()) return doc.status();
    auto response = openai_parse_reply(*doc, *names_);
    if (!response.ok()) {
      return Status(response.status().code(), cat(provider_, ": ", message_of(response.status())));
    }
    return response;
  }

 private:
  std::string provider_;
  const ToolNameMap* names_;
  std::string body_;
};

class StreamDecoder : public ReplyDecoder {
 public:
  StreamDecoder(std::string_view provider, const ToolNameMap* names, const StreamCallback* on_text)
      : provider_(provider),
        names_(names),
        on_text_(on_text),
        parser_([this](const SseEvent& event) { return on_event(event); }) {}

  Status feed(std::string_view bytes) override { return parser_.feed(bytes); }

  Result<ChatResponse> finish() override {
    // Some compatible servers omit [DONE]; a finish_reason still proves the
    // reply complete.
    if (!done_ && !finished_) {
      return absl::UnavailableError(
          cat(provider_, ": the stream ended before [DONE] (connection cut mid-reply)"));
    }
    for (auto& [index, call] : calls_) {
      response_.tool_calls.push_back(ToolCall{call.id.empty() ? cat("call_", index) : call.id,
                                              names_->from_wire(call.name),
                                              arguments_of(Json(call.arguments))});
    }
    return std::move(response_);
  }

  bool emitted() const override { return emitted_; }

 private:
  struct PartialCall {
    std::string id, name, arguments;
  };

  Status on_event(const SseEvent& event) {
    if (event.data == "[DONE]") {
      done_ = true;
      return absl::OkStatus();
    }
    if (event.data.empty()) return absl::OkStatus();
    auto doc = parse_json(provider_, "a stream chunk", event.data);
    if (!doc.ok()) return doc.status();
    const Json& chunk = *doc;
    if (!chunk.is_object()) return absl::OkStatus();
    if (auto error = chunk.find("error"); error != chunk.end() && !error->is_null()) {
      return error_in_reply(provider_, *error);
    }
    if (response_.model.empty()) response_.model = chunk.value("model", "");
    if (auto usage = chunk.find("usage"); usage != chunk.end()) read_usage(*usage, response_.usage);
    auto choices = chunk.find("choices");
    if (choices == chunk.end() || !choices->is_array() || choices->empty()) {
      return absl::OkStatus();
    }
    const Json& choice = choices->front();
    if (!choice.is_object()) return absl::OkStatus();
    if (auto delta = choice.find("delta"); delta != choice.end() && delta->is_object()) {
      if (auto content = delta->find("content"); content != delta->end() && content->is_string()) {
        const std::string& text = content->get_ref<const std::string&>();
        response_.text += text;
        if (!text.empty()) {
          emitted_ = true;
          if (*on_text_) (*on_text_)(text);
        }
      }
      if (auto calls = delta->find("tool_calls"); calls != delta->end() && calls->is_array()) {
        for (const Json& part : *calls) {
          if (!part.is_object()) continue;
          PartialCall& call = calls_[part.value("index", 0)];
          if (auto id = part.find("id"); id != part.end() && id->is_string()) {
            call.id = id->get<std::string>();
          }
          const Json& function = part.value("function", Json::object());
          if (!function.is_object()) continue;
          if (auto n = function.find("name"); n != function.end() && n->is_string()) {
            call.name += n->get<std::string>();
          }
          if (auto a = function.find("arguments"); a != function.end()) {
            if (a->is_string()) {
              call.arguments += a->get<std::string>();
            } else if (a->is_object()) {
              call.arguments = a->dump();
            }
          }
        }
      }
    }
    if (auto reason = choice.find("finish_reason"); reason != choice.end() && reason->is_string()) {
      response_.raw_stop_reason = reason->get<std::string>();
      response_.stop_reason = stop_reason_of(response_.raw_stop_reason);
      finished_ = true;
    }
    return absl::OkStatus();
  }

  std::string provider_;
  const ToolNameMap* names_;
  const StreamCallback* on_text_;
  SseParser parser_;
  std::map<int, PartialCall> calls_;
  ChatResponse response_;
  bool done_ = false;
  bool finished_ = false;
  bool emitted_ = false;
};

}  // namespace

OpenAiOptions OpenAiOptions::defaults() {
  OpenAiOptions options;
  options.http.name = "openai";
  options.http.base_url = "https://api.openai.com/v1";
  options.http.key.env_var = "OPENAI_API_KEY";
  return options;
}

OpenAiProvider::OpenAiProvider(OpenAiOptions options)
    : options_(std::move(options)),
      key_(resolve_api_key(options_.http.name, options_.http.key, options_.http.env)) {}

ProbeReport OpenAiProvider::probe(std::chrono::milliseconds timeout) const {
  ModelListProbe probe;
  probe.options = &options_.http;
  probe.key = &key_;
  probe.path = "models";
  // A compatible server without a key is asked without one.
  if (key_.ok() && !key_->empty()) probe.headers = {{"authorization", cat("Bearer ", *key_)}};
  probe.list_models = openai_model_ids;
  return probe_model_list(probe, timeout);
}

std::optional<std::vector<std::string>> openai_model_ids(const Json& reply) {
  std::vector<std::string> ids;
  for (const Json& model : reply.at("data")) ids.push_back(model.at("id").get<std::string>());
  return ids;
}

Json openai_request_body(const ChatRequest& request, const ToolNameMap& names,
                         const OpenAiOptions& options) {
  Json messages = Json::array();
  for (const ChatMessage& m : request.messages) {
    Json message = {{"role", to_string(m.role)}};
    switch (m.role) {
      case ChatRole::kSystem:
      case ChatRole::kUser:
        message["content"] = m.text;
        break;
      case ChatRole::kAssistant: {
        message["content"] = m.text.empty() && !m.tool_calls.empty() ? Json() : Json(m.text);
        if (!m.tool_calls.empty()) {
          Json calls = Json::array();
          for (const ToolCall& call : m.tool_calls) {
            calls.push_back(
                {{"id", call.id},
                 {"type", "function"},
                 {"function",
                  {{"name", names.to_wire(call.name)},
                   {"arguments", call.arguments.is_string() ? call.arguments.get<std::string>()
                                                            : call.arguments.dump()}}}});
          }
          message["tool_calls"] = std::move(calls);
        }
        break;
      }
      case ChatRole::kTool:
        message["tool_call_id"] = m.tool_call_id;
        message["content"] = m.text;
        break;
    }
    messages.push_back(std::move(message));
  }
  Json body = {{"model", request.model}, {"messages", std::move(messages)}};
  body[options.max_tokens_field] = request.max_tokens;
  if (!request.tools.empty()) {
    Json tools = Json::array();
    for (const ToolSpec& tool : request.tools) {
      tools.push_back({{"type", "function"},
                       {"function",
                        {{"name", names.to_wire(tool.name)},
                         {"description", tool.description},
                         {"parameters", tool.parameters}}}});
    }
    body["tools"] = std::move(tools);
  }
  if (request.temperature) body["temperature"] = *request.temperature;
  if (request.stream) {
    body["stream"] = true;
    if (options.stream_usage) body["stream_options"] = {{"include_usage", true}};
  }
  return body;
}

Result<ChatResponse> openai_parse_reply(const Json& reply, const ToolNameMap& names) {
  if (!reply.is_object()) return absl::InternalError("the reply is not a JSON object");
  if (auto error = reply.find("error"); error != reply.end() && !error->is_null()) {
    return error_in_reply("reply", *error);
  }
  auto choices = reply.find("choices");
  if (choices == reply.end() || !choices->is_array() || choices->empty() ||
      !choices->front().is_object()) {
    return absl::InternalError("the reply has no choices");
  }
  const Json& choice = choices->front();
  const Json& message = choice.value("message", Json::object());
  ChatResponse response;
  response.model = reply.value("model", "");
  if (auto content = message.find("content"); content != message.end() && content->is_string()) {
    response.text = content->get<std::string>();
  }
  if (auto calls = message.find("tool_calls"); calls != message.end() && calls->is_array()) {
    int n = 0;
    for (const Json& call : *calls) {
      if (!call.is_object()) continue;
      const Json& function = call.value("function", Json::object());
      std::string id = call.value("id", "");
      response.tool_calls.push_back(ToolCall{id.empty() ? cat("call_", n) : id,
                                             names.from_wire(function.value("name", "")),
                                             arguments_of(function.value("arguments", Json()))});
      ++n;
    }
  }
  if (auto reason = choice.find("finish_reason"); reason != choice.end() && reason->is_string()) {
    response.raw_stop_reason = reason->get<std::string>();
    response.stop_reason = stop_reason_of(response.raw_stop_reason);
  }
  if (auto usage = reply.find("usage"); usage != reply.end()) read_usage(*usage, response.usage);
  return response;
}

Result<ChatResponse> OpenAiProvider::chat(const ChatRequest& request,
                                          const StreamCallback& on_text) {
  if (!key_.ok()) return key_.status();
  ToolNameMap names(request.tools);
  ProviderCall call;
  call.options = &options_.http;
  call.api_key = *key_;
  call.http.url = join_url(options_.http.base_url, "chat/completions");
  call.http.body = openai_request_body(request, names, options_).dump();
  call.http.headers = {{"content-type", "application/json"}};
  if (!key_->empty()) call.http.headers.emplace_back("authorization", cat("Bearer ", *key_));
  if (request.stream) call.http.headers.emplace_back("accept", "text/event-stream");
  for (const auto& [k, v] : options_.http.extra_headers) call.http.headers.emplace_back(k, v);
  call.http.connect_timeout = options_.http.connect_timeout;
  call.http.total_timeout = options_.http.request_timeout;
  call.http.idle_timeout = options_.http.idle_timeout;
  call.http.cancel = request.cancel;
  std::string provider = options_.http.name;
  if (request.stream) {
    call.make_decoder = [&provider, &names, &on_text]() -> std::unique_ptr<ReplyDecoder> {
      return std::make_unique<StreamDecoder>(provider, &names, &on_text);
    };
  } else {
    call.make_decoder = [&provider, &names]() -> std::unique_ptr<ReplyDecoder> {
      return std::make_unique<BufferedDecoder>(provider, &names);
    };
  }
  auto response = call_with_retries(client_, call);
  if (response.ok() && response->model.empty()) response->model = request.model;
  return response;
}

}  // namespace lotus::llm
