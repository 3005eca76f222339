"""Token checks while the database is busy: a purge of a million rows, admin writes at a million sessions, another process holding the write lock; each against a baseline taken on the same server just before."""
import os
import re
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request

from benchlib import prepare, procs, report, seed, servers, wrk
from benchlib.workloads import by_name

NAME = "faults"
MILLION = seed.MILLION
USERS = 32             # prepared users: wrk checks their access tokens, the sign-in loop uses one
LEAD_SECONDS = 1       # token checks before a fault starts
TAIL_SECONDS = 0.5     # and after it ends
WARMUP_SECONDS = 2
LOCK_SECONDS = 10      # the other process's BEGIN IMMEDIATE
SIGNUP_AFTER = 1       # seconds into the lock the waiting sign-up is sent
READYZ_EVERY = 0.25    # seconds between /readyz probes while the lock is held
LOCK_PROBE_EVERY = 0.01  # seconds between the purge scenario's takes of the write lock
APPLIED_WITHIN = 30    # seconds to wait for a running server to show an admin write
# /metrics for the cache's counters; no purge by the server itself while a scenario runs (the
# purge scenario's rows would go at its first --purge-interval).
LATCH = servers.latch_with(["--metrics", "--purge-interval", "24h"])
CHECKS = by_name("getuser")


def _latch_cli(args, stdin=None):
    """(seconds, exit status, output) of a latch admin command, no LATCH_* from our environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATCH_")}
    began = time.perf_counter()
    done = subprocess.run([servers.paths.LATCH, *args], input=stdin, capture_output=True,
                          text=True, timeout=600, env=env)
    return time.perf_counter() - began, done.returncode, (done.stdout + done.stderr).strip()


def _get(url, headers=None, timeout=30):
    """(status, body, seconds) of a GET."""
    began = time.perf_counter()
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read().decode()
            return response.status, body, time.perf_counter() - began
    except urllib.error.HTTPError as e:
        return e.code, "", time.perf_counter() - began
    except OSError as e:
        return 0, str(e), time.perf_counter() - began


def metric(server, name):
    """A number from the server's /metrics, or None."""
    status, body, _ = _get(server.url + "/metrics")
    match = re.search(rf"^{name} (\S+)$", body, re.M) if status == 200 else None
    return float(match.group(1)) if match else None


def checks_during(server, data, log_path, seconds, action=None):
    """Token checks with wrk from LEAD_SECONDS before action() until TAIL_SECONDS after it
    returns, and for `seconds` at least; (the checks' numbers, action's result). Without an
    action: the baseline, `seconds` of checks."""
    background = wrk.Background(server.url, CHECKS.script, CHECKS.args(data), CHECKS.connections,
                                log_path)
    began = time.monotonic()
    outcome = None
    try:
        time.sleep(LEAD_SECONDS)
        if action:
            outcome = action()
        time.sleep(max(TAIL_SECONDS, seconds - (time.monotonic() - began)))
    finally:
        result = background.stop()
    return {
        "seconds": result["duration_us"] / 1e6,
        "rps": result["requests"] / (result["duration_us"] / 1e6),
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "max_ms": result["max_us"] / 1000,
        "non2xx": result["non2xx"],
        "errors": sum(result["socket_errors"].values()),
    }, outcome


class Loop:
    """Calls `once` (which returns (ok, status)) on a thread, `pause` seconds apart, until the
    with-block ends; times each call."""

    def __init__(self, once, pause=0.0):
        self.once, self.pause = once, pause
        self.ok, self.failed, self.statuses, self.times = 0, 0, {}, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            began = time.perf_counter()
            ok, status = self.once()
            self.times.append(time.perf_counter() - began)
            if ok:
                self.ok += 1
            else:
                self.failed += 1
                self.statuses[status] = self.statuses.get(status, 0) + 1
            self._stop.wait(self.pause)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(120)

    def summary(self):
        times = sorted(self.times) or [0.0]
        return {"ok": self.ok, "failed": self.failed, "statuses": dict(self.statuses),
                "p99_ms": 1000 * times[int(0.99 * (len(times) - 1))],
                "slowest_ms": 1000 * times[-1]}


def sign_in_loop(server, data):
    """Sign-ins (simplejwt POST /auth/token) as the first prepared user, one after another."""
    with open(data.users) as f:
        username = f.readline().strip()

    def once():
        status, body = prepare.post_json(server.url + "/auth/token",
                                         {"username": username, "password": data.password})
        return status == 200 and "access" in body, status
    return Loop(once)


def lock_probe(db_path):
    """Takes the write lock and lets it go again (BEGIN IMMEDIATE; ROLLBACK) every LOCK_PROBE_EVERY
    seconds: how long a writer waits for it. SQLite's busy handler sleeps 1, 2, 5, 10, 15, 20,
    25... ms between tries, so a wait reads as the next of those sums, not less."""
    con = sqlite3.connect(db_path, isolation_level=None, timeout=30, check_same_thread=False)

    def once():
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("ROLLBACK")
            return True, "ok"
        except sqlite3.Error as e:
            return False, str(e)
    return Loop(once, LOCK_PROBE_EVERY)


def _started(workdir):
    server = servers.start(LATCH, workdir)
    time.sleep(1)  # the start's scan over, its memory given back
    return server, procs.memory_kib(server.pgid, "VmRSS") / 1024


def _prepared(server, workdir, seconds_log):
    data = prepare.prepare(server.url, workdir, USERS)
    wrk.run(server.url, CHECKS.script, CHECKS.args(data), WARMUP_SECONDS, CHECKS.connections,
            seconds_log)
    return data


def purge(workdir, seconds):
    """1M sessions expired two days ago; `latch purge` in another process while wrk checks tokens
    and a sign-in loop runs (in the baseline too)."""
    db, _ = seed.database(workdir, MILLION, expires_in=-2 * seed.DAY)
    log = os.path.join(workdir, "wrk.log")
    server, rss = _started(workdir)
    try:
        data = _prepared(server, workdir, log)
        with sign_in_loop(server, data) as loop, lock_probe(db) as probe:
            base, _ = checks_during(server, data, log, seconds)
        base_signins, base_locks = loop.summary(), probe.summary()

        def run_purge():
            return _latch_cli(["purge", "--db", db])
        with sign_in_loop(server, data) as loop, lock_probe(db) as probe:
            during, (took, rc, out) = checks_during(server, data, log, seconds, run_purge)
        purged = re.search(r"^sessions: (\d+)", out, re.M)
        return {"name": "purge", "base": base, "during": during, "rss_after_start_mib": rss,
                "signins_base": base_signins, "signins": loop.summary(),
                "locks_base": base_locks, "locks": probe.summary(),
                "action_seconds": took, "action_ok": rc == 0,
                "purged": int(purged.group(1)) if purged else None,
                "action_output": out.splitlines()[-1] if out else ""}
    finally:
        procs.stop(server.proc)


def _until(condition, timeout=APPLIED_WITHIN, every=0.002):
    """Seconds until condition() held, or None past the timeout."""
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        if condition():
            return time.perf_counter() - began
        time.sleep(every)
    return None


def admin(workdir, seconds):
    """1M live sessions (of one user): `latch user add` and `latch sessions revoke` of a user with
    one session, then of the user with the million, each while wrk checks tokens."""
    db = seed.copy(seed.live(os.path.dirname(workdir), MILLION), workdir)
    log = os.path.join(workdir, "wrk.log")
    server, rss = _started(workdir)
    try:
        data = _prepared(server, workdir, log)
        victim = f"victim{os.getpid()}"
        status, body = prepare.post_json(server.url + "/auth/register",
                                         {"username": victim, "password": data.password})
        if status != 201:
            raise RuntimeError(f"register {victim} answered {status}")
        victim_auth = {"Authorization": "Bearer " + body["access"]}
        loads_before = metric(server, "latch_session_cache_loads_total")
        base, _ = checks_during(server, data, log, seconds)

        def small():
            add = _latch_cli(["user", "add", f"added{os.getpid()}", "--db", db])
            revoke = _latch_cli(["sessions", "revoke", victim, "--db", db])
            refused = _until(lambda: _get(server.url + "/auth/getuser", victim_auth)[0] == 401)
            return add, revoke, refused
        during_small, (add, revoke, refused) = checks_during(server, data, log, seconds, small)

        def mass():
            revoke_all = _latch_cli(["sessions", "revoke", seed.SEED_USER, "--db", db])
            def gone():  # the prepared users' sessions stay: about USERS
                active = metric(server, "latch_active_sessions")
                return active is not None and active <= 2 * USERS
            applied = _until(gone, every=0.05)
            return revoke_all, applied
        during_mass, (revoke_all, applied) = checks_during(server, data, log, seconds, mass)
        return {"name": "admin", "base": base, "during": during_small, "during_mass": during_mass,
                "rss_after_start_mib": rss,
                "add_seconds": add[0], "add_ok": add[1] == 0,
                "revoke_seconds": revoke[0], "revoke_ok": revoke[1] == 0, "refused_after": refused,
                "revoke_all_seconds": revoke_all[0], "revoke_all_ok": revoke_all[1] == 0,
                "revoke_all_output": revoke_all[2].splitlines()[-1] if revoke_all[2] else "",
                "applied_after": applied,
                "loads_before": loads_before,
                "loads_after": metric(server, "latch_session_cache_loads_total"),
                "changes_after": metric(server, "latch_session_cache_changes_total")}
    finally:
        procs.stop(server.proc)


def write_lock(workdir, seconds):
    """Another process holds BEGIN IMMEDIATE for LOCK_SECONDS while wrk checks tokens, one
    sign-up waits for the lock and /readyz is asked every READYZ_EVERY seconds."""
    log = os.path.join(workdir, "wrk.log")
    server, _ = _started(workdir)
    try:
        data = _prepared(server, workdir, log)
        base, _ = checks_during(server, data, log, seconds)
        signup, probes = {}, []

        def sign_up():
            began = time.perf_counter()
            status, _ = prepare.post_json(server.url + "/auth/register",
                                          {"username": f"waiter{os.getpid()}",
                                           "password": data.password})
            signup.update(status=status, seconds=time.perf_counter() - began)

        def hold_lock():
            con = sqlite3.connect(server.db_path, isolation_level=None, timeout=30)
            try:
                con.execute("BEGIN IMMEDIATE")
                locked = time.monotonic()
                waiter = threading.Thread(target=sign_up, daemon=True)
                while time.monotonic() - locked < LOCK_SECONDS:
                    if waiter.ident is None and time.monotonic() - locked >= SIGNUP_AFTER:
                        waiter.start()
                    status, _, took = _get(server.url + "/readyz")
                    probes.append((status, took))
                    time.sleep(READYZ_EVERY)
                con.execute("ROLLBACK")
            finally:
                con.close()
            waiter.join(60)
        during, _ = checks_during(server, data, log, seconds, hold_lock)
        return {"name": "lock", "base": base, "during": during, "signup": signup,
                "readyz_statuses": sorted({s for s, _ in probes}),
                "readyz_max_ms": 1000 * max((t for _, t in probes), default=0),
                "readyz_probes": len(probes)}
    finally:
        procs.stop(server.proc)


def failures(results):
    """What breaks the bounds: a token check not answered 200, a sign-in failing during the
    purge, an admin write that made the server read its whole state again or did not reach it."""
    bad = []
    for r in results:
        for key in ("base", "during", "during_mass"):
            m = r.get(key)
            if m and (m["non2xx"] or m["errors"]):
                bad.append(f"faults {r['name']} {key}: token checks non-2xx {m['non2xx']}, "
                           f"socket errors {m['errors']}")
        if r["name"] == "purge":
            if r["signins"]["failed"] or r["signins_base"]["failed"]:
                bad.append(f"faults purge: sign-ins failed {r['signins']['failed']} "
                           f"({r['signins']['statuses']})")
            if r["locks"]["failed"]:
                bad.append(f"faults purge: the write lock could not be taken "
                           f"({r['locks']['statuses']})")
            if not r["action_ok"] or r["purged"] != MILLION:
                bad.append(f"faults purge: latch purge said {r['action_output']!r}")
        if r["name"] == "admin":
            if r["loads_before"] != 1 or r["loads_after"] != 1:
                bad.append(f"faults admin: session cache loads {r['loads_before']} -> "
                           f"{r['loads_after']} (must stay 1)")
            if r["refused_after"] is None or r["applied_after"] is None:
                bad.append("faults admin: a revoke did not reach the running server within "
                           f"{APPLIED_WITHIN} s")
    return bad


def _ms(x):
    return report.number(x)


def _checks(m):
    return f"{_ms(m['p50_ms'])} / {_ms(m['p99_ms'])} / {_ms(m['max_ms'])}"


def _ratio(during, base):
    return f"{during['p99_ms'] / base['p99_ms']:.2f}×" if base["p99_ms"] else "—"


def _seconds(x):
    return "not within %d s" % APPLIED_WITHIN if x is None else f"{1000 * x:,.0f} ms"


def rows(results):
    """(scenario, what happened, baseline, during, p99 ratio, req/s ratio, non-2xx) per window."""
    out = []
    for r in results:
        if r["name"] == "purge":
            s, b = r["signins"], r["signins_base"]
            lk, lb = r["locks"], r["locks_base"]
            what = (f"`latch purge`: {r['purged']:,} sessions in {r['action_seconds']:.1f} s; "
                    f"sign-ins meanwhile {s['ok']} ok, {s['failed']} failed, slowest "
                    f"{s['slowest_ms']:,.0f} ms (before: {b['ok']} ok, slowest "
                    f"{b['slowest_ms']:,.0f} ms); another writer's wait for the lock p99 / max "
                    f"{lk['p99_ms']:.1f} / {lk['slowest_ms']:.1f} ms over {lk['ok']} takes "
                    f"(before: {lb['p99_ms']:.1f} / {lb['slowest_ms']:.1f} ms); RSS after start "
                    f"on the expired million {r['rss_after_start_mib']:.0f} MiB")
            out.append(("purge of 1M expired sessions", what, r["base"], r["during"]))
        elif r["name"] == "admin":
            what = (f"`latch user add` {1000 * r['add_seconds']:,.0f} ms, `latch sessions revoke` "
                    f"of a user with one session {1000 * r['revoke_seconds']:,.0f} ms, its token "
                    f"refused {_seconds(r['refused_after'])} after the command exited; "
                    f"cache loads {r['loads_before']:.0f} → {r['loads_after']:.0f}")
            out.append(("admin writes at 1M live sessions", what, r["base"], r["during"]))
            what = (f"`latch sessions revoke` of the user with the million: "
                    f"{r['revoke_all_seconds']:.1f} s, all gone from the server's memory "
                    f"{_seconds(r['applied_after'])} after the command exited; changes applied "
                    f"one by one {r['changes_after']:,.0f}; cache loads {r['loads_after']:.0f}")
            out.append(("revoking 1M sessions at once", what, r["base"], r["during_mass"]))
        elif r["name"] == "lock":
            su = r["signup"]
            what = (f"BEGIN IMMEDIATE held {LOCK_SECONDS} s by another process; a sign-up sent "
                    f"{SIGNUP_AFTER} s in answered {su.get('status', '—')} after "
                    f"{su.get('seconds', 0):.2f} s; /readyz asked {r['readyz_probes']} times: "
                    f"{', '.join(map(str, r['readyz_statuses']))}, slowest "
                    f"{r['readyz_max_ms']:,.1f} ms")
            out.append(("write lock held by another process", what, r["base"], r["during"]))
    return out


def markdown(results):
    header = ["fault", "what happened", "token checks before: p50 / p99 / max ms",
              "during: p50 / p99 / max ms", "p99 during / before", "checks/s during / before",
              "non-2xx, socket errors"]
    table_rows = [[name, what, _checks(b), _checks(d), _ratio(d, b),
                   f"{d['rps'] / b['rps']:.2f}×", f"{d['non2xx'] + b['non2xx']}, "
                   f"{d['errors'] + b['errors']}"] for name, what, b, d in rows(results)]
    return report.table(header, table_rows)
