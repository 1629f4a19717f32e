#include "llm/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <mutex>

#include "lotus/strings.h"

namespace lotus::llm {
namespace {

constexpr size_t kMaxErrorBody = 64 * 1024;

void global_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

bool is_loopback(std::string_view url) {
  auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return false;
  std::string_view rest = url.substr(scheme_end + 3);
  for (std::string_view host : {"127.0.0.1", "localhost", "[::1]"}) {
    if (rest.substr(0, host.size()) == host &&
        (rest.size() == host.size() || rest[host.size()] == ':' || rest[host.size()] == '/')) {
      return true;
    }
  }
  return false;
}

struct Transfer {
  CURL* curl = nullptr;
  const HttpRequest* request = nullptr;
  const BodySink* sink = nullptr;
  HttpResponse response;
  Status sink_status;
  bool cancelled = false;
  bool idle_expired = false;
  std::chrono::steady_clock::time_point last_activity = std::chrono::steady_clock::now();
};

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * count;
  std::string_view line(data, n);
  t->last_activity = std::chrono::steady_clock::now();
  if (line.substr(0, 5) == "HTTP/") {
    // A new status line (after 100 Continue or a redirect) starts afresh.
    t->response.headers.clear();
    return n;
  }
  auto colon = line.find(':');
  if (colon != std::string_view::npos) {
    t->response.headers[lower(trim(line.substr(0, colon)))] =
        std::string(trim(line.substr(colon + 1)));
  }
  return n;
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * count;
  t->last_activity = std::chrono::steady_clock::now();
  if (t->request->cancel != nullptr && t->request->cancel->load()) {
    t->cancelled = true;
    return CURL_WRITEFUNC_ERROR;
  }
  long status = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  t->response.status = static_cast<int>(status);
  bool success = status >= 200 && status < 300;
  if (success && t->sink != nullptr && *t->sink) {
    t->response.streamed = true;
    Status s = (*t->sink)(std::string_view(data, n));
    if (!s.ok()) {
      t->sink_status = std::move(s);
      return CURL_WRITEFUNC_ERROR;
    }
    return n;
  }
  size_t room =
      success ? n : std::min(n, kMaxErrorBody - std::min(kMaxErrorBody, t->response.body.size()));
  t->response.body.append(data, room);
  return n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (t->request->cancel != nullptr && t->request->cancel->load()) {
    t->cancelled = true;
    return 1;
  }
  if (t->request->idle_timeout.count() > 0 &&
      std::chrono::steady_clock::now() - t->last_activity > t->request->idle_timeout) {
    t->idle_expired = true;
    return 1;
  }
  return 0;
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  auto it = headers.find(lower(name));
  return it == headers.end() ? std::string() : it->second;
}

Result<HttpResponse> HttpClient::perform(const HttpRequest& request, const BodySink& sink) {
  global_init_once();
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) return absl::InternalError("cannot create a libcurl handle");

  Transfer t;
  t.curl = curl.get();
  t.request = &request;
  t.sink = &sink;

  curl_slist* raw_headers = nullptr;
  for (const auto& [name, value] : request.headers) {
    raw_headers = curl_slist_append(raw_headers, cat(name, ": ", value).c_str());
  }
  // No "Expect: 100-continue" round trip for large prompts.
  raw_headers = curl_slist_append(raw_headers, "Expect:");
  std::unique_ptr<curl_slist, SlistDeleter> headers(raw_headers);

  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  if (request.method == "POST" || !request.body.empty()) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(request.connect_timeout.count()));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(request.total_timeout.count()));
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  // A local model server is never reached through a proxy from the environment.
  if (is_loopback(request.url)) curl_easy_setopt(c, CURLOPT_PROXY, "");

  CURLcode code = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  t.response.status = static_cast<int>(status);

  if (t.cancelled) return absl::CancelledError("the request was cancelled");
  if (!t.sink_status.ok()) return t.sink_status;
  if (code == CURLE_OK) return std::move(t.response);
  if (t.idle_expired) {
    return absl::DeadlineExceededError(
        cat("no data for ", request.idle_timeout.count(), " ms from the server"));
  }
  if (code == CURLE_OPERATION_TIMEDOUT) {
    return absl::DeadlineExceededError(cat("timed out: ", curl_easy_strerror(code)));
  }
  std::string what = curl_easy_strerror(code);
  if (t.response.status != 0) {
    return absl::UnavailableError(
        cat("the connection broke after HTTP ", t.response.status, ": ", what));
  }
  // The system's reason (connection refused, no route to host) when there is one.
  long os_error = 0;
  curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_error);
  if (os_error != 0) what = cat(what, " (", std::strerror(static_cast<int>(os_error)), ")");
  return absl::UnavailableError(cat("cannot reach the server: ", what));
}

}  // namespace lotus::llm
