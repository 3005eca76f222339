// The storage the auth core sees, in parts by what they hold: users; sessions and revocation;
// one-time tokens; signing keys; the feed of changes the server's memory follows; and the
// outbox of mail waiting to be sent.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
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
// The database cannot be reached now (a server stopped or restarting, a connection lost, a
// statement past its timeout): the request may succeed if tried again, so the HTTP layer
// answers 503 rather than 500.
struct StoreUnavailable : StoreError {
  using StoreError::StoreError;
};

// The username rule, for rows that reach a store without their keys (a database from before
// the rule, a look-alike freed by a rename): the canonical key and its look-alike skeleton, or
// none when the rule refuses the name. Given by the layer that owns the rule (auth/identity.h's
// username_rule()), so no engine knows Unicode; without it such rows wait for one that has it.
struct UsernameKeys {
  std::string key, skeleton;
};
using UsernameRule = std::function<std::optional<UsernameKeys>(const std::string &username)>;

struct User {
  std::string id;
  std::string username; // as typed at sign-up
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
  bool active = true; // false: imported as Django's is_active = False, and cannot sign in
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
// What Users::import_users did with one user: inserted, or why not (its id, username or email
// is another user's).
enum class ImportResult { inserted, id_taken, username_taken, email_taken };
enum class RenameResult { renamed, taken, not_found };
// rotated: old_jti was the session's refresh token and new_jti is now. replayed: old_jti is the
// one the session's last rotation replaced, presented again within the reuse interval (two tabs
// refreshing at once): nothing rotates and nothing is revoked. reused: any other rotated-away
// token, and the session is revoked. gone: no live session.
enum class RotateResult { rotated, replayed, reused, gone };

// One rotation of Sessions::rotate_refresh. new_jti equal to old_jti renews without rotating
// (the APIs that answer only an access token).
struct Rotation {
  std::string session_id, user_id, old_jti, new_jti;
  std::int64_t new_expires_at = 0, now = 0;
  // Seconds after a rotation within which the token it replaced is replayed, not reused; 0:
  // every rotated-away token is theft.
  std::int64_t reuse_interval = 0;
};

// What Sessions::rotate_refresh did with one Rotation.
struct RotateOutcome {
  RotateResult result = RotateResult::gone;
  std::string refresh_jti; // rotated or replayed: the session's refresh token now
};

// What Sessions::rotate_refresh did with a batch: one outcome per rotation, in order, and the
// change-feed positions its transaction wrote, (feed_from, feed_to]. A follower of the feed
// that stands at feed_from can apply the outcomes itself instead of reading them back
// (SessionCache::apply_rotations); an engine that cannot tell leaves feed_to <= feed_from.
struct RotatedBatch {
  std::vector<RotateOutcome> outcomes;
  std::int64_t feed_from = 0, feed_to = 0;
};
enum class TokenPurpose { reset, verify_email };
enum class ConsumeResult { ok, invalid, expired };

// A reset or confirmation token, as stored: only its hash.
struct OneTimeToken {
  std::string token_hash;
  std::string user_id;
  TokenPurpose purpose = TokenPurpose::reset;
  std::int64_t expires_at = 0;
};

struct PurgeCounts {
  int sessions = 0;
  int blacklist = 0;
  int one_time_tokens = 0;
  int signing_keys = 0; // retired keys past their retention
  int mail = 0;         // outbox rows whose link died, and failed ones past their retention
};

// A mail to send, as it is put in the outbox (auth.db.sql, migration 5). It holds no secret:
// a mail that carries a one-time token's link has the link cut short after "token=", and the
// sender that takes it makes the token (Outbox::take_mail), so a leaked backup of the outbox
// gives no more than the token's hash row does.
struct OutgoingMail {
  std::string recipient;
  std::string subject;
  std::string body;
  // The one-time token whose link the mail carries, the byte of body where its token goes, and
  // the link's expiry: a mail whose token is gone (used, its user deleted) or whose link expired
  // while queued is never sent.
  std::optional<std::string> token_hash;
  std::size_t token_at = 0;
  std::optional<std::int64_t> link_expires_at;
  std::int64_t created_at = 0;
};

// A row of the outbox. queued: waiting for its next attempt; sending: claimed by a sender
// whose lease has not run out; failed: given up (SMTP 5xx, or temporary failures for too long).
enum class MailState { queued, sending, failed };
struct QueuedMail {
  std::int64_t id = 0;
  OutgoingMail mail;
  MailState state = MailState::queued;
  int attempts = 0;                 // times a sender took it since it was queued (or retried)
  std::int64_t queued_at = 0;       // enqueued, or retried: giving up counts from here
  std::int64_t next_attempt_at = 0; // queued: due from then
  std::int64_t lease_until = 0;     // sending: claimed until then
  std::int64_t updated_at = 0;
  std::string last_error; // "SMTP 451", "Couldn't connect to server": never the mail's text
  bool link_live = true;  // the token it carries still exists and its link has not expired
};

struct MailCounts {
  int queued = 0;  // waiting, those being sent included
  int sending = 0; // claimed by a sender now
  int failed = 0;
};

// A row of signing_keys (auth.db.sql, migrations 2 and 8).
struct SigningKeyRow {
  std::string kid;
  std::string secret; // HS256: the secret; other algs: the private key, PKCS#8 PEM
  std::int64_t created_at = 0;
  std::optional<std::int64_t> retired_at; // none: the key that signs, or a standby key
  bool legacy = false; // the jwt_secret of old: also verifies tokens that carry no kid
  std::string alg = "HS256";
  std::optional<std::int64_t> activated_at = std::nullopt; // none, not retired: standby
  bool standby() const { return !retired_at && !activated_at; }
};

// Users and their identities: one username key, skeleton and email namespace.
class Users {
public:
  virtual ~Users() = default;
  virtual std::optional<User> find_user_by_id(const std::string &id) = 0;
  virtual std::optional<User> find_user_by_email(const std::string &email_lower) = 0;
  // The user whose stored username is this text (ASCII case aside, as before migration 3).
  virtual std::optional<User> find_user_by_username(const std::string &username) = 0;
  virtual std::optional<User> find_user_by_username_key(const std::string &key) = 0;
  virtual std::vector<User> list_users() = 0;
  // Whether another user (any id but user.id) holds user's identity: its username (exact, key
  // or skeleton) or email, where a username and an email are one namespace (envelope signs in
  // by either): a username key equal to an email, or the reverse, is taken too.
  virtual InsertUserResult identity_taken(const User &user) = 0;
  // Inserts the user unless identity_taken says otherwise and, in the same transaction, what
  // it starts with: its first session and its address-confirmation token, when given. Nothing
  // of it is written unless all of it is.
  // The confirmation's mail, when given, goes in the same transaction too (the Outbox).
  virtual InsertUserResult insert_user(const User &user, const Session *first_session = nullptr,
                                       const OneTimeToken *confirmation = nullptr,
                                       const OutgoingMail *confirmation_mail = nullptr) = 0;
  // Inserts users in order in one transaction, each checked by identity_taken against those
  // already there and those inserted before it, and answers for each. One that is taken stops
  // the import and nothing is written, unless skip_taken (then it is left out); dry_run
  // answers the same and writes nothing. An answer shorter than users: stopped at its last.
  virtual std::vector<ImportResult> import_users(const std::vector<User> &users, bool skip_taken,
                                                 bool dry_run) = 0;
  // Gives the user user.id the username, key and skeleton of user, checked by identity_taken
  // in the same transaction.
  virtual RenameResult rename_user(const User &user, std::int64_t now) = 0;
  // A new hash of the same password (an upgrade at sign-in): sessions live on.
  virtual void update_password_hash(const std::string &user_id, const std::string &hash,
                                    std::int64_t now) = 0;
  // A new password: the hash and, in the same transaction, every session of the user revoked
  // and its outstanding reset links dropped, as a password reset does. False: no such user.
  virtual bool replace_password(const std::string &user_id, const std::string &hash,
                                std::int64_t now) = 0;
  virtual void set_email_verified(const std::string &user_id, std::int64_t now) = 0;
  // Deletes the user; its sessions and one-time tokens go with it (foreign keys cascade).
  virtual bool delete_user(const std::string &id) = 0;
};

// Sessions, refresh rotation and the access-token blacklist: what revocation is. Token checks
// do not read these (they read db::SessionCache, which the ChangeFeed keeps): writes and the
// admin commands do.
class Sessions {
public:
  virtual ~Sessions() = default;
  virtual void insert_session(const Session &session) = 0;
  virtual std::optional<Session> find_session(const std::string &id) = 0;
  virtual bool is_blacklisted(const std::string &jti) = 0;
  // Each rotation in order, in one transaction, one outcome each: the session's refresh token
  // swaps from old_jti to new_jti if old_jti is the current one (and old_jti is remembered with
  // the time, one step back); the one remembered, within reuse_interval of its rotation, is
  // replayed; any other jti means an already-rotated token came back, and the session is
  // revoked (RFC 9700). Throws StoreError, and then none of them happened.
  virtual RotatedBatch rotate_refresh(const std::vector<Rotation> &batch) = 0;
  virtual void revoke_session(const std::string &session_id, std::int64_t now) = 0;
  // Revokes every session of the user that is not revoked yet; returns how many.
  virtual int revoke_user_sessions(const std::string &user_id, std::int64_t now) = 0;
  // Revokes every session of every user; returns how many.
  virtual int revoke_all_sessions(std::int64_t now) = 0;
  // Ends a session and blacklists the access token that ended it, in one transaction.
  virtual void logout(const std::string &session_id, const std::string &access_jti,
                      std::int64_t access_expires_at, std::int64_t now) = 0;
  // The user's sessions, revoked and expired ones included, oldest first.
  virtual std::vector<Session> list_sessions(const std::string &user_id) = 0;
};

// Single-use tokens: password resets and address confirmations, stored as hashes.
class OneTimeTokens {
public:
  virtual ~OneTimeTokens() = default;
  // With a mail (the token's link), the mail goes into the Outbox in the same transaction:
  // neither is written unless both are.
  virtual void insert_one_time_token(const OneTimeToken &token,
                                     const OutgoingMail *mail = nullptr) = 0;
  // Deletes the token (single use) and, if it was still valid, sets *user_id.
  virtual ConsumeResult consume_one_time_token(const std::string &token_hash, TokenPurpose purpose,
                                               std::int64_t now, std::string *user_id) = 0;
  // Consumes a reset token, sets the new password, revokes every session of the user and drops
  // its other reset links, all in one transaction.
  virtual ConsumeResult reset_password(const std::string &token_hash, const std::string &new_hash,
                                       std::int64_t now, std::string *user_id) = 0;
};

// The signing-key ring.
class SigningKeys {
public:
  virtual ~SigningKeys() = default;
  // Signing keys, the signing one (active: activated, not retired, newest) first, then the
  // standby keys, then the retired ones, each newest first.
  virtual std::vector<SigningKeyRow> signing_keys() = 0;
  // Inserts first_key (active) unless an active key exists; returns signing_keys().
  virtual std::vector<SigningKeyRow> ensure_signing_key(const SigningKeyRow &first_key) = 0;
  // Retires every active key (retired_at = now) and inserts next, active, in one transaction.
  virtual void rotate_signing_key(const SigningKeyRow &next, std::int64_t now) = 0;
  // Inserts next as a standby key (activated_at NULL), replacing any standby key before it.
  virtual void add_standby_key(const SigningKeyRow &next) = 0;
  // Makes the standby key `kid` the active one and retires the active key, in one
  // transaction; false if there is no such standby key.
  virtual bool activate_signing_key(const std::string &kid, std::int64_t now) = 0;
  // Deletes keys retired at or before retired_before; returns how many.
  virtual int purge_signing_keys(std::int64_t retired_before) = 0;
};

// The admin console's data (auth.db.sql migration 12): its admins, apart from users; their
// sessions, stored by the hash of the cookie's token so that every server on the database
// knows them and deleting the admin ends them; and what its pages read (users a page at a
// time, counts, the database's size).
struct Admin {
  std::string id;
  std::string email; // lower-case
  std::string password_hash;
  std::int64_t created_at = 0;
};
struct ConsoleSession {
  std::string token_hash; // SHA-256 (hex) of the cookie's token
  std::string admin_id;
  std::string admin_email; // read with the session (find_console_session)
  std::string csrf_token;
  std::int64_t created_at = 0, last_seen_at = 0, expires_at = 0;
};
// Where a page of users ends: the list is ordered newest first by (created_at, id), and the
// next page starts after this.
struct UserCursor {
  std::int64_t created_at = 0;
  std::string id;
};
class Admins {
public:
  virtual ~Admins() = default;
  // False: the email is another admin's.
  virtual bool insert_admin(const Admin &admin) = 0;
  virtual std::optional<Admin> find_admin_by_email(const std::string &email_lower) = 0;
  virtual std::vector<Admin> list_admins() = 0; // oldest first
  virtual std::int64_t count_admins() = 0;
  // Deletes the admin and, with it, its console sessions. False: no such admin.
  virtual bool delete_admin(const std::string &email_lower) = 0;
  virtual void insert_console_session(const ConsoleSession &session) = 0;
  // The session and its admin's email; none if there is no such session (or admin).
  virtual std::optional<ConsoleSession> find_console_session(const std::string &token_hash) = 0;
  // Slides the session's idle expiry: it was used at `now`.
  virtual void touch_console_session(const std::string &token_hash, std::int64_t now,
                                     std::int64_t expires_at) = 0;
  virtual void delete_console_session(const std::string &token_hash) = 0;
  // Up to `limit` users, newest first, after `after` when given; with a non-empty `prefix`
  // (lower-case), only those whose username key or email starts with it. Served by indexes.
  virtual std::vector<User> page_users(const std::string &prefix,
                                       const std::optional<UserCursor> &after,
                                       std::size_t limit) = 0;
  virtual std::int64_t count_users() = 0;
  // The database's size on disk (SQLite: its pages; PostgreSQL: pg_database_size).
  virtual std::int64_t database_bytes() = 0;
};

// What every writer changed, by position: the server's memory (db::SessionCache) follows it,
// so a change made anywhere (this process, an admin command, another server on the same
// database) reaches token checks without any of them reading the database. Triggers write it
// (auth.db.sql), so no writer can forget to.
class ChangeFeed {
public:
  virtual ~ChangeFeed() = default;
  // Every session not revoked whose user exists and every blacklisted access-token id, as of
  // `position` in the feed; none that expired at or before `expired_by` (unix seconds; 0 keeps
  // them all), which only the purge still has to delete.
  struct Snapshot {
    std::vector<Session> sessions;
    std::vector<std::pair<std::string, std::int64_t>> blacklist; // jti, expires_at
    std::int64_t position = 0;
  };
  virtual Snapshot snapshot(std::int64_t expired_by) = 0;
  // One change, with the state of what it names now (read with the change).
  struct Change {
    enum class Kind { session, blacklist, user, signing_keys } kind = Kind::session;
    std::int64_t position = 0;
    std::string key;                // session id, jti, user id; empty for signing keys
    std::optional<Session> session; // session: the row if it is live, else none
    std::optional<std::int64_t> blacklisted_until; // blacklist: the entry's expiry
    bool user_exists = true;                       // user: false once deleted
  };
  // The changes after `position`, oldest first, at most `limit`; nullopt when the feed no
  // longer reaches back to `position` (pruned): take a new snapshot.
  virtual std::optional<std::vector<Change>> changes_since(std::int64_t position,
                                                           std::size_t limit) = 0;
  // Returns when a writer elsewhere may have committed (an engine's hint: a file changed, a
  // notification came), or after `timeout`: a wake-up, never a promise.
  virtual void wait_for_changes(std::chrono::milliseconds timeout) = 0;
};

// Mail waiting to be sent. Senders (a thread in each server, auth/mail.h) take a due mail by
// claiming it with a lease, so two senders, in one process or several on one database, never
// send one mail at once; a sender that dies leaves the lease to run out, and the mail is taken
// again. Each mark names the attempt it reports (QueuedMail::attempts as taken), so a sender
// whose lease ran out cannot overwrite what a later one decided.
class Outbox {
public:
  virtual ~Outbox() = default;
  // Puts a mail in the outbox, due now. Throws StoreError.
  virtual void enqueue_mail(const OutgoingMail &mail) = 0;
  // Claims the queued mail due longest (next_attempt_at <= now, no live lease) until
  // now + lease_seconds and counts the attempt; nullopt when none is due. Its link_live says
  // whether it may still be sent; if so, and it carries a token, that token's hash becomes
  // fresh_token_hash in the same transaction, so the token the sender made (and writes at
  // token_at) works and the one of any earlier attempt no longer does.
  virtual std::optional<QueuedMail> take_mail(std::int64_t now, std::int64_t lease_seconds,
                                              const std::string &fresh_token_hash) = 0;
  // Sent: the row is deleted.
  virtual void mail_sent(std::int64_t id) = 0;
  // A temporary failure: due again at next_attempt_at. False if the attempt is not the latest.
  virtual bool mail_deferred(std::int64_t id, int attempt, std::int64_t next_attempt_at,
                             const std::string &error, std::int64_t now) = 0;
  // Given up: state failed, kept for `latch mail retry` until the purge. False likewise.
  virtual bool mail_failed(std::int64_t id, int attempt, const std::string &error,
                           std::int64_t now) = 0;
  // The attempt was abandoned (the server is stopping): due again at once, for any sender.
  virtual void release_mail(std::int64_t id, int attempt) = 0;
  // Deletes, and returns, the mails no sender holds whose link expired or whose token is gone.
  virtual std::vector<QueuedMail> drop_undeliverable(std::int64_t now) = 0;
  // Every row, oldest first, with its state as of now.
  virtual std::vector<QueuedMail> list_mail(std::int64_t now) = 0;
  // Makes the mail (every mail, without an id) queued and due now, its attempts and the time
  // it gives up after counted afresh; a mail a sender holds now is left to it. Returns how many.
  virtual int retry_mail(std::optional<std::int64_t> id, std::int64_t now) = 0;
  // Deletes the mail (every mail, without an id) unsent; returns how many.
  virtual int drop_mail(std::optional<std::int64_t> id) = 0;
  virtual MailCounts mail_counts(std::int64_t now) = 0;
};

// One database: its parts, and what concerns all of it. An engine (SQLite; another later)
// implements each part; each caller uses the parts it needs.
class Store : public Users,
              public Sessions,
              public OneTimeTokens,
              public SigningKeys,
              public ChangeFeed,
              public Outbox,
              public Admins {
public:
  // Returns when the database can be read and a write could commit now; throws StoreError
  // saying why not (GET /readyz).
  virtual void ping() = 0;
  // Deletes expired sessions, blacklist entries and one-time tokens, retired signing keys
  // retired at or before keys_retired_before, and outbox rows no sender holds whose link died
  // or that failed more than a week ago.
  virtual PurgeCounts purge_expired(std::int64_t now, std::int64_t keys_retired_before) = 0;
  // Gives back memory held for reading that is not needed now (a page cache filled by a full
  // scan); the next reads fill it again as they need.
  virtual void release_memory() {}
  // What the engine does on its own time, called a few times a second by the server (SQLite:
  // a checkpoint once writes have been quiet for a second; the check that the file at the
  // path is still the one open). Throws StoreError.
  virtual void maintain() {}
};

} // namespace latch::db
