// Throughput and latency of the in-process bus, the figures the README
// quotes: publish -> handler 1->1 and 1->8 with 256-byte payloads, and the
// request/reply round trip.
//
//   build/release/bench/bus_bench                      # all
//   taskset -c 0 build/release/bench/bus_bench --benchmark_filter=OneCore   # one core
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include <benchmark/benchmark.h>

#include "bus/local_bus.h"
#include "core/metrics.h"
#include "testing/sync_wait.h"

namespace lotus {
namespace {

constexpr int kBatch = 20000;

Json payload_256() { return Json{{"payload", std::string(256, 'x')}}; }

// Counts handled events; the publisher waits until its batch has been handled.
struct Sink {
  std::atomic<int64_t> handled{0};
  std::mutex mutex;
  std::condition_variable done;
  int64_t target = 0;

  void add() {
    if (handled.fetch_add(1, std::memory_order_relaxed) + 1 == target) {
      std::lock_guard lock(mutex);
      done.notify_all();
    }
  }
  void wait(int64_t until) {
    std::unique_lock lock(mutex);
    done.wait(lock, [&] { return handled.load() >= until; });
  }
};

std::shared_ptr<Mailbox> counting_mailbox(LocalBus& bus, Sink& sink) {
  Mailbox::Options options;
  options.owner = "sink";
  options.capacity = 1 << 20;
  auto mailbox = std::make_shared<Mailbox>(options, bus.executor());
  mailbox->set_dispatch([&sink](const Delivery& d) -> Task<Status> {
    benchmark::DoNotOptimize(d.event->data);
    sink.add();
    co_return absl::OkStatus();
  });
  return mailbox;
}

void publish_to_handlers(benchmark::State& state, size_t threads, int fan_out) {
  LocalBus bus(threads);
  Sink sink;
  std::vector<std::shared_ptr<Mailbox>> mailboxes;
  for (int i = 0; i < fan_out; ++i) {
    mailboxes.push_back(counting_mailbox(bus, sink));
    if (!bus.subscribe("bench.events", {}, Subscriber{mailboxes.back(), 0, nullptr}).ok()) {
      state.SkipWithError("subscribe failed");
      return;
    }
  }
  const Json data = payload_256();
  int64_t expected = 0;
  for (auto _ : state) {
    expected += static_cast<int64_t>(kBatch) * fan_out;
    sink.target = expected;
    for (int i = 0; i < kBatch; ++i) {
      auto routed = bus.publish(Event::make("bench.events", "bench", data));
      if (!routed.ok()) state.SkipWithError("publish failed");
    }
    sink.wait(expected);
  }
  state.SetItemsProcessed(state.iterations() * kBatch * fan_out);
  state.counters["published/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * kBatch), benchmark::Counter::kIsRate);
}

// One worker thread plus the publisher: run under `taskset -c 0` to pin
// both to one core, which is how the 1M events/s target is defined.
void BM_PublishToHandler_OneCore_1to1(benchmark::State& state) { publish_to_handlers(state, 1, 1); }
void BM_PublishToHandler_1to1(benchmark::State& state) { publish_to_handlers(state, 2, 1); }
void BM_PublishToHandler_1to8(benchmark::State& state) { publish_to_handlers(state, 2, 8); }

BENCHMARK(BM_PublishToHandler_OneCore_1to1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PublishToHandler_1to1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PublishToHandler_1to8)->UseRealTime()->Unit(benchmark::kMillisecond);

// Sends `rounds` requests one after another; returns how many failed.
Task<int> ask_rounds(LocalBus& bus, LatencyHistogram& latency, int rounds) {
  int failed = 0;
  for (int i = 0; i < rounds; ++i) {
    auto begin = std::chrono::steady_clock::now();
    Event question = Event::make("bench.ask", "bench", Json{{"i", i}});
    auto reply = co_await bus.request(std::move(question), std::chrono::seconds(5));
    latency.record(std::chrono::steady_clock::now() - begin);
    if (!reply.ok()) ++failed;
  }
  co_return failed;
}

// Request/reply round trip between two modules, both on the pool: the
// requester awaits each reply before sending the next. Reports p50/p99.
void BM_RequestReply(benchmark::State& state) {
  LocalBus bus(2);
  Mailbox::Options options;
  options.owner = "responder";
  auto responder = std::make_shared<Mailbox>(options, bus.executor());
  responder->set_dispatch([&bus](const Delivery& d) -> Task<Status> {
    co_return bus.reply(*d.event, "responder", Json{{"ok", true}}).status();
  });
  if (!bus.subscribe("bench.ask", {}, Subscriber{responder, 0, nullptr}).ok()) {
    state.SkipWithError("subscribe failed");
    return;
  }
  LatencyHistogram latency;
  constexpr int kRounds = 2000;
  for (auto _ : state) {
    int failed = testing::sync_wait(bus.executor(), ask_rounds(bus, latency, kRounds));
    if (failed > 0) state.SkipWithError("a request failed");
  }
  state.SetItemsProcessed(state.iterations() * kRounds);
  state.counters["p50_us"] = latency.percentile(50);
  state.counters["p99_us"] = latency.percentile(99);
}
BENCHMARK(BM_RequestReply)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace lotus

BENCHMARK_MAIN();
