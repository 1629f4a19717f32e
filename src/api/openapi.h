// openapi_document: the OpenAPI 3.1 description of the daemon's API, made
// from the routes themselves so it cannot drift from what is served.
#pragma once

#include <string_view>
#include <vector>

#include "api/router.h"

namespace lotus::api {

Json openapi_document(const std::vector<RouteSpec>& routes, std::string_view version);

}  // namespace lotus::api
