"""The servers under test: how to start each on a free port with a fresh database, and why one cannot run."""
import dataclasses
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Callable, Optional

from benchlib import paths, postgres, procs

ACCESS_TTL_SECONDS = 3600  # every server: tokens prepared before a run outlive it


@dataclass
class Running:
    """A started server: its process group leader, address, log and database."""
    name: str
    proc: subprocess.Popen
    port: int
    log_path: str
    db_path: str
    others: list = field(default_factory=list)  # more Popen started with it: instances, a balancer
    database: Optional[postgres.Cluster] = None  # the PostgreSQL it runs on, stopped with it

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def pgid(self):
        return self.proc.pid

    @property
    def pgids(self):
        """Every process group that serves (not the database's): CPU and RSS are summed over them."""
        return [self.proc.pid] + [p.pid for p in self.others]


@dataclass(frozen=True)
class ServerKind:
    name: str
    label: str
    ready_path: str          # any HTTP answer there means the server is up
    normal_log: tuple        # log lines containing one of these are expected, not notes
    unavailable: Callable[[], Optional[str]]  # why it cannot run, or None
    start: Callable[[str, int], tuple]        # (workdir, port) -> (Popen, db_path[, extras])


def _run_quietly(argv, cwd=None):
    """(ok, last line of output) of a short check command."""
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode == 0, lines[-1] if lines else ""


# --- Latch -----------------------------------------------------------------------------

def latch_unavailable():
    if not os.access(paths.LATCH, os.X_OK):
        return f"{paths.LATCH} is missing: run `make build`"
    return None


def start_latch(workdir, port, extra_args=(), db=None, log_name="server.log"):
    db = db or os.path.join(workdir, "latch.db")
    argv = [paths.LATCH, "serve", "--addr", f"127.0.0.1:{port}", "--db", db,
            "--rate-limit", "0", "--max-failed-logins", "0",
            # Every wrk connection comes from 127.0.0.1: no per-address connection cap.
            "--max-connections-per-address", "0",
            # No access log, as the peers keep none by default (gunicorn, fastify).
            "--log-format", "off",
            "--simplejwt-access-ttl", str(ACCESS_TTL_SECONDS), *extra_args]
    # Only the flags above: no LATCH_* setting from the caller's environment changes the run.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATCH_")}
    return procs.start(argv, os.path.join(workdir, log_name), env=env), db


# --- Latch on PostgreSQL, alone and two instances behind HAProxy ------------------------

HAPROXY = "/usr/sbin/haproxy"
HAPROXY_CFG = os.path.join(paths.REPO_DIR, "docs", "haproxy.cfg")
# The addresses in docs/haproxy.cfg that the bench replaces with free ports: nothing else in the
# file is changed, so the README's config is the one that ran.
HAPROXY_ADDRS = ("bind 127.0.0.1:8080", "127.0.0.1:8001", "127.0.0.1:8002")
# HAProxy's start and stop (SIGTERM) lines, not notes.
HAPROXY_NORMAL_LOG = ("[NOTICE]", "Proxy latch", "Proxy latch_instances", "Exiting Master process",
                      "Current worker", "All workers exited", "Stopping proxy", "Stopping frontend",
                      "Stopping backend")


def latch_pg_unavailable():
    return latch_unavailable() or postgres.unavailable()


def latch_pg2_unavailable():
    reason = latch_pg_unavailable()
    if reason:
        return reason
    if not os.access(HAPROXY, os.X_OK):
        return "HAProxy is not installed (Debian package haproxy; `make bench` installs it)"
    return None


def start_latch_pg(workdir, port):
    cluster = postgres.Cluster(workdir)
    try:
        proc, db = start_latch(workdir, port, db=cluster.uri)
    except BaseException:
        cluster.stop()
        raise
    return proc, db, {"database": cluster}


def start_latch_pg2(workdir, port):
    """Two instances on one PostgreSQL, HAProxy in front on `port` (docs/haproxy.cfg)."""
    cluster = postgres.Cluster(workdir)
    started = []
    try:
        ports = [procs.free_port(), procs.free_port()]
        for i, p in enumerate(ports):
            proc, db = start_latch(workdir, p, db=cluster.uri, log_name=f"server{i + 1}.log")
            started.append(proc)
            # Each answers before HAProxy is asked to send it anything.
            if not procs.wait_until_answering(f"http://127.0.0.1:{p}/readyz", proc):
                raise RuntimeError(f"Latch instance {i + 1} did not start: see {workdir}")
        with open(HAPROXY_CFG) as f:
            text = f.read()
        for old, new in zip(HAPROXY_ADDRS, (f"bind 127.0.0.1:{port}", f"127.0.0.1:{ports[0]}",
                                            f"127.0.0.1:{ports[1]}")):
            if old not in text:
                raise RuntimeError(f"{HAPROXY_CFG} no longer holds {old!r}")
            text = text.replace(old, new)
        cfg = os.path.join(workdir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(text)
        # -db: in the foreground, so it stays in the process group it is started in.
        started.append(procs.start([HAPROXY, "-db", "-f", cfg],
                                   os.path.join(workdir, "haproxy.log")))
    except BaseException:
        for proc in started:
            procs.stop(proc)
        cluster.stop()
        raise
    # The balancer is the process bench/run waits on; the instances are stopped with it.
    return started[-1], db, {"database": cluster, "others": started[:-1]}


# --- Django (gunicorn) -----------------------------------------------------------------

GUNICORN = "/usr/bin/gunicorn"
DJANGO_MODULES = "import django, rest_framework, rest_framework_simplejwt, argon2, gunicorn"


def django_unavailable():
    if not os.access(GUNICORN, os.X_OK):
        return "gunicorn is not installed (Debian package gunicorn)"
    ok, last = _run_quietly([paths.SYSTEM_PYTHON, "-c", DJANGO_MODULES])
    if not ok:
        return f"Django packages missing: {last}"
    return None


def start_django(workdir, port):
    db = os.path.join(workdir, "django.db")
    env = dict(os.environ, BENCH_DB=db, DJANGO_SETTINGS_MODULE="benchsite.settings")
    log_path = os.path.join(workdir, "server.log")
    migrate = [paths.SYSTEM_PYTHON, "manage.py", "migrate", "--noinput"]
    with open(log_path, "ab") as log:
        subprocess.run(migrate, cwd=paths.DJANGO_DIR, env=env, check=True,
                       stdout=log, stderr=subprocess.STDOUT)
    argv = [GUNICORN, "--workers", "2", "--bind", f"127.0.0.1:{port}",
            "--chdir", paths.DJANGO_DIR, "--timeout", "120", "benchsite.wsgi:application"]
    return procs.start(argv, log_path, cwd=paths.DJANGO_DIR, env=env), db


# --- Node (cluster) --------------------------------------------------------------------

NODE_MODULES = "for (const m of ['fastify','jsonwebtoken','@node-rs/argon2','better-sqlite3']) require(m)"


def node_unavailable():
    if not shutil.which("node"):
        return "node is not installed"
    if not os.path.isdir(os.path.join(paths.NODE_DIR, "node_modules")):
        return f"bench/peers/node/node_modules is missing: `npm ci` failed ({_npm_log_tail()})"
    ok, last = _run_quietly(["node", "-e", NODE_MODULES], cwd=paths.NODE_DIR)
    if not ok:
        return f"npm packages do not load: {last}"
    return None


def _npm_log_tail():
    log = os.path.join(paths.OUT_DIR, "npm-ci.log")
    try:
        with open(log) as f:
            lines = [line.strip() for line in f if "ERR" in line]
        return lines[-1] if lines else f"see {log}"
    except OSError:
        return "not run: use `make bench`"


def start_node(workdir, port):
    db = os.path.join(workdir, "node.db")
    env = dict(os.environ, PORT=str(port), DB=db, WORKERS="2", ACCESS_TTL=str(ACCESS_TTL_SECONDS))
    log_path = os.path.join(workdir, "server.log")
    return procs.start(["node", "server.js"], log_path, cwd=paths.NODE_DIR, env=env), db


# --- ceilings: bare cpp-httplib, Latch's connection loop, raw argon2id ------------------

CEILING_HTTP = os.path.join(paths.BIN_DIR, "ceiling_http")
CEILING_ARGON2 = os.path.join(paths.BIN_DIR, "ceiling_argon2")


def ceiling_unavailable():
    for binary in (CEILING_HTTP, CEILING_ARGON2):
        if not os.access(binary, os.X_OK):
            return f"{binary} is missing: `make bench` builds it"
    return None


def start_ceiling(workdir, port):
    argv = [CEILING_HTTP, "127.0.0.1", str(port)]
    return procs.start(argv, os.path.join(workdir, "server.log")), ""


def start_loop(workdir, port):
    argv = [CEILING_HTTP, "127.0.0.1", str(port), "loop"]
    return procs.start(argv, os.path.join(workdir, "server.log")), ""


KINDS = {
    "latch": ServerKind("latch", "Latch", "/auth/getuser", ("listening on", "LATCH_SMTP_URL unset", "latch: stopped"),
                        latch_unavailable, start_latch),
    "django": ServerKind("django", "Django+DRF+SimpleJWT", "/auth/getuser",
                         ("[INFO]", "Apply", "Operations to perform", "Running migrations",
                          "  Applying ", "was terminated due to signal 15"),  # 15: our stop
                         django_unavailable, start_django),
    "node": ServerKind("node", "Node (fastify)", "/auth/getuser", ("node peer: listening",),
                       node_unavailable, start_node),
    "ceiling": ServerKind("ceiling", "ceiling", "/ceiling", ("ceiling_http: listening",),
                          ceiling_unavailable, start_ceiling),
    "loop": ServerKind("loop", "ceiling: Latch's connection loop", "/ceiling",
                       ("ceiling_http: listening",), ceiling_unavailable, start_loop),
}


def latch_with(extra_args):
    """The Latch kind with more flags (later flags win over the defaults above)."""
    return dataclasses.replace(KINDS["latch"],
                               start=lambda workdir, port: start_latch(workdir, port, extra_args))


# Latch signing with asymmetric keys (--jwt-alg): the token rows again, to set beside HS256's.
for _alg in ("EdDSA", "ES256"):
    KINDS["latch_" + _alg.lower()] = dataclasses.replace(
        latch_with(["--jwt-alg", _alg]), name="latch_" + _alg.lower(), label=f"Latch ({_alg})")

# Latch with an fsync at every commit (--sqlite-sync full): the write rows again, beside NORMAL's.
KINDS["latch_syncfull"] = dataclasses.replace(
    latch_with(["--sqlite-sync", "full"]), name="latch_syncfull", label="Latch (sync full)")

# Latch on a throwaway PostgreSQL (benchlib/postgres.py): one instance, and two behind HAProxy.
KINDS["latch_pg"] = dataclasses.replace(
    KINDS["latch"], name="latch_pg", label="Latch (PostgreSQL)",
    unavailable=latch_pg_unavailable, start=start_latch_pg)
KINDS["latch_pg2"] = dataclasses.replace(
    KINDS["latch"], name="latch_pg2", label="Latch (2 × PostgreSQL, HAProxy)",
    normal_log=KINDS["latch"].normal_log + HAPROXY_NORMAL_LOG,
    unavailable=latch_pg2_unavailable, start=start_latch_pg2)


def start(kind, workdir):
    """Starts a fresh instance in workdir and waits until it answers; raises RuntimeError if it does not."""
    os.makedirs(workdir, exist_ok=True)
    port = procs.free_port()
    proc, db, *extras = kind.start(workdir, port)
    server = Running(kind.name, proc, port, os.path.join(workdir, "server.log"), db,
                     **(extras[0] if extras else {}))
    if not procs.wait_until_answering(server.url + kind.ready_path, proc):
        stop(server)
        raise RuntimeError(f"{kind.label} did not start: see {server.log_path}")
    return server


def stop(server):
    """Stops the server, what was started with it, then its database."""
    for proc in [server.proc] + server.others:
        procs.stop(proc)
    if server.database:
        server.database.stop()


def log_notes(kind, server):
    """Log lines that are not part of a normal start: errors, warnings, tracebacks."""
    logs = [server.log_path] + [os.path.join(os.path.dirname(server.log_path), name)
                                for name in ("server1.log", "server2.log", "haproxy.log")]
    lines = []
    for path in logs:
        try:
            with open(path, errors="replace") as f:
                lines += [line.rstrip() for line in f if line.strip()]
        except OSError:
            pass
    return [line for line in lines if not any(n in line for n in kind.normal_log)]
