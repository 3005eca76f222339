// The auth core's rules: who may sign in, what a session is, what ends one.
#include "auth/service.h"

#include "auth/identity.h"
#include "auth/password_formats.h"
#include "auth/secure.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>

namespace latch {

Clock steady_clock() {
  return [] {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
}

Clock system_clock() {
  return [] {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
}

std::string lower_ascii(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::size_t utf8_length(const std::string &s) {
  return static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xc0) != 0x80; }));
}

bool valid_email(const std::string &email) {
  return bool(canonical_email(email));
}

bool valid_username(const std::string &username) {
  return bool(canonical_username(username));
}

Status set_identity(db::User &user, const std::string &username,
                    const std::optional<std::string> &email) {
  Canonical key = canonical_username(username);
  if (!key) return Error{ErrorCode::invalid_field, "username"};
  user.username = username;
  user.username_skeleton = username_skeleton(key.key);
  user.username_key = std::move(key.key);
  user.email.reset();
  if (email) {
    Canonical email_key = canonical_email(*email);
    if (!email_key) return Error{ErrorCode::invalid_email, "email"};
    user.email = std::move(email_key.key);
  }
  return Ok{};
}

std::optional<db::User> lookup_username(db::Users &store, const std::string &typed) {
  if (auto exact = store.find_user_by_username(typed)) return exact;
  Canonical key = canonical_username(typed);
  if (!key) return std::nullopt;
  return store.find_user_by_username_key(key.key);
}

std::optional<db::User> lookup_email(db::Users &store, const std::string &typed) {
  Canonical key = canonical_email(typed);
  // An address the WHATWG rule refuses can only be a row from before it, stored lower-cased.
  return store.find_user_by_email(key ? key.key : lower_ascii(typed));
}

// 150 characters of at most 4 bytes: longer than any username (or email, 254) can be.
constexpr std::size_t kMaxIdentifierBytes = 600;

std::string identifier_key(const std::string &identifier) {
  if (identifier.size() > kMaxIdentifierBytes) return "#" + secure::sha256_hex(identifier);
  // As sign-in reads it: look-alike spellings of one name share its count.
  if (auto key = canonical_username(identifier)) return key.key;
  return lower_ascii(identifier);
}

namespace {

// What the sign-in throttle knows of an account: its id, password and identifiers.
SignInThrottle::Account throttle_account(const db::User &user) {
  SignInThrottle::Account a{user.id, user.password_hash, {identifier_key(user.username)}};
  if (user.email) a.identifier_keys.push_back(identifier_key(*user.email));
  return a;
}

// Text from a request as the audit log keeps it: at most `max` bytes, cut at a character's
// start; control characters, and every byte of text that is not UTF-8, become '?', so each
// engine stores it and a reader's terminal shows it as it is.
std::string audit_text(const std::string &s, std::size_t max) {
  const bool utf8 = secure::valid_utf8(s);
  std::string out;
  out.reserve(std::min(s.size(), max));
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80 && utf8) {
      std::size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
      if (out.size() + n > max) break;
      out.append(s, i, n);
      i += n - 1;
      continue;
    }
    if (out.size() + 1 > max) break;
    out += c < 0x20 || c == 0x7f || c >= 0x80 ? '?' : static_cast<char>(c);
  }
  return out;
}

std::string describe_duration(std::int64_t seconds) {
  auto plural = [](std::int64_t n, const char *unit) {
    return std::to_string(n) + " " + unit + (n == 1 ? "" : "s");
  };
  if (seconds % 3600 == 0) return plural(seconds / 3600, "hour");
  if (seconds % 60 == 0) return plural(seconds / 60, "minute");
  return plural(seconds, "second");
}

} // namespace

AuthService::AuthService(const Config &config, db::Store &store, PasswordHasher &hasher,
                         const TokenCodec &codec, Mailer &mailer, Clock clock,
                         db::SessionCache *cache, Clock elapsed)
    : config_(config), store_(store), hasher_(hasher), codec_(codec), mailer_(mailer),
      clock_(std::move(clock)), elapsed_(elapsed ? std::move(elapsed) : clock_), cache_(cache),
      rotations_(store,
                 [this](const std::vector<db::Rotation> &batch, const db::RotatedBatch &done) {
                   if (cache_) cache_->rotated(batch, done);
                 }),
      audit_(store,
             [this](const std::vector<db::AuditEvent> &events) {
               std::lock_guard lock(audit_counts_mutex_);
               for (const auto &e : events)
                 ++audit_counts_[e.event];
             }),
      address_limit_(config.rate_limit, 60), sign_in_throttle_(config.max_failed_logins, &store),
      mail_limit_(config.mail_limit) {}

void AuthService::record(const std::string &event, const Caller &caller,
                         const std::optional<std::string> &user_id, const std::string &detail,
                         const std::string &identifier) {
  db::AuditEvent e;
  e.at = now();
  e.event = event;
  e.user_id = user_id;
  e.identifier = audit_text(identifier, 256);
  e.api = caller.api;
  e.address = audit_text(caller.address, 64);
  e.user_agent = audit_text(caller.user_agent, 256);
  e.request_id = audit_text(caller.request_id, 128);
  e.actor = audit_text(caller.actor, 256);
  e.detail = audit_text(detail, 512);
  audit_.append(std::move(e)); // committed before the request that caused it is answered
}

std::vector<std::pair<std::string, std::uint64_t>> AuthService::audit_counts() const {
  std::lock_guard lock(audit_counts_mutex_);
  return {audit_counts_.begin(), audit_counts_.end()};
}

void AuthService::written() {
  if (cache_) cache_->catch_up();
}

std::optional<db::Session> AuthService::live_session(const std::string &id) {
  if (cache_) return cache_->find_session(id);
  auto s = store_.find_session(id);
  if (s && s->revoked) return std::nullopt;
  return s;
}

std::optional<ErrorCode> password_problem(const Config &config, const std::string &password) {
  // Refused before hashing, so nobody can make the server hash megabytes.
  if (password.size() > config.password_max_bytes) return ErrorCode::password_too_long;
  if (utf8_length(password) < config.password_min_length) return ErrorCode::weak_password;
  return std::nullopt;
}

Result<SignedUp> AuthService::sign_up(const NewUser &in, const Caller &caller,
                                      const SignUpOptions &options) {
  db::User u;
  if (auto bad = set_identity(u, in.username, in.email); !bad) return bad.error();
  if (auto bad = check_password(in.password)) return Error{*bad, "password"};
  if ((options.confirm_email || options.answer_confirmation) && !u.email)
    return Error{ErrorCode::invalid_email, "email"};
  // Cheap check first, so a taken name costs no hash; insert_user checks again and decides.
  if (store_.identity_taken(u) != db::InsertUserResult::ok)
    return Error{ErrorCode::user_exists, ""};
  auto hash = hasher_.hash(in.password, caller.may_wait_for_hash); // outside any transaction
  if (!hash) return hash.error();
  u.id = secure::uuid_v4();
  u.password_hash = hash.value();
  u.display_name = in.display_name;
  u.profile_picture = in.profile_picture;
  u.phone_number = in.phone_number;
  u.created_at = u.updated_at = now();
  // What the user starts with commits with it, or nothing does: a retry never meets a
  // half-made account.
  std::optional<db::Session> session;
  if (options.session) session = new_session(u, *options.session);
  std::optional<db::OneTimeToken> confirmation_row;
  std::optional<db::OutgoingMail> mail;
  if (options.confirm_email) {
    confirmation_row = mailed_token(u, db::TokenPurpose::verify_email, config_.verify_email_ttl);
    mail = confirmation_mail(*u.email, *confirmation_row);
  }
  // The answered token is its own: the mailed one is made only when the mail goes.
  std::optional<std::string> answered;
  std::optional<db::OneTimeToken> answered_row;
  if (options.answer_confirmation) {
    answered = secure::random_token(32); // 256 bits
    answered_row =
        db::OneTimeToken{secure::sha256_hex(*answered), u.id, db::TokenPurpose::verify_email,
                         now() + config_.verify_email_ttl};
  }
  const db::OneTimeToken *first_token = confirmation_row ? &*confirmation_row
                                        : answered_row   ? &*answered_row
                                                         : nullptr;
  switch (
      store_.insert_user(u, session ? &*session : nullptr, first_token, mail ? &*mail : nullptr)) {
  case db::InsertUserResult::ok: break;
  case db::InsertUserResult::username_taken: return Error{ErrorCode::user_exists, "username"};
  case db::InsertUserResult::email_taken: return Error{ErrorCode::user_exists, "email"};
  }
  record(caller.actor.empty() ? "sign_up" : "admin_add_user", caller, u.id);
  // Mailed and answered: the second token after the commit, as issue_one_time_token does.
  if (answered_row && first_token != &*answered_row) store_.insert_one_time_token(*answered_row);
  if (session) written();
  SignedUp out{u, std::nullopt, answered};
  if (session) out.tokens = issue_pair(u, *options.session, session->id, session->refresh_jti);
  // The first confirmation mail of a new account: the per-account limit is untouched so far.
  if (options.confirm_email) {
    mail_limit_.take(u.id, "verify", elapsed());
    mailer_.wake();
  }
  return out;
}

Result<db::User> AuthService::sign_in(Identity kind, const std::string &identifier,
                                      const std::string &password, const Caller &caller,
                                      bool verified_only) {
  std::optional<db::User> user;
  if (kind != Identity::username && identifier.find('@') != std::string::npos)
    user = lookup_email(store_, identifier);
  if (!user && kind != Identity::email) user = lookup_username(store_, identifier);

  // Failures are counted per identifier as typed and client address, and per identifier, never
  // per account: an attacker elsewhere cannot lock the owner out, and known and unknown names
  // are counted alike (SignInThrottle).
  const std::int64_t t = now();
  const std::string key = identifier_key(identifier);
  // The audit log names a known user by id, and keeps what was typed only when it names nobody.
  const std::optional<std::string> user_id = user ? std::optional(user->id) : std::nullopt;
  const std::string tried = user ? std::string() : identifier;
  const bool was_locked = sign_in_throttle_.locked(key, caller.address, elapsed());
  auto attempt = sign_in_throttle_.begin(
      key, caller.address, user ? std::optional(throttle_account(*user)) : std::nullopt, elapsed(),
      t);
  // A locked identifier is refused before hashing, so lockout costs no CPU.
  if (int wait = attempt.refused()) {
    ++sign_ins_.throttled;
    record("sign_in_failed", caller, user_id, "locked_out", tried);
    return Error{ErrorCode::account_locked, "", wait};
  }
  auto failure = [&](ErrorCode code, const char *reason) -> Error {
    attempt.failed();
    ++sign_ins_.failed;
    record("sign_in_failed", caller, user_id, reason, tried);
    if (!was_locked && sign_in_throttle_.locked(key, caller.address, elapsed(), t))
      record("lockout_started", caller, user_id, "", tried);
    return Error{code, ""};
  };
  if (password.size() > config_.password_max_bytes)
    return user ? failure(ErrorCode::wrong_password, "wrong_password")
                : failure(ErrorCode::user_not_found, "unknown_user");
  if (!user) {
    // Same cost for unknown users, so timing tells nothing about which accounts exist.
    if (auto burned = hasher_.burn(password, caller.may_wait_for_hash); !burned)
      return burned.error();
    return failure(ErrorCode::user_not_found, "unknown_user");
  }
  auto verdict = hasher_.verify(user->password_hash, password, caller.may_wait_for_hash);
  if (!verdict) return verdict.error();
  if (!verdict->match) return failure(ErrorCode::wrong_password, "wrong_password");
  // Imported inactive (Django's is_active): refused as a wrong password is, as Django's
  // ModelBackend does, and its hash is left as it is.
  if (!user->active) return failure(ErrorCode::wrong_password, "inactive");
  ++sign_ins_.succeeded;
  if (verdict->needs_rehash) {
    // Made with older parameters: upgrade now that we know the password.
    if (auto rehashed = hasher_.hash(password, caller.may_wait_for_hash)) {
      store_.update_password_hash(user->id, rehashed.value(), t);
      written();
      user->password_hash = rehashed.value();
    }
  }
  attempt.succeeded(user->password_hash);
  // The password was right: counted as a success, but no session until the address is proved.
  if (verified_only && !user->email_verified) {
    record("sign_in_failed", caller, user_id, "unverified");
    return Error{ErrorCode::email_not_verified, ""};
  }
  record("sign_in", caller, user_id);
  return *user;
}

TokenPair AuthService::issue_pair(const db::User &user, Api api, const std::string &session_id,
                                  const std::string &refresh_jti) {
  const Lifetimes life = config_.lifetimes.at(api);
  const std::int64_t t = now();
  TokenPair pair;
  Claims c;
  c.user_id = user.id;
  c.email = user.email;
  c.username = user.username;
  c.session_id = session_id;
  c.issued_at = t;
  c.type = TokenType::access;
  c.jti = secure::random_token(16);
  c.expires_at = t + life.access;
  pair.access = codec_.issue(c);
  pair.access_claims = c;
  pair.access_ttl = life.access;
  if (!refresh_jti.empty()) {
    c.type = TokenType::refresh;
    c.jti = refresh_jti;
    c.expires_at = t + life.refresh;
    pair.refresh = codec_.issue(c);
    pair.refresh_ttl = life.refresh;
  }
  return pair;
}

db::Session AuthService::new_session(const db::User &user, Api api) const {
  const Lifetimes life = config_.lifetimes.at(api);
  db::Session s;
  s.id = secure::random_token(16);
  s.user_id = user.id;
  s.api = api_name(api);
  s.refresh_jti = life.refresh > 0 ? secure::random_token(16) : std::string();
  s.created_at = now();
  s.expires_at = s.created_at + std::max(life.access, life.refresh);
  return s;
}

Result<TokenPair> AuthService::start_session(const db::User &user, Api api) {
  const db::Session s = new_session(user, api);
  store_.insert_session(s);
  written();
  return issue_pair(user, api, s.id, s.refresh_jti);
}

Result<Claims> AuthService::check_token(const std::string &token,
                                        std::optional<TokenType> expected) {
  auto claims = codec_.decode(token, now());
  if (!claims) return claims.error();
  // An access token is never accepted where a refresh token belongs, nor the reverse.
  if (expected && claims->type != *expected)
    return Error{ErrorCode::token_wrong_type, token_type_name(*expected)};
  const bool blacklisted =
      cache_ ? cache_->is_blacklisted(claims->jti) : store_.is_blacklisted(claims->jti);
  if (claims->type == TokenType::access && blacklisted)
    return Error{ErrorCode::token_revoked, "blacklisted"};
  // The session must still be live: logout, reset, reuse detection and user deletion all
  // end it, and every token issued in it dies with it.
  auto session = live_session(claims->session_id);
  auto refused = [&]() -> const char * {
    if (!session || session->user_id != claims->user_id) return "session";
    if (claims->type == TokenType::refresh && session->refresh_jti != claims->jti) return "rotated";
    return nullptr;
  };
  // A token issued moments ago by another server (or process) on the same database may name
  // a session, or a refresh token, that this server's memory has not followed yet: it reads
  // the feed once before refusing. Older tokens never cost a read, so a revoked one is refused
  // from memory alone.
  if (cache_ && refused() && now() - claims->issued_at <= kFreshTokenSeconds) {
    cache_->catch_up();
    session = live_session(claims->session_id);
  }
  if (const char *why = refused()) return Error{ErrorCode::token_revoked, why};
  return claims;
}

Result<TokenPair> AuthService::refresh(const std::string &refresh_token, Api api, bool rotate,
                                       const Caller &caller) {
  auto claims = codec_.decode(refresh_token, now());
  if (!claims) return claims.error();
  if (claims->type != TokenType::refresh)
    return Error{ErrorCode::token_wrong_type, token_type_name(TokenType::refresh)};
  auto user = cache_ ? cache_->find_user(claims->user_id) : store_.find_user_by_id(claims->user_id);
  if (!user) return Error{ErrorCode::token_revoked, "user"};
  const Lifetimes life = config_.lifetimes.at(api);
  std::string next_jti = rotate ? secure::random_token(16) : claims->jti;
  const std::int64_t t = now();
  std::int64_t until = t + std::max(life.access, rotate ? life.refresh : 0);
  const db::RotateOutcome outcome =
      rotations_.rotate({claims->session_id, claims->user_id, claims->jti, next_jti, until, t,
                         config_.refresh_reuse_interval});
  switch (outcome.result) {
  case db::RotateResult::rotated: break;
  // A second tab within the reuse interval: the refresh token the rotation issued, not a new
  // one, so both tabs go on with one chain and the session does not fork.
  case db::RotateResult::replayed: break;
  case db::RotateResult::reused:
    record("refresh_reuse", caller, claims->user_id, "session revoked");
    return Error{ErrorCode::token_revoked, "reused"};
  case db::RotateResult::gone: return Error{ErrorCode::token_revoked, "session"};
  }
  return issue_pair(*user, api, claims->session_id, rotate ? outcome.refresh_jti : std::string());
}

Status AuthService::logout(const Claims &access, const Caller &caller) {
  store_.logout(access.session_id, access.jti, access.expires_at, now());
  written();
  record("logout", caller, access.user_id);
  return Ok{};
}

std::optional<db::User> AuthService::find_user_by_email(const std::string &email) {
  return lookup_email(store_, email);
}

std::optional<db::User> AuthService::find_user_by_username(const std::string &username) {
  return lookup_username(store_, username);
}

std::optional<db::User> AuthService::find_user_by_id(const std::string &id) {
  return store_.find_user_by_id(id);
}

std::vector<db::User> AuthService::list_users() {
  return store_.list_users();
}

std::vector<db::Session> AuthService::list_sessions(const std::string &user_id) {
  return store_.list_sessions(user_id);
}

Status AuthService::set_password(const db::User &user, const std::string &password,
                                 const Caller &by) {
  if (auto bad = check_password(password)) return Error{*bad, "password"};
  auto hash = hasher_.hash(password);
  if (!hash) return hash.error();
  if (!store_.replace_password(user.id, hash.value(), now()))
    return Error{ErrorCode::user_not_found, ""};
  written();
  // As a reset: whatever locked the account's names is lifted (another process's server sees
  // the new hash at the next attempt and lifts them too).
  sign_in_throttle_.lift(throttle_account(user), elapsed());
  record("admin_set_password", by, user.id);
  return Ok{};
}

namespace {

// 8-4-4-4-12 hexadecimal digits, any version: an id another system gave the user.
bool is_uuid(const std::string &id) {
  if (id.size() != 36) return false;
  for (std::size_t i = 0; i < id.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? id[i] != '-' : !std::isxdigit(static_cast<unsigned char>(id[i]))) return false;
  }
  return true;
}

// Why a user of an import file is refused before the database is asked, or "".
std::string import_problem(const ImportedUser &in, db::User &u) {
  if (in.username.empty()) return "no username";
  if (!set_identity(u, in.username, in.email)) {
    Canonical name = canonical_username(in.username);
    if (!name)
      return "the username '" + visible_username(in.username) + "' " + describe(name.refusal);
    return "the email '" + *in.email + "' " + describe(canonical_email(*in.email).refusal);
  }
  password_formats::Checked hash = password_formats::check(in.password_hash);
  if (!hash) return "password_hash: " + hash.problem;
  return "";
}

} // namespace

ImportReport AuthService::import_users(const std::vector<ImportedUser> &users, bool skip_taken,
                                       bool dry_run, const Caller &by) {
  ImportReport report;
  std::vector<db::User> rows;
  // Within the file, as the store checks against the database: an id, and one namespace of
  // username keys and emails, and look-alike skeletons.
  std::map<std::string, std::size_t> ids, names, skeletons;
  auto refuse = [&](std::size_t i, std::string why) {
    report.refused = i;
    report.why = std::move(why);
    return report;
  };
  const std::int64_t t = now();
  for (std::size_t i = 0; i < users.size(); ++i) {
    const ImportedUser &in = users[i];
    db::User u;
    if (std::string why = import_problem(in, u); !why.empty()) return refuse(i, why);
    u.id = in.id && is_uuid(*in.id) ? lower_ascii(*in.id) : secure::uuid_v4();
    u.password_hash = in.password_hash;
    u.display_name = in.display_name;
    u.profile_picture = in.profile_picture;
    u.phone_number = in.phone_number;
    u.email_verified = in.email_verified && u.email;
    u.active = in.active;
    u.created_at = in.created_at.value_or(t);
    u.updated_at = t;
    // The first user of the file before this one that holds the key, or none (and now this).
    auto holder = [&](std::map<std::string, std::size_t> &keys,
                      const std::string &key) -> std::optional<std::size_t> {
      auto [at, fresh] = keys.emplace(key, i);
      if (fresh) return std::nullopt;
      return at->second;
    };
    auto twice = [&](const char *what, std::size_t other) {
      return refuse(i,
                    "duplicate inside the file: " + std::string(what) + " " + users[other].where);
    };
    if (auto other = holder(ids, u.id)) return twice("the same id as", *other);
    if (auto other = holder(names, *u.username_key))
      return twice("the same username (or an email equal to it) as", *other);
    if (u.email && *u.email != *u.username_key)
      if (auto other = holder(names, *u.email))
        return twice("the same email (or a username equal to it) as", *other);
    if (auto other = holder(skeletons, *u.username_skeleton))
      return twice("a username that looks like that of", *other);
    rows.push_back(std::move(u));
  }
  std::vector<db::ImportResult> results = store_.import_users(rows, skip_taken, dry_run);
  for (std::size_t i = 0; i < results.size(); ++i) {
    switch (results[i]) {
    case db::ImportResult::inserted: report.imported.push_back(rows[i]); continue;
    case db::ImportResult::id_taken:
      if (!skip_taken) return refuse(i, "its id is an existing user's");
      break;
    case db::ImportResult::username_taken:
      if (!skip_taken)
        return refuse(i, "its username is taken, or looks like one that is (or like an email)");
      break;
    case db::ImportResult::email_taken:
      if (!skip_taken) return refuse(i, "its email is taken (as an email or a username)");
      break;
    }
    report.skipped.push_back(i);
  }
  if (!dry_run)
    record("admin_import_users", by, std::nullopt,
           std::to_string(report.imported.size()) + " imported, " +
               std::to_string(report.skipped.size()) + " skipped");
  return report;
}

Status AuthService::rename_user(const db::User &user, const std::string &new_username,
                                const Caller &by) {
  db::User renamed = user;
  if (auto bad = set_identity(renamed, new_username, user.email); !bad) return bad.error();
  switch (store_.rename_user(renamed, now())) {
  case db::RenameResult::renamed:
    written();
    record("admin_rename_user", by, user.id, user.username + " -> " + new_username);
    return Ok{};
  case db::RenameResult::taken: return Error{ErrorCode::user_exists, "username"};
  case db::RenameResult::not_found: break;
  }
  return Error{ErrorCode::user_not_found, ""};
}

Status AuthService::delete_user(const db::User &user, const Caller &by) {
  if (!store_.delete_user(user.id)) return Error{ErrorCode::user_not_found, ""};
  written();
  record("admin_delete_user", by, user.id, user.username);
  return Ok{};
}

Status AuthService::mark_email_verified(const db::User &user, const Caller &by) {
  if (!user.email) return Error{ErrorCode::invalid_email, "no email"};
  store_.set_email_verified(user.id, now());
  written();
  record("admin_verify_email", by, user.id);
  return Ok{};
}

Status AuthService::end_session(const db::User &user, const std::string &session_id,
                                const Caller &by) {
  auto session = store_.find_session(session_id);
  if (!session || session->user_id != user.id) return Error{ErrorCode::user_not_found, "session"};
  store_.revoke_session(session_id, now());
  written();
  record("admin_end_session", by, user.id);
  return Ok{};
}

int AuthService::revoke_sessions(const db::User &user, const Caller &by) {
  const int n = store_.revoke_user_sessions(user.id, now());
  written();
  record("admin_revoke_sessions", by, user.id, std::to_string(n) + " ended");
  return n;
}

int AuthService::revoke_all_sessions(const Caller &by) {
  const int n = store_.revoke_all_sessions(now());
  written();
  record("admin_revoke_all_sessions", by, std::nullopt, std::to_string(n) + " ended");
  return n;
}

std::vector<db::SigningKeyRow> AuthService::rotate_signing_key(const db::SigningKeyRow &next,
                                                               bool retire_now, const Caller &by) {
  auto before = store_.signing_keys();
  const std::int64_t t = now();
  store_.rotate_signing_key(next, t);
  // Deleted rather than kept for their retention: a token that names them names no key.
  if (retire_now) store_.purge_signing_keys(t);
  written();
  record("admin_rotate_key", by, std::nullopt,
         next.kid + " " + next.alg + (retire_now ? ", earlier keys retired now" : ""));
  return before;
}

void AuthService::add_standby_key(const db::SigningKeyRow &next, const Caller &by) {
  store_.add_standby_key(next);
  written();
  record("admin_add_standby_key", by, std::nullopt, next.kid + " " + next.alg);
}

bool AuthService::activate_signing_key(const std::string &kid, const Caller &by) {
  const bool done = store_.activate_signing_key(kid, now());
  written();
  if (done) record("admin_activate_key", by, std::nullopt, kid);
  return done;
}

nlohmann::json AuthService::jwks() const {
  return codec_.jwks(now());
}

db::OneTimeToken AuthService::mailed_token(const db::User &user, db::TokenPurpose purpose,
                                           std::int64_t ttl) const {
  return {secure::sha256_hex(secure::random_token(32)), user.id, purpose, now() + ttl};
}

// Written with row in one transaction, and never sent once the token is gone or the link has
// expired. The link stops after "token=": the sender writes the token there when it sends.
db::OutgoingMail AuthService::mail_with_link(const std::string &to, const std::string &subject,
                                             const std::string &before_link,
                                             const std::string &base, const std::string &after_link,
                                             const db::OneTimeToken &row) const {
  db::OutgoingMail m{to, subject, before_link, row.token_hash, 0, row.expires_at, now()};
  m.body += base + (base.find('?') == std::string::npos ? "?" : "&") + "token=";
  m.token_at = m.body.size();
  m.body += after_link;
  return m;
}

std::string AuthService::public_host() const {
  std::string url = config_.effective_public_url();
  if (std::size_t scheme = url.find("://"); scheme != std::string::npos) url.erase(0, scheme + 3);
  return url.substr(0, url.find('/'));
}

// Mails carry no text a stranger chose (a username, a display name): the account is named only
// by the recipient's own address, the sender as Latch at the operator's host.
Result<std::string> AuthService::start_password_reset(const db::User &user, std::int64_t ttl,
                                                      TokenDelivery to, const Caller &by) {
  if (!user.email) return Error{ErrorCode::user_not_found, "no email"};
  // Per account, whoever asks and through whichever API: nobody can flood an inbox.
  if (int wait = mail_limit_.take(user.id, "reset", elapsed()))
    return Error{ErrorCode::rate_limited, "mail", wait};
  const std::string host = public_host();
  std::string answered =
      issue_one_time_token(user, db::TokenPurpose::reset, ttl, to, [&](const auto &row) {
        return mail_with_link(
            *user.email, "Reset your password",
            "Someone asked to reset the password of the account for " + *user.email + " at " +
                host + ".\nOpen this link within " + describe_duration(ttl) +
                " to choose a new one:\n\n",
            config_.effective_reset_url(),
            "\n\nIf it was not you, ignore this mail; nothing changes.\n\n-- Latch at " + host +
                "\n",
            row);
      });
  record("password_reset_requested", by, user.id, by.actor.empty() ? "" : "sent by an operator");
  return answered;
}

Status AuthService::finish_password_reset(const std::string &token, const std::string &new_password,
                                          const Caller &caller) {
  if (auto bad = check_password(new_password)) return Error{*bad, "password"};
  auto hash = hasher_.hash(new_password, caller.may_wait_for_hash); // outside the transaction below
  if (!hash) return hash.error();
  std::string user_id;
  switch (store_.reset_password(secure::sha256_hex(token), hash.value(), now(), &user_id)) {
  case db::ConsumeResult::ok:
    written();
    record("password_reset_completed", caller, user_id);
    // The owner proved the mailbox: whatever locked the account's names is lifted.
    if (auto user = store_.find_user_by_id(user_id))
      sign_in_throttle_.lift(throttle_account(*user), elapsed());
    return Ok{};
  case db::ConsumeResult::expired: return Error{ErrorCode::one_time_token_expired, ""};
  case db::ConsumeResult::invalid: break;
  }
  return Error{ErrorCode::one_time_token_invalid, ""};
}

Result<std::string> AuthService::start_email_verification(const db::User &user, TokenDelivery to) {
  if (!user.email) return Error{ErrorCode::invalid_email, "no email"};
  if (int wait = mail_limit_.take(user.id, "verify", elapsed()))
    return Error{ErrorCode::rate_limited, "mail", wait};
  return issue_one_time_token(user, db::TokenPurpose::verify_email, config_.verify_email_ttl, to,
                              [&](const auto &row) { return confirmation_mail(*user.email, row); });
}

std::string AuthService::issue_one_time_token(const db::User &user, db::TokenPurpose purpose,
                                              std::int64_t ttl, TokenDelivery to,
                                              const MailFor &mail) {
  const db::OneTimeToken row = mailed_token(user, purpose, ttl);
  const db::OutgoingMail m = mail(row);
  store_.insert_one_time_token(row, &m); // both or neither
  mailer_.wake();
  if (to == TokenDelivery::mail) return std::string();
  // Its own token: the mailed one is made only when the mail goes.
  std::string token = secure::random_token(32); // 256 bits
  store_.insert_one_time_token({secure::sha256_hex(token), user.id, purpose, now() + ttl});
  return token;
}

db::OutgoingMail AuthService::confirmation_mail(const std::string &email,
                                                const db::OneTimeToken &row) const {
  return mail_with_link(
      email, "Confirm your email address",
      "Someone signed up at " + public_host() + " with the address " + email +
          ".\nIf it was you, confirm it by opening:\n\n",
      config_.effective_public_url() + "/api/v1/verify",
      "\n\nIf it was not you, ignore this mail.\n\n-- Latch at " + public_host() + "\n", row);
}

Status AuthService::confirm_email(const std::string &token, const Caller &caller) {
  std::string user_id;
  switch (store_.consume_one_time_token(secure::sha256_hex(token), db::TokenPurpose::verify_email,
                                        now(), &user_id)) {
  case db::ConsumeResult::ok:
    store_.set_email_verified(user_id, now());
    written();
    record("email_confirmed", caller, user_id);
    return Ok{};
  case db::ConsumeResult::expired: return Error{ErrorCode::one_time_token_expired, ""};
  case db::ConsumeResult::invalid: break;
  }
  return Error{ErrorCode::one_time_token_invalid, ""};
}

int AuthService::throttle_address(const std::string &address) {
  return address_limit_.hit(address_key(address), elapsed()); // an IPv6 client by its /64
}

std::optional<std::string> AuthService::database_unready() {
  try {
    store_.ping();
    return std::nullopt;
  } catch (const std::exception &e) {
    return std::string(e.what());
  }
}

db::PurgeCounts AuthService::purge_expired(std::optional<std::int64_t> margin) {
  const std::int64_t e = elapsed();
  address_limit_.prune(e);
  sign_in_throttle_.prune(e);
  mail_limit_.prune(e);
  // Rows go `margin` after they expire, not at once: a wall clock stepped forward by up to
  // that much destroys nothing still valid in real time (tokens look expired while it is
  // wrong, and work again once it is put right).
  const std::int64_t t = now() - margin.value_or(config_.purge_margin);
  db::PurgeCounts c = store_.purge_expired(t, t - signing_key_retention(config_));
  c.audit = store_.purge_audit(now() - config_.audit_retention); // kept --audit-retention
  if (cache_) cache_->drop_expired(t);
  return c;
}

std::int64_t signing_key_retention(const Config &config) {
  std::int64_t longest = 0;
  for (const auto &[api, life] : config.lifetimes)
    longest = std::max({longest, life.access, life.refresh});
  return longest + 5 * 60;
}

db::SigningKeyRow new_signing_key(std::int64_t now, JwtAlg alg) {
  db::SigningKeyRow k;
  k.kid = secure::random_token(6); // 8 characters of [A-Za-z0-9_-]
  k.alg = jwt_alg_name(alg);
  k.secret = alg == JwtAlg::HS256 ? secure::random_token(32) : generate_private_key(alg);
  k.created_at = now;
  return k;
}

JwtAlg configured_alg(const Config &config) {
  return jwt_alg_from_name(config.jwt_alg).value_or(JwtAlg::HS256);
}

std::int64_t jwks_max_age(const Config &config) {
  return std::min<std::int64_t>(300, config.standby_period);
}

std::vector<SigningKey> key_ring(const std::vector<db::SigningKeyRow> &rows,
                                 std::int64_t retention) {
  std::vector<SigningKey> ring;
  for (const auto &row : rows) {
    SigningKey k;
    k.kid = row.kid;
    auto alg = jwt_alg_from_name(row.alg);
    if (!alg) throw std::invalid_argument("key " + row.kid + " has an unknown alg " + row.alg);
    k.alg = *alg;
    k.secret = row.secret;
    k.legacy = row.legacy;
    k.verify_until = row.retired_at ? *row.retired_at + retention : 0;
    k.standby = row.standby();
    ring.push_back(std::move(k));
  }
  return ring;
}

namespace {

bool active(const db::SigningKeyRow &row) {
  return row.activated_at && !row.retired_at;
}

std::unique_ptr<TokenCodec> codec_from_key_file(const std::string &path,
                                                const std::string &wanted_alg) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("--jwt-private-key " + path + ": cannot open it");
  std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto loaded = read_private_key(pem);
  if (auto *why = std::get_if<std::string>(&loaded))
    throw std::runtime_error("--jwt-private-key " + path + ": " + *why);
  LoadedKey &key = std::get<LoadedKey>(loaded);
  if (!wanted_alg.empty() && wanted_alg != jwt_alg_name(key.alg))
    throw std::runtime_error("--jwt-private-key " + path + ": a " + jwt_alg_name(key.alg) +
                             " key, but --jwt-alg is " + wanted_alg);
  SigningKey k;
  k.alg = key.alg;
  k.kid = jwk_thumbprint(public_jwk(key.alg, key.pem));
  k.secret = std::move(key.pem);
  return std::make_unique<TokenCodec>(std::vector<SigningKey>{std::move(k)});
}

} // namespace

std::unique_ptr<TokenCodec> make_token_codec(const Config &config, db::Store &store,
                                             std::int64_t now) {
  if (!config.jwt_secret.empty()) return std::make_unique<TokenCodec>(config.jwt_secret);
  if (!config.jwt_private_key.empty())
    return codec_from_key_file(config.jwt_private_key, config.jwt_alg);
  // A new key only when there is no signing one: drawing it costs start-up time and memory.
  auto rows = store.signing_keys();
  if (rows.empty() || !active(rows.front()))
    rows = store.ensure_signing_key(new_signing_key(now, configured_alg(config)));
  // Changing the alg is a rotation (zero downtime), never a surprise at start.
  if (!config.jwt_alg.empty() && rows.front().alg != config.jwt_alg)
    std::cerr << "latch: signing with the " << rows.front().alg << " key " << rows.front().kid
              << " while --jwt-alg is " << config.jwt_alg
              << ": `latch secret rotate` makes the new algorithm's key\n";
  return std::make_unique<TokenCodec>(key_ring(rows, signing_key_retention(config)));
}

SigningKeyWatcher::SigningKeyWatcher(const Config &config, db::SigningKeys &keys, TokenCodec &codec)
    : keys_(keys), codec_(codec), retention_(signing_key_retention(config)),
      fixed_(!config.jwt_secret.empty() || !config.jwt_private_key.empty()) {}

bool SigningKeyWatcher::reload() {
  if (fixed_) return true; // LATCH_JWT_SECRET or --jwt-private-key is the only key
  try {
    auto rows = keys_.signing_keys();
    if (rows.empty() || !active(rows.front())) {
      std::cerr << "latch: the database holds no signing key; keeping the keys in use\n";
      return false;
    }
    codec_.set_keys(key_ring(rows, retention_));
    return true;
  } catch (const std::exception &e) {
    std::cerr << "latch: cannot reload the signing keys: " << e.what() << "\n";
    return false;
  }
}

} // namespace latch
