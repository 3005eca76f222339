"""Runs wrk with one of bench/lua's scripts and reads the result line its done() prints."""
import json
import os
import signal
import subprocess

from benchlib import paths

THREADS = 2          # wrk threads (-t)
TIMEOUT = "10s"      # a slow answer (a queued argon2 hash) is a latency, not an error

RESULT_PREFIX = "BENCH_RESULT "


class WrkError(RuntimeError):
    pass


def command(url, script, script_args, seconds, connections):
    return ["wrk", f"-t{THREADS}", f"-c{connections}", f"-d{seconds}s", "--latency",
            "--timeout", TIMEOUT, "-s", os.path.join(paths.LUA_DIR, script), url,
            "--", *script_args]


def parse(output):
    """The JSON after BENCH_RESULT; latencies come from wrk's own histogram (latency:percentile)."""
    for line in output.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    raise WrkError("wrk printed no result line:\n" + output[-2000:])


def run(url, script, script_args, seconds, connections, log_path):
    argv = command(url, script, script_args, seconds, connections)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(argv) + "\n" + done.stdout + done.stderr + "\n")
    if done.returncode != 0:
        raise WrkError(f"wrk exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return parse(done.stdout)


class Background:
    """wrk running until stop(), for a window whose length is not known when it starts: on
    SIGINT wrk ends its threads and prints its result as it does at the end of -d."""

    LONGEST_SECONDS = 1200

    def __init__(self, url, script, script_args, connections, log_path):
        self.argv = command(url, script, script_args, self.LONGEST_SECONDS, connections)
        self.log_path = log_path
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=120)
        with open(self.log_path, "a") as log:
            log.write("$ " + " ".join(self.argv) + " (stopped by SIGINT)\n" + out + err + "\n")
        if self.proc.returncode != 0:
            raise WrkError(f"wrk exited {self.proc.returncode}: {err.strip()[-2000:]}")
        return parse(out)
