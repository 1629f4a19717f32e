// Boot time with 20 modules: 20 copies of the counter plugin (each its own
// shared library, loaded through the same path users' plugins take), booted
// and shut down 10 times; prints the median and the worst boot.
//
//   build/release/bench/boot_bench
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "core/metrics.h"
#include "core/nucleus.h"
#include "lotus/strings.h"
#include "testing/files.h"

int main() {
  using namespace lotus;
  spdlog::set_level(spdlog::level::warn);
  constexpr int kModules = 20;
  constexpr int kRuns = 10;
  std::string pattern = (std::filesystem::temp_directory_path() / "lotus-boot-XXXXXX").string();
  std::filesystem::path root = mkdtemp(pattern.data());
  const std::filesystem::path plugin = std::filesystem::path(LOTUS_TEST_MODULES_DIR) / "counter";
  // Each copy gets the plugin's own manifest under a name of its own, so the
  // copies stay in step with what the plugin registers.
  const std::string manifest = testing::read_file(plugin / "manifest.yaml");
  const std::string name_line = "name: counter\n";
  const size_t name_at = manifest.find(name_line);
  if (name_at == std::string::npos) {
    std::fprintf(stderr, "boot_bench: %s has no '%s'\n", (plugin / "manifest.yaml").c_str(),
                 "name: counter");
    return 1;
  }
  for (int i = 0; i < kModules; ++i) {
    auto dir = root / "modules" / cat("counter_", i);
    std::filesystem::create_directories(dir);
    std::filesystem::copy_file(plugin / "libcounter.so", dir / "libcounter.so");
    std::string renamed = manifest;
    renamed.replace(name_at, name_line.size(), cat("name: counter_", i, "\n"));
    testing::write_file(dir / "manifest.yaml", renamed);
  }
  Config config;
  config.module_dirs = {root / "modules"};
  config.data_dir = root / "data";
  std::vector<double> boots;
  size_t running = 0;
  for (int run = 0; run < kRuns; ++run) {
    Nucleus nucleus(config);
    auto begin = std::chrono::steady_clock::now();
    if (!nucleus.boot().ok()) return 1;
    boots.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begin)
            .count());
    running = 0;
    for (const auto& m : nucleus.modules()) running += m.state == "running";
    nucleus.shutdown().IgnoreError();
  }
  std::sort(boots.begin(), boots.end());
  std::printf("boot with %d modules (%zu running): median %.1f ms, worst %.1f ms over %d runs\n",
              kModules, running, boots[boots.size() / 2], boots.back(), kRuns);
  std::filesystem::remove_all(root);
  return running == kModules ? 0 : 1;
}
