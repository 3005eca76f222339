"""The admin console's users list at 100,000 users: the first page, a search by prefix, a page
deep in the list (by its cursor) and one user's page, each asked one at a time of a server whose
database holds that many users."""
import http.client
import json
import os
import sqlite3
import statistics
import subprocess
import time
import uuid

from benchlib import paths, servers

NAME = "console"
USERS = 100_000
REQUESTS = 200   # of each kind
DEEP_PAGES = 40  # the deep page: reached by following `next` this many times (2,000 users in)
ADMIN = "bench-admin@example.com"
PASSWORD = "bench-admin-password-1"


def _seed(db):
    """USERS users straight into the schema a started server made (no hashing: the console
    never verifies their passwords), created one second apart, newest last."""
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("PRAGMA synchronous=OFF")
        con.execute("BEGIN IMMEDIATE")
        now = int(time.time())
        con.executemany(
            "INSERT INTO users(id, username, username_key, username_skeleton, email, "
            "password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ((str(uuid.uuid4()), f"user{i:06d}", f"user{i:06d}", f"user{i:06d}",
              f"user{i:06d}@example.com", "!", now - USERS + i, now - USERS + i)
             for i in range(USERS)))
        con.execute("COMMIT")
    finally:
        con.close()


def _admin(db):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATCH_")}
    done = subprocess.run([paths.LATCH, "admin", "add", ADMIN, "--password-stdin", "--db", db],
                          input=PASSWORD + "\n", capture_output=True, text=True, timeout=120,
                          env=env)
    if done.returncode != 0:
        raise RuntimeError(f"latch admin add: {done.stderr.strip()}")


class _Console:
    """One keep-alive connection with the console's cookie."""

    def __init__(self, url):
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        status, body, headers = self.call("POST", "/_/api/session",
                                          {"email": ADMIN, "password": PASSWORD})
        if status != 200:
            raise RuntimeError(f"console sign-in answered {status}")
        self.cookie = headers["Set-Cookie"].split(";")[0]

    def call(self, method, path, body=None):
        headers = {"Content-Type": "application/json"}
        if getattr(self, "cookie", None):
            headers["Cookie"] = self.cookie
        self.conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        r = self.conn.getresponse()
        data = r.read()
        return r.status, json.loads(data or b"{}"), dict(r.getheaders())

    def timed(self, path):
        began = time.perf_counter()
        status, body, _ = self.call("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")
        return time.perf_counter() - began, body


def _stats(seconds):
    ms = sorted(s * 1000 for s in seconds)
    return {"median_ms": statistics.median(ms), "p99_ms": ms[int(len(ms) * 0.99) - 1]}


def measure(workdir):
    """Rows: (what, median ms, p99 ms, users on the page)."""
    os.makedirs(workdir, exist_ok=True)
    server = servers.start(servers.KINDS["latch"], workdir)
    servers.stop(server)  # the schema and key made; now the users, then the admin
    _seed(server.db_path)
    _admin(server.db_path)
    server = servers.start(servers.KINDS["latch"], workdir)
    try:
        console = _Console(server.url)
        _, first = console.timed("/_/api/users?limit=50")
        cursor = first["next"]
        for _ in range(DEEP_PAGES - 1):
            _, page = console.timed("/_/api/users?limit=50&after=" + cursor)
            cursor = page["next"]
        some_id = first["users"][0]["id"]
        kinds = [("first page (50 newest)", "/_/api/users?limit=50"),
                 ("search by prefix (`user0421`, 50 of 100)", "/_/api/users?limit=50&q=user0421"),
                 ("search by email (one match)", "/_/api/users?q=user042123%40example.com"),
                 (f"page {DEEP_PAGES + 1} by its cursor", "/_/api/users?limit=50&after=" + cursor),
                 ("one user's page", "/_/api/users/" + some_id)]
        rows = []
        for what, path in kinds:
            times, body = [], None
            for _ in range(REQUESTS):
                t, body = console.timed(path)
                times.append(t)
            shown = len(body["users"]) if "users" in body else 1
            if shown == 0:
                raise RuntimeError(f"{what}: no user in the answer")
            rows.append((what, *_stats(times).values(), shown))
        return rows
    finally:
        servers.stop(server)


def markdown(rows):
    lines = [f"Console users list at {USERS:,} users, {REQUESTS} requests of each kind, one at a "
             "time on one keep-alive connection:", "",
             "| request | median | p99 | users answered |", "|---|---|---|---|"]
    for what, median, p99, shown in rows:
        lines.append(f"| {what} | {median:.2f} ms | {p99:.2f} ms | {shown} |")
    return "\n".join(lines)
