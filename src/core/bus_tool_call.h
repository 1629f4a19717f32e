// BusToolCall: the ToolCallContext a module's tool gets while it runs.
//
// Progress, log messages and questions go to the channel the caller named in
// the call ("session": an MCP session listens there), as events of kind
// "progress", "log" and (a request awaiting a reply) "ask". Without a session
// the caller takes none: progress and logs are dropped, ask() fails.
#pragma once

#include <string>

#include "bus/bus.h"
#include "lotus/module.h"

namespace lotus {

class BusToolCall : public ToolCallContext {
 public:
  BusToolCall(Bus& bus, std::string module, std::string call_id, std::string session,
              std::string trace_id)
      : bus_(bus),
        module_(std::move(module)),
        call_id_(std::move(call_id)),
        session_(std::move(session)),
        trace_id_(std::move(trace_id)) {}

  const std::string& call_id() const override { return call_id_; }
  void progress(double progress, double total, std::string_view message) override;
  void log(std::string_view level, Json data) override;
  Task<Result<Json>> ask(std::string method, Json params,
                         std::chrono::milliseconds timeout) override;

 private:
  void emit(Json data);

  Bus& bus_;
  std::string module_;
  std::string call_id_;
  std::string session_;
  std::string trace_id_;
  double last_progress_ = -1;
};

}  // namespace lotus
