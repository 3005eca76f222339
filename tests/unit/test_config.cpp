// Unit tests for auth/config: defaults, LATCH_* variables, flags, validation messages.
#include "auth/config.h"

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

using namespace latch;

namespace {

using Env = std::map<std::string, std::string>;
using Args = std::vector<std::string>;

EnvLookup fake_env(Env vars) {
  return [vars = std::move(vars)](const std::string &name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

Config load_ok(const Args &args, const Env &env = {}) {
  auto r = load_config(args, fake_env(env));
  if (auto *err = std::get_if<std::string>(&r)) FAIL_CHECK("unexpected config error: " << *err);
  REQUIRE(std::holds_alternative<Config>(r));
  return std::get<Config>(r);
}

std::string load_error(const Args &args, const Env &env = {}) {
  auto r = load_config(args, fake_env(env));
  REQUIRE(std::holds_alternative<std::string>(r));
  return std::get<std::string>(r);
}

bool starts_with(const std::string &s, const std::string &prefix) {
  return s.rfind(prefix, 0) == 0;
}

const std::string kSecret32 = "0123456789abcdef0123456789abcdef"; // exactly 32 characters

} // namespace

TEST_CASE("with no flags and no environment the defaults apply") {
  Config c = load_ok({});
  CHECK(c.host == "127.0.0.1");
  CHECK(c.port == 8080);
  CHECK(c.db_path == "./auth.db");
  CHECK(c.apis == all_apis());
  CHECK(c.apis.size() == 5);
  CHECK_FALSE(c.reset_token_in_response);
  CHECK_FALSE(c.verify_token_in_response);
  CHECK_FALSE(c.require_verified_email);
  CHECK(c.password_min_length == 8);
  CHECK(c.rate_limit == 60);
  CHECK(c.max_failed_logins == 10);
  CHECK(c.mail_limit == 5);
  CHECK(c.jwt_secret.empty());
  CHECK(c.argon2.memory_kib == 19456);
  CHECK(c.argon2.iterations == 2);
  CHECK(c.hash_concurrency >= 1);
  CHECK(c.hash_queue == 64);
  CHECK(c.threads >= 2); // one per core without TLS
  CHECK(c.smtp_url.empty());
  CHECK(c.mail_from == "latch@localhost");
  CHECK(c.api_version == "v0.0.1");
  CHECK(c.reset_ttl == 900);
  CHECK(c.v1_reset_ttl == 3600);
  CHECK(c.verify_email_ttl == 86400);
  CHECK(c.max_body_bytes == 65536);
  CHECK(c.effective_public_url() == "http://127.0.0.1:8080");
  CHECK(c.effective_reset_url() == "http://127.0.0.1:8080/reset-password");
}

TEST_CASE("default token lifetimes are the ones SPEC.md gives each API") {
  Config c = load_ok({});
  CHECK(c.lifetimes.at(Api::picflux).access == 900);
  CHECK(c.lifetimes.at(Api::picflux).refresh == 1209600);
  CHECK(c.lifetimes.at(Api::simplejwt).access == 300);
  CHECK(c.lifetimes.at(Api::simplejwt).refresh == 86400);
  CHECK(c.lifetimes.at(Api::flask).access == 3600);
  CHECK(c.lifetimes.at(Api::flask).refresh == 2592000);
  CHECK(c.lifetimes.at(Api::v1).access == 3600);
  CHECK(c.lifetimes.at(Api::v1).refresh == 259200);
  CHECK(c.lifetimes.at(Api::envelope).access == 3600);
  CHECK(c.lifetimes.at(Api::envelope).refresh == 0);
}

TEST_CASE("LATCH_* environment variables are applied") {
  Config c = load_ok({}, {{"LATCH_ADDR", "0.0.0.0:9000"},
                          {"LATCH_DB", "/var/lib/latch/auth.db"},
                          {"LATCH_APIS", "flask,v1"},
                          {"LATCH_RATE_LIMIT", "5"},
                          {"LATCH_MAX_FAILED_LOGINS", "3"},
                          {"LATCH_MAIL_LIMIT", "0"},
                          {"LATCH_ARGON2_MEMORY_KIB", "1024"},
                          {"LATCH_ARGON2_ITERATIONS", "3"},
                          {"LATCH_RESET_TOKEN_IN_RESPONSE", "true"},
                          {"LATCH_SMTP_URL", "smtp://localhost:2525"},
                          {"LATCH_MAIL_FROM", "noreply@example.com"},
                          {"RESET_PASSWORD_URL", "https://app.example/reset"},
                          {"LATCH_JWT_SECRET", kSecret32},
                          {"LATCH_PICFLUX_ACCESS_TTL", "10m"},
                          {"LATCH_V1_REFRESH_TTL", "7d"},
                          {"LATCH_RESET_TOKEN_TTL", "30m"}});
  CHECK(c.host == "0.0.0.0");
  CHECK(c.port == 9000);
  CHECK(c.db_path == "/var/lib/latch/auth.db");
  CHECK(c.apis == std::set<Api>{Api::flask, Api::v1});
  CHECK(c.rate_limit == 5);
  CHECK(c.max_failed_logins == 3);
  CHECK(c.mail_limit == 0);
  CHECK(c.argon2.memory_kib == 1024);
  CHECK(c.argon2.iterations == 3);
  CHECK(c.reset_token_in_response);
  CHECK(c.smtp_url == "smtp://localhost:2525");
  CHECK(c.mail_from == "noreply@example.com");
  CHECK(c.jwt_secret == kSecret32);
  CHECK(c.lifetimes.at(Api::picflux).access == 600);
  CHECK(c.lifetimes.at(Api::picflux).refresh == 1209600);
  CHECK(c.lifetimes.at(Api::v1).refresh == 7 * 86400);
  CHECK(c.reset_ttl == 1800);
  // A wildcard listen address is not a place to send people: links use loopback.
  CHECK(c.effective_public_url() == "http://127.0.0.1:9000");
  CHECK(c.effective_reset_url() == "https://app.example/reset");
}

TEST_CASE("a flag wins over the environment variable for the same setting") {
  Config c = load_ok({"--rate-limit", "7", "--db=/tmp/flag.db", "--apis", "envelope"},
                     {{"LATCH_RATE_LIMIT", "5"},
                      {"LATCH_DB", "/tmp/env.db"},
                      {"LATCH_APIS", "picflux"},
                      {"LATCH_ARGON2_ITERATIONS", "4"}});
  CHECK(c.rate_limit == 7);
  CHECK(c.db_path == "/tmp/flag.db");
  CHECK(c.apis == std::set<Api>{Api::envelope});
  CHECK(c.argon2.iterations == 4); // no flag given: the variable stands
}

TEST_CASE("a flag's value may follow an equals sign or come as the next argument") {
  Config a = load_ok({"--addr=10.0.0.5:8443"});
  CHECK(a.host == "10.0.0.5");
  CHECK(a.port == 8443);
  Config b = load_ok({"--addr", "10.0.0.6:8444"});
  CHECK(b.host == "10.0.0.6");
  CHECK(b.port == 8444);
  Config c = load_ok({"--argon2-memory-kib=64", "--argon2-iterations", "1"});
  CHECK(c.argon2.memory_kib == 64);
  CHECK(c.argon2.iterations == 1);
  Config d = load_ok({"--mail-from", "a=b@example.com"});
  CHECK(d.mail_from == "a=b@example.com");
}

TEST_CASE("a boolean switch is true when bare and takes an explicit value after an equals sign") {
  CHECK(load_ok({"--reset-token-in-response"}).reset_token_in_response);
  CHECK_FALSE(load_ok({"--reset-token-in-response=false"}).reset_token_in_response);
  CHECK_FALSE(load_ok({"--reset-token-in-response=no"}, {{"LATCH_RESET_TOKEN_IN_RESPONSE", "1"}})
                  .reset_token_in_response);
  CHECK(load_ok({"--require-verified-email=on"}).require_verified_email);
  CHECK(load_ok({"--verify-token-in-response"}).verify_token_in_response);
  CHECK(load_ok({}, {{"LATCH_VERIFY_TOKEN_IN_RESPONSE", "true"}}).verify_token_in_response);
  CHECK_FALSE(load_ok({"--verify-token-in-response=0"}, {{"LATCH_VERIFY_TOKEN_IN_RESPONSE", "1"}})
                  .verify_token_in_response);
  CHECK(load_ok({}, {{"LATCH_REQUIRE_VERIFIED_EMAIL", "YES"}}).require_verified_email);
  std::string err = load_error({"--reset-token-in-response=maybe"});
  CHECK(starts_with(err, "--reset-token-in-response:"));
}

TEST_CASE("durations accept plain seconds and s, m, h, d suffixes") {
  Config c = load_ok({"--picflux-access-ttl", "15m", "--flask-access-ttl", "2h", "--v1-refresh-ttl",
                      "3d", "--simplejwt-access-ttl", "90", "--envelope-access-ttl=45s",
                      "--reset-token-ttl=1h"});
  CHECK(c.lifetimes.at(Api::picflux).access == 900);
  CHECK(c.lifetimes.at(Api::flask).access == 7200);
  CHECK(c.lifetimes.at(Api::v1).refresh == 259200);
  CHECK(c.lifetimes.at(Api::simplejwt).access == 90);
  CHECK(c.lifetimes.at(Api::envelope).access == 45);
  CHECK(c.reset_ttl == 3600);
}

TEST_CASE("malformed or non-positive durations are refused naming the flag") {
  for (const char *bad : {"0", "-5m", "1.5h", "15x", "m", "15M", "1w", " 15m", "0d"}) {
    CAPTURE(bad);
    std::string err = load_error({"--picflux-refresh-ttl", bad});
    CHECK(starts_with(err, "--picflux-refresh-ttl:"));
  }
  std::string env_err = load_error({}, {{"LATCH_FLASK_ACCESS_TTL", "soon"}});
  CHECK(starts_with(env_err, "LATCH_FLASK_ACCESS_TTL:"));
  // More than ten years is refused rather than overflowing.
  CHECK(starts_with(load_error({"--v1-access-ttl", "4000d"}), "--v1-access-ttl:"));
}

TEST_CASE("a bad number is refused with a message naming the flag or the variable") {
  CHECK(starts_with(load_error({"--rate-limit", "abc"}), "--rate-limit:"));
  CHECK(starts_with(load_error({"--rate-limit=-1"}), "--rate-limit:"));
  CHECK(starts_with(load_error({"--rate-limit", "12abc"}), "--rate-limit:"));
  CHECK(starts_with(load_error({"--hash-concurrency", "0"}), "--hash-concurrency:"));
  CHECK(starts_with(load_error({}, {{"LATCH_ARGON2_MEMORY_KIB", "lots"}}),
                    "LATCH_ARGON2_MEMORY_KIB:"));
  // libsodium's minimum is 8 KiB.
  CHECK(
      starts_with(load_error({}, {{"LATCH_ARGON2_MEMORY_KIB", "4"}}), "LATCH_ARGON2_MEMORY_KIB:"));
  CHECK(
      starts_with(load_error({}, {{"LATCH_ARGON2_ITERATIONS", "0"}}), "LATCH_ARGON2_ITERATIONS:"));
  CHECK(starts_with(load_error({}, {{"LATCH_RATE_LIMIT", ""}}), "LATCH_RATE_LIMIT:"));
  CHECK(starts_with(load_error({"--max-body-bytes", "99999999999999999999"}), "--max-body-bytes:"));
}

TEST_CASE("bad addresses and URLs are refused naming the flag or the variable") {
  CHECK(starts_with(load_error({"--addr", "localhost"}), "--addr:"));
  CHECK(starts_with(load_error({"--addr", "localhost:70000"}), "--addr:"));
  CHECK(starts_with(load_error({"--addr", ":8080"}), "--addr:"));
  CHECK(starts_with(load_error({}, {{"LATCH_ADDR", "127.0.0.1:http"}}), "LATCH_ADDR:"));
  CHECK(starts_with(load_error({"--public-url", "ftp://example.com"}), "--public-url:"));
  CHECK(starts_with(load_error({}, {{"RESET_PASSWORD_URL", "example.com/reset"}}),
                    "RESET_PASSWORD_URL:"));
  CHECK(
      starts_with(load_error({}, {{"LATCH_SMTP_URL", "http://mail.example"}}), "LATCH_SMTP_URL:"));
}

TEST_CASE("an IPv6 address in brackets is accepted and bracketed again in links") {
  Config c = load_ok({"--addr", "[::1]:9000"});
  CHECK(c.host == "::1");
  CHECK(c.port == 9000);
  CHECK(c.effective_public_url() == "http://[::1]:9000");
  Config p = load_ok({"--public-url", "https://auth.example"});
  CHECK(p.effective_public_url() == "https://auth.example");
  CHECK(p.effective_reset_url() == "https://auth.example/reset-password");
}

TEST_CASE("links say https with TLS, and any address names the loopback one") {
  Config tls = load_ok({"--tls-cert", "c.pem", "--tls-key", "k.pem"});
  CHECK(tls.effective_public_url() == "https://127.0.0.1:8080");
  CHECK(tls.effective_reset_url() == "https://127.0.0.1:8080/reset-password");
  CHECK(load_ok({"--addr", "0.0.0.0:9000"}).effective_public_url() == "http://127.0.0.1:9000");
  CHECK(load_ok({"--addr", "[::]:9000"}).effective_public_url() == "http://[::1]:9000");
}

TEST_CASE("mail on a public address without --public-url is warned about; loopback is not") {
  const Env smtp = {{"LATCH_SMTP_URL", "smtp://mail.example:587"}};
  for (const char *addr : {"0.0.0.0:8080", "[::]:8080", "192.0.2.7:8080", "auth.example:8080"}) {
    CAPTURE(addr);
    auto warnings = config_warnings(load_ok({"--addr", addr}, smtp));
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find("--public-url") != std::string::npos);
  }
  for (const char *addr : {"127.0.0.1:8080", "127.0.0.2:8080", "[::1]:8080", "localhost:8080"}) {
    CAPTURE(addr);
    CHECK(config_warnings(load_ok({"--addr", addr}, smtp)).empty());
  }
  CHECK(config_warnings(load_ok({"--addr", "0.0.0.0:8080"})).empty()); // no mail: no links
  CHECK(config_warnings(
            load_ok({"--addr", "0.0.0.0:8080", "--public-url", "https://a.example"}, smtp))
            .empty());
}

TEST_CASE("a token answered instead of mailed is warned about at start, a line a flag") {
  CHECK(config_warnings(load_ok({})).empty());
  auto reset = config_warnings(load_ok({"--reset-token-in-response"}));
  REQUIRE(reset.size() == 1);
  CHECK(reset[0].find("--reset-token-in-response") != std::string::npos);
  CHECK(reset[0].find("local development only") != std::string::npos);
  auto verify = config_warnings(load_ok({}, {{"LATCH_VERIFY_TOKEN_IN_RESPONSE", "1"}}));
  REQUIRE(verify.size() == 1);
  CHECK(verify[0].find("--verify-token-in-response") != std::string::npos);
  CHECK(verify[0].find("local development only") != std::string::npos);
  CHECK(config_warnings(load_ok({"--reset-token-in-response", "--verify-token-in-response"}))
            .size() == 2);
}

TEST_CASE("an unknown flag, a stray argument and a missing value are refused") {
  std::string unknown = load_error({"--bogus"});
  CHECK(unknown.find("--bogus") != std::string::npos);
  CHECK(starts_with(unknown, "unknown flag --bogus"));
  CHECK(starts_with(load_error({"--bogus=1"}), "unknown flag --bogus "));
  CHECK(load_error({"extra"}).find("'extra'") != std::string::npos);
  CHECK(load_error({"-db", "x"}).find("'-db'") != std::string::npos);
  std::string missing = load_error({"--db"});
  CHECK(starts_with(missing, "--db needs a value"));
  // envelope issues no refresh token, so it has no refresh lifetime to set.
  CHECK(starts_with(load_error({"--envelope-refresh-ttl", "1d"}),
                    "unknown flag --envelope-refresh-ttl"));
}

TEST_CASE("--apis takes a subset, trims spaces, knows all, and refuses unknown names") {
  CHECK(load_ok({"--apis", "picflux,v1"}).apis == std::set<Api>{Api::picflux, Api::v1});
  CHECK(load_ok({"--apis", " flask , envelope "}).apis == std::set<Api>{Api::flask, Api::envelope});
  CHECK(load_ok({"--apis=simplejwt,simplejwt"}).apis == std::set<Api>{Api::simplejwt});
  CHECK(load_ok({"--apis", "all"}).apis.size() == 5);

  std::string err = load_error({"--apis", "picflux,oauth"});
  CHECK(starts_with(err, "--apis:"));
  CHECK(err.find("'oauth'") != std::string::npos);
  CHECK(starts_with(load_error({"--apis", ","}), "--apis:"));
  CHECK(starts_with(load_error({"--apis", "Picflux"}), "--apis:"));
  CHECK(starts_with(load_error({}, {{"LATCH_APIS", "v2"}}), "LATCH_APIS:"));
}

TEST_CASE("api names map both ways") {
  for (Api a : all_apis()) {
    auto back = api_from_name(api_name(a));
    REQUIRE(back.has_value());
    CHECK(*back == a);
  }
  CHECK(std::string(api_name(Api::simplejwt)) == "simplejwt");
  CHECK_FALSE(api_from_name("").has_value());
  CHECK_FALSE(api_from_name("V1").has_value());
}

TEST_CASE("LATCH_JWT_SECRET shorter than 32 characters is refused, 32 is accepted") {
  std::string err = load_error({}, {{"LATCH_JWT_SECRET", kSecret32.substr(0, 31)}});
  CHECK(starts_with(err, "LATCH_JWT_SECRET:"));
  CHECK(err.find("32") != std::string::npos);
  CHECK(load_ok({}, {{"LATCH_JWT_SECRET", kSecret32}}).jwt_secret == kSecret32);
  CHECK(load_ok({}, {{"LATCH_JWT_SECRET", kSecret32 + kSecret32}}).jwt_secret.size() == 64);
}

TEST_CASE("the help text lists every flag with its variable") {
  std::string help = config_help();
  for (const char *s :
       {"--addr", "LATCH_ADDR", "--db", "LATCH_DB", "--apis", "--rate-limit", "LATCH_RATE_LIMIT",
        "--argon2-memory-kib", "LATCH_ARGON2_MEMORY_KIB", "--reset-token-in-response",
        "--verify-token-in-response", "LATCH_VERIFY_TOKEN_IN_RESPONSE", "RESET_PASSWORD_URL",
        "LATCH_JWT_SECRET", "--picflux-access-ttl", "LATCH_PICFLUX_REFRESH_TTL",
        "--envelope-access-ttl"}) {
    CAPTURE(s);
    CHECK(help.find(s) != std::string::npos);
  }
  CHECK(help.find("--envelope-refresh-ttl") == std::string::npos);
}

TEST_CASE("the mail sender's flags: defaults, durations, and a retry ceiling below the first wait "
          "refused") {
  Config d = load_ok({});
  CHECK(d.mail_timeout == 10);
  CHECK(d.mail_retry == 30);
  CHECK(d.mail_retry_max == 3600);
  CHECK(d.mail_give_up == 86400);
  Config c = load_ok({"--mail-timeout", "2m", "--mail-retry", "1", "--mail-retry-max", "5m"},
                     {{"LATCH_MAIL_GIVE_UP", "2d"}});
  CHECK(c.mail_timeout == 120);
  CHECK(c.mail_retry == 1);
  CHECK(c.mail_retry_max == 300);
  CHECK(c.mail_give_up == 2 * 86400);
  CHECK(starts_with(load_error({"--mail-retry", "10m", "--mail-retry-max", "1m"}),
                    "--mail-retry-max:"));
  CHECK(starts_with(load_error({"--mail-timeout", "0"}), "--mail-timeout:"));
  CHECK(starts_with(load_error({"--mail-timeout", "2h"}), "--mail-timeout:"));
}

TEST_CASE("--refresh-reuse-interval: 10 s by default, 0 strict, at most an hour") {
  CHECK(load_ok({}).refresh_reuse_interval == 10);
  CHECK(load_ok({"--refresh-reuse-interval", "0"}).refresh_reuse_interval == 0);
  CHECK(load_ok({"--refresh-reuse-interval=30s"}).refresh_reuse_interval == 30);
  CHECK(load_ok({}, {{"LATCH_REFRESH_REUSE_INTERVAL", "1h"}}).refresh_reuse_interval == 3600);
  for (const char *bad : {"-1", "2h", "soon", "1.5s", ""}) {
    CAPTURE(bad);
    CHECK(starts_with(load_error({"--refresh-reuse-interval", bad}), "--refresh-reuse-interval:"));
  }
  CHECK(starts_with(load_error({}, {{"LATCH_REFRESH_REUSE_INTERVAL", "61m"}}),
                    "LATCH_REFRESH_REUSE_INTERVAL:"));
  CHECK(config_help().find("--refresh-reuse-interval DURATION") != std::string::npos);
}

TEST_CASE("--sqlite-sync: normal by default, full when asked, anything else refused") {
  CHECK(load_ok({}).sqlite_sync == Config::SqliteSync::normal);
  CHECK(load_ok({"--sqlite-sync", "full"}).sqlite_sync == Config::SqliteSync::full);
  CHECK(load_ok({"--sqlite-sync=normal"}, {{"LATCH_SQLITE_SYNC", "full"}}).sqlite_sync ==
        Config::SqliteSync::normal);
  CHECK(load_ok({}, {{"LATCH_SQLITE_SYNC", "full"}}).sqlite_sync == Config::SqliteSync::full);
  for (const char *bad : {"FULL", "off", "extra", "2", ""}) {
    CAPTURE(bad);
    CHECK(load_error({"--sqlite-sync", bad}) == "--sqlite-sync: must be normal or full");
  }
  CHECK(load_error({}, {{"LATCH_SQLITE_SYNC", "fsync"}}) ==
        "LATCH_SQLITE_SYNC: must be normal or full");
  CHECK(config_help().find("--sqlite-sync MODE") != std::string::npos);
}

TEST_CASE("--db-pool and --db-statement-timeout: defaults, flags over variables, bad values "
          "refused naming them") {
  CHECK(load_ok({}).db_pool == 4);
  CHECK(load_ok({}).db_statement_timeout_ms == 5000);
  CHECK(load_ok({"--db-pool", "12"}).db_pool == 12);
  CHECK(load_ok({"--db-pool=2"}, {{"LATCH_DB_POOL", "9"}}).db_pool == 2);
  CHECK(load_ok({}, {{"LATCH_DB_POOL", "9"}}).db_pool == 9);
  CHECK(load_ok({"--db-statement-timeout", "250ms"}).db_statement_timeout_ms == 250);
  CHECK(load_ok({"--db-statement-timeout", "3s"}).db_statement_timeout_ms == 3000);
  CHECK(load_ok({"--db-statement-timeout", "2"}).db_statement_timeout_ms == 2000);
  CHECK(load_ok({}, {{"LATCH_DB_STATEMENT_TIMEOUT", "1m"}}).db_statement_timeout_ms == 60000);
  CHECK(load_ok({"--db-statement-timeout=1h"}).db_statement_timeout_ms == 3600000);
  for (const char *bad : {"0", "-1", "1001", "four", "", "4 "}) {
    CAPTURE(bad);
    CHECK(starts_with(load_error({"--db-pool", bad}), "--db-pool: must be a whole number"));
  }
  CHECK(starts_with(load_error({}, {{"LATCH_DB_POOL", "0"}}), "LATCH_DB_POOL:"));
  for (const char *bad : {"0", "9ms", "0ms", "2h", "61m", "5x", "ms", "", "-5s", "1.5s"}) {
    CAPTURE(bad);
    CHECK(load_error({"--db-statement-timeout", bad}) ==
          "--db-statement-timeout: must be a duration from 10ms to 1h, such as 500ms, 5s or 1m");
  }
  CHECK(starts_with(load_error({}, {{"LATCH_DB_STATEMENT_TIMEOUT", "forever"}}),
                    "LATCH_DB_STATEMENT_TIMEOUT:"));
  CHECK(config_help().find("--db-pool N") != std::string::npos);
  CHECK(config_help().find("--db-statement-timeout DURATION") != std::string::npos);
}
