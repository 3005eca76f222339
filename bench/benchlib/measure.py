"""One measurement: a wrk run against a started server, with the server's CPU time per request and peak RSS."""
import json
import subprocess

from benchlib import procs, wrk


def _errors(result):
    return sum(result["socket_errors"].values())


def workload(server, work, data, seconds, log_path):
    """Runs one workload; the numbers of bench/run's table, before taking medians."""
    procs.reset_peak_rss(server.pgid)
    cpu_before = procs.cpu_seconds(server.pgid)
    result = wrk.run(server.url, work.script, work.args(data), seconds, work.connections, log_path)
    cpu_used = procs.cpu_seconds(server.pgid) - cpu_before
    peak_kib = procs.memory_kib(server.pgid, "VmHWM")
    requests = result["requests"]
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
