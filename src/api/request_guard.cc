#include "api/request_guard.h"

#include <algorithm>

#include <boost/asio/ip/address.hpp>

#include "lotus/strings.h"

namespace lotus::api {
namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_loopback(const std::string& address) {
  boost::system::error_code ec;
  auto parsed = boost::asio::ip::make_address(address, ec);
  return !ec && parsed.is_loopback();
}

}  // namespace

RequestGuard::RequestGuard(std::string token, std::string bound_host, uint16_t port,
                           std::vector<std::string> allowed_hosts,
                           std::vector<std::string> allowed_origins)
    : token_(std::move(token)),
      bound_host_(std::move(bound_host)),
      port_(port),
      allowed_hosts_(std::move(allowed_hosts)),
      allowed_origins_(std::move(allowed_origins)) {
  for (auto& h : allowed_hosts_) h = lower(h);
  for (auto& o : allowed_origins_) o = lower(o);
  list_accepted();
}

void RequestGuard::set_port(uint16_t port) {
  port_ = port;
  list_accepted();
}

std::vector<std::string> RequestGuard::host_names() const {
  std::vector<std::string> names;
  if (is_loopback(bound_host_) || bound_host_ == "0.0.0.0" || bound_host_ == "::") {
    names = {"127.0.0.1", "localhost", "[::1]"};
  }
  if (bound_host_.find(':') != std::string::npos) {
    names.push_back(cat("[", lower(bound_host_), "]"));
  } else {
    names.push_back(lower(bound_host_));
  }
  return names;
}

void RequestGuard::list_accepted() {
  accepted_hosts_.clear();
  accepted_origins_.clear();
  for (const std::string& name : host_names()) {
    accepted_hosts_.push_back(cat(name, ":", port_));
    accepted_origins_.push_back(cat("http://", name, ":", port_));
  }
  for (const std::string& host : allowed_hosts_) {
    accepted_hosts_.push_back(host);
    accepted_hosts_.push_back(cat(host, ":", port_));
    accepted_origins_.push_back(cat("http://", host));
    accepted_origins_.push_back(cat("http://", host, ":", port_));
    accepted_origins_.push_back(cat("https://", host));
  }
  accepted_origins_.insert(accepted_origins_.end(), allowed_origins_.begin(),
                           allowed_origins_.end());
}

std::optional<std::string> RequestGuard::check_host(std::string_view host) const {
  if (host.empty()) return std::string("the request has no Host header");
  const std::string h = lower(host);
  if (std::find(accepted_hosts_.begin(), accepted_hosts_.end(), h) != accepted_hosts_.end()) {
    return std::nullopt;
  }
  return cat("Host \"", host,
             "\" is not this daemon's address (a page reached through another name cannot "
             "drive LOTUS; add it to api.allowed_hosts if it is yours)");
}

std::optional<std::string> RequestGuard::check_origin(std::string_view origin) const {
  if (origin.empty()) return std::nullopt;
  const std::string o = lower(origin);
  if (std::find(accepted_origins_.begin(), accepted_origins_.end(), o) != accepted_origins_.end()) {
    return std::nullopt;
  }
  return cat("Origin \"", origin,
             "\" may not call this daemon (only its own pages may; add trusted origins to "
             "api.allowed_origins)");
}

bool RequestGuard::check_token(std::string_view token) const {
  // Constant time in the token's content: every byte is compared.
  if (token.size() != token_.size() || token_.empty()) return false;
  unsigned char difference = 0;
  for (size_t i = 0; i < token.size(); ++i) {
    difference |= static_cast<unsigned char>(token[i] ^ token_[i]);
  }
  return difference == 0;
}

bool RequestGuard::check_authorization(std::string_view header) const {
  constexpr std::string_view kScheme = "bearer ";
  if (header.size() <= kScheme.size() || lower(header.substr(0, kScheme.size())) != kScheme) {
    return false;
  }
  std::string_view token = header.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  return check_token(token);
}

}  // namespace lotus::api
