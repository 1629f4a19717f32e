// The HTTP vocabulary of the API: Beast request/response types, JSON answers
// and errors (every error is {"error": "..."} with a message that names what
// was wrong), and the small parsing helpers the routes share.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <boost/beast/http.hpp>

#include "lotus/event.h"
#include "lotus/status.h"

namespace lotus::api {

namespace http = boost::beast::http;
using HttpRequest = http::request<http::string_body>;
using HttpResponse = http::response<http::string_body>;

HttpResponse json_response(http::status status, const Json& body);
// The same for a document already serialized.
HttpResponse json_text_response(http::status status, std::string json_text);
// {"error": message}
HttpResponse error_response(http::status status, std::string_view message);
// The HTTP status that says the same as `status` (NotFound -> 404, ...).
http::status http_status_of(const Status& status);
HttpResponse error_response(const Status& status);

// "/a/b?x=1&y=%20" -> path "/a/b" and decoded query parameters.
struct Target {
  std::string path;
  std::map<std::string, std::string> query;
};
// Percent-decoding errors ("%zz") and empty paths are InvalidArgument.
Result<Target> parse_target(std::string_view target);
Result<std::string> percent_decode(std::string_view text, bool plus_is_space);

// The body as a JSON object; errors name the offset and what the parser
// expected, or say that an object was expected.
Result<Json> json_object_body(const HttpRequest& request);

// Field readers for request bodies: InvalidArgument naming the field when it
// is present with the wrong type (or missing when required).
Result<std::string> string_field(const Json& body, std::string_view name, bool required = true);
Result<int64_t> int_field(const Json& body, std::string_view name, int64_t fallback, int64_t low,
                          int64_t high);

}  // namespace lotus::api
