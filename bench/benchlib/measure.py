"""One measurement: a wrk run against a started server, with the server's CPU time per request and peak RSS."""
import json
import subprocess

from benchlib import procs, wrk


def _errors(result):
    return sum(result["socket_errors"].values())


def _cpu(server):
    return sum(procs.cpu_seconds(g) for g in server.pgids)


def workload(server, work, data, seconds, log_path):
    """Runs one workload; the numbers of bench/run's table, before taking medians.

    On PostgreSQL the server's CPU and RSS are Latch's (and HAProxy's), not the database's:
    its CPU time and the statements it ran are counted apart (db_*)."""
    for g in server.pgids:
        procs.reset_peak_rss(g)
    db = server.database
    if db:
        db_before = (db.cpu_seconds(), db.statements())
    cpu_before = _cpu(server)
    result = wrk.run(server.url, work.script, work.args(data), seconds, work.connections, log_path)
    cpu_used = _cpu(server) - cpu_before
    peak_kib = sum(procs.memory_kib(g, "VmHWM") for g in server.pgids)
    requests = result["requests"]
    extra = {}
    if db:
        db_cpu = db.cpu_seconds() - db_before[0]
        statements = db.statements() - db_before[1]
        extra = {"db_cpu_ms_per_req": 1000 * db_cpu / requests if requests else 0.0,
                 "db_statements_per_req": statements / requests if requests else 0.0,
                 "db_statements_per_s": statements / (result["duration_us"] / 1e6),
                 "db_cpu_us_per_statement": 1e6 * db_cpu / statements if statements else 0.0}
    return {
        "rps": requests / (result["duration_us"] / 1e6),
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "non2xx": result["non2xx"],
        "errors": _errors(result),
        "cpu_ms_per_req": 1000 * cpu_used / requests if requests else 0.0,
        "peak_rss_mib": peak_kib / 1024,
        "requests": requests,
        "statuses": result["statuses"],
        "counters": result["counters"],
        **extra,
    }


def argon2_ceiling(binary, seconds, log_path):
    """Raw argon2id hashes per second on every core; p50/p99 do not apply."""
    done = subprocess.run([binary, str(seconds)], capture_output=True, text=True, check=True,
                          timeout=seconds + 120)
    with open(log_path, "a") as log:
        log.write(done.stdout + done.stderr)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "rps": result["hashes_per_second"],
        "p50_ms": None,
        "p99_ms": None,
        "non2xx": 0,
        "errors": 0,
        "cpu_ms_per_req": result["cpu_ms_per_hash"],
        "peak_rss_mib": result["peak_rss_kib"] / 1024,
        "requests": result["hashes"],
        "statuses": {},
        "counters": {},
    }
