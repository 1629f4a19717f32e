// Status and Result<T>: how expected failures travel in LOTUS.
//
// Bad manifests, bad events, timeouts and network errors are values, not
// exceptions: each carries a message a user can act on ("manifest.yaml:
// tools[1].parameters: ..."). Exceptions never cross a module boundary.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lotus {

using Status = absl::Status;
template <typename T>
using Result = absl::StatusOr<T>;

}  // namespace lotus
