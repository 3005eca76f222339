// Test fixture: starts the real build/latch on a free port with a temporary database, and
// small helpers to talk to it.
#pragma once

#include "support/temp_dir.h"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace latch::test {

using nlohmann::json;

struct Reply {
  int status = 0;
  std::string text;
  json body; // parsed text, or discarded if it is not JSON
  httplib::Headers headers;
  // The value of the header called name ("" if absent). A response that carries it more than
  // once fails the test, naming every copy: a browser refuses a repeated CORS header, and
  // reading only the first copy would hide it.
  std::string header(const std::string &name) const;
  std::size_t header_count(const std::string &name) const; // copies of it (names ignore case)
};

struct LatchOptions {
  std::vector<std::string> args;          // extra flags after `serve`
  std::map<std::string, std::string> env; // extra or overriding environment variables
};

// The server, started in the constructor and stopped (SIGTERM) in the destructor. Unless the
// options say otherwise it runs with a cheap argon2id cost, and rate limits and the
// per-address connection cap off, so tests are fast; tests of those features turn them on.
class LatchProcess {
public:
  explicit LatchProcess(LatchOptions options = {});
  // Reuses a database path (for restart tests) instead of a fresh one.
  LatchProcess(LatchOptions options, const std::string &db_path);
  ~LatchProcess();
  LatchProcess(const LatchProcess &) = delete;
  LatchProcess &operator=(const LatchProcess &) = delete;

  int port() const { return port_; }
  int pid() const { return pid_; } // the server process (its /proc/PID/status for memory)
  const std::string &db_path() const { return db_path_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string log() const;    // what the server wrote to stderr so far
  std::string output() const; // and to stdout (the access log)
  int stop(int signal = 15);  // sends the signal, waits, returns the exit status

  Reply get(const std::string &path, const std::string &bearer = "",
            const httplib::Headers &headers = {}) const;
  Reply options(const std::string &path, const httplib::Headers &headers) const;
  Reply post(const std::string &path, const json &body, const std::string &bearer = "") const;
  Reply post_raw(const std::string &path, const std::string &body, const std::string &content_type,
                 const std::string &bearer = "", const httplib::Headers &headers = {}) const;
  Reply post_form(const std::string &path, const std::string &urlencoded) const;
  Reply post_multipart(const std::string &path,
                       const std::vector<std::pair<std::string, std::string>> &fields) const;

private:
  void start(LatchOptions options);

  std::unique_ptr<TempDir> dir_;
  std::string db_path_;
  std::string stdout_path_, stderr_path_;
  int pid_ = -1;
  int port_ = 0;
};

// Runs `build/latch ARGS...` to completion; returns exit status and combined output.
struct CommandResult {
  int status = -1;
  std::string output;
};
CommandResult run_latch(const std::vector<std::string> &args,
                        const std::map<std::string, std::string> &env = {});

// A unique name per call, so tests never collide on usernames or emails.
std::string unique(const std::string &prefix);

// Decodes a JWT's payload without checking it (tests look at claims).
json jwt_payload(const std::string &token);

// Checks the claims SPEC.md's "Tokens" section requires: token_type, sub = uid = user_id,
// username, email (when given), jti, sid, and exp - iat equal to the lifetime.
void check_token_claims(const std::string &token, const std::string &type,
                        const std::string &username, const std::optional<std::string> &email,
                        std::int64_t lifetime);

// The keys of a JSON object (empty for anything else).
std::set<std::string> keys(const json &object);

std::string lower(std::string s);
std::string upper(std::string s);

} // namespace latch::test

namespace latch::test {

// tests/support/smtp_sink.py as a child process: a real SMTP server on loopback that keeps
// every message it accepts, answering as its mode says.
class SmtpSink {
public:
  enum class Mode {
    accept,        // 250 to everything
    tempfail_once, // 451 to the first RCPT TO, as a greylisting server does; then 250
    reject,        // 550 to every RCPT TO
    hang,          // accepts connections and never answers, not even the greeting
  };
  // port 0: a free one.
  explicit SmtpSink(Mode mode = Mode::accept, int port = 0);
  ~SmtpSink();
  SmtpSink(const SmtpSink &) = delete;
  SmtpSink &operator=(const SmtpSink &) = delete;

  int port() const { return port_; }
  int pid() const { return pid_; } // the server process (its /proc/PID/status for memory)
  std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }
  // Waits up to timeout for the n-th message (1-based) and returns it raw ("" on time-out).
  std::string wait_for_message(int n, int timeout_ms = 10000) const;
  int message_count() const;
  // Hang: waits up to timeout for the n-th connection it holds; false on time-out.
  bool wait_for_connection(int n, int timeout_ms = 10000) const;

private:
  TempDir dir_;
  int pid_ = -1;
  int port_ = 0;
};

// A loopback TCP port nothing listens on now (for a server that starts later).
int unused_port();

// One value (the first column of the first row, "" if none) from a database, read as an
// operator would: an SQLite file with plain SQLite, read-only; a postgres:// URI (LATCH_TEST_DB=
// postgres) with libpq, booleans as 1 or 0.
std::string sql_value(const std::string &db_path, const std::string &sql);

// Runs one or more statements on a database a server may have open, as an operator would with
// the sqlite3 CLI or psql: an SQLite file with plain SQLite (foreign keys off, its default), a
// postgres:// URI with libpq (the statements in one transaction). Fails the test if one fails;
// returns the rows the last statement changed. The SQL is each engine's own: build values into
// it as quoted literals.
long long sql_exec(const std::string &db_path, const std::string &sql);

// Whether db_path (a LatchProcess's db_path()) names a PostgreSQL database, not an SQLite file.
bool on_postgres(const std::string &db_path);

// For a case about the SQLite file itself (a file copy, its mode, WAL, an SQLite file made by
// hand): when this run's servers use PostgreSQL (LATCH_TEST_DB=postgres and PostgreSQL
// installed), says so and why in a doctest MESSAGE and returns true, for the case to return.
bool skip_on_postgres(const std::string &why);

// Runs every call at the same moment, each on its own thread (and, through LatchProcess, its
// own connection), and returns the replies in order.
std::vector<Reply> at_once(const std::vector<std::function<Reply()>> &calls);

// The value of token=... in the first link in a message ("" if none).
std::string token_from_link(const std::string &message);

} // namespace latch::test
