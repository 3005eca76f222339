// AuthService's part for the admin console: admins, their sign-in and sessions, and what the
// console's pages read. The console's actions on users are the service's own methods.
#include "auth/identity.h"
#include "auth/secure.h"
#include "auth/service.h"

#include <algorithm>

namespace latch {

namespace {

// Admins are counted by the sign-in throttle under keys no user identifier can have (a
// username or email holds no space), so an admin and a user of one address never share a lock.
std::string admin_identifier(const std::string &email) {
  return "admin " + identifier_key(email);
}

SignInThrottle::Account admin_account(const db::Admin &admin) {
  return {"admin " + admin.id, admin.password_hash, {admin_identifier(admin.email)}};
}

} // namespace

Result<db::Admin> AuthService::add_admin(const std::string &email, const std::string &password) {
  Canonical key = canonical_email(email);
  if (!key) return Error{ErrorCode::invalid_email, "email"};
  if (auto bad = check_password(password)) return Error{*bad, "password"};
  auto hash = hasher_.hash(password);
  if (!hash) return hash.error();
  db::Admin admin{secure::uuid_v4(), key.key, hash.value(), now()};
  if (!store_.insert_admin(admin)) return Error{ErrorCode::user_exists, "email"};
  return admin;
}

std::vector<db::Admin> AuthService::list_admins() {
  return store_.list_admins();
}

bool AuthService::delete_admin(const std::string &email) {
  Canonical key = canonical_email(email);
  return store_.delete_admin(key ? key.key : lower_ascii(email));
}

bool AuthService::has_admins() {
  return store_.count_admins() > 0;
}

Result<AuthService::ConsoleLogin> AuthService::console_sign_in(const std::string &email,
                                                               const std::string &password,
                                                               const Caller &caller) {
  Canonical key = canonical_email(email);
  std::optional<db::Admin> admin;
  if (key) admin = store_.find_admin_by_email(key.key);
  // The APIs' lockout: failures per (identifier, address) and per identifier, refused before
  // any hash once locked.
  auto attempt = sign_in_throttle_.begin(
      admin_identifier(email), caller.address,
      admin ? std::optional(admin_account(*admin)) : std::nullopt, elapsed());
  if (int wait = attempt.refused()) return Error{ErrorCode::account_locked, "", wait};
  auto failure = [&] {
    attempt.failed();
    return Error{ErrorCode::invalid_credentials, ""};
  };
  if (password.size() > config_.password_max_bytes) return failure();
  if (!admin) {
    // The same cost as a wrong password: timing tells nobody which admins exist.
    if (auto burned = hasher_.burn(password, caller.may_wait_for_hash); !burned)
      return burned.error();
    return failure();
  }
  auto verdict = hasher_.verify(admin->password_hash, password, caller.may_wait_for_hash);
  if (!verdict) return verdict.error();
  if (!verdict->match) return failure();
  attempt.succeeded(admin->password_hash);

  // The cookie carries the token; the database keeps only its hash, so a copy of it (a
  // backup) signs nobody in.
  ConsoleLogin login{*admin, secure::random_token(32), secure::random_token(32)};
  const std::int64_t t = now();
  store_.insert_console_session({secure::sha256_hex(login.token), admin->id, admin->email,
                                 login.csrf_token, t, t, t + config_.console_idle});
  return login;
}

std::optional<db::ConsoleSession> AuthService::console_session(const std::string &token) {
  if (token.empty() || token.size() > 256) return std::nullopt;
  const std::string hash = secure::sha256_hex(token);
  auto session = store_.find_console_session(hash);
  if (!session) return std::nullopt;
  const std::int64_t t = now();
  if (session->expires_at <= t) {
    store_.delete_console_session(hash);
    return std::nullopt;
  }
  // Sliding: each use moves the idle limit (at most one write a second).
  if (t > session->last_seen_at) {
    session->last_seen_at = t;
    session->expires_at = t + config_.console_idle;
    store_.touch_console_session(hash, t, session->expires_at);
  }
  return session;
}

void AuthService::console_sign_out(const std::string &token) {
  store_.delete_console_session(secure::sha256_hex(token));
}

std::vector<db::User> AuthService::page_users(const std::string &search,
                                              const std::optional<db::UserCursor> &after,
                                              std::size_t limit) {
  std::string prefix;
  if (!search.empty()) {
    // As sign-in reads a name: the username's key, or the email lower-cased.
    Canonical key = canonical_username(search);
    prefix = key ? key.key : lower_ascii(search);
  }
  return store_.page_users(prefix, after, limit);
}

std::vector<db::AuditEvent> AuthService::audit_events(const db::AuditQuery &query) {
  return store_.query_audit(query);
}

AuthService::ConsoleFigures AuthService::console_figures() {
  ConsoleFigures f;
  f.users = store_.count_users();
  f.active_sessions = std::max<std::int64_t>(active_sessions(), 0);
  f.database_bytes = store_.database_bytes();
  return f;
}

nlohmann::json audit_event_json(const db::AuditEvent &e) {
  return {{"id", e.id},
          {"at", e.at},
          {"event", e.event},
          {"user_id", e.user_id ? nlohmann::json(*e.user_id) : nlohmann::json(nullptr)},
          {"identifier", e.identifier},
          {"api", e.api},
          {"address", e.address},
          {"user_agent", e.user_agent},
          {"request_id", e.request_id},
          {"actor", e.actor},
          {"detail", e.detail}};
}

} // namespace latch
