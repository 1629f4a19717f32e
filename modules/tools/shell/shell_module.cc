// ShellModule: the built-in `shell` module, tool `run`: a command in an
// allowed folder, with a timeout and capped output, for the reasoning engine.
//
// Arguments are checked here (types, the working folder against config
// roots, the timeout against its cap); the process itself runs through
// run_process() on a thread of its own, so a long build never holds a bus
// worker. Shutdown kills every command still running.
#include <fnmatch.h>

#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../common/allowed_roots.h"
#include "../common/offload.h"
#include "../common/tool_args.h"
#include "lotus/module.h"
#include "lotus/strings.h"
#include "process_runner.h"
#include "runtime/module_factory.h"

extern char** environ;

namespace lotus::tools {
namespace {

// Output as the model sees it: valid UTF-8, with a marker when bytes were cut.
std::string shown_output(const std::string& kept, uint64_t total) {
  if (total <= kept.size()) return to_utf8(kept);
  // Cut: drop a character split by the cap rather than show it as U+FFFD.
  const size_t shown = utf8_whole(kept);
  return cat(to_utf8(std::string_view(kept).substr(0, shown)), "\n[... ", total - shown,
             " more bytes cut; the output was ", total, " bytes]");
}

class ShellModule final : public Module {
 public:
  Task<void> initialize() override {
    const Json& c = config();
    std::vector<std::string> problems;
    auto roots = AllowedRoots::from_config(c.value("roots", Json::array({"."})),
                                           c.value("deny", Json::array()), &problems);
    if (!roots.ok()) throw PermanentError(std::string(message_of(roots.status())));
    roots_ = std::move(*roots);
    problems_ = std::move(problems);
    for (const std::string& problem : problems_) log(LogLevel::kWarn, problem);

    shell_ = c.value("shell", std::string("/bin/sh"));
    auto default_timeout = number_arg(c, "default_timeout_seconds", 0.001, 1e6);
    auto max_timeout = number_arg(c, "max_timeout_seconds", 0.001, 1e6);
    auto max_output = config_int(c, "max_output_bytes", 65536, 1);
    auto env_remove = string_list(c.value("env_remove", Json::array()), "env_remove");
    for (const Status& s : {default_timeout.status(), max_timeout.status(), max_output.status(),
                            env_remove.status()}) {
      if (!s.ok()) throw PermanentError(cat("config ", message_of(s)));
    }
    max_timeout_seconds_ = max_timeout->value_or(600);
    default_timeout_seconds_ = std::min(default_timeout->value_or(30), max_timeout_seconds_);
    max_output_bytes_ = static_cast<size_t>(*max_output);
    env_remove_ = std::move(*env_remove);
    groups_ = std::make_shared<ProcessGroups>();

    tool("run", &ShellModule::run);
    co_return;
  }

  Task<void> shutdown() override {
    if (groups_) {
      size_t killed = groups_->kill_all();
      if (killed > 0) log(LogLevel::kInfo, cat("killed ", killed, " running command(s)"));
    }
    co_return;
  }

  Task<Json> health_check() override {
    Json roots = Json::array();
    for (const auto& root : roots_.roots()) roots.push_back(root.string());
    Json out{{"status", problems_.empty() ? "healthy" : "degraded"}, {"roots", std::move(roots)}};
    if (!problems_.empty()) out["problems"] = problems_;
    co_return out;
  }

 private:
  Task<ToolResult> run(const Json& args) {
    auto spec = prepare(args);
    if (!spec.ok()) co_return spec.status();
    auto job = std::make_shared<const ProcessSpec>(std::move(*spec));
    std::shared_ptr<ProcessGroups> groups = groups_;
    auto task = offload(&context(), [job, groups]() -> ToolResult {
      auto outcome = run_process(*job, *groups);
      if (!outcome.ok()) return outcome.status();
      Json result{
          {"exit_code", outcome->exit_code ? Json(*outcome->exit_code) : Json()},
          {"signal", outcome->signal ? Json(signal_name(*outcome->signal)) : Json()},
          {"timed_out", outcome->timed_out},
          {"stdout", shown_output(outcome->out, outcome->out_bytes)},
          {"stderr", shown_output(outcome->err, outcome->err_bytes)},
          {"stdout_bytes", outcome->out_bytes},
          {"stderr_bytes", outcome->err_bytes},
          {"duration_seconds",
           std::round(std::chrono::duration<double>(outcome->duration).count() * 1000) / 1000},
          {"cwd", job->cwd}};
      if (outcome->timed_out) {
        result["note"] = cat("killed after the ", job->timeout.count() / 1000.0,
                             " s timeout, with every process it started");
      }
      return result;
    });
    co_return co_await std::move(task);
  }

  Result<ProcessSpec> prepare(const Json& args) const {
    if (Status s = check_object(args); !s.ok()) return s;
    ProcessSpec spec;
    auto command = string_arg(args, "command");
    if (!command.ok()) return command.status();
    const bool has_argv = args.is_object() && args.contains("argv") && !args["argv"].is_null();
    if (*command && has_argv) {
      return absl::InvalidArgumentError(
          "command, argv: give one of them (command for a shell command line, argv for a program "
          "and its arguments), not both");
    }
    if (*command) {
      if ((*command)->empty()) return absl::InvalidArgumentError("command: is empty");
      spec.argv = {shell_, "-c", std::move(**command)};
    } else if (has_argv) {
      const Json& argv = args["argv"];
      if (!argv.is_array() || argv.empty()) {
        return absl::InvalidArgumentError(
            "argv: expected a non-empty list of strings (the program, then its arguments)");
      }
      for (size_t i = 0; i < argv.size(); ++i) {
        if (!argv[i].is_string()) {
          return absl::InvalidArgumentError(
              cat("argv[", i, "]: expected a string, got ",
                  argv[i].dump(-1, ' ', false, Json::error_handler_t::replace)));
        }
        spec.argv.push_back(argv[i].get<std::string>());
      }
      if (spec.argv[0].empty()) return absl::InvalidArgumentError("argv[0]: is empty");
    } else {
      return absl::InvalidArgumentError(
          "command: required (a shell command line), or give argv (a program and its arguments)");
    }
    for (const std::string& a : spec.argv) {
      if (a.find('\0') != std::string::npos) {
        return absl::InvalidArgumentError("command: contains a NUL byte");
      }
    }

    Result<std::filesystem::path> cwd =
        args.is_object() && args.contains("cwd") && !args["cwd"].is_null()
            ? roots_.resolve(args["cwd"], "cwd")
            : roots_.resolve_text(".", "cwd");
    if (!cwd.ok()) return cwd.status();
    std::error_code ec;
    if (!std::filesystem::is_directory(*cwd, ec)) {
      return absl::InvalidArgumentError(
          cat("cwd: \"", cwd->string(), "\" is not an existing folder"));
    }
    spec.cwd = cwd->string();

    auto timeout = number_arg(args, "timeout_seconds", 0.001, max_timeout_seconds_);
    if (!timeout.ok()) {
      return absl::InvalidArgumentError(
          cat(message_of(timeout.status()), " (config max_timeout_seconds is the upper limit)"));
    }
    spec.timeout = std::chrono::milliseconds(
        static_cast<int64_t>(std::ceil(timeout->value_or(default_timeout_seconds_) * 1000)));
    auto max_output = int_arg(args, "max_output_bytes", 1, INT64_MAX);
    if (!max_output.ok()) return max_output.status();
    spec.max_output_bytes =
        std::min(static_cast<size_t>(max_output->value_or(INT64_MAX)), max_output_bytes_);

    auto env = environment(args);
    if (!env.ok()) return env.status();
    spec.env = std::move(*env);
    return spec;
  }

  // LOTUS's environment minus config env_remove, plus the `env` argument.
  Result<std::vector<std::string>> environment(const Json& args) const {
    std::map<std::string, std::string> vars;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      std::string_view entry(*e);
      size_t eq = entry.find('=');
      if (eq == std::string_view::npos || eq == 0) continue;
      std::string name(entry.substr(0, eq));
      bool removed = false;
      for (const std::string& glob : env_remove_) {
        if (::fnmatch(glob.c_str(), name.c_str(), 0) == 0) removed = true;
      }
      if (!removed) vars[name] = std::string(entry.substr(eq + 1));
    }
    if (args.is_object() && args.contains("env") && !args["env"].is_null()) {
      const Json& env = args["env"];
      if (!env.is_object()) {
        return absl::InvalidArgumentError(
            "env: expected an object of variable names to string values");
      }
      for (const auto& [name, value] : env.items()) {
        if (name.empty() || name.find_first_of("=\0", 0, 2) != std::string::npos) {
          return absl::InvalidArgumentError(cat("env: \"", name, "\" is not a variable name"));
        }
        if (!value.is_string()) {
          return absl::InvalidArgumentError(
              cat("env.", name, ": expected a string, got ",
                  value.dump(-1, ' ', false, Json::error_handler_t::replace)));
        }
        if (value.get_ref<const std::string&>().find('\0') != std::string::npos) {
          return absl::InvalidArgumentError(cat("env.", name, ": contains a NUL byte"));
        }
        vars[name] = value.get<std::string>();
      }
    }
    std::vector<std::string> out;
    out.reserve(vars.size());
    for (const auto& [name, value] : vars) out.push_back(cat(name, "=", value));
    return out;
  }

  AllowedRoots roots_;
  std::vector<std::string> problems_;
  std::string shell_ = "/bin/sh";
  double default_timeout_seconds_ = 30;
  double max_timeout_seconds_ = 600;
  size_t max_output_bytes_ = 65536;
  std::vector<std::string> env_remove_;
  std::shared_ptr<ProcessGroups> groups_;
};

static RegisterBuiltinModule<ShellModule> registered("shell");

}  // namespace
}  // namespace lotus::tools
