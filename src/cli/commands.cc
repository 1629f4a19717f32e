#include "cli/commands.h"

#include <poll.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <deque>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>

#include <editline/readline.h>
#include <spdlog/spdlog.h>

#include "absl/strings/str_join.h"
#include "cli/chat_view.h"
#include "cli/daemon_link.h"
#include "cli/signals.h"
#include "core/dependency_graph.h"
#include "core/nucleus.h"
#include "llm/provider_check.h"
#include "llm/provider_router.h"
#include "lotus/strings.h"

namespace lotus::cli {
namespace {

std::mutex output_mutex;  // the bus taps print from pool threads

std::string pad(std::string text, size_t width) {
  if (text.size() < width) text.append(width - text.size(), ' ');
  return text;
}

void print_module_table(const std::vector<ModuleSummary>& modules) {
  std::cout << pad("MODULE", 22) << pad("VERSION", 12) << pad("TYPE", 13) << "STATE\n";
  for (const auto& m : modules) {
    std::cout << pad(m.name, 22) << pad(m.version, 12) << pad(m.type, 13) << m.state;
    if (!m.error.empty()) std::cout << "  (" << m.error << ")";
    std::cout << "\n";
  }
  if (modules.empty()) std::cout << "(no modules found in the module folders)\n";
}

void print_health(const Json& health) {
  const Json& process = health["process"];
  std::cout << "status " << health["status"].get<std::string>() << " · lotus "
            << health["version"].get<std::string>() << " · booted in "
            << health["boot_ms"].get<int64_t>() << " ms · rss "
            << process["rss_bytes"].get<uint64_t>() / (1024 * 1024) << " MB · cpu " << std::fixed
            << std::setprecision(2)
            << process["cpu_user_seconds"].get<double>() +
                   process["cpu_system_seconds"].get<double>()
            << " s\n";
  if (const Json& llm = health["llm"]; llm.is_object()) {
    std::cout << "llm " << (llm.value("ready", false) ? "ready" : "not ready");
    if (llm.contains("problem")) std::cout << " (" << llm["problem"].get<std::string>() << ")";
    Json providers = Json::object();
    if (llm.contains("usage")) providers = llm["usage"].value("providers", Json::object());
    for (const auto& [provider, t] : providers.items()) {
      std::cout << " · " << provider << ": " << t.value("requests", 0) << " requests, "
                << t.value("input_tokens", 0) << "+" << t.value("output_tokens", 0) << " tokens, $"
                << std::setprecision(4) << t.value("cost_usd", 0.0);
    }
    std::cout << "\n";
  }
  if (const Json& tools = health["tools"]; tools.is_object()) {
    std::cout << "tools " << tools.value("registered", 0) << " registered · "
              << tools.value("calls", 0) << " calls, " << tools.value("denied", 0) << " denied, "
              << tools.value("failed", 0) << " failed, " << tools.value("timed_out", 0)
              << " timed out · " << tools.value("pending_approvals", 0) << " approvals waiting\n";
  }
  std::cout << std::setprecision(2) << pad("MODULE", 22) << pad("STATE", 10) << pad("RESTARTS", 10)
            << pad("HANDLED", 10) << pad("ERRORS", 8) << pad("MAILBOX", 10)
            << "LATENCY p50/p99 (us)\n";
  for (const auto& [name, m] : health["modules"].items()) {
    if (!m.contains("mailbox")) {
      std::cout << pad(name, 22) << pad(m.value("state", ""), 10) << m.value("last_error", "")
                << "\n";
      continue;
    }
    std::ostringstream latency;
    latency << std::fixed << std::setprecision(1) << m["latency_us"]["p50"].get<double>() << "/"
            << m["latency_us"]["p99"].get<double>();
    std::cout << pad(name, 22) << pad(m["state"].get<std::string>(), 10)
              << pad(std::to_string(m["restarts"].get<uint64_t>()), 10)
              << pad(std::to_string(m["events_handled"].get<uint64_t>()), 10)
              << pad(std::to_string(m["errors"].get<uint64_t>()), 8)
              << pad(cat(m["mailbox"]["depth"].get<uint64_t>(), "/",
                         m["mailbox"]["capacity"].get<uint64_t>()),
                     10)
              << latency.str() << "\n";
  }
}

std::string describe_event(const Event& event) {
  std::string data = event.data.dump();
  if (data.size() > 200) data = data.substr(0, 197) + "...";
  std::ostringstream out;
  out << std::fixed << std::setprecision(3) << event.timestamp << "  " << pad(event.channel, 28)
      << " " << pad(event.source, 16) << " " << data;
  return out.str();
}

// The router the `llm:` config describes, with relative files (scripts, key
// files) resolved beside the config file.
Result<std::unique_ptr<llm::ProviderRouter>> make_router(const Config& config) {
  llm::ProviderContext context;
  if (!config.config_file.empty()) context.base_dir = config.config_file.parent_path();
  return llm::ProviderRouter::create(config.llm, context);
}

// One line for the session banner: each configured LLM provider and whether
// it has what it needs (a key, a script). Local servers are not contacted.
std::string llm_status_line(const Config& config) {
  auto router = make_router(config);
  if (!router.ok()) return cat("LLM config problem: ", message_of(router.status()));
  std::string line = "LLM providers: ";
  bool first = true;
  for (const auto& entry : (*router)->describe()) {
    line = cat(line, first ? "" : "; ", entry);
    first = false;
  }
  if (first) {
    line += "none configured (set ANTHROPIC_API_KEY or OPENAI_API_KEY, or llm.providers)";
  } else if (Status model = (*router)->default_model_ready(); !model.ok()) {
    line = cat(line, "\n", message_of(model));
  } else {
    line = cat(line, "\nrequests go to ", (*router)->default_model(),
               " unless a module names a model");
  }
  return line;
}

}  // namespace

// Boots a nucleus with signals routed to request_stop(); returns it booted,
// or null after printing why it could not boot.
std::unique_ptr<Nucleus> boot(const Config& config, SignalWatcher& signals,
                              std::atomic<Nucleus*>& current, std::string_view command) {
  auto created = Nucleus::create(config);
  if (!created.ok()) {
    std::cerr << command << ": cannot boot: " << message_of(created.status()) << "\n";
    return nullptr;
  }
  std::unique_ptr<Nucleus> nucleus = *std::move(created);
  current.store(nucleus.get());
  Status status = nucleus->boot();
  if (!status.ok()) {
    std::cerr << command << ": cannot boot: " << message_of(status) << "\n";
    current.store(nullptr);
    return nullptr;
  }
  (void)signals;
  return nucleus;
}

Status apply_flags(const GlobalOptions& flags, Config& config) {
  if (!flags.module_dirs.empty()) {
    config.module_dirs.clear();
    for (const auto& dir : flags.module_dirs) {
      config.module_dirs.push_back(std::filesystem::absolute(dir));
    }
  }
  if (!flags.data_dir.empty()) config.data_dir = std::filesystem::absolute(flags.data_dir);
  if (!flags.log_level.empty()) config.log_level = flags.log_level;
  if (!flags.bus.empty()) config.bus = flags.bus;
  if (flags.threads >= 0) config.threads = static_cast<size_t>(flags.threads);
  if (flags.idle_spin_us != -1) {
    if (flags.idle_spin_us < 0) {
      return absl::InvalidArgumentError(
          cat("--idle-spin-us: expected microseconds, 0 or more, got ", flags.idle_spin_us));
    }
    config.idle_spin = std::chrono::microseconds(flags.idle_spin_us);
  }
  return validate(config);
}

int run_check(const Config& config, const std::vector<std::string>& dirs) {
  std::vector<std::filesystem::path> folders;
  for (const auto& dir : dirs) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
      std::cerr << "lotus check: " << dir << ": not a folder\n";
      return 2;
    }
    folders.emplace_back(dir);
  }
  if (folders.empty()) folders = config.module_dirs;
  Discovery found = discover_modules(folders);
  int errors = 0;
  for (const auto& [path, status] : found.errors) {
    std::cout << "error: " << message_of(status) << "\n";
    ++errors;
  }
  ResolvedOrder order = resolve_load_order(found.manifests);
  for (const auto& [name, status] : order.excluded) {
    std::cout << "error: " << message_of(status) << "\n";
    ++errors;
  }
  std::cout << "load order:";
  if (order.order.empty()) std::cout << " (nothing to load)";
  std::cout << "\n";
  int index = 1;
  for (const Manifest* m : order.order) {
    std::cout << "  " << index++ << ". " << pad(m->name, 20) << pad(m->version.to_string(), 10)
              << pad(std::string(to_string(m->type)), 12) << to_string(m->priority);
    if (!m->dependencies.modules.empty()) {
      std::vector<std::string> deps;
      for (const auto& d : m->dependencies.modules) deps.push_back(d.to_string());
      std::cout << "  needs " << absl::StrJoin(deps, ", ");
    }
    std::cout << "\n";
  }
  std::cout << found.manifests.size() + found.errors.size() << " manifests checked, " << errors
            << (errors == 1 ? " error" : " errors") << "\n";
  return errors == 0 ? 0 : 1;
}

int run_modules(const Config& config, bool json) {
  std::vector<ModuleSummary> modules;
  std::unique_ptr<Nucleus> nucleus;
  std::atomic<Nucleus*> current{nullptr};
  SignalWatcher signals([&current](int) {
    if (Nucleus* n = current.load()) n->request_stop();
  });
  if (auto daemon = find_running_daemon(config)) {
    auto listed = daemon->get_json("/api/modules");
    if (!listed.ok()) {
      std::cerr << "lotus modules: " << message_of(listed.status()) << "\n";
      return 1;
    }
    for (const Json& m : listed->value("modules", Json::array())) {
      modules.push_back(ModuleSummary{m.value("name", ""),
                                      m.value("version", ""),
                                      m.value("type", ""),
                                      m.value("state", ""),
                                      m.value("error", ""),
                                      {}});
    }
  } else {
    nucleus = boot(config, signals, current);
    if (!nucleus) return 1;
    modules = nucleus->modules();
  }
  if (json) {
    Json out = Json::array();
    for (const auto& m : modules) {
      out.push_back(Json{{"name", m.name},
                         {"version", m.version},
                         {"type", m.type},
                         {"state", m.state},
                         {"error", m.error}});
    }
    std::cout << out.dump(2) << "\n";
  } else {
    print_module_table(modules);
  }
  if (nucleus) nucleus->shutdown().IgnoreError();
  return 0;
}

int run_health(const Config& config, bool json) {
  Json health;
  std::unique_ptr<Nucleus> nucleus;
  std::atomic<Nucleus*> current{nullptr};
  SignalWatcher signals([&current](int) {
    if (Nucleus* n = current.load()) n->request_stop();
  });
  if (auto daemon = find_running_daemon(config)) {
    auto answered = daemon->get_json("/health");
    if (!answered.ok()) {
      std::cerr << "lotus health: " << message_of(answered.status()) << "\n";
      return 1;
    }
    health = *std::move(answered);
  } else {
    nucleus = boot(config, signals, current);
    if (!nucleus) return 1;
    health = nucleus->health();
  }
  if (json) {
    std::cout << health.dump(2) << "\n";
  } else {
    print_health(health);
  }
  if (nucleus) nucleus->shutdown().IgnoreError();
  return health["status"] == "healthy" ? 0 : 1;
}

int run_events(const Config& config, const std::string& pattern, bool json) {
  if (Status s = validate_pattern(pattern); !s.ok()) {
    std::cerr << "lotus events: " << message_of(s) << "\n";
    return 2;
  }
  if (auto daemon = find_running_daemon(config)) {
    SignalWatcher signals;
    DaemonEventReader reader(*daemon, pattern, [json](EventPtr event) {
      std::lock_guard lock(output_mutex);
      std::cout << (json ? to_json(*event).dump() : describe_event(*event)) << std::endl;
    });
    if (!reader.open()) {
      std::cerr << "lotus events: cannot follow the daemon at " << daemon->url << ": "
                << reader.error() << "\n";
      return 1;
    }
    pollfd fds[1] = {{signals.fd(), POLLIN, 0}};
    while (!reader.ended()) {
      if (poll(fds, 1, 200) > 0 && signals.take() != 0) break;
    }
    const bool dropped = reader.ended();
    reader.stop();
    if (dropped) {
      std::cerr << "lotus events: the daemon ended the stream: " << reader.end_reason() << "\n";
      return 1;
    }
    return 0;
  }
  std::atomic<Nucleus*> current{nullptr};
  SignalWatcher signals([&current](int) {
    if (Nucleus* n = current.load()) n->request_stop();
  });
  // Subscribe before boot so system.boot and module_loaded are seen too:
  // boot() is what starts publishing.
  auto created = Nucleus::create(config);
  if (!created.ok()) {
    std::cerr << "lotus: cannot boot: " << message_of(created.status()) << "\n";
    return 1;
  }
  std::unique_ptr<Nucleus> nucleus = *std::move(created);
  current.store(nucleus.get());
  Subscriber tap;
  tap.tap = [json](const EventPtr& event) {
    std::lock_guard lock(output_mutex);
    std::cout << (json ? to_json(*event).dump() : describe_event(*event)) << std::endl;
  };
  auto id = nucleus->bus().subscribe(pattern, SubscriptionFilter(), tap);
  if (!id.ok()) {
    std::cerr << "lotus events: " << message_of(id.status()) << "\n";
    return 2;
  }
  if (Status s = nucleus->boot(); !s.ok()) {
    std::cerr << "lotus: cannot boot: " << message_of(s) << "\n";
    return 1;
  }
  pollfd fds[1] = {{signals.fd(), POLLIN, 0}};
  while (!nucleus->stop_requested()) {
    if (poll(fds, 1, 500) > 0) signals.take();
  }
  nucleus->shutdown().IgnoreError();
  return 0;
}

namespace {

// Bus events a session or `lotus ask` reacts to, handed from the pool
// threads to the main thread through a pipe, so that all terminal output and
// every readline call happen on one thread.
class Inbox {
 public:
  Inbox() {
    if (pipe(fds_) != 0) fds_[0] = fds_[1] = -1;
  }
  ~Inbox() {
    for (int fd : fds_) {
      if (fd >= 0) close(fd);
    }
  }
  int fd() const { return fds_[0]; }
  void push(EventPtr event) {
    {
      std::lock_guard lock(mutex_);
      events_.push_back(std::move(event));
    }
    char byte = 1;
    (void)!write(fds_[1], &byte, 1);
  }
  std::vector<EventPtr> take() {
    char buffer[256];
    (void)!read(fds_[0], buffer, sizeof buffer);
    std::lock_guard lock(mutex_);
    std::vector<EventPtr> out(events_.begin(), events_.end());
    events_.clear();
    return out;
  }
  // Taps for `patterns`, unsubscribed when the inbox's owner says so.
  std::vector<SubscriptionId> subscribe(Bus& bus, std::initializer_list<const char*> patterns) {
    std::vector<SubscriptionId> ids;
    for (const char* pattern : patterns) {
      Subscriber tap;
      tap.tap = [this](const EventPtr& event) { push(event); };
      if (auto id = bus.subscribe(pattern, SubscriptionFilter(), std::move(tap)); id.ok()) {
        ids.push_back(*id);
      }
    }
    return ids;
  }

 private:
  int fds_[2] = {-1, -1};
  std::mutex mutex_;
  std::deque<EventPtr> events_;
};

bool is_yes(std::string answer) {
  for (char& c : answer) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  while (!answer.empty() && (answer.back() == ' ' || answer.back() == '\r')) answer.pop_back();
  return answer == "y" || answer == "yes";
}

Status answer_approval(Nucleus& nucleus, const Json& request, bool approved,
                       std::string reason = {}) {
  Json data = {{"approval_id", request.value("approval_id", "")}, {"approved", approved}};
  if (!reason.empty()) data["reason"] = std::move(reason);
  Event answer = Event::make("perception.approval_response", "cli", std::move(data));
  answer.metadata.trace_id = request.value("trace_id", "");
  return nucleus.publish(std::move(answer)).status();
}

// One interactive session. libedit's callback interface lets us poll() the
// terminal beside the signal pipe and the bus inbox, so SIGTERM ends the
// session cleanly even while it waits for a line.
class Session {
 public:
  Session(Nucleus& nucleus, SignalWatcher& signals)
      : nucleus_(nucleus), signals_(signals), view_(isatty(STDOUT_FILENO) != 0) {}

  int run() {
    tty_ = isatty(STDIN_FILENO) != 0;
    subscriptions_ = inbox_.subscribe(
        nucleus_.bus(), {"action.display", "action.approval_request", "cognition.task_complete"});
    if (tty_) {
      std::cout << "LOTUS " << LOTUS_VERSION << " · " << nucleus_.modules().size()
                << " modules · type /help for commands, Ctrl-D to leave\n"
                << llm_status_line(nucleus_.config()) << "\n";
      active_ = this;
      rl_callback_handler_install(kPrompt, &Session::on_line);
    }
    pollfd fds[3] = {
        {STDIN_FILENO, POLLIN, 0}, {signals_.fd(), POLLIN, 0}, {inbox_.fd(), POLLIN, 0}};
    std::string pending;
    while (!done_) {
      if (poll(fds, 3, -1) < 0) continue;
      if (fds[2].revents & POLLIN) {
        for (const EventPtr& event : inbox_.take()) on_event(*event);
      }
      if (fds[1].revents & POLLIN) {
        int sig = signals_.take();
        if (sig == SIGINT && tty_) {
          if (interrupt()) break;
          continue;
        }
        if (sig != 0) break;
      }
      if (fds[0].revents & (POLLIN | POLLHUP)) {
        if (tty_) {
          rl_callback_read_char();
          if (line_entered_) {
            // libedit keeps an entered line in its buffer until the next
            // key, and would draw it again under output that arrives
            // meanwhile: starting the handler afresh clears it.
            line_entered_ = false;
            rl_callback_handler_remove();
            rl_callback_handler_install(prompt_.c_str(), &Session::on_line);
          }
        } else {
          char buffer[4096];
          ssize_t n = read(STDIN_FILENO, buffer, sizeof buffer);
          if (n <= 0) break;
          pending.append(buffer, static_cast<size_t>(n));
          for (size_t eol; (eol = pending.find('\n')) != std::string::npos;) {
            handle(pending.substr(0, eol));
            pending.erase(0, eol + 1);
          }
        }
      }
    }
    for (SubscriptionId id : subscriptions_) nucleus_.bus().unsubscribe(id);
    // Approvals nobody answered are refused rather than left to time out.
    for (const Json& request : approvals_) answer_approval(nucleus_, request, false).IgnoreError();
    if (tty_) {
      rl_callback_handler_remove();
      active_ = nullptr;
      std::cout << "\n";
    }
    return 0;
  }

 private:
  static constexpr const char* kPrompt = "lotus> ";

  static void on_line(char* line) {
    if (active_ == nullptr) return;
    if (line == nullptr) {  // Ctrl-D
      active_->done_ = true;
      return;
    }
    if (*line != '\0' && active_->approvals_.empty()) add_history(line);
    std::string text = line;
    free(line);
    active_->line_entered_ = true;
    active_->handle(std::move(text));
  }

  // Ctrl-C: cancels what this session asked for; with nothing running, a
  // second press within two seconds leaves. Returns true to leave.
  bool interrupt() {
    if (!my_tasks_.empty()) {
      for (const std::string& task : my_tasks_) {
        Event cancel = Event::make("cognition.cancel", "cli", Json{{"task_id", task}});
        cancel.metadata.trace_id = task;
        nucleus_.publish(std::move(cancel)).IgnoreError();
      }
      print(view_.close_line() + "(cancelling)\n");
      return false;
    }
    auto now = std::chrono::steady_clock::now();
    if (now - last_interrupt_ < std::chrono::seconds(2)) return true;
    last_interrupt_ = now;
    print("\n(press Ctrl-C again to leave, or type /quit)\n");
    return false;
  }

  void on_event(const Event& event) {
    if (event.channel == "action.approval_request") {
      approvals_.push_back(event.data);
      if (approvals_.size() == 1) ask_next_approval();
      return;
    }
    if (event.channel == "cognition.task_complete") {
      my_tasks_.erase(event.data.value("task_id", ""));
      return;
    }
    print(view_.render(event));
  }

  void ask_next_approval() {
    if (approvals_.empty()) {
      prompt_ = kPrompt;
      if (tty_) rl_set_prompt(prompt_.c_str());
      redraw();
      return;
    }
    std::string question = view_.approval_question(approvals_.front(), tty_);
    if (tty_) {
      print(view_.close_line());
      prompt_ = question;
      {
        std::lock_guard lock(output_mutex);
        std::cout << "\r\033[K" << std::flush;  // the old prompt goes
      }
      rl_set_prompt(prompt_.c_str());
      redraw();
    } else {
      std::cout << question << std::endl;
    }
  }

  // Writes above the prompt line, then draws the prompt (and what the
  // person has typed so far) again, unless a reply is still streaming.
  void print(const std::string& text) {
    if (text.empty()) return;
    std::lock_guard lock(output_mutex);
    if (tty_ && !streaming_) std::cout << "\r\033[K";
    std::cout << text << std::flush;
    streaming_ = view_.mid_line();
    if (!streaming_) redraw();
  }

  void redraw() {
    if (tty_ && !streaming_) rl_forced_update_display();
  }

  void handle(std::string line) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!approvals_.empty()) {
      Json request = approvals_.front();
      approvals_.erase(approvals_.begin());
      bool yes = is_yes(line);
      Status sent = answer_approval(nucleus_, request, yes);
      {
        std::lock_guard lock(output_mutex);
        std::cout << (sent.ok() ? (yes ? "(approved)\n" : "(denied)\n")
                                : cat("(answer not sent: ", message_of(sent), ")\n"))
                  << std::flush;
      }
      ask_next_approval();
      return;
    }
    if (line.empty()) return;
    if (line[0] == '/') {
      command(line);
      return;
    }
    Event event = Event::make("perception.user_input", "cli", Json{{"text", line}});
    event.metadata.user_id = std::getenv("USER") ? std::getenv("USER") : "user";
    event.metadata.trace_id = event.id.to_string();
    std::string task = event.metadata.trace_id;
    auto routed = nucleus_.publish(std::move(event));
    std::lock_guard lock(output_mutex);
    if (!routed.ok()) {
      std::cout << "(not sent: " << message_of(routed.status()) << ")\n";
    } else if (*routed == 0) {
      std::cout << "(no module handles perception.user_input yet: nothing will answer. "
                   "/modules shows what is loaded)\n";
    } else {
      my_tasks_.insert(task);
    }
    std::cout << std::flush;
  }

  void command(const std::string& line) {
    std::lock_guard lock(output_mutex);
    if (line == "/quit" || line == "/exit") {
      done_ = true;
    } else if (line == "/modules") {
      print_module_table(nucleus_.modules());
    } else if (line == "/health") {
      print_health(nucleus_.health());
    } else if (line == "/tools") {
      for (const auto& tool : *nucleus_.tools().list()) {
        std::cout << pad(tool->qualified, 28) << pad(std::string(llm::to_string(tool->risk)), 8)
                  << tool->description.substr(0, 80) << "\n";
      }
    } else if (line.rfind("/reload ", 0) == 0) {
      Status s = nucleus_.reload_module(line.substr(8));
      std::cout << (s.ok() ? "reloaded" : std::string(message_of(s))) << "\n";
    } else {
      std::cout << "commands: /modules  /health  /tools  /reload NAME  /quit\n"
                   "anything else is sent to LOTUS as perception.user_input; Ctrl-C cancels "
                   "what is running\n";
    }
    // readline writes the next prompt straight to the terminal: what we
    // printed must be out before it.
    std::cout << std::flush;
  }

  static inline Session* active_ = nullptr;
  Nucleus& nucleus_;
  SignalWatcher& signals_;
  ChatView view_;
  Inbox inbox_;
  std::vector<SubscriptionId> subscriptions_;
  std::vector<Json> approvals_;     // waiting for an answer, oldest first
  std::set<std::string> my_tasks_;  // asked from here, not finished yet
  bool tty_ = false;
  bool done_ = false;
  bool streaming_ = false;
  bool line_entered_ = false;
  std::string prompt_ = kPrompt;  // what the line editor shows (kept alive for it)
  std::chrono::steady_clock::time_point last_interrupt_{};
};

}  // namespace

int run_interactive(const Config& config) {
  std::atomic<Nucleus*> current{nullptr};
  SignalWatcher signals([&current](int sig) {
    // SIGINT at the prompt is handled by the session; SIGTERM and SIGHUP
    // also stop a boot that is still loading modules.
    if (sig == SIGINT) return;
    if (Nucleus* n = current.load()) n->request_stop();
  });
  auto nucleus = boot(config, signals, current);
  if (!nucleus) return 1;
  int code = 0;
  if (!nucleus->stop_requested()) code = Session(*nucleus, signals).run();
  Status status = nucleus->shutdown();
  if (!status.ok()) std::cerr << "lotus: shutdown: " << message_of(status) << "\n";
  return code;
}

namespace {

// What following a task needs from whoever runs it: the nucleus of this
// process, or a running daemon reached over its API.
struct TaskRunner {
  std::function<void(const Json& approval, bool approved, std::string reason)> answer;
  std::function<void()> cancel;
  std::function<bool()> stopped;
};

// Shows the task's events as they arrive in `inbox`, asks for approvals on
// the terminal, cancels on Ctrl-C; returns 0 answered, 1 failed, 130
// cancelled.
int follow_task(Inbox& inbox, SignalWatcher& signals, const std::string& task,
                const AskOptions& options, const TaskRunner& runner) {
  const bool interactive = isatty(STDIN_FILENO) != 0;
  const bool stdout_tty = isatty(STDOUT_FILENO) != 0;
  ChatView view(stdout_tty && !options.json);
  std::vector<Json> approvals;  // the first is being asked
  std::string typed;
  int code = -1;
  bool cancelling = false;
  auto allowed = [&](const Json& request) {
    const std::string tool = request.value("tool", "");
    for (const std::string& pattern : options.allow) {
      if (glob_matches(pattern, tool)) return true;
    }
    return false;
  };
  auto ask_next = [&] {
    while (!approvals.empty() && allowed(approvals.front())) {
      runner.answer(approvals.front(), true, "allowed with --allow");
      approvals.erase(approvals.begin());
    }
    if (approvals.empty()) return;
    if (interactive) {
      std::cout << view.close_line() << std::flush;
      std::cerr << view.approval_question(approvals.front()) << std::flush;
      return;
    }
    const Json request = approvals.front();
    approvals.erase(approvals.begin());
    std::cerr << "lotus ask: " << request.value("tool", "?")
              << " needs a person's approval and stdin is not a terminal: denied. Allow it with "
                 "--allow "
              << request.value("tool", "?") << " (or tools.policy in the config).\n";
    runner.answer(request, false, "nobody could be asked: stdin is not a terminal");
  };
  while (code < 0 && !runner.stopped()) {
    pollfd fds[3] = {{inbox.fd(), POLLIN, 0},
                     {signals.fd(), POLLIN, 0},
                     {approvals.empty() || !interactive ? -1 : STDIN_FILENO, POLLIN, 0}};
    if (poll(fds, 3, 200) < 0) continue;
    if (fds[1].revents & POLLIN) {
      int sig = signals.take();
      if (sig == SIGINT && !cancelling) {
        cancelling = true;
        runner.cancel();
      } else if (sig != 0 && sig != SIGINT) {
        break;
      }
    }
    if (fds[2].revents & (POLLIN | POLLHUP)) {
      char buffer[256];
      ssize_t n = read(STDIN_FILENO, buffer, sizeof buffer);
      if (n > 0) typed.append(buffer, static_cast<size_t>(n));
      size_t eol = typed.find('\n');
      if (n <= 0 || eol != std::string::npos) {
        bool yes = n > 0 && is_yes(typed.substr(0, eol));
        typed.clear();
        runner.answer(approvals.front(), yes, {});
        approvals.erase(approvals.begin());
        ask_next();
      }
    }
    if (!(fds[0].revents & POLLIN)) continue;
    for (const EventPtr& event : inbox.take()) {
      if (event->metadata.trace_id != task) continue;
      if (event->channel == "action.approval_request") {
        approvals.push_back(event->data);
        if (approvals.size() == 1) ask_next();
      } else if (event->channel == "cognition.task_complete") {
        if (options.json) std::cout << event->data.dump(2) << "\n";
        std::cout << view.close_line() << std::flush;
        code = event->data.value("ok", false) ? 0 : 1;
      } else if (event->channel == "action.display" && !options.json) {
        // The answer goes to stdout; what LOTUS did on the way, to stderr.
        // On a terminal the reply streams; into a file or pipe only the
        // final answer goes, without the text of turns that called tools.
        std::string kind = event->data.value("kind", "");
        bool answer_part = kind == "delta" || kind == "message";
        if (!stdout_tty) {
          if (kind == "message") std::cout << event->data.value("text", "") << "\n" << std::flush;
          if (!answer_part) std::cerr << view.render(*event) << std::flush;
          continue;
        }
        if (!answer_part) std::cout << view.close_line() << std::flush;
        std::string text = view.render(*event);
        (answer_part ? std::cout : std::cerr) << text << std::flush;
      }
    }
  }
  for (const Json& request : approvals) runner.answer(request, false, {});
  if (code < 0) return 1;
  return cancelling && code != 0 ? 130 : code;
}

// `lotus ask` through a running daemon: its event stream carries the task,
// its API takes the request, the approvals and the cancel.
int ask_daemon(const DaemonLink& daemon, const AskOptions& options) {
  SignalWatcher signals;
  Inbox inbox;
  // The stream is open before the request goes, so no event of the task is missed.
  DaemonEventReader reader(daemon, "**", [&inbox](EventPtr event) {
    const std::string& channel = event->channel;
    if (channel == "action.display" || channel == "action.approval_request" ||
        channel == "cognition.task_complete") {
      inbox.push(std::move(event));
    }
  });
  if (!reader.open()) {
    std::cerr << "lotus ask: cannot follow the daemon at " << daemon.url << ": " << reader.error()
              << "\n";
    return 1;
  }
  api::ApiClient client = daemon.client();
  const std::string conversation = options.conversation.empty()
                                       ? cat("ask-", EventId::generate().to_string())
                                       : options.conversation;
  auto accepted = client.post(cat("/api/conversations/", conversation, "/messages"),
                              Json{{"text", options.text}, {"wait", false}});
  if (accepted.status != 202) {
    std::cerr << "lotus ask: the daemon at " << daemon.url
              << " did not take the request: " << accepted.error_message() << "\n";
    return 1;
  }
  const std::string task = accepted.json().value("trace_id", "");
  TaskRunner runner;
  runner.answer = [&client](const Json& approval, bool approved, std::string reason) {
    Json body = {{"approved", approved}};
    if (!reason.empty()) body["reason"] = std::move(reason);
    client.post(cat("/api/approvals/", approval.value("approval_id", "")), body);
  };
  runner.cancel = [&client, &task] {
    client.post("/api/events",
                Json{{"channel", "cognition.cancel"}, {"data", {{"task_id", task}}}});
  };
  runner.stopped = [&reader] { return reader.ended(); };
  int code = follow_task(inbox, signals, task, options, runner);
  if (reader.ended()) {
    std::cerr << "lotus ask: the daemon ended the event stream: " << reader.end_reason() << "\n";
  }
  reader.stop();
  return code;
}

}  // namespace

int run_ask(Config config, const AskOptions& options) {
  if (options.text.empty()) {
    std::cerr << "lotus ask: nothing to ask; give the request as an argument\n";
    return 2;
  }
  if (auto daemon = find_running_daemon(config)) return ask_daemon(*daemon, options);
  for (const std::string& pattern : options.allow)
    config.tools.policy.emplace_back(pattern, "allow");
  std::atomic<Nucleus*> current{nullptr};
  SignalWatcher signals([&current](int sig) {
    if (sig == SIGINT) return;  // cancels the task, below
    if (Nucleus* n = current.load()) n->request_stop();
  });
  auto nucleus = boot(config, signals, current);
  if (!nucleus) return 1;

  Inbox inbox;
  auto subscriptions = inbox.subscribe(
      nucleus->bus(), {"action.display", "action.approval_request", "cognition.task_complete"});
  Event input = Event::make("perception.user_input", "cli", Json{{"text", options.text}});
  input.metadata.user_id = std::getenv("USER") ? std::getenv("USER") : "user";
  input.metadata.trace_id = input.id.to_string();
  const std::string task = input.metadata.trace_id;
  input.data["conversation_id"] =
      options.conversation.empty() ? cat("ask-", task) : options.conversation;
  auto routed = nucleus->publish(std::move(input));
  if (!routed.ok() || *routed == 0) {
    std::cerr << "lotus ask: "
              << (routed.ok() ? std::string("no module handles perception.user_input (is the "
                                            "reasoning module disabled or failed? see lotus "
                                            "modules)")
                              : std::string(message_of(routed.status())))
              << "\n";
    nucleus->shutdown().IgnoreError();
    return 1;
  }
  TaskRunner runner;
  runner.answer = [&nucleus](const Json& approval, bool approved, std::string reason) {
    answer_approval(*nucleus, approval, approved, std::move(reason)).IgnoreError();
  };
  runner.cancel = [&nucleus, &task] {
    Event cancel = Event::make("cognition.cancel", "cli", Json{{"task_id", task}});
    cancel.metadata.trace_id = task;
    nucleus->publish(std::move(cancel)).IgnoreError();
  };
  runner.stopped = [&nucleus] { return nucleus->stop_requested(); };
  int code = follow_task(inbox, signals, task, options, runner);
  for (SubscriptionId id : subscriptions) nucleus->bus().unsubscribe(id);
  Status status = nucleus->shutdown();
  if (!status.ok()) std::cerr << "lotus: shutdown: " << message_of(status) << "\n";
  return code;
}

int run_providers(const Config& config, const ProvidersOptions& options) {
  auto router = make_router(config);
  if (!router.ok()) {
    std::cerr << "lotus providers: " << message_of(router.status()) << "\n";
    return 2;
  }
  if (!options.offline) {
    auto checks = llm::check_providers(**router, std::chrono::milliseconds(options.timeout_ms));
    if (options.json) {
      std::cout << llm::checks_to_json(checks).dump(2) << "\n";
    } else {
      for (const auto& line : llm::format_checks(checks)) std::cout << line << "\n";
      if (checks.empty()) std::cout << "no LLM provider is configured (llm.providers)\n";
    }
    return llm::any_usable(checks) ? 0 : 1;
  }
  Status ready = (*router)->ready();
  if (ready.ok()) ready = (*router)->default_model_ready();
  bool json = options.json;
  if (json) {
    Json out = Json{{"ready", ready.ok()}, {"providers", (*router)->describe()}};
    if (!ready.ok()) out["hint"] = std::string(message_of(ready));
    std::cout << out.dump(2) << "\n";
  } else {
    for (const auto& line : (*router)->describe()) std::cout << line << "\n";
    if (!ready.ok()) std::cout << message_of(ready) << "\n";
  }
  return ready.ok() ? 0 : 1;
}

}  // namespace lotus::cli
