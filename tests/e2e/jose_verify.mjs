// Verifies tokens with npm jose's createRemoteJWKSet against a JWKS URL (tests/jwks/verifiers.py).
// Usage: node jose_verify.mjs JWKS_URL ALG < tokens.json   -> [{"ok", "sub" | "error"}, ...]
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [url, alg] = process.argv.slice(2);
let input = '';
for await (const chunk of process.stdin) input += chunk;
const tokens = JSON.parse(input);
// One key set for this run, as a service holds one: it fetches the JWKS and refetches on a kid
// it does not know.
const keys = createRemoteJWKSet(new URL(url));
const results = [];
for (const token of tokens) {
  try {
    const { payload } = await jwtVerify(token, keys, { algorithms: [alg] });
    results.push({ ok: true, sub: payload.sub });
  } catch (e) {
    results.push({ ok: false, error: `${e.code ?? e.name}: ${e.message}` });
  }
}
process.stdout.write(JSON.stringify(results));
