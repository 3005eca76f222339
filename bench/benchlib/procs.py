"""Processes of a server under test: free ports, start and stop as a process group, CPU time and peak RSS from /proc."""
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv, log_path, cwd=None, env=None):
    """Starts argv in its own process group (its workers join it), output to log_path; env: the whole environment."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def stop(proc, grace_seconds=10):
    """SIGTERM to the whole group, SIGKILL to what is left after the grace period."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            pass
    for pid in group_pids(proc.pid):  # workers that outlived their parent
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def wait_until_answering(url, proc, timeout_seconds=60):
    """Polls url until the server answers with any HTTP status; False if it died or timed out."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return True
        except urllib.error.HTTPError:
            return True  # a 401 or 404 is an answer
        except OSError:
            time.sleep(0.2)
    return False


def _stat_fields(pid):
    """The fields of /proc/PID/stat after the command name (state is index 0)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def group_pids(pgid):
    """Every live process whose process group is pgid (the server and its workers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(entry)
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


def cpu_seconds(pgid):
    """utime+stime of the group, with reaped children's (cutime+cstime) so an exited worker's time is kept."""
    ticks = 0
    for pid in group_pids(pgid):
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / CLOCK_TICKS


def _status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def memory_kib(pgid, key):
    """VmHWM (peak), VmRSS (now) or RssAnon (now, the anonymous part: heap, stacks, no file
    pages) summed over the group, in KiB; shared pages count once per process."""
    total = 0
    for pid in group_pids(pgid):
        try:
            total += _status_kib(pid, key)
        except OSError:
            pass
    return total


def reset_peak_rss(pgid):
    """Writing 5 to clear_refs resets VmHWM (Linux >= 4.0), so each workload gets its own peak."""
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
