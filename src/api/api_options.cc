#include "api/api_options.h"

#include <boost/asio/ip/address.hpp>

#include "absl/strings/str_join.h"

#include "lotus/strings.h"

namespace lotus::api {
namespace {

const char* const kKeys[] = {"host",
                             "port",
                             "max_body_bytes",
                             "socket_queue",
                             "request_timeout_ms",
                             "allowed_origins",
                             "allowed_hosts",
                             "token_file"};

Status read_size(const Json& section, const char* key, size_t low, size_t high, size_t& out) {
  if (!section.contains(key)) return absl::OkStatus();
  const Json& value = section[key];
  if (!value.is_number_integer() || value.get<int64_t>() < static_cast<int64_t>(low) ||
      value.get<int64_t>() > static_cast<int64_t>(high)) {
    return absl::InvalidArgumentError(
        cat("api.", key, ": expected an integer from ", low, " to ", high, ", got ", value.dump()));
  }
  out = value.get<size_t>();
  return absl::OkStatus();
}

Status read_strings(const Json& section, const char* key, std::vector<std::string>& out) {
  if (!section.contains(key)) return absl::OkStatus();
  const Json& value = section[key];
  if (!value.is_array()) {
    return absl::InvalidArgumentError(
        cat("api.", key, ": expected a list of strings, got ", value.dump()));
  }
  for (const Json& item : value) {
    if (!item.is_string() || item.get<std::string>().empty()) {
      return absl::InvalidArgumentError(
          cat("api.", key, ": every entry must be a non-empty string, got ", item.dump()));
    }
    out.push_back(item.get<std::string>());
  }
  return absl::OkStatus();
}

}  // namespace

Result<ApiOptions> ApiOptions::from_config(const Config& config) {
  ApiOptions options;
  options.token_file = config.config_dir / "api-token";
  const Json& section = config.api;
  if (section.is_null()) return options;
  if (!section.is_object()) {
    return absl::InvalidArgumentError(cat("api: expected a mapping, got ", section.dump()));
  }
  for (const auto& [key, value] : section.items()) {
    bool known = false;
    for (const char* k : kKeys) known = known || key == k;
    if (!known) {
      return absl::InvalidArgumentError(
          cat("api: unknown key \"", key, "\" (known: ", absl::StrJoin(kKeys, ", "), ")"));
    }
  }
  if (section.contains("host")) {
    const Json& host = section["host"];
    boost::system::error_code ec;
    if (host.is_string()) boost::asio::ip::make_address(host.get<std::string>(), ec);
    if (!host.is_string() || ec) {
      return absl::InvalidArgumentError(
          cat("api.host: expected an IP address to listen on (e.g. 127.0.0.1 or ::1), got ",
              host.dump()));
    }
    options.host = host.get<std::string>();
  }
  size_t port = options.port;
  if (Status s = read_size(section, "port", 0, 65535, port); !s.ok()) return s;
  options.port = static_cast<uint16_t>(port);
  if (Status s =
          read_size(section, "max_body_bytes", 1024, size_t{1} << 30, options.max_body_bytes);
      !s.ok()) {
    return s;
  }
  if (Status s = read_size(section, "socket_queue", 16, size_t{1} << 22, options.socket_queue);
      !s.ok()) {
    return s;
  }
  size_t timeout_ms = static_cast<size_t>(options.request_timeout.count());
  if (Status s = read_size(section, "request_timeout_ms", 100, 3'600'000, timeout_ms); !s.ok()) {
    return s;
  }
  options.request_timeout = std::chrono::milliseconds(timeout_ms);
  if (Status s = read_strings(section, "allowed_origins", options.allowed_origins); !s.ok())
    return s;
  if (Status s = read_strings(section, "allowed_hosts", options.allowed_hosts); !s.ok()) return s;
  if (section.contains("token_file")) {
    const Json& file = section["token_file"];
    if (!file.is_string() || file.get<std::string>().empty()) {
      return absl::InvalidArgumentError(
          cat("api.token_file: expected a file path, got ", file.dump()));
    }
    options.token_file = file.get<std::string>();
  }
  return options;
}

}  // namespace lotus::api
