// describe_tool_call: one tool call as people read it, for the CLI, the
// action log and the reasoning engine's display events alike.
#pragma once

#include <string>

#include "lotus/event.h"

namespace lotus::llm {

// "fs.read(path=README.md, limit=10)": the model's "fs__read" shown as
// "fs.read", each value cut to 60 characters.
std::string describe_tool_call(const std::string& tool, const Json& arguments);

}  // namespace lotus::llm
