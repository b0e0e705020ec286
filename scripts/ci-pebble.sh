#!/usr/bin/env bash
# Builds pebble, the ACME test server (github.com/letsencrypt/pebble), from
# the Go module proxy into a cache folder, with the TLS files it serves its
# directory with, and prints the binary's path. The ACME tests
# (test/terminator/acme.test.ts) run it on loopback. Cached: a second run
# prints the path at once.
set -euo pipefail
VERSION=v2.10.3
CACHE="${RUSTLS_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rustls-node}/pebble-$VERSION"
BIN="$CACHE/pebble"
if [ ! -x "$BIN" ] || [ ! -f "$CACHE/pebble.minica.pem" ]; then
  if ! command -v go >/dev/null 2>&1; then
    [ -x /usr/local/go/bin/go ] && export PATH="/usr/local/go/bin:$PATH"
  fi
  command -v go >/dev/null 2>&1 || { echo "ci-pebble: Go 1.25 or newer is needed to build pebble $VERSION" >&2; exit 1; }
  mkdir -p "$CACHE"
  GOBIN="$CACHE" GOFLAGS=-mod=mod go install "github.com/letsencrypt/pebble/v2/cmd/pebble@$VERSION" >&2
  SRC="$(go env GOMODCACHE)/github.com/letsencrypt/pebble/v2@$VERSION/test/certs"
  cp "$SRC/localhost/cert.pem" "$CACHE/cert.pem"
  cp "$SRC/localhost/key.pem" "$CACHE/key.pem"
  cp "$SRC/pebble.minica.pem" "$CACHE/pebble.minica.pem"
  chmod 0644 "$CACHE"/*.pem
fi
echo "$BIN"
