// Config: the option table, parsing of flags and LATCH_* variables, and validation.
#include "auth/config.h"

#include "auth/apis/api.h"
#include "auth/tls.h"
#include "auth/tokens.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <thread>
#include <variant>

namespace latch {

// The links in mail (reset, confirmation) start here. Never built from a request's Host
// header: anyone can send Host: evil.example with a reset request for a victim's address, and
// the victim would be mailed a genuine token on a link to the attacker's host (reset-link
// poisoning). Without --public-url it is the listening address, which is right only where
// users reach the server there: config_warnings says so when it is not loopback.
std::string Config::effective_public_url() const {
  if (!public_url.empty()) return public_url;
  std::string h = host;
  if (h.empty() || h == "0.0.0.0")
    h = "127.0.0.1";
  else if (h == "::")
    h = "::1";
  if (h.find(':') != std::string::npos) h = "[" + h + "]";
  return std::string(tls_cert.empty() ? "http" : "https") + "://" + h + ":" + std::to_string(port);
}

std::string Config::effective_reset_url() const {
  return reset_password_url.empty() ? effective_public_url() + "/reset-password"
                                    : reset_password_url;
}

EnvLookup process_env() {
  return [](const std::string &name) -> std::optional<std::string> {
    const char *v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

namespace {

using Setter = std::function<std::optional<std::string>(Config &, const std::string &)>;

struct Option {
  std::string flag; // without the leading --
  std::string env;
  std::string value_name; // empty: a boolean switch
  std::string help;
  Setter set;
};

std::optional<long long> parse_int(const std::string &s, long long lo, long long hi) {
  long long v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi)
    return std::nullopt;
  return v;
}

} // namespace

// "900", "900s", "15m", "1h", "14d" -> seconds.
std::optional<std::int64_t> parse_duration(const std::string &s) {
  if (s.empty()) return std::nullopt;
  std::int64_t unit = 1;
  std::string digits = s;
  switch (s.back()) {
  case 's':
    unit = 1;
    digits.pop_back();
    break;
  case 'm':
    unit = 60;
    digits.pop_back();
    break;
  case 'h':
    unit = 3600;
    digits.pop_back();
    break;
  case 'd':
    unit = 86400;
    digits.pop_back();
    break;
  default: break;
  }
  auto n = parse_int(digits, 1, 10LL * 365 * 86400);
  if (!n || *n * unit > 10LL * 365 * 86400) return std::nullopt;
  return *n * unit;
}

namespace {

std::optional<bool> parse_bool(const std::string &s) {
  std::string l = s;
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
  if (l == "1" || l == "true" || l == "yes" || l == "on" || l.empty()) return true;
  if (l == "0" || l == "false" || l == "no" || l == "off") return false;
  return std::nullopt;
}

std::vector<std::string> split_list(const std::string &s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

Setter int_setter(long long lo, long long hi, std::function<void(Config &, long long)> apply) {
  return [=](Config &c, const std::string &v) -> std::optional<std::string> {
    auto n = parse_int(v, lo, hi);
    if (!n)
      return "must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi);
    apply(c, *n);
    return std::nullopt;
  };
}

Setter duration_setter(std::function<void(Config &, std::int64_t)> apply) {
  return [=](Config &c, const std::string &v) -> std::optional<std::string> {
    auto d = parse_duration(v);
    if (!d) return "must be a positive duration such as 900, 15m, 1h or 14d";
    apply(c, *d);
    return std::nullopt;
  };
}

Setter bool_setter(std::function<void(Config &, bool)> apply) {
  return [=](Config &c, const std::string &v) -> std::optional<std::string> {
    auto b = parse_bool(v);
    if (!b) return "must be true or false";
    apply(c, *b);
    return std::nullopt;
  };
}

Setter string_setter(std::function<void(Config &, const std::string &)> apply) {
  return [=](Config &c, const std::string &v) -> std::optional<std::string> {
    apply(c, v);
    return std::nullopt;
  };
}

Setter url_setter(std::function<void(Config &, const std::string &)> apply) {
  return [=](Config &c, const std::string &v) -> std::optional<std::string> {
    if (v.rfind("http://", 0) != 0 && v.rfind("https://", 0) != 0)
      return "must be an http:// or https:// URL";
    apply(c, v);
    return std::nullopt;
  };
}

std::optional<std::string> set_addr(Config &c, const std::string &v) {
  size_t colon = v.rfind(':');
  if (colon == std::string::npos) return "must be HOST:PORT";
  std::string host = v.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  auto port = parse_int(v.substr(colon + 1), 0, 65535);
  if (host.empty() || !port) return "must be HOST:PORT with a port from 0 to 65535";
  c.host = host;
  c.port = static_cast<int>(*port);
  return std::nullopt;
}

std::optional<std::string> set_metrics_addr(Config &c, const std::string &v) {
  Config scratch; // the same HOST:PORT rules as --addr
  if (auto err = set_addr(scratch, v)) return err;
  c.metrics_host = scratch.host;
  c.metrics_port = scratch.port;
  return std::nullopt;
}

std::optional<std::string> set_log_format(Config &c, const std::string &v) {
  if (v == "off")
    c.log_format = Config::LogFormat::off;
  else if (v == "text")
    c.log_format = Config::LogFormat::text;
  else if (v == "json")
    c.log_format = Config::LogFormat::json;
  else
    return "must be text, json or off";
  return std::nullopt;
}

std::optional<std::string> set_sqlite_sync(Config &c, const std::string &v) {
  if (v == "normal")
    c.sqlite_sync = Config::SqliteSync::normal;
  else if (v == "full")
    c.sqlite_sync = Config::SqliteSync::full;
  else
    return "must be normal or full";
  return std::nullopt;
}

std::optional<std::string> set_cors_origins(Config &c, const std::string &v) {
  c.cors_origins = split_list(v);
  for (const auto &o : c.cors_origins)
    if (o != "*" && o.rfind("http://", 0) != 0 && o.rfind("https://", 0) != 0)
      return "'" + o + "' is not an origin like https://app.example.com (or *)";
  return std::nullopt;
}

// The APIs' names, in the rows' order, separated by separator.
std::string api_names(const char *separator) {
  std::string out;
  for (const apis::ApiRow &row : apis::api_rows())
    out += (out.empty() ? "" : separator) + std::string(row.name);
  return out;
}

std::optional<std::string> set_apis(Config &c, const std::string &v) {
  std::set<Api> apis;
  for (const auto &name : split_list(v)) {
    if (name == "all") {
      apis = all_apis();
      continue;
    }
    auto a = api_from_name(name);
    if (!a) return "unknown API '" + name + "' (known: " + api_names(", ") + ")";
    apis.insert(*a);
  }
  if (apis.empty()) return "must name at least one API";
  c.apis = apis;
  return std::nullopt;
}

const std::vector<Option> &options() {
  static const std::vector<Option> table = [] {
    std::vector<Option> t = {
        {"addr", "LATCH_ADDR", "HOST:PORT", "address to listen on (default 127.0.0.1:8080)",
         set_addr},
        {"db", "LATCH_DB", "PATH", "SQLite database file, created 0600 (default ./auth.db)",
         string_setter([](Config &c, const std::string &v) { c.db_path = v; })},
        {"sqlite-sync", "LATCH_SQLITE_SYNC", "MODE",
         "when a commit is on disk: normal (an answered write survives a crash of latch; the "
         "last ones may be lost at a power cut or OS crash, never half-applied) or full (an "
         "fsync at every commit: it survives those too) (default normal)",
         set_sqlite_sync},
        {"apis", "LATCH_APIS", "LIST",
         "APIs to serve: all, or some of " + api_names(",") + " (default all)", set_apis},
        {"reset-token-in-response", "LATCH_RESET_TOKEN_IN_RESPONSE", "",
         "flask forget-password answers the reset token itself (local development only)",
         bool_setter([](Config &c, bool b) { c.reset_token_in_response = b; })},
        {"verify-token-in-response", "LATCH_VERIFY_TOKEN_IN_RESPONSE", "",
         "v1 register answers the address-confirmation token as verifyToken (local development "
         "only)",
         bool_setter([](Config &c, bool b) { c.verify_token_in_response = b; })},
        {"require-verified-email", "LATCH_REQUIRE_VERIFIED_EMAIL", "",
         "v1 login refuses users whose email is not confirmed",
         bool_setter([](Config &c, bool b) { c.require_verified_email = b; })},
        {"password-min-length", "LATCH_PASSWORD_MIN_LENGTH", "N",
         "shortest password accepted, in characters (default 8)",
         int_setter(1, 1024, [](Config &c, long long n) { c.password_min_length = size_t(n); })},
        {"rate-limit", "LATCH_RATE_LIMIT", "N",
         "sign-in/sign-up/reset requests a minute per client address (default 60; 0 off)",
         int_setter(0, 1000000, [](Config &c, long long n) { c.rate_limit = int(n); })},
        {"max-failed-logins", "LATCH_MAX_FAILED_LOGINS", "N",
         "failed sign-ins as one username or email from one client address (an IPv6 /64) in "
         "15 minutes before that address gets 429 for it; 10 x N from all addresses together "
         "before every address gets 429 for it except those that signed in to its account in "
         "the last 30 days; a sign-in clears its address's count, a password reset all of the "
         "account's (default 10; 0 off)",
         int_setter(0, 1000000, [](Config &c, long long n) { c.max_failed_logins = int(n); })},
        {"mail-limit", "LATCH_MAIL_LIMIT", "N",
         "reset mails (and confirmation mails) per account an hour, at most one a minute; a "
         "request past it sends nothing (default 5; 0 off)",
         int_setter(0, 1000, [](Config &c, long long n) { c.mail_limit = int(n); })},
        {"trusted-proxy", "LATCH_TRUSTED_PROXY", "ADDR[,ADDR]",
         "reverse proxies (addresses or CIDR blocks) whose X-Forwarded-For names the client",
         [](Config &c, const std::string &v) -> std::optional<std::string> {
           std::string error;
           auto set = AddressSet::parse(split_list(v), &error);
           if (!set) return error;
           c.trusted_proxies = std::move(*set);
           return std::nullopt;
         }},
        {"argon2-memory-kib", "LATCH_ARGON2_MEMORY_KIB", "KIB",
         "argon2id memory cost (default 19456)",
         int_setter(8, 4 * 1024 * 1024,
                    [](Config &c, long long n) { c.argon2.memory_kib = uint32_t(n); })},
        {"argon2-iterations", "LATCH_ARGON2_ITERATIONS", "N", "argon2id time cost (default 2)",
         int_setter(1, 100, [](Config &c, long long n) { c.argon2.iterations = uint32_t(n); })},
        {"hash-concurrency", "LATCH_HASH_CONCURRENCY", "N",
         "password hashes run at once (default: number of cores)",
         int_setter(1, 1024, [](Config &c, long long n) { c.hash_concurrency = unsigned(n); })},
        {"hash-queue", "LATCH_HASH_QUEUE", "N",
         "sign-ins that may wait for a hashing slot before 503 (default 64)",
         int_setter(0, 100000, [](Config &c, long long n) { c.hash_queue = unsigned(n); })},
        {"smtp-url", "LATCH_SMTP_URL", "URL",
         "smtp://host:port or smtps://host:port; unset: mail is written to the log",
         [](Config &c, const std::string &v) -> std::optional<std::string> {
           if (!v.empty() && v.rfind("smtp://", 0) != 0 && v.rfind("smtps://", 0) != 0)
             return "must start with smtp:// or smtps://";
           c.smtp_url = v;
           return std::nullopt;
         }},
        {"smtp-user", "LATCH_SMTP_USER", "USER", "SMTP user name",
         string_setter([](Config &c, const std::string &v) { c.smtp_user = v; })},
        {"smtp-password", "LATCH_SMTP_PASSWORD", "PASSWORD", "SMTP password (prefer the variable)",
         string_setter([](Config &c, const std::string &v) { c.smtp_password = v; })},
        {"mail-from", "LATCH_MAIL_FROM", "ADDRESS", "sender address (default latch@localhost)",
         string_setter([](Config &c, const std::string &v) { c.mail_from = v; })},
        {"mail-timeout", "LATCH_MAIL_TIMEOUT", "DURATION",
         "longest one mail may take over SMTP, connecting included; a hung server is given up "
         "on then and tried again later (default 10s)",
         duration_setter([](Config &c, std::int64_t d) { c.mail_timeout = d; })},
        {"mail-retry", "LATCH_MAIL_RETRY", "DURATION",
         "wait after a mail's first temporary failure (SMTP 4xx, no connection, a time-out), "
         "doubled after each further one (default 30s; shorter for tests)",
         duration_setter([](Config &c, std::int64_t d) { c.mail_retry = d; })},
        {"mail-retry-max", "LATCH_MAIL_RETRY_MAX", "DURATION",
         "longest wait between two attempts at one mail (default 1h)",
         duration_setter([](Config &c, std::int64_t d) { c.mail_retry_max = d; })},
        {"mail-give-up", "LATCH_MAIL_GIVE_UP", "DURATION",
         "a mail still failing this long after it was queued fails for good; `latch mail retry` "
         "tries it again (default 1d)",
         duration_setter([](Config &c, std::int64_t d) { c.mail_give_up = d; })},
        {"public-url", "LATCH_PUBLIC_URL", "URL",
         "where users reach this server, for links in mail (default http(s)://ADDR)",
         url_setter([](Config &c, const std::string &v) { c.public_url = v; })},
        {"reset-password-url", "RESET_PASSWORD_URL", "URL",
         "reset link target, mailed as URL?token=TOKEN (default PUBLIC_URL/reset-password)",
         url_setter([](Config &c, const std::string &v) { c.reset_password_url = v; })},
        {"api-version", "LATCH_API_VERSION", "TEXT", "envelope's apiVersion (default v0.0.1)",
         string_setter([](Config &c, const std::string &v) { c.api_version = v; })},
        {"reset-token-ttl", "LATCH_RESET_TOKEN_TTL", "DURATION",
         "reset token lifetime (default 15m)",
         duration_setter([](Config &c, std::int64_t d) { c.reset_ttl = d; })},
        {"v1-reset-token-ttl", "LATCH_V1_RESET_TOKEN_TTL", "DURATION",
         "v1 reset token lifetime (default 1h)",
         duration_setter([](Config &c, std::int64_t d) { c.v1_reset_ttl = d; })},
        {"verify-email-ttl", "LATCH_VERIFY_EMAIL_TTL", "DURATION",
         "v1 email confirmation link lifetime (default 1d)",
         duration_setter([](Config &c, std::int64_t d) { c.verify_email_ttl = d; })},
        {"refresh-reuse-interval", "LATCH_REFRESH_REUSE_INTERVAL", "DURATION",
         "how long after a rotation the refresh token it replaced may come back once more (two "
         "tabs refreshing at once) and get the session's current refresh token instead of "
         "revoking the session as stolen; only the token rotated last (default 10s; 0 strict)",
         [](Config &c, const std::string &v) -> std::optional<std::string> {
           auto d = v == "0" ? std::optional<std::int64_t>(0) : parse_duration(v);
           // Longer leeway would be a replay window for a thief, not a race between tabs.
           if (!d || *d > 3600) return "must be 0 or a duration up to 1h, such as 10s";
           c.refresh_reuse_interval = *d;
           return std::nullopt;
         }},
        {"max-body-bytes", "LATCH_MAX_BODY_BYTES", "N",
         "largest request body accepted; larger gets 413 (default 65536)",
         int_setter(1024, 64 * 1024 * 1024,
                    [](Config &c, long long n) { c.max_body_bytes = size_t(n); })},
        {"threads", "LATCH_THREADS", "N",
         "HTTP worker threads kept running; more start while these are stuck (default: one per "
         "core, at least 2)",
         int_setter(1, 4096, [](Config &c, long long n) { c.threads = unsigned(n); })},
        {"max-connections", "LATCH_MAX_CONNECTIONS", "N",
         "connections open at once; past it the one idle longest is closed (default 1024)",
         int_setter(1, 65536, [](Config &c, long long n) { c.max_connections = unsigned(n); })},
        {"max-connections-per-address", "LATCH_MAX_CONNECTIONS_PER_ADDRESS", "N",
         "connections open at once from one client address, an IPv6 /64 counting as one; "
         "trusted proxies are not capped (default 64; 0 off)",
         int_setter(0, 65536,
                    [](Config &c, long long n) { c.max_connections_per_address = unsigned(n); })},
        {"log-format", "LATCH_LOG_FORMAT", "FORMAT",
         "access log on stdout: text, json (JSON lines) or off (default text)", set_log_format},
        {"metrics", "LATCH_METRICS", "", "serve GET /metrics (Prometheus text format)",
         bool_setter([](Config &c, bool b) { c.metrics = b; })},
        {"metrics-addr", "LATCH_METRICS_ADDR", "HOST:PORT",
         "serve /metrics on a listener of its own instead", set_metrics_addr},
        {"cors-origin", "LATCH_CORS_ORIGIN", "LIST",
         "origins allowed to call from a browser (comma-separated), or * for any (development)",
         set_cors_origins},
        {"tls-cert", "LATCH_TLS_CERT", "FILE",
         "PEM certificate chain: serve HTTPS (with --tls-key)",
         string_setter([](Config &c, const std::string &v) { c.tls_cert = v; })},
        {"tls-key", "LATCH_TLS_KEY", "FILE", "PEM private key for --tls-cert",
         string_setter([](Config &c, const std::string &v) { c.tls_key = v; })},
        {"console", "LATCH_CONSOLE", "on|off",
         "the admin console at /_/, served once `latch admin add` made an admin (default on)",
         [](Config &c, const std::string &v) -> std::optional<std::string> {
           if (v != "on" && v != "off") return "must be on or off";
           c.console = v == "on";
           return std::nullopt;
         }},
        {"console-idle", "LATCH_CONSOLE_IDLE", "DURATION",
         "a console session unused this long is signed out (default 12h)",
         duration_setter([](Config &c, std::int64_t d) { c.console_idle = d; })},
        {"shutdown-timeout", "LATCH_SHUTDOWN_TIMEOUT", "DURATION",
         "how long in-flight requests may finish after SIGTERM (default 10s)",
         duration_setter([](Config &c, std::int64_t d) { c.shutdown_timeout = int(d); })},
        {"jwt-alg", "LATCH_JWT_ALG", "ALG",
         "algorithm of new signing keys: HS256, EdDSA, ES256 or RS256 (asymmetric keys are "
         "published at /.well-known/jwks.json); changing it takes `latch secret rotate` "
         "(default HS256)",
         [](Config &c, const std::string &v) -> std::optional<std::string> {
           if (!jwt_alg_from_name(v)) return "must be HS256, EdDSA, ES256 or RS256";
           c.jwt_alg = v;
           return std::nullopt;
         }},
        {"jwt-private-key", "LATCH_JWT_PRIVATE_KEY", "FILE",
         "PEM private key (Ed25519, P-256 or RSA) that signs every token instead of the key "
         "ring in the database; its kid is its RFC 7638 thumbprint",
         string_setter([](Config &c, const std::string &v) { c.jwt_private_key = v; })},
        {"standby-period", "LATCH_STANDBY_PERIOD", "DURATION",
         "how long a standby key made by `latch secret rotate` is published before the next "
         "rotate makes it sign (default 10m)",
         duration_setter([](Config &c, std::int64_t d) { c.standby_period = d; })},
        {"purge-interval", "LATCH_PURGE_INTERVAL", "DURATION",
         "how often expired rows are deleted (default 60s)",
         duration_setter([](Config &c, std::int64_t d) { c.purge_interval = int(d); })},
        {"purge-margin", "LATCH_PURGE_MARGIN", "DURATION",
         "how long after expiring a row is purged, so a clock stepped forward by up to this much "
         "destroys nothing still valid (default 1h; 0 purges at once)",
         [](Config &c, const std::string &v) -> std::optional<std::string> {
           auto d = v == "0" ? std::optional<std::int64_t>(0) : parse_duration(v);
           if (!d) return "must be 0 or a duration such as 90s, 15m or 1h";
           c.purge_margin = *d;
           return std::nullopt;
         }},
    };
    for (const apis::ApiRow &row : apis::api_rows()) {
      const Api api = row.id;
      std::string name = row.name;
      std::string upper = name;
      std::transform(upper.begin(), upper.end(), upper.begin(),
                     [](unsigned char ch) { return std::toupper(ch); });
      t.push_back(
          {name + "-access-ttl", "LATCH_" + upper + "_ACCESS_TTL", "DURATION",
           name + " access token lifetime",
           duration_setter([api](Config &c, std::int64_t d) { c.lifetimes[api].access = d; })});
      // An API that issues no refresh token has no refresh lifetime to set.
      if (row.lifetimes.refresh > 0)
        t.push_back(
            {name + "-refresh-ttl", "LATCH_" + upper + "_REFRESH_TTL", "DURATION",
             name + " refresh token lifetime",
             duration_setter([api](Config &c, std::int64_t d) { c.lifetimes[api].refresh = d; })});
    }
    return t;
  }();
  return table;
}

} // namespace

std::variant<Config, std::string> load_config(const std::vector<std::string> &args,
                                              const EnvLookup &env) {
  Config c;
  for (const auto &opt : options()) {
    auto v = env(opt.env);
    if (!v) continue;
    if (auto err = opt.set(c, *v)) return opt.env + ": " + *err;
  }
  if (auto secret = env("LATCH_JWT_SECRET")) c.jwt_secret = *secret;

  for (size_t i = 0; i < args.size(); ++i) {
    const std::string &arg = args[i];
    if (arg.rfind("--", 0) != 0) return "unexpected argument '" + arg + "'";
    std::string name = arg.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    auto it = std::find_if(options().begin(), options().end(),
                           [&](const Option &o) { return o.flag == name; });
    if (it == options().end()) return "unknown flag --" + name + " (see latch --help)";
    if (!has_value) {
      if (it->value_name.empty()) {
        value = "true";
      } else {
        if (i + 1 >= args.size()) return "--" + name + " needs a value (" + it->value_name + ")";
        value = args[++i];
      }
    }
    if (auto err = it->set(c, value)) return "--" + name + ": " + *err;
  }

  if (c.tls_cert.empty() != c.tls_key.empty())
    return "--tls-cert and --tls-key: give both or neither";
  if (!c.jwt_secret.empty() && c.jwt_secret.size() < 32)
    return "LATCH_JWT_SECRET: must be at least 32 characters (256 bits)";
  if (!c.jwt_secret.empty() && !c.jwt_private_key.empty())
    return "LATCH_JWT_SECRET and --jwt-private-key: give one signing key, not both";
  for (const apis::ApiRow &row : apis::api_rows())
    if (c.lifetimes[row.id].access <= 0) return std::string(row.name) + " access TTL must be set";
  if (c.mail_timeout > 3600) return "--mail-timeout: must be at most 1h";
  if (c.mail_retry_max < c.mail_retry)
    return "--mail-retry-max: must be at least --mail-retry (" + std::to_string(c.mail_retry) +
           " s)";
  if (c.password_min_length > c.password_max_bytes)
    return "--password-min-length: must be at most " + std::to_string(c.password_max_bytes);
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  if (c.hash_concurrency == 0) c.hash_concurrency = cores;
  // A worker serves any ready connection, so one per core keeps every core busy
  // (auth/http/connection_loop.h), with TLS as without.
  if (c.threads == 0) c.threads = std::max(2u, cores);
  return c;
}

namespace {

bool is_loopback(const std::string &host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

} // namespace

std::vector<std::string> config_warnings(const Config &c) {
  std::vector<std::string> lines;
  // Each hands whoever calls the route a token that the mail was meant to prove the mailbox for.
  if (c.reset_token_in_response)
    lines.push_back("--reset-token-in-response is on: flask forget-password answers a reset token "
                    "to anyone who names an account's email; local development only");
  if (c.verify_token_in_response)
    lines.push_back("--verify-token-in-response is on: v1 register answers the address-"
                    "confirmation token, so addresses are confirmed without their mailbox; local "
                    "development only");
  if (!c.smtp_url.empty() && c.public_url.empty() && !is_loopback(c.host))
    lines.push_back("listening on " + c.host +
                    " with mail on (LATCH_SMTP_URL) but no "
                    "--public-url (LATCH_PUBLIC_URL): mailed reset and confirmation links "
                    "name " +
                    c.effective_public_url() +
                    ", which users elsewhere cannot open; "
                    "set --public-url to where users reach this server (Latch never takes it "
                    "from a request's Host header)");
  return lines;
}

std::optional<std::string> check_tls_files(const Config &c) {
  if (c.tls_cert.empty()) return std::nullopt;
  std::string error;
  SSL_CTX *ctx = load_tls_context(c.tls_cert, c.tls_key, &error);
  if (!ctx) return error;
  SSL_CTX_free(ctx);
  return std::nullopt;
}

std::string config_help() {
  std::ostringstream out;
  out << "Latch " LATCH_VERSION " - one binary serving five auth APIs over one SQLite file.\n\n"
         "Usage:\n"
         "  latch serve [FLAGS]   serve the APIs (the default command)\n"
         "  latch routes          print the route table\n"
         "  latch version         print the version\n"
         "  latch --help          this text\n\n"
         "Flags (each also read from its environment variable; a flag wins):\n";
  for (const auto &o : options()) {
    std::string left = "  --" + o.flag + (o.value_name.empty() ? "" : " " + o.value_name);
    out << left;
    if (left.size() < 40)
      out << std::string(40 - left.size(), ' ');
    else
      out << "\n" << std::string(40, ' ');
    out << o.help << " [" << o.env << "]\n";
  }
  out << "\nEnvironment only:\n"
         "  LATCH_JWT_SECRET                      HS256 signing secret, at least 32 characters;\n"
         "                                        unset: a random 256-bit secret is kept in the "
         "database\n";
  return out.str();
}

} // namespace latch
