#include "api/api_token.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "lotus/strings.h"

namespace lotus::api {
namespace fs = std::filesystem;

namespace {

Result<std::string> random_token() {
  unsigned char bytes[32];
  int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(cat("cannot open /dev/urandom: ", std::strerror(errno)));
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::read(fd, bytes + got, sizeof bytes - got);
    if (n <= 0) {
      ::close(fd);
      return absl::InternalError("cannot read /dev/urandom");
    }
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string token;
  for (unsigned char b : bytes) {
    token += kHex[b >> 4];
    token += kHex[b & 15];
  }
  return token;
}

}  // namespace

Result<std::string> read_token(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    return absl::NotFoundError(cat("no API token at ", file.string()));
  }
  std::ifstream in(file);
  std::string token;
  if (!in || !std::getline(in, token)) {
    return absl::PermissionDeniedError(cat("cannot read the API token in ", file.string()));
  }
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  if (token.empty()) {
    return absl::FailedPreconditionError(
        cat("the API token file ", file.string(), " is empty; delete it to get a new token"));
  }
  return token;
}

Result<std::string> load_or_create_token(const fs::path& file) {
  std::error_code ec;
  if (fs::exists(file, ec)) {
    struct stat info {};
    if (::stat(file.c_str(), &info) == 0 && (info.st_mode & 077) != 0) {
      // Someone else could read it: narrow it rather than refuse to start.
      ::chmod(file.c_str(), 0600);
    }
    return read_token(file);
  }
  if (!file.parent_path().empty()) {
    fs::create_directories(file.parent_path(), ec);
    if (ec) {
      return absl::PermissionDeniedError(
          cat("cannot create ", file.parent_path().string(), " for the API token: ", ec.message()));
    }
  }
  auto token = random_token();
  if (!token.ok()) return token.status();
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return read_token(file);  // another daemon was first
    return absl::PermissionDeniedError(
        cat("cannot create the API token file ", file.string(), ": ", std::strerror(errno)));
  }
  std::string line = *token + "\n";
  bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ::fsync(fd);
  ::close(fd);
  if (!written) return absl::InternalError(cat("cannot write the API token to ", file.string()));
  return token;
}

}  // namespace lotus::api
