"""Start time and memory against the number of live sessions: 10k, 100k and 1M, each less an empty database, per session."""
import os
import socket
import statistics
import time

from benchlib import procs, report, seed, servers

NAME = "scale"
SIZES = (0, 10_000, 100_000, 1_000_000)  # 0: the baseline the others are measured against
STARTS = 3            # per size; medians
SETTLE_SECONDS = 1    # after /healthz first answers 200, before RSS is read
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"


def _healthy(port):
    """Whether /healthz answers 200 now: a raw request, cheap enough to ask every millisecond."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(HEALTHZ)
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def one_start(workdir, timeout_seconds=120):
    """(ms from exec to /healthz 200, peak RSS MiB at start, RSS MiB SETTLE_SECONDS later)."""
    port = procs.free_port()
    began = time.perf_counter()
    proc, _ = servers.KINDS["latch"].start(workdir, port)
    try:
        while not _healthy(port):
            if proc.poll() is not None or time.perf_counter() - began > timeout_seconds:
                raise RuntimeError(f"Latch did not answer /healthz: see {workdir}/server.log")
            time.sleep(0.001)
        ms = 1000 * (time.perf_counter() - began)
        peak = procs.memory_kib(proc.pid, "VmHWM") / 1024
        time.sleep(SETTLE_SECONDS)
        return ms, peak, procs.memory_kib(proc.pid, "VmRSS") / 1024
    finally:
        procs.stop(proc)


def measure(run_root):
    """One row per size: medians over STARTS starts on a copy of a database seeded with that
    many live sessions."""
    rows = []
    for n in SIZES:
        workdir = os.path.join(run_root, f"scale-{n}")
        seed.copy(seed.live(run_root, n), workdir)
        starts = [one_start(workdir) for _ in range(STARTS)]
        row = {"sessions": n,
               "start_ms": statistics.median(s[0] for s in starts),
               "peak_mib": statistics.median(s[1] for s in starts),
               "rss_mib": statistics.median(s[2] for s in starts)}
        rows.append(row)
        print(f"  scale {n:,} sessions: start {row['start_ms']:.1f} ms, RSS {row['rss_mib']:.1f} "
              f"MiB, peak at start {row['peak_mib']:.1f} MiB (medians of {STARTS})", flush=True)
    return rows


def per_session(rows):
    """Each size's figures less the empty database's, divided by its sessions."""
    empty = rows[0]
    out = []
    for r in rows[1:]:
        n = r["sessions"]
        out.append(dict(r, us_per_session=1000 * (r["start_ms"] - empty["start_ms"]) / n,
                        bytes_per_session=2**20 * (r["rss_mib"] - empty["rss_mib"]) / n,
                        peak_bytes_per_session=2**20 * (r["peak_mib"] - empty["peak_mib"]) / n))
    return out


def markdown(rows):
    header = ["live sessions", "start to /healthz 200 ms", "RSS after start MiB",
              "peak RSS at start MiB", "start µs per session", "RSS bytes per session",
              "peak bytes per session"]
    table_rows = [["0 (one user)", f"{rows[0]['start_ms']:.1f}", f"{rows[0]['rss_mib']:.1f}",
                   f"{rows[0]['peak_mib']:.1f}", "—", "—", "—"]]
    for r in per_session(rows):
        table_rows.append([f"{r['sessions']:,}", report.number(r["start_ms"]),
                           f"{r['rss_mib']:.1f}", f"{r['peak_mib']:.1f}",
                           f"{r['us_per_session']:.2f}", f"{r['bytes_per_session']:.0f}",
                           f"{r['peak_bytes_per_session']:.0f}"])
    return report.table(header, table_rows)
