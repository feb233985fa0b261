// egressd entry point: command line (SPEC "Command line"), start-up, and the
// main thread's control loop (reload on SIGHUP or on a config change, log
// reopen, drain). Workers never see the signals: they are blocked before any
// thread starts and taken here through a signalfd.

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "config/config.hpp"
#include "monitor/access_log.hpp"
#include "proxy/config_watch.hpp"
#include "proxy/admin_api.hpp"
#include "proxy/admin_client.hpp"
#include "proxy/server.hpp"
#include "state/grant_store.hpp"
#include "tools/commands.hpp"
#include "tools/grants_command.hpp"

namespace {

using namespace egressd;

void print_errors(const std::vector<config::diagnostic>& errors) {
  for (const auto& d : errors) fmt::print(stderr, "{}\n", d.str());
}

bool same_listeners(const config::snapshot& a, const config::snapshot& b) {
  if (a.listens.size() != b.listens.size() || a.threads != b.threads) return false;
  for (size_t i = 0; i < a.listens.size(); ++i) {
    if (a.listens[i].addr.to_string() != b.listens[i].addr.to_string() || a.listens[i].mode != b.listens[i].mode ||
        a.listens[i].upstream_port != b.listens[i].upstream_port)
      return false;
  }
  auto eps = [](const config::snapshot& s) {
    std::string out = s.admin ? s.admin->to_string() : "";
    for (const auto& d : s.dns_listens) out += " dns " + d.addr.to_string() + "=" + d.answer.to_string();
    for (const auto& f : s.forwards) out += " fwd " + f.listen.to_string() + ">" + f.target.to_string();
    return out;
  };
  return a.access_log == b.access_log && eps(a) == eps(b);
}

// `state` is opened once, at start: grants stay in memory across reloads,
// and a different state path (or kind) needs a restart.
bool same_state(const config::snapshot& a, const config::snapshot& b) {
  return a.state.kind == b.state.kind && a.state.path == b.state.path && a.state.host == b.state.host &&
         a.state.port == b.state.port && a.state.db == b.state.db && a.state.password_file == b.state.password_file;
}

// The main thread after start-up: signals (through a signalfd) and, under
// `reload auto`, the config watcher, multiplexed with poll(2). Owns the
// current snapshot; a reload, whatever triggered it, is reload() below.
class control {
 public:
  control(std::string path, std::shared_ptr<const config::snapshot> snap, proxy::server& srv)
      : path_(std::move(path)), current_(std::move(snap)), srv_(srv) {}

  // Returns the exit status once SIGTERM/SIGINT has drained the server.
  int run(const sigset_t& set, const config::load_result& first);

 private:
  static constexpr auto debounce = std::chrono::milliseconds(300);
  static constexpr auto debounce_max = std::chrono::milliseconds(1000);  // under a stream of events
  using clock = std::chrono::steady_clock;

  void reload(const char* why);
  bool on_signal(int sig);  // false: stop
  int poll_timeout() const;

  std::string path_;
  std::shared_ptr<const config::snapshot> current_;
  proxy::server& srv_;
  proxy::config_watch watch_;
  bool pending_ = false;  // watch events seen, check once they settle
  clock::time_point first_event_, check_at_;
};

void control::reload(const char* why) {
  auto next = config::load_file(path_);
  std::string token_error;
  if (next.snap && !srv_.reload_admin_token(*next.snap, &token_error)) next.snap.reset();
  if (!next.snap) {
    srv_.reload_failed();
    fmt::print(stderr, "egressd: reload of {} ({}) failed; the previous configuration keeps serving:\n", path_, why);
    print_errors(next.errors);
    if (!token_error.empty()) fmt::print(stderr, "{}\n", token_error);
    watch_.track(path_, next, current_->files);
  } else {
    if (!same_listeners(*current_, *next.snap))
      fmt::print(stderr,
                 "egressd: listen, admin, forward, dns_listen, threads and access_log changes take effect only "
                 "after a restart\n");
    if (!same_state(*current_, *next.snap))
      fmt::print(stderr, "egressd: a state change takes effect only after a restart; grants stay where they are\n");
    current_ = next.snap;
    srv_.publish(current_);
    fmt::print(stderr, "egressd: configuration reloaded from {} ({})\n", path_, why);
    watch_.track(path_, next, current_->files);
  }
  std::fflush(stderr);
}

bool control::on_signal(int sig) {
  if (sig == SIGHUP) {
    reload("SIGHUP");
  } else if (sig == SIGUSR1) {
    if (auto* l = srv_.access_log()) l->reopen();
  } else {
    fmt::print(stderr, "egressd: stopping (draining for at most {} ms)\n", current_->timeout.drain.count());
    std::fflush(stderr);
    srv_.stop(current_->timeout.drain);
    return false;
  }
  return true;
}

int control::poll_timeout() const {
  if (!pending_) return -1;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(check_at_ - clock::now()).count();
  return left < 0 ? 0 : int(left);
}

int control::run(const sigset_t& set, const config::load_result& first) {
  const int sfd = ::signalfd(-1, &set, SFD_CLOEXEC);
  if (sfd < 0) {
    fmt::print(stderr, "egressd: signalfd: {}\n", std::strerror(errno));
    return 1;
  }
  if (!watch_.ok())
    fmt::print(stderr, "egressd: cannot watch the configuration files (inotify: {}); reload with SIGHUP\n",
               std::strerror(errno));
  watch_.track(path_, first, current_->files);
  for (;;) {
    const bool watching = current_->reload_auto && watch_.ok();
    pollfd fds[2] = {{sfd, POLLIN, 0}, {watch_.fd(), POLLIN, 0}};
    const int n = ::poll(fds, watching ? 2 : 1, watching ? poll_timeout() : -1);
    if (n < 0 && errno != EINTR) {
      fmt::print(stderr, "egressd: poll: {}\n", std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (watching && n > 0 && (fds[1].revents & POLLIN) && watch_.drain()) {
      const auto now = clock::now();
      if (!pending_) first_event_ = now;
      pending_ = true;
      check_at_ = std::min(now + debounce, first_event_ + debounce_max);
    }
    if (pending_ && (!watching || clock::now() >= check_at_)) {
      pending_ = false;
      if (watching && watch_.changed()) reload("the files changed");
    }
    if (n > 0 && (fds[0].revents & POLLIN)) {
      signalfd_siginfo info;
      if (::read(sfd, &info, sizeof info) == ssize_t(sizeof info) && !on_signal(int(info.ssi_signo))) {
        ::close(sfd);
        return 0;
      }
    }
  }
}

int run(const std::string& path) {
  // Block the signals we handle before any thread exists (the access-log
  // writer, the workers, the admin endpoint): threads inherit the mask, so
  // only the signalfd below ever takes them.
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto loaded = config::load_file(path);
  if (!loaded.snap) {
    print_errors(loaded.errors);
    return 1;
  }
  std::string error;
  std::unique_ptr<monitor::access_log> log;
  if (loaded.snap->access_log != "off") {
    log = monitor::access_log::open(loaded.snap->access_log, &error);
    if (!log) {
      fmt::print(stderr, "egressd: {}\n", error);
      return 1;
    }
  }

  auto current = loaded.snap;
  // Grants of `state FILE` and the admin token: a corrupt or unreadable
  // file is a start-up error, never an empty set or an open API.
  auto grants = std::make_unique<state::grant_store>(
      current->state.kind == config::state_spec::kind_t::file ? current->state.path : std::string());
  if (!grants->load(state::clock::now(), &error)) {
    fmt::print(stderr, "{}\n", error);
    return 1;
  }
  std::string token;
  if (!current->admin_token_file.empty() && !proxy::read_admin_token(current->admin_token_file, &token, &error)) {
    fmt::print(stderr, "{}\n", error);
    return 1;
  }
  auto srv = proxy::server::start(current, std::move(log), &error, std::move(grants), std::move(token));
  if (!srv) {
    fmt::print(stderr, "egressd: {}\n", error);
    return 1;
  }
  for (const auto& l : current->listens)
    fmt::print(stderr, "egressd: listening on {} (mode {})\n", l.addr.to_string(), config::to_string(l.mode));
  for (const auto& f : current->forwards)
    fmt::print(stderr, "egressd: forwarding {} to {}\n", f.listen.to_string(), f.target.to_string());
  for (const auto& d : current->dns_listens)
    fmt::print(stderr, "egressd: DNS responder on {} (answer {})\n", d.addr.to_string(), d.answer.to_string());
  if (current->admin) fmt::print(stderr, "egressd: admin endpoint on {}\n", current->admin->to_string());
  std::fflush(stderr);

  control c(path, current, *srv);
  return c.run(set, loaded);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"egressd: an egress proxy that lets agents reach only allowlisted domains", "egressd"};
  std::string conf = "conf/egressd.conf";
  bool check = false;
  app.add_option("-c,--config", conf, "configuration file")->capture_default_str();
  app.add_flag("--check", check, "validate the configuration and its includes, print a summary, exit");
  app.set_version_flag("--version", std::string("egressd ") + EGRESSD_VERSION);
  std::vector<std::string> learn_logs;
  auto* learn = app.add_subcommand("learn", "print an allowlist built from access-log lines (JSON)");
  learn->add_option("LOG", learn_logs, "access-log files")->required();
  std::string squid_conf;
  auto* import = app.add_subcommand("import-squid", "print the egressd config equivalent of a squid.conf allowlist");
  import->add_option("FILE", squid_conf, "squid.conf")->required();
  auto* hash_token = app.add_subcommand("hash-token", "read a token on stdin, print sha256:HEX for an agent line");
  tools::grants_options gopt;
  std::string token_file;
  auto* grants = app.add_subcommand("grants", "list, add or revoke grants through the admin API (/v1/grants)");
  grants->add_option("--admin", gopt.admin, "admin endpoint ADDR:PORT")->capture_default_str();
  grants->add_option("--token-file", token_file, "file holding the admin token (default: $EGRESSD_ADMIN_TOKEN)");
  grants->add_flag("--json", gopt.json, "print the server's JSON as it came");
  grants->require_subcommand(1, 1);
  auto* glist = grants->add_subcommand("list", "print the grants in force")->fallthrough();
  auto* gadd = grants->add_subcommand("add", "grant PATTERN (as for allow) for a while")->fallthrough();
  gadd->add_option("PATTERN", gopt.pattern, "exact name, .suffix, *.wildcard or ~regex")->required();
  gadd->add_option("--ports", gopt.ports, "ports, e.g. 443,8443 (default 80,443)");
  auto* gagent = gadd->add_option("--agent", gopt.agent, "only for this agent");
  gadd->add_option("--group", gopt.group, "only for this group")->excludes(gagent);
  gadd->add_option("--ttl", gopt.ttl, "how long, e.g. 30m (default 1h, at most 720h)");
  gadd->add_option("--note", gopt.note, "why (shown in lists)");
  auto* grevoke = grants->add_subcommand("revoke", "end a grant now")->fallthrough();
  grevoke->add_option("ID", gopt.id, "the grant's id")->required();
  app.require_subcommand(0, 1);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    std::fputs(app.help("", CLI::AppFormatMode::All).c_str(), stdout);
    return 0;
  } catch (const CLI::CallForVersion&) {
    fmt::print("egressd {}\n", EGRESSD_VERSION);
    return 0;
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "egressd: {}\nRun 'egressd --help' for usage.\n", e.what());
    return 2;
  }

  if (learn->parsed()) return tools::learn_command(learn_logs);
  if (import->parsed()) return tools::import_squid_command(squid_conf);
  if (hash_token->parsed()) return tools::hash_token_command();
  if (grants->parsed()) {
    gopt.action = gadd->parsed()      ? tools::grants_options::action_t::add
                  : grevoke->parsed() ? tools::grants_options::action_t::revoke
                                      : tools::grants_options::action_t::list;
    (void)glist;
    std::string error;
    if (!token_file.empty()) {
      if (!proxy::read_admin_token(token_file, &gopt.token, &error)) {
        fmt::print(stderr, "egressd: {}\n", error);
        return 1;
      }
    } else if (const char* t = std::getenv("EGRESSD_ADMIN_TOKEN")) {
      gopt.token = t;
    }
    return tools::grants_command(gopt, [&](const std::string& m, const std::string& t, const std::string& b,
                                           const std::string& tok) {
      return proxy::admin_exchange(gopt.admin, m, t, b, tok);
    });
  }
  if (check) {
    auto loaded = config::load_file(conf);
    if (!loaded.snap) {
      print_errors(loaded.errors);
      return 1;
    }
    // A state file that would refuse to start fails the check too (a
    // missing one is fine: it is created on the first grant).
    if (loaded.snap->state.kind == config::state_spec::kind_t::file) {
      state::grant_store grants(loaded.snap->state.path);
      std::string error;
      if (!grants.load(state::clock::now(), &error)) {
        fmt::print(stderr, "{}\n", error);
        return 1;
      }
    }
    fmt::print("{}", config::summary(*loaded.snap));
    fmt::print("{}: OK\n", conf);
    return 0;
  }
  return run(conf);
}
