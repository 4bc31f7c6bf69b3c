#!/usr/bin/env bash
# ctest cli/help: `skyio help COMMAND` is the command's --help; every command has a
# man page carrying each option of its --help; the bash completion completes commands
# and options from the binary.
# Usage: check-help.sh SKYIO_BINARY SOURCE_DIR
set -uo pipefail

bin=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); }
fail() {
  echo "FAIL: $*"
  failed=$((failed + 1))
}

mapfile -t commands < <("$bin" help |
  awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { exit }')
[ "${#commands[@]}" -ge 10 ] && ok || fail "skyio help lists ${#commands[@]} commands"

for c in "${commands[@]}"; do
  [ "$c" = version ] && continue
  "$bin" help "$c" >"$tmp/help.txt" 2>&1
  rc=$?
  "$bin" "$c" --help >"$tmp/dash.txt" 2>&1
  [ "$rc" = 0 ] && ok || fail "skyio help $c exits $rc"
  cmp -s "$tmp/help.txt" "$tmp/dash.txt" && ok || fail "skyio help $c differs from skyio $c --help"
  grep -q "^usage: skyio $c" "$tmp/help.txt" && ok || fail "skyio help $c has no usage line"
done

"$bin" help no-such-command >/dev/null 2>"$tmp/err.txt"
rc=$?
[ "$rc" = 2 ] && grep -q "unknown command 'no-such-command'" "$tmp/err.txt" && ok ||
  fail "skyio help no-such-command: exit $rc, $(head -1 "$tmp/err.txt")"

# Man pages: one per command, each with every option its --help names.
if command -v help2man >/dev/null 2>&1; then
  "$src/scripts/gen-man" "$bin" "$tmp/man" || fail "gen-man failed"
  [ -s "$tmp/man/skyio.1" ] && ok || fail "no skyio.1"
  for c in "${commands[@]}"; do
    [ "$c" = version ] && continue
    page="$tmp/man/skyio-$c.1"
    if [ ! -s "$page" ]; then
      fail "no man page for $c"
      continue
    fi
    MANWIDTH=100 man -l "$page" 2>/dev/null | col -b >"$tmp/page.txt"
    grep -q "skyio-$c - " "$tmp/page.txt" && ok || fail "skyio-$c.1 has no NAME line"
    # the options are looked for in the page's text without its font and hyphen escapes
    # (rendered, groff may break a long option at its hyphen)
    sed -e 's/\\f[BIRP]//g' -e 's/\\-/-/g' "$page" >"$tmp/page.src"
    missing=$("$bin" "$c" --help | grep -o -- '--[a-z0-9][a-z0-9-]*' | sort -u |
      while read -r opt; do grep -q -- "$opt" "$tmp/page.src" || echo "$opt"; done)
    [ -z "$missing" ] && ok || fail "skyio-$c.1 lacks $missing"
  done
else
  echo "cli/help: help2man missing, man pages not checked (scripts/install-deps installs it)"
fi

# Completion: as bash calls it on <TAB>.
complete_words() {
  (
    # shellcheck source=/dev/null
    source "$src/scripts/skyio-completion.bash"
    COMP_WORDS=("$@")
    COMP_WORDS[0]=$bin
    COMP_CWORD=$(($# - 1))
    _skyio
    printf '%s\n' "${COMPREPLY[@]}"
  )
}
complete_words skyio ba | grep -qx batch && ok || fail "completion of 'ba' lacks batch"
complete_words skyio help bl | grep -qx blob && ok || fail "completion of 'help bl' lacks blob"
complete_words skyio batch --max-c | grep -qx -- --max-concurrency && ok ||
  fail "completion of 'batch --max-c' lacks --max-concurrency"
[ -z "$(complete_words skyio batch --no-such-flag)" ] && ok || fail "completion invents options"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
