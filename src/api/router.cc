#include "api/router.h"

#include <stdexcept>

#include "lotus/strings.h"

namespace lotus::api {
namespace {

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  size_t start = 1;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    out.emplace_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  if (!out.empty() && out.back().empty()) out.pop_back();  // "/a/" is "/a"
  return out;
}

bool matches(const Route& route, const std::vector<std::string>& segments, PathParams& params) {
  if (route.segments.size() != segments.size()) return false;
  PathParams found;
  for (size_t i = 0; i < segments.size(); ++i) {
    const std::string& want = route.segments[i];
    if (want.size() > 2 && want.front() == '{' && want.back() == '}') {
      if (segments[i].empty()) return false;
      found[want.substr(1, want.size() - 2)] = segments[i];
    } else if (want != segments[i]) {
      return false;
    }
  }
  params = std::move(found);
  return true;
}

}  // namespace

const std::string& RequestContext::param(std::string_view name) const {
  static const std::string kEmpty;
  auto it = params.find(name);
  return it == params.end() ? kEmpty : it->second;
}

void Router::add(RouteSpec spec, RouteHandler handler) {
  Route route;
  route.segments = split_path(spec.pattern);
  if (!spec.body_schema.is_null()) {
    auto compiled = llm::JsonSchema::compile(spec.body_schema);
    if (!compiled.ok()) {
      throw std::invalid_argument(
          cat("route ", spec.pattern, ": bad body schema: ", message_of(compiled.status())));
    }
    route.body_schema = *std::move(compiled);
  }
  route.spec = std::move(spec);
  route.handler = std::move(handler);
  routes_.push_back(std::move(route));
}

void Router::add_stream(RouteSpec spec, StreamRouteHandler handler) {
  Route route;
  route.segments = split_path(spec.pattern);
  route.spec = std::move(spec);
  route.stream_handler = std::move(handler);
  routes_.push_back(std::move(route));
}

Router::Match Router::find(http::verb method, std::string_view path) const {
  Match match;
  const std::vector<std::string> segments = split_path(path);
  std::string allow;
  for (const Route& route : routes_) {
    PathParams params;
    if (!matches(route, segments, params)) continue;
    const http::verb want = route.spec.method;
    if (want == method || (method == http::verb::head && want == http::verb::get)) {
      match.route = &route;
      match.params = std::move(params);
      return match;
    }
    std::string name(http::to_string(want));
    if (allow.find(name) == std::string::npos) allow += (allow.empty() ? "" : ", ") + name;
  }
  match.status = allow.empty() ? http::status::not_found : http::status::method_not_allowed;
  match.allow = std::move(allow);
  return match;
}

}  // namespace lotus::api
