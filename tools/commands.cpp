#include "tools/commands.hpp"

#include <openssl/crypto.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "acl/agents.hpp"
#include "tools/allowlist_learner.hpp"
#include "tools/squid_importer.hpp"

namespace egressd::tools {

namespace {

// Feeds every line of `f` to the learner. False with *why on a read error.
bool read_lines(std::FILE* f, allowlist_learner& learner, std::string* why) {
  char* buf = nullptr;
  size_t cap = 0;
  errno = 0;
  ssize_t n;
  while ((n = ::getline(&buf, &cap, f)) >= 0) {
    std::string_view line(buf, size_t(n));
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    learner.add_line(line);
  }
  bool ok = !std::ferror(f);
  if (!ok) *why = std::strerror(errno ? errno : EIO);
  std::free(buf);
  return ok;
}

}  // namespace

int learn_command(const std::vector<std::string>& logs, std::FILE* out, std::FILE* err) {
  allowlist_learner learner;
  for (const auto& path : logs) {
    std::string why;
    if (path == "-") {
      learner.add_file_name("-");
      if (!read_lines(stdin, learner, &why)) {
        std::fprintf(err, "egressd: cannot read standard input: %s\n", why.c_str());
        return 1;
      }
      continue;
    }
    std::FILE* f = std::fopen(path.c_str(), "re");
    struct stat st {};
    if (f && ::fstat(::fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
      std::fclose(f);
      f = nullptr;
      errno = EISDIR;
    }
    if (!f) {
      std::fprintf(err, "egressd: cannot read %s: %s\n", path.c_str(), std::strerror(errno));
      return 1;
    }
    learner.add_file_name(path);
    bool ok = read_lines(f, learner, &why);
    std::fclose(f);
    if (!ok) {
      std::fprintf(err, "egressd: cannot read %s: %s\n", path.c_str(), why.c_str());
      return 1;
    }
  }
  std::string text = learner.result().dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  text += '\n';
  std::fputs(text.c_str(), out);
  return 0;
}

int import_squid_command(const std::string& path, std::FILE* out, std::FILE* err) {
  import_result r = import_squid_file(path);
  if (!r.errors.empty()) {
    for (const auto& e : r.errors) std::fprintf(err, "%s\n", e.str().c_str());
    return 1;
  }
  std::fputs(r.text.c_str(), out);
  std::fflush(out);
  for (const auto& w : r.warnings) std::fprintf(err, "%s\n", w.str().c_str());
  if (r.allow_lines == 0) {
    std::fprintf(err,
                 "egressd: %s: the translation allows nothing (no http_access allow rule could be translated); "
                 "the configuration above would deny every request\n",
                 path.c_str());
    return 1;
  }
  return 0;
}

int hash_token_command(std::FILE* in, std::FILE* out, std::FILE* err) {
  std::string token;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, in)) > 0) {
    token.append(buf, n);
    if (token.size() > (1u << 20)) {
      std::fprintf(err, "egressd: the token on standard input is longer than 1 MiB\n");
      return 2;
    }
  }
  if (std::ferror(in)) {
    std::fprintf(err, "egressd: cannot read standard input: %s\n", std::strerror(errno));
    return 1;
  }
  if (!token.empty() && token.back() == '\n') {
    token.pop_back();
    if (!token.empty() && token.back() == '\r') token.pop_back();
  }
  int rc = 0;
  acl::token_digest d{};
  if (token.empty()) {
    std::fprintf(err, "egressd: no token on standard input (usage: egressd hash-token < token-file)\n");
    rc = 2;
  } else if (token.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
    std::fprintf(err, "egressd: the token must be one line (found a line break or NUL inside it)\n");
    rc = 2;
  } else if (!acl::sha256(token, &d)) {
    std::fprintf(err, "egressd: SHA-256 is not available from OpenSSL\n");
    rc = 1;
  } else {
    std::fprintf(out, "%s\n", acl::format_token_hash(d).c_str());
  }
  OPENSSL_cleanse(token.data(), token.size());
  return rc;
}

}  // namespace egressd::tools
