"""The workloads: which wrk script, how many connections, which servers serve it, and which ceiling it is held against."""
from dataclasses import dataclass
from typing import Callable

from benchlib import wrk

AUTH_SERVERS = ("latch", "django", "node")
# Latch, with asymmetric keys, with an fsync at every commit, on PostgreSQL alone and two
# instances of it behind HAProxy
LATCH_KINDS = ("latch", "latch_eddsa", "latch_es256", "latch_syncfull", "latch_pg", "latch_pg2")


def latch_kind(work):
    """The Latch server a workload runs on: its own kind for the asymmetric-key rows."""
    return work.servers[0] if work.servers[0] in LATCH_KINDS else "latch"


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    script: str
    connections: int
    servers: tuple
    args: Callable  # RunData -> the script's arguments
    ceiling: str    # "http" or "argon2"


WORKLOADS = [
    Workload("getuser", "token check: GET /auth/getuser", "check.lua", 64, AUTH_SERVERS,
             lambda d: [d.access, "getuser"], "http"),
    Workload("me", "token check: GET /api/v1/authorized/me", "check.lua", 64, ("latch",),
             lambda d: [d.access, "me"], "http"),
    Workload("verify", "token check: POST /auth/token/verify", "check.lua", 64, AUTH_SERVERS,
             lambda d: [d.access, "verify"], "http"),
    Workload("refresh", "refresh with rotation: POST /auth/token/refresh", "refresh.lua", 64,
             AUTH_SERVERS, lambda d: [d.refresh, str(wrk.THREADS)], "http"),
    Workload("signin", "sign-in: POST /auth/token (argon2id)", "signin.lua", 16, AUTH_SERVERS,
             lambda d: [d.users, d.password], "argon2"),
    Workload("signup", "sign-up: POST /auth/register (argon2id)", "signup.lua", 64,
             AUTH_SERVERS, lambda d: [d.signup_prefix, d.password], "argon2"),
    # The same with asymmetric keys. A repeated access token is verified once, so the token
    # checks differ little; a refresh verifies one signature and makes two.
    Workload("getuser_eddsa", "token check, EdDSA keys: GET /auth/getuser", "check.lua", 64,
             ("latch_eddsa",), lambda d: [d.access, "getuser"], "http"),
    Workload("refresh_eddsa", "refresh with rotation, EdDSA keys: POST /auth/token/refresh",
             "refresh.lua", 64, ("latch_eddsa",), lambda d: [d.refresh, str(wrk.THREADS)], "http"),
    Workload("getuser_es256", "token check, ES256 keys: GET /auth/getuser", "check.lua", 64,
             ("latch_es256",), lambda d: [d.access, "getuser"], "http"),
    Workload("refresh_es256", "refresh with rotation, ES256 keys: POST /auth/token/refresh",
             "refresh.lua", 64, ("latch_es256",), lambda d: [d.refresh, str(wrk.THREADS)], "http"),
    # The writes again with --sqlite-sync full: an fsync of the -wal at every commit (a batch of
    # rotations shares one). Token checks write nothing, so they are not repeated.
    Workload("refresh_syncfull", "refresh with rotation, sync full: POST /auth/token/refresh",
             "refresh.lua", 64, ("latch_syncfull",), lambda d: [d.refresh, str(wrk.THREADS)],
             "http"),
    Workload("signin_syncfull", "sign-in, sync full: POST /auth/token (argon2id)", "signin.lua", 16,
             ("latch_syncfull",), lambda d: [d.users, d.password], "argon2"),
    Workload("signup_syncfull", "sign-up, sync full: POST /auth/register (argon2id)", "signup.lua",
             64, ("latch_syncfull",), lambda d: [d.signup_prefix, d.password], "argon2"),
] + [
    # Every workload of the SQLite row again on PostgreSQL: one instance, and two behind HAProxy
    # (docs/haproxy.cfg) that share one PostgreSQL.
    Workload(f"{w}_{suffix}", f"{what}, {where}: {route}", script, connections, (server,), args,
             ceiling)
    for suffix, server, where in (("pg", "latch_pg", "PostgreSQL"),
                                  ("pg2", "latch_pg2", "2 instances on PostgreSQL, HAProxy"))
    for w, what, route, script, connections, args, ceiling in (
        ("getuser", "token check", "GET /auth/getuser", "check.lua", 64,
         lambda d: [d.access, "getuser"], "http"),
        ("me", "token check", "GET /api/v1/authorized/me", "check.lua", 64,
         lambda d: [d.access, "me"], "http"),
        ("verify", "token check", "POST /auth/token/verify", "check.lua", 64,
         lambda d: [d.access, "verify"], "http"),
        ("refresh", "refresh with rotation", "POST /auth/token/refresh", "refresh.lua", 64,
         lambda d: [d.refresh, str(wrk.THREADS)], "http"),
        ("signin", "sign-in", "POST /auth/token (argon2id)", "signin.lua", 16,
         lambda d: [d.users, d.password], "argon2"),
        ("signup", "sign-up", "POST /auth/register (argon2id)", "signup.lua", 64,
         lambda d: [d.signup_prefix, d.password], "argon2"))
] + [
    Workload("http", "HTTP ceiling: bare cpp-httplib GET /ceiling", "fixed.lua", 64, ("ceiling",),
             lambda d: ["/ceiling"], "http"),
    Workload("loop", "HTTP ceiling: Latch's connection loop + cpp-httplib GET /ceiling", "fixed.lua",
             64, ("loop",), lambda d: ["/ceiling"], "http"),
]

# Servers that only answer a fixed route: no data to prepare, no peer row in the tables.
CEILING_SERVERS = ("ceiling", "loop")

# The argon2id ceiling is no HTTP workload: bench/ceiling_argon2 hashes on every core.
ARGON2 = "argon2"
ARGON2_TITLE = "argon2id ceiling: raw hashes/s (m=19456 KiB, t=2, p=1), all cores"

# Sessions to prepare: the refresh queue needs at least two tokens per connection.
SESSIONS = max(128, 2 * max(w.connections for w in WORKLOADS))


def by_name(name):
    return next(w for w in WORKLOADS if w.name == name)
