"""Database round trips per request on PostgreSQL: N requests of each kind, one at a time, and the statements pg_stat_statements counted for them."""
import json
import time
import urllib.error
import urllib.request

from benchlib import prepare, report, servers

NAME = "roundtrips"
REQUESTS = 100      # of each kind
IDLE_SECONDS = 10   # statements with no request at all: the change feed's own


def _call(url, token, method="GET", payload=None):
    """The status of one request with a Bearer token (and a JSON body, if any)."""
    headers = {"Authorization": f"Bearer {token}"}
    data = None
    if payload is not None:
        data = json.dumps(payload).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def _expect(what, status, wanted):
    if status != wanted:
        raise RuntimeError(f"round trips: {what} answered {status}, not {wanted}")


def _counted(db, kind, send):
    """Resets the counts, sends REQUESTS requests one after another, reads the counts."""
    db.reset_statements()
    began = time.monotonic()
    for i in range(REQUESTS):
        send(i)
    seconds = time.monotonic() - began
    return {"kind": kind, "seconds": seconds, "statements": db.statement_counts()}


def measure(root):
    """One Latch on a fresh PostgreSQL; for each kind the statements of REQUESTS requests."""
    kind = servers.KINDS["latch_pg"]
    server = servers.start(kind, root)
    db, url = server.database, server.url
    rows = []
    try:
        signups = {}

        def sign_up(i):
            status, body = prepare.post_json(url + "/auth/register",
                                             {"username": f"rt{i}", "password": prepare.PASSWORD})
            _expect("sign-up", status, 201)
            signups[i] = body

        rows.append(_counted(db, "sign-up: POST /auth/register", sign_up))
        signins = {}

        def sign_in(i):
            status, body = prepare.post_json(url + "/auth/token",
                                             {"username": f"rt{i}", "password": prepare.PASSWORD})
            _expect("sign-in", status, 200)
            signins[i] = body

        rows.append(_counted(db, "sign-in: POST /auth/token", sign_in))

        def refresh(i):
            status, _ = prepare.post_json(url + "/auth/token/refresh",
                                          {"refresh": signups[i]["refresh"]})
            _expect("refresh", status, 200)

        rows.append(_counted(db, "refresh with rotation: POST /auth/token/refresh", refresh))

        def me(i):
            status = _call(url + "/api/v1/authorized/me", signins[i]["access"])
            _expect("token check", status, 200)

        rows.append(_counted(db, "token check: GET /api/v1/authorized/me", me))

        def logout(i):
            status = _call(url + "/api/v1/logout", signins[i]["access"], "POST", {})
            _expect("logout", status, 200)

        rows.append(_counted(db, "logout: POST /api/v1/logout", logout))
        db.reset_statements()
        time.sleep(IDLE_SECONDS)
        idle = db.statement_counts()
    finally:
        servers.stop(server)
    return rows, idle


def markdown(rows, idle):
    """The table: statements per request of each kind, and what they are."""
    idle_total = sum(calls for calls, _ in idle)
    idle_rate = idle_total / IDLE_SECONDS
    body = []
    for r in rows:
        total = sum(calls for calls, _ in r["statements"])
        background = idle_rate * r["seconds"]
        top = "; ".join(f"{calls / REQUESTS:.2f} × `{_short(query)}`"
                        for calls, query in r["statements"] if calls / REQUESTS >= 0.1)
        body.append([r["kind"], f"{total / REQUESTS:.2f}",
                     f"{max(0.0, total - background) / REQUESTS:.2f}", top])
    idle_text = "; ".join(f"{calls} × `{_short(query)}`" for calls, query in idle) or "none"
    return (report.table(["request", "statements per request", "less what an idle server runs",
                          "what they are, per request"], body)
            + f"\n\nWith no request at all, in {IDLE_SECONDS} s: {idle_total} statement(s) "
              f"({idle_text}).")


def _short(query, limit=90):
    return query if len(query) <= limit else query[:limit - 1] + "…"
