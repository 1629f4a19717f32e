#include "cli/memory_command.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cli/daemon_link.h"
#include "core/progress_meter.h"
#include "lotus/strings.h"
#include "memory/embedded_memory.h"
#include "memory/memory_config.h"

namespace lotus::cli {

struct MemoryCommand::Options {
  CLI::App* memory = nullptr;
  CLI::App* add = nullptr;
  CLI::App* search = nullptr;
  CLI::App* forget = nullptr;
  CLI::App* stats = nullptr;
  CLI::App* reindex = nullptr;

  std::vector<std::string> text;  // add: words of one memory; search: the query
  std::string file;
  std::string type;
  double importance = -1;
  std::string collection;
  std::string module;
  std::vector<std::string> types;
  std::vector<std::string> ids;
  std::string older_than;
  size_t limit = 10;
  bool json = false;
  bool yes = false;
  bool reembed = false;
};

namespace {

constexpr size_t kImportChunk = 256;  // memories per transaction (and embedding batch)

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string fixed(double x, int digits) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(digits) << x;
  return out.str();
}

std::string pad(std::string text, size_t width) {
  if (text.size() < width) text.append(width - text.size(), ' ');
  return text;
}

// The first line of `text`, cut to `width` bytes on a UTF-8 boundary.
std::string snippet(const std::string& text, size_t width) {
  std::string line = text.substr(0, text.find('\n'));
  bool cut = line.size() < text.size();
  if (line.size() > width) {
    size_t end = width;
    while (end > 0 && (static_cast<unsigned char>(line[end]) & 0xC0) == 0x80) --end;
    line.resize(end);
    cut = true;
  }
  return cut ? line + "..." : line;
}

std::string size_of(const std::filesystem::path& file) {
  std::error_code ec;
  const auto bytes = static_cast<double>(std::filesystem::file_size(file, ec));
  if (ec) return "no file";
  return bytes < 1024 * 1024 ? fixed(bytes / 1024, 1) + " KB"
                             : fixed(bytes / (1024 * 1024), 1) + " MB";
}

// "90s", "15m", "12h", "30d", "2w" in seconds.
Result<double> parse_age(const std::string& text) {
  size_t used = 0;
  double n = 0;
  try {
    n = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const std::string unit = text.substr(used);
  const double scale = unit == "s" || unit.empty() ? 1
                       : unit == "m"               ? 60
                       : unit == "h"               ? 3600
                       : unit == "d"               ? 86400
                       : unit == "w"               ? 7 * 86400
                                                   : 0;
  if (used == 0 || scale == 0 || n < 0) {
    return absl::InvalidArgumentError(
        cat("--older-than: \"", text, "\" is not an age like 90s, 15m, 12h, 30d or 2w"));
  }
  return n * scale;
}

Result<MemoryFilter> filter_of(const MemoryCommand::Options& o) {
  MemoryFilter filter;
  filter.ids = o.ids;
  for (const std::string& t : o.types) {
    auto type = parse_memory_type(t);
    if (!type.ok()) return absl::InvalidArgumentError(cat("--type: ", message_of(type.status())));
    filter.types.push_back(*type);
  }
  filter.module = o.module;
  filter.collection = o.collection;
  if (!o.older_than.empty()) {
    auto age = parse_age(o.older_than);
    if (!age.ok()) return age.status();
    filter.until = now_seconds() - *age;
  }
  return filter;
}

// The lines of `file` ("-": standard input), blank ones skipped.
// The same filter as the memory module reads it from a request.
Json filter_json(const MemoryFilter& f) {
  Json out = Json::object();
  if (!f.ids.empty()) out["ids"] = f.ids;
  if (!f.types.empty()) {
    Json types = Json::array();
    for (MemoryType t : f.types) types.push_back(std::string(to_string(t)));
    out["types"] = std::move(types);
  }
  if (!f.module.empty()) out["module"] = f.module;
  if (!f.collection.empty()) out["collection"] = f.collection;
  if (f.since > 0) out["since"] = f.since;
  if (f.until > 0) out["until"] = f.until;
  if (f.min_importance > 0) out["min_importance"] = f.min_importance;
  return out;
}

Result<std::vector<std::string>> read_lines(const std::string& file) {
  std::ifstream in;
  if (file != "-") {
    in.open(file);
    if (!in) return absl::NotFoundError(cat("cannot read ", file));
  }
  std::istream& source = file == "-" ? std::cin : in;
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(source, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    lines.push_back(std::move(line));
  }
  return lines;
}

class Session {
 public:
  Session(const Config& config, const MemoryCommand::Options& o)
      : config_(config),
        o_(o),
        meter_(std::cerr, ProgressMeter::is_terminal(STDERR_FILENO)),
        daemon_(find_running_daemon(config)) {}

  // Opens the store as the memory module would; `reindex` rebuilds it.
  Status open(bool reindex) {
    auto module_config = config_.module_config.count("memory") != 0
                             ? config_.module_config.at("memory")
                             : Json::object();
    auto server = memory::server_profile(module_config);
    if (!server.ok()) return server.status();
    if (*server) {
      return absl::UnimplementedError(
          "these commands open the embedded profile's files; with modules.memory.profile: "
          "server, use the memory module of a running lotus (memory.store, memory.recall, "
          "memory.forget over the bus) for now");
    }
    auto options =
        memory::embedded_memory_options(module_config, config_.data_dir / "modules" / "memory");
    if (!options.ok()) return options.status();
    options->reindex = reindex;
    options->reembed = o_.reembed;
    options->progress = [this](std::string_view what, size_t done, size_t total) {
      meter_.update(what, done, total);
    };
    auto store = memory::EmbeddedMemory::open(std::move(*options));
    meter_.finish();
    if (!store.ok()) return store.status();
    store_ = std::move(*store);
    if (!reindex && !store_->index_rebuild_reason().empty()) {
      std::cerr << "lotus memory: the index was rebuilt from " << store_->database_file().string()
                << " (" << store_->index_rebuild_reason() << ")\n";
    }
    return absl::OkStatus();
  }

  int add() {
    std::vector<std::string> texts;
    std::string source;
    if (!o_.text.empty()) {
      if (!o_.file.empty()) return usage("give text or --file, not both");
      std::string joined;
      for (const std::string& word : o_.text) joined += (joined.empty() ? "" : " ") + word;
      texts.push_back(std::move(joined));
    } else {
      std::string file = o_.file;
      if (file.empty()) {
        if (isatty(STDIN_FILENO) == 1) {
          return usage("give the text to remember, --file FILE, or lines on standard input");
        }
        file = "-";
      }
      auto lines = read_lines(file);
      if (!lines.ok()) return fail(lines.status());
      texts = std::move(*lines);
      source = file == "-" ? "standard input" : file;
      if (texts.empty()) {
        std::cout << "nothing to remember: " << source << " has no text\n";
        return 0;
      }
    }
    MemoryInput proto;
    auto type = parse_memory_type(o_.type);
    if (!type.ok()) return usage(cat("--type: ", message_of(type.status())));
    proto.type = *type;
    if (o_.importance >= 0) proto.importance = o_.importance;
    proto.collection = o_.collection;
    proto.module = o_.module.empty() ? "cli" : o_.module;
    if (daemon_) return add_through_daemon(texts, proto, source);
    if (Status s = open(false); !s.ok()) return fail(s);

    const auto start = std::chrono::steady_clock::now();
    size_t done = 0;
    std::map<MemoryTier, size_t> tiers;
    std::vector<MemoryRecord> last;
    for (size_t at = 0; at < texts.size(); at += kImportChunk) {
      std::vector<MemoryInput> chunk;
      for (size_t i = at; i < std::min(texts.size(), at + kImportChunk); ++i) {
        MemoryInput input = proto;
        input.content = std::move(texts[i]);
        chunk.push_back(std::move(input));
      }
      auto stored = store_->remember_all(std::move(chunk));
      if (!stored.ok()) {
        meter_.finish();
        if (done > 0) std::cerr << "lotus memory add: stored " << done << " before this error\n";
        return fail(stored.status());
      }
      done += stored->size();
      for (const MemoryRecord& r : *stored) ++tiers[r.tier];
      last = std::move(*stored);
      if (!source.empty()) meter_.update("importing memories", done, texts.size());
    }
    meter_.finish();
    if (source.empty()) {
      const MemoryRecord& r = last.front();
      if (o_.json) {
        std::cout << to_json(r).dump(2) << "\n";
      } else {
        std::cout << "remembered " << r.id << " (" << to_string(r.type) << ", " << to_string(r.tier)
                  << ", importance " << fixed(r.importance, 2) << ")\n";
      }
      return 0;
    }
    std::cout << "remembered " << done << " memories from " << source << " ("
              << tiers[MemoryTier::kShortTerm] << " short-term, " << tiers[MemoryTier::kLongTerm]
              << " long-term) in " << fixed(seconds_since(start), 1) << " s\n";
    return 0;
  }

  int search() {
    std::string query;
    for (const std::string& word : o_.text) query += (query.empty() ? "" : " ") + word;
    auto filter = filter_of(o_);
    if (!filter.ok()) return usage(std::string(message_of(filter.status())));
    // Hits as the memory module answers them, from the daemon or the files.
    Json results = Json::array();
    if (daemon_) {
      auto answer = daemon_->post_json(
          "/api/memory/search",
          Json{{"query", query}, {"limit", o_.limit}, {"filter", filter_json(*filter)}});
      if (!answer.ok()) return fail(answer.status());
      results = (*answer)["results"];
    } else {
      if (Status s = open(false); !s.ok()) return fail(s);
      auto hits = store_->recall(query, o_.limit, *filter);
      if (!hits.ok()) return fail(hits.status());
      for (const RecallHit& hit : *hits) results.push_back(to_json(hit));
    }
    if (o_.json) {
      for (size_t i = 0; i < results.size(); ++i) results[i]["rank"] = i + 1;
      std::cout << Json{{"query", query}, {"results", results}}.dump(2) << "\n";
      return 0;
    }
    if (results.empty()) {
      std::cout << "no memories match \"" << query << "\"\n";
      return 0;
    }
    std::cout << pad("RANK", 6) << pad("SCORE", 7) << pad("TYPE", 13) << pad("ID", 38)
              << "MEMORY\n";
    for (size_t i = 0; i < results.size(); ++i) {
      const Json& hit = results[i];
      std::cout << pad(std::to_string(i + 1), 6) << pad(fixed(hit.value("score", 0.0), 3), 7)
                << pad(hit.value("type", ""), 13) << pad(hit.value("id", ""), 38)
                << snippet(hit.value("content", ""), 70) << "\n";
    }
    return 0;
  }

  int forget() {
    auto filter = filter_of(o_);
    if (!filter.ok()) return usage(std::string(message_of(filter.status())));
    if (filter->empty()) {
      return usage(
          "give the ids to forget or a filter (--type, --module, --collection, --older-than)");
    }
    if (daemon_) return forget_through_daemon(*filter);
    if (Status s = open(false); !s.ok()) return fail(s);
    auto count = store_->count(*filter);
    if (!count.ok()) return fail(count.status());
    if (*count == 0) {
      std::cout << "no memory matches; nothing forgotten\n";
      return o_.ids.empty() ? 0 : 1;
    }
    if (!o_.yes) {
      auto shown = store_->list(*filter, 5);
      if (!shown.ok()) return fail(shown.status());
      for (const MemoryRecord& r : *shown) {
        std::cout << "  " << r.id << "  " << pad(std::string(to_string(r.type)), 12)
                  << snippet(r.content, 60) << "\n";
      }
      if (*count > shown->size()) std::cout << "  ... and " << *count - shown->size() << " more\n";
      if (!confirmed(cat(*count, *count == 1 ? " memory" : " memories"))) return 1;
    }
    auto forgotten = store_->forget(*filter);
    if (!forgotten.ok()) return fail(forgotten.status());
    std::cout << "forgot " << *forgotten << (*forgotten == 1 ? " memory\n" : " memories\n");
    return 0;
  }

  int stats() {
    if (daemon_) {
      auto answer = daemon_->get_json("/api/memory/stats");
      if (!answer.ok()) return fail(answer.status());
      Json& s = *answer;
      s.erase("ok");
      if (o_.json) {
        std::cout << s.dump(2) << "\n";
        return 0;
      }
      std::cout << "daemon       " << daemon_->url << " (" << s.value("profile", "?")
                << " profile)\n";
      print_counts(s);
      return 0;
    }
    if (Status s = open(false); !s.ok()) return fail(s);
    auto stats = store_->stats();
    if (!stats.ok()) return fail(stats.status());
    Json& s = *stats;
    if (o_.json) {
      std::cout << s.dump(2) << "\n";
      return 0;
    }
    std::cout << "folder       " << store_->database_file().parent_path().string() << "\n";
    print_counts(s);
    const Json& index = s["index"];
    std::cout << "index        " << index["vectors"].get<size_t>() << " vectors, "
              << index["deleted"].get<size_t>() << " deleted, "
              << index["journal_pending"].get<int64_t>() << " changes not yet saved; "
              << size_of(store_->index_file()) << "\n";
    std::cout << "database     " << size_of(store_->database_file()) << "\n";
    return 0;
  }

  int reindex() {
    if (daemon_) {
      return fail(
          absl::FailedPreconditionError(cat("lotus serve is running (", daemon_->url,
                                            ") with the index open; stop it first, then reindex")));
    }
    const auto start = std::chrono::steady_clock::now();
    if (Status s = open(true); !s.ok()) return fail(s);
    if (Status s = store_->save_index(); !s.ok()) return fail(s);
    auto stats = store_->stats();
    if (!stats.ok()) return fail(stats.status());
    const Json& s = *stats;
    std::cout << "reindexed: " << s["index"]["vectors"].get<size_t>()
              << " long-term vectors in the index (embedder "
              << s["embedder"]["name"].get<std::string>() << ", dimension "
              << s["embedder"]["dimension"].get<size_t>() << ") in "
              << fixed(seconds_since(start), 1) << " s\n";
    return 0;
  }

 private:
  // Embedder, counts per tier and facts, from a stats document.
  static void print_counts(const Json& s) {
    std::cout << "embedder     " << s["embedder"].value("name", "?") << " (dimension "
              << s["embedder"].value("dimension", size_t{0}) << ")\n";
    int64_t total = 0;
    for (const char* tier : {"short_term", "long_term", "archived"}) {
      const int64_t n = s["tiers"].value(tier, int64_t{0});
      total += n;
      std::cout << pad(tier, 13) << n << "\n";
    }
    std::cout << pad("total", 13) << total << "\n";
    if (s.contains("facts")) {
      std::cout << "facts        " << s["facts"].value("relations", int64_t{0})
                << " relations between " << s["facts"].value("entities", int64_t{0})
                << " entities\n";
    }
  }

  // `lotus serve` runs: its memory module has the files open, so memories go
  // through its API, one request each (a file shows progress).
  int add_through_daemon(std::vector<std::string>& texts, const MemoryInput& proto,
                         const std::string& source) {
    const auto start = std::chrono::steady_clock::now();
    Json last;
    std::map<std::string, size_t> tiers;
    for (size_t i = 0; i < texts.size(); ++i) {
      Json body = {{"content", std::move(texts[i])}, {"type", std::string(to_string(proto.type))}};
      if (proto.importance) body["importance"] = *proto.importance;
      if (!proto.collection.empty()) body["collection"] = proto.collection;
      auto stored = daemon_->post_json("/api/memory", body);
      if (!stored.ok()) {
        meter_.finish();
        if (i > 0) std::cerr << "lotus memory add: stored " << i << " before this error\n";
        return fail(stored.status());
      }
      last = (*stored)["memory"];
      ++tiers[last.value("tier", "")];
      if (!source.empty()) meter_.update("importing memories", i + 1, texts.size());
    }
    meter_.finish();
    if (source.empty()) {
      if (o_.json) {
        std::cout << last.dump(2) << "\n";
      } else {
        std::cout << "remembered " << last.value("id", "") << " (" << last.value("type", "") << ", "
                  << last.value("tier", "") << ", importance "
                  << fixed(last.value("importance", 0.0), 2) << ")\n";
      }
      return 0;
    }
    std::cout << "remembered " << texts.size() << " memories from " << source << " ("
              << tiers["short_term"] << " short-term, " << tiers["long_term"] << " long-term) in "
              << fixed(seconds_since(start), 1) << " s\n";
    return 0;
  }

  int forget_through_daemon(const MemoryFilter& filter) {
    if (!o_.yes && !confirmed(filter.ids.empty() ? std::string("every memory the filter matches")
                                                 : cat(filter.ids.size(), " memories by id"))) {
      return 1;
    }
    auto answer = daemon_->post_json("/api/memory/forget", Json{{"filter", filter_json(filter)}});
    if (!answer.ok()) return fail(answer.status());
    const int64_t forgotten = (*answer).value("forgotten", int64_t{0});
    if (forgotten == 0) {
      std::cout << "no memory matches; nothing forgotten\n";
      return filter.ids.empty() ? 0 : 1;
    }
    std::cout << "forgot " << forgotten << (forgotten == 1 ? " memory\n" : " memories\n");
    return 0;
  }

  // Asks "Forget <what> for good? [y/N]"; false (saying so) unless answered y.
  static bool confirmed(const std::string& what) {
    std::cout << "Forget " << what << " for good? [y/N] " << std::flush;
    std::string answer;
    std::getline(std::cin, answer);
    if (answer == "y" || answer == "Y" || answer == "yes") return true;
    std::cout << (std::cin ? "" : "\n")
              << "nothing forgotten (answer y to confirm, or pass --yes)\n";
    return false;
  }

  int usage(const std::string& message) {
    std::cerr << "lotus memory: " << message << "\n";
    return 2;
  }
  int fail(const Status& status) {
    meter_.finish();
    std::cerr << "lotus memory: " << message_of(status) << "\n";
    return 1;
  }

  const Config& config_;
  const MemoryCommand::Options& o_;
  ProgressMeter meter_;
  std::unique_ptr<memory::EmbeddedMemory> store_;
  std::optional<DaemonLink> daemon_;
};

}  // namespace

MemoryCommand::MemoryCommand(CLI::App& app) : options_(std::make_unique<Options>()) {
  Options& o = *options_;
  o.memory = app.add_subcommand(
      "memory",
      "Add, search, forget and inspect memories; rebuild the index.\n"
      "While `lotus serve` runs they go through its API (its memory module has the files\n"
      "open; reindex asks you to stop it). Otherwise they open the memory files in the data\n"
      "folder directly (<data_dir>/modules/memory, with modules.memory's config) and need no\n"
      "lotus running; leave an interactive lotus first, since both would write the index.");
  o.memory->require_subcommand(1);

  o.add = o.memory->add_subcommand(
      "add",
      "Remember TEXT; or, with --file FILE or lines on standard input, one memory per line\n"
      "(a bulk import, with progress)");
  o.add->add_option("TEXT", o.text, "What to remember (the words are joined)");
  o.add->add_option("--file", o.file, "Import one memory per line of FILE (- for stdin)");
  o.type = "semantic";
  o.add->add_option("--type", o.type, "semantic (default), episodic, procedural, module_state");
  o.add->add_option("--importance", o.importance, "0 to 1 (default: scored from the text)")
      ->check(CLI::Range(0.0, 1.0));
  o.add->add_option("--collection", o.collection, "A named collection");
  o.add->add_option("--module", o.module, "Who stores it (default cli)");
  o.add->add_flag("--json", o.json, "Print the stored memory as JSON");

  o.search = o.memory->add_subcommand(
      "search", "Find memories by meaning and by keyword; prints rank, score, type, id, text");
  o.search->add_option("QUERY", o.text, "What to look for")->required();
  o.search->add_option("-n,--limit", o.limit, "How many results (default 10)")
      ->check(CLI::Range(1, 1000));
  o.search->add_option("--type", o.types, "Only this type (repeatable)");
  o.search->add_option("--collection", o.collection, "Only this collection");
  o.search->add_option("--module", o.module, "Only memories this module stored");
  o.search->add_flag("--json", o.json, "Print JSON");

  o.forget = o.memory->add_subcommand(
      "forget", "Forget memories by id, or every memory a filter matches (asks first)");
  o.forget->add_option("ID", o.ids, "Ids of memories to forget");
  o.forget->add_option("--type", o.types, "Every memory of this type (repeatable)");
  o.forget->add_option("--module", o.module, "Every memory this module stored");
  o.forget->add_option("--collection", o.collection, "Every memory of this collection");
  o.forget->add_option("--older-than", o.older_than,
                       "Created longer ago than 90s, 15m, 12h, 30d...");
  o.forget->add_flag("-y,--yes", o.yes, "Do not ask for confirmation");

  o.stats =
      o.memory->add_subcommand("stats", "Counts per tier, index size, embedder and dimension");
  o.stats->add_flag("--json", o.json, "Print JSON");

  o.reindex = o.memory->add_subcommand(
      "reindex",
      "Rebuild the vector index from the database, with progress; when the configured embedder\n"
      "differs from the one the memories were made with, re-embed every memory first");
  o.reindex->add_flag("--reembed", o.reembed,
                      "Re-embed every memory even when the embedder did not change");
}

MemoryCommand::~MemoryCommand() = default;

bool MemoryCommand::selected() const { return options_->memory->parsed(); }

int MemoryCommand::run(const Config& config) {
  Session session(config, *options_);
  const Options& o = *options_;
  if (o.add->parsed()) return session.add();
  if (o.search->parsed()) return session.search();
  if (o.forget->parsed()) return session.forget();
  if (o.stats->parsed()) return session.stats();
  if (o.reindex->parsed()) return session.reindex();
  return 2;
}

}  // namespace lotus::cli
