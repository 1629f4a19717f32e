#include "offload.h"

#include <chrono>
#include <system_error>
#include <thread>
#include <utility>

#include "lotus/strings.h"

namespace lotus::tools {

Task<ToolResult> offload(ModuleContext* context, std::function<ToolResult()> work) {
  auto awaiter = resume_with<ToolResult>([work = std::move(work)](auto resume) mutable {
    try {
      std::thread([work = std::move(work), resume]() mutable {
        ToolResult result = absl::InternalError("offloaded work did not finish");
        try {
          result = work();
        } catch (const std::exception& e) {
          result = absl::InternalError(cat("tool threw: ", e.what()));
        } catch (...) {
          result = absl::InternalError("tool threw a non-standard exception");
        }
        resume(std::move(result));
      }).detach();
    } catch (const std::system_error& e) {
      resume(absl::ResourceExhaustedError(cat("cannot start a thread for the tool: ", e.what())));
    }
  });
  ToolResult result = co_await awaiter;
  // Still on the work's thread: hop back to the bus's pool so the rest of the
  // mailbox's deliveries run there, and this thread can end.
  auto hop = context->sleep(std::chrono::milliseconds(0));
  co_await std::move(hop);
  co_return result;
}

}  // namespace lotus::tools
