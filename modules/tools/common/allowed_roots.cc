#include "allowed_roots.h"

#include <system_error>

#include "lotus/strings.h"
#include "tool_args.h"

namespace lotus::tools {
namespace fs = std::filesystem;

bool is_within(const fs::path& path, const fs::path& dir) {
  const std::string& p = path.native();
  const std::string& d = dir.native();
  if (p.size() < d.size() || p.compare(0, d.size(), d) != 0) return false;
  return p.size() == d.size() || d.back() == '/' || p[d.size()] == '/';
}

Result<AllowedRoots> AllowedRoots::from_config(const Json& roots, const Json& deny,
                                               std::vector<std::string>* problems) {
  auto list = string_list(roots, "roots");
  if (!list.ok()) return list.status();
  auto deny_list = string_list(deny, "deny");
  if (!deny_list.ok()) return deny_list.status();
  std::vector<fs::path> denied;
  for (const std::string& text : *deny_list) {
    auto expanded = expand_home(text, "config deny entry");
    if (!expanded.ok()) continue;  // no HOME: "~/..." names nothing
    std::error_code ec;
    fs::path path = fs::absolute(*expanded, ec).lexically_normal();
    // Resolved like the paths it is compared with, when it exists.
    fs::path resolved = fs::canonical(path, ec);
    denied.push_back(ec ? path : resolved);
  }
  std::vector<fs::path> resolved;
  for (const std::string& text : *list) {
    auto expanded = expand_home(text, "config roots entry");
    if (!expanded.ok()) {
      problems->push_back(std::string(message_of(expanded.status())));
      continue;
    }
    std::error_code ec;
    fs::path root = fs::canonical(fs::absolute(*expanded, ec), ec);
    if (ec) {
      problems->push_back(cat("config roots entry \"", text, "\" is left out: ", ec.message()));
      continue;
    }
    if (!fs::is_directory(root, ec)) {
      problems->push_back(cat("config roots entry \"", text, "\" is left out: not a folder"));
      continue;
    }
    if (root == "/" && text != "/") {
      problems->push_back(cat("config roots entry \"", text,
                              "\" is left out: it is the whole file system (lotus was started "
                              "in /); name the folders to allow, or write \"/\" to mean it"));
      continue;
    }
    resolved.push_back(std::move(root));
  }
  return AllowedRoots(std::move(resolved), std::move(denied));
}

std::string AllowedRoots::describe() const {
  if (roots_.empty()) return "none";
  std::string out;
  for (const fs::path& root : roots_) {
    if (!out.empty()) out += ", ";
    out += root.string();
  }
  return out;
}

bool AllowedRoots::contains(const fs::path& canonical) const {
  for (const fs::path& root : roots_) {
    if (is_within(canonical, root)) return true;
  }
  return false;
}

const fs::path* AllowedRoots::denied(const fs::path& canonical) const {
  for (const fs::path& denied : denied_) {
    if (is_within(canonical, denied)) return &denied;
  }
  return nullptr;
}

Result<fs::path> AllowedRoots::resolve(const Json& value, std::string_view arg) const {
  if (!value.is_string()) {
    return absl::InvalidArgumentError(
        cat(arg, ": expected a path (a string), got ",
            value.is_null() ? std::string("nothing")
                            : value.dump(-1, ' ', false, Json::error_handler_t::replace)));
  }
  return resolve_text(value.get_ref<const std::string&>(), arg);
}

Result<fs::path> AllowedRoots::resolve_text(std::string_view text, std::string_view arg) const {
  if (roots_.empty()) {
    return absl::FailedPreconditionError(
        cat(arg, ": no folder is allowed (config roots names none that exists)"));
  }
  if (text.empty()) return absl::InvalidArgumentError(cat(arg, ": the path is empty"));
  if (text.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(cat(arg, ": the path contains a NUL byte"));
  }
  auto expanded = expand_home(text, arg);
  if (!expanded.ok()) return expanded.status();
  fs::path path(*expanded);
  if (path.is_relative()) path = roots_.front() / path;
  path = path.lexically_normal();
  if (path.native().size() > 1 && path.native().back() == '/') path = path.parent_path();

  // The longest prefix that exists as a directory entry (a link counts, even
  // a dangling one) is resolved by the kernel; the rest does not exist yet,
  // so it holds no links and is appended as written.
  fs::path existing = path;
  fs::path missing;
  std::error_code ec;
  while (!fs::exists(fs::symlink_status(existing, ec)) && existing.has_relative_path()) {
    missing = missing.empty() ? existing.filename() : existing.filename() / missing;
    existing = existing.parent_path();
  }
  fs::path resolved = fs::canonical(existing, ec);
  if (ec) {
    if (fs::is_symlink(fs::symlink_status(existing))) {
      return absl::InvalidArgumentError(
          cat(arg, ": \"", text, "\" goes through the symbolic link \"", existing.string(),
              "\", whose target does not exist, so where it leads cannot be checked"));
    }
    return absl::InvalidArgumentError(
        cat(arg, ": cannot resolve \"", existing.string(), "\": ", ec.message()));
  }
  if (!missing.empty()) resolved /= missing;
  if (!contains(resolved)) {
    std::string via =
        resolved == path ? std::string() : cat(" (it resolves to ", resolved.string(), ")");
    return absl::PermissionDeniedError(cat(arg, ": \"", text, "\" is outside the allowed folders",
                                           via, "; allowed: ", describe(),
                                           " (module config `roots`)"));
  }
  if (const fs::path* deny = denied(resolved)) {
    return absl::PermissionDeniedError(cat(arg, ": \"", text, "\" is in \"", deny->string(),
                                           "\", which config `deny` keeps out of reach"));
  }
  return resolved;
}

}  // namespace lotus::tools
