// render_prometheus: the nucleus's health figures and the API server's
// counters in the Prometheus text exposition format (version 0.0.4), so any
// Prometheus-compatible scraper can chart LOTUS.
#pragma once

#include <string>

#include "lotus/event.h"

namespace lotus::api {

class HttpServer;

// `health` is Nucleus::health(); `server` may be null.
std::string render_prometheus(const Json& health, const HttpServer* server);

// A label value with backslash, double quote and newline escaped.
std::string escape_label(std::string_view value);

}  // namespace lotus::api
