// The auth core: sign-up, sign-in, sessions, refresh, logout, reset, email confirmation.
// Knows no HTTP: every outcome is a value or a typed Error that each API renders its own way.
#pragma once

#include "auth/config.h"
#include "auth/limits.h"
#include "auth/mail.h"
#include "auth/password.h"
#include "auth/result.h"
#include "auth/tokens.h"
#include "db/group_commit.h"
#include "db/session_cache.h"
#include "db/store.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace latch {

using Clock = std::function<std::int64_t()>; // seconds; injectable for tests
Clock system_clock();                        // unix seconds (the wall clock: it can be stepped)
Clock steady_clock();                        // seconds since an arbitrary start, never stepped

struct NewUser {
  std::string username;
  std::optional<std::string> email;
  std::string password;
  std::string display_name;
  std::string profile_picture;
  std::string phone_number;
};

struct TokenPair {
  std::string access;
  std::string refresh; // empty where the API has no refresh token
  Claims access_claims;
  std::int64_t access_ttl = 0;
  std::int64_t refresh_ttl = 0;
};

enum class Identity { email, username, email_or_username };

// Who asks, as the HTTP layer knows it (http::Ctx::caller): what the core's limits depend on.
struct Caller {
  Caller() = default;
  // An address alone is a caller that may wait.
  Caller(std::string client_address, bool may_wait = true) // NOLINT(google-explicit-constructor)
      : address(std::move(client_address)), may_wait_for_hash(may_wait) {}
  Caller(const char *client_address) : Caller(std::string(client_address)) {} // NOLINT
  std::string address; // the client's address, through trusted proxies
  // False when the connection loop's line for password hashing is full: a hash this request
  // needs is refused (busy, 503) unless a slot is free, rather than waited for. A sign-in
  // refused before hashing (a locked identifier) is answered as ever.
  bool may_wait_for_hash = true;
  // For the audit log (db::AuditEvent): the request's User-Agent (as sent; the log truncates
  // it), its X-Request-Id, the API's name; and who does an admin action ("cli:" + the OS user,
  // "console:" + the admin's email), empty for a user's own requests.
  std::string user_agent, request_id, api, actor;
};

// Shared input rules, so every API applies the same ones in its own words (auth/identity.h).
bool valid_email(const std::string &email);       // the WHATWG rule, for every API
bool valid_username(const std::string &username); // 1-150 characters, NFKC_Casefold-able
// nullopt if the password is acceptable, else weak_password or password_too_long: the one
// password rule of every API and of the admin commands.
std::optional<ErrorCode> password_problem(const Config &config, const std::string &password);

// The identity of a new user, the same for every API's sign-up and for latch user add: sets
// user.username (as typed) with its key and skeleton, and user.email (its key), or fails with
// invalid_field "username" or invalid_email.
Status set_identity(db::User &user, const std::string &username,
                    const std::optional<std::string> &email);
// The user a typed username names: its exact stored username first (a row that lost its key
// to an older look-alike still signs in so), else the one with its canonical key. Spellings
// the rule refuses (invisible or bidi characters) name nobody else.
std::optional<db::User> lookup_username(db::Users &store, const std::string &typed);
// The user a typed email names, by its canonical key.
std::optional<db::User> lookup_email(db::Users &store, const std::string &typed);
std::string lower_ascii(std::string s);
std::size_t utf8_length(const std::string &s);
// The key failed sign-ins are counted under: the identifier (username or email) as it is
// canonicalised for look-up. One longer than any username or email names no account and is
// keyed by its digest, so nobody can make the server keep a 60 KB name.
std::string identifier_key(const std::string &identifier);

// What a new user starts with, committed with it: a session of `session`'s API (its tokens in
// SignedUp::tokens) and, with confirm_email, an address-confirmation token and its mail. With
// answer_confirmation, an address-confirmation token of its own too, returned in
// SignedUp::confirmation_token (v1's --verify-token-in-response); with confirm_email as well it
// is a second token beside the mailed one, as TokenDelivery::mail_and_answer makes.
struct SignUpOptions {
  std::optional<Api> session;
  bool confirm_email = false;
  bool answer_confirmation = false;
};

// How a new one-time token reaches its user: always in a mail with its link, through the
// outbox (db::Outbox), whose sender makes the link's token as it sends the mail so that no
// copy of it is stored.
enum class TokenDelivery {
  mail,            // only: nothing is returned
  mail_and_answer, // and a second token of the same kind is returned for the caller to answer
                   // (flask's --reset-token-in-response; tests)
};

// A user as an import file gives it (latch user import): its password hash from the backend it
// comes from, kept as it is until its first sign-in replaces it with argon2id.
struct ImportedUser {
  std::string username;
  std::optional<std::string> email;
  std::string password_hash;
  std::string display_name, profile_picture, phone_number;
  bool email_verified = false;
  bool active = true;                     // false: imported, but cannot sign in (Django)
  std::optional<std::int64_t> created_at; // unix seconds; now when absent
  std::optional<std::string> id;          // kept if it is a UUID, else a new one is made
  std::string where;                      // "line 3", "auth_user id 7": for messages
};

// What AuthService::import_users did, or would do (dry run).
struct ImportReport {
  std::vector<db::User> imported;     // as stored
  std::vector<std::size_t> skipped;   // indexes of users an existing user's identity holds
  std::optional<std::size_t> refused; // the user that stopped the import: nothing was written
  std::string why;                    // and why
};

struct SignedUp {
  db::User user;
  std::optional<TokenPair> tokens;
  std::optional<std::string> confirmation_token; // with SignUpOptions::answer_confirmation
};

class AuthService {
public:
  // cache: the server's memory of sessions (token checks read it, and each write here
  // catches it up); without one (the admin commands, tests) token checks read the store.
  // clock: the wall clock (token times, row expiries); elapsed: a clock that never steps
  // (rate-limit, lockout and mail-limit windows), the wall clock when not given (tests).
  AuthService(const Config &config, db::Store &store, PasswordHasher &hasher,
              const TokenCodec &codec, Mailer &mailer, Clock clock,
              db::SessionCache *cache = nullptr, Clock elapsed = {});

  std::int64_t now() const { return clock_(); }
  // Seconds on a clock that a stepped wall clock does not move: what windows are measured by.
  std::int64_t elapsed() const { return elapsed_(); }
  const Config &config() const { return config_; }

  // nullopt if the password is acceptable, else weak_password or password_too_long.
  std::optional<ErrorCode> check_password(const std::string &password) const {
    return password_problem(config_, password);
  }

  // A new user and, in the same transaction, what it starts with (SignUpOptions).
  Result<SignedUp> sign_up(const NewUser &user, const Caller &caller = {},
                           const SignUpOptions &options = {});
  // Fails with user_not_found or wrong_password (APIs that must not tell them apart map both
  // to invalid_credentials), account_locked, or busy. Failures are counted per identifier and
  // the caller's address (SignInThrottle).
  // verified_only (--require-verified-email): a right password of an unverified email fails
  // with email_not_verified.
  Result<db::User> sign_in(Identity kind, const std::string &identifier,
                           const std::string &password, const Caller &caller,
                           bool verified_only = false);
  Result<TokenPair> start_session(const db::User &user, Api api);
  // rotate: a new refresh token replaces the presented one (single use).
  Result<TokenPair> refresh(const std::string &refresh_token, Api api, bool rotate,
                            const Caller &caller = {});
  // Verifies a token and its session; expected = nullopt accepts either type.
  Result<Claims> check_token(const std::string &token, std::optional<TokenType> expected);
  Status logout(const Claims &access, const Caller &caller = {});

  std::optional<db::User> find_user_by_email(const std::string &email);
  std::optional<db::User> find_user_by_username(const std::string &username);
  std::optional<db::User> find_user_by_id(const std::string &id);
  std::vector<db::User> list_users();
  std::vector<db::Session> list_sessions(const std::string &user_id);

  // What an operator does (the admin commands; the console later), under the same rules as
  // the APIs. `by` names who (Caller::actor: "cli:root", "console:EMAIL") and from where, for
  // the audit log: each of these writes one admin_* event.
  // A new password, checked as sign-up checks one: every session ends, reset links die, and
  // sign-in locks on the account lift, as a reset does. user_not_found if there is no user.
  Status set_password(const db::User &user, const std::string &password, const Caller &by = {});
  // Users with their hashes from elsewhere, all or none in one transaction: each checked as
  // sign-up checks one (username and email rules), its hash recognised and within bounds
  // (auth/password_formats.h), none sharing an id or identity with another of the file. One
  // an existing user's id or identity holds stops the import, or is skipped with skip_taken.
  ImportReport import_users(const std::vector<ImportedUser> &users, bool skip_taken, bool dry_run,
                            const Caller &by = {});
  // Gives the user a new username, checked as sign-up checks one.
  Status rename_user(const db::User &user, const std::string &new_username, const Caller &by = {});
  Status delete_user(const db::User &user, const Caller &by = {});
  Status mark_email_verified(const db::User &user, const Caller &by = {});
  // Ends one session of the user: its tokens are refused from now on. user_not_found if the
  // user has no such session.
  Status end_session(const db::User &user, const std::string &session_id, const Caller &by = {});
  // Ends every session of the user (or of every user); returns how many.
  int revoke_sessions(const db::User &user, const Caller &by = {});
  int revoke_all_sessions(const Caller &by = {});
  // A new signing key; with retire_now the earlier ones are deleted, so the tokens they signed
  // are refused. Returns the keys before the rotation.
  std::vector<db::SigningKeyRow> rotate_signing_key(const db::SigningKeyRow &next, bool retire_now,
                                                    const Caller &by = {});
  // Publishes next as the standby key (replacing an earlier standby key): it verifies and
  // appears in the JWKS at once, and signs nothing until activated.
  void add_standby_key(const db::SigningKeyRow &next, const Caller &by = {});
  // Makes the standby key kid the signing key; the key it replaces verifies for
  // signing_key_retention(). false if kid names no standby key.
  bool activate_signing_key(const std::string &kid, const Caller &by = {});
  // The public keys of the asymmetric signing keys that verify now (GET /.well-known/jwks.json).
  nlohmann::json jwks() const;

  // Mails a single-use reset link (its token stored only as a hash; the mail written with the
  // token row, in one transaction) and, as `to` says, returns "" or a second reset token
  // (using either spends both). Past the account's mail limit (--mail-limit) it makes and
  // sends nothing: rate_limited with the seconds to wait.
  // by.actor set: an operator sent it (the console).
  Result<std::string> start_password_reset(const db::User &user, std::int64_t ttl,
                                           TokenDelivery to = TokenDelivery::mail,
                                           const Caller &by = {});
  // Also lifts every sign-in lock and count on the account's username and email.
  Status finish_password_reset(const std::string &token, const std::string &new_password,
                               const Caller &caller = {});

  // A new address-confirmation token, as start_password_reset makes a reset token; the same
  // mail limit, counted apart.
  Result<std::string> start_email_verification(const db::User &user,
                                               TokenDelivery to = TokenDelivery::mail);
  Status confirm_email(const std::string &token, const Caller &caller = {});

  // The admin console (auth/service_console.cpp; its HTTP side is auth/http/console.cpp).
  // Admins are apart from users: an email (the WHATWG rule, stored lower-case) and an argon2id
  // hash of a password under the users' rule. invalid_email, weak_password,
  // password_too_long, user_exists (another admin's email), busy.
  Result<db::Admin> add_admin(const std::string &email, const std::string &password);
  std::vector<db::Admin> list_admins();
  // Deletes the admin and its console sessions; false if there is none.
  bool delete_admin(const std::string &email);
  bool has_admins();
  // A console sign-in: counted and locked as the APIs' sign-ins are (SignInThrottle, under
  // the admin's own identifiers), then a session whose token only the cookie carries.
  // invalid_credentials, account_locked, busy.
  struct ConsoleLogin {
    db::Admin admin;
    std::string token, csrf_token;
  };
  Result<ConsoleLogin> console_sign_in(const std::string &email, const std::string &password,
                                       const Caller &caller);
  // The session the cookie's token names, if it exists and was used within --console-idle;
  // using it slides that expiry.
  std::optional<db::ConsoleSession> console_session(const std::string &token);
  void console_sign_out(const std::string &token);
  // Up to limit users, newest first, after the cursor; with a search, those whose username
  // or email starts with it (as sign-in canonicalises them).
  std::vector<db::User> page_users(const std::string &search,
                                   const std::optional<db::UserCursor> &after, std::size_t limit);
  // The audit log's events, newest first (the console's audit view and a user's page).
  std::vector<db::AuditEvent> audit_events(const db::AuditQuery &query);
  struct ConsoleFigures {
    std::int64_t users = 0, active_sessions = 0, database_bytes = 0;
  };
  ConsoleFigures console_figures();
  std::vector<db::SigningKeyRow> signing_keys() { return store_.signing_keys(); }

  // Per-address throttle for sign-in, sign-up and reset routes: 0 or seconds to wait.
  int throttle_address(const std::string &address);

  // Deletes what expired more than `margin` seconds ago (by default --purge-margin: a forward
  // step of the wall clock up to that destroys nothing still valid in real time), and prunes
  // the in-memory windows.
  db::PurgeCounts purge_expired(std::optional<std::int64_t> margin = std::nullopt);

  // Whether the database can be read and written now, and if not why (GET /readyz).
  std::optional<std::string> database_unready();
  PasswordHasher::Load hashing_load() { return hasher_.load(); }
  // Mail queued, sent and failed (GET /metrics), from the sender's memory.
  Mailer::Counts mail_counts() const { return mailer_.counts(); }
  // Live sessions (GET /metrics), from the cache; -1 without one.
  std::int64_t active_sessions() const { return cache_ ? cache_->active_sessions(now()) : -1; }
  // The session cache's whole loads and changes applied (none without a cache).
  std::optional<db::SessionCache::Counts> cache_counts() const {
    if (!cache_) return std::nullopt;
    return cache_->counts();
  }

  // Writes one event to the audit log, committed before this returns (a group commit with the
  // events of other requests): the caller's address, user agent, request id, API and actor
  // come from `caller`. For admin actions no method above records (latch mail retry, purge).
  // Throws db::StoreError.
  void record(const std::string &event, const Caller &caller,
              const std::optional<std::string> &user_id = std::nullopt,
              const std::string &detail = {}, const std::string &identifier = {});
  // Audit events this process wrote since start, by event (GET /metrics).
  std::vector<std::pair<std::string, std::uint64_t>> audit_counts() const;

  // Sign-in outcomes since start (GET /metrics).
  struct SignInCounts {
    std::atomic<std::uint64_t> succeeded{0}, failed{0}, throttled{0};
  };
  const SignInCounts &sign_in_counts() const { return sign_ins_; }

private:
  TokenPair issue_pair(const db::User &user, Api api, const std::string &session_id,
                       const std::string &refresh_jti);
  std::string public_host() const;
  // Stores a new one-time token for the user with the mail mail(row) carrying its link, in one
  // transaction, and with mail_and_answer a second one; returns that one's token, or "".
  using MailFor = std::function<db::OutgoingMail(const db::OneTimeToken &)>;
  std::string issue_one_time_token(const db::User &user, db::TokenPurpose purpose, std::int64_t ttl,
                                   TokenDelivery to, const MailFor &mail);
  // A one-time token row for the user whose link goes by mail: its hash is of a token nobody
  // keeps, until the sender gives it one of its own (db::Outbox::take_mail).
  db::OneTimeToken mailed_token(const db::User &user, db::TokenPurpose purpose,
                                std::int64_t ttl) const;
  // The mail carrying row's link (base?token=), to be written with row in one transaction.
  db::OutgoingMail mail_with_link(const std::string &to, const std::string &subject,
                                  const std::string &before_link, const std::string &base,
                                  const std::string &after_link, const db::OneTimeToken &row) const;
  db::OutgoingMail confirmation_mail(const std::string &email, const db::OneTimeToken &row) const;
  // After a write of this process: the cache shows it before the request is answered.
  void written();
  db::Session new_session(const db::User &user, Api api) const;
  std::optional<db::Session> live_session(const std::string &id);
  // How old a token may be and still make check_token read the change feed when memory does
  // not know its session: longer than any server's feed lag, with room for clocks a second
  // apart and iat's whole seconds.
  static constexpr std::int64_t kFreshTokenSeconds = 3;

  const Config &config_;
  db::Store &store_;
  PasswordHasher &hasher_;
  const TokenCodec &codec_;
  Mailer &mailer_;
  Clock clock_;
  Clock elapsed_;
  db::SessionCache *cache_;
  db::RotationGroupCommit rotations_;
  db::AuditGroupCommit audit_;
  mutable std::mutex audit_counts_mutex_;
  std::map<std::string, std::uint64_t> audit_counts_;
  WindowCounter address_limit_;
  SignInThrottle sign_in_throttle_;
  MailLimit mail_limit_;
  SignInCounts sign_ins_;
};

// Signing keys. With LATCH_JWT_SECRET that secret is the only key; otherwise the key ring in
// the store's signing_keys table, which latch secret rotate changes while the server runs.

// How long a retired key still verifies: the longest token lifetime, plus a margin for the
// moment a server takes to notice a rotation and for clock skew.
std::int64_t signing_key_retention(const Config &config);
// A new key: random kid; for HS256 a random 256-bit secret, otherwise a key pair made by
// OpenSSL (Ed25519, P-256, RSA 2048).
db::SigningKeyRow new_signing_key(std::int64_t now, JwtAlg alg = JwtAlg::HS256);
// The alg of new keys: --jwt-alg (LATCH_JWT_ALG), HS256 if unset.
JwtAlg configured_alg(const Config &config);
// How long a JWKS answer may be cached: never longer than the standby period, so a verifier
// has fetched a standby key before it can sign.
std::int64_t jwks_max_age(const Config &config);
// The codec's view of the stored keys: the signing key first; retired keys verify until
// retired_at + retention.
std::vector<SigningKey> key_ring(const std::vector<db::SigningKeyRow> &rows,
                                 std::int64_t retention);
// The server's codec: LATCH_JWT_SECRET alone, the key of --jwt-private-key alone (its kid the
// RFC 7638 thumbprint), or the stored key ring, whose first key (of --jwt-alg) is made here
// if the database has no active one. Throws db::StoreError, std::runtime_error (a bad key
// file).
std::unique_ptr<TokenCodec> make_token_codec(const Config &config, db::Store &store,
                                             std::int64_t now);

// Keeps a codec in step with the stored key ring: the server calls reload() when the change
// feed says the signing keys changed (latch secret rotate in another process). Does nothing
// with LATCH_JWT_SECRET or --jwt-private-key.
class SigningKeyWatcher {
public:
  SigningKeyWatcher(const Config &config, db::SigningKeys &keys, TokenCodec &codec);
  // Reloads the keys now; false (and a line on stderr) if the store failed.
  bool reload();

private:
  db::SigningKeys &keys_;
  TokenCodec &codec_;
  std::int64_t retention_;
  bool fixed_;
};

// One audit event as JSON, as `latch audit --json` prints it and the console's API answers it.
nlohmann::json audit_event_json(const db::AuditEvent &event);

} // namespace latch
