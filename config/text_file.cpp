#include "config/text_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace egressd::config {

bool read_text_file(const std::string& path, std::string* out, std::string* err, size_t max_bytes,
                    int* error_number) {
  auto fail = [&](int e, std::string why, int fd) {
    if (fd >= 0) ::close(fd);
    *err = std::move(why);
    if (error_number) *error_number = e;
    return false;
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(errno, std::strerror(errno), -1);
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) return fail(EISDIR, "is a directory", fd);
  out->clear();
  if (st.st_size > 0) out->reserve(std::min(size_t(st.st_size), max_bytes));
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      return fail(e, std::strerror(e), fd);
    }
    if (n == 0) break;
    out->append(buf, size_t(n));
    if (out->size() > max_bytes) return fail(EFBIG, "is larger than " + std::to_string(max_bytes) + " bytes", fd);
  }
  ::close(fd);
  return true;
}

}  // namespace egressd::config
