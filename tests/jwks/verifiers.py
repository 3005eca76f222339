#!/usr/bin/python3
"""Real JWKS verifiers against a running Latch: PyJWT's PyJWKClient or npm jose's
createRemoteJWKSet fetch /.well-known/jwks.json and verify access tokens of all five APIs, for
each asymmetric alg: before a rotation, with a standby key, after `latch secret rotate
--activate`, and after the old key has left the JWKS (its tokens refused then).

Usage: verifiers.py PATH/TO/latch pyjwt|jose
Exit 0 passed, 1 failed, 77 skipped (the verifier or libfaketime is not installed).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
JOSE_SCRIPT = os.path.join(HERE, "..", "e2e", "jose_verify.mjs")
JOSE_MODULES = os.path.join(HERE, "..", "e2e", "node_modules", "jose", "package.json")
FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
PASSWORD = "correct horse battery"
ACCESS_TTL, REFRESH_TTL = 60, 120  # the old key then leaves the JWKS 120 s + 5 min after rotating
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")

failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)


def skip(why):
    print("SKIPPED: " + why)
    sys.exit(77)


def http(method, url, body=None, bearer=None, form=False):
    data, headers = None, {}
    if body is not None:
        if form:
            data = "&".join(f"{k}={v}" for k, v in body.items()).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
    if bearer:
        headers["Authorization"] = "Bearer " + bearer
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"null")


def header_of(token):
    import base64
    part = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class PyJwtVerifier:
    name = "PyJWT PyJWKClient"

    def __init__(self):
        try:
            import jwt  # noqa: F401  (Debian python3-jwt, python3-cryptography)
            from jwt import PyJWKClient  # noqa: F401
            import cryptography  # noqa: F401
        except ImportError as e:
            skip(f"PyJWT or cryptography not installed ({e}): apt-get install python3-jwt "
                 "python3-cryptography (make test-deps)")

    def verify(self, jwks_url, alg, tokens):
        import jwt
        # A fresh client per phase: a verifier's cache may hold a key up to max-age.
        client = jwt.PyJWKClient(jwks_url, cache_jwk_set=False)
        out = []
        for t in tokens:
            try:
                key = client.get_signing_key_from_jwt(t)
                claims = jwt.decode(t, key.key, algorithms=[alg])
                out.append({"ok": True, "sub": claims["sub"]})
            except Exception as e:  # PyJWKClientError (no such kid), InvalidSignatureError ...
                out.append({"ok": False, "error": f"{type(e).__name__}: {e}"})
        return out


class JoseVerifier:
    name = "npm jose createRemoteJWKSet"

    def __init__(self):
        if not shutil.which("node"):
            skip("Node.js not installed: run make e2e-deps")
        if not os.path.exists(JOSE_MODULES):
            skip("npm jose not installed (tests/e2e/node_modules): run make e2e-deps")

    def verify(self, jwks_url, alg, tokens):
        # A new process per phase: a fresh createRemoteJWKSet and its cache.
        r = subprocess.run(["node", JOSE_SCRIPT, jwks_url, alg], input=json.dumps(tokens),
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("jose_verify.mjs failed: " + r.stderr)
        return json.loads(r.stdout)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_alg(latch, verifier, alg, work):
    db = os.path.join(work, alg + ".db")
    clock = os.path.join(work, alg + ".faketime")
    with open(clock, "w") as f:
        f.write("+0\n")
    env = dict(os.environ)
    env.pop("LATCH_JWT_SECRET", None)
    env.update({
        "LATCH_DB": db, "LATCH_JWT_ALG": alg, "LATCH_RATE_LIMIT": "0",
        "LATCH_MAX_FAILED_LOGINS": "0", "LATCH_ARGON2_MEMORY_KIB": "64",
        "LATCH_ARGON2_ITERATIONS": "1", "LATCH_MAX_CONNECTIONS_PER_ADDRESS": "0",
    })
    for api in ("PICFLUX", "SIMPLEJWT", "FLASK", "V1", "ENVELOPE"):
        env[f"LATCH_{api}_ACCESS_TTL"] = str(ACCESS_TTL)
        if api != "ENVELOPE":
            env[f"LATCH_{api}_REFRESH_TTL"] = str(REFRESH_TTL)
    admin_env = dict(env)  # the admin commands run on the real clock
    server_env = dict(env, LD_PRELOAD=FAKETIME, FAKETIME_TIMESTAMP_FILE=clock,
                      FAKETIME_NO_CACHE="1", FAKETIME_DONT_FAKE_MONOTONIC="1")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(os.path.join(work, alg + ".log"), "w")
    server = subprocess.Popen([latch, "serve", "--addr", f"127.0.0.1:{port}"], env=server_env,
                              stdout=log, stderr=log)
    try:
        for _ in range(100):
            try:
                if http("GET", base + "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        jwks_url = base + "/.well-known/jwks.json"

        def jwks():
            status, headers, body = http("GET", jwks_url)
            check(status == 200, f"{alg}: GET /.well-known/jwks.json answers 200")
            leaked = [m for k in body["keys"] for m in PRIVATE_MEMBERS if m in k]
            check(not leaked, f"{alg}: no private or symmetric member in the JWKS {leaked}")
            return [k["kid"] for k in body["keys"]]

        def admin(*args):
            r = subprocess.run([latch, *args], env=admin_env, capture_output=True, text=True)
            check(r.returncode == 0, f"{alg}: latch {' '.join(args)} -> {r.returncode} {r.stderr}")
            return r.stdout

        user = f"jw{alg.lower()}{os.getpid()}"
        email = user + "@example.com"
        status, _, _ = http("POST", base + "/api/v1/register?sendEmail=false",
                            {"email": email, "username": user, "password": PASSWORD})
        check(status == 201, f"{alg}: v1 register")

        def five_tokens():
            """An access token from each API's sign-in."""
            out = {}
            _, _, b = http("POST", base + "/api/auth/signin", {"email": email, "password": PASSWORD})
            out["picflux"] = b["access_token"]
            _, _, b = http("POST", base + "/auth/token", {"username": user, "password": PASSWORD},
                           form=True)
            out["simplejwt"] = b["access"]
            _, _, b = http("POST", base + "/auth/login", {"username": user, "password": PASSWORD})
            out["flask"] = b["access_token"]
            _, _, b = http("POST", base + "/api/v1/login", {"email": email, "password": PASSWORD})
            out["v1"] = b["access_token"]
            _, _, b = http("POST", base + "/api/v1/auth/login",
                           {"identity": user, "password": PASSWORD})
            out["envelope"] = b["data"][0]
            return out

        def verify(phase, tokens, want_ok):
            results = verifier.verify(jwks_url, alg, list(tokens.values()))
            subs = set()
            for (api, _), r in zip(tokens.items(), results):
                what = "verifies" if want_ok else "refuses"
                check(r["ok"] == want_ok,
                      f"{alg} {phase}: {verifier.name} {what} the {api} access token"
                      + ("" if r["ok"] == want_ok else f" ({r.get('error', 'it verified')})"))
                if r["ok"]:
                    subs.add(r["sub"])
            if want_ok:
                check(len(subs) == 1, f"{alg} {phase}: one user behind the five tokens")

        old = five_tokens()
        old_kid = header_of(old["picflux"])["kid"]
        check(all(header_of(t) == {"alg": alg, "typ": "JWT", "kid": old_kid}
                  for t in old.values()), f"{alg}: every token names alg {alg} and kid {old_kid}")
        check(jwks() == [old_kid], f"{alg}: the JWKS holds the signing key alone")
        verify("before a rotation", old, True)

        admin("secret", "rotate")
        for _ in range(100):  # the server follows the database's change feed within a second
            kids = jwks()
            if len(kids) == 2:
                break
            time.sleep(0.1)
        check(len(kids) == 2 and old_kid in kids, f"{alg}: the standby key is published at once")
        new_kid = [k for k in kids if k != old_kid][0] if len(kids) == 2 else ""
        check(header_of(five_tokens()["v1"])["kid"] == old_kid,
              f"{alg}: the standby key signs nothing")
        verify("with a standby key", old, True)

        admin("secret", "rotate", "--activate")
        for _ in range(100):
            new = five_tokens()
            if header_of(new["picflux"])["kid"] == new_kid:
                break
            time.sleep(0.1)
        check(all(header_of(t)["kid"] == new_kid for t in new.values()),
              f"{alg}: after --activate every API signs with the new key {new_kid}")
        verify("after --activate (new key)", new, True)
        verify("after --activate (old key, still valid)", old, True)

        # The server's clock moves past the old key's last possible token (longest lifetime
        # plus five minutes): the key leaves the JWKS. The verifiers keep the real clock, in
        # which the old tokens have not expired: only the key's absence refuses them.
        with open(clock, "w") as f:
            f.write("+8m\n")
        for _ in range(50):
            if old_kid not in jwks():
                break
            time.sleep(0.1)
        check(jwks() == [new_kid], f"{alg}: the old key has left the JWKS")
        verify("after the old key left (old tokens)", old, False)
        verify("after the old key left (new tokens)", new, True)
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
        if failures:
            with open(os.path.join(work, alg + ".log")) as f:
                print(f"--- {alg} server log ---\n" + f.read()[-3000:])


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("pyjwt", "jose"):
        print(__doc__)
        return 2
    latch = os.path.abspath(sys.argv[1])
    if not os.access(FAKETIME, os.R_OK):
        skip("libfaketime is not installed (Debian: faketime): make test-deps")
    verifier = PyJwtVerifier() if sys.argv[2] == "pyjwt" else JoseVerifier()
    with tempfile.TemporaryDirectory() as work:
        for alg in ("EdDSA", "ES256", "RS256"):
            run_alg(latch, verifier, alg, work)
    print(f"{len(failures)} failed" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
