// McpEndpoint: MCP's Streamable HTTP transport on the daemon (/mcp).
//
// Every session is an McpServer, the same session `lotus mcp` runs on stdio;
// this file only carries its messages over HTTP: POST hands it one message
// and answers with the reply as JSON, or as an SSE stream when notifications
// (progress, logs) come first; GET opens the session's own SSE stream
// (notifications/tools/list_changed and other unsolicited messages); DELETE
// ends the session. Sessions are named by Mcp-Session-Id and expire when idle.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "api/router.h"
#include "core/nucleus.h"
#include "mcp/mcp_server.h"

namespace lotus::api {

struct McpEndpointOptions {
  std::string path = "/mcp";
  // A session nobody used for this long (and with no open stream) is ended.
  std::chrono::seconds idle_timeout{30 * 60};
  size_t max_sessions = 1024;
  // An SSE stream with nothing to say sends a comment this often, so a
  // client that went away is noticed.
  std::chrono::milliseconds keepalive{15'000};
};

namespace mcp_http {
class Session;
}

class McpEndpoint {
 public:
  explicit McpEndpoint(Nucleus& nucleus, McpEndpointOptions options = {});
  ~McpEndpoint();
  McpEndpoint(const McpEndpoint&) = delete;
  McpEndpoint& operator=(const McpEndpoint&) = delete;

  // Adds POST, GET and DELETE on the endpoint's path; returns their specs
  // (for the API description).
  std::vector<RouteSpec> add_routes(Router& router);

  size_t session_count() const;

 private:
  boost::asio::awaitable<void> post(const RequestContext& c, ResponseWriter& out);
  boost::asio::awaitable<void> get(const RequestContext& c, ResponseWriter& out);
  boost::asio::awaitable<void> remove(const RequestContext& c, ResponseWriter& out);

  // The session a request names, or the error response to send instead
  // (400 without the header, 404 for an unknown or expired session, 400 for
  // an unsupported MCP-Protocol-Version).
  std::shared_ptr<mcp_http::Session> session_of(const HttpRequest& request, HttpResponse* refusal);
  Result<std::shared_ptr<mcp_http::Session>> create_session();
  // Names the session in the reply to its initialize, or ends it when
  // initialize failed.
  void name_session(mcp_http::Session& session, HttpResponse& response);
  void drop_expired();

  Nucleus& nucleus_;
  McpEndpointOptions options_;
  std::shared_ptr<mcp::McpContent> content_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<mcp_http::Session>, std::less<>> sessions_;
};

}  // namespace lotus::api
