// lotus serve: the daemon. Boots the nucleus, listens for the HTTP API, the
// live event stream and the web UI, says where, and runs until SIGINT or
// SIGTERM; then stops listening first and shuts the nucleus down.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <iostream>

#include "api/api_options.h"
#include "api/api_service.h"
#include "api/api_token.h"
#include "api/daemon_file.h"
#include "api/http_server.h"
#include "cli/commands.h"
#include "cli/signals.h"
#include "core/nucleus.h"
#include "lotus/strings.h"

namespace lotus::cli {

int run_serve(Config config, const ServeOptions& flags) {
  auto options = api::ApiOptions::from_config(config);
  if (!options.ok()) {
    std::cerr << "lotus serve: " << message_of(options.status()) << "\n";
    return 2;
  }
  if (!flags.host.empty()) options->host = flags.host;
  if (flags.port >= 0) options->port = static_cast<uint16_t>(flags.port);
  auto token = api::load_or_create_token(options->token_file);
  if (!token.ok()) {
    std::cerr << "lotus serve: " << message_of(token.status()) << "\n";
    return 1;
  }

  std::atomic<Nucleus*> current{nullptr};
  SignalWatcher signals([&current](int) {
    if (Nucleus* n = current.load()) n->request_stop();
  });
  auto nucleus = boot(config, signals, current);
  if (!nucleus) return 1;

  api::ApiService service(*nucleus);
  api::HttpServer server(*options, *token, service.routes(), nucleus->bus());
  service.attach(&server);
  if (Status started = server.start(); !started.ok()) {
    std::cerr << "lotus serve: " << message_of(started) << "\n";
    nucleus->shutdown().IgnoreError();
    return 1;
  }
  if (Status written = api::write_daemon_file(
          config.data_dir, api::DaemonInfo{server.url(), ::getpid(), options->token_file});
      !written.ok()) {
    std::cerr << "lotus serve: warning: " << message_of(written)
              << " (other lotus commands will not find this daemon)\n";
  }
  const bool loopback = options->host == "127.0.0.1" || options->host == "::1";
  std::cout << "LOTUS " << LOTUS_VERSION << " serving on " << server.url() << "\n"
            << "  web UI     " << server.url() << "/#token=" << *token << "\n"
            << "  API token  " << options->token_file.string() << " (send it as "
            << "\"Authorization: Bearer <token>\")\n"
            << "  API        " << server.url() << "/api/openapi.json\n"
            << "  MCP        " << server.url() << "/mcp (Streamable HTTP, the same token)\n";
  if (!loopback) {
    std::cout << "  warning: listening on " << options->host
              << ", not loopback: anyone who can reach it and has the token can drive LOTUS\n";
  }
  std::cout << "Ctrl-C stops.\n" << std::flush;

  while (!nucleus->stop_requested()) {
    pollfd fd{signals.fd(), POLLIN, 0};
    if (poll(&fd, 1, -1) > 0 && (fd.revents & POLLIN)) {
      int sig = signals.take();
      if (sig == SIGINT || sig == SIGTERM) break;
    }
  }
  std::cout << "stopping...\n" << std::flush;
  server.stop();
  api::remove_daemon_file(config.data_dir);
  Status status = nucleus->shutdown();
  if (!status.ok()) {
    std::cerr << "lotus serve: shutdown: " << message_of(status) << "\n";
    return 1;
  }
  return 0;
}

}  // namespace lotus::cli
