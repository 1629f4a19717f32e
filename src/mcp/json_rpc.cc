#include "mcp/json_rpc.h"

#include <charconv>

#include "lotus/strings.h"

namespace lotus::mcp {

namespace {

RpcMessage invalid(Json id, int code, std::string message) {
  RpcMessage m;
  m.kind = RpcMessage::Kind::kInvalid;
  m.id = std::move(id);
  m.problem = RpcError{code, std::move(message), Json()};
  return m;
}

bool valid_id(const Json& id) { return id.is_string() || id.is_number_integer(); }

}  // namespace

RpcMessage parse_message(std::string_view text) {
  Json doc = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return invalid(Json(), kParseError, "parse error: the message is not valid JSON");
  }
  if (doc.is_array()) {
    return invalid(Json(), kInvalidRequest,
                   "invalid request: batches are not supported; send one message at a time");
  }
  if (!doc.is_object()) {
    return invalid(Json(), kInvalidRequest, "invalid request: a message must be a JSON object");
  }
  Json id;
  bool has_id = false;
  if (auto it = doc.find("id"); it != doc.end()) {
    has_id = true;
    if (valid_id(*it)) id = *it;
  }
  auto version = doc.find("jsonrpc");
  if (version == doc.end() || *version != "2.0") {
    return invalid(id, kInvalidRequest, "invalid request: \"jsonrpc\" must be \"2.0\"");
  }
  if (has_id && id.is_null()) {
    return invalid(Json(), kInvalidRequest,
                   "invalid request: \"id\" must be a string or an integer (not null)");
  }
  auto method = doc.find("method");
  if (method == doc.end()) {
    bool has_result = doc.contains("result");
    bool has_error = doc.contains("error");
    if (has_id && has_result != has_error) {
      RpcMessage m;
      m.kind = RpcMessage::Kind::kResponse;
      m.id = id;
      if (has_result) m.result = doc["result"];
      if (has_error) m.error = doc["error"];
      return m;
    }
    return invalid(id, kInvalidRequest, "invalid request: no \"method\"");
  }
  if (!method->is_string() || method->get_ref<const std::string&>().empty()) {
    return invalid(id, kInvalidRequest, "invalid request: \"method\" must be a non-empty string");
  }
  RpcMessage m;
  m.kind = has_id ? RpcMessage::Kind::kRequest : RpcMessage::Kind::kNotification;
  m.id = id;
  m.method = method->get<std::string>();
  if (auto params = doc.find("params"); params != doc.end() && !params->is_null()) {
    if (!params->is_object()) {
      return invalid(id, kInvalidParams,
                     cat("invalid params for ", m.method, ": \"params\" must be an object"));
    }
    m.params = std::move(*params);
  }
  return m;
}

std::string json_text(const Json& value) {
  if (value.is_number_integer()) {
    char digits[24];
    auto end = value.is_number_unsigned()
                   ? std::to_chars(digits, digits + sizeof digits, value.get<uint64_t>()).ptr
                   : std::to_chars(digits, digits + sizeof digits, value.get<int64_t>()).ptr;
    return std::string(digits, end);
  }
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

namespace {

// A JSON-RPC message written out member by member, rather than built as a
// JSON object first: one tree less for each message sent.
class MessageText {
 public:
  MessageText() : text_(R"({"jsonrpc":"2.0")") {}
  MessageText& add(std::string_view key, const Json& value) {
    return add_text(key, json_text(value));
  }
  MessageText& add_text(std::string_view key, std::string_view json) {
    text_ += ",\"";
    text_ += key;
    text_ += "\":";
    text_ += json;
    return *this;
  }
  std::string done() {
    text_ += '}';
    return std::move(text_);
  }

 private:
  std::string text_;
};

}  // namespace

std::string make_result(const Json& id, Json result) {
  return MessageText().add("id", id).add("result", result).done();
}

std::string make_result_text(const Json& id, std::string_view result_json) {
  return MessageText().add("id", id).add_text("result", result_json).done();
}

std::string make_error(const Json& id, const RpcError& error) {
  Json e = {{"code", error.code}, {"message", error.message}};
  if (!error.data.is_null()) e["data"] = error.data;
  return MessageText().add("id", id).add("error", e).done();
}

std::string make_notification(std::string_view method, Json params) {
  return MessageText().add("method", Json(method)).add("params", params).done();
}

std::string make_request(const Json& id, std::string_view method, Json params) {
  return MessageText().add("id", id).add("method", Json(method)).add("params", params).done();
}

}  // namespace lotus::mcp
