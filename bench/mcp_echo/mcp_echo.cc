// The benchmark's echo tool: returns its text, so an MCP tools/call round
// trip measures the transport and the tool path, not the tool.
#include "lotus/module.h"

class McpEcho : public lotus::Module {
 public:
  lotus::Task<void> initialize() override {
    tool("echo", &McpEcho::echo);
    co_return;
  }

 private:
  lotus::Task<lotus::ToolResult> echo(const lotus::Json& args) {
    co_return lotus::Json(args.value("text", std::string()));
  }
};

LOTUS_MODULE(McpEcho)
