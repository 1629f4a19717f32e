#include "cli/daemon_link.h"

#include <sys/socket.h>

#include <cstdlib>

#include "api/api_token.h"
#include "api/daemon_file.h"
#include "lotus/strings.h"

namespace lotus::cli {

api::ApiClient DaemonLink::client() const {
  api::ApiClient client(host, port);
  client.set_token(token);
  return client;
}

namespace {

Result<Json> json_of(const api::ApiReply& reply, const std::string& url,
                     const std::string& target) {
  if (reply.status == 0) {
    return absl::UnavailableError(
        cat("the daemon at ", url, " did not answer ", target, ": ", reply.error_message()));
  }
  if (reply.status != 200) {
    // The daemon's own words: what was wrong with the request, or where.
    return Status(reply.status == 404  ? absl::StatusCode::kNotFound
                  : reply.status < 500 ? absl::StatusCode::kInvalidArgument
                                       : absl::StatusCode::kUnavailable,
                  cat(reply.error_message(), " (the daemon at ", url, ", ", target, ")"));
  }
  Json parsed = reply.json();
  if (parsed.is_discarded()) {
    return absl::InternalError(cat("the daemon at ", url, " answered ", target, " with no JSON"));
  }
  return parsed;
}

}  // namespace

Result<Json> DaemonLink::get_json(const std::string& target) const {
  return json_of(client().get(target), url, target);
}

Result<Json> DaemonLink::post_json(const std::string& target, const Json& body) const {
  return json_of(client().post(target, body), url, target);
}

std::optional<DaemonLink> find_running_daemon(const Config& config) {
  if (const char* standalone = std::getenv("LOTUS_STANDALONE");
      standalone != nullptr && *standalone != '\0' && std::string_view(standalone) != "0") {
    return std::nullopt;
  }
  auto daemon = api::find_daemon(config.data_dir);
  if (!daemon) return std::nullopt;
  // http://<host>:<port>, as the daemon wrote it.
  constexpr std::string_view kScheme = "http://";
  std::string_view rest = daemon->url;
  if (!rest.starts_with(kScheme)) return std::nullopt;
  rest.remove_prefix(kScheme.size());
  size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  DaemonLink link;
  link.url = daemon->url;
  link.host = std::string(rest.substr(0, colon));
  if (link.host.size() > 2 && link.host.front() == '[')
    link.host = link.host.substr(1, link.host.size() - 2);
  try {
    link.port = static_cast<uint16_t>(std::stoi(std::string(rest.substr(colon + 1))));
  } catch (const std::exception&) {
    return std::nullopt;
  }
  auto token = api::read_token(daemon->token_file);
  if (!token.ok()) return std::nullopt;
  link.token = *token;
  api::ApiClient probe(link.host, link.port, std::chrono::seconds(1));
  if (probe.get("/health").status != 200) return std::nullopt;
  return link;
}

DaemonEventReader::DaemonEventReader(const DaemonLink& link, const std::string& pattern,
                                     std::function<void(EventPtr)> on_event)
    : on_event_(std::move(on_event)) {
  std::string target = "/api/events?pattern=";
  // A valid pattern holds only letters, digits, '.', '_', '-' and '*'.
  for (char c : pattern) target += c == '*' ? std::string("%2A") : std::string(1, c);
  stream_ = std::make_unique<api::EventStreamClient>(link.host, link.port, target, link.token);
  if (!stream_->open()) return;
  thread_ = std::thread([this] {
    while (!stopping_.load()) {
      auto text = stream_->read();
      if (!text) break;
      auto event = event_from_json_text(*text);
      if (event.ok()) on_event_(std::make_shared<const Event>(*std::move(event)));
    }
    ended_.store(true);
  });
}

std::string DaemonEventReader::end_reason() const {
  const auto& reason = stream_->close_reason().reason;
  if (reason.size() > 0) return std::string(reason.data(), reason.size());
  return stream_->error();
}

void DaemonEventReader::stop() {
  if (stopping_.exchange(true)) return;
  // Unblocks the reader's read().
  ::shutdown(stream_->native_handle(), SHUT_RDWR);
  if (thread_.joinable()) thread_.join();
}

DaemonEventReader::~DaemonEventReader() { stop(); }

}  // namespace lotus::cli
