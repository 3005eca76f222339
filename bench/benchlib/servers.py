"""The servers under test: how to start each on a free port with a fresh database, and why one cannot run."""
import dataclasses
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Callable, Optional

from benchlib import paths, procs

ACCESS_TTL_SECONDS = 3600  # every server: tokens prepared before a run outlive it


@dataclass
class Running:
    """A started server: its process group leader, address, log and database."""
    name: str
    proc: subprocess.Popen
    port: int
    log_path: str
    db_path: str

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def pgid(self):
        return self.proc.pid


@dataclass(frozen=True)
class ServerKind:
    name: str
    label: str
    ready_path: str          # any HTTP answer there means the server is up
    normal_log: tuple        # log lines containing one of these are expected, not notes
    unavailable: Callable[[], Optional[str]]  # why it cannot run, or None
    start: Callable[[str, int], tuple]        # (workdir, port) -> (Popen, db_path)


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


def start_latch(workdir, port, extra_args=()):
    db = os.path.join(workdir, "latch.db")
    argv = [paths.LATCH, "serve", "--addr", f"127.0.0.1:{port}", "--db", db,
            "--rate-limit", "0", "--max-failed-logins", "0",
            # Every wrk connection comes from 127.0.0.1: no per-address connection cap.
            "--max-connections-per-address", "0",
            # No access log, as the peers keep none by default (gunicorn, fastify).
            "--log-format", "off",
            "--simplejwt-access-ttl", str(ACCESS_TTL_SECONDS), *extra_args]
    # Only the flags above: no LATCH_* setting from the caller's environment changes the run.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATCH_")}
    return procs.start(argv, os.path.join(workdir, "server.log"), env=env), db


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


def start(kind, workdir):
    """Starts a fresh instance in workdir and waits until it answers; raises RuntimeError if it does not."""
    os.makedirs(workdir, exist_ok=True)
    port = procs.free_port()
    proc, db = kind.start(workdir, port)
    server = Running(kind.name, proc, port, os.path.join(workdir, "server.log"), db)
    if not procs.wait_until_answering(server.url + kind.ready_path, proc):
        procs.stop(proc)
        raise RuntimeError(f"{kind.label} did not start: see {server.log_path}")
    return server


def log_notes(kind, server):
    """Log lines that are not part of a normal start: errors, warnings, tracebacks."""
    try:
        with open(server.log_path, errors="replace") as f:
            lines = [line.rstrip() for line in f if line.strip()]
    except OSError:
        return []
    return [line for line in lines if not any(n in line for n in kind.normal_log)]
