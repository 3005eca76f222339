"""Memory and start-up: idle RSS after a start on an existing database, Latch's start-to-listening time, and its RSS under 500 sign-ins at once."""
import os
import socket
import statistics
import time

from benchlib import procs, report, servers, wrk

IDLE = "idle"          # idle RSS after a restart on the database a run left
START = "start"        # start-to-listening on that database
BURST = "signin500"    # 500 connections posting sign-ins at once
NAMES = (IDLE, START, BURST)
# "loop" is Latch's HTTP layer alone (bench/ceiling_http loop): the floor of Latch's idle RSS,
# most of it the shared libraries Debian's cpp-httplib loads (it links and starts OpenSSL).
SERVERS = {IDLE: ("latch", "django", "node", "loop"), START: ("latch",), BURST: ("latch",)}
FLOOR_LABEL = "floor: Debian's cpp-httplib + Latch's connection loop, one route"

SETTLE_SECONDS = 2     # after the first answer, before RSS is read
STARTS = 20            # starts per run for the start-to-listening median
BURST_CONNECTIONS = 500
BURST_SECONDS = 5
# The bound Latch's RSS must stay under during the burst: hashing is capped at one argon2id
# hash per core (Latch's default), 19 MiB each (m=19456 KiB); twice that, plus a base for the
# process itself and 500 connection threads. Everything past the cap queues or gets 503.
ARGON2_MIB = 19
BURST_BASE_MIB = 32


def idle_rss(kind, workdir):
    """(RSS, anonymous RSS) MiB summed over the server's processes, once it answers and has been
    left alone. The anonymous part is the server's own memory (heap, stacks, JIT); the rest is
    pages of its program and libraries, shared with every process that maps the same files."""
    server = servers.start(kind, workdir)
    try:
        time.sleep(SETTLE_SECONDS)
        return (procs.memory_kib(server.pgid, "VmRSS") / 1024,
                procs.memory_kib(server.pgid, "RssAnon") / 1024)
    finally:
        procs.stop(server.proc)


def _accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def start_to_listening(kind, workdir, starts=STARTS, timeout_seconds=10):
    """Milliseconds from exec until the port accepts a TCP connection, once per start."""
    times = []
    for _ in range(starts):
        port = procs.free_port()
        began = time.perf_counter()
        proc, _ = kind.start(workdir, port)
        try:
            while not _accepts(port):
                if proc.poll() is not None or time.perf_counter() - began > timeout_seconds:
                    raise RuntimeError(f"{kind.label} did not listen: see {workdir}/server.log")
                time.sleep(0.0005)
            times.append(1000 * (time.perf_counter() - began))
        finally:
            procs.stop(proc)
    return times


def burst_bound_mib(hash_slots=None):
    slots = hash_slots or os.cpu_count() or 1
    return 2 * slots * ARGON2_MIB + BURST_BASE_MIB


def signin_burst(server, data, log_path, seconds=BURST_SECONDS):
    """Peak RSS and answers while BURST_CONNECTIONS connections each post sign-ins."""
    procs.reset_peak_rss(server.pgid)
    result = wrk.run(server.url, "signin.lua", [data.users, data.password], seconds,
                     BURST_CONNECTIONS, log_path)
    peak = procs.memory_kib(server.pgid, "VmHWM") / 1024
    statuses = {int(s): n for s, n in result["statuses"].items()}
    ok, busy = statuses.pop(200, 0), statuses.pop(503, 0)
    return {"peak_rss_mib": peak, "ok": ok, "busy": busy, "other": sum(statuses.values()),
            "errors": sum(result["socket_errors"].values()), "bound_mib": burst_bound_mib()}


def summary(runs):
    """One row's numbers from every run's: median idle RSS and start time, the worst burst."""
    out = {}
    if runs.get(IDLE):
        out[IDLE] = statistics.median(rss for rss, _ in runs[IDLE])
        out["anon"] = statistics.median(anon for _, anon in runs[IDLE])
    if runs.get(START):
        out[START] = statistics.median(runs[START])
        out["starts"] = len(runs[START])
    if runs.get(BURST):
        worst = max(runs[BURST], key=lambda b: b["peak_rss_mib"])
        out[BURST] = dict(worst, other=max(b["other"] for b in runs[BURST]),
                          errors=max(b["errors"] for b in runs[BURST]))
    return out


def failures(server, s):
    """What in a summary breaks the targets the suite checks: the burst's RSS bound and answers."""
    b = s.get(BURST)
    if not b:
        return []
    bad = []
    if b["peak_rss_mib"] > b["bound_mib"]:
        bad.append(f"{server} {BURST}: peak RSS {b['peak_rss_mib']:.0f} MiB over the bound "
                   f"{b['bound_mib']} MiB")
    if b["other"] or b["errors"]:
        bad.append(f"{server} {BURST}: answers other than 200 or 503 {b['other']}, "
                   f"socket errors {b['errors']}")
    return bad


def brief(name, value):
    """A run's line for bench/run's progress output."""
    if name == IDLE:
        return (f"{value[0]:.1f} MiB RSS ({value[1]:.1f} MiB anonymous) after a start on an "
                f"existing database")
    if name == START:
        return (f"median {statistics.median(value):.1f} ms over {len(value)} starts "
                f"(min {min(value):.1f}, max {max(value):.1f})")
    return (f"peak {value['peak_rss_mib']:.0f} MiB (bound {value['bound_mib']} MiB), "
            f"200: {value['ok']}, 503: {value['busy']}, other: {value['other']}, "
            f"socket errors {value['errors']}")


def markdown(summaries):
    """The memory and start-up part of the report: what was measured, then the table; empty if nothing was."""
    rows = table(summaries)
    if not rows:
        return ""
    return (f"**Memory and start-up**: idle RSS (summed over a server's processes) "
            f"{SETTLE_SECONDS} s after a restart on the database its run left, once it answers, "
            f"and its anonymous part (heap, stacks, JIT: the server's own memory; the rest is "
            f"the program's and libraries' file pages, shared with other processes); "
            f"Latch's time from exec until its port accepts a connection, median of {STARTS} "
            f"starts per run; Latch's peak RSS while {BURST_CONNECTIONS} connections post "
            f"sign-ins for {BURST_SECONDS} s, with the bound it must stay under "
            f"(2 × {ARGON2_MIB} MiB per hashing slot, one slot per core, + {BURST_BASE_MIB} MiB): "
            f"what exceeds the hashing cap queues or is answered 503.\n\n" + rows)


def table(summaries):
    """Markdown: one row per server with any of these numbers; empty if none has."""
    header = ["server", "idle RSS MiB", "of which anonymous", "start to listening ms (median)",
              f"peak RSS MiB, {BURST_CONNECTIONS} sign-ins at once (bound)",
              "answered 200 / 503 / other", "socket errors"]
    rows = []
    for server, s in summaries.items():
        b = s.get(BURST)
        rows.append([FLOOR_LABEL if server == "loop" else report.LABELS[server],
                     f"{s[IDLE]:.1f}" if IDLE in s else "—",
                     f"{s['anon']:.1f}" if IDLE in s else "—",
                     f"{s[START]:.1f} ({s['starts']} starts)" if START in s else "—",
                     f"{b['peak_rss_mib']:.0f} ({b['bound_mib']})" if b else "—",
                     f"{b['ok']} / {b['busy']} / {b['other']}" if b else "—",
                     str(b["errors"]) if b else "—"])
    return report.table(header, rows) if rows else ""
