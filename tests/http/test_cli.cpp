// The command line: help, version, routes, and configuration errors that stop the server.
#include "support/latch_process.h"

#include "auth/apis/api.h"

#include <doctest/doctest.h>

#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace latch::test;

TEST_CASE("latch --help lists every flag with its environment variable") {
  CommandResult r = run_latch({"--help"});
  CHECK(r.status == 0);
  for (const char *text : {"--addr",
                           "LATCH_ADDR",
                           "--db",
                           "LATCH_DB",
                           "--apis",
                           "--reset-token-in-response",
                           "--verify-token-in-response",
                           "LATCH_VERIFY_TOKEN_IN_RESPONSE",
                           "--password-min-length",
                           "--rate-limit",
                           "LATCH_RATE_LIMIT",
                           "--max-failed-logins",
                           "LATCH_MAX_FAILED_LOGINS",
                           "--mail-limit",
                           "LATCH_MAIL_LIMIT",
                           "--trusted-proxy",
                           "--require-verified-email",
                           "LATCH_JWT_SECRET",
                           "LATCH_ARGON2_MEMORY_KIB",
                           "LATCH_ARGON2_ITERATIONS",
                           "LATCH_SMTP_URL",
                           "LATCH_MAIL_FROM",
                           "RESET_PASSWORD_URL",
                           "LATCH_API_VERSION",
                           "--picflux-access-ttl",
                           "LATCH_V1_REFRESH_TTL"}) {
    CAPTURE(text);
    CHECK(r.output.find(text) != std::string::npos);
  }
}

TEST_CASE("latch --help names every API, and its lifetime flags as its row has them") {
  CommandResult r = run_latch({"--help"});
  REQUIRE(r.status == 0);
  auto has = [&](const std::string &text) { return r.output.find(text) != std::string::npos; };
  std::string names;
  for (const latch::apis::ApiRow &row : latch::apis::api_rows())
    names += (names.empty() ? "" : ",") + std::string(row.name);
  CHECK_MESSAGE(has("some of " + names + " (default all)"), "--apis does not list " << names);
  for (const latch::apis::ApiRow &row : latch::apis::api_rows()) {
    const std::string name = row.name;
    std::string upper = name;
    std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
    CAPTURE(name);
    CHECK(has("--" + name + "-access-ttl"));
    CHECK(has("LATCH_" + upper + "_ACCESS_TTL"));
    // An API that issues no refresh token has no refresh lifetime to set.
    CHECK(has("--" + name + "-refresh-ttl") == (row.lifetimes.refresh > 0));
    CHECK(has("LATCH_" + upper + "_REFRESH_TTL") == (row.lifetimes.refresh > 0));
  }
}

TEST_CASE("latch version prints the version") {
  CommandResult r = run_latch({"version"});
  CHECK(r.status == 0);
  CHECK(r.output.rfind("latch ", 0) == 0);
}

TEST_CASE("an unknown command exits 2 and says so") {
  CommandResult r = run_latch({"frobnicate"});
  CHECK(r.status == 2);
  CHECK(r.output.find("unknown command 'frobnicate'") != std::string::npos);
}

TEST_CASE("a bad flag value stops the server at start with a message naming it") {
  CommandResult r = run_latch({"serve", "--rate-limit", "lots"});
  CHECK(r.status == 2);
  CHECK(r.output.find("--rate-limit") != std::string::npos);

  CommandResult unknown = run_latch({"serve", "--no-such-flag"});
  CHECK(unknown.status == 2);
  CHECK(unknown.output.find("--no-such-flag") != std::string::npos);
}

TEST_CASE("a bad environment value stops the server with a message naming the variable") {
  CommandResult r = run_latch({"serve"}, {{"LATCH_ARGON2_MEMORY_KIB", "-5"}});
  CHECK(r.status == 2);
  CHECK(r.output.find("LATCH_ARGON2_MEMORY_KIB") != std::string::npos);

  CommandResult secret = run_latch({"serve"}, {{"LATCH_JWT_SECRET", "short"}});
  CHECK(secret.status == 2);
  CHECK(secret.output.find("LATCH_JWT_SECRET") != std::string::npos);

  CommandResult apis = run_latch({"serve"}, {{"LATCH_APIS", "picflux,soap"}});
  CHECK(apis.status == 2);
  CHECK(apis.output.find("soap") != std::string::npos);
}

TEST_CASE("--sqlite-sync full: the server answers, and its start-up line says sync full, as "
          "its database connection reports PRAGMA synchronous") {
  if (skip_on_postgres("an SQLite connection's sync mode (PostgreSQL commits by its own settings)"))
    return;
  auto says = [](const LatchProcess &latch, const std::string &mode) {
    return latch.output().find(", db: " + latch.db_path() + ", sync " + mode + ")") !=
           std::string::npos;
  };
  TempDir dir;
  const std::string db = dir.file("auth.db");
  const std::string user = unique("sync");
  {
    LatchProcess full({{"--sqlite-sync", "full"}, {}}, db);
    CAPTURE(full.output());
    CHECK(says(full, "full"));
    Reply r = full.post(
        "/api/auth/signup",
        {{"email", user + "@example.com"}, {"username", user}, {"password", "password123"}});
    CHECK(r.status == 201);
    CHECK(full.post_raw("/api/auth/refresh", "", "application/json",
                        r.body.value("refresh_token", ""))
              .status == 200);
  }
  // The mode belongs to the connection, not the file: the same database reopened is normal.
  LatchProcess normal({}, db);
  CAPTURE(normal.output());
  CHECK(says(normal, "normal"));
  CHECK(
      normal
          .post("/api/auth/signin", {{"email", user + "@example.com"}, {"password", "password123"}})
          .status == 200);
  LatchProcess by_env({{}, {{"LATCH_SQLITE_SYNC", "full"}}});
  CAPTURE(by_env.output());
  CHECK(says(by_env, "full"));
}

TEST_CASE("a bad --sqlite-sync or LATCH_SQLITE_SYNC stops the server and the admin commands, "
          "exit 2, naming it") {
  CommandResult flag = run_latch({"serve", "--addr", "127.0.0.1:0", "--sqlite-sync", "always"});
  CHECK(flag.status == 2);
  CHECK(flag.output.find("--sqlite-sync: must be normal or full") != std::string::npos);
  CommandResult env = run_latch({"serve", "--addr", "127.0.0.1:0"}, {{"LATCH_SQLITE_SYNC", "on"}});
  CHECK(env.status == 2);
  CHECK(env.output.find("LATCH_SQLITE_SYNC: must be normal or full") != std::string::npos);
  TempDir dir;
  CommandResult admin =
      run_latch({"user", "list", "--db", dir.file("auth.db")}, {{"LATCH_SQLITE_SYNC", "FULL"}});
  CHECK(admin.status == 2);
  CHECK(admin.output.find("LATCH_SQLITE_SYNC: must be normal or full") != std::string::npos);
}

TEST_CASE("flags win over the environment") {
  // The environment asks for 1 sign-in a minute; the flag turns the limit off.
  LatchProcess latch({{"--rate-limit", "0"}, {{"LATCH_RATE_LIMIT", "1"}}});
  for (int i = 0; i < 3; ++i)
    CHECK(latch.post("/auth/login", {{"username", "x"}, {"password", "y"}}).status == 401);

  LatchProcess limited({{}, {{"LATCH_RATE_LIMIT", "1"}}});
  CHECK(limited.post("/auth/login", {{"username", "x"}, {"password", "y"}}).status == 401);
  CHECK(limited.post("/auth/login", {{"username", "x"}, {"password", "y"}}).status == 429);
}

TEST_CASE("SIGTERM stops the server cleanly with exit status 0") {
  LatchProcess latch;
  int status = latch.stop(15);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("latch serve --help prints the serve help and exits 0") {
  for (const std::vector<std::string> &args : {std::vector<std::string>{"serve", "--help"},
                                               {"serve", "-h"},
                                               {"serve", "--db", "x.db", "--help"}}) {
    CommandResult r = run_latch(args);
    CHECK(r.status == 0);
    CHECK(r.output.find("Usage:") != std::string::npos);
    CHECK(r.output.find("--tls-cert") != std::string::npos);
    CHECK(r.output.find("unknown flag") == std::string::npos);
  }
}

namespace {

// A self-signed EC certificate for 127.0.0.1 and its key, made with the openssl command.
void make_certificate(const std::string &cert, const std::string &key) {
  std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                    "-days 1 -subj /CN=127.0.0.1 -keyout " +
                    key + " -out " + cert + " 2>/dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
}

std::size_t count_lines(const std::string &text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

} // namespace

TEST_CASE("bad TLS files stop the server with one message naming the file, exit 2, before the "
          "database is made") {
  TempDir dir;
  const std::string cert = dir.file("cert.pem"), key = dir.file("key.pem");
  const std::string other_cert = dir.file("other-cert.pem"), other_key = dir.file("other-key.pem");
  make_certificate(cert, key);
  make_certificate(other_cert, other_key);
  const std::string garbage = dir.file("garbage.pem"), missing = dir.file("missing.pem");
  std::ofstream(garbage) << "not a certificate\n";
  struct Case {
    std::string cert, key, file, problem;
  };
  const std::vector<Case> cases = {
      {missing, key, missing, "cannot read"},
      {cert, missing, missing, "cannot read"},
      {dir.path(), key, dir.path(), "cannot read"},
      {garbage, key, garbage, "not a PEM certificate"},
      {key, cert, key, "not a PEM certificate"}, // the two swapped
      {cert, garbage, garbage, "not a PEM private key"},
      {cert, other_key, other_key, "not the key of the certificate in " + cert},
  };
  for (const auto &c : cases) {
    CAPTURE(c.cert);
    CAPTURE(c.key);
    const std::string db = dir.file(unique("tls") + ".db");
    CommandResult r = run_latch(
        {"serve", "--addr", "127.0.0.1:0", "--db", db, "--tls-cert", c.cert, "--tls-key", c.key});
    CAPTURE(r.output);
    CHECK(r.status == 2);
    CHECK(count_lines(r.output) == 1);
    CHECK(r.output.find(c.file) != std::string::npos);
    CHECK(r.output.find(c.problem) != std::string::npos);
    CHECK(r.output.find("cannot listen") == std::string::npos);
    CHECK_FALSE(std::filesystem::exists(db));
  }
}
