// ApiService: the REST endpoints of the daemon, answered from the nucleus.
//
//   GET  /health                          health (no token: monitors and the CLI probe it;
//                                         at most 100 ms old, so probes stay cheap)
//   GET  /metrics                         Prometheus text
//   GET  /api/openapi.json                this API, described
//   GET  /api/modules                     modules with state, health, dependencies
//   POST /api/modules                     load {"name": "..."} (a name or a folder)
//   POST /api/modules/{name}/unload|reload
//   GET  /api/tools                       every tool as models see it
//   POST /api/tools/{tool}/call           {"arguments": {...}} through the permission policy
//   GET  /api/approvals                   tool calls waiting for a person
//   POST /api/approvals/{id}              {"approved": bool, "reason": "..."}
//   POST /api/conversations/{id}/messages {"text": "...", "wait": true}
//   GET  /api/conversations/{id}          the conversation's messages
//   POST /api/memory                      remember {"content": ..., "type": ...}
//   POST /api/memory/search               recall {"query": ..., "limit": n}
//   POST /api/memory/forget               {"id": ...} or {"filter": {...}}
//   GET  /api/memory/stats                counts per tier, index, embedder
//   POST /api/events                      publish {"channel": ..., "data": {...}}
//   GET  /api/events (WebSocket)          live events, ?pattern=&filter=
//   POST|GET|DELETE /mcp                  MCP over Streamable HTTP (McpEndpoint)
//   GET  /, /ui/...                       the web UI
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include <boost/asio/thread_pool.hpp>

#include "api/mcp_endpoint.h"
#include "api/router.h"
#include "core/nucleus.h"

namespace lotus::api {

class HttpServer;

class ApiService {
 public:
  explicit ApiService(Nucleus& nucleus);
  ~ApiService();

  // Every route, ready for the server.
  Router routes();
  // Counters of the server for /metrics (set once it exists).
  void attach(const HttpServer* server) { server_ = server; }

 private:
  using Awaitable = boost::asio::awaitable<HttpResponse>;
  Awaitable health(const RequestContext& c);
  Awaitable metrics(const RequestContext& c);
  Awaitable openapi(const RequestContext& c);
  Awaitable list_modules(const RequestContext& c);
  Awaitable load_module(const RequestContext& c);
  Awaitable unload_module(const RequestContext& c);
  Awaitable reload_module(const RequestContext& c);
  Awaitable list_tools(const RequestContext& c);
  Awaitable call_tool(const RequestContext& c);
  Awaitable list_approvals(const RequestContext& c);
  Awaitable answer_approval(const RequestContext& c);
  Awaitable send_message(const RequestContext& c);
  Awaitable conversation(const RequestContext& c);
  Awaitable remember(const RequestContext& c);
  Awaitable recall(const RequestContext& c);
  Awaitable forget(const RequestContext& c);
  Awaitable memory_stats(const RequestContext& c);
  Awaitable publish(const RequestContext& c);
  Awaitable ui_asset(const RequestContext& c);

  // Runs a module control operation (they wait for modules) off the
  // server's threads.
  Awaitable control(std::function<Status()> operation, std::string module, std::string done);
  // A request/reply on the bus with the answer's {"ok": false, "error"} made
  // an HTTP error.
  Awaitable bus_request(std::string channel, Json data, std::chrono::milliseconds timeout);

  // The serialized health document, rebuilt when older than kHealthMaxAge:
  // building it visits every module, and monitors poll it hard.
  std::shared_ptr<const std::string> health_body();

  Nucleus& nucleus_;
  const HttpServer* server_ = nullptr;
  std::mutex health_mutex_;
  std::shared_ptr<const std::string> health_body_;
  std::chrono::steady_clock::time_point health_built_;
  std::vector<RouteSpec> specs_;  // for the OpenAPI description
  boost::asio::thread_pool blocking_{2};
  McpEndpoint mcp_;
};

}  // namespace lotus::api
