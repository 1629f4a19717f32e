#include "lotus/manifest.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <type_traits>
#include <utility>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "core/spelling.h"
#include "lotus/strings.h"

namespace lotus {
namespace {

using Json = nlohmann::json;

template <typename Container>
std::string join(const Container& items, std::string_view separator) {
  std::string out;
  bool first = true;
  for (const auto& item : items) {
    if (!first) out.append(separator);
    first = false;
    out.append(std::string_view(item));
  }
  return out;
}

std::vector<std::string_view> split(std::string_view s, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t end = s.find(separator, start);
    if (end == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, end - start));
    start = end + 1;
  }
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }
bool is_xdigit(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

std::string_view strip(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

constexpr size_t kMaxNameLength = 64;
constexpr size_t kMaxReportedErrors = 50;
// Aliases let a small YAML file expand into a huge tree; converting it to JSON
// stops at these limits instead of exhausting memory.
constexpr size_t kMaxJsonNodes = 100000;
constexpr int kMaxJsonDepth = 64;

// ---------------------------------------------------------------------------
// Versions

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool parse_number(std::string_view s, uint64_t* out) {
  if (!all_digits(s) || (s.size() > 1 && s[0] == '0')) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

bool valid_identifiers(std::string_view s, bool numeric_without_leading_zero) {
  if (s.empty()) return false;
  for (std::string_view id : split(s, '.')) {
    if (id.empty()) return false;
    for (char c : id) {
      if (!is_alnum(c) && c != '-') return false;
    }
    if (numeric_without_leading_zero && all_digits(id) && id.size() > 1 && id[0] == '0') {
      return false;
    }
  }
  return true;
}

// Parses MAJOR[.MINOR[.PATCH]][-PRE][+BUILD]; `components` receives how many
// numeric components were written. Returns false on any syntax error.
bool parse_version_parts(std::string_view text, SemVer* out, int* components) {
  SemVer v;
  std::string_view rest = text;
  if (size_t plus = rest.find('+'); plus != std::string_view::npos) {
    v.build = std::string(rest.substr(plus + 1));
    if (!valid_identifiers(v.build, false)) return false;
    rest = rest.substr(0, plus);
  }
  if (size_t dash = rest.find('-'); dash != std::string_view::npos) {
    v.prerelease = std::string(rest.substr(dash + 1));
    if (!valid_identifiers(v.prerelease, true)) return false;
    rest = rest.substr(0, dash);
  }
  std::vector<std::string_view> parts = split(rest, '.');
  if (parts.empty() || parts.size() > 3) return false;
  uint64_t* fields[] = {&v.major, &v.minor, &v.patch};
  for (size_t i = 0; i < parts.size(); ++i) {
    if (!parse_number(parts[i], fields[i])) return false;
  }
  *components = static_cast<int>(parts.size());
  *out = std::move(v);
  return true;
}

int compare_prerelease(std::string_view a, std::string_view b) {
  // A version without a pre-release ranks above one with it.
  if (a.empty() || b.empty()) return a.empty() == b.empty() ? 0 : (a.empty() ? 1 : -1);
  std::vector<std::string_view> as = split(a, '.');
  std::vector<std::string_view> bs = split(b, '.');
  for (size_t i = 0; i < as.size() && i < bs.size(); ++i) {
    bool an = all_digits(as[i]);
    bool bn = all_digits(bs[i]);
    if (an && bn) {
      // Compare numerically without overflow: longer (no leading zeros) is bigger.
      if (as[i].size() != bs[i].size()) return as[i].size() < bs[i].size() ? -1 : 1;
      int c = as[i].compare(bs[i]);
      if (c != 0) return c < 0 ? -1 : 1;
    } else if (an != bn) {
      return an ? -1 : 1;  // numeric identifiers rank below alphanumeric ones
    } else {
      int c = as[i].compare(bs[i]);
      if (c != 0) return c < 0 ? -1 : 1;
    }
  }
  if (as.size() == bs.size()) return 0;
  return as.size() < bs.size() ? -1 : 1;
}

std::strong_ordering compare_core(const SemVer& a, const SemVer& b) {
  if (auto c = a.major <=> b.major; c != 0) return c;
  if (auto c = a.minor <=> b.minor; c != 0) return c;
  return a.patch <=> b.patch;
}

SemVer core_version(uint64_t major, uint64_t minor, uint64_t patch) {
  SemVer v;
  v.major = major;
  v.minor = minor;
  v.patch = patch;
  return v;
}

// ---------------------------------------------------------------------------
// Small text checks

// Module names: [a-z][a-z0-9_]*.
bool is_module_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxNameLength || !(s[0] >= 'a' && s[0] <= 'z')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// Handler names are C++/Lua identifiers: [A-Za-z_][A-Za-z0-9_]*.
bool is_handler_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxNameLength) return false;
  if (!is_alpha(s[0]) && s[0] != '_') return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return is_alnum(c) || c == '_'; });
}

// Tool and parameter names: what Anthropic, OpenAI and MCP all accept.
bool is_tool_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxNameLength) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return is_alnum(c) || c == '_' || c == '-'; });
}

// System tool names: "python", "tree-sitter", "g++", "node.js".
bool is_system_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxNameLength) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return is_alnum(c) || c == '_' || c == '-' || c == '.' || c == '+';
  });
}

// Permissions: dot-separated lowercase words; the last may be "*".
bool is_permission(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  std::vector<std::string_view> parts = split(s, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string_view p = parts[i];
    if (p == "*" && i > 0 && i + 1 == parts.size()) continue;
    if (!is_module_name(p)) return false;
  }
  return true;
}

bool has_space(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return is_space(c); });
}

// Text from the manifest is quoted in messages; control bytes are escaped and
// long values cut short, so a hostile manifest cannot garble logs.
std::string quote(std::string_view s) {
  constexpr size_t kShown = 80;
  constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char c : s.substr(0, kShown)) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (byte < 0x20 || byte == 0x7f) {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  if (s.size() > kShown) out += "...";
  out += '"';
  return out;
}

// ---------------------------------------------------------------------------
// YAML scalars, resolved as the YAML 1.2 core schema does. Quoted scalars and
// "!!str" are always strings, so `version: "1.0"` and `default: "true"` keep
// their text.

bool is_null_word(std::string_view s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

std::optional<bool> bool_word(std::string_view s) {
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  return std::nullopt;
}

std::optional<Json> int_word(std::string_view s) {
  std::string_view digits = s;
  bool negative = false;
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) {
    negative = digits[0] == '-';
    digits.remove_prefix(1);
  }
  int base = 10;
  if (std::string_view(digits).starts_with("0x") && s[0] != '+' && s[0] != '-') {
    base = 16;
    digits.remove_prefix(2);
  } else if (std::string_view(digits).starts_with("0o") && s[0] != '+' && s[0] != '-') {
    base = 8;
    digits.remove_prefix(2);
  }
  if (digits.empty()) return std::nullopt;
  for (char c : digits) {
    bool ok = base == 16 ? is_xdigit(c) : (c >= '0' && c < static_cast<char>('0' + base));
    if (!ok) return std::nullopt;
  }
  uint64_t magnitude = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), magnitude, base);
  if (ec != std::errc() || end != digits.data() + digits.size()) {
    // Too big for 64 bits: keep it as an (approximate) number in any base;
    // strtod would read "0o..." as 0.
    double approximate = 0;
    for (char c : digits) {
      const int digit = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
      approximate = approximate * base + digit;
    }
    return Json(negative ? -approximate : approximate);
  }
  if (!negative) {
    if (magnitude <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Json(static_cast<int64_t>(magnitude));
    }
    return Json(magnitude);
  }
  if (magnitude <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1) {
    return Json(static_cast<int64_t>(0 - magnitude));
  }
  return Json(-static_cast<double>(magnitude));
}

std::optional<Json> float_word(std::string_view s) {
  if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "+.inf" || s == "+.Inf" || s == "+.INF") {
    return Json(std::numeric_limits<double>::infinity());
  }
  if (s == "-.inf" || s == "-.Inf" || s == "-.INF") {
    return Json(-std::numeric_limits<double>::infinity());
  }
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return Json(std::nan(""));
  // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  size_t int_digits = 0;
  while (i < s.size() && is_digit(s[i])) ++i, ++int_digits;
  size_t frac_digits = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && is_digit(s[i])) {
      ++i, ++frac_digits;
    }
  }
  if (int_digits + frac_digits == 0) return std::nullopt;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t exp_digits = 0;
    while (i < s.size() && is_digit(s[i])) {
      ++i, ++exp_digits;
    }
    if (exp_digits == 0) return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  return Json(std::strtod(std::string(s).c_str(), nullptr));
}

Json resolve_scalar(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return nullptr;
  const std::string& text = node.Scalar();
  const std::string& tag = node.Tag();
  if (tag == "!" || tag == "tag:yaml.org,2002:str") return text;
  if (is_null_word(text)) return nullptr;
  if (auto b = bool_word(text)) return *b;
  if (auto i = int_word(text)) return *i;
  if (auto f = float_word(text)) return *f;
  return text;
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar:
      break;
  }
  Json value = resolve_scalar(node);
  if (value.is_boolean()) return cat("a boolean (", node.Scalar(), ")");
  if (value.is_number()) return cat("a number (", node.Scalar(), ")");
  if (value.is_null()) return "null";
  return cat("a string (", quote(node.Scalar()), ")");
}

// A JSON value for a message, cut short when long.
std::string shown(const Json& value) {
  constexpr size_t kShown = 80;
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > kShown) text = cat(text.substr(0, kShown), "...");
  return text;
}

std::string describe(const Json& value) {
  if (value.is_string()) return cat("a string (", shown(value), ")");
  if (value.is_boolean()) return "a boolean";
  if (value.is_number()) return "a number";
  if (value.is_array()) return "a list";
  if (value.is_object()) return "a mapping";
  return "null";
}

// ---------------------------------------------------------------------------
// Parameter types: the design's names and JSON Schema's.

std::optional<std::string_view> json_schema_type(std::string_view design_type) {
  static const std::map<std::string_view, std::string_view> kTypes = {
      {"string", "string"}, {"int", "integer"},  {"integer", "integer"}, {"float", "number"},
      {"number", "number"}, {"bool", "boolean"}, {"boolean", "boolean"}, {"dict", "object"},
      {"object", "object"}, {"list", "array"},   {"array", "array"},     {"any", ""},
  };
  auto it = kTypes.find(design_type);
  if (it == kTypes.end()) return std::nullopt;
  return it->second;
}

constexpr std::string_view kDesignTypes =
    "string, int/integer, float/number, bool/boolean, dict/object, list/array, any";

bool is_json_schema_type_name(const Json& t) {
  static const std::set<std::string> kNames = {"string", "integer", "number", "boolean",
                                               "object", "array",   "null"};
  return t.is_string() && kNames.count(t.get<std::string>()) > 0;
}

// Whether `value` may stand where JSON Schema type `type` ("" means any) is expected.
bool value_fits(const Json& value, std::string_view type) {
  if (type.empty() || value.is_null()) return true;
  if (type == "string") return value.is_string();
  if (type == "integer") return value.is_number_integer();
  if (type == "number") return value.is_number();
  if (type == "boolean") return value.is_boolean();
  if (type == "object") return value.is_object();
  if (type == "array") return value.is_array();
  return true;
}

std::string inferred_type(const Json& value) {
  if (value.is_boolean()) return "boolean";
  if (value.is_number_integer()) return "integer";
  if (value.is_number()) return "number";
  if (value.is_string()) return "string";
  if (value.is_array()) return "array";
  if (value.is_object()) return "object";
  return "";
}

// A JSON Schema for a config default: its type (and, for lists of one type,
// the item type; for mappings, their properties) plus the default itself.
Json infer_schema(const Json& value) {
  Json schema = Json::object();
  std::string type = inferred_type(value);
  if (!type.empty()) schema["type"] = type;
  if (value.is_array() && !value.empty()) {
    std::string item_type = inferred_type(value.front());
    bool uniform = std::all_of(value.begin(), value.end(),
                               [&](const Json& item) { return inferred_type(item) == item_type; });
    if (uniform && !item_type.empty()) {
      schema["items"] = {{"type", item_type}};
    }
  } else if (value.is_object()) {
    Json properties = Json::object();
    for (const auto& [key, item] : value.items()) properties[key] = infer_schema(item);
    schema["properties"] = std::move(properties);
  }
  schema["default"] = value;
  return schema;
}

// The defaults a JSON Schema names: a top-level "default" object, overlaid by
// each property's "default" (nested objects recursively).
Json schema_defaults(const Json& schema) {
  Json defaults = Json::object();
  if (auto it = schema.find("default"); it != schema.end() && it->is_object()) defaults = *it;
  auto props = schema.find("properties");
  if (props == schema.end() || !props->is_object()) return defaults;
  for (const auto& [key, property] : props->items()) {
    if (!property.is_object()) continue;
    if (auto d = property.find("default"); d != property.end()) {
      defaults[key] = *d;
    } else if (property.contains("properties")) {
      Json nested = schema_defaults(property);
      if (!nested.empty()) defaults[key] = std::move(nested);
    }
  }
  return defaults;
}

// The offset of the first byte that is not part of well-formed UTF-8, or npos.
size_t invalid_utf8_at(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t min = 0;
    uint32_t cp = 0;
    if (b < 0x80) {
      ++i;
      continue;
    } else if ((b & 0xE0) == 0xC0) {
      n = 1, min = 0x80, cp = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
      n = 2, min = 0x800, cp = b & 0x0F;
    } else if ((b & 0xF8) == 0xF0) {
      n = 3, min = 0x10000, cp = b & 0x07;
    } else {
      return i;
    }
    if (i + n >= s.size()) return i;  // truncated sequence
    for (size_t k = 1; k <= n; ++k) {
      auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (c & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += n + 1;
  }
  return std::string_view::npos;
}

// Notes where each YAML document starts and nothing else.
class DocumentStarts : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  std::vector<YAML::Mark> starts;
};

// Where a second YAML document starts, if there is one. YAML::LoadAll is not
// used: yaml-cpp 0.7 loops forever, allocating, on a stray "," at document
// level (jbeder/yaml-cpp#1040, fixed upstream by #1319); here a document that
// starts where the previous one did is reported as the syntax error it is.
std::optional<YAML::Mark> second_document(std::string_view text) {
  std::istringstream stream{std::string(text)};
  YAML::Parser parser(stream);
  DocumentStarts handler;
  while (handler.starts.size() < 4 && parser.HandleNextDocument(handler)) {
    size_t n = handler.starts.size();
    if (n >= 2 && handler.starts[n - 1].pos == handler.starts[n - 2].pos) {
      const YAML::Mark& at = handler.starts[n - 1];
      std::string what = "unexpected text";
      if (at.pos >= 0 && static_cast<size_t>(at.pos) < text.size()) {
        what = cat("unexpected ", quote(text.substr(static_cast<size_t>(at.pos), 1)));
      }
      throw YAML::ParserException(at, what);
    }
  }
  if (handler.starts.size() < 2) return std::nullopt;
  return handler.starts[1];
}

// ---------------------------------------------------------------------------
// The parser

// A value in the document together with where it is and what it is called
// ("tools[1].parameters[0].type").
struct At {
  YAML::Node node;
  YAML::Mark mark;
  std::string field;
  std::string key;  // the last key, for entries of a mapping
};

At item_at(const At& parent, const YAML::Node& item, size_t index) {
  YAML::Mark mark = item.IsNull() ? parent.mark : item.Mark();
  return At{item, mark, cat(parent.field, "[", index, "]"), ""};
}

class ManifestParser {
 public:
  explicit ManifestParser(std::string path) : path_(std::move(path)) {}

  Result<Manifest> parse(std::string_view text);

 private:
  void fail(const YAML::Mark& mark, std::string_view field, std::string_view reason);
  void fail(const At& at, std::string_view reason) { fail(at.mark, at.field, reason); }

  // The entries of a mapping whose value is not null, after reporting
  // duplicate keys and keys not in `known` (keys starting with "x-" are let
  // through). An error (and nullopt) when the node is not a mapping.
  std::optional<std::vector<At>> entries(const At& at, const std::vector<std::string_view>& known);

  std::optional<std::string> string_value(const At& at);
  std::optional<std::string> nonempty_string(const At& at);
  std::optional<bool> bool_value(const At& at);
  std::optional<int64_t> int_value(const At& at);
  bool is_sequence(const At& at);
  std::vector<std::string> string_list(const At& at);
  std::optional<Json> to_json(const At& at);
  std::optional<Json> to_json(const YAML::Node& node, const At& at, int depth, size_t* budget);
  size_t json_budget_ = kMaxJsonNodes;  // values left to convert in this manifest

  void parse_dependencies(const At& at, Manifest::Dependencies* out);
  std::optional<Manifest::Requirement> parse_requirement(const At& at, bool module);
  void parse_subscriptions(const At& at, std::vector<Manifest::Subscription>* out);
  void parse_publications(const At& at, std::vector<std::string>* out);
  void parse_providers(const At& at, Manifest::Providers* out);
  void parse_memory(const At& at, Manifest::Memory* out);
  void parse_tools(const At& at, std::vector<Manifest::Tool>* out);
  std::optional<Json> parse_parameter_list(const At& at);
  std::optional<Json> parse_parameter_schema(const At& at);
  bool check_properties(const At& at, const Json& schema);
  void parse_config_schema(const At& at, Manifest* out);
  void parse_permissions(const At& at, std::vector<std::string>* out);
  void check_tool_permissions(const Manifest& manifest);
  // Where each tool's own `permissions` list was, checked against the
  // module's once the whole manifest is read.
  std::vector<std::pair<At, std::vector<std::string>>> tool_permission_sites_;
  void parse_runtime(const At& at, Manifest::Runtime* out);
  std::optional<std::filesystem::path> relative_path(const At& at);
  void parse_mailbox(const At& at, Manifest::Mailbox* out);
  void parse_mcp(const At& at, Manifest::Mcp* out);
  // One list of `mcp:` (resources, resource_templates, prompts): each item a
  // mapping with the string fields `required` and exactly one of `sources`.
  Json parse_mcp_list(const At& at, std::string_view id_field,
                      const std::vector<std::string_view>& sources);

  std::string path_;
  std::vector<std::string> errors_;
  size_t error_count_ = 0;
};

void ManifestParser::fail(const YAML::Mark& mark, std::string_view field, std::string_view reason) {
  ++error_count_;
  if (errors_.size() >= kMaxReportedErrors) return;
  std::string where = path_;
  if (!mark.is_null()) where += cat(":", mark.line + 1, ":", mark.column + 1);
  if (field.empty()) {
    errors_.push_back(cat(where, ": ", reason));
  } else {
    errors_.push_back(cat(where, ": ", field, ": ", reason));
  }
}

std::optional<std::vector<At>> ManifestParser::entries(const At& at,
                                                       const std::vector<std::string_view>& known) {
  if (!at.node.IsMap()) {
    fail(at, cat("expected a mapping with keys ", join(known, ", "), ", got ", describe(at.node)));
    return std::nullopt;
  }
  std::vector<At> out;
  std::set<std::string> seen;
  for (auto it = at.node.begin(); it != at.node.end(); ++it) {
    const YAML::Node key_node = it->first;
    std::string field_prefix = at.field.empty() ? "" : cat(at.field, ".");
    if (!key_node.IsScalar()) {
      fail(key_node.Mark(), at.field, "keys must be plain names, not lists or mappings");
      continue;
    }
    const std::string& key = key_node.Scalar();
    std::string field = cat(field_prefix, key);
    if (!seen.insert(key).second) {
      fail(key_node.Mark(), field, "appears more than once");
      continue;
    }
    bool is_known = std::find(known.begin(), known.end(), key) != known.end();
    if (!is_known && !std::string_view(key).starts_with("x-")) {
      std::string hint;
      if (std::string_view near = nearest_word(key, known); !near.empty()) {
        hint = cat(" (did you mean ", quote(near), "?)");
      }
      fail(key_node.Mark(), field,
           cat("unknown field", hint, "; known fields: ", join(known, ", "),
               " (keys starting with \"x-\" are free for extensions)"));
      continue;
    }
    const YAML::Node value = it->second;
    if (value.IsNull()) continue;  // an empty value is the same as leaving the key out
    out.push_back(At{value, value.Mark(), field, key});
  }
  return out;
}

std::optional<std::string> ManifestParser::string_value(const At& at) {
  if (!at.node.IsScalar()) {
    fail(at, cat("expected a string, got ", describe(at.node)));
    return std::nullopt;
  }
  return at.node.Scalar();
}

std::optional<std::string> ManifestParser::nonempty_string(const At& at) {
  std::optional<std::string> s = string_value(at);
  if (s && strip(*s).empty()) {
    fail(at, "must not be empty");
    return std::nullopt;
  }
  return s;
}

std::optional<bool> ManifestParser::bool_value(const At& at) {
  Json value = at.node.IsScalar() ? resolve_scalar(at.node) : Json();
  if (!value.is_boolean()) {
    fail(at, cat("expected true or false, got ", describe(at.node)));
    return std::nullopt;
  }
  return value.get<bool>();
}

std::optional<int64_t> ManifestParser::int_value(const At& at) {
  Json value = at.node.IsScalar() ? resolve_scalar(at.node) : Json();
  if (!value.is_number_integer() || value.is_number_unsigned()) {
    fail(at, cat("expected a whole number, got ", describe(at.node)));
    return std::nullopt;
  }
  return value.get<int64_t>();
}

bool ManifestParser::is_sequence(const At& at) {
  if (at.node.IsSequence()) return true;
  fail(at, cat("expected a list, got ", describe(at.node)));
  return false;
}

std::vector<std::string> ManifestParser::string_list(const At& at) {
  std::vector<std::string> out;
  if (!is_sequence(at)) return out;
  for (size_t i = 0; i < at.node.size(); ++i) {
    At item = item_at(at, at.node[i], i);
    if (item.node.IsNull()) {
      fail(item, "expected a string, got nothing");
    } else if (auto s = nonempty_string(item)) {
      out.push_back(std::move(*s));
    }
  }
  return out;
}

std::optional<Json> ManifestParser::to_json(const At& at) {
  // One budget for the whole manifest: YAML aliases let a few kilobytes name
  // millions of values, spread over as many keys as the author likes.
  return to_json(at.node, at, 0, &json_budget_);
}

std::optional<Json> ManifestParser::to_json(const YAML::Node& node, const At& at, int depth,
                                            size_t* budget) {
  if (*budget == 0 || depth > kMaxJsonDepth) {
    fail(at, cat("too large or too deeply nested (limits: ", kMaxJsonNodes, " values, ",
                 kMaxJsonDepth, " levels)"));
    *budget = 0;
    return std::nullopt;
  }
  --*budget;
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return Json(nullptr);
    case YAML::NodeType::Scalar:
      return resolve_scalar(node);
    case YAML::NodeType::Sequence: {
      Json array = Json::array();
      for (const YAML::Node& item : node) {
        std::optional<Json> value = to_json(item, at, depth + 1, budget);
        if (!value) return std::nullopt;
        array.push_back(std::move(*value));
      }
      return array;
    }
    case YAML::NodeType::Map: {
      Json object = Json::object();
      for (auto it = node.begin(); it != node.end(); ++it) {
        if (!it->first.IsScalar()) {
          fail(it->first.Mark(), at.field, "keys must be strings, not lists or mappings");
          return std::nullopt;
        }
        const std::string key = it->first.Scalar();
        if (object.contains(key)) {
          fail(it->first.Mark(), at.field, cat("key ", quote(key), " appears twice"));
          return std::nullopt;
        }
        std::optional<Json> value = to_json(it->second, at, depth + 1, budget);
        if (!value) return std::nullopt;
        object[key] = std::move(*value);
      }
      return object;
    }
  }
  return std::nullopt;
}

void ManifestParser::parse_dependencies(const At& at, Manifest::Dependencies* out) {
  auto fields = entries(at, {"modules", "system", "packages"});
  if (!fields) return;
  for (const At& f : *fields) {
    if (f.key == "packages") {
      out->packages = string_list(f);
      continue;
    }
    bool module = f.key == "modules";
    if (!module && f.key != "system") continue;
    if (!is_sequence(f)) continue;
    std::vector<Manifest::Requirement>& list = module ? out->modules : out->system;
    std::set<std::string> names;
    for (size_t i = 0; i < f.node.size(); ++i) {
      At item = item_at(f, f.node[i], i);
      std::optional<Manifest::Requirement> requirement = parse_requirement(item, module);
      if (!requirement) continue;
      if (!names.insert(requirement->name).second) {
        fail(item, cat(quote(requirement->name), " is listed more than once"));
        continue;
      }
      list.push_back(std::move(*requirement));
    }
  }
}

std::optional<Manifest::Requirement> ManifestParser::parse_requirement(const At& at, bool module) {
  std::string name;
  std::string constraint_text;
  At constraint_at = at;
  if (at.node.IsMap()) {
    // Long form: {name: memory, version: ">=1.0"}.
    auto fields = entries(at, {"name", "version"});
    if (!fields) return std::nullopt;
    bool have_name = false;
    for (const At& f : *fields) {
      std::optional<std::string> s = nonempty_string(f);
      if (!s) return std::nullopt;
      if (f.key == "name") {
        name = strip(*s);
        have_name = true;
      } else if (f.key == "version") {
        constraint_text = *s;
        constraint_at = f;
      }
    }
    if (!have_name) {
      fail(at, "\"name\" is required");
      return std::nullopt;
    }
  } else {
    if (at.node.IsNull()) {
      fail(at, "expected a dependency such as \"memory\" or \"memory>=1.0\", got nothing");
      return std::nullopt;
    }
    std::optional<std::string> s = nonempty_string(at);
    if (!s) return std::nullopt;
    size_t op = s->find_first_of("<>=!^~");
    name = strip(std::string_view(*s).substr(0, op));
    if (op != std::string::npos) constraint_text = s->substr(op);
  }
  bool name_ok = module ? is_module_name(name) : is_system_name(name);
  if (!name_ok) {
    fail(at,
         cat(quote(name), " is not a valid ", module ? "module" : "system dependency",
             " name; write it as ", module ? "\"memory\" or \"memory>=1.0\"" : "\"python>=3.11\""));
    return std::nullopt;
  }
  Result<VersionConstraint> constraint = VersionConstraint::parse(constraint_text);
  if (!constraint.ok()) {
    fail(constraint_at, message_of(constraint.status()));
    return std::nullopt;
  }
  return Manifest::Requirement{std::move(name), *std::move(constraint)};
}

void ManifestParser::parse_subscriptions(const At& at, std::vector<Manifest::Subscription>* out) {
  if (!is_sequence(at)) return;
  for (size_t i = 0; i < at.node.size(); ++i) {
    At item = item_at(at, at.node[i], i);
    auto fields = entries(item, {"pattern", "handler", "filter"});
    if (!fields) continue;
    Manifest::Subscription sub;
    bool ok = true;
    bool have_pattern = false;
    bool have_handler = false;
    for (const At& f : *fields) {
      if (f.key == "pattern") {
        have_pattern = true;
        std::optional<std::string> s = nonempty_string(f);
        if (!s) {
          ok = false;
        } else if (Status st = validate_pattern(*s); !st.ok()) {
          fail(f, message_of(st));
          ok = false;
        } else {
          sub.pattern = std::move(*s);
        }
      } else if (f.key == "handler") {
        have_handler = true;
        std::optional<std::string> s = nonempty_string(f);
        if (s && !is_handler_name(*s)) {
          fail(f, cat(quote(*s),
                      " is not a valid handler name; use letters, digits and "
                      "underscores, starting with a letter or underscore"));
          s.reset();
        }
        if (s) {
          sub.handler = std::move(*s);
        } else {
          ok = false;
        }
      } else if (f.key == "filter") {
        std::optional<Json> spec = to_json(f);
        if (!spec) {
          ok = false;
          continue;
        }
        Result<SubscriptionFilter> filter = SubscriptionFilter::parse(*spec);
        if (!filter.ok()) {
          fail(f, message_of(filter.status()));
          ok = false;
        } else {
          sub.filter = *std::move(filter);
        }
      }
    }
    if (!have_pattern) fail(item, "\"pattern\" is required");
    if (!have_handler) fail(item, "\"handler\" is required");
    if (ok && have_pattern && have_handler) out->push_back(std::move(sub));
  }
}

void ManifestParser::parse_publications(const At& at, std::vector<std::string>* out) {
  if (!is_sequence(at)) return;
  for (size_t i = 0; i < at.node.size(); ++i) {
    At item = item_at(at, at.node[i], i);
    if (item.node.IsNull()) {
      fail(item, "expected a channel name, got nothing");
      continue;
    }
    std::optional<std::string> s = nonempty_string(item);
    if (!s) continue;
    if (Status st = validate_pattern(*s); !st.ok()) {
      fail(item, message_of(st));
      continue;
    }
    out->push_back(std::move(*s));
  }
}

void ManifestParser::parse_providers(const At& at, Manifest::Providers* out) {
  auto fields = entries(at, {"primary", "fallback", "delegation"});
  if (!fields) return;
  auto model = [&](const At& f) -> std::optional<std::string> {
    std::optional<std::string> s = nonempty_string(f);
    if (s && has_space(*s)) {
      fail(f, cat(quote(*s), " is not a model name (it contains spaces)"));
      return std::nullopt;
    }
    return s;
  };
  for (const At& f : *fields) {
    if (f.key == "primary") {
      if (auto s = model(f)) out->primary = std::move(*s);
    } else if (f.key == "fallback") {
      if (f.node.IsScalar()) {  // a single fallback may be written without a list
        if (auto s = model(f)) out->fallback.push_back(std::move(*s));
        continue;
      }
      if (!is_sequence(f)) continue;
      for (size_t i = 0; i < f.node.size(); ++i) {
        At item = item_at(f, f.node[i], i);
        if (item.node.IsNull()) {
          fail(item, "expected a model name, got nothing");
        } else if (auto s = model(item)) {
          out->fallback.push_back(std::move(*s));
        }
      }
    } else if (f.key == "delegation") {
      if (!f.node.IsMap()) {
        fail(f, cat("expected a mapping of task kind to model, got ", describe(f.node)));
        continue;
      }
      std::set<std::string> seen;
      for (auto it = f.node.begin(); it != f.node.end(); ++it) {
        if (!it->first.IsScalar()) {
          fail(it->first.Mark(), f.field, "task kinds must be names, not lists or mappings");
          continue;
        }
        const std::string kind = it->first.Scalar();
        At value{it->second, it->second.IsNull() ? it->first.Mark() : it->second.Mark(),
                 cat(f.field, ".", kind), kind};
        if (!seen.insert(kind).second) {
          fail(it->first.Mark(), value.field, "appears more than once");
          continue;
        }
        if (value.node.IsNull()) {
          fail(value, "expected a model name, got nothing");
        } else if (auto s = model(value)) {
          out->delegation[kind] = std::move(*s);
        }
      }
    }
  }
}

void ManifestParser::parse_memory(const At& at, Manifest::Memory* out) {
  auto fields = entries(at, {"vector_collections", "state_keys"});
  if (!fields) return;
  for (const At& f : *fields) {
    if (f.key == "vector_collections") out->vector_collections = string_list(f);
    if (f.key == "state_keys") out->state_keys = string_list(f);
  }
}

void ManifestParser::parse_tools(const At& at, std::vector<Manifest::Tool>* out) {
  if (!is_sequence(at)) return;
  std::set<std::string> names;
  for (size_t i = 0; i < at.node.size(); ++i) {
    At item = item_at(at, at.node[i], i);
    auto fields = entries(item, {"name", "description", "parameters", "permissions"});
    if (!fields) continue;
    Manifest::Tool tool;
    tool.parameters = Json::object();
    tool.parameters["type"] = "object";
    tool.parameters["properties"] = Json::object();
    tool.parameters["required"] = Json::array();
    bool ok = true;
    bool have_name = false;
    for (const At& f : *fields) {
      if (f.key == "name") {
        have_name = true;
        std::optional<std::string> s = nonempty_string(f);
        if (s && !is_tool_name(*s)) {
          fail(f, cat(quote(*s),
                      " is not a valid tool name; use up to 64 letters, digits, "
                      "underscores and hyphens"));
          s.reset();
        }
        if (s && !names.insert(*s).second) {
          fail(f, cat("another tool is already called ", quote(*s)));
          s.reset();
        }
        if (s) {
          tool.name = std::move(*s);
        } else {
          ok = false;
        }
      } else if (f.key == "description") {
        if (auto s = string_value(f)) {
          tool.description = std::move(*s);
        } else {
          ok = false;
        }
      } else if (f.key == "parameters") {
        std::optional<Json> schema;
        if (f.node.IsSequence()) {
          schema = parse_parameter_list(f);
        } else if (f.node.IsMap()) {
          schema = parse_parameter_schema(f);
        } else {
          fail(f, cat("expected a list of parameters ({name, type, required}) or a JSON "
                      "Schema object, got ",
                      describe(f.node)));
        }
        if (schema) {
          tool.parameters = std::move(*schema);
        } else {
          ok = false;
        }
      } else if (f.key == "permissions") {
        parse_permissions(f, &tool.permissions);
        tool_permission_sites_.emplace_back(f, tool.permissions);
        tool.has_own_permissions = true;
      }
    }
    if (!have_name) fail(item, "\"name\" is required");
    if (ok && have_name) out->push_back(std::move(tool));
  }
}

std::optional<Json> ManifestParser::parse_parameter_list(const At& at) {
  Json properties = Json::object();
  Json required = Json::array();
  bool ok = true;
  for (size_t i = 0; i < at.node.size(); ++i) {
    At item = item_at(at, at.node[i], i);
    auto fields =
        entries(item, {"name", "type", "required", "description", "default", "enum", "items"});
    if (!fields) {
      ok = false;
      continue;
    }
    std::string name;
    std::optional<std::string_view> type;
    bool is_required = false;
    Json property = Json::object();
    const At* default_at = nullptr;
    const At* items_at = nullptr;
    bool item_ok = true;
    for (const At& f : *fields) {
      if (f.key == "name") {
        std::optional<std::string> s = nonempty_string(f);
        if (s && !is_tool_name(*s)) {
          fail(f, cat(quote(*s),
                      " is not a valid parameter name; use up to 64 letters, digits, "
                      "underscores and hyphens"));
          s.reset();
        } else if (s && properties.contains(*s)) {
          fail(f, cat("another parameter is already called ", quote(*s)));
          s.reset();
        }
        if (s) {
          name = std::move(*s);
        } else {
          item_ok = false;
        }
      } else if (f.key == "type") {
        std::optional<std::string> s = nonempty_string(f);
        if (!s) {
          item_ok = false;
        } else if (!(type = json_schema_type(*s))) {
          fail(f, cat(quote(*s), " is not a parameter type; expected one of: ", kDesignTypes));
          item_ok = false;
        }
      } else if (f.key == "required") {
        if (auto b = bool_value(f)) {
          is_required = *b;
        } else {
          item_ok = false;
        }
      } else if (f.key == "description") {
        if (auto s = string_value(f)) {
          property["description"] = std::move(*s);
        } else {
          item_ok = false;
        }
      } else if (f.key == "default") {
        default_at = &f;
      } else if (f.key == "enum") {
        if (!is_sequence(f) || f.node.size() == 0) {
          if (f.node.IsSequence()) fail(f, "must list at least one value");
          item_ok = false;
        } else if (auto values = to_json(f)) {
          property["enum"] = std::move(*values);
        } else {
          item_ok = false;
        }
      } else if (f.key == "items") {
        items_at = &f;
      }
    }
    if (name.empty() && item_ok) {
      fail(item, "\"name\" is required");
      item_ok = false;
    }
    if (!type && item_ok) {
      fail(item, cat("\"type\" is required (one of: ", kDesignTypes, ")"));
      item_ok = false;
    }
    if (!item_ok) {
      ok = false;
      continue;
    }
    if (!type->empty()) property["type"] = std::string(*type);
    if (items_at) {
      if (*type != "array") {
        fail(*items_at, "only a parameter of type list/array has items");
        ok = false;
        continue;
      }
      if (items_at->node.IsScalar()) {
        std::optional<std::string_view> item_type = json_schema_type(items_at->node.Scalar());
        if (!item_type) {
          fail(*items_at, cat(quote(items_at->node.Scalar()),
                              " is not a type; expected one of: ", kDesignTypes));
          ok = false;
          continue;
        }
        property["items"] =
            item_type->empty() ? Json::object() : Json{{"type", std::string(*item_type)}};
      } else if (items_at->node.IsMap()) {
        std::optional<Json> items = to_json(*items_at);
        if (!items) {
          ok = false;
          continue;
        }
        property["items"] = std::move(*items);
      } else {
        fail(*items_at,
             cat("expected a type name or a JSON Schema object, got ", describe(items_at->node)));
        ok = false;
        continue;
      }
    }
    if (default_at) {
      std::optional<Json> value = to_json(*default_at);
      if (!value) {
        ok = false;
        continue;
      }
      if (!value_fits(*value, *type)) {
        fail(*default_at, cat("the default is ", describe(*value), ", but the type is ", *type));
        ok = false;
        continue;
      }
      if (!value->is_null()) property["default"] = std::move(*value);
    }
    properties[name] = std::move(property);
    if (is_required) required.push_back(name);
  }
  if (!ok) return std::nullopt;
  Json schema = Json::object();
  schema["type"] = "object";
  schema["properties"] = std::move(properties);
  schema["required"] = std::move(required);
  return schema;
}

// Checks the parts of an object schema that tool calling and config loading
// rely on: "properties" is a mapping of schemas with known type names, and
// "required" names only declared properties.
bool ManifestParser::check_properties(const At& at, const Json& schema) {
  bool ok = true;
  auto sub_at = [&](std::string_view key) {
    At sub = at;
    sub.field = cat(at.field, ".", key);
    YAML::Node node = at.node[std::string(key)];
    if (node.IsDefined() && !node.IsNull()) sub.mark = node.Mark();
    return sub;
  };
  if (auto t = schema.find("type"); t != schema.end() && *t != "object") {
    fail(sub_at("type"),
         cat("must be \"object\" (the values form a JSON object), got ", shown(*t)));
    ok = false;
  }
  const Json& properties = schema.at("properties");
  if (!properties.is_object()) {
    fail(sub_at("properties"),
         cat("expected a mapping of name to JSON Schema, got ", describe(properties)));
    return false;
  }
  At props_at = sub_at("properties");
  for (const auto& [key, property] : properties.items()) {
    std::string field = cat(props_at.field, ".", key);
    if (property.is_boolean()) continue;
    if (!property.is_object()) {
      fail(props_at.mark, field, cat("expected a JSON Schema object, got ", describe(property)));
      ok = false;
      continue;
    }
    auto t = property.find("type");
    if (t == property.end()) continue;
    bool type_ok = is_json_schema_type_name(*t);
    if (t->is_array()) {
      type_ok = !t->empty() && std::all_of(t->begin(), t->end(), is_json_schema_type_name);
    }
    if (!type_ok) {
      std::string hint;
      if (t->is_string()) {
        if (auto mapped = json_schema_type(t->get<std::string>()); mapped && !mapped->empty()) {
          hint = cat(" (did you mean \"", *mapped, "\"?)");
        }
      }
      fail(props_at.mark, cat(field, ".type"),
           cat(shown(*t), " is not a JSON Schema type", hint,
               "; expected string, integer, number, boolean, object, array or null"));
      ok = false;
    }
  }
  if (auto r = schema.find("required"); r != schema.end()) {
    At required_at = sub_at("required");
    if (!r->is_array()) {
      fail(required_at, cat("expected a list of property names, got ", describe(*r)));
      return false;
    }
    for (size_t i = 0; i < r->size(); ++i) {
      const Json& name = (*r)[i];
      std::string field = cat(required_at.field, "[", i, "]");
      if (!name.is_string()) {
        fail(required_at.mark, field, cat("expected a property name, got ", describe(name)));
        ok = false;
      } else if (!properties.contains(name.get<std::string>())) {
        fail(required_at.mark, field, cat(shown(name), " is not one of the declared properties"));
        ok = false;
      }
    }
  }
  return ok;
}

std::optional<Json> ManifestParser::parse_parameter_schema(const At& at) {
  std::optional<Json> schema = to_json(at);
  if (!schema) return std::nullopt;
  if (!schema->empty() && !schema->contains("type") && !schema->contains("properties") &&
      !schema->contains("$schema")) {
    fail(at,
         "expected a list of parameters ({name, type, required}) or a JSON Schema object "
         "(with \"type\": \"object\" and \"properties\")");
    return std::nullopt;
  }
  if (!schema->contains("type")) (*schema)["type"] = "object";
  if (!schema->contains("properties")) (*schema)["properties"] = Json::object();
  if (!check_properties(at, *schema)) return std::nullopt;
  if (!schema->contains("required")) (*schema)["required"] = Json::array();
  return schema;
}

void ManifestParser::parse_config_schema(const At& at, Manifest* out) {
  if (!at.node.IsMap()) {
    fail(at,
         cat("expected a mapping (defaults, or a JSON Schema object), got ", describe(at.node)));
    return;
  }
  std::optional<Json> value = to_json(at);
  if (!value) return;
  auto type = value->find("type");
  bool is_schema = (type != value->end() && *type == "object") || value->contains("properties") ||
                   value->contains("$schema");
  if (!is_schema) {
    Json properties = Json::object();
    for (const auto& [key, item] : value->items()) properties[key] = infer_schema(item);
    out->config_schema = {{"type", "object"}, {"properties", std::move(properties)}};
    out->config_defaults = std::move(*value);
    return;
  }
  if (!value->contains("type")) (*value)["type"] = "object";
  if (!value->contains("properties")) (*value)["properties"] = Json::object();
  if (!check_properties(at, *value)) return;
  // Each default must fit its property's declared type.
  Json defaults = schema_defaults(*value);
  const Json& properties = value->at("properties");
  for (const auto& [key, d] : defaults.items()) {
    auto p = properties.find(key);
    if (p == properties.end() || !p->is_object()) continue;
    auto t = p->find("type");
    if (t == p->end() || !t->is_string()) continue;
    if (!value_fits(d, t->get<std::string>())) {
      fail(at.mark, cat(at.field, ".properties.", key, ".default"),
           cat("the default is ", describe(d), ", but the type is ", shown(*t)));
    }
  }
  out->config_defaults = std::move(defaults);
  out->config_schema = std::move(*value);
}

void ManifestParser::parse_permissions(const At& at, std::vector<std::string>* out) {
  std::vector<std::string> list = string_list(at);
  for (size_t i = 0; i < list.size(); ++i) {
    if (!is_permission(list[i])) {
      At item = item_at(at, at.node[i], i);
      fail(item, cat(quote(list[i]),
                     " is not a permission; write dot-separated lowercase words such as "
                     "\"file.read\" or \"network.*\""));
      continue;
    }
    out->push_back(list[i]);
  }
}

// A tool may narrow its module's permissions (fs.read needs only file.read),
// never widen them.
void ManifestParser::check_tool_permissions(const Manifest& manifest) {
  for (const auto& [site, list] : tool_permission_sites_) {
    for (const std::string& permission : list) {
      if (manifest.has_permission(permission)) continue;
      fail(site, cat(quote(permission),
                     " is not among the module's permissions; a tool can only narrow them "
                     "(add it to the top-level \"permissions\")"));
    }
  }
}

std::optional<std::filesystem::path> ManifestParser::relative_path(const At& at) {
  std::optional<std::string> s = nonempty_string(at);
  if (!s) return std::nullopt;
  std::filesystem::path p(*s);
  bool escapes = std::any_of(p.begin(), p.end(), [](const auto& part) { return part == ".."; });
  if (p.is_absolute() || escapes) {
    fail(at,
         cat(quote(*s), " must be a path inside the module's folder (relative, without \"..\")"));
    return std::nullopt;
  }
  return p.lexically_normal();
}

void ManifestParser::parse_runtime(const At& at, Manifest::Runtime* out) {
  auto kind = [&](const At& f) -> bool {
    std::optional<std::string> s = nonempty_string(f);
    if (!s) return false;
    if (*s == "native") {
      out->kind = Manifest::Runtime::Kind::kNative;
    } else if (*s == "lua") {
      out->kind = Manifest::Runtime::Kind::kLua;
    } else {
      fail(f, cat(quote(*s), " is not a runtime; expected native or lua"));
      return false;
    }
    return true;
  };
  if (at.node.IsScalar()) {
    kind(at);
    return;
  }
  auto fields = entries(at, {"kind", "library", "entry"});
  if (!fields) return;
  const At* library = nullptr;
  const At* entry = nullptr;
  for (const At& f : *fields) {
    if (f.key == "kind") kind(f);
    if (f.key == "library") library = &f;
    if (f.key == "entry") entry = &f;
  }
  bool native = out->kind == Manifest::Runtime::Kind::kNative;
  if (library) {
    if (!native) {
      fail(*library, "only a native module has a library; a lua module names its script in entry");
    } else if (auto p = relative_path(*library)) {
      out->library = std::move(*p);
    }
  }
  if (entry) {
    if (native) {
      fail(*entry, "only a lua module has an entry script; a native module names its library");
    } else if (auto p = relative_path(*entry)) {
      out->entry = std::move(*p);
    }
  }
}

void ManifestParser::parse_mcp(const At& at, Manifest::Mcp* out) {
  auto fields = entries(at, {"tool_names", "resources", "resource_templates", "prompts"});
  if (!fields) return;
  for (const At& f : *fields) {
    if (f.key == "tool_names") {
      if (auto s = nonempty_string(f)) {
        if (*s == "bare") {
          out->bare_tool_names = true;
        } else if (*s != "qualified") {
          fail(f, cat(quote(*s),
                      " is not a naming; expected bare (\"tool\") or qualified "
                      "(\"module__tool\", the default)"));
        }
      }
    } else if (f.key == "resources") {
      out->resources = parse_mcp_list(f, "uri", {"text", "blob", "channel"});
    } else if (f.key == "resource_templates") {
      out->resource_templates = parse_mcp_list(f, "uriTemplate", {"text", "blob", "channel"});
    } else if (f.key == "prompts") {
      out->prompts = parse_mcp_list(f, "name", {"messages", "channel"});
    }
  }
}

Json ManifestParser::parse_mcp_list(const At& at, std::string_view id_field,
                                    const std::vector<std::string_view>& sources) {
  Json out = Json::array();
  if (!is_sequence(at)) return out;
  std::set<std::string> seen;
  for (size_t i = 0; i < at.node.size(); ++i) {
    At item = item_at(at, at.node[i], i);
    std::optional<Json> value = to_json(item);
    if (!value) continue;
    if (!value->is_object()) {
      fail(item, cat("expected a mapping with ", id_field, ", got ", describe(item.node)));
      continue;
    }
    bool ok = true;
    for (std::string_view required : {id_field, std::string_view("name")}) {
      auto it = value->find(std::string(required));
      if (it == value->end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
        fail(item, cat("\"", required, "\" is required (a string)"));
        ok = false;
      }
    }
    if (ok && !seen.insert((*value)[std::string(id_field)].get<std::string>()).second) {
      fail(item, cat("another entry has the same ", id_field));
      ok = false;
    }
    int given = 0;
    for (std::string_view source : sources) given += value->contains(std::string(source)) ? 1 : 0;
    if (given != 1) {
      fail(item,
           cat("give exactly one of ", join(sources, ", "), " (where the content comes from)"));
      ok = false;
    }
    if (auto channel = value->find("channel"); channel != value->end()) {
      if (!channel->is_string() || !validate_channel(channel->get<std::string>()).ok()) {
        fail(item, "\"channel\" must be a channel name the module answers requests on");
        ok = false;
      }
    }
    if (auto messages = value->find("messages");
        messages != value->end() && !messages->is_array()) {
      fail(item, "\"messages\" must be a list of {role, content}");
      ok = false;
    }
    for (const char* text_field : {"text", "blob", "mimeType", "description", "title"}) {
      if (auto it = value->find(text_field); it != value->end() && !it->is_string()) {
        fail(item, cat("\"", text_field, "\" must be a string"));
        ok = false;
      }
    }
    if (ok) out.push_back(std::move(*value));
  }
  return out;
}

void ManifestParser::parse_mailbox(const At& at, Manifest::Mailbox* out) {
  auto fields = entries(at, {"capacity", "overflow"});
  if (!fields) return;
  for (const At& f : *fields) {
    if (f.key == "capacity") {
      std::optional<int64_t> n = int_value(f);
      if (n && *n <= 0) {
        fail(f, cat("must be greater than 0, got ", *n));
      } else if (n) {
        out->capacity = static_cast<size_t>(*n);
      }
    } else if (f.key == "overflow") {
      std::optional<std::string> s = nonempty_string(f);
      if (!s) continue;
      if (*s != "wait" && *s != "drop_oldest" && *s != "drop_newest") {
        fail(f, cat(quote(*s),
                    " is not an overflow policy; expected wait, drop_oldest or "
                    "drop_newest"));
        continue;
      }
      out->overflow = std::move(*s);
    }
  }
}

Result<Manifest> ManifestParser::parse(std::string_view text) {
  if (size_t bad = invalid_utf8_at(text); bad != std::string_view::npos) {
    std::string_view before = text.substr(0, bad);
    size_t line = static_cast<size_t>(std::count(before.begin(), before.end(), '\n')) + 1;
    size_t line_start = before.rfind('\n');
    size_t column = bad - (line_start == std::string_view::npos ? 0 : line_start + 1) + 1;
    return absl::InvalidArgumentError(
        cat(path_, ":", line, ":", column, ": the manifest is not valid UTF-8"));
  }
  YAML::Node document;
  try {
    std::optional<YAML::Mark> second = second_document(text);
    document = YAML::Load(std::string(text));
    if (second) {
      fail(*second, "",
           "a manifest is one YAML document, but this file has several (remove the \"---\")");
    }
  } catch (const YAML::ParserException& e) {
    fail(e.mark, "", cat("YAML syntax error: ", e.msg));
    return absl::InvalidArgumentError(errors_.front());
  } catch (const YAML::Exception& e) {
    fail(e.mark, "", cat("cannot read YAML: ", e.msg));
    return absl::InvalidArgumentError(errors_.front());
  }
  if (document.IsNull()) {
    return absl::InvalidArgumentError(cat(path_, ": the manifest is empty"));
  }

  Manifest manifest;
  manifest.path = std::filesystem::path(path_);
  manifest.directory = manifest.path.parent_path();

  static const std::vector<std::string_view> kFields = {
      "name",      "version",     "type",         "description",   "author",
      "license",   "priority",    "dependencies", "subscriptions", "publications",
      "providers", "memory",      "tools",        "capabilities",  "config_schema",
      "hotload",   "permissions", "runtime",      "mailbox",       "mcp"};
  At root{document, document.Mark(), "", ""};
  if (!root.node.IsMap()) {
    fail(root, cat("a manifest is a mapping of fields (name, version, type, ...), got ",
                   describe(root.node)));
    return absl::InvalidArgumentError(join(errors_, "\n"));
  }
  std::optional<std::vector<At>> fields = entries(root, kFields);
  bool have_name = false;
  bool have_version = false;
  bool have_type = false;
  for (const At& f : *fields) {
    const std::string& key = f.key;
    if (std::string_view(key).starts_with("x-")) {
      if (auto value = to_json(f)) manifest.extensions[key] = std::move(*value);
    } else if (key == "name") {
      have_name = true;
      std::optional<std::string> s = nonempty_string(f);
      if (s && !is_module_name(*s)) {
        fail(f, cat(quote(*s),
                    " is not a valid module name; use up to 64 lowercase letters, digits "
                    "and underscores, starting with a letter"));
      } else if (s) {
        manifest.name = std::move(*s);
      }
    } else if (key == "version") {
      have_version = true;
      if (std::optional<std::string> s = nonempty_string(f)) {
        Result<SemVer> version = SemVer::parse(*s);
        if (version.ok()) {
          manifest.version = *std::move(version);
        } else {
          fail(f, message_of(version.status()));
        }
      }
    } else if (key == "type") {
      have_type = true;
      if (std::optional<std::string> s = nonempty_string(f)) {
        if (*s == "core") {
          manifest.type = ModuleType::kCore;
        } else if (*s == "capability") {
          manifest.type = ModuleType::kCapability;
        } else if (*s == "integration") {
          manifest.type = ModuleType::kIntegration;
        } else {
          fail(f,
               cat(quote(*s), " is not a module type; expected core, capability or integration"));
        }
      }
    } else if (key == "description") {
      if (auto s = string_value(f)) manifest.description = std::move(*s);
    } else if (key == "author") {
      if (auto s = string_value(f)) manifest.author = std::move(*s);
    } else if (key == "license") {
      if (auto s = string_value(f)) manifest.license = std::move(*s);
    } else if (key == "priority") {
      if (std::optional<std::string> s = nonempty_string(f)) {
        if (*s == "critical") {
          manifest.priority = ModulePriority::kCritical;
        } else if (*s == "high") {
          manifest.priority = ModulePriority::kHigh;
        } else if (*s == "normal") {
          manifest.priority = ModulePriority::kNormal;
        } else if (*s == "low") {
          manifest.priority = ModulePriority::kLow;
        } else {
          fail(f, cat(quote(*s), " is not a priority; expected critical, high, normal or low"));
        }
      }
    } else if (key == "dependencies") {
      parse_dependencies(f, &manifest.dependencies);
    } else if (key == "subscriptions") {
      parse_subscriptions(f, &manifest.subscriptions);
    } else if (key == "publications") {
      parse_publications(f, &manifest.publications);
    } else if (key == "providers") {
      parse_providers(f, &manifest.providers);
    } else if (key == "memory") {
      parse_memory(f, &manifest.memory);
    } else if (key == "tools") {
      parse_tools(f, &manifest.tools);
    } else if (key == "capabilities") {
      manifest.capabilities = string_list(f);
    } else if (key == "config_schema") {
      parse_config_schema(f, &manifest);
    } else if (key == "hotload") {
      if (auto b = bool_value(f)) manifest.hotload = *b;
    } else if (key == "permissions") {
      parse_permissions(f, &manifest.permissions);
    } else if (key == "runtime") {
      parse_runtime(f, &manifest.runtime);
    } else if (key == "mailbox") {
      parse_mailbox(f, &manifest.mailbox);
    } else if (key == "mcp") {
      parse_mcp(f, &manifest.mcp);
    }
  }
  check_tool_permissions(manifest);
  for (Manifest::Tool& tool : manifest.tools) {
    if (!tool.has_own_permissions) tool.permissions = manifest.permissions;
  }
  if (!have_name) fail(root.mark, "name", "is required");
  if (!have_version) fail(root.mark, "version", "is required");
  if (!have_type) fail(root.mark, "type", "is required (core, capability or integration)");

  if (error_count_ > 0) {
    std::string message = join(errors_, "\n");
    if (error_count_ > errors_.size()) {
      message += cat("\n", path_, ": ... and ", error_count_ - errors_.size(), " more problems");
    }
    return absl::InvalidArgumentError(message);
  }
  return manifest;
}

}  // namespace

// ---------------------------------------------------------------------------
// SemVer and VersionConstraint

Result<SemVer> SemVer::parse(std::string_view text) {
  SemVer v;
  int components = 0;
  if (!parse_version_parts(text, &v, &components) || components != 3) {
    return absl::InvalidArgumentError(
        cat(quote(text), " is not a semantic version (MAJOR.MINOR.PATCH such as \"1.2.0\", ",
            "optionally with a pre-release such as \"1.2.0-beta.1\")"));
  }
  return v;
}

std::string SemVer::to_string() const {
  std::string s = cat(major, ".", minor, ".", patch);
  if (!prerelease.empty()) s += cat("-", prerelease);
  if (!build.empty()) s += cat("+", build);
  return s;
}

std::strong_ordering operator<=>(const SemVer& a, const SemVer& b) {
  if (auto c = compare_core(a, b); c != 0) return c;
  int p = compare_prerelease(a.prerelease, b.prerelease);
  return p == 0 ? std::strong_ordering::equal
                : (p < 0 ? std::strong_ordering::less : std::strong_ordering::greater);
}

Result<VersionConstraint> VersionConstraint::parse(std::string_view text) {
  VersionConstraint constraint;
  std::string_view trimmed = strip(text);
  if (trimmed.empty() || trimmed == "*") return constraint;
  static const std::vector<std::pair<std::string_view, Op>> kOps = {
      {">=", Op::kGe}, {"<=", Op::kLe}, {"==", Op::kEq}, {"!=", Op::kNe},   {"~=", Op::kCompatible},
      {">", Op::kGt},  {"<", Op::kLt},  {"=", Op::kEq},  {"^", Op::kCaret}, {"~", Op::kTilde},
  };
  std::vector<std::string> normalized;
  for (std::string_view part : split(trimmed, ',')) {
    std::string_view clause_text = strip(part);
    auto bad = [&](std::string_view why) {
      return absl::InvalidArgumentError(cat("bad version requirement ", quote(trimmed), ": ", why));
    };
    if (clause_text.empty()) return bad("empty requirement between commas");
    Clause clause;
    std::string_view op_text;
    for (const auto& [op, value] : kOps) {
      if (std::string_view(clause_text).starts_with(op)) {
        op_text = op;
        clause.op = value;
        break;
      }
    }
    std::string_view version_text = strip(clause_text.substr(op_text.size()));
    if (!parse_version_parts(version_text, &clause.version, &clause.components)) {
      return bad(
          cat(quote(version_text), " is not a version (expected numbers such as 1, 1.2 or 1.2.3)"));
    }
    if (clause.op == Op::kCompatible && clause.components < 2) {
      return bad("~= needs at least MAJOR.MINOR");
    }
    normalized.push_back(cat(op_text.empty() ? "==" : op_text, version_text));
    constraint.clauses_.push_back(std::move(clause));
  }
  constraint.text_ = join(normalized, ",");
  return constraint;
}

bool VersionConstraint::clause_allows(const Clause& clause, const SemVer& version) {
  const SemVer& c = clause.version;
  switch (clause.op) {
    case Op::kEq:
      return version == c;
    case Op::kNe:
      return version != c;
    case Op::kLt:
      return version < c;
    case Op::kLe:
      return version <= c;
    case Op::kGt:
      return version > c;
    case Op::kGe:
      return version >= c;
    case Op::kCaret: {
      SemVer upper;
      if (clause.components == 1 || c.major > 0) {
        upper = core_version(c.major + 1, 0, 0);
      } else if (clause.components == 2 || c.minor > 0) {
        upper = core_version(0, c.minor + 1, 0);
      } else {
        upper = core_version(0, 0, c.patch + 1);
      }
      // Compared on MAJOR.MINOR.PATCH only, so 2.0.0-beta does not satisfy ^1.
      return version >= c && compare_core(version, upper) < 0;
    }
    case Op::kTilde: {
      SemVer upper = clause.components == 1 ? core_version(c.major + 1, 0, 0)
                                            : core_version(c.major, c.minor + 1, 0);
      return version >= c && compare_core(version, upper) < 0;
    }
    case Op::kCompatible: {
      SemVer upper = clause.components == 2 ? core_version(c.major + 1, 0, 0)
                                            : core_version(c.major, c.minor + 1, 0);
      return version >= c && compare_core(version, upper) < 0;
    }
  }
  return false;
}

bool VersionConstraint::allows(const SemVer& version) const {
  return std::all_of(clauses_.begin(), clauses_.end(),
                     [&](const Clause& clause) { return clause_allows(clause, version); });
}

// ---------------------------------------------------------------------------
// Enums and Manifest

std::string_view to_string(ModuleType type) {
  switch (type) {
    case ModuleType::kCore:
      return "core";
    case ModuleType::kCapability:
      return "capability";
    case ModuleType::kIntegration:
      return "integration";
  }
  return "unknown";
}

std::string_view to_string(ModulePriority priority) {
  switch (priority) {
    case ModulePriority::kCritical:
      return "critical";
    case ModulePriority::kHigh:
      return "high";
    case ModulePriority::kNormal:
      return "normal";
    case ModulePriority::kLow:
      return "low";
  }
  return "unknown";
}

int priority_rank(ModulePriority priority) { return static_cast<int>(priority); }

std::string_view to_string(Manifest::Runtime::Kind kind) {
  return kind == Manifest::Runtime::Kind::kLua ? "lua" : "native";
}

std::string Manifest::Requirement::to_string() const { return cat(name, constraint.text()); }

const Manifest::Tool* Manifest::find_tool(std::string_view tool_name) const {
  for (const Tool& tool : tools) {
    if (tool.name == tool_name) return &tool;
  }
  return nullptr;
}

bool Manifest::may_publish(std::string_view channel) const {
  return std::any_of(publications.begin(), publications.end(),
                     [&](const std::string& p) { return pattern_matches(p, channel); });
}

bool Manifest::has_permission(std::string_view permission) const {
  for (const std::string& granted : permissions) {
    if (granted == permission) return true;
    if (std::string_view(granted).ends_with(".*")) {
      std::string_view family = std::string_view(granted).substr(0, granted.size() - 1);
      if (std::string_view(permission).starts_with(family) && permission.size() > family.size())
        return true;
    }
  }
  return false;
}

Result<Manifest> parse_manifest(std::string_view yaml_text, std::string_view path) {
  // The parser checks before it converts, so nothing should throw; this keeps
  // a surprise in yaml-cpp or nlohmann::json from escaping as an exception.
  try {
    return ManifestParser(std::string(path)).parse(yaml_text);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(cat(path, ": cannot parse the manifest: ", e.what()));
  }
}

Result<Manifest> load_manifest(const std::filesystem::path& file) {
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) {
    return absl::NotFoundError(
        cat(file.string(), ": is a directory; expected a manifest.yaml file"));
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    bool exists = std::filesystem::exists(file, ec);
    return absl::NotFoundError(cat(file.string(), ": cannot read the manifest (",
                                   exists ? "permission denied" : "no such file", ")"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return absl::NotFoundError(cat(file.string(), ": cannot read the manifest"));
  }
  return parse_manifest(text.str(), file.string());
}

}  // namespace lotus
