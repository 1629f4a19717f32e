#include "api/prometheus.h"

#include "api/http_server.h"
#include "lotus/strings.h"

namespace lotus::api {
namespace {

class Exposition {
 public:
  // Starts a metric family: HELP and TYPE once, samples after.
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += cat("# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
  }
  void sample(std::string_view name, double value, std::string_view labels = {}) {
    out_ += cat(name, labels.empty() ? "" : "{", labels, labels.empty() ? "" : "}", " ",
                format(value), "\n");
  }
  std::string take() { return std::move(out_); }

 private:
  static std::string format(double value) {
    if (value == static_cast<double>(static_cast<int64_t>(value))) {
      return std::to_string(static_cast<int64_t>(value));
    }
    return cat(value);
  }
  std::string out_;
};

double number(const Json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_number() ? it->get<double>() : 0.0;
}

}  // namespace

std::string escape_label(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string render_prometheus(const Json& health, const HttpServer* server) {
  Exposition e;
  e.family("lotus_up", "gauge", "1 while the nucleus answers; 0 never appears (no answer)");
  e.sample("lotus_up", 1, cat("version=\"", escape_label(health.value("version", "")), "\""));
  e.family("lotus_healthy", "gauge", "1 when every module is running, 0 when degraded");
  e.sample("lotus_healthy", health.value("status", "") == "healthy" ? 1 : 0);
  e.family("lotus_uptime_seconds", "gauge", "Seconds since the nucleus started");
  e.sample("lotus_uptime_seconds", number(health, "uptime_seconds"));

  const Json& process = health.value("process", Json::object());
  e.family("lotus_process_resident_memory_bytes", "gauge", "Resident set size");
  e.sample("lotus_process_resident_memory_bytes", number(process, "rss_bytes"));
  e.family("lotus_process_cpu_seconds_total", "counter", "CPU time used, by mode");
  e.sample("lotus_process_cpu_seconds_total", number(process, "cpu_user_seconds"), "mode=\"user\"");
  e.sample("lotus_process_cpu_seconds_total", number(process, "cpu_system_seconds"),
           "mode=\"system\"");
  e.family("lotus_process_threads", "gauge", "Threads of the process");
  e.sample("lotus_process_threads", number(process, "threads"));

  const Json& bus = health.value("bus", Json::object());
  const std::string kind = cat("backend=\"", escape_label(bus.value("kind", "local")), "\"");
  for (const char* counter : {"published", "delivered", "unrouted", "filtered", "refused"}) {
    std::string name = cat("lotus_bus_", counter, "_total");
    e.family(name, "counter", cat("Events ", counter, " by the bus"));
    e.sample(name, number(bus, counter), kind);
  }
  e.family("lotus_bus_subscriptions", "gauge", "Subscriptions on the bus");
  e.sample("lotus_bus_subscriptions", number(bus, "subscriptions"), kind);

  const Json& modules = health.value("modules", Json::object());
  auto per_module = [&](std::string_view name, std::string_view type, std::string_view help,
                        auto value_of) {
    e.family(name, type, help);
    for (const auto& [module, h] : modules.items()) {
      e.sample(name, value_of(h), cat("module=\"", escape_label(module), "\""));
    }
  };
  per_module("lotus_module_running", "gauge", "1 when the module is running",
             [](const Json& h) { return h.value("state", "") == "running" ? 1.0 : 0.0; });
  per_module("lotus_module_events_handled_total", "counter", "Events the module handled",
             [](const Json& h) { return number(h, "events_handled"); });
  per_module("lotus_module_errors_total", "counter", "Handler errors",
             [](const Json& h) { return number(h, "errors"); });
  per_module("lotus_module_restarts_total", "counter", "Restarts by the supervisor",
             [](const Json& h) { return number(h, "restarts"); });
  per_module("lotus_module_mailbox_depth", "gauge", "Events waiting in the module's mailbox",
             [](const Json& h) { return number(h.value("mailbox", Json::object()), "depth"); });
  e.family("lotus_module_handler_latency_microseconds", "summary", "Handler latency per module");
  for (const auto& [module, h] : modules.items()) {
    const Json& latency = h.value("latency_us", Json::object());
    const std::string label = cat("module=\"", escape_label(module), "\"");
    e.sample("lotus_module_handler_latency_microseconds", number(latency, "p50"),
             cat(label, ",quantile=\"0.5\""));
    e.sample("lotus_module_handler_latency_microseconds", number(latency, "p99"),
             cat(label, ",quantile=\"0.99\""));
    e.sample("lotus_module_handler_latency_microseconds_count", number(latency, "count"), label);
  }

  const Json& tools = health.value("tools", Json::object());
  e.family("lotus_tools_registered", "gauge", "Tools in the registry");
  e.sample("lotus_tools_registered", number(tools, "registered"));
  e.family("lotus_tool_calls_total", "counter", "Tool calls by outcome");
  for (const char* outcome : {"calls", "invalid", "denied", "failed", "timed_out", "truncated"}) {
    e.sample("lotus_tool_calls_total", number(tools, outcome),
             cat("outcome=\"", std::string_view(outcome) == "calls" ? "all" : outcome, "\""));
  }
  e.family("lotus_tool_pending_approvals", "gauge", "Tool calls waiting for a person");
  e.sample("lotus_tool_pending_approvals", number(tools, "pending_approvals"));

  if (server != nullptr) {
    const HttpServerStats& s = server->stats();
    e.family("lotus_api_requests_total", "counter", "HTTP requests answered, by class");
    e.sample("lotus_api_requests_total", static_cast<double>(s.requests.load()), "class=\"all\"");
    e.sample("lotus_api_requests_total", static_cast<double>(s.client_errors.load()),
             "class=\"4xx\"");
    e.sample("lotus_api_requests_total", static_cast<double>(s.server_errors.load()),
             "class=\"5xx\"");
    e.family("lotus_api_refused_total", "counter", "Requests refused before routing");
    e.sample("lotus_api_refused_total", static_cast<double>(s.unauthorized.load()),
             "reason=\"token\"");
    e.sample("lotus_api_refused_total", static_cast<double>(s.forbidden.load()),
             "reason=\"host_or_origin\"");
    const EventSocketStats& w = server->event_socket_stats();
    e.family("lotus_api_event_sockets", "gauge", "WebSocket event stream clients connected");
    e.sample("lotus_api_event_sockets", static_cast<double>(w.connected.load()));
    e.family("lotus_api_event_socket_events_total", "counter", "Events sent to stream clients");
    e.sample("lotus_api_event_socket_events_total", static_cast<double>(w.sent.load()));
    e.family("lotus_api_event_socket_dropped_total", "counter",
             "Stream clients dropped for reading too slowly");
    e.sample("lotus_api_event_socket_dropped_total", static_cast<double>(w.dropped_clients.load()));
  }
  return e.take();
}

}  // namespace lotus::api
