// RequestGuard: who may talk to the daemon.
//
// A loopback daemon is still reachable by every web page the user opens, so
// three checks run before any route: the Host header must name this daemon
// (a DNS-rebinding page arrives with its own host name), a browser's Origin
// must be the daemon's own or one the config allows (another site's page
// cannot drive it), and the bearer token must match (constant-time).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lotus::api {

class RequestGuard {
 public:
  // `bound_host` is the address listened on; loopback names are always
  // accepted for a loopback address.
  RequestGuard(std::string token, std::string bound_host, uint16_t port,
               std::vector<std::string> allowed_hosts, std::vector<std::string> allowed_origins);

  // nullopt when acceptable, else the reason (for a 403).
  std::optional<std::string> check_host(std::string_view host) const;
  // An absent Origin (curl, the CLI, same-origin GETs) is acceptable.
  std::optional<std::string> check_origin(std::string_view origin) const;
  // "Bearer <token>" in Authorization.
  bool check_authorization(std::string_view header) const;
  bool check_token(std::string_view token) const;

  void set_port(uint16_t port);
  const std::string& token() const { return token_; }

 private:
  std::vector<std::string> host_names() const;
  // What Host and Origin may say, lower-case: made once per port, not at
  // every request.
  void list_accepted();

  std::string token_;
  std::string bound_host_;
  uint16_t port_;
  std::vector<std::string> allowed_hosts_;
  std::vector<std::string> allowed_origins_;
  std::vector<std::string> accepted_hosts_;
  std::vector<std::string> accepted_origins_;
};

}  // namespace lotus::api
