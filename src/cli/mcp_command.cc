// lotus mcp: LOTUS as an MCP server on stdin/stdout, the way IDEs and
// assistants start MCP servers. stdout carries protocol messages and nothing
// else: the process's own stdout is pointed at stderr before anything boots,
// and the protocol writes to a private copy of the original.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <iostream>
#include <memory>
#include <thread>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include "cli/commands.h"
#include "cli/signals.h"
#include "core/nucleus.h"
#include "lotus/strings.h"
#include "mcp/mcp_server.h"
#include "mcp/module_content.h"
#include "mcp/nucleus_content.h"
#include "mcp/stdio_transport.h"

namespace lotus::cli {
namespace {

// Forwards LOTUS's log to the MCP client as notifications/message (at the
// level the client sets with logging/setLevel).
class McpLogSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  void attach(std::weak_ptr<mcp::McpServer> server) {
    std::lock_guard lock(server_mutex_);
    server_ = std::move(server);
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::shared_ptr<mcp::McpServer> server;
    {
      std::lock_guard lock(server_mutex_);
      server = server_.lock();
    }
    if (!server) return;
    mcp::McpLogLevel level = mcp::McpLogLevel::kInfo;
    switch (msg.level) {
      case spdlog::level::trace:
      case spdlog::level::debug:
        level = mcp::McpLogLevel::kDebug;
        break;
      case spdlog::level::info:
        level = mcp::McpLogLevel::kInfo;
        break;
      case spdlog::level::warn:
        level = mcp::McpLogLevel::kWarning;
        break;
      case spdlog::level::err:
        level = mcp::McpLogLevel::kError;
        break;
      case spdlog::level::critical:
        level = mcp::McpLogLevel::kCritical;
        break;
      default:
        return;
    }
    server->log(level, "lotus", std::string(msg.payload.data(), msg.payload.size()));
  }
  void flush_() override {}

 private:
  std::mutex server_mutex_;
  std::weak_ptr<mcp::McpServer> server_;
};

Task<void> request_into(Bus* bus, Event event, std::chrono::milliseconds timeout,
                        std::promise<Result<EventPtr>>* out) {
  auto pending = bus->request(std::move(event), timeout);
  Result<EventPtr> reply = co_await std::move(pending);
  out->set_value(std::move(reply));
}

// A bus request from the main thread, waiting for its reply's data.
Result<Json> sync_request(Nucleus& nucleus, Event event) {
  std::promise<Result<EventPtr>> done;
  auto future = done.get_future();
  auto task = std::make_shared<Task<void>>(
      request_into(&nucleus.bus(), std::move(event), std::chrono::seconds(40), &done));
  boost::asio::post(nucleus.bus().executor(),
                    [task] { start_detached(std::move(*task), [](std::exception_ptr) {}); });
  Result<EventPtr> reply = future.get();
  if (!reply.ok()) return reply.status();
  return (*reply)->data;
}

// Reads requests from stdin on the bus's pool until end of input, an error
// or a signal (readable on `stop_fd`); on a descriptor asio cannot wait on,
// on this thread instead.
mcp::ReadEnd read_stdin(boost::asio::any_io_executor executor, int stop_fd, size_t max_bytes,
                        const mcp::LineHandlers& handlers) {
  int ended[2];
  if (pipe2(ended, O_CLOEXEC) != 0) {
    return mcp::read_lines(STDIN_FILENO, stop_fd, max_bytes, handlers);
  }
  std::atomic<mcp::ReadEnd> how{mcp::ReadEnd::kError};
  auto reader = mcp::AsyncLineReader::start(std::move(executor), STDIN_FILENO, max_bytes, handlers,
                                            [&how, fd = ended[1]](mcp::ReadEnd end) {
                                              how.store(end);
                                              char byte = 1;
                                              (void)!write(fd, &byte, 1);
                                            });
  if (!reader.ok()) {
    spdlog::debug("lotus mcp: {}; reading stdin on a thread of its own",
                  message_of(reader.status()));
    close(ended[0]);
    close(ended[1]);
    return mcp::read_lines(STDIN_FILENO, stop_fd, max_bytes, handlers);
  }
  pollfd fds[2] = {{ended[0], POLLIN, 0}, {stop_fd, POLLIN, 0}};
  while (poll(fds, 2, -1) < 0 && errno == EINTR) {
  }
  if ((fds[0].revents & POLLIN) == 0) {
    (*reader)->stop();  // a signal: stop reading, and wait until it has
    while (poll(fds, 1, -1) < 0 && errno == EINTR) {
    }
  }
  reader->reset();
  close(ended[0]);
  close(ended[1]);
  return how.load();
}

}  // namespace

int run_mcp(Config config, const McpOptions& options) {
  // Keep the real stdout for the protocol; whatever else writes to fd 1
  // (a module, a library) lands on stderr instead.
  int protocol_fd = dup(STDOUT_FILENO);
  if (protocol_fd < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
    std::cerr << "lotus mcp: cannot set up stdout\n";
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);  // a client that went away is a failed write, not a crash
  for (const std::string& pattern : options.allow) {
    config.tools.policy.emplace_back(pattern, "allow");
  }

  std::atomic<Nucleus*> current{nullptr};
  SignalWatcher signals([&current](int) {
    if (Nucleus* n = current.load()) n->request_stop();
  });
  std::unique_ptr<Nucleus> nucleus = boot(config, signals, current, "lotus mcp");
  if (!nucleus) return 1;
  if (nucleus->stop_requested()) {
    (void)nucleus->shutdown();
    return 130;
  }

  auto writer = std::make_shared<mcp::LineWriter>(protocol_fd, nucleus->bus().executor());
  mcp::McpServerOptions server_options;
  server_options.max_message_bytes = options.max_message_bytes;
  server_options.instructions =
      "LOTUS is an AI operating system. Its tools are named module__tool (fs__read, "
      "memory__recall, shell__run); calls go through its permission policy, so a denied "
      "call returns an error result. Resources: lotus://health, module manifests, "
      "conversations and memory searches (lotus://memory/search/{query}).";
  auto server = mcp::McpServer::create(
      nucleus->bus(), nucleus->tools(), nucleus->tool_broker(),
      std::make_shared<mcp::ModuleContent>(
          nucleus->bus(), [n = nucleus.get()] { return n->mcp_manifests(); },
          std::make_shared<mcp::NucleusContent>(*nucleus)),
      std::move(server_options), [writer](std::string message) { writer->write(message); });
  if (Status started = server->start(); !started.ok()) {
    std::cerr << "lotus mcp: " << message_of(started) << "\n";
    (void)nucleus->shutdown();
    return 1;
  }
  auto log_sink = std::make_shared<McpLogSink>();
  log_sink->attach(server);
  if (auto logger = spdlog::default_logger()) logger->sinks().push_back(log_sink);
  spdlog::info("lotus mcp: serving on stdio");

  mcp::LineHandlers handlers;
  handlers.on_line = [&server](std::string_view line) { server->handle(line); };
  handlers.on_oversized = [&server](size_t bytes) { server->reject_oversized(bytes); };
  mcp::ReadEnd end =
      read_stdin(nucleus->bus().executor(), signals.fd(), options.max_message_bytes, handlers);
  spdlog::info("lotus mcp: {}", end == mcp::ReadEnd::kEof       ? "the client closed stdin"
                                : end == mcp::ReadEnd::kStopped ? "stopped by a signal"
                                                                : "cannot read stdin");

  // What was asked before stdin closed is still answered (a script piping
  // requests in expects that), unless the client is gone altogether.
  server->refuse_approvals("the MCP client closed its input");
  auto drain_until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (end == mcp::ReadEnd::kEof && server->in_flight() > 0 && !writer->broken() &&
         std::chrono::steady_clock::now() < drain_until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  log_sink->attach({});
  server->close();
  Status down = nucleus->shutdown();
  current.store(nullptr);
  writer->flush();  // what the stopped pool had not written yet
  close(protocol_fd);
  if (!down.ok()) {
    std::cerr << "lotus mcp: shutdown: " << message_of(down) << "\n";
    return 1;
  }
  return end == mcp::ReadEnd::kError ? 1 : 0;
}

int run_mcp_servers(const Config& config, bool json) {
  std::atomic<Nucleus*> current{nullptr};
  SignalWatcher signals([&current](int) {
    if (Nucleus* n = current.load()) n->request_stop();
  });
  std::unique_ptr<Nucleus> nucleus = boot(config, signals, current, "lotus mcp servers");
  if (!nucleus) return 1;
  Event request = Event::make("mcp.servers", "cli", Json{{"wait_ms", 30000}});
  auto reply = sync_request(*nucleus, std::move(request));
  int code = 0;
  if (!reply.ok()) {
    std::cerr << "lotus mcp servers: the mcp module does not answer (" << message_of(reply.status())
              << "); is it disabled or failed? see lotus modules\n";
    code = 1;
  } else {
    const Json servers = reply->value("servers", Json::array());
    for (const Json& s : servers) {
      if (s.value("state", "") == "failed") code = 1;
    }
    if (json) {
      std::cout << servers.dump(2) << "\n";
    } else if (servers.empty()) {
      std::cout << "no MCP servers configured (add them under mcp: servers: in the config)\n";
    } else {
      for (const Json& s : servers) {
        std::cout << s.value("name", "") << "  " << s.value("state", "") << "  "
                  << s.value("command", s.value("url", "")) << "\n";
        if (!s.value("error", "").empty()) std::cout << "    " << s.value("error", "") << "\n";
        if (s.contains("server")) {
          std::cout << "    server " << s["server"].value("name", "?") << " "
                    << s["server"].value("version", "") << ", protocol "
                    << s.value("protocol_version", "") << ", restarts " << s.value("restarts", 0)
                    << "\n";
        }
        const Json tools = s.value("tools", Json::array());
        std::cout << "    " << tools.size() << " tools as " << s.value("namespace", "") << ".*";
        for (const Json& t : tools) std::cout << " " << t.get<std::string>();
        std::cout << "\n";
      }
    }
  }
  (void)nucleus->shutdown();
  current.store(nullptr);
  return code;
}

}  // namespace lotus::cli
