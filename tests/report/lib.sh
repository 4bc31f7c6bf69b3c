# Shared by the report/* checks (sourced, not run): the binary and source paths from
# "$1" "$2", a temp folder that is the working directory, the processes to stop on exit,
# pass/fail counting, and headless Chromium. A check ends with `finish`.
# shellcheck shell=bash

bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
src=$(cd "$2" && pwd)
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); }
fail() {
  echo "FAIL: $*"
  failed=$((failed + 1))
}
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
}

chromium_bin=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium_bin" ]; then
  echo "FAIL: no chromium (scripts/install-deps installs Debian's chromium)"
  exit 1
fi

# The port a server wrote into the file $1 (waiting up to 10 s for it).
wait_port() {
  for _ in $(seq 200); do [ -s "$1" ] && break; sleep 0.05; done
  cat "$1"
}

cd "$tmp" || exit 1
