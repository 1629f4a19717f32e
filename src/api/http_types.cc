#include "api/http_types.h"

#include "lotus/strings.h"

namespace lotus::api {

HttpResponse json_response(http::status status, const Json& body) {
  return json_text_response(status, body.dump(-1, ' ', false, Json::error_handler_t::replace));
}

HttpResponse json_text_response(http::status status, std::string json_text) {
  HttpResponse response{status, 11};
  response.set(http::field::content_type, "application/json");
  response.set(http::field::cache_control, "no-store");
  response.body() = std::move(json_text);
  response.body() += "\n";
  response.prepare_payload();
  return response;
}

HttpResponse error_response(http::status status, std::string_view message) {
  return json_response(status, Json{{"error", std::string(message)}});
}

http::status http_status_of(const Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return http::status::bad_request;
    case absl::StatusCode::kNotFound:
      return http::status::not_found;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
      return http::status::conflict;
    case absl::StatusCode::kPermissionDenied:
      return http::status::forbidden;
    case absl::StatusCode::kUnauthenticated:
      return http::status::unauthorized;
    case absl::StatusCode::kDeadlineExceeded:
      return http::status::gateway_timeout;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
      return http::status::service_unavailable;
    case absl::StatusCode::kUnimplemented:
      return http::status::not_implemented;
    default:
      return http::status::internal_server_error;
  }
}

HttpResponse error_response(const Status& status) {
  return error_response(http_status_of(status), message_of(status));
}

Result<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+' && plus_is_space) {
      out += ' ';
    } else if (c == '%') {
      const bool complete = i + 2 < text.size();
      const int high = complete ? hex(text[i + 1]) : -1;
      const int low = complete ? hex(text[i + 2]) : -1;
      if (high < 0 || low < 0) {
        return absl::InvalidArgumentError(
            cat("bad percent-encoding at character ", i + 1, " of \"", text, "\""));
      }
      out += static_cast<char>(high * 16 + low);
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

Result<Target> parse_target(std::string_view target) {
  Target out;
  size_t question = target.find('?');
  std::string_view path = target.substr(0, question);
  if (path.empty() || path.front() != '/') {
    return absl::InvalidArgumentError(cat("request target \"", target, "\" is not a path"));
  }
  auto decoded = percent_decode(path, false);
  if (!decoded.ok()) return decoded.status();
  out.path = *std::move(decoded);
  if (question == std::string_view::npos) return out;
  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    size_t equals = pair.find('=');
    auto key = percent_decode(pair.substr(0, equals), true);
    if (!key.ok()) return key.status();
    std::string value;
    if (equals != std::string_view::npos) {
      auto v = percent_decode(pair.substr(equals + 1), true);
      if (!v.ok()) return v.status();
      value = *std::move(v);
    }
    out.query[*std::move(key)] = std::move(value);
  }
  return out;
}

Result<Json> json_object_body(const HttpRequest& request) {
  const std::string& text = request.body();
  if (text.empty()) {
    return absl::InvalidArgumentError("the request body is empty; expected a JSON object");
  }
  Json body;
  try {
    body = Json::parse(text);
  } catch (const Json::parse_error& e) {
    return absl::InvalidArgumentError(
        cat("the request body is not valid JSON (byte ", e.byte, "): ", e.what()));
  }
  if (!body.is_object()) {
    return absl::InvalidArgumentError(
        cat("the request body must be a JSON object, got ", body.type_name()));
  }
  return body;
}

Result<std::string> string_field(const Json& body, std::string_view name, bool required) {
  auto it = body.find(std::string(name));
  if (it == body.end() || it->is_null()) {
    if (!required) return std::string();
    return absl::InvalidArgumentError(cat("\"", name, "\" is missing; expected a string"));
  }
  if (!it->is_string()) {
    return absl::InvalidArgumentError(
        cat("\"", name, "\" must be a string, got ", it->type_name()));
  }
  return it->get<std::string>();
}

Result<int64_t> int_field(const Json& body, std::string_view name, int64_t fallback, int64_t low,
                          int64_t high) {
  auto it = body.find(std::string(name));
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_number_integer() || it->get<int64_t>() < low || it->get<int64_t>() > high) {
    return absl::InvalidArgumentError(
        cat("\"", name, "\" must be an integer from ", low, " to ", high, ", got ", it->dump()));
  }
  return it->get<int64_t>();
}

}  // namespace lotus::api
