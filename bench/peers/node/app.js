// The simplejwt routes on fastify (token, token/refresh, token/verify, register, getuser), answering as Django REST framework would.
'use strict';

const crypto = require('node:crypto');
const fastify = require('fastify');
const argon2 = require('@node-rs/argon2');
const { randomId, REFRESH_SECONDS } = require('./tokens');

// argon2id at Latch's default cost (OWASP): m=19456 KiB, t=2, p=1.
const ARGON2 = { algorithm: 2 /* Argon2id */, memoryCost: 19456, timeCost: 2, parallelism: 1 };
const MIN_PASSWORD = 8;

const REQUIRED = ['This field is required.'];
const BAD_CREDENTIALS = { detail: 'No active account found with the given credentials' };
const BAD_TOKEN = { detail: 'Token is invalid or expired', code: 'token_not_valid' };
const NO_CREDENTIALS = { detail: 'Authentication credentials were not provided.' };

function now() { return Math.floor(Date.now() / 1000); }

// {"field": ["This field is required."]} for each missing field, or null.
function missingFields(body, fields) {
  const errors = {};
  for (const f of fields) {
    if (typeof body[f] !== 'string' || body[f] === '') errors[f] = REQUIRED;
  }
  return Object.keys(errors).length ? errors : null;
}

function bearer(req) {
  const h = req.headers.authorization || '';
  return h.toLowerCase().startsWith('bearer ') ? h.slice(7).trim() : '';
}

class Handlers {
  constructor(store, tokens) {
    this.store = store;
    this.tokens = tokens;
    // Same cost for unknown users, so timing tells nothing.
    this.dummyHash = argon2.hashSync('not a password', ARGON2);
  }

  startSession(user) {
    const session = { id: randomId(), userId: user.id, refreshJti: randomId(),
                      expiresAt: now() + REFRESH_SECONDS };
    this.store.startSession(session);
    return this.tokens.pair(user, session.id, session.refreshJti);
  }

  async register(req, reply) {
    const body = req.body || {};
    const missing = missingFields(body, ['username', 'password']);
    if (missing) return reply.code(400).send(missing);
    if (body.password.length < MIN_PASSWORD) {
      return reply.code(400).send({ password: [
        `This password is too short. It must contain at least ${MIN_PASSWORD} characters.`] });
    }
    const user = { id: crypto.randomUUID(), username: body.username,
                   passwordHash: await argon2.hash(body.password, ARGON2), createdAt: now() };
    if (!this.store.addUser(user)) return reply.code(409).send({ detail: 'User already exists' });
    return reply.code(201).send(this.startSession(user));
  }

  async token(req, reply) {
    const body = req.body || {};
    const missing = missingFields(body, ['username', 'password']);
    if (missing) return reply.code(400).send(missing);
    const user = this.store.findUserByName(body.username);
    const ok = await argon2.verify(user ? user.password_hash : this.dummyHash, body.password);
    if (!user || !ok) return reply.code(401).send(BAD_CREDENTIALS);
    return this.startSession(user);
  }

  refresh(req, reply) {
    const body = req.body || {};
    const missing = missingFields(body, ['refresh']);
    if (missing) return reply.code(400).send(missing);
    const claims = this.tokens.verify(body.refresh, 'refresh');
    const user = claims && this.store.findUserById(claims.user_id);
    if (!user) return reply.code(401).send(BAD_TOKEN);
    const nextJti = randomId();
    if (this.store.rotate(claims.sid, claims.jti, nextJti, now()) !== 'rotated') {
      return reply.code(401).send(BAD_TOKEN);
    }
    return this.tokens.pair(user, claims.sid, nextJti);
  }

  // The claims of a live token: not blacklisted, its session not ended, a refresh token not rotated.
  liveClaims(token, type) {
    const claims = this.tokens.verify(token, type);
    if (!claims) return null;
    if (claims.token_type === 'access' && this.store.isBlacklisted(claims.jti)) return null;
    const session = this.store.findSession(claims.sid);
    if (!session || session.revoked_at !== null || session.user_id !== claims.user_id) return null;
    if (claims.token_type === 'refresh' && session.refresh_jti !== claims.jti) return null;
    return claims;
  }

  verify(req, reply) {
    const body = req.body || {};
    const missing = missingFields(body, ['token']);
    if (missing) return reply.code(400).send(missing);
    if (!this.liveClaims(body.token, null)) return reply.code(401).send(BAD_TOKEN);
    return {};
  }

  getuser(req, reply) {
    const token = bearer(req);
    if (!token) {
      return reply.code(401).header('WWW-Authenticate', 'Bearer realm="api"').send(NO_CREDENTIALS);
    }
    const claims = this.liveClaims(token, 'access');
    const user = claims && this.store.findUserById(claims.user_id);
    if (!user) return reply.code(401).send(BAD_TOKEN);
    return { username: user.username };
  }
}

function formParser(req, body, done) {
  done(null, Object.fromEntries(new URLSearchParams(body)));
}

function build(store, tokens) {
  const app = fastify({ logger: false, bodyLimit: 65536 });
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, formParser);
  const h = new Handlers(store, tokens);
  app.post('/auth/register', (req, reply) => h.register(req, reply));
  app.post('/auth/token', (req, reply) => h.token(req, reply));
  app.post('/auth/token/refresh', (req, reply) => h.refresh(req, reply));
  app.post('/auth/token/verify', (req, reply) => h.verify(req, reply));
  app.get('/auth/getuser', (req, reply) => h.getuser(req, reply));
  return app;
}

module.exports = { build };
