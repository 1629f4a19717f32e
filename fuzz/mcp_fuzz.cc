// Fuzz target for the MCP server's input side: lotus::mcp::parse_message and
// McpServer::handle. Messages arrive from any MCP client over stdio or HTTP.
// Parsing must classify every input without throwing, and the server must
// answer with well-formed JSON-RPC only: one response per request it
// answers, errors with one of the specified codes.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bus/local_bus.h"
#include "fuzz_check.h"
#include "lotus/strings.h"
#include "mcp/mcp_server.h"

namespace {

struct Session {
  lotus::LocalBus bus{1};
  lotus::llm::ToolRegistry registry;
  std::vector<std::string> sent;
  std::shared_ptr<lotus::mcp::McpServer> server;
  Session() {
    lotus::mcp::McpServerOptions options;
    options.max_message_bytes = 4096;
    server = lotus::mcp::McpServer::create(bus, registry, nullptr, nullptr, options,
                                           [this](std::string m) { sent.push_back(std::move(m)); });
  }
};

bool known_code(int code) {
  for (int c : {-32700, -32600, -32601, -32602, -32603, -32002}) {
    if (c == code) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  lotus::mcp::RpcMessage message = lotus::mcp::parse_message(text);
  using Kind = lotus::mcp::RpcMessage::Kind;
  if (message.kind == Kind::kRequest || message.kind == Kind::kNotification) {
    FUZZ_CHECK(!message.method.empty(), text);
    FUZZ_CHECK(message.params.is_object(), text);
  }
  if (message.kind == Kind::kRequest) {
    FUZZ_CHECK(message.id.is_string() || message.id.is_number_integer(), text);
  }
  if (message.kind == Kind::kInvalid) FUZZ_CHECK(known_code(message.problem.code), text);

  // A fresh session each time (one per input keeps runs independent); the
  // first line initializes it when the input holds several.
  static Session* session = nullptr;
  delete session;
  session = new Session();
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    session->server->handle(text.substr(start, end - start));
    start = end + 1;
  }
  for (const std::string& out : session->sent) {
    lotus::Json reply = lotus::Json::parse(out, nullptr, false);
    FUZZ_CHECK(reply.is_object() && reply.value("jsonrpc", "") == "2.0", out);
    if (reply.contains("error")) {
      FUZZ_CHECK(known_code(reply["error"].value("code", 0)), out);
      FUZZ_CHECK(!reply["error"].value("message", std::string()).empty(), out);
    }
  }
  return 0;
}
