// The Redis bus beside redis-benchmark, on one redis-server this driver
// starts (loopback, temp dir), with the same payload: the serialized event.
//
//   1. redis-benchmark's pipelined XADD rate, and LOTUS's XADD rate
//      (RedisBus::publish on a stream-bound channel, which pipelines);
//   2. publish -> handler latency when the handler runs in another process
//      (a forked node), p50 and p99, one event at a time;
//   3. stream end to end: XADD -> handler in the other process -> XACK,
//      events per second until the group has nothing pending.
//
//   build/release/bench/redis_bench [--events N] [--payload BYTES]
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bus/redis_bus.h"
#include "lotus/strings.h"
#include "testing/redis_server.h"

namespace lotus {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string run_command(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  std::array<char, 4096> buffer;
  while (fgets(buffer.data(), buffer.size(), pipe) != nullptr) out += buffer.data();
  pclose(pipe);
  return out;
}

// The node in the other process: answers latency probes with the measured
// one-way time and consumes the bench stream as module "consumer".
[[noreturn]] void run_peer(const std::string& url) {
  RedisBusOptions options;
  options.url = url;
  options.node_id = "peer";
  options.threads = 1;
  options.stream_channels.push_back("bench.stream");
  auto bus = RedisBus::connect(options);
  if (!bus.ok()) {
    std::cerr << "peer: " << message_of(bus.status()) << "\n";
    _exit(1);
  }
  RedisBus* b = bus->get();
  auto latency = std::make_shared<Mailbox>(Mailbox::Options{.owner = "probe"}, b->executor());
  std::vector<int64_t> samples;
  latency->set_dispatch([&samples, b](const Delivery& d) -> Task<Status> {
    const int64_t now = wall_ns();
    if (d.event->channel == "bench.done") {
      std::sort(samples.begin(), samples.end());
      Json report = {{"count", samples.size()}};
      if (!samples.empty()) {
        report["p50_us"] = samples[samples.size() / 2] / 1000.0;
        report["p99_us"] = samples[samples.size() * 99 / 100] / 1000.0;
      }
      b->publish(Event::make("bench.report", "peer", std::move(report))).IgnoreError();
      co_return absl::OkStatus();
    }
    samples.push_back(now - d.event->data["sent_ns"].get<int64_t>());
    co_return absl::OkStatus();
  });
  auto consumer = std::make_shared<Mailbox>(
      Mailbox::Options{.owner = "consumer", .capacity = 1 << 20}, b->executor());
  consumer->set_dispatch([](const Delivery&) -> Task<Status> { co_return absl::OkStatus(); });
  b->subscribe("bench.probe", {}, Subscriber{latency, 0, nullptr}).IgnoreError();
  b->subscribe("bench.done", {}, Subscriber{latency, 0, nullptr}).IgnoreError();
  b->subscribe("bench.stream", {}, Subscriber{consumer, 0, nullptr}).IgnoreError();
  for (;;) pause();
}

int main_impl(int argc, char** argv) {
  int events = 200000;
  int payload_bytes = 256;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--events") == 0) events = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--payload") == 0) payload_bytes = std::atoi(argv[i + 1]);
  }
  testing::RedisServer server;
  const std::string url = server.url();

  // The payload every figure uses: one serialized event with `payload_bytes` of data.
  Event sample =
      Event::make("bench.stream", "bench", Json{{"payload", std::string(payload_bytes, 'x')}});
  sample.timestamp = now_seconds();
  const std::string payload = to_json(sample).dump();
  std::cout << "redis-server " << run_command("redis-server --version | awk '{print $3}'")
            << "payload: " << payload.size() << " bytes (an event with " << payload_bytes
            << " bytes of data)\n\n";

  // 1. redis-benchmark's pipelined XADD of the same payload.
  const std::string bench_cmd =
      cat("redis-benchmark -p ", server.port(), " -n ", events,
          " -P 64 -q XADD rb:stream '*' event '", payload, "' 2>/dev/null");
  std::string rb = run_command(bench_cmd);
  double rb_rate = 0;
  if (auto pos = rb.rfind(": "); pos != std::string::npos)
    rb_rate = std::atof(rb.c_str() + pos + 2);
  server.command({"DEL", "rb:stream"});

  pid_t peer = -1;
  {
    // LOTUS XADD rate: publish on a stream-bound channel, no consumer yet.
    RedisBusOptions options;
    options.url = url;
    options.node_id = "bench";
    options.stream_channels.push_back("bench.xadd");
    auto bus = RedisBus::connect(options);
    if (!bus.ok()) {
      std::cerr << message_of(bus.status()) << "\n";
      return 1;
    }
    Json data = sample.data;
    auto begin = Clock::now();
    for (int i = 0; i < events; ++i) {
      (*bus)->publish(Event::make("bench.xadd", "bench", data)).IgnoreError();
    }
    const double loop_s = std::chrono::duration<double>(Clock::now() - begin).count();
    while ((*bus)->redis_stats().stream_added < static_cast<uint64_t>(events)) {
      std::this_thread::sleep_for(100us);
    }
    const double lotus_rate = events / std::chrono::duration<double>(Clock::now() - begin).count();
    std::printf("XADD, pipelined     redis-benchmark -P 64: %10.0f /s\n", rb_rate);
    std::printf(
        "XADD, RedisBus::publish (+PUBLISH):        %10.0f /s  (%.0f%% of redis-benchmark)\n",
        lotus_rate, rb_rate > 0 ? 100.0 * lotus_rate / rb_rate : 0.0);
    std::printf("  (the publishing loop itself: %.0f publishes/s)\n", events / loop_s);
    (*bus)->stop();
  }

  std::fflush(stdout);  // the forked peer must not inherit unflushed output
  peer = fork();
  if (peer == 0) run_peer(url);

  {
    RedisBusOptions options;
    options.url = url;
    options.node_id = "bench";
    options.stream_channels.push_back("bench.stream");
    auto bus = RedisBus::connect(options);
    if (!bus.ok()) {
      std::cerr << message_of(bus.status()) << "\n";
      return 1;
    }
    RedisBus& b = **bus;
    const auto ready_by = Clock::now() + 10s;
    while (b.known_receivers("bench.stream") == 0 && Clock::now() < ready_by) {
      std::this_thread::sleep_for(10ms);
    }
    // 2. Latency to a handler in the other process, one event at a time.
    std::mutex mutex;
    std::condition_variable got;
    Json report;
    Subscriber tap;
    tap.tap = [&](const EventPtr& e) {
      std::lock_guard lock(mutex);
      report = e->data;
      got.notify_all();
    };
    b.subscribe("bench.report", {}, tap).IgnoreError();
    const int probes = std::min(events, 20000);
    for (int i = 0; i < probes; ++i) {
      b.publish(
           Event::make("bench.probe", "bench",
                       Json{{"sent_ns", wall_ns()}, {"payload", std::string(payload_bytes, 'x')}}))
          .IgnoreError();
      std::this_thread::sleep_for(50us);
    }
    b.publish(Event::make("bench.done", "bench")).IgnoreError();
    {
      std::unique_lock lock(mutex);
      got.wait_for(lock, 30s, [&] { return !report.is_null(); });
    }
    std::printf("publish -> handler in another process, %d events: p50 %.1f us, p99 %.1f us\n",
                report.value("count", 0), report.value("p50_us", 0.0), report.value("p99_us", 0.0));

    // 3. Stream end to end: XADD -> handler (other process) -> XACK.
    Json data = sample.data;
    auto begin = Clock::now();
    for (int i = 0; i < events; ++i) {
      b.publish(Event::make("bench.stream", "bench", data)).IgnoreError();
    }
    for (;;) {
      auto groups = server.command({"XINFO", "GROUPS", "lotus:stream:bench.stream"});
      bool drained = false;
      for (const auto& g : groups.elements) {
        long long pending = -1;
        long long read = -1;
        for (size_t i = 0; i + 1 < g.elements.size(); i += 2) {
          if (g.elements[i].text == "pending") pending = g.elements[i + 1].integer;
          if (g.elements[i].text == "entries-read") read = g.elements[i + 1].integer;
        }
        drained = pending == 0 && read >= events;
      }
      if (drained) break;
      if (Clock::now() - begin > 120s) break;
      std::this_thread::sleep_for(1ms);
    }
    const double e2e = events / std::chrono::duration<double>(Clock::now() - begin).count();
    std::printf("stream end to end (XADD -> handler in another process -> XACK): %.0f events/s\n",
                e2e);
    b.stop();
  }
  if (peer > 0) {
    kill(peer, SIGKILL);
    waitpid(peer, nullptr, 0);
  }
  return 0;
}

}  // namespace
}  // namespace lotus

int main(int argc, char** argv) { return lotus::main_impl(argc, argv); }
