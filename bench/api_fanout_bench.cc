// api_fanout_bench: the live event stream under load. A nucleus and the
// daemon's HTTP server run in this process as `lotus serve` runs them;
// WebSocket clients connect over loopback: N that each filter for a channel
// of their own (bench.ch.<i>) and F that receive everything (bench.**).
// The bus carries R events/s spread over the N channels for S seconds; each
// event carries its publish time, so clients measure the lag to receipt.
//
// Reported: events delivered to clients per second, lag p50/p99, clients
// dropped, and the process RSS each 10 s (it must stay flat: queues are
// bounded and nothing accumulates).
//
//   api_fanout_bench [--subscribers 1000] [--firehose 10] [--rate 10000] [--seconds 60]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include "api/api_options.h"
#include "api/api_service.h"
#include "api/http_server.h"
#include "core/metrics.h"
#include "core/nucleus.h"
#include "testing/temp_dir.h"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using namespace std::chrono_literals;

namespace {

struct Totals {
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> connected{0};
  std::atomic<uint64_t> closed{0};
  lotus::LatencyHistogram lag;
};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Reads one client's stream until it ends; the lag is taken from the
// "t" field the publisher put in each event.
asio::awaitable<void> client(uint16_t port, std::string pattern, std::string token,
                             Totals& totals) {
  auto executor = co_await asio::this_coro::executor;
  websocket::stream<beast::tcp_stream> socket(executor);
  beast::error_code ec;
  asio::ip::tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
  co_await beast::get_lowest_layer(socket).async_connect(
      endpoint, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    std::fprintf(stderr, "connect: %s\n", ec.message().c_str());
    co_return;
  }
  beast::get_lowest_layer(socket).expires_never();
  socket.set_option(websocket::stream_base::decorator([token](websocket::request_type& request) {
    request.set(beast::http::field::authorization, "Bearer " + token);
  }));
  std::string target = "/api/events?pattern=" + pattern;
  std::string host = "127.0.0.1:" + std::to_string(port);
  co_await socket.async_handshake(host, target, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    std::fprintf(stderr, "handshake: %s\n", ec.message().c_str());
    co_return;
  }
  totals.connected.fetch_add(1);
  beast::flat_buffer buffer;
  for (;;) {
    co_await socket.async_read(buffer, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
    // The publish time is the value of "t":<ns> in the event's data.
    std::string_view text(static_cast<const char*>(buffer.data().data()), buffer.size());
    size_t at = text.find("\"t\":");
    if (at != std::string_view::npos) {
      int64_t sent = std::strtoll(text.data() + at + 4, nullptr, 10);
      totals.lag.record(std::chrono::nanoseconds(now_ns() - sent));
    }
    totals.received.fetch_add(1, std::memory_order_relaxed);
    buffer.consume(buffer.size());
  }
  totals.closed.fetch_add(1);
}

double rss_mb() { return lotus::read_process_stats().rss_bytes / (1024.0 * 1024.0); }

}  // namespace

int main(int argc, char** argv) {
  int subscribers = 1000, firehose = 10, rate = 10000, seconds = 60;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    int value = std::atoi(argv[i + 1]);
    if (flag == "--subscribers")
      subscribers = value;
    else if (flag == "--firehose")
      firehose = value;
    else if (flag == "--rate")
      rate = value;
    else if (flag == "--seconds")
      seconds = value;
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  lotus::testing::TempDir dir;
  lotus::Config config;
  config.data_dir = dir.path() / "data";
  config.config_dir = dir.path() / "config";
  config.threads = 2;
  config.api = lotus::Json{{"port", 0}, {"socket_queue", 65536}};
  lotus::Nucleus nucleus(config);
  if (!nucleus.boot().ok()) return 1;
  auto options = lotus::api::ApiOptions::from_config(config);
  const std::string token(64, 'b');
  lotus::api::ApiService service(nucleus);
  lotus::api::HttpServer server(*options, token, service.routes(), nucleus.bus());
  service.attach(&server);
  if (!server.start().ok()) return 1;

  Totals totals;
  asio::io_context clients_io;
  for (int i = 0; i < subscribers; ++i) {
    asio::co_spawn(clients_io,
                   client(server.port(), "bench.ch." + std::to_string(i), token, totals),
                   asio::detached);
  }
  for (int i = 0; i < firehose; ++i) {
    asio::co_spawn(clients_io, client(server.port(), "bench.**", token, totals), asio::detached);
  }
  std::thread client_thread([&] { clients_io.run(); });
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (totals.connected.load() < static_cast<uint64_t>(subscribers + firehose) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  std::printf(
      "%llu clients connected (%d filtering their own channel, %d receiving everything); "
      "RSS %.1f MB\n",
      static_cast<unsigned long long>(totals.connected.load()), subscribers, firehose, rss_mb());

  // Publish in 1 ms ticks to hold the rate.
  const auto start = std::chrono::steady_clock::now();
  uint64_t published = 0;
  int next_report = 10;
  std::vector<double> rss_samples;
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(seconds)) {
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto due = static_cast<uint64_t>(elapsed * rate);
    while (published < due) {
      lotus::Event event =
          lotus::Event::make("bench.ch." + std::to_string(published % subscribers), "bench",
                             lotus::Json{{"t", now_ns()}, {"n", published}});
      (void)nucleus.publish(std::move(event));
      ++published;
    }
    if (elapsed >= next_report) {
      rss_samples.push_back(rss_mb());
      std::printf("  %3d s: published %llu, delivered %llu, RSS %.1f MB\n", next_report,
                  static_cast<unsigned long long>(published),
                  static_cast<unsigned long long>(totals.received.load()), rss_samples.back());
      std::fflush(stdout);
      next_report += 10;
    }
    std::this_thread::sleep_for(1ms);
  }
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::this_thread::sleep_for(1s);  // let the last events arrive
  const uint64_t expected = published + published * static_cast<uint64_t>(firehose);
  auto lag = totals.lag.summary();
  std::printf("published %llu events in %.1f s (%.0f/s)\n",
              static_cast<unsigned long long>(published), wall, published / wall);
  std::printf("delivered %llu of %llu to clients: %.0f events/s\n",
              static_cast<unsigned long long>(totals.received.load()),
              static_cast<unsigned long long>(expected), totals.received.load() / wall);
  std::printf("lag publish -> client: p50 %.0f us, p99 %.0f us, max %.0f us\n", lag.p50_us,
              lag.p99_us, lag.max_us);
  std::printf("clients dropped as slow: %llu\n",
              static_cast<unsigned long long>(server.event_socket_stats().dropped_clients.load()));
  if (!rss_samples.empty()) {
    std::printf("RSS first/last sample: %.1f / %.1f MB\n", rss_samples.front(), rss_samples.back());
  }
  server.stop();
  clients_io.stop();
  client_thread.join();
  (void)nucleus.shutdown();
  return 0;
}
