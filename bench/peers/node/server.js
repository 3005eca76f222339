// Node peer entry point: the primary creates the database and forks WORKERS workers that share PORT (node cluster).
'use strict';

const cluster = require('node:cluster');
const crypto = require('node:crypto');
const { Store, migrate } = require('./store');
const { Tokens } = require('./tokens');
const { build } = require('./app');

const PORT = Number(process.env.PORT || 8000);
const HOST = process.env.HOST || '127.0.0.1';
const DB = process.env.DB || './node-peer.db';
const WORKERS = Number(process.env.WORKERS || 2);

function startPrimary() {
  migrate(DB);
  // One secret for every worker, so a token signed by one verifies in the others.
  const secret = process.env.JWT_SECRET || crypto.randomBytes(32).toString('base64url');
  for (let i = 0; i < WORKERS; i++) cluster.fork({ JWT_SECRET: secret });
  cluster.on('exit', (worker, code, signal) => {
    console.error(`node peer: worker ${worker.process.pid} exited (${signal || code})`);
  });
  console.log(`node peer: listening on http://${HOST}:${PORT} with ${WORKERS} workers, db ${DB}`);
}

async function startWorker() {
  const app = build(new Store(DB), new Tokens(process.env.JWT_SECRET));
  await app.listen({ host: HOST, port: PORT });
}

if (cluster.isPrimary) {
  startPrimary();
} else {
  startWorker().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
