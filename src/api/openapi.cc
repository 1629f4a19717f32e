#include "api/openapi.h"

#include "lotus/strings.h"

namespace lotus::api {

Json openapi_document(const std::vector<RouteSpec>& routes, std::string_view version) {
  Json paths = Json::object();
  const Json error_schema = {{"type", "object"},
                             {"properties", {{"error", {{"type", "string"}}}}},
                             {"required", {"error"}}};
  for (const RouteSpec& route : routes) {
    Json operation = {{"summary", route.summary}};
    Json parameters = Json::array();
    size_t open = route.pattern.find('{');
    while (open != std::string::npos) {
      size_t close = route.pattern.find('}', open);
      parameters.push_back({{"name", route.pattern.substr(open + 1, close - open - 1)},
                            {"in", "path"},
                            {"required", true},
                            {"schema", {{"type", "string"}}}});
      open = route.pattern.find('{', close);
    }
    if (!parameters.empty()) operation["parameters"] = std::move(parameters);
    if (!route.body_schema.is_null()) {
      operation["requestBody"] = {
          {"required", true}, {"content", {{"application/json", {{"schema", route.body_schema}}}}}};
    }
    Json responses = {
        {"200", {{"description", "OK"}, {"content", {{route.produces, Json::object()}}}}},
        {"default",
         {{"description", "An error, with a message saying what was wrong"},
          {"content", {{"application/json", {{"schema", error_schema}}}}}}}};
    operation["responses"] = std::move(responses);
    if (!route.needs_token) operation["security"] = Json::array();
    std::string method(http::to_string(route.method));
    for (char& ch : method) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    paths[route.pattern][method] = std::move(operation);
  }
  paths["/api/events"]["get"] = {
      {"summary",
       "Live bus events over a WebSocket (one JSON event per text frame); ?pattern= (* one "
       "segment, ** any) and ?filter= (JSON). Browsers pass the token as subprotocol "
       "lotus.token.<token> beside lotus.events. A client that reads too slowly is closed "
       "with code 1008."},
      {"parameters",
       {{{"name", "pattern"}, {"in", "query"}, {"schema", {{"type", "string"}}}},
        {{"name", "filter"}, {"in", "query"}, {"schema", {{"type", "string"}}}}}},
      {"responses", {{"101", {{"description", "Switching to the WebSocket protocol"}}}}}};
  return Json{
      {"openapi", "3.1.0"},
      {"info",
       {{"title", "LOTUS API"},
        {"version", std::string(version)},
        {"description",
         "The LOTUS daemon (lotus serve). Every endpoint but /health and the UI's files needs "
         "the bearer token kept in the api-token file of the LOTUS config folder."}}},
      {"components", {{"securitySchemes", {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}}}}}},
      {"security", {{{"bearer", Json::array()}}}},
      {"paths", std::move(paths)},
  };
}

}  // namespace lotus::api
