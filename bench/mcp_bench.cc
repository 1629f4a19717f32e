// mcp_bench: MCP tools/call round trips per second, from a client that costs
// little, over stdio (a child process's stdin/stdout, one JSON message a
// line) or Streamable HTTP (keep-alive connections, POST /mcp).
//
//   mcp_bench stdio [--calls N] [--in-flight K | --busy-poll] [--tool echo] -- COMMAND ARGS...
//   mcp_bench http --url http://127.0.0.1:PORT/mcp [--token T] [--calls N]
//                  [--in-flight K | --busy-poll] [--tool echo]
//   mcp_bench bare-stdio              a bare echo server on stdio (canned replies)
//   mcp_bench bare-http --port-file F a bare echo server over HTTP (canned replies)
//
// --in-flight 1 (the default) is sequential: each call waits for the one
// before. With K > 1 the client keeps K calls outstanding: over stdio K
// requests on the one pipe (JSON-RPC lets a client send before earlier
// replies arrive), over HTTP K connections, each its own session with one
// call at a time. Prints one line: transport, calls, calls/s, mean and p99
// microseconds from sending a call to reading its reply.
//
// --busy-poll (sequential only) waits for each reply by retrying a
// non-blocking read rather than sleeping in one: the server's reply then
// finds the client running, so neither pays for waking it (on a small VM
// that wake-up is most of a bare echo's round trip). It keeps one core busy.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string mode;
  std::string url;
  std::string token;
  std::string tool = "echo";
  std::string call_tail;  // of a tools/call request of `tool`: see call_tail()
  std::string port_file;
  int calls = 20000;
  int warmup = 500;
  int in_flight = 1;
  bool busy_poll = false;
  std::vector<std::string> command;
};

// A tools/call request is written out as text, its part after the id made
// once: the client's own cost per call is part of what the machine's two
// cores share with the server.
std::string call_tail(const std::string& tool) {
  return R"(,"method":"tools/call","params":{"name":)" + Json(tool).dump() +
         R"(,"arguments":{"text":"hello"}}})";
}

void append_call(std::string& out, int id, const std::string& tail) {
  out += R"({"jsonrpc":"2.0","id":)";
  char digits[16];
  out.append(digits, std::to_chars(digits, digits + sizeof digits, id).ptr);
  out += tail;
}

std::string call_message(int id, const std::string& tail) {
  std::string out;
  append_call(out, id, tail);
  return out;
}

std::string initialize_message() {
  return Json{{"jsonrpc", "2.0"},
              {"id", 0},
              {"method", "initialize"},
              {"params",
               {{"protocolVersion", "2025-11-25"},
                {"capabilities", Json::object()},
                {"clientInfo", {{"name", "mcp_bench"}, {"version", "1"}}}}}}
      .dump();
}

// Whether `reply` answers request `id` with a successful tool result.
bool answers(const std::string& reply, int id) {
  Json parsed = Json::parse(reply, nullptr, false);
  return parsed.is_object() && parsed.value("id", -1) == id && parsed.contains("result") &&
         !parsed["result"].value("isError", false);
}

// Hands each complete line of `buffer` to `each` (a view into the buffer);
// returns how many bytes those lines took, newlines included.
template <typename Each>
size_t each_line(std::string_view buffer, Each&& each) {
  size_t start = 0;
  for (size_t newline; (newline = buffer.find('\n', start)) != std::string_view::npos;
       start = newline + 1) {
    each(buffer.substr(start, newline - start));
  }
  return start;
}

// The numeric id of a reply line, or -1 (a notification, or no number).
int id_of(std::string_view line) {
  size_t at = line.find("\"id\":");
  if (at == std::string_view::npos) return -1;
  int id = -1;
  for (at += 5; at < line.size() && std::isdigit(static_cast<unsigned char>(line[at])); ++at) {
    id = (id < 0 ? 0 : id * 10) + (line[at] - '0');
  }
  return id;
}

void report(const std::string& label, std::vector<double>& micros, double seconds) {
  std::sort(micros.begin(), micros.end());
  double sum = 0;
  for (double m : micros) sum += m;
  std::printf("%-28s %7zu calls  %9.0f calls/s  mean %7.1f us  p99 %7.1f us\n", label.c_str(),
              micros.size(), static_cast<double>(micros.size()) / seconds,
              sum / static_cast<double>(micros.size()),
              micros[static_cast<size_t>(static_cast<double>(micros.size()) * 0.99)]);
}

// ---- stdio ----------------------------------------------------------------

class Child {
 public:
  Child(const std::vector<std::string>& argv, bool busy_poll) : busy_poll_(busy_poll) {
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], STDIN_FILENO);
      dup2(out[1], STDOUT_FILENO);
      close(in[1]);
      close(out[0]);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execvp(args[0], args.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    to_ = in[1];
    from_ = out[0];
    if (busy_poll_) fcntl(from_, F_SETFL, fcntl(from_, F_GETFL) | O_NONBLOCK);
  }
  ~Child() {
    close(to_);
    int status = 0;
    for (int i = 0; i < 500; ++i) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) return;
      usleep(10'000);
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
  }
  void send(const std::string& line) { write_all(line + "\n"); }
  // Writes `text` (one or more lines, each ending in a newline) in as few
  // system calls as the pipe allows.
  void write_all(const std::string& text) {
    const char* p = text.data();
    size_t left = text.size();
    while (left > 0) {
      ssize_t n = ::write(to_, p, left);
      if (n <= 0) throw std::runtime_error("the server closed its input");
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  std::string line() {
    for (;;) {
      size_t newline = buffer_.find('\n', scanned_);
      if (newline != std::string::npos) {
        std::string out = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        scanned_ = 0;
        return out;
      }
      scanned_ = buffer_.size();
      read_more();
    }
  }
  // Waits for output, then hands each complete line it brought to `each`
  // (a std::string_view into the buffer, valid during the call).
  template <typename Each>
  void lines(Each&& each) {
    read_more();
    buffer_.erase(0, each_line(buffer_, std::forward<Each>(each)));
    scanned_ = 0;
  }
  // The reply to `id`, skipping notifications.
  std::string reply(int id) {
    for (;;) {
      std::string l = line();
      if (id_of(l) == id) return l;
    }
  }

 private:
  void read_more() {
    char chunk[65536];
    ssize_t n;
    // With --busy-poll the pipe is non-blocking and an empty read is retried.
    while ((n = ::read(from_, chunk, sizeof chunk)) < 0 && busy_poll_ && errno == EAGAIN) {
    }
    if (n <= 0) throw std::runtime_error("the server closed its output");
    buffer_.append(chunk, static_cast<size_t>(n));
  }

  const bool busy_poll_;
  pid_t pid_ = -1;
  int to_ = -1;
  int from_ = -1;
  std::string buffer_;
  size_t scanned_ = 0;
};

int run_stdio(const Options& o) {
  Child child(o.command, o.busy_poll);
  child.send(initialize_message());
  child.reply(0);
  child.send(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  int id = 1;
  for (int i = 0; i < o.warmup; ++i, ++id) {
    child.send(call_message(id, o.call_tail));
    if (!answers(child.reply(id), id)) {
      std::cerr << "mcp_bench: tools/call " << o.tool << " failed\n";
      return 1;
    }
  }
  // Calls first..first+calls-1, at most in_flight outstanding; each reply's
  // latency is counted from when its request was written.
  const int first = id;
  std::vector<Clock::time_point> sent(static_cast<size_t>(o.calls));
  std::vector<double> micros;
  micros.reserve(static_cast<size_t>(o.calls));
  // The requests that replies free room for go out together, one write for
  // all the replies one read brought, as a pipelining client does.
  int next = 0;
  std::string outgoing;
  auto queue_next = [&] {
    sent[static_cast<size_t>(next)] = Clock::now();
    append_call(outgoing, first + next, o.call_tail);
    outgoing += '\n';
    ++next;
  };
  bool bad = false;
  auto begin = Clock::now();
  while (next < std::min(o.in_flight, o.calls)) queue_next();
  child.write_all(outgoing);
  while (static_cast<int>(micros.size()) < o.calls && !bad) {
    outgoing.clear();
    child.lines([&](std::string_view r) {
      int reply_id = id_of(r);
      if (reply_id < first || reply_id >= first + o.calls) return;  // a notification
      if (r.find("\"result\"") == std::string_view::npos) {
        std::cerr << "mcp_bench: bad reply: " << r << "\n";
        bad = true;
        return;
      }
      micros.push_back(std::chrono::duration<double, std::micro>(
                           Clock::now() - sent[static_cast<size_t>(reply_id - first)])
                           .count());
      if (next < o.calls) queue_next();
    });
    if (!outgoing.empty()) child.write_all(outgoing);
  }
  if (bad) return 1;
  double seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  report(o.in_flight > 1 ? "stdio x" + std::to_string(o.in_flight) : "stdio", micros, seconds);
  return 0;
}

// The reply a bare echo server gives `line`, or "" for a notification:
// canned text around the request's id (this client's ids are numbers), no
// JSON parsed or built, so the server costs next to nothing.
std::string bare_reply(std::string_view line) {
  const int id = id_of(line);
  if (id < 0) return {};
  std::string out = R"({"jsonrpc":"2.0","id":)" + std::to_string(id) + R"(,"result":)";
  out += line.find(R"("method":"initialize")") != std::string_view::npos
             ? R"({"protocolVersion":"2025-11-25","capabilities":{"tools":{}},)"
               R"("serverInfo":{"name":"bare","version":"1"}})"
             : R"({"content":[{"type":"text","text":"hello"}],"isError":false})";
  out += '}';
  return out;
}

// Answers each request as soon as it is read: a reply written at once lets
// the client work on it while the next is made (gathering one read's replies
// into one write is slower here: client and server then take turns).
int run_bare_stdio() {
  std::string buffer;
  char chunk[65536];
  for (ssize_t n; (n = ::read(STDIN_FILENO, chunk, sizeof chunk)) > 0;) {
    buffer.append(chunk, static_cast<size_t>(n));
    bool closed = false;
    buffer.erase(0, each_line(buffer, [&](std::string_view line) {
                   std::string reply = bare_reply(line);
                   if (reply.empty() || closed) return;
                   reply += '\n';
                   for (size_t written = 0; written < reply.size();) {
                     ssize_t w =
                         ::write(STDOUT_FILENO, reply.data() + written, reply.size() - written);
                     if (w <= 0) {
                       closed = true;
                       return;
                     }
                     written += static_cast<size_t>(w);
                   }
                 }));
    if (closed) return 0;
  }
  return 0;
}

// ---- HTTP -----------------------------------------------------------------

struct Url {
  std::string host, port, target;
};

Url parse_url(const std::string& url) {
  const std::string prefix = "http://";
  if (url.rfind(prefix, 0) != 0) throw std::runtime_error("only http:// URLs: " + url);
  std::string rest = url.substr(prefix.size());
  size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  Url out;
  out.target = slash == std::string::npos ? "/" : rest.substr(slash);
  size_t colon = authority.rfind(':');
  out.host = authority.substr(0, colon);
  out.port = colon == std::string::npos ? "80" : authority.substr(colon + 1);
  return out;
}

// The JSON-RPC message of a reply: the body, or the last SSE data line.
std::string message_of(const http::response<http::string_body>& response) {
  const std::string& body = response.body();
  if (response[http::field::content_type].find("text/event-stream") == std::string::npos) {
    return body;
  }
  size_t data = body.rfind("data: ");
  if (data == std::string::npos) return {};
  size_t end = body.find('\n', data);
  return body.substr(data + 6, end == std::string::npos ? std::string::npos : end - data - 6);
}

// A socket's reads for --busy-poll: a read that finds nothing is retried at
// once instead of sleeping (the socket stays blocking for writes).
struct PollingReader {
  int fd;
  template <typename Buffers>
  size_t read_some(const Buffers& buffers, beast::error_code& ec) {
    asio::mutable_buffer into = *asio::buffer_sequence_begin(buffers);
    for (;;) {
      ssize_t n = ::recv(fd, into.data(), into.size(), MSG_DONTWAIT);
      if (n > 0) {
        ec = {};
        return static_cast<size_t>(n);
      }
      if (n == 0) {
        ec = asio::error::eof;
        return 0;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        ec = beast::error_code(errno, boost::system::system_category());
        return 0;
      }
    }
  }
  template <typename Buffers>
  size_t read_some(const Buffers& buffers) {
    beast::error_code ec;
    size_t n = read_some(buffers, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }
};

// One keep-alive connection with its own MCP session.
class HttpSession {
 public:
  HttpSession(const Options& o, const Url& url) : o_(o), url_(url), stream_(io_) {
    asio::ip::tcp::resolver resolver(io_);
    stream_.connect(resolver.resolve(url.host, url.port));
    stream_.socket().set_option(asio::ip::tcp::no_delay(true));
  }

  // initialize + notifications/initialized; false (and says why) on failure.
  bool open() {
    auto init = exchange(initialize_message());
    if (init.result() != http::status::ok) {
      std::cerr << "mcp_bench: initialize: HTTP " << init.result_int() << " " << init.body()
                << "\n";
      return false;
    }
    session_ = std::string(init["Mcp-Session-Id"]);
    exchange(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
    return true;
  }

  // One tools/call; false (and says why) unless it came back with a result.
  bool call(int id) {
    auto response = exchange(call_message(id, o_.call_tail));
    if (response.result() != http::status::ok || !answers(message_of(response), id)) {
      std::cerr << "mcp_bench: tools/call " << o_.tool << " failed: HTTP " << response.result_int()
                << " " << response.body() << "\n";
      return false;
    }
    return true;
  }

 private:
  http::response<http::string_body> exchange(const std::string& body) {
    http::request<http::string_body> request{http::verb::post, url_.target, 11};
    request.set(http::field::host, url_.host + ":" + url_.port);
    request.set(http::field::content_type, "application/json");
    request.set(http::field::accept, "application/json, text/event-stream");
    if (!o_.token.empty()) request.set(http::field::authorization, "Bearer " + o_.token);
    if (!session_.empty()) {
      request.set("Mcp-Session-Id", session_);
      request.set("MCP-Protocol-Version", "2025-11-25");
    }
    request.body() = body;
    request.prepare_payload();
    http::write(stream_, request);
    http::response<http::string_body> response;
    if (o_.busy_poll) {
      PollingReader reader{stream_.socket().native_handle()};
      http::read(reader, buffer_, response);
    } else {
      http::read(stream_, buffer_, response);
    }
    return response;
  }

  const Options& o_;
  Url url_;
  asio::io_context io_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::string session_;
};

int run_http(const Options& o) {
  const Url url = parse_url(o.url);
  const int connections = std::min(o.in_flight, o.calls);
  std::vector<std::unique_ptr<HttpSession>> sessions;
  for (int c = 0; c < connections; ++c) {
    sessions.push_back(std::make_unique<HttpSession>(o, url));
    if (!sessions.back()->open()) return 1;
    for (int i = 1; i <= o.warmup / connections + 1; ++i) {
      if (!sessions.back()->call(i)) return 1;
    }
  }
  // Each connection makes its share of the calls on its own thread.
  std::vector<std::vector<double>> per_connection(static_cast<size_t>(connections));
  std::atomic<bool> failed{false};
  auto work = [&](int c) {
    auto& micros = per_connection[static_cast<size_t>(c)];
    const int share = o.calls / connections + (c < o.calls % connections ? 1 : 0);
    micros.reserve(static_cast<size_t>(share));
    try {
      for (int i = 0; i < share && !failed.load(); ++i) {
        auto start = Clock::now();
        if (!sessions[static_cast<size_t>(c)]->call(o.warmup + 1 + i)) {
          failed = true;
          return;
        }
        micros.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
      }
    } catch (const std::exception& e) {
      // The server went away mid-run: say so (once) rather than terminate.
      if (!failed.exchange(true))
        std::cerr << "mcp_bench: connection " << c << ": " << e.what() << "\n";
    }
  };
  auto begin = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 1; c < connections; ++c) threads.emplace_back(work, c);
  work(0);
  for (auto& thread : threads) thread.join();
  double seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  if (failed) return 1;
  std::vector<double> micros;
  for (auto& part : per_connection) micros.insert(micros.end(), part.begin(), part.end());
  report(o.in_flight > 1 ? "http x" + std::to_string(connections) : "http", micros, seconds);
  return 0;
}

int run_bare_http(const Options& o) {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  std::ofstream(o.port_file) << acceptor.local_endpoint().port() << "\n";
  // A thread per connection, so --in-flight K finds K servers too.
  auto serve = [](asio::ip::tcp::socket socket) {
    socket.set_option(asio::ip::tcp::no_delay(true));
    beast::flat_buffer buffer;
    beast::error_code ec;
    for (;;) {
      http::request<http::string_body> request;
      http::read(socket, buffer, request, ec);
      if (ec) break;
      std::string reply = bare_reply(request.body());
      http::response<http::string_body> response{http::status::accepted, 11};
      if (!reply.empty()) {
        response.result(http::status::ok);
        response.set(http::field::content_type, "application/json");
        response.set("Mcp-Session-Id", "bare");
        response.body() = std::move(reply);
      }
      response.keep_alive(request.keep_alive());
      response.prepare_payload();
      http::write(socket, response, ec);
      if (ec) break;
    }
  };
  for (;;) std::thread(serve, acceptor.accept()).detach();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (argc < 2) {
    std::cerr << "usage: mcp_bench stdio|http|bare-stdio|bare-http [options] [-- COMMAND...]\n";
    return 2;
  }
  o.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--") {
      o.command.assign(argv + i + 1, argv + argc);
      break;
    }
    if (arg == "--calls") {
      o.calls = std::stoi(value());
    } else if (arg == "--in-flight") {
      o.in_flight = std::max(1, std::stoi(value()));
    } else if (arg == "--warmup") {
      o.warmup = std::stoi(value());
    } else if (arg == "--url") {
      o.url = value();
    } else if (arg == "--token") {
      o.token = value();
    } else if (arg == "--tool") {
      o.tool = value();
    } else if (arg == "--busy-poll") {
      o.busy_poll = true;
    } else if (arg == "--port-file") {
      o.port_file = value();
    } else {
      std::cerr << "mcp_bench: unknown argument " << arg << "\n";
      return 2;
    }
  }
  if (o.busy_poll && o.in_flight > 1) {
    std::cerr << "mcp_bench: --busy-poll is for sequential calls; it cannot go with --in-flight "
              << o.in_flight << " (K spinning clients would starve the server of cores)\n";
    return 2;
  }
  o.call_tail = call_tail(o.tool);
  signal(SIGPIPE, SIG_IGN);
  try {
    if (o.mode == "stdio") return run_stdio(o);
    if (o.mode == "http") return run_http(o);
    if (o.mode == "bare-stdio") return run_bare_stdio();
    if (o.mode == "bare-http") return run_bare_http(o);
  } catch (const std::exception& e) {
    std::cerr << "mcp_bench: " << e.what() << "\n";
    return 1;
  }
  std::cerr << "mcp_bench: unknown mode " << o.mode << "\n";
  return 2;
}
