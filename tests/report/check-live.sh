#!/usr/bin/env bash
# ctest report/live: `skyio serve` in front of two `skyio mock` (one fast, one throttled
# at 60 rpm) takes some traffic; GET /status.json has every model and deployment with
# limits, in flight, breaker and a history with the calls in it, and no key anywhere; GET /
# is one page with nothing from elsewhere; headless Chromium opens it with no console
# message, the deployments' rows and their sparkline paths drawn (with points), a model
# name with markup shown as text, and a screenshot that is not blank.
# Usage: check-live.sh SKYIO_BINARY SOURCE_DIR
set -uo pipefail

# shellcheck source=tests/report/lib.sh
source "$(dirname "$0")/lib.sh"

upstream_key=sk-live-upstream-canary-4f1d
client_key=sk-live-client-canary-9a2e
"$bin" mock --port-file fast.port --key "$upstream_key" --ttft-ms 5 >fast.log 2>&1 &
pids+=($!)
"$bin" mock --port-file slow.port --key "$upstream_key" --ttft-ms 40 --rpm 60 >slow.log 2>&1 &
pids+=($!)
fast=$(wait_port fast.port)
slow=$(wait_port slow.port)
[ -n "$fast" ] && [ -n "$slow" ] || { echo "FAIL: the mocks did not start"; exit 1; }

cat >gateway.json <<JSON
{"models": {
  "gpt-4o": [{"kind": "openai", "base_url": "http://127.0.0.1:$fast/v1", "key_env": "LIVE_UPSTREAM_KEY", "weight": 2,
              "max_concurrency": 64},
             {"kind": "compatible", "base_url": "http://127.0.0.1:$slow/v1", "key_env": "LIVE_UPSTREAM_KEY",
              "concurrency": 8}],
  "<img src=x onerror=alert(1)>": [{"kind": "compatible", "base_url": "http://127.0.0.1:$fast/v1",
             "key_env": "LIVE_UPSTREAM_KEY", "deployment": "gpt-4o-mini"}],
  "down": [{"kind": "compatible", "base_url": "http://127.0.0.1:1/v1", "key_env": "LIVE_UPSTREAM_KEY"}]},
 "fallbacks": {"<img src=x onerror=alert(1)>": ["gpt-4o"]},
 "keys": [{"name": "team-live", "key_env": "LIVE_CLIENT_KEY"}]}
JSON
LIVE_UPSTREAM_KEY=$upstream_key LIVE_CLIENT_KEY=$client_key \
  "$bin" serve --config gateway.json --port 0 --port-file serve.port >serve.log 2>&1 &
serve_pid=$!
pids+=($serve_pid)
port=$(wait_port serve.port)
[ -n "$port" ] || { echo "FAIL: skyio serve did not start: $(tail -3 serve.log)"; exit 1; }
base="http://127.0.0.1:$port"

# Traffic: 30 chat calls to gpt-4o at once (some land on the throttled mock), 5 to the odd
# name. HTTP from Python's standard library, as the checks below are.
traffic() {
  python3 - "$base" "$client_key" "$1" "$2" <<'PY'
import json, sys, urllib.error, urllib.request
from concurrent.futures import ThreadPoolExecutor
base, key, n, odd = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def call(model):
    body = json.dumps({"model": model, "max_tokens": 8,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    req = urllib.request.Request(base + "/v1/chat/completions", body, {
        "Authorization": "Bearer " + key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
with ThreadPoolExecutor(30) as pool:
    codes = list(pool.map(call, ["gpt-4o"] * n))
codes += [call("<img src=x onerror=alert(1)>") for _ in range(odd)]
codes += [call("down") for _ in range(odd and 4)]  # nothing listens there: 502
print("\n".join(map(str, codes)))
PY
}
traffic 30 5 >codes.txt
[ "$(grep -c '^200$' codes.txt)" -ge 30 ] && [ "$(grep -c '^502$' codes.txt)" = 4 ] && ok || fail "calls: $(sort codes.txt | uniq -c | tr '\n' ' ')"

# GET PATH into FILE, its headers into FILE.head.
get() {
  python3 - "$base$1" "$2" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=30) as r:
    open(sys.argv[2], "wb").write(r.read())
    open(sys.argv[2] + ".head", "w").write("".join(f"{k}: {v}\n" for k, v in r.getheaders()))
PY
}
get /status.json status.json
python3 - status.json <<'PY' && ok || fail "status.json: $(head -c 400 status.json)"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["slot_seconds"] > 0 and s["slots"] >= 12 and s["loops"] == 1, s
# the newest slot may have just begun, without a sample yet: one of the last two has one
lag = [v for v in s["loop_lag_ms"][-2:] if v is not None]
assert len(s["loop_lag_ms"]) == s["slots"] and lag and min(lag) >= 0, s["loop_lag_ms"]
assert s["connections_open"] >= 1, s["connections_open"]
names = [m["name"] for m in s["models"]]
assert sorted(names) == sorted(["gpt-4o", "<img src=x onerror=alert(1)>", "down"]), names
m = {m["name"]: m for m in s["models"]}["gpt-4o"]
assert m["ready"] is True and m["fallbacks"] == [], m
assert [d["label"] for d in m["deployments"]] == ["gpt-4o#0", "gpt-4o#1"], m["deployments"]
for d in m["deployments"]:
    for k in ["kind", "weight", "usable", "in_flight", "concurrency_limit", "rpm", "tpm", "breaker"]:
        assert k in d, (k, d)
    assert d["breaker"] == "closed" and d["concurrency_limit"] > 0, d
    h = d["history"]
    assert all(len(h[k]) == s["slots"] for k in ["requests", "throttled", "errors", "p50_ms", "p90_ms"])
assert m["deployments"][0]["weight"] == 2 and m["deployments"][0]["kind"] == "openai"
h = m["history"]
assert sum(h["requests"]) >= 30, h["requests"]
assert sum(sum(d["history"]["requests"]) for d in m["deployments"]) <= sum(h["requests"])
assert sum(m["deployments"][0]["history"]["requests"]) > 0
last = [v for v in h["p50_ms"] if v is not None]
assert last and last[-1] > 0, h["p50_ms"]
assert all(a <= b for a, b in zip(h["p50_ms"], h["p90_ms"]) if a is not None), h
odd = {m["name"]: m for m in s["models"]}["<img src=x onerror=alert(1)>"]
assert odd["fallbacks"] == ["gpt-4o"] and sum(odd["history"]["requests"]) == 5, odd
down = {m["name"]: m for m in s["models"]}["down"]
assert sum(down["history"]["errors"]) == 4 and sum(h["errors"]) == 0, down["history"]
assert sum(down["deployments"][0]["history"]["errors"]) == 4, down["deployments"]
PY
grep -qi '^content-type: application/json' status.json.head && ok || fail "status.json content type"
cat status.json serve.log >all.txt
grep -qe "$upstream_key" -e "$client_key" -e "127.0.0.1:$fast" all.txt &&
  fail "a key or an upstream URL in status.json or the log" || ok

# The page: one document, nothing from elsewhere, a policy that allows nothing else.
get / page.html
grep -qi '^content-type: text/html' page.html.head && ok || fail "page content type: $(cat page.html.head)"
grep -qi "^content-security-policy: default-src 'none'" page.html.head && ok || fail "no CSP"
grep -Eq 'src="https?:|href="https?:|url\(' page.html && fail "the page loads something" || ok
grep -q '/status.json\|"status.json"' page.html && ok || fail "the page does not read status.json"

chrome() {
  timeout 120 "$chromium_bin" --headless=new --no-sandbox --disable-gpu --no-first-run \
    --user-data-dir="$tmp/chromium" --enable-logging=stderr --log-level=0 \
    --virtual-time-budget=5000 "$@"
}
chrome --dump-dom "$base/" >dom.html 2>console.log
grep -q "CONSOLE" console.log && fail "console messages: $(grep CONSOLE console.log | head -3)" || ok
python3 - dom.html <<'PY' && ok || fail "the page is not drawn: $(head -c 600 dom.html)"
import re, sys
from html.parser import HTMLParser
class P(HTMLParser):
    def __init__(self):
        super().__init__(); self.rows = []; self.row = None; self.paths = []; self.imgs = 0
        self.lag = 0
        self.text = []
    def handle_starttag(self, tag, a):
        a = dict(a)
        if tag == "img": self.imgs += 1
        if tag == "tr" and a.get("class") in ("model", "deployment"):
            self.row = {"class": a["class"], "text": "", "cells": [], "paths": []}
            self.rows.append(self.row)
        if tag == "td" and self.row is not None: self.row["cells"].append("")
        if tag == "path" and "lag" in (a.get("class") or ""):
            self.lag = len(re.findall(r"[ML]", a.get("d", "")))
        if tag == "path" and "spark" in (a.get("class") or "") and self.row is not None:
            self.row["paths"].append((a["class"], len(re.findall(r"[ML]", a.get("d", "")))))
    def handle_endtag(self, tag):
        if tag == "tr": self.row = None
    def handle_data(self, d):
        self.text.append(d)
        if self.row is not None:
            self.row["text"] += d
            if self.row["cells"]: self.row["cells"][-1] += d
p = P(); p.feed(open(sys.argv[1]).read())
assert p.imgs == 0, "a name with markup became an element"
assert p.lag >= 1, "no loop lag line"
assert "<img src=x onerror=alert(1)>" in "".join(p.text), "the odd name is not shown as text"
deps = [r for r in p.rows if r["class"] == "deployment"]
names = [r["cells"][0] for r in deps]
assert names[:2] == ["gpt-4o#0", "gpt-4o#1"] and names[2].startswith("<img src=x"), names
assert names[3] == "down#3", names
assert len([r for r in p.rows if r["class"] == "model"]) == 3
for r in p.rows:
    rate = [n for c, n in r["paths"] if "rate" in c]
    assert rate and rate[0] >= 12, (r["text"][:30], r["paths"])
busy = [r for r in p.rows if r["cells"][0] == "all of gpt-4o"][0]
lat = [n for c, n in busy["paths"] if "p50" in c or "p90" in c]
assert len(lat) == 2 and min(lat) >= 1, busy["paths"]
assert deps[0]["cells"][2] == "closed", deps[0]["cells"]
down = [r for r in p.rows if r["cells"][0] == "all of down"][0]
assert down["cells"][-1] == "0 / 4", down["cells"]
assert [n for c, n in down["paths"] if "fail" in c][0] >= 12, down["paths"]
PY
chrome --screenshot="$tmp/shot.png" --window-size=1400,900 "$base/" >/dev/null 2>&1
python3 "$src/tests/report/png_nonblank.py" shot.png 100 >png.log 2>&1 && ok ||
  fail "the screenshot is blank or has no coloured lines: $(tail -1 png.log)"

# SIGTERM: the gateway stops cleanly (under the sanitizers: no report on the way out).
kill -TERM "$serve_pid"
wait "$serve_pid"
rc=$?
[ "$rc" = 0 ] && ok || fail "serve exited $rc on SIGTERM: $(tail -5 serve.log)"
grep -q "Sanitizer\|runtime error" serve.log && fail "sanitizer: $(grep -m3 'Sanitizer\|runtime error' serve.log)" || ok

# --threads 2: the loops' calls add up in one history, their gauges in one row. (h2o's
# per-thread caches outlive the loops' threads: see lsan-h2o-threads.supp.)
LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$src/tests/integration/lsan-h2o-threads.supp" \
  LIVE_UPSTREAM_KEY=$upstream_key LIVE_CLIENT_KEY=$client_key \
  "$bin" serve --config gateway.json --port 0 --port-file serve2.port --threads 2 >serve2.log 2>&1 &
serve_pid=$!
pids+=($serve_pid)
port=$(wait_port serve2.port)
base="http://127.0.0.1:$port"
traffic 20 0 >codes2.txt
get /status.json status2.json
python3 - status2.json <<'PY' && ok || fail "status.json with --threads 2: $(head -c 300 status2.json)"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["loops"] == 2, s["loops"]
m = {m["name"]: m for m in s["models"]}["gpt-4o"]
assert sum(m["history"]["requests"]) == 20, m["history"]["requests"]
assert [d["label"] for d in m["deployments"]] == ["gpt-4o#0", "gpt-4o#1"]
PY
kill -TERM "$serve_pid"
wait "$serve_pid"
rc=$?
[ "$rc" = 0 ] && ok || fail "serve --threads 2 exited $rc on SIGTERM: $(tail -5 serve2.log)"
grep -q "Sanitizer\|runtime error" serve2.log && fail "sanitizer: $(grep -m3 'Sanitizer\|runtime error' serve2.log)" || ok

finish
