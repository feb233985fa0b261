#include "monitor/access_log.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

namespace egressd::monitor {
namespace {

constexpr char hex_digits[] = "0123456789abcdef";

// Length of the valid UTF-8 sequence starting at s[i] (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF), or 0 if it is not valid.
size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const auto cont = [&](size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
    return i + k < s.size() && byte(k) >= lo && byte(k) <= hi;
  };
  const unsigned c = byte(0);
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (c == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

template <typename Int>
void append_int(std::string& out, Int v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;  // 24 bytes hold any 64-bit integer
  out.append(buf, end);
}

void append_digits(std::string& out, unsigned v, int width) {
  char buf[8];
  for (int i = width - 1; i >= 0; --i) {
    buf[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  out.append(buf, static_cast<size_t>(width));
}

void append_key(std::string& out, const char* key) {
  out += '"';
  out += key;
  out += "\":";
}

void append_field(std::string& out, const char* key, std::string_view value) {
  append_key(out, key);
  append_json_string(out, value);
  out += ',';
}

void append_record(std::string& out, const access_record& r) {
  out += '{';
  append_key(out, "ts");
  out += '"';
  append_rfc3339_ms(out, r.ts);
  out += "\",";
  append_field(out, "client", r.client);
  append_field(out, "group", r.group);
  append_field(out, "agent", r.agent);
  append_field(out, "kind", to_string(r.kind));
  append_field(out, "method", r.method);
  append_field(out, "host", r.host);
  append_key(out, "port");
  append_int(out, r.port);
  out += ',';
  append_field(out, "sni", r.sni);
  if (r.ech) out += "\"ech\":true,";
  append_field(out, "path", r.path);
  append_field(out, "decision", to_string(r.decision));
  append_field(out, "reason", r.reason == acl::reason::none ? "" : acl::to_string(r.reason));
  append_field(out, "rule", r.rule);
  append_key(out, "status");
  append_int(out, r.status);
  out += ',';
  append_key(out, "bytes_up");
  append_int(out, r.bytes_up);
  out += ',';
  append_key(out, "bytes_down");
  append_int(out, r.bytes_down);
  out += ',';
  append_key(out, "duration_ms");
  append_int(out, r.duration_ms);
  out += ',';
  append_key(out, "upstream");
  append_json_string(out, r.upstream);
  out += '}';
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  out.reserve(out.size() + s.size() + 2);
  out += '"';
  size_t run = 0;  // start of the pending run of bytes copied verbatim
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      if (size_t n = utf8_sequence_length(s, i)) {
        i += n;
        continue;
      }
    }
    out.append(s.data() + run, i - run);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex_digits[c >> 4];
          out += hex_digits[c & 0xF];
        } else {
          out += "\\ufffd";  // a byte that is not valid UTF-8
        }
    }
    ++i;
    run = i;
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

void append_rfc3339_ms(std::string& out, std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto ms = time_point_cast<milliseconds>(t);
  const auto day = floor<days>(ms);
  const year_month_day ymd{day};
  const hh_mm_ss hms{ms - day};
  append_digits(out, static_cast<unsigned>(static_cast<int>(ymd.year())), 4);
  out += '-';
  append_digits(out, static_cast<unsigned>(ymd.month()), 2);
  out += '-';
  append_digits(out, static_cast<unsigned>(ymd.day()), 2);
  out += 'T';
  append_digits(out, static_cast<unsigned>(hms.hours().count()), 2);
  out += ':';
  append_digits(out, static_cast<unsigned>(hms.minutes().count()), 2);
  out += ':';
  append_digits(out, static_cast<unsigned>(hms.seconds().count()), 2);
  out += '.';
  append_digits(out, static_cast<unsigned>(hms.subseconds().count()), 3);
  out += 'Z';
}

std::string to_json(const access_record& r) {
  std::string out;
  out.reserve(256 + r.host.size() + r.path.size());
  append_record(out, r);
  return out;
}

struct access_log::impl {
  using entry = std::variant<access_record, std::string>;

  std::string path;  // empty for stdout/stderr
  int fd = -1;       // owned when !path.empty()
  bool enabled = false;
  size_t max_queued = default_max_queued;

  std::mutex mu;
  std::condition_variable wake_cv;  // writer waits for work
  std::condition_variable done_cv;  // flush() waits for the writer
  std::vector<entry> queue;         // guarded by mu
  uint64_t enqueued = 0;            // guarded by mu: entries accepted
  uint64_t written = 0;             // guarded by mu: entries processed
  uint64_t reopen_requested = 0;    // guarded by mu
  uint64_t reopen_done = 0;         // guarded by mu
  bool stopping = false;            // guarded by mu
  std::atomic<uint64_t> dropped{0};
  std::thread writer;

  // Workers never pay a futex per record: the writer sleeps deeply only on
  // an empty queue (then the first record wakes it), and otherwise lingers a
  // little to gather a batch, woken early only by a filling queue, a reopen,
  // a flush or the stop.
  static constexpr std::chrono::milliseconds linger{20};
  bool deep_sleep = false;     // guarded by mu
  unsigned flush_waiters = 0;  // guarded by mu

  template <typename T>
  void push(T&& e) {
    std::unique_lock lk(mu);
    if (queue.size() >= max_queued) {
      lk.unlock();
      dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    queue.emplace_back(std::forward<T>(e));
    ++enqueued;
    const bool wake = deep_sleep || queue.size() == max_queued / 2;
    deep_sleep = deep_sleep && !wake;
    lk.unlock();
    if (wake) wake_cv.notify_one();
  }

  bool urgent() const {
    return stopping || flush_waiters > 0 || reopen_done != reopen_requested || queue.size() >= max_queued / 2;
  }

  void run() {
    std::vector<entry> batch;
    std::string buf;
    for (;;) {
      uint64_t reopen_target;
      {
        std::unique_lock lk(mu);
        if (!urgent()) {
          if (queue.empty()) {
            deep_sleep = true;
            wake_cv.wait(lk, [&] { return urgent() || !queue.empty(); });
            deep_sleep = false;
          }
          if (!urgent()) wake_cv.wait_for(lk, linger, [&] { return urgent(); });
        }
        if (queue.empty() && reopen_done == reopen_requested) {
          if (stopping) break;
          done_cv.notify_all();  // a flush with nothing queued
          continue;
        }
        batch.swap(queue);
        reopen_target = reopen_requested;
      }
      // reopen_done is written only by this thread: reading it unlocked is safe.
      if (reopen_target != reopen_done) reopen_file();
      write_batch(batch, buf);
      const uint64_t n = batch.size();
      batch.clear();  // keeps capacity; swapped back as the next queue
      {
        std::lock_guard lk(mu);
        written += n;
        reopen_done = reopen_target;
      }
      done_cv.notify_all();
    }
  }

  void reopen_file() {
    if (path.empty()) return;  // stdout/stderr
    int nfd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (nfd < 0) {
      std::fprintf(stderr, "egressd: cannot reopen access log %s: %s (still writing to the old file)\n",
                   path.c_str(), std::strerror(errno));
      return;
    }
    ::close(fd);
    fd = nfd;
  }

  void write_batch(std::vector<entry>& batch, std::string& buf) {
    constexpr size_t chunk = 1 << 20;
    size_t lines = 0;
    buf.clear();
    for (auto& e : batch) {
      if (auto* r = std::get_if<access_record>(&e)) {
        append_record(buf, *r);
      } else {
        buf += std::get<std::string>(e);
      }
      buf += '\n';
      ++lines;
      if (buf.size() >= chunk) {
        write_all(buf, lines);
        buf.clear();
        lines = 0;
      }
    }
    if (!buf.empty()) write_all(buf, lines);
    if (buf.capacity() > 4 * chunk) std::string().swap(buf);
  }

  void write_all(const std::string& data, size_t lines) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::write(fd, data.data() + off, data.size() - off);
      if (n >= 0) {
        off += static_cast<size_t>(n);
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {  // non-blocking stdout pipe
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, 100);
        continue;
      }
      // Count the lines of this chunk as lost; report once per failing chunk.
      std::fprintf(stderr, "egressd: access log write failed: %s\n", std::strerror(errno));
      dropped.fetch_add(lines, std::memory_order_relaxed);
      return;
    }
  }
};

access_log::access_log() : impl_(std::make_unique<impl>()) {}

std::unique_ptr<access_log> access_log::open(const std::string& target, std::string* error,
                                             size_t max_queued) {
  std::unique_ptr<access_log> log(new access_log());
  impl& s = *log->impl_;
  s.max_queued = max_queued == 0 ? 1 : max_queued;
  if (target == "off") return log;
  if (target == "stdout") {
    s.fd = STDOUT_FILENO;
  } else if (target == "stderr") {
    s.fd = STDERR_FILENO;
  } else {
    s.fd = ::open(target.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (s.fd < 0) {
      if (error) *error = "cannot open " + target + ": " + std::strerror(errno);
      return nullptr;
    }
    s.path = target;
  }
  s.enabled = true;
  s.writer = std::thread([&s] { s.run(); });
  return log;
}

access_log::~access_log() {
  if (!impl_->enabled) return;
  {
    std::lock_guard lk(impl_->mu);
    impl_->stopping = true;
  }
  impl_->wake_cv.notify_one();
  impl_->writer.join();
  if (!impl_->path.empty()) ::close(impl_->fd);
}

bool access_log::enabled() const { return impl_->enabled; }

void access_log::write(access_record&& r) {
  if (impl_->enabled) impl_->push(std::move(r));
}

void access_log::write_line(std::string&& json_line) {
  if (impl_->enabled) impl_->push(std::move(json_line));
}

void access_log::reopen() {
  if (!impl_->enabled) return;
  {
    std::lock_guard lk(impl_->mu);
    ++impl_->reopen_requested;
  }
  impl_->wake_cv.notify_one();
}

void access_log::flush() {
  if (!impl_->enabled) return;
  std::unique_lock lk(impl_->mu);
  const uint64_t target = impl_->enqueued;
  const uint64_t reopen_target = impl_->reopen_requested;
  ++impl_->flush_waiters;
  impl_->wake_cv.notify_one();
  impl_->done_cv.wait(lk, [&] {
    return impl_->written >= target && impl_->reopen_done >= reopen_target;
  });
  --impl_->flush_waiters;
}

uint64_t access_log::dropped() const { return impl_->dropped.load(std::memory_order_relaxed); }

}  // namespace egressd::monitor
