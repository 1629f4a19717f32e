// JSON-RPC 2.0 framing for MCP: classifies one incoming message (request,
// notification, response) or says which error it deserves, and builds the
// messages LOTUS sends. Transport-agnostic: stdio and HTTP hand it text.
#pragma once

#include <string>
#include <string_view>

#include "lotus/event.h"

namespace lotus::mcp {

// The codes JSON-RPC 2.0 and MCP specify.
enum RpcErrorCode : int {
  kParseError = -32700,
  kInvalidRequest = -32600,
  kMethodNotFound = -32601,
  kInvalidParams = -32602,
  kInternalError = -32603,
  kResourceNotFound = -32002,  // MCP: resources/read of a URI the server does not have
};

struct RpcError {
  int code = kInternalError;
  std::string message;
  Json data;  // null: left out
};

struct RpcMessage {
  enum class Kind { kRequest, kNotification, kResponse, kInvalid };
  Kind kind = Kind::kInvalid;
  Json id;  // string or integer for requests and responses; null when unknown
  std::string method;
  Json params = Json::object();  // always an object (absent params become {})
  Json result;                   // responses
  Json error;                    // error responses
  RpcError problem;              // kInvalid: what to answer (with `id`, null if unknown)
};

// Parses and checks one message. Never throws.
RpcMessage parse_message(std::string_view text);

// The JSON text of `value` (text that is not UTF-8 replaced). An integer,
// as most request ids are, is written without nlohmann's serializer, whose
// setup costs more than the digits.
std::string json_text(const Json& value);

std::string make_result(const Json& id, Json result);
// As make_result, with the result already written as JSON text.
std::string make_result_text(const Json& id, std::string_view result_json);
std::string make_error(const Json& id, const RpcError& error);
std::string make_notification(std::string_view method, Json params);
std::string make_request(const Json& id, std::string_view method, Json params);

}  // namespace lotus::mcp
