"""A throwaway PostgreSQL for the bench, as tests/support/postgres_server does it: initdb as nobody into a temporary directory, a Unix socket only, stopped and removed after."""
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

from benchlib import procs

PG_ROOT = "/usr/lib/postgresql"
DATABASE = "latch"
# What statements bench/run counts: not the ones it sends itself to read the counts.
OWN = "query NOT LIKE '%pg_stat_statements%'"


def binaries():
    """The newest /usr/lib/postgresql/N/bin holding initdb and postgres, or None."""
    best = None
    try:
        names = os.listdir(PG_ROOT)
    except OSError:
        return None
    for name in sorted((n for n in names if n.isdigit()), key=int):
        bin_dir = os.path.join(PG_ROOT, name, "bin")
        if all(os.access(os.path.join(bin_dir, b), os.X_OK) for b in ("initdb", "postgres", "psql")):
            best = bin_dir
    return best


def unavailable():
    bin_dir = binaries()
    if not bin_dir:
        return "PostgreSQL is not installed (Debian package postgresql; `make bench` installs it)"
    lib = os.path.join(os.path.dirname(bin_dir), "lib", "pg_stat_statements.so")
    if not os.path.exists(lib):
        return f"{lib} is missing (it counts the statements per request)"
    return None


def _owner():
    """(uid, gid) the cluster runs as: nobody when root (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


class Cluster:
    """initdb and start; a database `latch` with pg_stat_statements; stop() removes it all.

    PostgreSQL's own defaults otherwise, durability included (fsync and synchronous_commit on:
    every commit is flushed before it is answered, as a deployment would run it)."""

    def __init__(self, workdir):
        self.bin = binaries()
        self.dir = tempfile.mkdtemp(prefix="latch-bench-pg-")
        self.log_path = os.path.join(workdir, "postgres.log")
        self.proc = None
        uid, gid = _owner()
        try:
            os.chown(self.dir, uid, gid)
            os.chmod(self.dir, 0o700)  # trust authentication: only its owner (and root) reach the socket
            self._as_owner([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "postgres",
                            "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync",
                            "--no-instructions"], wait=True)
            self.proc = self._as_owner(
                [os.path.join(self.bin, "postgres"), "-D", self.data, "-k", self.dir,
                 "-c", "listen_addresses=", "-c", "shared_preload_libraries=pg_stat_statements",
                 "-c", "pg_stat_statements.track_utility=on"], wait=False)
            self._wait_ready()
            self.psql(f"CREATE DATABASE {DATABASE}", db="postgres")
            self.psql("CREATE EXTENSION pg_stat_statements")
        except BaseException:
            self.stop()
            raise

    @property
    def data(self):
        return os.path.join(self.dir, "data")

    @property
    def uri(self):
        return f"postgresql:///{DATABASE}?host={self.dir}&user=postgres"

    def _as_owner(self, argv, wait):
        uid, gid = _owner()
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(argv, user=uid, group=gid, extra_groups=[], stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        if wait and proc.wait(timeout=120) != 0:
            raise RuntimeError(f"{argv[0]} failed: see {self.log_path}")
        return proc

    def _wait_ready(self, timeout_seconds=60):
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited at start: see {self.log_path}")
            done = subprocess.run([os.path.join(self.bin, "pg_isready"), "-q", "-h", self.dir,
                                   "-U", "postgres"], capture_output=True)
            if done.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"postgres did not accept connections: see {self.log_path}")

    def psql(self, sql, db=DATABASE):
        """The rows psql prints for sql, one line each, fields split on '|'."""
        done = subprocess.run([os.path.join(self.bin, "psql"), "-X", "-A", "-t", "-q",
                               "-v", "ON_ERROR_STOP=1", "-h", self.dir, "-U", "postgres",
                               "-d", db, "-c", sql], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {done.stderr.strip()}")
        return [line.split("|", 1) for line in done.stdout.splitlines() if line]

    def reset_statements(self):
        self.psql("SELECT pg_stat_statements_reset()")

    def statements(self):
        """Statements executed since the last reset (pg_stat_statements' calls), ours left out."""
        rows = self.psql(f"SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE {OWN}")
        return int(rows[0][0])

    def statement_counts(self):
        """[(calls, query text)] since the last reset, most called first, ours left out."""
        rows = self.psql(f"SELECT calls, regexp_replace(query, '\\s+', ' ', 'g') "
                         f"FROM pg_stat_statements WHERE {OWN} ORDER BY calls DESC, query")
        return [(int(calls), query) for calls, query in rows]

    def cpu_seconds(self):
        """utime+stime of the postmaster and its children, with those it reaped. Not by process
        group as procs.cpu_seconds: every backend calls setsid() and leads a group of its own."""
        if not self.proc:
            return 0.0
        ticks = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(entry) == self.proc.pid or int(fields[1]) == self.proc.pid:
                ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
        return ticks / procs.CLOCK_TICKS

    def stop(self):
        """Fast shutdown (SIGINT), SIGKILL to what is left after 30 s, then the directory goes."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    pass
            if self.proc.poll() is None:
                self.proc.kill()  # its backends leave when their postmaster is gone
            self.proc.wait()
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
