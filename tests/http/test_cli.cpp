// The command line: help, version, routes, and configuration errors that stop the server.
#include "support/latch_process.h"

#include <doctest/doctest.h>

#include <sys/wait.h>

using namespace latch::test;

TEST_CASE("latch --help lists every flag with its environment variable") {
  CommandResult r = run_latch({"--help"});
  CHECK(r.status == 0);
  for (const char *text :
       {"--addr", "LATCH_ADDR", "--db", "LATCH_DB", "--apis", "--reset-token-in-response",
        "--password-min-length", "--rate-limit", "LATCH_RATE_LIMIT", "--max-failed-logins",
        "LATCH_MAX_FAILED_LOGINS", "--mail-limit", "LATCH_MAIL_LIMIT", "--trusted-proxy",
        "--require-verified-email", "LATCH_JWT_SECRET", "LATCH_ARGON2_MEMORY_KIB",
        "LATCH_ARGON2_ITERATIONS", "LATCH_SMTP_URL", "LATCH_MAIL_FROM", "RESET_PASSWORD_URL",
        "LATCH_API_VERSION", "--picflux-access-ttl", "LATCH_V1_REFRESH_TTL"}) {
    CAPTURE(text);
    CHECK(r.output.find(text) != std::string::npos);
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
