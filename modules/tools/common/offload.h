// offload(): runs a tool's blocking work (a child process, a long file
// search) on a thread of its own, so no bus worker is held while it runs,
// and resumes the calling coroutine back on the bus's pool when it is done.
//
// The work must own everything it touches (copies, shared_ptrs): on shutdown
// the nucleus may destroy the module while work is still running, after the
// mailbox's deadline. For the same reason nothing after the co_await in
// offload() touches the module; the ModuleContext it resumes through belongs
// to the nucleus and outlives the instance.
#pragma once

#include <functional>

#include "lotus/module.h"

namespace lotus::tools {

Task<ToolResult> offload(ModuleContext* context, std::function<ToolResult()> work);

}  // namespace lotus::tools
