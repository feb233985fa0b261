#include "state/redis_link.hpp"

#include <hiredis/hiredis.h>

#include <sys/time.h>

namespace egressd::state {

redis_link::~redis_link() { close(); }

void redis_link::close() {
  if (ctx_) redisFree(ctx_);
  ctx_ = nullptr;
}

bool redis_link::connect(const std::string& host, uint16_t port, unsigned db, const std::string& password,
                         int timeout_ms, std::string* error) {
  close();
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  redisContext* c = redisConnectWithTimeout(host.c_str(), port, tv);
  if (!c || c->err) {
    *error = c ? c->errstr : "out of memory";
    if (c) redisFree(c);
    return false;
  }
  redisSetTimeout(c, tv);
  ctx_ = c;
  if (!password.empty()) {
    reply r = command({"AUTH", password});
    if (!r.ok) {
      *error = "AUTH failed: " + r.error;
      close();
      return false;
    }
  }
  if (db != 0) {
    reply r = command({"SELECT", std::to_string(db)});
    if (!r.ok) {
      *error = "SELECT " + std::to_string(db) + " failed: " + r.error;
      close();
      return false;
    }
  }
  return true;
}

redis_link::reply redis_link::command(const std::vector<std::string>& argv) {
  reply out;
  if (!ctx_) {
    out.error = "not connected";
    return out;
  }
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(redisCommandArgv(ctx_, int(args.size()), args.data(), lens.data()));
  if (!r) {
    out.error = ctx_->errstr[0] ? ctx_->errstr : "connection lost";
    close();
    return out;
  }
  return convert(r);
}

redis_link::reply redis_link::convert(redisReply* r) {
  reply out;
  switch (r->type) {
    case REDIS_REPLY_ERROR: out.error.assign(r->str, r->len); break;
    case REDIS_REPLY_INTEGER: out.ok = true; out.integer = r->integer; break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS: out.ok = true; out.items.emplace_back(r->str, r->len); break;
    case REDIS_REPLY_ARRAY:
      out.ok = true;
      for (size_t i = 0; i < r->elements; ++i) {
        const redisReply* e = r->element[i];
        if (e->type == REDIS_REPLY_INTEGER)
          out.items.push_back(std::to_string(e->integer));
        else if (e->str)
          out.items.emplace_back(e->str, e->len);
        else
          out.items.emplace_back();
      }
      break;
    default: out.ok = true; break;  // nil
  }
  freeReplyObject(r);
  return out;
}

std::vector<redis_link::reply> redis_link::eval_many(std::string* sha, const std::string& script,
                                                     const std::vector<call>& calls) {
  std::vector<reply> out(calls.size());
  if (!ctx_ || calls.empty()) return out;
  for (const auto& c : calls) {
    std::vector<std::string> argv{"EVALSHA", *sha, std::to_string(c.keys.size())};
    argv.insert(argv.end(), c.keys.begin(), c.keys.end());
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    std::vector<const char*> args;
    std::vector<size_t> lens;
    for (const auto& a : argv) {
      args.push_back(a.data());
      lens.push_back(a.size());
    }
    redisAppendCommandArgv(ctx_, int(args.size()), args.data(), lens.data());
  }
  bool noscript = false;
  for (auto& o : out) {
    void* r = nullptr;
    if (redisGetReply(ctx_, &r) != REDIS_OK || !r) {
      close();
      return out;
    }
    o = convert(static_cast<redisReply*>(r));
    noscript |= !o.ok && o.error.rfind("NOSCRIPT", 0) == 0;
  }
  if (noscript) *sha = load(script);
  return out;
}

std::string redis_link::load(const std::string& script) {
  reply r = command({"SCRIPT", "LOAD", script});
  return r.ok && !r.items.empty() ? r.items[0] : std::string();
}

redis_link::reply redis_link::eval(const std::string& sha, const std::string& script,
                                   const std::vector<std::string>& keys, const std::vector<std::string>& args) {
  std::vector<std::string> argv{"EVALSHA", sha, std::to_string(keys.size())};
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  reply r = command(argv);
  if (!r.ok && r.error.rfind("NOSCRIPT", 0) == 0) {  // Redis restarted or SCRIPT FLUSH
    argv[0] = "EVAL";
    argv[1] = script;
    r = command(argv);
  }
  return r;
}

redis_link::reply redis_link::eval_text(const std::string& script, const std::vector<std::string>& keys,
                                        const std::vector<std::string>& args) {
  std::vector<std::string> argv{"EVAL", script, std::to_string(keys.size())};
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  return command(argv);
}

}  // namespace egressd::state
