#!/usr/bin/env bash
# ctest report/browser: a real `skyio batch` against `skyio mock` keeps its timeline (and
# resumes it on a rerun), writes its report, and headless Chromium opens the report with no
# console message, its five charts drawn (each SVG path with points) and a screenshot that
# is not blank. Bad text from the files (a custom_id with markup) comes out escaped.
# Usage: check-report.sh SKYIO_BINARY SOURCE_DIR
set -uo pipefail

# shellcheck source=tests/report/lib.sh
source "$(dirname "$0")/lib.sh"

"$bin" mock --port-file port --ttft-ms 20 --poison 0.05 --seed 3 >mock.log 2>&1 &
pids+=($!)
port=$(wait_port port)

# 400 requests and one bad line whose custom_id carries markup.
lines() {
  python3 - "$1" "$2" <<'PY'
import json, sys
for i in range(int(sys.argv[1]), int(sys.argv[2])):
    print(json.dumps({"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
                      "body": {"model": "gpt-4o-mini", "max_tokens": 16,
                               "messages": [{"role": "user", "content": f"question {i}"}]}}))
PY
}
lines 0 400 >in.jsonl
echo '{"custom_id":"<img src=x onerror=alert(1)>","method":"POST","url":"/v1/chat/completions","body":"not an object"}' >>in.jsonl

export OPENAI_API_KEY=sk-report-test OPENAI_BASE_URL="http://127.0.0.1:$port/v1"
"$bin" batch in.jsonl -o out.jsonl --max-retries 1 --report first.html >batch1.log 2>&1
rc=$?
[ "$rc" = 1 ] && ok || fail "batch exit $rc (want 1: some requests failed): $(tail -3 batch1.log)"
[ -s first.html ] && grep -q "report written to first.html" batch1.log && ok ||
  fail "batch --report wrote no report"
[ -s out.jsonl.timeline.jsonl ] && ok || fail "no timeline beside the output"

# The rerun with more lines goes on: its seconds are run 2, after run 1's time.
lines 400 600 >>in.jsonl
"$bin" batch in.jsonl -o out.jsonl --max-retries 1 >batch2.log 2>&1
python3 - out.jsonl.timeline.jsonl <<'PY' && ok || fail "the timeline is not resumed"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
need = {"t", "time", "run", "rps", "sending", "waiting", "concurrency", "rpm", "r429",
        "failures", "p50_ms", "p90_ms", "p99_ms", "slowest"}
assert all(need <= set(r) for r in rows), "a line lacks a field"
one = [r["t"] for r in rows if r["run"] == 1]
two = [r["t"] for r in rows if r["run"] == 2]
assert one and two, (len(one), len(two))
assert min(two) > max(one), (max(one), min(two))
assert rows[-1]["ok"] + rows[-1]["failed"] > 0
PY

"$bin" report out.jsonl -o report.html >report.log 2>&1 && ok || fail "skyio report: $(cat report.log)"
grep -q "<img src=x" report.html && fail "markup from a custom_id came out unescaped" || ok
grep -q "&lt;img src=x onerror=alert(1)&gt;" report.html && ok || fail "the bad line is not listed"
grep -q "<script" report.html && fail "the report has a script" || ok
grep -Eq 'src="https?:|href="https?:' report.html && fail "the report loads something" || ok

"$bin" report missing.jsonl -o x.html >missing.log 2>&1
rc=$?
[ "$rc" = 3 ] && grep -q "missing.jsonl" missing.log && ok || fail "missing file: exit $rc $(cat missing.log)"

# The browser: the DOM as Chromium built it, its console, and a screenshot.
chrome() {
  timeout 120 "$chromium_bin" --headless=new --no-sandbox --disable-gpu --no-first-run \
    --user-data-dir="$tmp/chromium" --enable-logging=stderr --log-level=0 "$@"
}
chrome --dump-dom "file://$tmp/report.html" >dom.html 2>console.log
grep -q "CONSOLE" console.log && fail "console messages: $(grep CONSOLE console.log | head -3)" || ok
python3 - dom.html <<'PY' && ok || fail "the charts are not drawn"
import re, sys
from html.parser import HTMLParser
class P(HTMLParser):
    def __init__(self):
        super().__init__(); self.svg = None; self.paths = {}; self.rows = 0; self.table = None
    def handle_starttag(self, tag, a):
        a = dict(a)
        if tag == "svg": self.svg = a.get("id"); self.paths[self.svg] = []
        if tag == "path" and self.svg and "series" in (a.get("class") or ""):
            self.paths[self.svg].append(len(re.findall(r"[ML]", a.get("d", ""))))
        if tag == "table": self.table = a.get("id")
        if tag == "tr" and self.table == "failures": self.rows += 1
    def handle_endtag(self, tag):
        if tag == "svg": self.svg = None
p = P(); p.feed(open(sys.argv[1]).read())
for c in ["chart-throughput", "chart-tokens", "chart-inflight", "chart-failures", "chart-latency"]:
    assert c in p.paths, c + " missing"
    assert max(p.paths[c]) >= 2, c + " has no line with points"
assert p.rows >= 3, "failures table has %d rows" % p.rows
PY
chrome --screenshot="$tmp/shot.png" --window-size=1000,1400 "file://$tmp/report.html" \
  >/dev/null 2>&1
python3 "$src/tests/report/png_nonblank.py" shot.png 200 >png.log 2>&1 && ok ||
  fail "the screenshot is blank or has no coloured lines: $(cat png.log)"

finish
