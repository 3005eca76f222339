// One Config: defaults, then LATCH_* environment variables, then flags (flags win); validated.
#pragma once

#include "auth/address_set.h"
#include "auth/password.h"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

namespace latch {

// The APIs' ids, in the order of their rows. All else about an API (name, prefixes, lifetimes,
// error shape, routes) is its row (auth/apis/api.h), the one list of the APIs; these read it.
enum class Api { picflux, simplejwt, flask, v1, envelope };
const char *api_name(Api api);
std::optional<Api> api_from_name(const std::string &name);

struct Lifetimes {
  std::int64_t access = 0;  // seconds
  std::int64_t refresh = 0; // seconds; 0 means the API issues no refresh token
};

// Every API, and each one's default lifetimes, from the rows.
std::set<Api> all_apis();
std::map<Api, Lifetimes> default_lifetimes();

struct Config {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string db_path = "./auth.db";
  // PRAGMA synchronous of the SQLite store (db::SqliteStore::Sync): full fsyncs every commit.
  enum class SqliteSync { normal, full };
  SqliteSync sqlite_sync = SqliteSync::normal;
  std::set<Api> apis = all_apis();

  bool reset_token_in_response = false;  // flask forget-password answers the token (development)
  bool verify_token_in_response = false; // v1 register answers verifyToken (development)
  bool require_verified_email = false;
  std::size_t password_min_length = 8;
  std::size_t password_max_bytes = 1024; // refused before hashing
  int rate_limit = 60;                   // requests a minute per address; 0 = off
  int max_failed_logins = 10;            // per (identifier, address) in 15 minutes; 0 = off
  int mail_limit = 5;                    // reset/confirmation mails per account an hour; 0 = off
  AddressSet trusted_proxies;            // whose X-Forwarded-For names the client

  std::string jwt_secret;      // empty: generated at first start and kept in the database
  std::string jwt_alg;         // HS256, EdDSA, ES256, RS256: the alg of new keys; empty: HS256
  std::string jwt_private_key; // PEM file: the only signing key (like jwt_secret)
  std::int64_t standby_period = 10 * 60; // a standby key's wait before rotate activates it
  PasswordParams argon2;
  unsigned hash_concurrency = 0; // 0: as many as there are cores
  unsigned hash_queue = 64;

  std::string smtp_url, smtp_user, smtp_password;
  std::string mail_from = "latch@localhost";
  // The outbox's sender (auth/mail.h): one attempt's time limit, then the backoff after a
  // temporary failure (doubling from mail_retry up to mail_retry_max) and when it gives up.
  std::int64_t mail_timeout = 10;
  std::int64_t mail_retry = 30;
  std::int64_t mail_retry_max = 3600;
  std::int64_t mail_give_up = 86400;
  std::string public_url;         // empty: http(s)://HOST:PORT (never a request's Host)
  std::string reset_password_url; // empty: PUBLIC_URL/reset-password
  std::string api_version = "v0.0.1";

  std::map<Api, Lifetimes> lifetimes = default_lifetimes();
  std::int64_t reset_ttl = 15 * 60; // flask and the default
  std::int64_t v1_reset_ttl = 3600; // v1's document: one hour
  std::int64_t verify_email_ttl = 86400;
  // Seconds after a rotation within which the refresh token it replaced, presented again, gets
  // the session's current one instead of revoking the session (two tabs); 0: strict.
  std::int64_t refresh_reuse_interval = 10;

  std::size_t max_body_bytes = 64 * 1024;
  unsigned threads = 0;            // 0: one per core, at least 2
  unsigned max_connections = 1024; // open at once; the one idle longest makes room for more
  unsigned max_connections_per_address = 64; // from one client address (IPv6: a /64); 0 off
  int purge_interval = 60;                   // seconds between purges of expired rows
  // How long after expiring a row is purged: a wall clock stepped forward by up to this much
  // destroys nothing still valid in real time.
  std::int64_t purge_margin = 3600;

  // Operations
  enum class LogFormat { off, text, json };
  LogFormat log_format = LogFormat::text; // access log on stdout, one line a request
  bool metrics = false;                   // GET /metrics on the main listener
  std::string metrics_host;               // or on a listener of its own (--metrics-addr)
  int metrics_port = 0;
  std::vector<std::string> cors_origins; // "*" allows any origin (local development)
  std::string tls_cert, tls_key;         // both set: HTTPS instead of HTTP
  int shutdown_timeout = 10;             // seconds in-flight requests get after SIGTERM
  // The admin console at /_/ (auth/http/console.h): on unless --console off; it answers only
  // once an admin exists. Its sessions end after console_idle seconds unused.
  bool console = true;
  std::int64_t console_idle = 12 * 3600;

  std::string effective_public_url() const;
  std::string effective_reset_url() const;
};

// "900", "900s", "15m", "1h", "14d" -> seconds (1 s to 10 years); nullopt otherwise.
std::optional<std::int64_t> parse_duration(const std::string &text);

using EnvLookup = std::function<std::optional<std::string>(const std::string &)>;
EnvLookup process_env();

// Reads env then args (flags after "serve"). On a bad value returns the message naming it.
std::variant<Config, std::string> load_config(const std::vector<std::string> &args,
                                              const EnvLookup &env);

std::string config_help();

// What a server started with c should warn about at start, one line each: settings that work
// but probably not as meant (mail links naming a loopback address on a public server).
std::vector<std::string> config_warnings(const Config &c);

// Loads --tls-cert and --tls-key as the server will (OpenSSL): each must be readable and PEM,
// and the key must match the certificate. Returns one message naming the file and what is
// wrong with it, or nullopt (also without TLS). For serve only: the admin commands need no
// certificate.
std::optional<std::string> check_tls_files(const Config &c);

} // namespace latch
