// The README's example module: remembers the Python files it hears about
// and finds them again by a part of their path.
#include <algorithm>
#include <string>
#include <vector>

#include "lotus/module.h"

class FileIndexer : public lotus::Module {
 public:
  lotus::Task<void> initialize() override {
    auto stored = get_state("files");
    if (stored.ok() && stored->is_array()) files_ = stored->get<std::vector<std::string>>();
    on("on_file_changed", &FileIndexer::on_file_changed);
    tool("find_file", &FileIndexer::find_file);
    every(std::chrono::minutes(1), &FileIndexer::compact);
    co_return;
  }

 private:
  lotus::Task<void> on_file_changed(const lotus::Event& event) {
    std::string path = event.data.value("path", "");
    if (std::find(files_.begin(), files_.end(), path) == files_.end()) files_.push_back(path);
    set_state("files", files_).IgnoreError();  // persists across reloads and restarts
    publish("action.display", {{"text", "indexed " + path}}).IgnoreError();
    co_return;
  }

  lotus::Task<lotus::ToolResult> find_file(const lotus::Json& args) {
    std::string query = args.value("query", "");
    size_t limit = config().value("max_results", 20);
    lotus::Json matches = lotus::Json::array();
    for (const auto& path : files_) {
      if (matches.size() < limit && path.find(query) != std::string::npos) matches.push_back(path);
    }
    co_return lotus::Json{{"matches", matches}};
  }

  lotus::Task<void> compact() {
    std::sort(files_.begin(), files_.end());
    co_return;
  }

  std::vector<std::string> files_;
};

LOTUS_MODULE(FileIndexer)
