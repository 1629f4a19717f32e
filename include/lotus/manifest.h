// Manifest: a module's contract, read from the manifest.yaml in its folder.
//
// Covers every field of the original design (name, version, type, author,
// license, priority, dependencies, subscriptions, publications, providers,
// memory, tools, capabilities, config_schema, hotload, permissions) plus
// `description`, `runtime` and `mailbox`. Parsing checks everything that can be
// checked without the module's code and reports each problem as
// "<file>:<line>:<col>: <field>: <reason>", so a person (or the self-modifier)
// can fix it without guessing. Keys starting with "x-" are kept, unchecked.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lotus/channel.h"
#include "lotus/status.h"

namespace lotus {

// A semantic version (semver.org 2.0): MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD].
// Ordering follows semver precedence: 1.0.0-alpha < 1.0.0; build metadata is
// ignored.
struct SemVer {
  uint64_t major = 0;
  uint64_t minor = 0;
  uint64_t patch = 0;
  std::string prerelease;  // dot-separated identifiers, without the leading '-'
  std::string build;       // without the leading '+'

  // Strict: exactly three numeric components, no leading zeros, no "v" prefix.
  static Result<SemVer> parse(std::string_view text);
  std::string to_string() const;

  friend std::strong_ordering operator<=>(const SemVer& a, const SemVer& b);
  friend bool operator==(const SemVer& a, const SemVer& b) { return (a <=> b) == 0; }
};

// A version requirement: "", ">=1.0", ">1.2.3", "=1.0", "==1.0", "!=1.1", "<2",
// "<=2.0", "^1.2" (same major; for 0.x same minor), "~1.2" (same minor),
// "~=1.4" (PEP 440 compatible release), or several joined by commas, all of
// which must hold (">=1.0,<2"). Versions in a requirement may omit trailing
// components ("3.11" means 3.11.0). A requirement without an operator ("1.2")
// means "==1.2". Empty allows every version.
class VersionConstraint {
 public:
  VersionConstraint() = default;  // allows every version
  static Result<VersionConstraint> parse(std::string_view text);

  bool allows(const SemVer& version) const;
  bool any() const { return clauses_.empty(); }
  // Normalized text without spaces (">=1.0,<2"); empty when any().
  const std::string& text() const { return text_; }

 private:
  enum class Op { kEq, kNe, kLt, kLe, kGt, kGe, kCaret, kTilde, kCompatible };
  struct Clause {
    Op op = Op::kEq;
    SemVer version;
    int components = 3;  // how many numeric components were written
  };
  static bool clause_allows(const Clause& clause, const SemVer& version);

  std::vector<Clause> clauses_;
  std::string text_;
};

enum class ModuleType { kCore, kCapability, kIntegration };
enum class ModulePriority { kCritical, kHigh, kNormal, kLow };

std::string_view to_string(ModuleType type);
std::string_view to_string(ModulePriority priority);
// 0 for critical up to 3 for low: among modules that are ready to load, the
// lower rank loads first.
int priority_rank(ModulePriority priority);

struct Manifest {
  // "memory", "memory>=1.0", "python>=3.11": a name and what versions will do.
  struct Requirement {
    std::string name;
    VersionConstraint constraint;
    std::string to_string() const;  // name + constraint text, as normalized
  };

  struct Dependencies {
    std::vector<Requirement> modules;  // other LOTUS modules; they load first
    std::vector<Requirement> system;   // tools on the host; checked, never installed
    std::vector<std::string> packages;
  };

  struct Subscription {
    std::string pattern;  // a valid channel pattern ("perception.*", "**")
    std::string handler;  // the name the module's code registers the handler under
    SubscriptionFilter filter;
  };

  struct Providers {
    std::string primary;  // model alias; config maps it to provider + model
    std::vector<std::string> fallback;
    std::map<std::string, std::string> delegation;  // task kind -> model alias
  };

  struct Memory {
    std::vector<std::string> vector_collections;
    std::vector<std::string> state_keys;
  };

  struct Tool {
    std::string name;  // [A-Za-z0-9_-]{1,64}, as LLM tool-calling APIs require
    std::string description;
    // Always a JSON Schema object: {"type": "object", "properties": {...},
    // "required": [...]}, whichever form the manifest used.
    nlohmann::json parameters;
    // What the tool needs, a subset of the module's `permissions`; when the
    // manifest gives none, the tool is taken to need all of the module's.
    // Its risk level (and so whether a call needs approval) follows from it.
    std::vector<std::string> permissions;
    bool has_own_permissions = false;
  };

  struct Runtime {
    enum class Kind { kNative, kLua };
    Kind kind = Kind::kNative;
    // Relative to the module's directory (never absolute, never "..").
    std::filesystem::path library;  // native: shared library; empty means built in
    std::filesystem::path entry;    // lua: the script to run
  };

  struct Mailbox {
    size_t capacity = 1024;
    // "wait", "drop_oldest" or "drop_newest" (already checked); the bus turns
    // it into its OverflowPolicy with parse_overflow_policy().
    std::string overflow = "wait";
  };

  // What the module offers MCP clients besides its tools (`mcp:`). Each
  // resource, template and prompt is an MCP object (resource: uri, name,
  // title?, description?, mimeType?; template: uriTemplate instead of uri;
  // prompt: name, title?, description?, arguments?) plus where its content
  // comes from: "text" or "blob" (base64) for a resource, "messages" for a
  // prompt, with {{name}} replaced by template variables or prompt arguments;
  // or "channel", a channel the module answers requests on
  // ({"uri", "variables"} -> {"contents": [...]}; {"name", "arguments"} ->
  // {"messages": [...], "description"?}).
  struct Mcp {
    // `tool_names: bare`: MCP clients see the tools as "tool" instead of
    // "module__tool" (a name another tool has already stays module__tool).
    bool bare_tool_names = false;
    nlohmann::json resources = nlohmann::json::array();
    nlohmann::json resource_templates = nlohmann::json::array();
    nlohmann::json prompts = nlohmann::json::array();
  };

  std::string name;  // [a-z][a-z0-9_]*
  SemVer version;
  ModuleType type = ModuleType::kCapability;
  std::string description;
  std::string author;
  std::string license;
  ModulePriority priority = ModulePriority::kNormal;
  Dependencies dependencies;
  std::vector<Subscription> subscriptions;
  std::vector<std::string> publications;  // channel names or patterns ("action.*")
  Providers providers;
  Memory memory;
  std::vector<Tool> tools;
  std::vector<std::string> capabilities;
  // Always a JSON Schema object; `config_defaults` holds the defaults it names
  // (or, when the manifest gave plain defaults, those values).
  nlohmann::json config_schema = nlohmann::json::object();
  nlohmann::json config_defaults = nlohmann::json::object();
  bool hotload = false;
  std::vector<std::string> permissions;  // "file.read", "network.http", "file.*"
  Runtime runtime;
  Mailbox mailbox;
  Mcp mcp;
  nlohmann::json extensions = nlohmann::json::object();  // the "x-" keys, as given

  std::filesystem::path directory;  // the module's folder
  std::filesystem::path path;       // the manifest file

  const Tool* find_tool(std::string_view tool_name) const;
  // True when a declared publication (name or pattern) covers `channel`.
  bool may_publish(std::string_view channel) const;
  // True when `permission` is declared, directly or through a "family.*" entry.
  bool has_permission(std::string_view permission) const;
};

std::string_view to_string(Manifest::Runtime::Kind kind);

// Parses and checks a manifest. `path` names the file in messages and sets
// Manifest::path and Manifest::directory. Every problem found is reported (one
// per line, up to a limit) in one InvalidArgument status.
Result<Manifest> parse_manifest(std::string_view yaml_text, std::string_view path);

// Reads and parses `file`; NotFound when it cannot be read.
Result<Manifest> load_manifest(const std::filesystem::path& file);

}  // namespace lotus
