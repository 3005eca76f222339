// Faults and scale (issue 17): another process holding the write lock, a database seeded with
// hundreds of thousands of sessions, a purge of as many expired ones, a stepped wall clock
// (libfaketime), signals, a write that fails half-way, a database file deleted under the
// server and the file-descriptor limit. Each test is built the way the fault is met.
#include "support/latch_process.h"
#include "support/raw_client.h"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <regex>
#include <thread>
#include <vector>

using namespace latch::test;
using namespace std::chrono_literals;

namespace {

// One statement (or several) on the database from this process: another writer, as a backup
// tool or an admin command would be.
void exec(const std::string &db_path, const std::string &sql) {
  sqlite3 *db = nullptr;
  REQUIRE(sqlite3_open(db_path.c_str(), &db) == SQLITE_OK);
  sqlite3_busy_timeout(db, 10000);
  char *error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  INFO(sql.substr(0, 200) << ": " << (error ? error : ""));
  sqlite3_free(error);
  sqlite3_close(db);
  REQUIRE(rc == SQLITE_OK);
}

long long count(const std::string &db_path, const std::string &sql) {
  sqlite3 *db = nullptr;
  REQUIRE(sqlite3_open(db_path.c_str(), &db) == SQLITE_OK);
  sqlite3_busy_timeout(db, 10000);
  sqlite3_stmt *st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  const long long n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

// A write lock held by another connection until release() or destruction.
class WriteLock {
public:
  explicit WriteLock(const std::string &db_path) {
    REQUIRE(sqlite3_open(db_path.c_str(), &db_) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  }
  ~WriteLock() { release(); }
  void release() {
    if (!db_) return;
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(db_);
    db_ = nullptr;
  }

private:
  sqlite3 *db_ = nullptr;
};

struct Account {
  std::string username, access, refresh;
};

// simplejwt: register answers with a token pair.
Account register_account(const LatchProcess &latch, const std::string &prefix = "fault") {
  Account a{unique(prefix), "", ""};
  Reply r = latch.post("/auth/register", {{"username", a.username}, {"password", "password123"}});
  REQUIRE(r.status == 201);
  a.access = r.body["access"];
  a.refresh = r.body["refresh"];
  return a;
}

std::string user_id(const std::string &access) {
  return jwt_payload(access)["sub"];
}

// Sessions of one user, added by SQL in one transaction (seconds for a million rows): a
// database as a large deployment's would be, without a million sign-ins.
void seed_sessions(const std::string &db_path, const std::string &user, long long n,
                   std::int64_t expires_at) {
  exec(db_path, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
                    std::to_string(n) +
                    ") INSERT INTO sessions(id, user_id, api, refresh_jti, created_at, "
                    "expires_at) SELECT 'seeded-' || i, '" +
                    user + "', 'simplejwt', 'seeded-refresh-' || i, " +
                    std::to_string(expires_at - 86400) + ", " + std::to_string(expires_at) +
                    " FROM n");
}

// A database made by a server that ran once and signed one user up, then stopped: ready to
// be seeded by SQL before the server under test starts on it.
Account first_account(const std::string &db_path) {
  LatchProcess first({}, db_path);
  return register_account(first, "alice");
}

// The value of a metric line without labels ("-1" when absent).
long long metric(const LatchProcess &latch, const std::string &name) {
  const std::string text = latch.get("/metrics").text;
  std::smatch m;
  if (std::regex_search(text, m, std::regex("\\n" + name + " (-?[0-9]+)\\n")))
    return std::stoll(m[1]);
  return -1;
}

bool eventually(const std::function<bool()> &done, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return done();
}

// The same, -1 where the query cannot run (a table missing).
long long count_or_none(const std::string &db_path, const std::string &sql) {
  sqlite3 *db = nullptr;
  long long n = -1;
  if (sqlite3_open(db_path.c_str(), &db) == SQLITE_OK) {
    sqlite3_stmt *st = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return n;
}

std::int64_t now() {
  return std::int64_t(std::time(nullptr));
}

} // namespace

TEST_CASE("while another process holds the write lock, token checks are answered and a waiting "
          "sign-up holds none of them") {
  LatchProcess latch;
  Account alice = register_account(latch);
  WriteLock lock(latch.db_path());
  // A sign-up waits for the lock (its busy time-out is 5 s) ...
  std::atomic<bool> signed_up = false;
  Reply waiting;
  std::thread sign_up([&] {
    waiting = latch.post("/auth/register",
                         {{"username", unique("waiting")}, {"password", "password123"}});
    signed_up = true;
  });
  std::this_thread::sleep_for(300ms);
  // ... and meanwhile every token check, refresh-free, is answered from memory.
  for (int i = 0; i < 20; ++i) {
    Reply me = latch.get("/auth/getuser", alice.access);
    CHECK(me.status == 200);
  }
  CHECK(latch.post("/auth/token/verify", {{"token", alice.access}}).status == 200);
  // And readiness says at once that writes cannot commit.
  Reply ready = latch.get("/readyz");
  CHECK(ready.status == 503);
  CHECK_FALSE(signed_up.load()); // all of the above was answered while the sign-up still waited
  lock.release();
  sign_up.join();
  CHECK(waiting.status == 201);
  CHECK(latch.get("/readyz").status == 200);
}

TEST_CASE("a write lock held past the busy time-out: a sign-up and a refresh answer 503 in their "
          "API's shape, token checks go on, and both succeed once it is released") {
  LatchProcess latch;
  Account alice = register_account(latch);
  const json newcomer = {{"username", unique("late")}, {"password", "password123"}};
  Reply sign_up, refresh;
  {
    WriteLock lock(latch.db_path());
    // Both wait out the store's busy time-out (5 s) together.
    std::thread waiting([&] { sign_up = latch.post("/auth/register", newcomer); });
    refresh = latch.post("/auth/token/refresh", {{"refresh", alice.refresh}});
    waiting.join();
    CHECK(latch.get("/auth/getuser", alice.access).status == 200); // from memory throughout
  }
  // Busy, not broken: the client is told to try again, in simplejwt's words.
  for (const Reply *r : {&sign_up, &refresh}) {
    CHECK(r->status == 503);
    CHECK(r->body == json{{"code", "service_unavailable"},
                          {"detail", "Service temporarily unavailable, try again later."}});
  }
  CHECK(latch.log().find("database unavailable") != std::string::npos);
  CHECK(latch.post("/auth/register", newcomer).status == 201);
  CHECK(latch.post("/auth/token/refresh", {{"refresh", alice.refresh}}).status == 200);
}

TEST_CASE("at 200,000 sessions, writes by other processes are applied row by row: no reload, "
          "and token checks answered throughout") {
  TempDir dir;
  const std::string db_path = dir.file("auth.db");
  const Account alice = first_account(db_path);
  seed_sessions(db_path, user_id(alice.access), 200000, now() + 86400);
  LatchProcess latch({{"--metrics"}, {}}, db_path);
  CHECK(metric(latch, "latch_active_sessions") == 200001); // kept in memory, not counted
  REQUIRE(metric(latch, "latch_session_cache_loads_total") == 1);
  const long long applied = metric(latch, "latch_session_cache_changes_total");

  // Token checks go on while an admin command writes from another process.
  std::atomic<bool> stop = false;
  std::atomic<int> answered = 0, refused = 0;
  std::thread checker([&] {
    while (!stop)
      (latch.get("/auth/getuser", alice.access).status == 200 ? answered : refused)++;
  });
  const std::string bob = unique("bob");
  CommandResult added = run_latch({"user", "add", bob, "--db", db_path});
  REQUIRE(added.status == 0);
  std::smatch m;
  REQUIRE(std::regex_search(added.output, m, std::regex("password: (\\S+)")));
  const std::string password = m[1];
  // The server saw the new row without reading everything again.
  CHECK(eventually([&] {
    return latch.post("/auth/token", {{"username", bob}, {"password", password}}).status == 200;
  }));
  stop = true;
  checker.join();
  CHECK(refused == 0);
  CHECK(answered > 0);
  // One session revoked from outside (an admin command's write): refused within a moment, and
  // still no reload.
  exec(db_path, "UPDATE sessions SET revoked_at = " + std::to_string(now()) + " WHERE id = '" +
                    std::string(jwt_payload(alice.access)["sid"]) + "'");
  CHECK(eventually([&] { return latch.get("/auth/getuser", alice.access).status == 401; }));
  CHECK(metric(latch, "latch_session_cache_loads_total") == 1);
  CHECK(metric(latch, "latch_session_cache_changes_total") > applied);
  CHECK(metric(latch, "latch_active_sessions") == 200001); // alice's went, bob's came
}

TEST_CASE("a purge of 300,000 expired sessions, in the server and by latch purge, never makes "
          "a sign-in or a token check fail") {
  TempDir dir;
  const std::string db_path = dir.file("auth.db");
  const Account alice = first_account(db_path);
  // Expired two days ago (past the purge margin), as after downtime or an old backup restored.
  seed_sessions(db_path, user_id(alice.access), 300000, now() - 2 * 86400);
  LatchProcess latch({{"--purge-interval", "1"}, {}}, db_path);
  // latch purge from outside at the same time as the server's own purge.
  std::atomic<bool> purged = false;
  CommandResult outside;
  std::thread purge([&] {
    outside = run_latch({"purge", "--db", db_path});
    purged = true;
  });
  // Another process writing with a busy time-out of a second: a purge that held the write lock
  // longer than that (one transaction of 300,000 deletes does) would make it fail.
  exec(db_path, "CREATE TABLE IF NOT EXISTS probe(x)");
  std::atomic<int> probe_writes = 0, probe_failures = 0;
  std::string probe_error;
  std::thread prober([&] {
    sqlite3 *db = nullptr;
    if (sqlite3_open(db_path.c_str(), &db) != SQLITE_OK) return;
    sqlite3_busy_timeout(db, 1000);
    while (!purged) {
      const auto started = std::chrono::steady_clock::now();
      if (sqlite3_exec(db, "INSERT INTO probe VALUES (1)", nullptr, nullptr, nullptr) ==
          SQLITE_OK) {
        ++probe_writes;
      } else {
        if (probe_failures++ == 0)
          probe_error = std::string(sqlite3_errmsg(db)) + " (extended code " +
                        std::to_string(sqlite3_extended_errcode(db)) + ") after " +
                        std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::steady_clock::now() - started)
                                           .count()) +
                        " ms";
      }
      std::this_thread::sleep_for(10ms);
    }
    sqlite3_close(db);
  });
  int sign_ins = 0, failures = 0;
  while (!purged || sign_ins < 5) {
    Reply in =
        latch.post("/auth/token", {{"username", alice.username}, {"password", "password123"}});
    ++sign_ins;
    if (in.status != 200) {
      ++failures;
      INFO(in.status << " " << in.text);
      CHECK(in.status == 200);
    }
    CHECK(latch.get("/auth/getuser", alice.access).status == 200);
  }
  purge.join();
  prober.join();
  INFO("the other writer's first failure: " << probe_error);
  CHECK(probe_failures == 0);
  CHECK(probe_writes > 0);
  INFO(outside.output);
  CHECK(outside.status == 0);
  CHECK(failures == 0);
  CHECK(eventually(
      [&] { return count(db_path, "SELECT COUNT(*) FROM sessions WHERE id LIKE 'seeded-%'") == 0; },
      60s));
}

// libfaketime, preloaded, moves the server's wall clock by what the file says; the monotonic
// clock is left alone, as a real clock step leaves it.
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
namespace {
const char *kFaketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

struct SteppedClock {
  TempDir dir;
  std::string file = dir.file("faketime");
  SteppedClock() { set("+0"); }
  void set(const std::string &offset) { std::ofstream(file) << offset << "\n"; }
  std::map<std::string, std::string> env() const {
    return {{"LD_PRELOAD", kFaketime},
            {"FAKETIME_TIMESTAMP_FILE", file},
            {"FAKETIME_NO_CACHE", "1"},
            {"FAKETIME_DONT_FAKE_MONOTONIC", "1"}};
  }
};
} // namespace

TEST_CASE("a wall clock stepped back an hour signs nobody out, and lockouts still end in 15 "
          "minutes") {
  if (access(kFaketime, R_OK) != 0) {
    MESSAGE("libfaketime is not installed (Debian: faketime): skipped");
    return;
  }
  SteppedClock clock;
  LatchProcess latch({{"--max-failed-logins", "3"}, clock.env()});
  Account alice = register_account(latch);
  Account bob = register_account(latch);
  clock.set("-1h");
  // Tokens issued in the hour the clock went back over: valid signature, exp and session.
  CHECK(latch.get("/auth/getuser", alice.access).status == 200);
  Reply refreshed = latch.post("/auth/token/refresh", {{"refresh", alice.refresh}});
  CHECK(refreshed.status == 200);
  // A lock taken before the step ends 15 minutes after it began, not an hour later.
  clock.set("+0");
  for (int i = 0; i < 3; ++i)
    latch.post("/auth/token", {{"username", bob.username}, {"password", "wrong-password"}});
  Reply locked =
      latch.post("/auth/token", {{"username", bob.username}, {"password", "password123"}});
  REQUIRE(locked.status == 429);
  clock.set("-1h");
  Reply still =
      latch.post("/auth/token", {{"username", bob.username}, {"password", "password123"}});
  CHECK(still.status == 429);
  CHECK(std::stoi(still.header("Retry-After")) <= 15 * 60);
}

TEST_CASE("a wall clock stepped 45 minutes ahead and back destroys no session still valid") {
  if (access(kFaketime, R_OK) != 0) {
    MESSAGE("libfaketime is not installed (Debian: faketime): skipped");
    return;
  }
  SteppedClock clock;
  // Sessions of half an hour; the purge runs every second with the default margin (1h).
  LatchProcess latch({{"--purge-interval", "1", "--simplejwt-refresh-ttl", "30m"}, clock.env()});
  Account alice = register_account(latch);
  clock.set("+45m");
  // While the clock is wrong the session looks expired; the purge leaves it (margin), ...
  CHECK(eventually([&] {
    return latch.post("/auth/token/refresh", {{"refresh", alice.refresh}}).status == 401;
  }));
  std::this_thread::sleep_for(2500ms); // two purges
  CHECK(count(latch.db_path(), "SELECT COUNT(*) FROM sessions") == 1);
  // ... and once the clock is put right, it serves again.
  clock.set("+0");
  CHECK(latch.post("/auth/token/refresh", {{"refresh", alice.refresh}}).status == 200);
}
#endif

TEST_CASE("SIGHUP reloads the TLS certificate and the signing keys; the server keeps serving") {
  TempDir dir;
  const std::string cert = dir.file("cert.pem"), key = dir.file("key.pem");
  auto make_cert = [&](const std::string &cn) {
    const std::string cmd =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
        "-subj /CN=" +
        cn + " -addext subjectAltName=IP:127.0.0.1 -keyout " + key + " -out " + cert +
        " 2>/dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
  };
  make_cert("first");
  LatchProcess latch({{"--tls-cert", cert, "--tls-key", key}, {}});
  // Each connection's certificate, as the client sees it.
  auto served_cn = [&]() -> std::string {
    const std::string cmd =
        "echo | openssl s_client -connect 127.0.0.1:" + std::to_string(latch.port()) +
        " 2>/dev/null | openssl x509 -noout "
        "-subject 2>/dev/null";
    std::string out;
    if (FILE *p = popen(cmd.c_str(), "r")) {
      char buf[512];
      while (fgets(buf, sizeof buf, p))
        out += buf;
      pclose(p);
    }
    return out;
  };
  REQUIRE(served_cn().find("first") != std::string::npos);
  make_cert("second");
  REQUIRE(kill(latch.pid(), SIGHUP) == 0);
  CHECK(eventually([&] { return latch.log().find("SIGHUP") != std::string::npos; }));
  CHECK(served_cn().find("second") != std::string::npos);
  // A broken certificate is refused and the one in use kept.
  std::ofstream(cert) << "not a certificate\n";
  REQUIRE(kill(latch.pid(), SIGHUP) == 0);
  CHECK(eventually(
      [&] { return latch.log().find("keeping the TLS certificate") != std::string::npos; }));
  CHECK(served_cn().find("second") != std::string::npos);
  CHECK(kill(latch.pid(), 0) == 0); // alive
}

TEST_CASE("SIGHUP on a plain server is logged, and nothing stops") {
  LatchProcess latch;
  Account alice = register_account(latch);
  REQUIRE(kill(latch.pid(), SIGHUP) == 0);
  CHECK(eventually([&] { return latch.log().find("SIGHUP") != std::string::npos; }));
  CHECK(latch.get("/auth/getuser", alice.access).status == 200);
  CHECK(latch.get("/healthz").status == 200);
}

TEST_CASE("a sign-up whose session cannot be written leaves no user behind: the retry succeeds") {
  LatchProcess latch;
  const std::string name = unique("atomic");
  // The session insert fails (as a full disk or an I/O error would) after the user row.
  exec(latch.db_path(), "CREATE TRIGGER no_sessions BEFORE INSERT ON sessions "
                        "BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
  Reply failed = latch.post("/auth/register", {{"username", name}, {"password", "password123"}});
  CHECK(failed.status == 500);
  CHECK(count(latch.db_path(), "SELECT COUNT(*) FROM users WHERE username = '" + name + "'") == 0);
  exec(latch.db_path(), "DROP TRIGGER no_sessions");
  Reply retried = latch.post("/auth/register", {{"username", name}, {"password", "password123"}});
  CHECK(retried.status == 201);

  // v1 register with confirmation mail: the user and the confirmation token together.
  const std::string email = unique("v1") + "@example.com";
  exec(latch.db_path(), "CREATE TRIGGER no_tokens BEFORE INSERT ON one_time_tokens "
                        "BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
  const json v1_user = {{"email", email}, {"username", unique("v1")}, {"password", "password123"}};
  Reply v1 = latch.post("/api/v1/register", v1_user);
  CHECK(v1.status == 500);
  CHECK(count(latch.db_path(), "SELECT COUNT(*) FROM users WHERE email = '" + email + "'") == 0);
  exec(latch.db_path(), "DROP TRIGGER no_tokens");
  CHECK(latch.post("/api/v1/register", v1_user).status == 201);
}

TEST_CASE("a quiet second after writes, the main database file alone holds them") {
  LatchProcess latch;
  Account alice = register_account(latch);
  TempDir copy_dir;
  const std::string copy = copy_dir.file("main-only.db");
  // Copying only the main file (no -wal), as a careless backup does, loses nothing.
  CHECK(eventually([&] {
    std::filesystem::copy_file(latch.db_path(), copy,
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::remove(copy + "-wal");
    std::filesystem::remove(copy + "-shm");
    return count_or_none(copy, "SELECT COUNT(*) FROM users WHERE username = '" + alice.username +
                                   "'") == 1;
  }));
}

TEST_CASE("a database file deleted under the server is said loudly, and /readyz says not ready") {
  LatchProcess latch;
  register_account(latch);
  REQUIRE(latch.get("/readyz").status == 200);
  std::filesystem::remove(latch.db_path());
  CHECK(eventually([&] { return latch.get("/readyz").status == 503; }));
  Reply ready = latch.get("/readyz");
  CHECK(ready.text.find("deleted or replaced") != std::string::npos);
  CHECK(eventually([&] { return latch.log().find("ERROR") != std::string::npos; }));
  // A file put in its place is not the one open: still not ready.
  exec(latch.db_path(), "CREATE TABLE t(x)");
  std::this_thread::sleep_for(500ms);
  CHECK(latch.get("/readyz").status == 503);
}

TEST_CASE("admin commands refuse a file that is not a Latch database and leave it as it was") {
  TempDir dir;
  const std::string empty = dir.file("empty.db");
  std::ofstream(empty).close();
  CommandResult list = run_latch({"user", "list", "--db", empty});
  CHECK(list.status == 1);
  CHECK(list.output.find("not a Latch database") != std::string::npos);
  CHECK(std::filesystem::file_size(empty) == 0);
  // Another application's database too.
  const std::string other = dir.file("other.db");
  exec(other, "CREATE TABLE notes(text)");
  CommandResult other_list = run_latch({"user", "add", "x", "--db", other});
  CHECK(other_list.status == 1);
  CHECK(count(other, "SELECT COUNT(*) FROM sqlite_master") == 1);
}

TEST_CASE("at the file-descriptor limit the server says so once, counts it, and recovers") {
  rlimit old{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
  rlimit low = old;
  low.rlim_cur = 64; // inherited by the server
  REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
  std::unique_ptr<LatchProcess> latch;
  try {
    latch = std::make_unique<LatchProcess>(LatchOptions{{"--metrics"}, {}});
  } catch (...) {
    setrlimit(RLIMIT_NOFILE, &old);
    throw;
  }
  REQUIRE(setrlimit(RLIMIT_NOFILE, &old) == 0);
  Account alice = register_account(*latch);
  {
    // More connections than the server has descriptors for, each having sent half a request.
    std::vector<std::unique_ptr<RawClient>> idle;
    for (int i = 0; i < 100; ++i) {
      idle.push_back(std::make_unique<RawClient>(latch->port()));
      idle.back()->send("GET /healthz HTTP/1.1\r\n");
    }
    CHECK(eventually(
        [&] { return latch->log().find("out of file descriptors") != std::string::npos; }));
  }
  // The connections are gone: the server answers again, and counted what happened.
  CHECK(eventually([&] { return latch->get("/auth/getuser", alice.access).status == 200; }));
  CHECK(metric(*latch, "latch_file_descriptor_limit_reached_total") >= 1);
  const std::string log = latch->log();
  CHECK(log.find("out of file descriptors") == log.rfind("out of file descriptors")); // once
}
