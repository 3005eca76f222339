"""Latch's benchmark runner: servers, data preparation, wrk, measurement and the report (Python stdlib only)."""
