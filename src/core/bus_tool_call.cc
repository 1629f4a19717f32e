#include "core/bus_tool_call.h"

#include "lotus/strings.h"

namespace lotus {

void BusToolCall::emit(Json data) {
  if (session_.empty()) return;
  data["call_id"] = call_id_;
  Event event = Event::make(session_, module_, std::move(data));
  if (!trace_id_.empty()) event.metadata.trace_id = trace_id_;
  (void)bus_.publish(std::move(event));
}

void BusToolCall::progress(double progress, double total, std::string_view message) {
  if (progress <= last_progress_) return;  // progress only rises
  last_progress_ = progress;
  Json data = {{"kind", "progress"}, {"progress", progress}};
  if (total > 0) data["total"] = total;
  if (!message.empty()) data["message"] = message;
  emit(std::move(data));
}

void BusToolCall::log(std::string_view level, Json data) {
  emit({{"kind", "log"}, {"level", level}, {"logger", module_}, {"data", std::move(data)}});
}

Task<Result<Json>> BusToolCall::ask(std::string method, Json params,
                                    std::chrono::milliseconds timeout) {
  if (session_.empty()) {
    co_return absl::FailedPreconditionError(
        cat("cannot send ", method, ": the caller of this tool is not an MCP client"));
  }
  Event event = Event::make(session_, module_,
                            Json{{"kind", "ask"},
                                 {"call_id", call_id_},
                                 {"method", method},
                                 {"params", std::move(params)}});
  if (!trace_id_.empty()) event.metadata.trace_id = trace_id_;
  auto pending = bus_.request(std::move(event), timeout);
  Result<EventPtr> reply = co_await std::move(pending);
  if (!reply.ok()) {
    if (absl::IsNotFound(reply.status())) {
      co_return absl::FailedPreconditionError(
          cat("cannot send ", method, ": the MCP session that made the call is gone"));
    }
    co_return reply.status();
  }
  const Json& data = (*reply)->data;
  if (!data.value("ok", false)) {
    std::string error = data.value("error", std::string("the client refused"));
    if (data.value("unsupported", false)) co_return absl::FailedPreconditionError(error);
    co_return absl::AbortedError(error);
  }
  co_return data.value("result", Json::object());
}

}  // namespace lotus
