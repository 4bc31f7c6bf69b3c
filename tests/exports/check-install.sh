#!/usr/bin/env bash
# `make install` gives a usable library (ctest exports/install): install the
# build into a temporary prefix, check that only public headers went in, and
# compile and link every examples/*.c against the installed libskyio.so through
# pkg-config, as a user would. Linking against the shared library proves that
# what the examples call is exported.
# Usage: check-install.sh BUILD_DIR SOURCE_DIR LIBDIR CC [CFLAGS...]
set -euo pipefail

build=$1
src=$2
libdir=$3
cc=$4
shift 4

prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null

status=0
fail() {
    echo "FAIL: $*"
    status=1
}

for h in mock.h internal.h; do
    [ ! -e "$prefix/include/skyio/$h" ] || fail "include/skyio/$h is installed: it is not public"
done
[ -e "$prefix/$libdir/libskyio.so" ] || fail "no $libdir/libskyio.so installed"
[ -e "$prefix/$libdir/libskyio.a" ] || fail "no $libdir/libskyio.a installed"
[ -x "$prefix/bin/skyio" ] || fail "no bin/skyio installed"
[ -e "$prefix/share/bash-completion/completions/skyio" ] || fail "no bash completion installed"
if command -v help2man >/dev/null 2>&1; then
    [ -e "$prefix/share/man/man1/skyio-batch.1" ] || fail "no man page skyio-batch.1 installed"
fi

export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
cflags=$(pkg-config --cflags skyio)
libs=$(pkg-config --libs skyio)

# Each public header compiles on its own, and the umbrella header too.
for h in "$prefix"/include/skyio/*.h; do
    printf '#include <skyio/%s>\n' "$(basename "$h")" |
        "$cc" "$@" $cflags -Wall -Werror -x c -fsyntax-only - ||
        fail "$(basename "$h") does not compile on its own"
done

n=0
for e in "$src"/examples/*.c; do
    out="$prefix/$(basename "$e" .c)"
    if "$cc" "$@" -Wall -Werror $cflags "$e" -o "$out" $libs; then
        n=$((n + 1))
    else
        fail "$(basename "$e") does not build against the installed libskyio"
    fi
done

if [ "$status" -eq 0 ]; then
    echo "install: $n examples built against $prefix/$libdir/libskyio.so with pkg-config"
else
    echo "install: FAILED"
fi
exit "$status"
