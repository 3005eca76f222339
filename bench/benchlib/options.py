"""bench/run's settings from the environment: BENCH_SECONDS, BENCH_RUNS, BENCH_ONLY, BENCH_WRITE."""
import os
from dataclasses import dataclass

from benchlib import console_bench, faults, footprint, roundtrips, scale
from benchlib.workloads import ARGON2, CEILING_SERVERS, WORKLOADS

SERVERS = ("latch", "latch_eddsa", "latch_es256", "latch_syncfull", "latch_pg", "latch_pg2",
           "django", "node", "ceiling", "loop")
# wrk workloads, the argon2 ceiling, the memory and start-up measurements (footprint.py), and
# Latch's faults and scale part (faults.py, scale.py), and the statements per request on
# PostgreSQL (roundtrips.py), and the console's users list at 100,000 users (console_bench.py).
WORKLOAD_NAMES = (tuple(w.name for w in WORKLOADS) + (ARGON2,) + footprint.NAMES
                  + (faults.NAME, scale.NAME, "tokens", roundtrips.NAME, console_bench.NAME))
# A ceiling's own workloads, by the server that runs them.
CEILING_WORKLOADS = {w.name: w.servers[0] for w in WORKLOADS if w.servers[0] in CEILING_SERVERS}
CEILING_WORKLOADS[ARGON2] = "ceiling"


@dataclass(frozen=True)
class Options:
    seconds: int
    runs: int
    servers: tuple     # in SERVERS order
    workloads: tuple   # in WORKLOAD_NAMES order
    only_text: str     # BENCH_ONLY as given, for the report
    write: bool        # update BENCHMARKS.md and bench/results.png


def _positive_int(name, default):
    text = os.environ.get(name, str(default))
    if not text.isdigit() or int(text) < 1:
        raise SystemExit(f"bench: {name} must be a positive integer, not {text!r}")
    return int(text)


def _only(text):
    """BENCH_ONLY=latch,node or =getuser,refresh or both kinds mixed: servers x workloads
    (latch_pg,getuser: getuser_pg)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVERS and n not in WORKLOAD_NAMES]
    if unknown:
        raise SystemExit(f"bench: BENCH_ONLY: unknown {', '.join(unknown)}; "
                         f"servers: {', '.join(SERVERS)}; workloads: {', '.join(WORKLOAD_NAMES)}")
    named = tuple(s for s in SERVERS if s in names)
    servers = named or SERVERS
    # getuser names getuser_pg too when latch_pg is named: a workload's row on each named server.
    variants = {w.name for w in WORKLOADS
                if w.servers[0] in named and w.name.split("_", 1)[0] in names}
    workloads = tuple(w for w in WORKLOAD_NAMES if w in names or w in variants) or WORKLOAD_NAMES
    for w, server in CEILING_WORKLOADS.items():  # naming a ceiling's workload names the ceiling
        if w in names and server not in servers:
            servers = tuple(s for s in SERVERS if s in servers or s == server)
    return servers, workloads


def from_env():
    only_text = os.environ.get("BENCH_ONLY", "")
    servers, workloads = _only(only_text)
    return Options(seconds=_positive_int("BENCH_SECONDS", 10),
                   runs=_positive_int("BENCH_RUNS", 3),
                   servers=servers, workloads=workloads, only_text=only_text,
                   write=os.environ.get("BENCH_WRITE", "1") != "0")
