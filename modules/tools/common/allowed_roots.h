// AllowedRoots: the folders the fs and shell tools may touch, and the one
// check every path argument goes through.
//
// A path is made absolute (relative to the first root; "~/" is the home
// folder), ".." is applied to its text, then every symbolic link in the part
// that exists is resolved (realpath) before the result is compared with the
// roots, themselves resolved at start. So "../x", an absolute path elsewhere
// and a link inside a root that points outside are all refused; a dangling
// link is refused too, since where it leads cannot be checked. The check is
// made at call time: it keeps a model's arguments inside the roots, it does
// not defend against another local process swapping folders meanwhile.
// Folders in config `deny` (keys, credentials) are refused even inside a root,
// and a root that is "/" only by accident (started from /) is left out.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "lotus/event.h"
#include "lotus/status.h"

namespace lotus::tools {

class AllowedRoots {
 public:
  // From config `roots` (a list of folders; relative ones are relative to the
  // process's working directory, "~/" to HOME) and `deny` (folders or files
  // never reachable). Roots that do not exist or are not folders, and a
  // relative root that resolves to "/", are left out and described in
  // `problems`; only "/" written as such allows the whole file system.
  static Result<AllowedRoots> from_config(const Json& roots, const Json& deny,
                                          std::vector<std::string>* problems);
  AllowedRoots(std::vector<std::filesystem::path> canonical_roots,
               std::vector<std::filesystem::path> denied)
      : roots_(std::move(canonical_roots)), denied_(std::move(denied)) {}
  AllowedRoots() = default;

  // Resolves the path argument `value` (argument name `arg`) as described
  // above. NotFound is never returned for a missing final part: what does not
  // exist yet is appended as written (a file about to be created).
  Result<std::filesystem::path> resolve(const Json& value, std::string_view arg) const;
  // Same for a path string already in hand.
  Result<std::filesystem::path> resolve_text(std::string_view text, std::string_view arg) const;

  // `canonical` (already resolved) is one of the roots or inside one.
  bool contains(const std::filesystem::path& canonical) const;
  // The config `deny` entry that covers `canonical`, or nullptr.
  const std::filesystem::path* denied(const std::filesystem::path& canonical) const;
  const std::vector<std::filesystem::path>& roots() const { return roots_; }
  // The roots joined with ", ", for messages.
  std::string describe() const;

 private:
  std::vector<std::filesystem::path> roots_;
  std::vector<std::filesystem::path> denied_;
};

// `path` is `dir` or below it (both normalized, absolute).
bool is_within(const std::filesystem::path& path, const std::filesystem::path& dir);

}  // namespace lotus::tools
