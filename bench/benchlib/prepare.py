"""Data the wrk scripts read: users signed up before the run, with their access and refresh tokens, one per line."""
import json
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

PASSWORD = "bench-password-1"  # every prepared user's; 8+ characters, fine for every API


@dataclass(frozen=True)
class RunData:
    users: str          # file: one username a line
    access: str         # file: one access token a line
    refresh: str        # file: one refresh token a line (each of a different session)
    password: str
    signup_prefix: str  # sign-up usernames start with it, so they never collide with these


def post_json(url, payload, timeout=120):
    """(status, parsed JSON body or {}) of a POST with a JSON body."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, {}


def _register(base_url, username):
    status, body = post_json(base_url + "/auth/register",
                             {"username": username, "password": PASSWORD})
    if status != 201 or "access" not in body or "refresh" not in body:
        raise RuntimeError(f"preparing data: register {username} answered {status}")
    return username, body["access"], body["refresh"]


def _write_lines(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def prepare(base_url, workdir, count, concurrency=8):
    """Signs up `count` users through simplejwt's register; each sign-up is a session of its own."""
    names = [f"bench{i}" for i in range(count)]
    with ThreadPoolExecutor(concurrency) as pool:
        rows = list(pool.map(lambda name: _register(base_url, name), names))
    data = RunData(users=os.path.join(workdir, "users.txt"),
                   access=os.path.join(workdir, "access.txt"),
                   refresh=os.path.join(workdir, "refresh.txt"),
                   password=PASSWORD,
                   signup_prefix=f"new{os.getpid()}t")
    _write_lines(data.users, [r[0] for r in rows])
    _write_lines(data.access, [r[1] for r in rows])
    _write_lines(data.refresh, [r[2] for r in rows])
    return data
