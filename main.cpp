// latch: read config, open the store, build the service, serve. No auth logic lives here.
#include "auth/admin.h"
#include "auth/config.h"
#include "auth/http/dispatch.h"
#include "auth/http/listener.h"
#include "auth/http/routes.h"
#include "auth/identity.h"
#include "auth/mail.h"
#include "auth/password.h"
#include "auth/secure.h"
#include "auth/service.h"
#include "auth/tokens.h"
#include "db/postgres_store.h"
#include "db/session_cache.h"
#include "db/sqlite_store.h"

#include <algorithm>
#include <csignal>
#include <iostream>
#include <malloc.h>
#include <memory>
#include <pthread.h>
#include <thread>

using namespace latch;

namespace {

// The start-up line names PRAGMA synchronous as the store's connection reports it, not the flag.
std::string sync_name(int synchronous) {
  if (synchronous == 1) return "normal";
  if (synchronous == 2) return "full";
  return std::to_string(synchronous);
}

int serve(const std::vector<std::string> &args) {
  if (std::find_if(args.begin(), args.end(),
                   [](const std::string &a) { return a == "--help" || a == "-h"; }) != args.end()) {
    std::cout << config_help();
    return 0;
  }
  auto loaded = load_config(args, process_env());
  if (auto *err = std::get_if<std::string>(&loaded)) {
    std::cerr << "latch: " << *err << "\n";
    return 2;
  }
  Config config = std::get<Config>(std::move(loaded));
  // Bad TLS files are bad settings: said once, before the database is created or opened.
  if (auto err = check_tls_files(config)) {
    std::cerr << "latch: " << *err << "\n";
    return 2;
  }
  Mailer::Transport transport;
  try {
    transport = config.smtp_url.empty()
                    ? Mailer::log()
                    : Mailer::smtp({config.smtp_url, config.smtp_user, config.smtp_password,
                                    config.mail_from, config.mail_timeout});
  } catch (const std::exception &e) {
    std::cerr << "latch: " << e.what() << "\n";
    return 2; // SMTP is configured but cannot work: as a bad setting, before anything starts
  }

  // SIGINT/SIGTERM (stop) and SIGHUP (reload) are taken by one thread (below); block them
  // before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  // One malloc arena per core, not glibc's eight per core: after a burst on hundreds of
  // connection threads every arena keeps some of what it freed, and none made requests faster.
  mallopt(M_ARENA_MAX, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));

  // A postgres:// or postgresql:// URI is PostgreSQL; anything else is an SQLite file.
  const bool postgres = db::PostgresStore::is_uri(config.db_path);
  std::unique_ptr<db::Store> store;
  // Without LATCH_JWT_SECRET, the key ring kept in the database (its first key made at first
  // start, so tokens survive restarts with no set-up), reloaded when latch secret rotate
  // changes it.
  std::unique_ptr<TokenCodec> codec;
  // Sessions and the blacklist in memory, so checking a token touches no database; it follows
  // the database's change feed for what other processes change (keys included).
  std::unique_ptr<db::SessionCache> cache;
  std::string db_line; // the start-up line's database: no password, or the sync mode
  try {
    if (postgres) {
      db::PostgresStore::Options options;
      options.pool_size = config.db_pool;
      options.statement_timeout = std::chrono::milliseconds(config.db_statement_timeout_ms);
      store = std::make_unique<db::PostgresStore>(config.db_path, options, username_rule());
      db_line = db::PostgresStore::redacted(config.db_path);
    } else {
      auto sqlite = std::make_unique<db::SqliteStore>(
          config.db_path, db::SqliteStore::Open::create, username_rule(),
          config.sqlite_sync == Config::SqliteSync::full ? db::SqliteStore::Sync::full
                                                         : db::SqliteStore::Sync::normal);
      report_username_conflicts(*sqlite, std::cerr); // at every start, until renamed
      db_line = config.db_path + ", sync " + sync_name(sqlite->synchronous());
      store = std::move(sqlite);
    }
    codec = make_token_codec(config, *store, system_clock()());
    // What expired longer than --purge-margin ago only waits for the purge: not loaded.
    cache = std::make_unique<db::SessionCache>(
        *store, *store, [&config] { return system_clock()() - config.purge_margin; });
  } catch (const std::exception &e) {
    std::cerr << "latch: " << e.what() << "\n";
    return 1;
  }
  SigningKeyWatcher key_watcher(config, *store, *codec);
  cache->follow([&key_watcher] { key_watcher.reload(); });
  // After the open, so the -wal and -shm SQLite made (with the file's mode) are looked at too.
  for (const auto &line :
       postgres ? std::vector<std::string>{} : database_permission_warnings(config.db_path))
    std::cerr << "latch: warning: " << line << "\n";

  PasswordHasher hasher(config.argon2, config.hash_concurrency, config.hash_queue);
  // Mail waits in the database's outbox until this sender (or another server's) delivers it.
  const MailPolicy policy{config.mail_timeout, config.mail_retry, config.mail_retry_max,
                          config.mail_give_up};
  Mailer mailer(*store, std::move(transport), policy, system_clock());
  mailer.start();
  if (config.smtp_url.empty())
    std::cerr << "latch: LATCH_SMTP_URL unset: mail is written to this log, reset and "
                 "confirmation links included; they are secrets, so set it outside development\n";
  AuthService service(config, *store, hasher, *codec, mailer, system_clock(), cache.get(),
                      steady_clock());
  http::Dispatcher dispatcher(config, service);
  std::unique_ptr<http::Listener> listener;
  std::string error;
  try {
    listener = std::make_unique<http::Listener>(config, dispatcher);
  } catch (const std::exception &e) {
    std::cerr << "latch: " << e.what() << "\n";
    return 2;
  }
  if (!listener->bind(&error)) {
    std::cerr << "latch: " << error << "\n";
    return 1;
  }
  // With port 0 the system picked one: mailed links must name it. No request is served yet.
  config.port = listener->port();
  for (const auto &line : config_warnings(config))
    std::cerr << "latch: warning: " << line << "\n";

  std::mutex stop_mutex;
  std::condition_variable stop_cv;
  bool stopping = false;
  // The database's upkeep a few times a second (store->maintain()), and the purge every
  // --purge-interval.
  std::thread maintainer([&] {
    std::unique_lock lock(stop_mutex);
    auto next_purge =
        std::chrono::steady_clock::now() + std::chrono::seconds(config.purge_interval);
    std::chrono::steady_clock::time_point last_said{};
    std::string said;
    while (!stop_cv.wait_for(lock, std::chrono::milliseconds(250), [&] { return stopping; })) {
      lock.unlock();
      try {
        store->maintain();
        said.clear();
      } catch (const std::exception &e) {
        // Loud, and again every minute while it lasts.
        const auto now = std::chrono::steady_clock::now();
        if (e.what() != said || now - last_said >= std::chrono::minutes(1)) {
          std::cerr << "latch: ERROR: " << e.what() << "\n";
          said = e.what();
          last_said = now;
        }
      }
      if (std::chrono::steady_clock::now() >= next_purge) {
        try {
          service.purge_expired();
        } catch (const std::exception &e) {
          std::cerr << "latch: purge failed: " << e.what() << "\n";
        }
        next_purge = std::chrono::steady_clock::now() + std::chrono::seconds(config.purge_interval);
      }
      lock.lock();
    }
  });
  std::thread signal_waiter([&] {
    for (;;) {
      int sig = 0;
      if (sigwait(&signals, &sig) != 0) continue;
      if (sig != SIGHUP) {
        listener->stop();
        // Shutdown never waits for mail: an exchange in progress is abandoned, and what is
        // not sent yet stays in the outbox for the next start.
        mailer.stop();
        return;
      }
      // SIGHUP: what can be loaded again without a restart (a renewed certificate, keys
      // changed by hand), with no request dropped.
      std::string why;
      if (listener->reload_tls(&why))
        std::cerr << "latch: SIGHUP: " << (config.tls_cert.empty() ? "" : "TLS certificate and ")
                  << "signing keys reloaded\n";
      else
        std::cerr << "latch: SIGHUP: keeping the TLS certificate in use: " << why << "\n";
      key_watcher.reload();
    }
  });

  std::string apis;
  for (Api a : config.apis)
    apis += std::string(apis.empty() ? "" : ",") + api_name(a);
  if (listener->metrics_port() != 0)
    std::cout << "latch: metrics on http://" << config.metrics_host << ":"
              << listener->metrics_port() << "/metrics" << std::endl;
  std::cout << "latch: listening on " << (config.tls_cert.empty() ? "http" : "https") << "://"
            << config.host << ":" << listener->port() << " (apis: " << apis << ", db: " << db_line
            << ")" << std::endl;
  bool ok = listener->run();

  {
    std::lock_guard lock(stop_mutex);
    stopping = true;
  }
  stop_cv.notify_all();
  maintainer.join();
  // Wake the signal thread if the server stopped for another reason.
  pthread_kill(signal_waiter.native_handle(), SIGTERM);
  signal_waiter.join();
  std::cout << "latch: stopped" << std::endl;
  return ok ? 0 : 1;
}

} // namespace

int main(int argc, char **argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string command = args.empty() ? "help" : args[0];
  if (command.rfind("--", 0) == 0 && command != "--help" && command != "--version")
    return serve(args); // flags alone mean serve
  if (is_admin_command(command)) return run_admin(args, std::cout, std::cerr);
  args.erase(args.begin(), args.begin() + (args.empty() ? 0 : 1));
  if (command == "serve") return serve(args);
  if (command == "routes") {
    std::cout << http::format_route_table();
    return 0;
  }
  if (command == "version" || command == "--version") {
    std::cout << "latch " LATCH_VERSION "\n";
    return 0;
  }
  if (command == "help" || command == "--help" || command == "-h") {
    std::cout << config_help() << admin_help();
    return 0;
  }
  std::cerr << "latch: unknown command '" << command << "'\n\n" << config_help();
  return 2;
}
