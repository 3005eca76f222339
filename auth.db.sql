-- Latch schema. Each block below is one numbered migration; a database records the
-- last one applied in PRAGMA user_version, and each block runs in one transaction.
-- Append new blocks; never edit one that has shipped.

-- migration 1
CREATE TABLE users (
  id              TEXT PRIMARY KEY,                      -- UUID v4
  username        TEXT NOT NULL UNIQUE COLLATE NOCASE,   -- case-insensitive
  email           TEXT UNIQUE,                           -- lower-case; NULL for simplejwt sign-ups
  password_hash   TEXT NOT NULL,                         -- argon2id PHC string
  display_name    TEXT NOT NULL DEFAULT '',
  profile_picture TEXT NOT NULL DEFAULT '',
  phone_number    TEXT NOT NULL DEFAULT '',
  email_verified  INTEGER NOT NULL DEFAULT 0,
  created_at      INTEGER NOT NULL,                      -- unix seconds
  updated_at      INTEGER NOT NULL
);

-- A sign-in starts a session; refresh_jti is the one refresh token that may still be used.
CREATE TABLE sessions (
  id          TEXT PRIMARY KEY,
  user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  api         TEXT NOT NULL,
  refresh_jti TEXT,
  created_at  INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL,
  revoked_at  INTEGER
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expiry ON sessions(expires_at);

-- Access tokens presented at logout, refused until they expire.
CREATE TABLE token_blacklist (
  jti        TEXT PRIMARY KEY,
  expires_at INTEGER NOT NULL
);
CREATE INDEX token_blacklist_expiry ON token_blacklist(expires_at);

-- Password-reset and email-confirmation tokens, stored only as SHA-256 hashes.
CREATE TABLE one_time_tokens (
  token_hash TEXT PRIMARY KEY,
  user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  purpose    TEXT NOT NULL CHECK (purpose IN ('reset', 'verify_email')),
  expires_at INTEGER NOT NULL
);
CREATE INDEX one_time_tokens_expiry ON one_time_tokens(expires_at);

-- Server-wide values: the generated JWT signing secret.
CREATE TABLE settings (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

-- migration 2
-- HS256 signing keys, so the key can be changed (latch secret rotate) without signing every
-- user out. The key not retired signs and names itself in each token's kid header; every key
-- verifies the tokens that name it, a retired one until all it signed have expired, after
-- which it is purged. The secret kept in settings as jwt_secret before this migration becomes
-- the first key, and the only legacy one: it also verifies the tokens it signed without a kid.
-- Without such a secret the server makes the first key at start.
CREATE TABLE signing_keys (
  kid        TEXT PRIMARY KEY,            -- public: [A-Za-z0-9_-], at most 64 characters
  secret     TEXT NOT NULL,
  created_at INTEGER NOT NULL,            -- unix seconds
  retired_at INTEGER,                     -- NULL: the signing key
  legacy     INTEGER NOT NULL DEFAULT 0   -- 1: also verifies tokens that carry no kid
);
INSERT INTO signing_keys(kid, secret, created_at, retired_at, legacy)
  SELECT lower(hex(randomblob(6))), value, CAST(strftime('%s', 'now') AS INTEGER), NULL, 1
  FROM settings WHERE key = 'jwt_secret';
DELETE FROM settings WHERE key = 'jwt_secret';

-- migration 3
-- Look-alike usernames are one account (SPEC.md "One user store"). username_key is the username
-- after canonical_username (auth/identity.h: NFKC_Casefold, invisible and bidi characters
-- refused), unique; username_skeleton its UTS #39 confusable skeleton, which a new username may
-- not share. SQLite cannot compute either: the store fills them for existing rows when it opens
-- the database, oldest first. A row whose key an older row holds keeps a NULL key (and still
-- signs in by its exact username) until `latch user rename` gives it another name.
ALTER TABLE users ADD COLUMN username_key TEXT;
ALTER TABLE users ADD COLUMN username_skeleton TEXT;
CREATE UNIQUE INDEX users_username_key ON users(username_key);
CREATE INDEX users_username_skeleton ON users(username_skeleton);

-- migration 4
-- What every writer changed, by position: a server keeps live sessions and the blacklist in
-- memory (db/session_cache.h) and follows this feed to learn what others changed (an admin
-- command, another server on the same database), instead of reloading everything. Triggers
-- write it, so no writer can forget to. kind: 1 a session (id), 2 a blacklisted access token
-- (jti), 3 a user (id), 4 the signing keys. The deletion of a session that has expired (the
-- purge) or was revoked already changes nothing a server holds, so it is not written. Rows
-- older than a few minutes are pruned; change_floor holds the last position pruned, so a
-- reader that fell behind it knows to load everything again.
CREATE TABLE changes (
  position INTEGER PRIMARY KEY AUTOINCREMENT,
  kind     INTEGER NOT NULL,
  key      TEXT NOT NULL,
  at       INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER))
);
CREATE INDEX changes_at ON changes(at);
CREATE TABLE change_floor (position INTEGER NOT NULL);
INSERT INTO change_floor(position) VALUES (0);
CREATE TRIGGER sessions_inserted AFTER INSERT ON sessions
  BEGIN INSERT INTO changes(kind, key) VALUES (1, NEW.id); END;
CREATE TRIGGER sessions_updated AFTER UPDATE ON sessions
  BEGIN INSERT INTO changes(kind, key) VALUES (1, NEW.id); END;
CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions
  WHEN OLD.revoked_at IS NULL AND OLD.expires_at > CAST(strftime('%s', 'now') AS INTEGER)
  BEGIN INSERT INTO changes(kind, key) VALUES (1, OLD.id); END;
CREATE TRIGGER blacklist_inserted AFTER INSERT ON token_blacklist
  BEGIN INSERT INTO changes(kind, key) VALUES (2, NEW.jti); END;
CREATE TRIGGER users_updated AFTER UPDATE ON users
  BEGIN INSERT INTO changes(kind, key) VALUES (3, NEW.id); END;
CREATE TRIGGER users_deleted AFTER DELETE ON users
  BEGIN INSERT INTO changes(kind, key) VALUES (3, OLD.id); END;
CREATE TRIGGER signing_keys_inserted AFTER INSERT ON signing_keys
  BEGIN INSERT INTO changes(kind, key) VALUES (4, ''); END;
CREATE TRIGGER signing_keys_updated AFTER UPDATE ON signing_keys
  BEGIN INSERT INTO changes(kind, key) VALUES (4, ''); END;
CREATE TRIGGER signing_keys_deleted AFTER DELETE ON signing_keys
  BEGIN INSERT INTO changes(kind, key) VALUES (4, ''); END;

-- migration 5
-- The outbox: mail waiting to be sent (auth/mail.h). A mail that carries a one-time token's
-- link is written in the same transaction as the token, so a link is never made without its
-- mail nor mailed without its token, and waits here through SMTP outages and restarts. It holds
-- no secret: body is the text with its link cut short after "token=", and the sender, when it
-- takes the row, gives the token row a fresh hash (token_hash here too) and writes the matching
-- token at byte token_at of the mail it sends. So a leaked backup shows no more than
-- one_time_tokens already does (hashes), and each attempt mails a link that works while the
-- ones before it no longer do. A sender claims a row until lease_until, so two servers never
-- send one mail at once (one that dies mid-exchange leaves the lease to run out, and the mail
-- may go twice). A sent mail's row is deleted; a temporary failure (SMTP 4xx, no connection, a
-- time-out) sets next_attempt_at by exponential backoff; a permanent one (SMTP 5xx, or failing
-- for too long) sets state 'failed', kept a week for `latch mail retry`. A row whose token is
-- gone (used, its user deleted) or whose link_expires_at has passed is deleted unsent.
CREATE TABLE outbox (
  id              INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: `latch mail drop ID`
  recipient       TEXT NOT NULL,
  subject         TEXT NOT NULL,
  body            TEXT NOT NULL,                     -- without the token
  token_hash      TEXT,                              -- the one_time_tokens row it links to
  token_at        INTEGER NOT NULL DEFAULT 0,        -- where in body the token goes
  link_expires_at INTEGER,                           -- unix seconds; not sent from then on
  state           TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'failed')),
  attempts        INTEGER NOT NULL DEFAULT 0,        -- also names the latest claim
  created_at      INTEGER NOT NULL,
  queued_at       INTEGER NOT NULL,                  -- enqueued or retried: gives up from here
  next_attempt_at INTEGER NOT NULL,
  lease_until     INTEGER NOT NULL DEFAULT 0,
  updated_at      INTEGER NOT NULL,
  last_error      TEXT NOT NULL DEFAULT ''           -- "SMTP 451": never the mail's text
);
CREATE INDEX outbox_due ON outbox(state, next_attempt_at);

-- migration 6
-- The reuse interval (--refresh-reuse-interval): two tabs, or parallel requests that all got a
-- 401, present the same refresh token within a second, and only the first rotates it. A
-- rotation keeps the token it replaced in previous_refresh_jti and its time (unix seconds, the
-- server's wall clock) in rotated_at, so that token, presented again within the interval, is
-- answered with the session's current refresh token instead of being taken for theft. Only one
-- step back: a token rotated away before that is theft as ever. NULL: never rotated.
ALTER TABLE sessions ADD COLUMN previous_refresh_jti TEXT;
ALTER TABLE sessions ADD COLUMN rotated_at INTEGER;

-- migration 7
-- Imported users (latch user import): Django's is_active. An inactive user keeps its row and its
-- password hash but cannot sign in, as in Django; every user Latch makes itself is active.
ALTER TABLE users ADD COLUMN is_active INTEGER NOT NULL DEFAULT 1;

-- migration 8
-- Asymmetric signing keys (--jwt-alg EdDSA, ES256, RS256) and key states. alg is the one JWS
-- algorithm a key signs and verifies (RFC 8725 3.1: a kid never selects another); for HS256
-- secret holds the secret, for the others the private key as PKCS#8 PEM (the public key is
-- derived from it and published at /.well-known/jwks.json). activated_at NULL on a key not
-- retired: a standby key, published but signing nothing until `latch secret rotate` activates
-- it. The keys before this migration were all active from their creation.
ALTER TABLE signing_keys ADD COLUMN alg TEXT NOT NULL DEFAULT 'HS256'
  CHECK (alg IN ('HS256', 'EdDSA', 'ES256', 'RS256'));
ALTER TABLE signing_keys ADD COLUMN activated_at INTEGER;
UPDATE signing_keys SET activated_at = created_at;

-- migration 9
-- The change feed costs a refresh less: a rotation is one row here, and with AUTOINCREMENT and
-- the index on `at` it was three b-trees (sqlite_sequence, changes, changes_at) written per
-- commit besides the session's. Positions stay increasing without AUTOINCREMENT because the
-- prune never deletes the newest row (a new row takes the largest position + 1); the high-water
-- mark of the old table is kept as a row for the same reason. The prune walks the oldest rows
-- in position order and stops at the first younger than the retention, so it needs no index.
-- The triggers are dropped and made again around the swap: they name the table.
DROP TRIGGER sessions_inserted;
DROP TRIGGER sessions_updated;
DROP TRIGGER sessions_deleted;
DROP TRIGGER blacklist_inserted;
DROP TRIGGER users_updated;
DROP TRIGGER users_deleted;
DROP TRIGGER signing_keys_inserted;
DROP TRIGGER signing_keys_updated;
DROP TRIGGER signing_keys_deleted;
CREATE TABLE changes_v7 (
  position INTEGER PRIMARY KEY,
  kind     INTEGER NOT NULL,
  key      TEXT NOT NULL,
  at       INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER))
);
INSERT INTO changes_v7(position, kind, key, at) SELECT position, kind, key, at FROM changes;
INSERT OR IGNORE INTO changes_v7(position, kind, key) SELECT seq, 4, '' FROM sqlite_sequence
  WHERE name = 'changes';
DROP TABLE changes;
ALTER TABLE changes_v7 RENAME TO changes;
CREATE TRIGGER sessions_inserted AFTER INSERT ON sessions
  BEGIN INSERT INTO changes(kind, key) VALUES (1, NEW.id); END;
CREATE TRIGGER sessions_updated AFTER UPDATE ON sessions
  BEGIN INSERT INTO changes(kind, key) VALUES (1, NEW.id); END;
CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions
  WHEN OLD.revoked_at IS NULL AND OLD.expires_at > CAST(strftime('%s', 'now') AS INTEGER)
  BEGIN INSERT INTO changes(kind, key) VALUES (1, OLD.id); END;
CREATE TRIGGER blacklist_inserted AFTER INSERT ON token_blacklist
  BEGIN INSERT INTO changes(kind, key) VALUES (2, NEW.jti); END;
CREATE TRIGGER users_updated AFTER UPDATE ON users
  BEGIN INSERT INTO changes(kind, key) VALUES (3, NEW.id); END;
CREATE TRIGGER users_deleted AFTER DELETE ON users
  BEGIN INSERT INTO changes(kind, key) VALUES (3, OLD.id); END;
CREATE TRIGGER signing_keys_inserted AFTER INSERT ON signing_keys
  BEGIN INSERT INTO changes(kind, key) VALUES (4, ''); END;
CREATE TRIGGER signing_keys_updated AFTER UPDATE ON signing_keys
  BEGIN INSERT INTO changes(kind, key) VALUES (4, ''); END;
CREATE TRIGGER signing_keys_deleted AFTER DELETE ON signing_keys
  BEGIN INSERT INTO changes(kind, key) VALUES (4, ''); END;

-- migration 12
-- The admin console (/_/): its admins, apart from users (latch admin add), and its sessions,
-- kept here rather than in memory so that any server on the database accepts them and
-- deleting an admin (or signing out) ends them everywhere. Only the hash of a session's cookie
-- is stored: a copy of the database signs nobody in. The users' index on (created_at, id) is
-- the console's list order, read a page at a time after a cursor.
CREATE TABLE admins (
  id            TEXT PRIMARY KEY,
  email         TEXT NOT NULL UNIQUE,  -- lower-case
  password_hash TEXT NOT NULL,         -- argon2id PHC string
  created_at    INTEGER NOT NULL
);
CREATE TABLE console_sessions (
  token_hash   TEXT PRIMARY KEY,       -- SHA-256 of the cookie's random token
  admin_id     TEXT NOT NULL REFERENCES admins(id) ON DELETE CASCADE,
  csrf_token   TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL        -- last_seen_at + the idle limit: slides with use
);
CREATE INDEX console_sessions_admin ON console_sessions(admin_id);
CREATE INDEX console_sessions_expiry ON console_sessions(expires_at);
CREATE INDEX users_created ON users(created_at, id);
