// JWT HS256 issue and verify for the Node peer (jsonwebtoken given a KeyObject), with Latch's claims.
'use strict';

const crypto = require('node:crypto');
const jwt = require('jsonwebtoken');

const ACCESS_SECONDS = Number(process.env.ACCESS_TTL || 3600);
const REFRESH_SECONDS = 24 * 3600;

function randomId() { return crypto.randomBytes(16).toString('base64url'); }

class Tokens {
  constructor(secret) {
    this.key = crypto.createSecretKey(Buffer.from(secret, 'utf8'));
  }

  sign(user, sessionId, type, jti, lifetime) {
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      sub: user.id, uid: user.id, user_id: user.id, username: user.username,
      token_type: type, jti, sid: sessionId, iat: now, exp: now + lifetime,
    };
    return jwt.sign(claims, this.key, { algorithm: 'HS256' });
  }

  // The pair answered by token, register and refresh.
  pair(user, sessionId, refreshJti) {
    return {
      refresh: this.sign(user, sessionId, 'refresh', refreshJti, REFRESH_SECONDS),
      access: this.sign(user, sessionId, 'access', randomId(), ACCESS_SECONDS),
    };
  }

  // The claims, or null for a bad, expired or wrong-type token. HS256 only.
  verify(token, type) {
    try {
      const claims = jwt.verify(token, this.key, { algorithms: ['HS256'] });
      if (type && claims.token_type !== type) return null;
      return claims;
    } catch {
      return null;
    }
  }
}

module.exports = { Tokens, randomId, REFRESH_SECONDS };
