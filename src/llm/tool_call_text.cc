#include "llm/tool_call_text.h"

#include "lotus/strings.h"

namespace lotus::llm {
namespace {

constexpr size_t kValueLimit = 60;

std::string cut(const std::string& text) {
  return text.size() <= kValueLimit ? text : text.substr(0, kValueLimit) + "...";
}

}  // namespace

std::string describe_tool_call(const std::string& tool, const Json& arguments) {
  std::string args;
  if (arguments.is_object()) {
    for (const auto& [key, value] : arguments.items()) {
      if (!args.empty()) args += ", ";
      args += cat(key, "=", cut(value.is_string() ? value.get<std::string>() : value.dump()));
    }
  } else if (!arguments.is_null()) {
    args = cut(arguments.dump());
  }
  std::string_view name = tool;
  if (auto separator = name.find("__"); separator != std::string_view::npos) {
    return cat(name.substr(0, separator), ".", name.substr(separator + 2), "(", args, ")");
  }
  return cat(name, "(", args, ")");
}

}  // namespace lotus::llm
