// Test fixture: the real binary as a child process, and HTTP helpers around cpp-httplib.
#include "support/latch_process.h"

#include "auth/secure.h"
#include "support/postgres_server.h"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <latch>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <regex>
#include <signal.h>
#include <sqlite3.h>
#include <sstream>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace latch::test {

namespace fs = std::filesystem;

std::size_t Reply::header_count(const std::string &name) const {
  return headers.count(name); // httplib::Headers compares names ignoring case
}

std::string Reply::header(const std::string &name) const {
  auto copies = headers.equal_range(name); // httplib::Headers compares names ignoring case
  if (copies.first == copies.second) return {};
  if (std::next(copies.first) != copies.second) {
    std::string listed;
    for (auto it = copies.first; it != copies.second; ++it)
      listed += "\n  " + it->first + ": " + it->second;
    FAIL_CHECK("the response carries " << header_count(name) << " copies of the header " << name
                                       << " (each header must be sent once):" << listed);
  }
  return copies.first->second;
}

namespace {

std::string read_file(const std::string &path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// fork + exec with stdout/stderr sent to files; env entries override the parent's.
int spawn(const std::vector<std::string> &args, const std::map<std::string, std::string> &env,
          const std::string &out_path, const std::string &err_path) {
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    FILE *out = fopen(out_path.c_str(), "w");
    FILE *err = fopen(err_path.c_str(), "w");
    if (!out || !err) _exit(127);
    dup2(fileno(out), 1);
    dup2(fileno(err), 2);
    for (const auto &[k, v] : env)
      setenv(k.c_str(), v.c_str(), 1);
    std::vector<char *> argv;
    for (const auto &a : args)
      argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

std::map<std::string, std::string> default_env() {
  // Every test client connects from 127.0.0.1: the per-address connection cap is off too.
  return {{"LATCH_ARGON2_MEMORY_KIB", "64"},
          {"LATCH_ARGON2_ITERATIONS", "1"},
          {"LATCH_RATE_LIMIT", "0"},
          {"LATCH_MAX_FAILED_LOGINS", "0"},
          {"LATCH_JWT_SECRET", ""},
          {"LATCH_SMTP_URL", ""},
          {"LATCH_MAX_CONNECTIONS_PER_ADDRESS", "0"}};
}

Reply to_reply(const httplib::Result &r) {
  Reply out;
  if (!r) {
    out.status = 0;
    out.text = "transport error: " + httplib::to_string(r.error());
    return out;
  }
  out.status = r->status;
  out.text = r->body;
  out.headers = r->headers;
  out.body = json::parse(r->body, nullptr, false);
  return out;
}

httplib::Client make_client(int port) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(5);
  c.set_read_timeout(30);
  c.set_write_timeout(30);
  return c;
}

httplib::Headers with_bearer(httplib::Headers h, const std::string &bearer) {
  if (!bearer.empty()) h.emplace("Authorization", "Bearer " + bearer);
  return h;
}

} // namespace

LatchProcess::LatchProcess(LatchOptions options) : dir_(std::make_unique<TempDir>()) {
  db_path_ = dir_->path() + "/auth.db";
  // LATCH_TEST_DB=postgres: a fresh database of the test PostgreSQL instead (the suites that
  // read the SQLite file itself cannot pass so).
  if (const char *engine = std::getenv("LATCH_TEST_DB");
      engine && std::string(engine) == "postgres")
    if (PostgresServer *server = PostgresServer::shared()) db_path_ = server->create_database();
  start(std::move(options));
}

LatchProcess::LatchProcess(LatchOptions options, const std::string &db_path)
    : dir_(std::make_unique<TempDir>()), db_path_(db_path) {
  start(std::move(options));
}

void LatchProcess::start(LatchOptions options) {
  stdout_path_ = dir_->path() + "/stdout.log";
  stderr_path_ = dir_->path() + "/stderr.log";
  std::vector<std::string> args = {LATCH_BINARY,  "serve", "--addr",
                                   "127.0.0.1:0", "--db",  db_path_};
  args.insert(args.end(), options.args.begin(), options.args.end());
  auto env = default_env();
  for (const auto &[k, v] : options.env)
    env[k] = v;
  // An empty LATCH_JWT_SECRET means "generate one"; unset it rather than pass it empty.
  bool unset_secret = env["LATCH_JWT_SECRET"].empty();
  if (unset_secret) env.erase("LATCH_JWT_SECRET");
  if (env["LATCH_SMTP_URL"].empty()) env.erase("LATCH_SMTP_URL");
  if (unset_secret) unsetenv("LATCH_JWT_SECRET");
  pid_ = spawn(args, env, stdout_path_, stderr_path_);

  // Any listening address (--addr 0.0.0.0:0 too); the tests reach it on 127.0.0.1.
  static const std::regex listening(R"(listening on https?://\S+:(\d+) \()");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    std::smatch m;
    std::string out = read_file(stdout_path_);
    if (std::regex_search(out, m, listening)) {
      port_ = std::stoi(m[1]);
      return;
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("latch exited at start: " + read_file(stderr_path_));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  stop(9);
  throw std::runtime_error("latch did not start listening within 20 s");
}

LatchProcess::~LatchProcess() {
  if (pid_ <= 0) return; // never started, or already stopped by the test
  // A clean exit on SIGTERM is part of every test: a sanitizer report, a leak or a crash on
  // the way out makes the exit status non-zero.
  int status = stop(SIGTERM);
  bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!clean) {
    std::string log = read_file(stderr_path_);
    if (log.size() > 4000) log = "..." + log.substr(log.size() - 4000);
    CHECK_MESSAGE(clean, "latch did not exit cleanly on SIGTERM (status " << status << "):\n"
                                                                          << log);
  }
}

int LatchProcess::stop(int signal) {
  if (pid_ <= 0) return -1;
  kill(pid_, signal);
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pid_ = -1;
  return status;
}

std::string LatchProcess::log() const {
  return read_file(stderr_path_);
}

std::string LatchProcess::output() const {
  return read_file(stdout_path_);
}

Reply LatchProcess::get(const std::string &path, const std::string &bearer,
                        const httplib::Headers &headers) const {
  auto c = make_client(port_);
  return to_reply(c.Get(path, with_bearer(headers, bearer)));
}

Reply LatchProcess::options(const std::string &path, const httplib::Headers &headers) const {
  auto c = make_client(port_);
  return to_reply(c.Options(path, headers));
}

Reply LatchProcess::post(const std::string &path, const json &body,
                         const std::string &bearer) const {
  return post_raw(path, body.dump(), "application/json", bearer);
}

Reply LatchProcess::post_raw(const std::string &path, const std::string &body,
                             const std::string &content_type, const std::string &bearer,
                             const httplib::Headers &headers) const {
  auto c = make_client(port_);
  return to_reply(c.Post(path, with_bearer(headers, bearer), body, content_type));
}

Reply LatchProcess::post_form(const std::string &path, const std::string &urlencoded) const {
  return post_raw(path, urlencoded, "application/x-www-form-urlencoded");
}

Reply LatchProcess::post_multipart(
    const std::string &path, const std::vector<std::pair<std::string, std::string>> &fields) const {
  auto c = make_client(port_);
  httplib::MultipartFormDataItems items;
  for (const auto &[k, v] : fields)
    items.push_back({k, v, "", ""});
  return to_reply(c.Post(path, items));
}

CommandResult run_latch(const std::vector<std::string> &args,
                        const std::map<std::string, std::string> &env) {
  TempDir dir;
  std::vector<std::string> argv = {LATCH_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out = dir.path() + "/out", err = dir.path() + "/err";
  int pid = spawn(argv, env, out, err);
  int status = 0;
  waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(out) + read_file(err)};
}

std::string unique(const std::string &prefix) {
  static std::atomic<int> counter{0};
  return prefix + std::to_string(getpid()) + "x" + std::to_string(++counter);
}

json jwt_payload(const std::string &token) {
  size_t a = token.find('.'), b = token.find('.', a + 1);
  if (a == std::string::npos || b == std::string::npos) return json();
  auto bytes = secure::base64url_decode(token.substr(a + 1, b - a - 1));
  return bytes ? json::parse(*bytes, nullptr, false) : json();
}

void check_token_claims(const std::string &token, const std::string &type,
                        const std::string &username, const std::optional<std::string> &email,
                        std::int64_t lifetime) {
  json c = jwt_payload(token);
  REQUIRE(c.is_object());
  CHECK(c["token_type"] == type);
  REQUIRE(c["sub"].is_string());
  CHECK(!c["sub"].get<std::string>().empty());
  CHECK(c["uid"] == c["sub"]);
  CHECK(c["user_id"] == c["sub"]);
  CHECK(c["username"] == username);
  if (email) CHECK(c["email"] == *email);
  CHECK(c["exp"].get<std::int64_t>() - c["iat"].get<std::int64_t>() == lifetime);
  CHECK(c["jti"].is_string());
  CHECK(c["sid"].is_string());
}

std::set<std::string> keys(const json &object) {
  std::set<std::string> out;
  if (object.is_object())
    for (const auto &item : object.items())
      out.insert(item.key());
  return out;
}

std::string lower(std::string s) {
  for (auto &ch : s)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

std::string upper(std::string s) {
  for (auto &ch : s)
    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return s;
}

} // namespace latch::test

namespace latch::test {

SmtpSink::SmtpSink(Mode mode, int port) {
  std::string out = dir_.path() + "/sink.out", err = dir_.path() + "/sink.err";
  const char *name = mode == Mode::tempfail_once ? "tempfail-once"
                     : mode == Mode::reject      ? "reject"
                     : mode == Mode::hang        ? "hang"
                                                 : "accept";
  pid_ = spawn({"/usr/bin/python3", LATCH_SMTP_SINK, dir_.path(), name, std::to_string(port)}, {},
               out, err);
  static const std::regex port_line(R"(PORT (\d+))");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    std::smatch m;
    std::string text = read_file(out);
    if (std::regex_search(text, m, port_line)) {
      port_ = std::stoi(m[1]);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw std::runtime_error("SMTP sink did not start: " + read_file(err));
}

SmtpSink::~SmtpSink() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
}

int SmtpSink::message_count() const {
  int n = 0;
  for (const auto &entry : fs::directory_iterator(dir_.path()))
    if (entry.path().extension() == ".eml") ++n;
  return n;
}

std::string SmtpSink::wait_for_message(int n, int timeout_ms) const {
  std::string path = dir_.path() + "/" + std::to_string(n) + ".eml";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (fs::exists(path)) return read_file(path);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return {};
}

bool SmtpSink::wait_for_connection(int n, int timeout_ms) const {
  const std::string path = dir_.path() + "/connection-" + std::to_string(n);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (fs::exists(path)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

int unused_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string token_from_link(const std::string &message) {
  static const std::regex token(R"([?&]token=([A-Za-z0-9_\-]+))");
  std::smatch m;
  return std::regex_search(message, m, token) ? m[1].str() : std::string();
}

bool on_postgres(const std::string &db_path) {
  return db_path.rfind("postgres://", 0) == 0 || db_path.rfind("postgresql://", 0) == 0;
}

bool skip_on_postgres(const std::string &why) {
  const char *engine = std::getenv("LATCH_TEST_DB");
  // As LatchProcess decides: without PostgreSQL installed the servers stay on SQLite.
  if (!engine || std::string(engine) != "postgres" || PostgresServer::binaries().empty())
    return false;
  MESSAGE("skipped on PostgreSQL: " << why);
  return true;
}

std::string sql_value(const std::string &db_path, const std::string &sql) {
  if (on_postgres(db_path)) {
    // The same question to PostgreSQL (LATCH_TEST_DB=postgres): booleans read as 1 or 0, as
    // SQLite stores them.
    PGconn *conn = PQconnectdb(db_path.c_str());
    REQUIRE(PQstatus(conn) == CONNECTION_OK);
    PGresult *r = PQexec(conn, sql.c_str());
    INFO(PQresultErrorMessage(r));
    const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK;
    std::string value;
    if (ok && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
      value = PQgetvalue(r, 0, 0);
      if (PQftype(r, 0) == 16) value = value == "t" ? "1" : "0"; // BOOLOID
    }
    PQclear(r);
    PQfinish(conn);
    REQUIRE(ok);
    return value;
  }
  sqlite3 *db = nullptr;
  REQUIRE(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt *st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
  std::string value;
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
    value = reinterpret_cast<const char *>(sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return value;
}

long long sql_exec(const std::string &db_path, const std::string &sql) {
  INFO("SQL: " << sql);
  if (on_postgres(db_path)) {
    PGconn *conn = PQconnectdb(db_path.c_str());
    REQUIRE(PQstatus(conn) == CONNECTION_OK);
    PGresult *r = PQexec(conn, sql.c_str()); // several statements: one implicit transaction
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    const std::string error = PQresultErrorMessage(r), changed = PQcmdTuples(r);
    PQclear(r);
    PQfinish(conn);
    INFO(error);
    REQUIRE(ok);
    return changed.empty() ? 0 : std::stoll(changed);
  }
  sqlite3 *db = nullptr;
  // Never creates the file: a wrong path fails here, not later as "no such table".
  REQUIRE(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  sqlite3_busy_timeout(db, 10000);
  char *error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  const std::string message = error ? error : "";
  sqlite3_free(error);
  const long long changed = sqlite3_changes(db);
  sqlite3_close(db);
  INFO(message);
  REQUIRE(rc == SQLITE_OK);
  return changed;
}

std::vector<Reply> at_once(const std::vector<std::function<Reply()>> &calls) {
  std::vector<Reply> replies(calls.size());
  std::latch go(static_cast<std::ptrdiff_t>(calls.size()));
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < calls.size(); ++i)
    threads.emplace_back([&, i] {
      go.arrive_and_wait();
      replies[i] = calls[i]();
    });
  for (auto &t : threads)
    t.join();
  return replies;
}

} // namespace latch::test
