"""Reads schemathesis's NDJSON event stream and prints the run's counts; fails on broken promises.

    summary.py RUN.ndjson [LABEL]

Prints one line, `LABEL: N operations, N requests, N failures, N errors`, then each failure.
It also checks one promise of erpos's own on every answer (ENGINEERING.md), whatever the
OpenAPI document says: every 4xx/5xx body is the JSON error shape `{"error": {"code",
"message", "details"}}` — a plain-text rejection or an empty 4xx counts as a failure here.
A response slower than SLOW_S seconds is listed (a hang is schemathesis's own request
timeout, counted as an error). Exit status 1 when anything failed, else 0.
Standard library only.
"""

import base64
import collections
import json
import sys

SLOW_S = 5.0


def body_of(message):
    raw = (message or {}).get("body") or (message or {}).get("content") or {}
    if "$base64" in raw:
        return base64.b64decode(raw["$base64"])
    return (raw.get("string") or "").encode()


def main(path, label="schemathesis"):
    selected = 0
    tested = set()
    requests = 0
    failures = collections.OrderedDict()  # (operation, check, title) -> (count, example)
    errors = []
    slow = []
    statuses = collections.Counter()
    for line in open(path, encoding="utf-8"):
        event = json.loads(line)
        kind, data = next(iter(event.items()))
        if kind == "LoadingFinished":
            selected = data["statistic"]["operations"]["selected"]
        elif kind == "NonFatalError":
            errors.append(f"{data.get('label', '?')}: {data.get('info', {}).get('message', data)}"[:400])
        elif kind == "FatalError":
            errors.append(f"fatal: {str(data)[:400]}")
        if kind != "ScenarioFinished":
            continue
        rec = data["recorder"]
        op = rec["label"]
        is_operation = op.split(" ", 1)[0].isupper() and " /" in op  # not "Stateful tests"
        for case_id, interaction in rec.get("interactions", {}).items():
            res = interaction.get("response")
            if not res:
                continue
            requests += 1
            if is_operation:
                tested.add(op)
            code = res["status_code"]
            statuses[code // 100 * 100] += 1
            req = interaction["request"]
            if res.get("elapsed", 0) > SLOW_S:
                slow.append(f"{res['elapsed']:.1f} s {req['method']} {req['uri']}")
            if code >= 400 and req["method"] != "HEAD":
                problem = error_shape_problem(res)
                if problem:
                    key = (op, "erpos_json_error_shape", problem)
                    count, example = failures.get(key, (0, None))
                    failures[key] = (count + 1, example or f"{req['method']} {req['uri']} -> {code}: {body_of(res)[:200]!r}")
        for case_id, checks in rec.get("checks", {}).items():
            for check in checks:
                if check["status"] != "failure":
                    continue
                info = (check.get("failure_info") or {}).get("failure") or {}
                key = (op, check["name"], info.get("title", ""))
                count, example = failures.get(key, (0, None))
                interaction = rec.get("interactions", {}).get(case_id) or {}
                req = interaction.get("request") or {}
                res = interaction.get("response") or {}
                failures[key] = (
                    count + 1,
                    example or f"{req.get('method')} {req.get('uri')} -> {res.get('status_code')}: {info.get('message', '')[:300]}",
                )
    failed = sum(count for count, _ in failures.values())
    print(
        f"{label}: {len(tested)} of {selected} operations, {requests} requests "
        f"({', '.join(f'{k // 100}xx {v}' for k, v in sorted(statuses.items()))}), "
        f"{failed} failures ({len(failures)} distinct), {len(errors)} errors"
    )
    for (op, check, title), (count, example) in failures.items():
        print(f"  FAIL {op} [{check}] {title} x{count}\n       e.g. {example}")
    for e in errors:
        print(f"  ERROR {e}")
    for s in slow:
        print(f"  slow: {s}")
    return 1 if failures or errors else 0


def error_shape_problem(res):
    ctype = ((res.get("headers") or {}).get("content-type") or [""])[0]
    raw = body_of(res)
    if not raw:
        return "an error answered with an empty body"
    if not ctype.startswith("application/json"):
        return f"an error answered as {ctype or 'no content type'}, not the JSON error shape"
    try:
        err = json.loads(raw).get("error")
    except (ValueError, AttributeError):
        return "an error body that is not a JSON object"
    if not isinstance(err, dict) or not all(isinstance(err.get(k), t) for k, t in (("code", str), ("message", str), ("details", list))):
        return "an error body without error.code, error.message and error.details"
    return None


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:3]))
