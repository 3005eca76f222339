-- Latch schema for PostgreSQL (db/postgres_store.cpp), the same data as auth.db.sql's for
-- SQLite. Each block below is one numbered migration; the database records the last one applied
-- in latch_schema.version, and the store applies each block in one transaction while it holds
-- an advisory lock, so two servers starting together never both migrate. Append new blocks;
-- never edit one that has shipped. Times are unix seconds, as in SQLite.

-- migration 1
CREATE TABLE users (
  id                text PRIMARY KEY,
  username          text NOT NULL,
  email             text UNIQUE,                 -- lower-case; NULL for simplejwt sign-ups
  password_hash     text NOT NULL,
  display_name      text NOT NULL DEFAULT '',
  profile_picture   text NOT NULL DEFAULT '',
  phone_number      text NOT NULL DEFAULT '',
  email_verified    boolean NOT NULL DEFAULT false,
  created_at        bigint NOT NULL,
  updated_at        bigint NOT NULL,
  username_key      text UNIQUE,                 -- auth.db.sql migration 3
  username_skeleton text,
  is_active         boolean NOT NULL DEFAULT true,
  row_order         bigint GENERATED ALWAYS AS IDENTITY  -- SQLite's rowid: insertion order
);
-- SQLite's COLLATE NOCASE: ASCII letters only (lower() under the C collation folds no others).
CREATE UNIQUE INDEX users_username_nocase ON users (lower(username COLLATE "C"));
CREATE INDEX users_username_skeleton ON users (username_skeleton);

CREATE TABLE sessions (
  id                   text PRIMARY KEY,
  user_id              text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  api                  text NOT NULL,
  refresh_jti          text,
  created_at           bigint NOT NULL,
  expires_at           bigint NOT NULL,
  revoked_at           bigint,
  previous_refresh_jti text,                     -- auth.db.sql migration 6
  rotated_at           bigint,
  row_order            bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expiry ON sessions(expires_at);

CREATE TABLE token_blacklist (
  jti        text PRIMARY KEY,
  expires_at bigint NOT NULL
);
CREATE INDEX token_blacklist_expiry ON token_blacklist(expires_at);

CREATE TABLE one_time_tokens (
  token_hash text PRIMARY KEY,
  user_id    text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  purpose    text NOT NULL CHECK (purpose IN ('reset', 'verify_email')),
  expires_at bigint NOT NULL
);
CREATE INDEX one_time_tokens_expiry ON one_time_tokens(expires_at);
CREATE INDEX one_time_tokens_user ON one_time_tokens(user_id);

CREATE TABLE settings (
  key   text PRIMARY KEY,
  value text NOT NULL
);

-- auth.db.sql migrations 2 and 8.
CREATE TABLE signing_keys (
  kid          text PRIMARY KEY,
  secret       text NOT NULL,
  created_at   bigint NOT NULL,
  retired_at   bigint,
  legacy       boolean NOT NULL DEFAULT false,
  alg          text NOT NULL DEFAULT 'HS256' CHECK (alg IN ('HS256', 'EdDSA', 'ES256', 'RS256')),
  activated_at bigint,
  row_order    bigint GENERATED ALWAYS AS IDENTITY
);

-- auth.db.sql migration 5.
CREATE TABLE outbox (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- never reused
  recipient       text NOT NULL,
  subject         text NOT NULL,
  body            text NOT NULL,
  token_hash      text,
  token_at        bigint NOT NULL DEFAULT 0,
  link_expires_at bigint,
  state           text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'failed')),
  attempts        integer NOT NULL DEFAULT 0,
  created_at      bigint NOT NULL,
  queued_at       bigint NOT NULL,
  next_attempt_at bigint NOT NULL,
  lease_until     bigint NOT NULL DEFAULT 0,
  updated_at      bigint NOT NULL,
  last_error      text NOT NULL DEFAULT ''
);
CREATE INDEX outbox_due ON outbox(state, next_attempt_at);

-- The change feed (auth.db.sql migrations 4 and 9): kind 1 a session (id), 2 a blacklisted
-- access token (jti), 3 a user (id), 4 the signing keys. A follower reads it by position, so
-- positions must be given in commit order, which a sequence alone does not do (of two writers,
-- the one that took the smaller number may commit last, after a reader has gone past it). So
-- every writer of the feed holds the feed's advisory lock (1279349827, 1) from before its first
-- feed row to its commit: the triggers take it, and the store takes it at the start of each
-- transaction that will write the feed (before any row lock, so two writers cannot deadlock).
-- Each commit that wrote the feed also notifies latch_changes, which other servers LISTEN to.
-- change_floor holds the last position pruned.
CREATE SEQUENCE changes_position;
CREATE TABLE changes (
  position bigint PRIMARY KEY,
  kind     smallint NOT NULL,
  key      text NOT NULL,
  at       bigint NOT NULL DEFAULT extract(epoch FROM now())::bigint
);
CREATE TABLE change_floor (position bigint NOT NULL);
INSERT INTO change_floor(position) VALUES (0);

CREATE FUNCTION latch_feed(kind smallint, key text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(1279349827, 1);
  INSERT INTO changes(position, kind, key) VALUES (nextval('changes_position'), kind, key);
  PERFORM pg_notify('latch_changes', '');
END $$;

CREATE FUNCTION latch_session_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM latch_feed(1::smallint, OLD.id);
  ELSE
    PERFORM latch_feed(1::smallint, NEW.id);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER sessions_written AFTER INSERT OR UPDATE ON sessions
  FOR EACH ROW EXECUTE FUNCTION latch_session_changed();
-- The deletion of a session that expired (the purge) or was revoked already changes nothing a
-- server holds.
CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions FOR EACH ROW
  WHEN (OLD.revoked_at IS NULL AND OLD.expires_at > extract(epoch FROM now())::bigint)
  EXECUTE FUNCTION latch_session_changed();

CREATE FUNCTION latch_blacklist_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM latch_feed(2::smallint, NEW.jti);
  RETURN NULL;
END $$;
CREATE TRIGGER blacklist_inserted AFTER INSERT ON token_blacklist
  FOR EACH ROW EXECUTE FUNCTION latch_blacklist_changed();

CREATE FUNCTION latch_user_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM latch_feed(3::smallint, OLD.id);
  ELSE
    PERFORM latch_feed(3::smallint, NEW.id);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER users_written AFTER UPDATE OR DELETE ON users
  FOR EACH ROW EXECUTE FUNCTION latch_user_changed();

CREATE FUNCTION latch_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM latch_feed(4::smallint, '');
  RETURN NULL;
END $$;
CREATE TRIGGER signing_keys_written AFTER INSERT OR UPDATE OR DELETE ON signing_keys
  FOR EACH ROW EXECUTE FUNCTION latch_keys_changed();

-- migration 4
-- auth.db.sql migration 12: the console's admins and sessions. The text_pattern_ops indexes
-- serve the console's prefix search (a byte-wise range) under any collation.
CREATE TABLE admins (
  id            text PRIMARY KEY,
  email         text NOT NULL UNIQUE,
  password_hash text NOT NULL,
  created_at    bigint NOT NULL
);
CREATE TABLE console_sessions (
  token_hash   text PRIMARY KEY,
  admin_id     text NOT NULL REFERENCES admins(id) ON DELETE CASCADE,
  csrf_token   text NOT NULL,
  created_at   bigint NOT NULL,
  last_seen_at bigint NOT NULL,
  expires_at   bigint NOT NULL
);
CREATE INDEX console_sessions_admin ON console_sessions(admin_id);
CREATE INDEX console_sessions_expiry ON console_sessions(expires_at);
CREATE INDEX users_created ON users(created_at, id);
CREATE INDEX users_username_key_prefix ON users(username_key text_pattern_ops);
CREATE INDEX users_email_prefix ON users(email text_pattern_ops);
