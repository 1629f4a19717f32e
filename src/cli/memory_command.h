// `lotus memory add | search | forget | stats | reindex`.
//
// These open the memory store in the data folder directly (the files the
// built-in memory module keeps under <data_dir>/modules/memory, with the
// same `modules: {memory: ...}` config), so they work with no lotus running;
// a later version talks to a running daemon instead.
#pragma once

#include <memory>

#include <CLI/CLI.hpp>

#include "core/config.h"

namespace lotus::cli {

class MemoryCommand {
 public:
  // Adds the `memory` subcommand and its own subcommands to `app`.
  explicit MemoryCommand(CLI::App& app);
  ~MemoryCommand();

  bool selected() const;
  // Runs the chosen subcommand; returns the exit code.
  int run(const Config& config);

  struct Options;  // the parsed flags

 private:
  std::unique_ptr<Options> options_;
};

}  // namespace lotus::cli
