#!/bin/sh
# The official SDKs against `skyio mock`: starts one mock over TLS on a free loopback
# port (MSAL and the Azure SDKs send tokens over https only), and Azurite (Blob, Queue,
# Table; in memory, loopback, free ports) as the reference for skyio's own storage
# clients, then runs each program of this folder with the SDKs that scripts/install-deps
# put in .deps/compat-node. The programs read MOCK_URL, SKYIO (the binary),
# AZURITE_CONNECTION_STRING, AZURITE_BLOB_URL and AZURITE_QUEUE_URL.
# Usage: run.sh SKYIO_BINARY SOURCE_DIR [PROGRAM.mjs...] (default: every program). Exit 0 when every program passed, 77 (skipped)
# when the SDKs are not installed.
set -eu
skyio=$1
src=$(cd "$2" && pwd)
shift 2
modules="$src/.deps/compat-node/node_modules"
if [ ! -f "$modules/openai/package.json" ] || ! command -v node >/dev/null 2>&1; then
  echo "compat: the SDKs are not installed (scripts/install-deps); skipped" >&2
  exit 77
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/skyio-compat.XXXXXX")
# ESM resolves imports from the importing file's folder up: the programs run from a
# folder of their own beside the installed modules
rundir="$src/.deps/compat-node/run.$$"
pid=
azpid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  [ -n "$azpid" ] && kill "$azpid" 2>/dev/null && wait "$azpid" 2>/dev/null || true
  rm -rf "$dir" "$rundir"
}
trap cleanup EXIT INT TERM

# Azurite starts first: node takes the longest to listen.
azurite="$src/.deps/azurite/node_modules/.bin/azurite"
if [ -x "$azurite" ]; then
  mkdir -p "$dir/azurite"
  (cd "$dir/azurite" && exec "$azurite" --blobHost 127.0.0.1 --blobPort 0 \
    --queueHost 127.0.0.1 --queuePort 0 --tableHost 127.0.0.1 --tablePort 0 \
    --inMemoryPersistence --extentMemoryLimit 512 --disableTelemetry \
    --skipApiVersionCheck --loose >"$dir/azurite.log" 2>&1) &
  azpid=$!
fi

# A throwaway CA and a certificate for 127.0.0.1, which node trusts through NODE_EXTRA_CA_CERTS.
(
  cd "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
    -subj /CN=skyio-compat-ca >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
    -subj /CN=127.0.0.1 >/dev/null 2>&1
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >ext.cnf
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
    -days 2 -extfile ext.cnf >/dev/null 2>&1
)

"$skyio" mock --port 0 --port-file "$dir/port" --tls-cert "$dir/server.pem" \
  --tls-key "$dir/server.key" --key sk-compat --arm-polls 1 --arm-page-size 2 \
  --identity-client-secret compat-secret >"$dir/mock.log" 2>&1 &
pid=$!
i=0
while [ ! -s "$dir/port" ]; do
  i=$((i + 1))
  if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "compat: skyio mock did not start" >&2
    cat "$dir/mock.log" >&2
    exit 1
  fi
  sleep 0.05
done
port=$(cat "$dir/port")

# "Azurite Blob service is successfully listening at http://127.0.0.1:PORT"
azurite_port() {
  sed -n "s|^Azurite $1 service is successfully listening at http://127.0.0.1:\([0-9]*\).*|\1|p" \
    "$dir/azurite.log" 2>/dev/null
}
if [ -n "$azpid" ]; then
  i=0
  while [ -z "$(azurite_port Table)" ]; do
    i=$((i + 1))
    if [ $i -gt 600 ] || ! kill -0 "$azpid" 2>/dev/null; then
      echo "compat: Azurite did not start" >&2
      cat "$dir/azurite.log" >&2
      exit 1
    fi
    sleep 0.05
  done
  # Azurite's well-known development account (its documentation's, not a secret)
  key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
  export AZURITE_BLOB_URL="http://127.0.0.1:$(azurite_port Blob)/devstoreaccount1"
  export AZURITE_QUEUE_URL="http://127.0.0.1:$(azurite_port Queue)/devstoreaccount1"
  export AZURITE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$key;BlobEndpoint=$AZURITE_BLOB_URL;QueueEndpoint=$AZURITE_QUEUE_URL;"
fi
export SKYIO="$(cd "$(dirname "$skyio")" && pwd)/$(basename "$skyio")"

export MOCK_URL="https://127.0.0.1:$port"
export NODE_EXTRA_CA_CERTS="$dir/ca.pem"
mkdir -p "$rundir"
cp "$src"/tests/compat/*.mjs "$rundir/"
failed=0
# The programs of the suite are those that import check.mjs; other .mjs files here are
# helpers that integration tests call with arguments (queue.mjs, keyvault.mjs).
[ $# -gt 0 ] || set -- $(grep -l '"./check.mjs"' "$src"/tests/compat/*.mjs)
for prog in "$@"; do
  name=$(basename "$prog")
  case "$name" in check.mjs) continue ;; esac
  start=$(date +%s%N)
  if node "$rundir/$name"; then
    echo "compat: $name passed in $(( ($(date +%s%N) - start) / 1000000 )) ms"
  else
    echo "compat: $name FAILED" >&2
    failed=1
  fi
done
exit $failed
