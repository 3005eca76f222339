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
