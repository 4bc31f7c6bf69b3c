# shellcheck shell=bash disable=SC2034
# Shared helpers for the bench/ scripts. Sourced, not run.
#
# Every script: takes the build directory as $1 (default "build"), starts its own
# `skyio mock` on a free loopback port (--port 0 --port-file in a mktemp dir),
# stops it on exit whatever happens, and only ever talks to 127.0.0.1.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=${1:-build}
SKYIO=$BUILD/skyio
if [ ! -x "$SKYIO" ]; then
  echo "bench: $SKYIO not found; build first (make build, or cmake --build $BUILD)" >&2
  exit 2
fi
SKYIO=$(cd "$(dirname "$SKYIO")" && pwd)/skyio
CHAT_BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}],"max_tokens":5}'
CLK_TCK=$(getconf CLK_TCK)

BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/skyio-bench.XXXXXX")
MOCK_PIDS=()

bench_cleanup() {
  local pid
  for pid in "${MOCK_PIDS[@]}"; do
    stop_mock "$pid"
  done
  rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

need_tool() {
  command -v "$1" >/dev/null 2>&1 || { echo "bench: needs $1 (scripts/install-deps installs it)" >&2; exit 2; }
}

# start_mock NAME [mock options...]  ->  sets MOCK_PID, MOCK_PORT, MOCK_LOG
start_mock() {
  local name=$1; shift
  local pf=$BENCH_TMP/$name.port
  MOCK_LOG=$BENCH_TMP/$name.log
  rm -f "$pf"
  "$SKYIO" mock --host 127.0.0.1 --port 0 --port-file "$pf" "$@" >"$MOCK_LOG" 2>&1 &
  MOCK_PID=$!
  MOCK_PIDS+=("$MOCK_PID")
  local i
  for i in $(seq 1 100); do
    if [ -s "$pf" ] && grep -q '^listening ' "$MOCK_LOG"; then
      MOCK_PORT=$(cat "$pf")
      return 0
    fi
    kill -0 "$MOCK_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "bench: mock '$name' did not start:" >&2
  cat "$MOCK_LOG" >&2
  exit 3
}

# stop_mock PID: SIGTERM (the mock answers what is in flight, then exits),
# SIGKILL after 10 s. Only ever signals the pid this script started.
stop_mock() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "bench: mock $pid ignored SIGTERM for 10 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# CPU ticks (user+system) a process has used so far.
cpu_ticks() {
  awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# cpu_pct TICKS SECONDS -> percent of one core
cpu_pct() {
  awk -v t="$1" -v s="$2" -v hz="$CLK_TCK" 'BEGIN { if (s > 0) printf "%.0f", 100 * t / hz / s; else print "?" }'
}

now_s() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# median of the arguments (numbers)
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "nan"; exit }
    if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ratio A B -> A/B with 2 decimals
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# json_num JSON KEY -> first numeric value of "KEY": in the flat summary of `skyio http --json`
json_num() {
  printf '%s' "$1" | { grep -o "\"$2\":[-0-9.eE+]*" || true; } | head -1 | cut -d: -f2
}
# json_obj JSON KEY -> the {...} object under KEY (no nesting inside)
json_obj() {
  printf '%s' "$1" | { grep -o "\"$2\":{[^}]*}" || true; } | head -1 | cut -d: -f2-
}

# wrk_rps OUTPUT -> Requests/sec
wrk_rps() { printf '%s\n' "$1" | awk '/^Requests\/sec:/ { print $2 }'; }
# wrk_errors OUTPUT -> "0" or a short description of non-2xx / socket errors
wrk_errors() {
  local non2xx sock
  non2xx=$(printf '%s\n' "$1" | awk -F: '/Non-2xx or 3xx responses/ { gsub(/ /, "", $2); print $2 }')
  sock=$(printf '%s\n' "$1" | sed -n 's/^ *Socket errors: //p')
  if [ -z "$non2xx" ] && [ -z "$sock" ]; then echo 0; return; fi
  echo "non2xx=${non2xx:-0} ${sock:+sockets($sock)}"
}

# timed OUTFILE cmd... : run cmd, stdout to OUTFILE; sets TIMED_RC, TIMED_SECS,
# TIMED_CPU (percent of one core the command used), TIMED_CPU_S (its user+system
# seconds) and TIMED_RSS_KB (its peak resident KiB); the last three are "?" without
# GNU time.
timed() {
  local outfile=$1; shift
  local tf=$BENCH_TMP/time.$$ t0 t1
  t0=$(now_s)
  TIMED_RC=0
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f '%U %S %M' -o "$tf" "$@" >"$outfile" 2>"$outfile.err" || TIMED_RC=$?
  else
    "$@" >"$outfile" 2>"$outfile.err" || TIMED_RC=$?
  fi
  t1=$(now_s)
  TIMED_SECS=$(elapsed "$t0" "$t1")
  TIMED_CPU='?'; TIMED_CPU_S='?'; TIMED_RSS_KB='?'
  if [ -s "$tf" ]; then
    TIMED_CPU=$(tail -1 "$tf" | awk -v s="$TIMED_SECS" '{ printf "%.0f", 100 * ($1 + $2) / s }')
    TIMED_CPU_S=$(tail -1 "$tf" | awk '{ printf "%.2f", $1 + $2 }')
    TIMED_RSS_KB=$(tail -1 "$tf" | awk '{ print $3 }')
  fi
  rm -f "$tf"
}

# measure OUTFILE cmd... : like timed, and also MOCK_CPU, the percent of one core the
# mock ($MOCK_PID) used meanwhile.
measure() {
  local m0 m1
  m0=$(cpu_ticks "$MOCK_PID")
  timed "$@"
  m1=$(cpu_ticks "$MOCK_PID")
  MOCK_CPU=$(cpu_pct $((m1 - m0)) "$TIMED_SECS")
}

# chat_input FILE N [MAX_TOKENS] : N OpenAI Batch JSONL chat requests, custom_id r-1..r-N
chat_input() {
  awk -v n="$2" -v mt="${3:-5}" 'BEGIN { for (i = 1; i <= n; i++)
    printf "{\"custom_id\":\"r-%d\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"question %d\"}],\"max_tokens\":%d}}\n", i, i, mt }' >"$1"
}

# check_output FILE N : "ok" when FILE holds N lines with N distinct custom_ids, all
# status 200; otherwise a short description of what is missing, repeated or failed.
check_output() {
  local lines=0 ids ok
  [ ! -f "$1" ] || lines=$(wc -l <"$1")
  ids=$(grep -o '^{"id":"[^"]*","custom_id":"[^"]*"' "$1" 2>/dev/null | cut -d'"' -f8 | sort -u | wc -l || true)
  ok=$(grep -c '"response":{"status_code":200,' "$1" 2>/dev/null || true)
  if [ "$lines" = "$2" ] && [ "$ids" = "$2" ] && [ "$ok" = "$2" ]; then
    echo ok
  else
    echo "lines=$lines distinct_ids=$ids status200=${ok:-0} of $2"
  fi
}

# row COL... : print a table row, columns padded
row() { printf '%-14s' "$@"; printf '\n'; }

# start_gateway NAME CONFIG [serve options...] -> sets GW_PID, GW_PORT, GW_LOG: `skyio serve`
# on a free port of 127.0.0.1, stopped on exit like the mocks (stop_mock works on it).
start_gateway() {
  local name=$1 config=$2; shift 2
  local pf=$BENCH_TMP/$name.port
  GW_LOG=$BENCH_TMP/$name.log
  rm -f "$pf"
  "$SKYIO" serve --config "$config" --host 127.0.0.1 --port 0 --port-file "$pf" "$@" >"$GW_LOG" 2>&1 &
  GW_PID=$!
  MOCK_PIDS+=("$GW_PID")
  local i
  for i in $(seq 1 100); do
    if [ -s "$pf" ] && grep -q '^listening ' "$GW_LOG"; then
      GW_PORT=$(cat "$pf")
      return 0
    fi
    kill -0 "$GW_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "bench: gateway '$name' did not start:" >&2
  cat "$GW_LOG" >&2
  exit 3
}

# ---- what every script reports (issue 20): cases alternate, at least 3 runs, the median
# of the runs without errors (runs with errors are listed and left out), and at the end one
# line per target:
#   VERDICT <name>: <value> target <op> <target>: met|NOT met
# bench/run-all gathers these lines into bench/figures.md.

# verdict NAME VALUE OP TARGET [UNIT] : print the line; VALUE n/a (no valid run) is never met.
verdict() {
  local name=$1 value=$2 op=$3 target=$4 unit=${5:-} met
  met=$(awk -v v="$value" -v op="$op" -v t="$target" 'BEGIN {
    if (v !~ /^-?[0-9.]+([eE][-+]?[0-9]+)?$/) { print "NOT met"; exit }
    v += 0; t += 0
    ok = (op == ">=") ? v >= t : (op == "<=") ? v <= t : (op == "==") ? v == t : (op == ">") ? v > t : v < t
    print ok ? "met" : "NOT met" }')
  if [ "$met" = met ] || [[ "$value" =~ ^-?[0-9.]+$ ]]; then value=$value$unit; else value=n/a; fi
  echo "VERDICT $name: $value target $op $target$unit: $met"
}

# median_or_na VALUES... : the median, or n/a when there is none (every run had errors)
median_or_na() {
  if [ $# -eq 0 ]; then echo n/a; else median "$@"; fi
}

# diff_or_na A B : A - B with 1 decimal, or n/a when either is n/a
diff_or_na() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || a == "" || b == "") print "n/a"; else printf "%.1f", a - b }'
}

# ratio_or_na A B : ratio A/B, or n/a when either is n/a
ratio_or_na() {
  if [ "$1" = n/a ] || [ "$2" = n/a ]; then echo n/a; else ratio "$1" "$2"; fi
}

# excluded LABEL WHY : note a run left out of the medians (printed again before the verdicts)
EXCLUDED=()
excluded() { EXCLUDED+=("$1: $2"); }
report_excluded() {
  if [ ${#EXCLUDED[@]} -eq 0 ]; then
    echo "runs left out for errors: none"
  else
    echo "runs left out for errors (${#EXCLUDED[@]}):"
    printf '  %s\n' "${EXCLUDED[@]}"
  fi
}

# For scripts whose one run is a whole experiment (rate-efficiency, inflight): the outer
# call runs the script itself RUNS times with BENCH_INNER=1, shows each run's output
# indented, and keeps the last "RESULT key=value ..." line each run printed in
# INNER_RESULTS (an empty string for a run that printed none).
inner_runs() {
  local script=$1 r out
  INNER_RESULTS=()
  for r in $(seq 1 "$RUNS"); do
    echo "---- run $r of $RUNS"
    out=$(BENCH_INNER=1 "$script" "$BUILD" 2>&1) || true
    printf '%s\n' "$out" | grep -v '^RESULT ' | sed 's/^/  /'
    INNER_RESULTS+=("$(printf '%s\n' "$out" | grep '^RESULT ' | tail -1 || true)")
  done
}

# result_field LINE KEY -> the value of KEY=value in a RESULT line (empty when absent)
result_field() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }
