"""Talks to a running `erpos demo` for the API tests (.ci/schemathesis.sh, .ci/typescript-client.sh).

Standard library only, so it runs before any virtualenv exists:

    demo.py wait  BASE [SECONDS]        wait until BASE/healthz answers 200 (exit 1 on timeout)
    demo.py login BASE USER PASSWORD    log in (POST /api/v1/sessions); print the session token
    demo.py ids   BASE TOKEN            print `NAME=value` lines: ids of the demo's own records
                                        and processes, for schemathesis's dictionaries

It never prints a password; the token it prints is a throwaway demo session's.
"""

import json
import sys
import time
import urllib.error
import urllib.request


def call(base, method, path, token=None, body=None):
    """One request; returns (status, parsed JSON body or None)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            raw = res.read()
            return res.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


def wait(base, seconds="60"):
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        try:
            status, _ = call(base, "GET", "/healthz")
            if status == 200:
                return 0
        except OSError:
            pass
        time.sleep(0.2)
    print(f"demo.py: {base}/healthz did not answer 200 within {seconds} s", file=sys.stderr)
    return 1


def login(base, user, password):
    status, body = call(base, "POST", "/api/v1/sessions", body={"user": user, "password": password})
    if status != 201 or not isinstance(body, dict) or "token" not in body:
        print(f"demo.py: login as {user} failed: {status} {body}", file=sys.stderr)
        return 1
    print(body["token"])
    return 0


def ids(base, token):
    """The ids schemathesis cannot guess: records get random UUIDs on every demo start."""
    out = {}
    for name, item in [("PATIENT_ID", "patient"), ("PRACTITIONER_ID", "practitioner"), ("ROOM_ID", "room")]:
        status, body = call(base, "GET", f"/api/v1/records/{item}?limit=1", token)
        if status != 200 or not body.get("items"):
            print(f"demo.py: no {item} record in the demo: {status} {body}", file=sys.stderr)
            return 1
        out[name] = body["items"][0]["id"]
    status, body = call(base, "GET", "/api/v1/processes?limit=1", token)
    if status != 200 or not body.get("items"):
        print(f"demo.py: no process in the demo: {status} {body}", file=sys.stderr)
        return 1
    out["PROCESS_ID"] = body["items"][0]["id"]
    for k, v in out.items():
        print(f"{k}={v}")
    return 0


if __name__ == "__main__":
    commands = {"wait": wait, "login": login, "ids": ids}
    if len(sys.argv) < 3 or sys.argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(commands[sys.argv[1]](*sys.argv[2:]))
