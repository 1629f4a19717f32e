// The daemon's bearer token: made on first start, kept in the config folder
// readable by its owner only (0600), the same on every later start so
// clients keep working.
#pragma once

#include <filesystem>
#include <string>

#include "lotus/status.h"

namespace lotus::api {

// Reads the token in `file`, or creates the file (and its folder, 0700) with
// a fresh 256-bit random token. A file other users can read is tightened to
// 0600; an empty or unreadable one is an error naming the file.
Result<std::string> load_or_create_token(const std::filesystem::path& file);

// Reads an existing token only (clients); NotFound when there is none.
Result<std::string> read_token(const std::filesystem::path& file);

}  // namespace lotus::api
