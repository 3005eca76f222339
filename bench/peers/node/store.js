// SQLite store of the Node peer: users, sessions (one live refresh jti each) and the access-token blacklist, as Latch keeps them.
'use strict';

const Database = require('better-sqlite3');

const SCHEMA = `
CREATE TABLE IF NOT EXISTS users (
  id            TEXT PRIMARY KEY,
  username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
  password_hash TEXT NOT NULL,
  created_at    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
  id          TEXT PRIMARY KEY,
  user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  refresh_jti TEXT NOT NULL,
  expires_at  INTEGER NOT NULL,
  revoked_at  INTEGER
);
CREATE TABLE IF NOT EXISTS token_blacklist (
  jti        TEXT PRIMARY KEY,
  expires_at INTEGER NOT NULL
);
`;

function open(path) {
  const db = new Database(path);
  db.pragma('busy_timeout = 5000');
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL'); // as Latch: survives a process crash, not a power cut
  db.pragma('foreign_keys = ON');
  return db;
}

// Creates the tables; the primary does it once before the workers start.
function migrate(path) {
  const db = open(path);
  db.exec(SCHEMA);
  db.close();
}

class Store {
  constructor(path) {
    this.db = open(path);
    this.insertUser = this.db.prepare(
      'INSERT INTO users (id, username, password_hash, created_at) VALUES (?, ?, ?, ?)');
    this.userByName = this.db.prepare('SELECT * FROM users WHERE username = ?');
    this.userById = this.db.prepare('SELECT * FROM users WHERE id = ?');
    this.insertSession = this.db.prepare(
      'INSERT INTO sessions (id, user_id, refresh_jti, expires_at) VALUES (?, ?, ?, ?)');
    this.sessionById = this.db.prepare('SELECT * FROM sessions WHERE id = ?');
    this.setRefreshJti = this.db.prepare('UPDATE sessions SET refresh_jti = ? WHERE id = ?');
    this.revokeSession = this.db.prepare('UPDATE sessions SET revoked_at = ? WHERE id = ?');
    this.blacklisted = this.db.prepare('SELECT 1 FROM token_blacklist WHERE jti = ?');
    // IMMEDIATE: take the write lock first, so two workers never deadlock upgrading a read.
    this.rotate = this.db.transaction(this.rotateLocked.bind(this)).immediate;
  }

  // Returns false when the username is taken.
  addUser(user) {
    try {
      this.insertUser.run(user.id, user.username, user.passwordHash, user.createdAt);
      return true;
    } catch (err) {
      if (err.code === 'SQLITE_CONSTRAINT_UNIQUE') return false;
      throw err;
    }
  }

  findUserByName(username) { return this.userByName.get(username); }
  findUserById(id) { return this.userById.get(id); }
  findSession(id) { return this.sessionById.get(id); }
  isBlacklisted(jti) { return this.blacklisted.get(jti) !== undefined; }

  startSession(session) {
    this.insertSession.run(session.id, session.userId, session.refreshJti, session.expiresAt);
  }

  // 'rotated', 'reused' (the session is revoked: RFC 9700 theft) or 'gone'.
  rotateLocked(sessionId, jti, nextJti, now) {
    const session = this.sessionById.get(sessionId);
    if (!session || session.revoked_at !== null || session.expires_at <= now) return 'gone';
    if (session.refresh_jti !== jti) {
      this.revokeSession.run(now, sessionId);
      return 'reused';
    }
    this.setRefreshJti.run(nextJti, sessionId);
    return 'rotated';
  }
}

module.exports = { Store, migrate };
