"""The report: medians over runs, the tables bench/run prints, the BENCHMARKS.md results section and the gnuplot chart."""
import os
import statistics
import subprocess

from benchlib.workloads import ARGON2, ARGON2_TITLE, CEILING_SERVERS, WORKLOADS, latch_kind

START, END = "<!-- results:start -->", "<!-- results:end -->"
LABELS = {"latch": "Latch", "latch_eddsa": "Latch (EdDSA)", "latch_es256": "Latch (ES256)",
          "latch_syncfull": "Latch (sync full)", "latch_pg": "Latch (PostgreSQL)",
          "latch_pg2": "Latch (2 instances, PostgreSQL, HAProxy)",
          "django": "Django", "node": "Node", "ceiling": "ceiling", "loop": "ceiling"}
# What measure.workload adds on PostgreSQL: the database's own CPU and statements.
DB_KEYS = ("db_cpu_ms_per_req", "db_statements_per_req", "db_statements_per_s",
           "db_cpu_us_per_statement")
CEILING_LABELS = {"http": "ceiling: bare cpp-httplib", ARGON2: "ceiling: raw argon2id"}


def median_of(runs):
    """Medians of each number over the runs; non-2xx and socket errors: the worst run."""
    summary = {}
    for key in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_req", "peak_rss_mib", *DB_KEYS):
        values = [r[key] for r in runs if r.get(key) is not None]
        if not values and key in DB_KEYS:
            continue
        summary[key] = statistics.median(values) if values else None
    summary["non2xx"] = max(r["non2xx"] for r in runs)
    summary["errors"] = max(r["errors"] for r in runs)
    summary["runs"] = len(runs)
    return summary


def medians(results):
    return {key: median_of(runs) for key, runs in results.items() if runs}


def ceiling_key(work):
    return ("ceiling", work.ceiling)


def rate(value):
    if value is None:
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def number(value):
    if value is None:
        return "—"
    return f"{value:.3g}" if value < 100 else f"{value:,.0f}"


def ratio(a, b):
    if not a or not b:
        return "—"
    r = a["rps"] / b["rps"]
    return f"{r:.2f}×" if r < 10 else f"{r:.1f}×"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def summary_table(m):
    """Requests/s per workload and server, with Latch's ratios to the ceiling and the peers."""
    header = ["workload", "Latch", "Django", "Node", "ceiling",
              "Latch/ceiling", "Latch/Django", "Latch/Node", "Latch/loop ceiling"]
    rows = []
    for work in WORKLOADS:
        if work.servers[0] in CEILING_SERVERS:
            continue
        latch, django, node = (m.get((s, work.name)) for s in (latch_kind(work), "django", "node"))
        ceiling = m.get(ceiling_key(work))
        loop = m.get(("loop", "loop")) if work.ceiling == "http" else None
        if not any((latch, django, node)):
            continue
        rows.append([work.title, *(rate(x["rps"]) if x else "—" for x in (latch, django, node)),
                     rate(ceiling["rps"]) if ceiling else "—",
                     ratio(latch, ceiling), ratio(latch, django), ratio(latch, node),
                     ratio(latch, loop)])
    return table(header, rows)


def detail_rows(m, work):
    rows = []
    for server in (latch_kind(work), "django", "node"):
        x = m.get((server, work.name))
        if x:
            rows.append([LABELS[server], *detail_cells(x)])
    if not rows:
        return rows  # the ceilings have tables of their own
    ceiling = m.get(ceiling_key(work))
    if ceiling:
        rows.append([CEILING_LABELS[work.ceiling], *detail_cells(ceiling)])
    return rows


def detail_cells(x):
    return [rate(x["rps"]), number(x["p50_ms"]), number(x["p99_ms"]),
            number(x["cpu_ms_per_req"]), number(x["peak_rss_mib"]),
            str(x["non2xx"]), str(x["errors"])]


def detail_tables(m):
    header = ["server", "req/s", "p50 ms", "p99 ms", "server CPU ms/req", "peak RSS MiB",
              "non-2xx", "socket errors"]
    parts = []
    for work in WORKLOADS:
        if work.servers[0] in CEILING_SERVERS:
            continue
        rows = detail_rows(m, work)
        if rows:
            parts.append(f"**{work.title}** ({work.connections} connections)\n\n"
                         + table(header, rows))
    ceilings = [((w.servers[0], w.name), w.title) for w in WORKLOADS if w.servers[0] in CEILING_SERVERS]
    for key, title in ceilings + [(("ceiling", ARGON2), ARGON2_TITLE)]:
        if key in m:
            parts.append(f"**{title}**\n\n" + table(header, [[LABELS[key[0]], *detail_cells(m[key])]]))
    return "\n\n".join(parts)


def console(m, skipped, notes, footprint=""):
    """What bench/run prints at the end; footprint: the memory and start-up Markdown."""
    out = ["", summary_table(m), "", detail_tables(m)] if m else []
    if footprint:
        out += ["", footprint]
    for server, reason in skipped.items():
        out.append(f"skipped {server}: {reason}")
    for server, lines in notes.items():
        out.append(f"{server}: {len(lines)} unexpected log line(s), e.g. {lines[0]}")
    return "\n".join(out)


def section(m, machine, options, skipped, notes, chart_made, footprint=""):
    """The Markdown between the results markers; footprint: the memory and start-up part."""
    out = [START, "",
           f"Measured {machine['date']} on {machine['cpu']} ({machine['nproc']} cores, "
           f"{machine['memory']}), Linux {machine['kernel']}; {machine['versions']}.",
           "",
           f"Each number is the median of {options.runs} run(s) of {options.seconds} s "
           f"(`BENCH_SECONDS={options.seconds} BENCH_RUNS={options.runs}"
           + (f" BENCH_ONLY={options.only_text}" if options.only_text else "")
           + "`), wrk -t2 with the connections shown; non-2xx and socket errors are the worst run's.",
           ""]
    if chart_made:
        out += ["![requests per second per workload and server](bench/results.png)", ""]
    out += ["Requests per second:", "", summary_table(m), "", detail_tables(m), ""]
    if footprint:
        out += [footprint, ""]
    if skipped:
        out += ["Not measured:", ""] + [f"- {s}: {r}" for s, r in skipped.items()] + [""]
    if notes:
        out += ["Server logs with unexpected lines:", ""]
        out += [f"- {s}: {len(lines)} line(s), first: `{lines[0][:200]}`" for s, lines in notes.items()]
        out += [""]
    out.append(END)
    return "\n".join(out)


def token_cost_markdown(rows):
    """bench/token_cost's lines as a table: microseconds per signature and per verification."""
    hs = next((r for r in rows if r["alg"] == "HS256"), None)
    body = [[r["alg"], f"{r['sign_us']:.1f}", f"{r['verify_us']:.1f}",
             f"{r['sign_us'] / hs['sign_us']:.0f}×" if hs else "—",
             f"{r['verify_us'] / hs['verify_us']:.0f}×" if hs else "—", str(r["token_bytes"])]
            for r in rows]
    return table(["alg", "sign µs", "verify µs (claims read too)", "sign vs HS256",
                  "verify vs HS256", "token bytes"], body)


def replace_between(text, start, end, new_section):
    """text with start..end replaced by new_section (which carries the markers); appended if absent."""
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        return text.rstrip("\n") + "\n\n" + new_section + "\n"
    return text[:i] + new_section + text[j + len(end):]


def write_section(path, start, end, new_section):
    text = open(path).read() if os.path.exists(path) else ""
    with open(path, "w") as f:
        f.write(replace_between(text, start, end, new_section))


def chart(m, data_path, script_path, png_path):
    """A log-scale clustered bar chart of requests/s; False when gnuplot is missing or fails."""
    rows = []
    for work in WORKLOADS:
        if work.servers[0] in CEILING_SERVERS:
            continue
        values = [m.get((s, work.name)) for s in (latch_kind(work), "django", "node")]
        values.append(m.get(ceiling_key(work)))
        if any(values[:3]):
            cells = [f"{v['rps']:.2f}" if v else "-" for v in values]
            rows.append(f'"{work.name}" ' + " ".join(cells))
    if not rows:
        return False
    with open(data_path, "w") as f:
        f.write("# workload latch django node ceiling\n" + "\n".join(rows) + "\n")
    with open(script_path, "w") as f:
        f.write(GNUPLOT.format(png=png_path, data=data_path))
    try:
        subprocess.run(["gnuplot", script_path], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


GNUPLOT = """set terminal pngcairo size 1000,520 font "sans,10"
set output "{png}"
set title "Requests per second (log scale)\\nceiling: bare cpp-httplib route for token checks and refresh, raw argon2id hashes for sign-in and sign-up"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [1:*]
set grid ytics
set key top right
set datafile missing "-"
set ylabel "requests/s"
plot "{data}" using 2:xtic(1) title "Latch", '' using 3 title "Django", \\
     '' using 4 title "Node", '' using 5 title "ceiling"
"""
