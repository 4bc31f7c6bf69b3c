#!/usr/bin/env bash
# libskyio.so exports its public API and nothing else (ctest exports/symbols):
#   - every defined dynamic symbol is a sky_ name: no internal sky__ name, no mock
#     symbol (the mock is not part of the library), nothing of another namespace;
#   - every function the public headers declare is exported: a declaration that
#     lost its SKY_EXTERN, or was never defined, fails here and not in a user's link.
# Usage: check-exports.sh LIBSKYIO_SO INCLUDE_DIR
set -euo pipefail

lib=$1
incdir=$2
status=0

fail() {
    echo "FAIL: $*"
    status=1
}

# Symbols the linker itself defines in every shared object.
linker_own='^(_init|_fini|_edata|_end|__bss_start)$'

exports=$(nm -D --defined-only "$lib" | awk 'NF >= 3 { print $3 }' | sort -u)
n_exports=0
while read -r sym; do
    [ -n "$sym" ] || continue
    [[ $sym =~ $linker_own ]] && continue
    n_exports=$((n_exports + 1))
    # AddressSanitizer's one-definition-rule marker of an exported variable
    # (gcc: __odr_asan.NAME, clang: __odr_asan_gen_NAME) is judged by NAME.
    sym=${sym#__odr_asan.}
    sym=${sym#__odr_asan_gen_}
    case $sym in
    sky__*) fail "internal symbol exported: $sym" ;;
    *mock*) fail "mock symbol exported: $sym" ;;
    sky_*) ;;
    *) fail "symbol outside the sky_ namespace exported: $sym" ;;
    esac
done <<<"$exports"

# The functions a header declares: every sky_name( once comments are gone, but for
# its static inline functions, which are not exported. Function pointer types,
# (*sky_x_cb)(...), are not matched since the name is followed by ')'.
declared_in() {
    perl -0777 -pe 's{/\*.*?\*/}{}gs; s{//[^\n]*}{}g' "$1" >"$tmp/h"
    { grep -oE 'static inline [^;{(]*\bsky_[a-z0-9_]+[[:space:]]*\(' "$tmp/h" || true; } |
        { grep -oE 'sky_[a-z0-9_]+[[:space:]]*\($' || true; } | tr -d '( \t' | sort -u >"$tmp/inline"
    { grep -oE '\bsky_[a-z0-9_]+[[:space:]]*\(' "$tmp/h" || true; } | tr -d '( \t' | sort -u |
        comm -23 - "$tmp/inline"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' "$exports" >"$tmp/exports"
for h in "$incdir"/skyio/*.h; do
    declared_in "$h" | sed "s|\$| $(basename "$h")|"
done >"$tmp/declared"
n_declared=$(wc -l <"$tmp/declared")
while read -r fn h; do
    fail "$h declares $fn, which libskyio.so does not export (no SKY_EXTERN, or not defined)"
done < <(awk 'NR == FNR { exported[$1] = 1; next } !($1 in exported)' "$tmp/exports" "$tmp/declared")

# Functions every build must export, so the test cannot pass on an empty list.
for fn in sky_pipeline_new sky_http_client_new sky_strerror sky_loop_new; do
    grep -qxF "$fn" "$tmp/exports" || fail "public function $fn is not exported"
done
[ "$n_declared" -ge 100 ] || fail "only $n_declared functions found in the headers: is the scan broken?"

echo "libskyio.so: $n_exports exported symbols; $n_declared functions declared in $incdir/skyio"
if [ "$status" -eq 0 ]; then
    echo "exports: every exported symbol is public API, every public function is exported"
else
    echo "exports: FAILED"
fi
exit "$status"
