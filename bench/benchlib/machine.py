"""What the results were measured on: date, CPU model, cores, memory, kernel and the versions of everything run."""
import datetime
import json
import os
import subprocess

from benchlib import paths


def _first_line(argv):
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "?"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "?"


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def memory():
    with open("/proc/meminfo") as f:
        kib = int(f.readline().split()[1])
    return f"{kib / 1024 / 1024:.0f} GiB RAM"


def _node_package(name):
    try:
        with open(os.path.join(paths.NODE_DIR, "node_modules", name, "package.json")) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return "?"


PY_VERSIONS = ("import django, rest_framework, rest_framework_simplejwt, gunicorn; "
               "print(f'Django {django.get_version()}, DRF {rest_framework.VERSION}, "
               "SimpleJWT {rest_framework_simplejwt.__version__}, gunicorn {gunicorn.__version__}')")


def versions(peers=True):
    parts = [_first_line([paths.LATCH, "version"]),
             _first_line(["wrk", "-v"]).split(" [")[0]]
    if not peers:
        return "; ".join(parts)
    parts += [_first_line([paths.SYSTEM_PYTHON, "-c", PY_VERSIONS]),
              f"Node {_first_line(['node', '--version'])} (fastify {_node_package('fastify')}, "
              f"better-sqlite3 {_node_package('better-sqlite3')}, "
              f"@node-rs/argon2 {_node_package('@node-rs/argon2')}, "
              f"jsonwebtoken {_node_package('jsonwebtoken')})"]
    return "; ".join(parts)


def info(peers=True):
    """peers=False: Latch's and wrk's versions only."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "nproc": os.cpu_count(),
        "memory": memory(),
        "kernel": os.uname().release,
        "versions": versions(peers),
    }
