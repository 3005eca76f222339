// The storage interface the auth service sees: users, sessions, revocation, one-time tokens.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace latch::db {

// A failure of the database itself (I/O, corruption, busy past the timeout). Never carries
// user input; the HTTP layer logs it and answers a generic 500.
struct StoreError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct User {
  std::string id;
  std::string username;                          // as typed at sign-up
  // canonical_username(username) and its confusable skeleton (auth/identity.h). The key is
  // absent for a row from before migration 3 whose key an older look-alike holds, or whose
  // username the rule refuses: such a row signs in by its exact username only.
  std::optional<std::string> username_key;
  std::optional<std::string> username_skeleton;
  std::optional<std::string> email; // canonical_email: lower-case; absent for simplejwt sign-ups
  std::string password_hash;
  std::string display_name;
  std::string profile_picture;
  std::string phone_number;
  bool email_verified = false;
  std::int64_t created_at = 0;
  std::int64_t updated_at = 0;
};

struct Session {
  std::string id;
  std::string user_id;
  std::string api;
  std::string refresh_jti; // empty when the session has no refresh token
  std::int64_t created_at = 0;
  std::int64_t expires_at = 0;
  bool revoked = false;
};

enum class InsertUserResult { ok, username_taken, email_taken };
enum class RenameResult { renamed, taken, not_found };
enum class RotateResult { rotated, reused, gone };

// The arguments of one Store::rotate_refresh.
struct Rotation {
  std::string session_id, user_id, old_jti, new_jti;
  std::int64_t new_expires_at = 0, now = 0;
};
enum class TokenPurpose { reset, verify_email };
enum class ConsumeResult { ok, invalid, expired };

struct PurgeCounts {
  int sessions = 0;
  int blacklist = 0;
  int one_time_tokens = 0;
  int signing_keys = 0; // retired keys past their retention (purge_signing_keys)
};

// A row of signing_keys (auth.db.sql, migration 2).
struct SigningKeyRow {
  std::string kid;
  std::string secret;
  std::int64_t created_at = 0;
  std::optional<std::int64_t> retired_at; // none: the key that signs
  bool legacy = false; // the jwt_secret of old: also verifies tokens that carry no kid
};

class Store {
public:
  virtual ~Store() = default;

  virtual std::optional<std::string> get_setting(const std::string &key) = 0;
  // Stores value under key unless the key exists; returns the value now stored.
  virtual std::string put_setting_if_absent(const std::string &key, const std::string &value) = 0;

  // Inserts the user unless identity_taken says otherwise, in one transaction.
  virtual InsertUserResult insert_user(const User &user) = 0;
  virtual std::optional<User> find_user_by_id(const std::string &id) = 0;
  virtual std::optional<User> find_user_by_email(const std::string &email_lower) = 0;
  // The user whose stored username is this text (ASCII case aside, as before migration 3).
  virtual std::optional<User> find_user_by_username(const std::string &username) = 0;
  virtual std::optional<User> find_user_by_username_key(const std::string &key) = 0;
  // Whether another user (any id but user.id) holds user's identity: its username (exact, key
  // or skeleton) or email, where a username and an email are one namespace (envelope signs in
  // by either): a username key equal to an email, or the reverse, is taken too.
  virtual InsertUserResult identity_taken(const User &user) = 0;
  // Gives the user user.id the username, key and skeleton of user, checked by identity_taken
  // in the same transaction.
  virtual RenameResult rename_user(const User &user, std::int64_t now) = 0;
  virtual void update_password_hash(const std::string &user_id, const std::string &hash,
                                    std::int64_t now) = 0;
  virtual std::vector<User> list_users() = 0;
  // Deletes the user; its sessions and one-time tokens go with it (foreign keys cascade).
  virtual bool delete_user(const std::string &id) = 0;
  // Sets a new password hash and, in the same transaction, revokes every session of the user
  // and drops its outstanding reset links, as a password reset does. False: no such user.
  virtual bool replace_password(const std::string &user_id, const std::string &hash,
                                std::int64_t now) = 0;

  virtual void insert_session(const Session &session) = 0;
  virtual std::optional<Session> find_session(const std::string &id) = 0;
  // Swaps the session's refresh token from old_jti to new_jti if old_jti is the current one;
  // a different jti means an already-rotated token came back, and the session is revoked.
  virtual RotateResult rotate_refresh(const std::string &session_id, const std::string &user_id,
                                      const std::string &old_jti, const std::string &new_jti,
                                      std::int64_t new_expires_at, std::int64_t now) = 0;
  // Several rotate_refresh calls in one transaction, in order, one result each: the group
  // commit of a server that rotates many refresh tokens at once. Throws StoreError, and then
  // none of them happened.
  virtual std::vector<RotateResult> rotate_refresh_batch(const std::vector<Rotation> &batch) = 0;
  virtual void revoke_session(const std::string &session_id, std::int64_t now) = 0;
  // The user's sessions, revoked and expired ones included, oldest first.
  virtual std::vector<Session> list_sessions(const std::string &user_id) = 0;
  // Sessions neither revoked nor expired at `now` (for /metrics).
  virtual std::int64_t count_active_sessions(std::int64_t now) = 0;
  // Revokes every session of the user that is not revoked yet; returns how many.
  virtual int revoke_user_sessions(const std::string &user_id, std::int64_t now) = 0;
  // Ends a session and blacklists the access token that ended it, in one transaction.
  virtual void logout(const std::string &session_id, const std::string &access_jti,
                      std::int64_t access_expires_at, std::int64_t now) = 0;
  virtual bool is_blacklisted(const std::string &jti) = 0;
  // What a server keeps in memory so that checking a token touches no database: every session
  // not revoked whose user exists, and every blacklisted access-token id with its expiry.
  virtual std::vector<Session> unrevoked_sessions() = 0;
  virtual std::vector<std::pair<std::string, std::int64_t>> blacklist() = 0;

  virtual void insert_one_time_token(const std::string &token_hash, const std::string &user_id,
                                     TokenPurpose purpose, std::int64_t expires_at) = 0;
  // Deletes the token (single use) and, if it was still valid, sets *user_id.
  virtual ConsumeResult consume_one_time_token(const std::string &token_hash, TokenPurpose purpose,
                                               std::int64_t now, std::string *user_id) = 0;
  // Consumes a reset token, sets the new password and revokes every session of the user,
  // all in one transaction.
  virtual ConsumeResult reset_password(const std::string &token_hash, const std::string &new_hash,
                                       std::int64_t now, std::string *user_id) = 0;
  virtual void set_email_verified(const std::string &user_id, std::int64_t now) = 0;

  // Deletes expired sessions, blacklist entries and one-time tokens.
  virtual PurgeCounts purge_expired(std::int64_t now) = 0;

  // Signing keys, the signing one (not retired, newest) first, then the others newest first.
  virtual std::vector<SigningKeyRow> signing_keys() = 0;
  // Inserts first_key unless a key that is not retired exists; returns signing_keys().
  virtual std::vector<SigningKeyRow> ensure_signing_key(const SigningKeyRow &first_key) = 0;
  // Retires every key not retired yet (retired_at = now) and inserts next, in one transaction.
  virtual void rotate_signing_key(const SigningKeyRow &next, std::int64_t now) = 0;
  // Deletes keys retired at or before retired_before; returns how many.
  virtual int purge_signing_keys(std::int64_t retired_before) = 0;
  // A number that changes whenever another connection commits to the database (PRAGMA
  // data_version), so a server can notice what the admin commands changed.
  virtual std::int64_t data_version() = 0;
  // Gives back memory held for reading that is not needed now (a page cache filled by a full
  // scan); the next reads fill it again as they need.
  virtual void release_memory() {}
};

} // namespace latch::db
