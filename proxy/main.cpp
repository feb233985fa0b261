// egressd entry point: command line (SPEC "Command line"), start-up, and the
// main thread's signal loop (reload, log reopen, drain). Workers never see
// the signals: they are blocked before any thread starts and taken here with
// sigwaitinfo.

#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "config/config.hpp"
#include "monitor/access_log.hpp"
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
         a.state.port == b.state.port && a.state.db == b.state.db;
}

int run(const std::string& path) {
  // Block the signals we handle before any thread exists (the access-log
  // writer, the workers, the admin endpoint): threads inherit the mask, so
  // only sigwaitinfo below ever takes them.
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

  for (;;) {
    siginfo_t info;
    int sig = sigwaitinfo(&set, &info);
    if (sig < 0) continue;
    if (sig == SIGHUP) {
      auto next = config::load_file(path);
      std::string token_error;
      if (next.snap && !srv->reload_admin_token(*next.snap, &token_error)) next.snap.reset();
      if (!next.snap) {
        srv->reload_failed();
        fmt::print(stderr, "egressd: reload of {} failed; the previous configuration keeps serving:\n", path);
        print_errors(next.errors);
        if (!token_error.empty()) fmt::print(stderr, "{}\n", token_error);
      } else {
        if (!same_listeners(*current, *next.snap))
          fmt::print(stderr,
                     "egressd: listen, admin, forward, dns_listen, threads and access_log changes take effect only "
                     "after a restart\n");
        if (!same_state(*current, *next.snap))
          fmt::print(stderr, "egressd: a state change takes effect only after a restart; grants stay where they are\n");
        current = next.snap;
        srv->publish(current);
        fmt::print(stderr, "egressd: configuration reloaded from {}\n", path);
      }
      std::fflush(stderr);
    } else if (sig == SIGUSR1) {
      if (auto* l = srv->access_log()) l->reopen();
    } else {
      fmt::print(stderr, "egressd: stopping (draining for at most {} ms)\n", current->timeout.drain.count());
      std::fflush(stderr);
      srv->stop(current->timeout.drain);
      return 0;
    }
  }
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
