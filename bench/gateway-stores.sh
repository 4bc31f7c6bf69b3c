# shellcheck shell=bash disable=SC2034
# bench/gateway's sections 4 and 5: what the stores cost the gateway (issue 18). Sourced by
# bench/gateway after its sections 1 and 2, with its direct mock (MOCK_URL) and its plain
# gateway (GW_URL, GW_PID: no store, "usage off") running; sets usage_sqlite, usage_pg,
# cpu_sqlite, cpu_pg, hit_sqlite and hit_redis. The servers it starts (PostgreSQL, Redis,
# gateways) listen on 127.0.0.1 only and are stopped on exit.

STORES_PG_DIR=
STORES_PG_BIN=
STORES_REDIS_PID=

stores_cleanup() {
  if [ -n "$STORES_REDIS_PID" ]; then
    kill -TERM "$STORES_REDIS_PID" 2>/dev/null || true
    wait "$STORES_REDIS_PID" 2>/dev/null || true
    STORES_REDIS_PID=
  fi
  if [ -n "$STORES_PG_DIR" ]; then
    as_pg_user "$STORES_PG_BIN/pg_ctl" -D "$STORES_PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$STORES_PG_DIR"
    STORES_PG_DIR=
  fi
}
trap 'stores_cleanup; bench_cleanup' EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# PostgreSQL refuses to run as root: its tools run as nobody then.
as_pg_user() {
  if [ "$(id -u)" = 0 ]; then
    setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"
  else
    "$@"
  fi
}

# pg_start -> PG_URL, a server of its own in a temp folder (the default durability settings);
# 1 when PostgreSQL is not installed.
pg_start() {
  STORES_PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$STORES_PG_BIN" ] && [ -x "$STORES_PG_BIN/initdb" ] || return 1
  STORES_PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/skyio-bench-pg.XXXXXX")
  chmod 777 "$STORES_PG_DIR"
  local port
  port=$(free_port)
  as_pg_user "$STORES_PG_BIN/initdb" -D "$STORES_PG_DIR/data" -U skyio -A trust -E UTF8 \
    >"$STORES_PG_DIR/initdb.log" 2>&1 || { cat "$STORES_PG_DIR/initdb.log" >&2; return 1; }
  as_pg_user "$STORES_PG_BIN/pg_ctl" -D "$STORES_PG_DIR/data" -l "$STORES_PG_DIR/server.log" \
    -o "-p $port -k $STORES_PG_DIR -c listen_addresses=127.0.0.1" -w -t 30 start >/dev/null ||
    { cat "$STORES_PG_DIR/server.log" >&2; return 1; }
  PG_URL=postgresql://skyio@127.0.0.1:$port/postgres
}

# redis_start -> REDIS_URL; 1 when redis-server is not installed.
redis_start() {
  command -v redis-server >/dev/null 2>&1 || return 1
  local port i
  port=$(free_port)
  mkdir -p "$BENCH_TMP/redis"
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --dir "$BENCH_TMP/redis" --logfile "$BENCH_TMP/redis/log" &
  STORES_REDIS_PID=$!
  for i in $(seq 1 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
  REDIS_URL=redis://127.0.0.1:$port/0
}

# metric URL SERIES: the value of one /metrics sample of a gateway (0 when absent)
metric() {
  "$SKYIO" http "$1/metrics" 2>/dev/null | awk -v s="$2" 'index($0, s " ") == 1 { v = $2 } END { print v + 0 }'
}

# ---- 4. throughput with usage records on SQLite, on PostgreSQL, and off ----
# The machine's load sways every case's req/s by more than a record costs (usage off alone
# ranged 22.7-27.3k req/s on a quiet machine), so the target's ratio is taken within each
# round, where the cases ran seconds apart: a round runs off, SQLite, PostgreSQL (every
# other round in the reverse order, so neither side always runs first), its ratios are
# on/off of that round, and the verdict is the median of the rounds' ratios. The medians
# of req/s are printed too, and each case's CPU per request: the gateway's (all its
# threads) and the PostgreSQL server's (all its processes), which share the same cores.

# pg_ticks: the CPU ticks of the bench's PostgreSQL server, all its processes (0 without)
pg_ticks() {
  local pm t=0 p
  if [ -z "$STORES_PG_DIR" ] || [ ! -r "$STORES_PG_DIR/data/postmaster.pid" ]; then
    echo 0
    return
  fi
  pm=$(head -1 "$STORES_PG_DIR/data/postmaster.pid")
  for p in "$pm" $(pgrep -P "$pm" 2>/dev/null); do t=$((t + $(cpu_ticks "$p"))); done
  echo "$t"
}

# usage_wrk RUN CASE URL PID: one wrk run; sets U_RPS (empty when it had errors), and
# appends its CPU per request to the case's lists when clean
usage_wrk() {
  local g0 g1 p0 p1 out rps errs us pus
  g0=$(cpu_ticks "$4"); p0=$(pg_ticks)
  measure "$BENCH_TMP/wrk.out" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$BENCH_DIR/wrk-chat.lua" "$3"
  g1=$(cpu_ticks "$4"); p1=$(pg_ticks)
  out=$(cat "$BENCH_TMP/wrk.out" "$BENCH_TMP/wrk.out.err")
  rps=$(wrk_rps "$out")
  errs=$(wrk_errors "$out")
  [ -n "$rps" ] || errs="no wrk summary (rc $TIMED_RC)"
  us=$(per_req $((g1 - g0)) "$rps")
  pus=-
  [ "$2" != postgres ] || pus=$(per_req $((p1 - p0)) "$rps")
  printf '%-4s %-9s %-10s %-9s %-11s %-11s %s\n' "$1" "$2" "${rps:-?}" \
    "$(cpu_pct $((g1 - g0)) "$TIMED_SECS")%" "$us" "$pus" "$errs"
  U_RPS=
  if [ "$errs" != 0 ]; then
    excluded "usage run $1 ($2)" "$errs"
    return
  fi
  U_RPS=$rps
  case $2 in
  off) c_off+=("$us") ;;
  sqlite) c_sq+=("$us") ;;
  postgres) c_pg+=("$us"); c_pgsrv+=("$pus") ;;
  esac
}

# per_req TICKS RPS: microseconds of CPU per request answered in the last timed run
per_req() {
  awk -v t="$1" -v hz="$CLK_TCK" -v r="${2:-0}" -v s="$TIMED_SECS" \
    'BEGIN { if (r > 0) printf "%.1f", t / hz * 1e6 / (r * s); else print "?" }'
}

# usage_written URL NAME: the records the gateway wrote, lost and still queued
usage_written() {
  local w l q
  w=$(metric "$1" 'skyio_gateway_usage_records_total{state="written"}')
  l=$(metric "$1" 'skyio_gateway_usage_records_total{state="lost"}')
  q=$(metric "$1" 'skyio_gateway_usage_records_queued')
  echo "usage records of $2: $w written, $l lost, $q queued"
  [ "$w" -gt 0 ] && [ "$l" = 0 ]
}

# usage_round RUN: the three cases, in turn (reversed on even runs); each on/off ratio of
# this round appended to r_sq / r_pg, and each req/s to t_*
usage_round() {
  local order=(off sqlite postgres) c off="" sq="" pg=""
  [ $(($1 % 2)) = 1 ] || order=(postgres sqlite off)
  for c in "${order[@]}"; do
    case $c in
    off) usage_wrk "$1" off "$off_url" "$off_pid"; off=$U_RPS ;;
    sqlite) usage_wrk "$1" sqlite "$sq_url" "$sq_pid"; sq=$U_RPS ;;
    postgres) [ -z "$pg_url" ] || { usage_wrk "$1" postgres "$pg_url" "$pg_pid"; pg=$U_RPS; } ;;
    esac
  done
  [ -z "$off" ] || t_off+=("$off")
  [ -z "$sq" ] || t_sq+=("$sq")
  [ -z "$pg" ] || t_pg+=("$pg")
  [ -z "$off" ] || [ -z "$sq" ] || r_sq+=("$(ratio "$sq" "$off")")
  [ -z "$off" ] || [ -z "$pg" ] || r_pg+=("$(ratio "$pg" "$off")")
}

usage_section() {
  local off_url=$GW_URL off_pid=$GW_PID sq_url sq_pid pg_url="" pg_pid="" r
  local t_off=() t_sq=() t_pg=() c_off=() c_sq=() c_pg=() c_pgsrv=() r_sq=() r_pg=()
  local rounds=${USAGE_RUNS:-9}
  [ "$rounds" -ge "${RUNS:-3}" ] || rounds=${RUNS:-3}
  echo
  echo "-- 4. usage records: wrk -t1 -c$CONNS -d${DURATION}s through a gateway writing one usage record a"
  echo "   request to SQLite (--state), to PostgreSQL (--postgres, default durability), and to none;"
  echo "   $rounds rounds, each off / SQLite / PostgreSQL back to back (reversed every other round);"
  echo "   the verdict's ratio is the median of the rounds' on/off ratios"
  start_gateway gw-usage-sqlite "$BENCH_TMP/gateway.json" --state "$BENCH_TMP/usage.db"
  sq_url=http://127.0.0.1:$GW_PORT sq_pid=$GW_PID
  if pg_start; then
    start_gateway gw-usage-pg "$BENCH_TMP/gateway.json" --postgres "$PG_URL"
    pg_url=http://127.0.0.1:$GW_PORT pg_pid=$GW_PID
  else
    excluded "usage on PostgreSQL" "PostgreSQL (initdb, pg_ctl) is not installed or did not start"
  fi
  for u in "$sq_url" $pg_url; do
    wrk -t1 -c"$CONNS" -d2s -s "$BENCH_DIR/wrk-chat.lua" "$u" >/dev/null 2>&1
  done
  printf '%-4s %-9s %-10s %-9s %-11s %-11s %s\n' run usage req/s gw_cpu gw_us/req pg_us/req errors
  for r in $(seq 1 "$rounds"); do
    usage_round "$r"
  done
  sleep 1 # the last batches written
  local m_off m_sq m_pg
  m_off=$(median_or_na "${t_off[@]}"); m_sq=$(median_or_na "${t_sq[@]}"); m_pg=$(median_or_na "${t_pg[@]}")
  usage_sqlite=$(median_or_na "${r_sq[@]}"); usage_pg=$(median_or_na "${r_pg[@]}")
  usage_written "$sq_url" SQLite || { excluded "usage on SQLite" "records not all written"; usage_sqlite=n/a; }
  if [ -n "$pg_url" ]; then
    usage_written "$pg_url" PostgreSQL || { excluded "usage on PostgreSQL" "records not all written"; usage_pg=n/a; }
  fi
  echo "rounds' on/off ratios: SQLite ${r_sq[*]:-none}; PostgreSQL ${r_pg[*]:-none}"
  echo "median of the rounds' ratios: SQLite $usage_sqlite x, PostgreSQL $usage_pg x"
  echo "median req/s: usage off $m_off, on SQLite $m_sq ($(ratio_or_na "$m_sq" "$m_off") x), on PostgreSQL $m_pg ($(ratio_or_na "$m_pg" "$m_off") x)"
  local u_off u_sq u_pg u_srv
  u_off=$(median_or_na "${c_off[@]}"); u_sq=$(median_or_na "${c_sq[@]}"); u_pg=$(median_or_na "${c_pg[@]}")
  u_srv=$(median_or_na "${c_pgsrv[@]}")
  echo "median gateway CPU per request: usage off $u_off us, on SQLite $u_sq us, on PostgreSQL $u_pg us"
  echo "  (+ the PostgreSQL server's $u_srv us per request on the same cores)"
  cpu_sqlite=$(ratio_or_na "$u_off" "$u_sq"); cpu_pg=$(ratio_or_na "$u_off" "$u_pg")
  echo "  (off/on: SQLite $cpu_sqlite, PostgreSQL $cpu_pg: the"
  echo "  throughput ratio a gateway bound by its own CPU would see; the PostgreSQL server's is apart)"
  stop_mock "$sq_pid"
  [ -z "$pg_pid" ] || stop_mock "$pg_pid"
  GW_URL=$off_url GW_PID=$off_pid
}

# ---- 5. a cache hit's added latency, SQLite and Redis ----

HIT_BODY='{"model":"gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"hello"}],"max_tokens":5}'

mock_requests() { "$SKYIO" http "$MOCK_URL/mock/stats" 2>/dev/null | jq -r '.requests // 0'; }

# hit_rate RUN CASE URL ARRAY: one open-loop run at CACHE_RATE; its p50 appended when clean
hit_rate() {
  local -n p50s=$4
  local js failed errs p50 before after
  before=$(mock_requests)
  timed "$BENCH_TMP/hit.json" "$SKYIO" http --rate "$CACHE_RATE" --duration "$RATE_DURATION" --json \
    --json-body -d "$HIT_BODY" "$3/v1/chat/completions"
  after=$(mock_requests)
  js=$(cat "$BENCH_TMP/hit.json")
  failed=$(json_num "$js" failed)
  errs=0
  if [ "$TIMED_RC" != 0 ] || [ "${failed:-1}" != 0 ]; then
    errs="rc=$TIMED_RC failed=${failed:-?} status=$(json_obj "$js" status) $(head -c 200 "$BENCH_TMP/hit.json.err")"
  elif awk -v a="$(json_num "$js" achieved_rate)" -v r="$CACHE_RATE" 'BEGIN { exit !(a + 0 < 0.95 * r) }'; then
    errs="reached $(json_num "$js" achieved_rate) req/s, under 95% of $CACHE_RATE"
  elif [ "$2" != direct ] && [ "$after" != "$before" ]; then
    errs="$((after - before)) requests went upstream: not every one a hit"
  fi
  p50=$(printf '%s' "$js" | jq -r '.latency_us.p50 // "?"' 2>/dev/null || echo '?')
  printf '%-4s %-7s %-9s %-8s %-8s %-8s %s\n' "$1" "$2" "$(json_num "$js" achieved_rate)" "$p50" \
    "$(printf '%s' "$js" | jq -r '.latency_us.p99 // "?"' 2>/dev/null)" "$((after - before))" "$errs"
  if [ "$errs" != 0 ]; then excluded "cache run $1 ($2)" "$errs"; else p50s+=("$p50"); fi
}

# hit_primed URL: the answer kept (a miss), then a hit
hit_primed() {
  local out
  "$SKYIO" http --json-body -d "$HIT_BODY" "$1/v1/chat/completions" >/dev/null 2>&1 || true
  sleep 0.5 # the answer is kept after it went to the client
  out=$("$SKYIO" http -i --json-body -d "$HIT_BODY" "$1/v1/chat/completions" 2>&1 || true) # headers on stderr
  grep -qi "^x-skyio-cache-status: hit" <<<"$out" || { echo "bench: $1: $(head -c 300 <<<"$out")" >&2; return 1; }
}

cache_section() {
  local sq_url sq_pid rd_url="" rd_pid="" r p_direct=() p_sq=() p_rd=()
  echo
  echo "-- 5. a cache hit: skyio http --rate $CACHE_RATE --duration $RATE_DURATION, a chat at temperature 0 (cached"
  echo "   by default) straight to the mock, and as a hit through the gateway's cache on SQLite"
  echo "   (--state) and on Redis (--cache); added = the hit's p50 - the direct p50"
  start_gateway gw-cache-sqlite "$BENCH_TMP/gateway.json" --state "$BENCH_TMP/cache.db"
  sq_url=http://127.0.0.1:$GW_PORT sq_pid=$GW_PID
  if redis_start; then
    start_gateway gw-cache-redis "$BENCH_TMP/gateway.json" --cache "$REDIS_URL"
    rd_url=http://127.0.0.1:$GW_PORT rd_pid=$GW_PID
  else
    excluded "cache on Redis" "redis-server is not installed"
  fi
  hit_primed "$sq_url" || excluded "cache on SQLite" "no hit after a miss"
  [ -z "$rd_url" ] || hit_primed "$rd_url" || excluded "cache on Redis" "no hit after a miss"
  printf '%-4s %-7s %-9s %-8s %-8s %-8s %s\n' run path achieved p50_us p99_us upstream errors
  for r in $(seq 1 "$RUNS"); do
    hit_rate "$r" direct "$MOCK_URL" p_direct
    hit_rate "$r" sqlite "$sq_url" p_sq
    [ -z "$rd_url" ] || hit_rate "$r" redis "$rd_url" p_rd
  done
  local d50 s50 r50
  d50=$(median_or_na "${p_direct[@]}"); s50=$(median_or_na "${p_sq[@]}"); r50=$(median_or_na "${p_rd[@]}")
  hit_sqlite=$(diff_or_na "$s50" "$d50"); hit_redis=$(diff_or_na "$r50" "$d50")
  echo "median p50: direct $d50 us, hit on SQLite $s50 us (added $hit_sqlite us), hit on Redis $r50 us (added $hit_redis us)"
  stop_mock "$sq_pid"
  [ -z "$rd_pid" ] || stop_mock "$rd_pid"
}
