#pragma once
// One synchronous hiredis connection with timeouts, used only by the state
// thread (state/redis_state): connect + AUTH + SELECT, load the Lua scripts,
// EVALSHA (reloading a script Redis forgot). Never used by a worker. Any I/O
// error closes the link; the owner reconnects with back-off.

#include <cstdint>
#include <string>
#include <vector>

struct redisContext;
struct redisReply;

namespace egressd::state {

class redis_link {
 public:
  struct reply {
    bool ok = false;                 // false: I/O error (link closed) or Redis error
    long long integer = 0;           // integer reply
    std::vector<std::string> items;  // array of bulk strings / integers as text
    std::string error;
  };

  redis_link() = default;
  ~redis_link();
  redis_link(const redis_link&) = delete;
  redis_link& operator=(const redis_link&) = delete;

  // false with a sentence in *error.
  bool connect(const std::string& host, uint16_t port, unsigned db, const std::string& password,
               int timeout_ms, std::string* error);
  bool connected() const { return ctx_ != nullptr; }
  void close();
  // SCRIPT LOAD; the SHA1 to pass to eval(). Empty on failure.
  std::string load(const std::string& script);
  reply eval(const std::string& sha, const std::string& script, const std::vector<std::string>& keys,
             const std::vector<std::string>& args);
  // The same script for many (keys, args), pipelined: one round trip. A
  // reply per call (a NOSCRIPT reloads the script for the next time).
  struct call {
    std::vector<std::string> keys, args;
  };
  std::vector<reply> eval_many(std::string* sha, const std::string& script, const std::vector<call>& calls);
  // EVAL with the script's text (no SHA to keep): the grant writes of the
  // control connection, a few per minute.
  reply eval_text(const std::string& script, const std::vector<std::string>& keys,
                  const std::vector<std::string>& args);

 private:
  reply command(const std::vector<std::string>& argv);
  static reply convert(redisReply* r);
  redisContext* ctx_ = nullptr;
};

}  // namespace egressd::state
