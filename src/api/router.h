// Router: maps a method and a path like "/api/modules/{name}/reload" to the
// handler that answers it. An unknown path is a 404; a known path with
// another method a 405 that lists the methods it has (Allow).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "api/http_types.h"
#include "api/response_writer.h"
#include "llm/json_schema.h"

namespace lotus::api {

using PathParams = std::map<std::string, std::string, std::less<>>;

// What a handler sees: the request, its decoded path parameters and query,
// and the body parsed and checked against the route's schema (null when the
// route declares none).
struct RequestContext {
  const HttpRequest& request;
  PathParams params;
  std::map<std::string, std::string> query;
  Json body;

  const std::string& param(std::string_view name) const;
};

using RouteHandler = std::function<boost::asio::awaitable<HttpResponse>(const RequestContext&)>;
// A route that writes its own answer (streams, or answers long after the
// request): it gets the request and a writer, and must write exactly one
// response through it.
using StreamRouteHandler =
    std::function<boost::asio::awaitable<void>(const RequestContext&, ResponseWriter&)>;

// What a route is, as the OpenAPI description shows it.
struct RouteSpec {
  http::verb method = http::verb::get;
  std::string pattern;  // "/api/modules/{name}/reload"
  std::string summary;
  bool needs_token = true;
  Json body_schema;  // JSON Schema of a JSON body; null = no body
  std::string produces = "application/json";
};

struct Route {
  RouteSpec spec;
  std::vector<std::string> segments;
  std::shared_ptr<const llm::JsonSchema> body_schema;
  RouteHandler handler;
  StreamRouteHandler stream_handler;  // set instead of handler for streaming routes
};

class Router {
 public:
  // Throws std::invalid_argument on a body schema that does not compile (a
  // programming error, caught by the API tests).
  void add(RouteSpec spec, RouteHandler handler);
  // A streaming route (no body schema: it reads the body itself).
  void add_stream(RouteSpec spec, StreamRouteHandler handler);

  struct Match {
    const Route* route = nullptr;  // null: see status
    PathParams params;
    http::status status = http::status::ok;  // not_found or method_not_allowed
    std::string allow;                       // for 405
  };
  Match find(http::verb method, std::string_view path) const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

}  // namespace lotus::api
