"""Databases with many sessions, made by SQL: Latch creates the schema, one user owns N sessions inserted in one statement."""
import os
import shutil
import sqlite3
import subprocess
import time

from benchlib import paths, procs, servers

SEED_USER = "seeduser"
DAY = 86400
MILLION = 1_000_000
# As Latch writes them: ids and refresh ids of 22 characters (16 random bytes, base64url),
# simplejwt's api, refresh tokens living a day. Hex of 11 random bytes has that length.
SESSIONS_SQL = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
INSERT INTO sessions(id, user_id, api, refresh_jti, created_at, expires_at, revoked_at)
SELECT hex(randomblob(11)), ?2, 'simplejwt', hex(randomblob(11)), ?3 - i % ?4 - ?5,
       ?3 - i % ?4, NULL
FROM n
"""


def _schema(workdir):
    """Starts Latch once on an empty file, so that it creates the schema and its signing key."""
    server = servers.start(servers.KINDS["latch"], workdir)
    procs.stop(server.proc)
    return server.db_path


def _add_user(db, name):
    done = subprocess.run([paths.LATCH, "user", "add", name, "--db", db, "--password-stdin"],
                          input="seed-password-1\n", capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"latch user add {name}: {done.stderr.strip()}")


def _insert_sessions(db, count, expires_at):
    """count sessions of SEED_USER expiring at expires_at or up to half a day before, inserted
    with the change log's trigger set aside (these rows are the state a server starts from, not
    changes it must follow); the trigger is put back as it was, in the same transaction."""
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("PRAGMA synchronous=OFF")
        con.execute("BEGIN IMMEDIATE")
        (user_id,) = con.execute("SELECT id FROM users WHERE username = ?", (SEED_USER,)).fetchone()
        (trigger,) = con.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND "
                                 "name = 'sessions_inserted'").fetchone()
        con.execute("DROP TRIGGER sessions_inserted")
        if count:
            con.execute(SESSIONS_SQL, (count, user_id, expires_at, DAY // 2, DAY))
        con.execute(trigger)
        con.execute("COMMIT")
    finally:
        con.close()  # the last connection: the WAL is checkpointed into the file


def database(workdir, count, expires_in=DAY):
    """workdir/latch.db with SEED_USER and count of its sessions, the last expiring expires_in
    seconds from now (negative: already expired); (path, seconds the insert took)."""
    os.makedirs(workdir, exist_ok=True)
    db = _schema(workdir)
    _add_user(db, SEED_USER)
    began = time.perf_counter()
    _insert_sessions(db, count, int(time.time()) + expires_in)
    return db, time.perf_counter() - began


def copy(db, workdir):
    """A copy of a seeded database (checkpointed, so the file is all of it) as workdir/latch.db."""
    os.makedirs(workdir, exist_ok=True)
    target = os.path.join(workdir, "latch.db")
    shutil.copyfile(db, target)
    return target


_templates = {}


def live(root, count):
    """A database with count live sessions under root, seeded once per process and copied by
    whoever needs one (a million take a while to insert)."""
    if count not in _templates:
        _templates[count], _ = database(os.path.join(root, f"seed-{count}"), count)
    return _templates[count]
