"""Where things are: the repository, the Latch binary, the peers, the Lua scripts and bench/out."""
import os

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_DIR = os.path.dirname(BENCH_DIR)
LUA_DIR = os.path.join(BENCH_DIR, "lua")
DJANGO_DIR = os.path.join(BENCH_DIR, "peers", "django")
NODE_DIR = os.path.join(BENCH_DIR, "peers", "node")
OUT_DIR = os.environ.get("BENCH_OUT", os.path.join(BENCH_DIR, "out"))
BIN_DIR = os.path.join(OUT_DIR, "bin")
LATCH = os.environ.get("BENCH_LATCH", os.path.join(REPO_DIR, "build", "latch"))
BENCHMARKS_MD = os.path.join(REPO_DIR, "BENCHMARKS.md")
CHART_PNG = os.path.join(BENCH_DIR, "results.png")
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which has the Django packages
