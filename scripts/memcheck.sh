#!/usr/bin/env bash
# Native memory safety (issue 6, item 2): builds the addon with
# AddressSanitizer into a separate tree (build/Release is never touched) and
# runs the native tests, the fd-pump smoke run, the reliability tests
# that drive native code (use after destroy, a short pump fuzz) and a
# subset of the integration tests against it. Expected: zero ASan reports.
#
#   scripts/memcheck.sh            ASan (falls back to valgrind when ASan
#                                  cannot load into this node)
#   scripts/memcheck.sh valgrind   valgrind memcheck on the smoke runs (fd pump,
#                                  the terminator's data plane) and the pump
#                                  and listener tests instead (slow: minutes)
#
# What is instrumented: the C++ addon (native/src). The Rust staticlib
# (rustls-ffi and our glue) is linked as built by cargo, uninstrumented:
# its memory safety is Rust's. Its heap still goes through malloc, which
# ASan replaces, so C++ writing past a Rust-allocated buffer, double or
# mismatched frees on either side of the C ABI, and use after free of
# memory freed by Rust are still caught. Node itself is not ASan-built, so
# the runtime is preloaded (LD_PRELOAD) and leak detection is off (V8 and
# Node keep allocations alive until exit by design).
#
# Needs: g++ (with libasan), node-gyp (bundled with npm), the Rust staticlib
# (scripts/build-rust.js, run here if missing), dist/ (npx tsc).
# Environment: MEMCHECK_DIR (default: a temporary folder, removed at the
# end unless MEMCHECK_KEEP=1), MEMCHECK_FUZZ_INPUTS (default 20000),
# MEMCHECK_H2_FUZZ_CONNECTIONS (mutated HTTP/2 connections, default 1000).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MODE="${1:-asan}"
WORK="${MEMCHECK_DIR:-$(mktemp -d /tmp/rustls-node-memcheck.XXXXXX)}"
cleanup () { [ "${MEMCHECK_KEEP:-0}" = 1 ] || rm -rf "$WORK"; }
trap cleanup EXIT

log () { printf '\n== memcheck: %s\n' "$*"; }

[ -f "$ROOT/target/ffi/librustls_node.a" ] || node "$ROOT/scripts/build-rust.js"
[ -d "$ROOT/dist/test/native" ] || node "$ROOT/node_modules/typescript/bin/tsc" -p "$ROOT/tsconfig.json"

# A copy of the repository that node-gyp-build resolves to: compiled JS,
# the sources and a copy of the staticlib (target/ffi); node_modules and the
# test fixtures shared by symlink. The shared target/ is never written: the
# build below runs with RUSTLS_NODE_USE_BUILT_STATICLIB=1, so the sanitizer
# flags reach the C++ addon only, never cargo (whose aws-lc build would
# take them into target/ and into every later release link).
mkdir -p "$WORK/target"
for item in package.json binding.gyp Cargo.toml Cargo.lock native scripts dist bin; do
  cp -rp "$ROOT/$item" "$WORK/"
done
cp -rp "$ROOT/target/ffi" "$WORK/target/"
for item in node_modules test; do
  ln -sfn "$ROOT/$item" "$WORK/$item"
done

NODEDIR="$(cd "$(dirname "$(command -v node)")/.." && pwd)"
NODE_GYP="$(dirname "$(command -v node)")/../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"
[ -f "$NODE_GYP" ] || NODE_GYP="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"

build_asan () {
  log "building the addon with -fsanitize=address in $WORK/build"
  local flags="-fsanitize=address -fno-omit-frame-pointer -g -O1"
  (cd "$WORK" && RUSTLS_NODE_USE_BUILT_STATICLIB=1 CFLAGS="$flags" CXXFLAGS="$flags" LDFLAGS="-fsanitize=address" \
    node "$NODE_GYP" rebuild --release --nodedir="$NODEDIR" --jobs="${JOBS:-2}" >"$WORK/build.log" 2>&1) || {
    tail -40 "$WORK/build.log"; echo "memcheck: the ASan build failed" >&2; exit 1; }
  local symbols
  symbols="$(nm -D --undefined-only "$WORK/build/Release/rustls_node.node")"
  grep -q __asan_ <<<"$symbols" || {
    echo "memcheck: the built addon is not instrumented" >&2; exit 1; }
}

# The runs, in the copy. Each prints node:test's summary; a report makes
# the process abort (halt_on_error) and leaves asan.<pid> in $WORK/reports.
TESTS_NATIVE=(dist/test/native/pump.test.js)
TESTS_RELIABILITY=(dist/test/reliability/native-safety.test.js dist/test/reliability/fuzz-pump.test.js)
TESTS_INTEGRATION=(
  dist/test/integration/server-interop.test.js
  dist/test/integration/client-interop.test.js
  dist/test/integration/resumption.test.js
  dist/test/integration/virtual-hosts.test.js
  dist/test/integration/client-auth.test.js
  dist/test/integration/fd-pump.test.js
  dist/test/integration/sni-callback.test.js
  dist/test/integration/session-callbacks.test.js
  dist/test/ecosystem/http-server.test.js
)
# The native data plane (issues 11 and 18): the listener, the tcp-mode
# splice (in the clear and TLS to the backend), http mode's HTTP/1.1 front
# (every answer it gives itself, HTTP/1.0, Expect, upgrades and the tunnel
# after them, routing and coalescing, refused heads) and HTTP/2 front,
# HTTP/2 to backends (gRPC included), backends found by name, and the
# hostile runs (oversized heads, a flooded tunnel). The terminator processes these tests start load the same
# instrumented addon (the copy's bin/ and dist/) with the runtime preloaded.
TESTS_NATIVE_PLANE=(
  dist/test/integration/native-listener.test.js
  dist/test/terminator/tcp.test.js
  dist/test/terminator/backend-tls.test.js
  dist/test/terminator/native-http.test.js
  dist/test/terminator/http.test.js
  dist/test/terminator/routing.test.js
  dist/test/terminator/backend-names.test.js
  dist/test/terminator/h2-front.test.js
  dist/test/terminator/h2-backend.test.js
  dist/test/terminator/grpc.test.js
  dist/test/reliability/h2-abuse.test.js
  dist/test/reliability/fuzz-h2.test.js
  dist/test/reliability/abuse.test.js
  dist/test/reliability/backpressure.test.js
)

run_asan () {
  local libasan
  libasan="$(gcc -print-file-name=libasan.so)"
  [ -f "$libasan" ] || { echo "memcheck: libasan.so not found" >&2; return 2; }
  mkdir -p "$WORK/reports" "$WORK/peers"
  # The peers the tests spawn (openssl, curl) run without the preloaded
  # runtime: curl's resolver thread hangs under an uninstrumented ASan
  # preload, and they are not what is being checked.
  for peer in openssl curl nghttp; do
    printf '#!/bin/sh\nexec env -u LD_PRELOAD -u ASAN_OPTIONS %s "$@"\n' "$(command -v $peer)" >"$WORK/peers/$peer"
    chmod +x "$WORK/peers/$peer"
  done
  export PATH="$WORK/peers:$PATH"
  export LD_PRELOAD="$libasan"
  # detect_leaks=0: node is not ASan-built and keeps memory until exit.
  # Children (openssl, curl) get the runtime too but are not instrumented.
  export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:log_path=$WORK/reports/asan:strict_string_checks=1:detect_stack_use_after_return=0:allocator_may_return_null=1"
  # Loads, and the module mapped is the instrumented copy, not build/Release.
  local probe="require('./dist/lib/native'); const maps = require('fs').readFileSync('/proc/self/maps', 'utf8'); process.stdout.write(maps.includes('$WORK/build/Release/rustls_node.node') ? 'asan-loaded\n' : 'wrong-module\n')"
  if ! (cd "$WORK" && node -e "$probe") 2>"$WORK/load.log" | grep -q asan-loaded; then
    unset LD_PRELOAD ASAN_OPTIONS
    cat "$WORK/load.log" >&2
    return 2
  fi
  local status=0
  log "fd-pump smoke run under ASan"
  (cd "$WORK" && node dist/test/native/fd-pump-smoke.js) || status=1
  log "the terminator's data plane smoke run (h2 front, h2c backend, WebSocket tunnel) under ASan"
  (cd "$WORK" && node dist/test/native/plane-smoke.js) || status=1
  log "native, reliability and integration tests under ASan"
  (cd "$WORK" && RUSTLS_NODE_FUZZ_INPUTS="${MEMCHECK_FUZZ_INPUTS:-20000}" node --test --test-reporter=spec --test-concurrency=1 \
    "${TESTS_NATIVE[@]}" "${TESTS_RELIABILITY[@]}" "${TESTS_INTEGRATION[@]}" 2>&1 | tee "$WORK/tests.log" | grep -E '^(✔|✖|ℹ (tests|pass|fail))') || status=1
  grep -qE '^ℹ fail 0$' "$WORK/tests.log" || status=1
  log "the integration files again on the stream pump (net.Server path, net.Socket clients), under ASan"
  (cd "$WORK" && RUSTLS_NODE_TEST_PUMP=stream NODE_OPTIONS="--require $WORK/dist/test/helpers/stream-mode.js" node --test --test-reporter=spec --test-concurrency=1 \
    "${TESTS_INTEGRATION[@]}" 2>&1 | tee "$WORK/tests-stream.log" | grep -E '^(✔|✖|ℹ (tests|pass|fail))') || status=1
  grep -qE '^ℹ fail 0$' "$WORK/tests-stream.log" || status=1
  log "the native data plane's tests under ASan"
  (cd "$WORK" && RUSTLS_NODE_H2_FUZZ_CONNECTIONS="${MEMCHECK_H2_FUZZ_CONNECTIONS:-1000}" node --test --test-reporter=spec --test-concurrency=1 \
    "${TESTS_NATIVE_PLANE[@]}" 2>&1 | tee "$WORK/tests-native.log" | grep -E '^(✔|✖|ℹ (tests|pass|fail))') || status=1
  grep -qE '^ℹ fail 0$' "$WORK/tests-native.log" || status=1
  unset LD_PRELOAD ASAN_OPTIONS
  local reports
  reports=$(ls "$WORK/reports" 2>/dev/null | wc -l)
  log "AddressSanitizer reports: $reports"
  if [ "$reports" -gt 0 ]; then
    for r in "$WORK"/reports/*; do echo "--- $r"; head -60 "$r"; done
    status=1
  fi
  return $status
}

run_valgrind () {
  command -v valgrind >/dev/null || { echo "memcheck: valgrind is not installed" >&2; return 1; }
  log "valgrind memcheck: fd-pump smoke run, the pump test, the native listener's test and the terminator's data plane (release build)"
  local status=0
  local vg=(valgrind --tool=memcheck --error-exitcode=99 --errors-for-leak-kinds=none --suppressions=/dev/null --quiet)
  # Each file run directly (not through `node --test`, which would run it
  # in a child process that valgrind does not follow).
  for t in dist/test/native/fd-pump-smoke.js dist/test/native/pump.test.js dist/test/integration/native-listener.test.js; do
    (cd "$ROOT" && "${vg[@]}" node "$t") || status=1
  done
  # The data plane (issue 18): the driver runs as usual and starts the
  # terminator under valgrind (h2 front, h2c backend, HTTP/1.1, WebSocket
  # tunnel); it fails when the terminator's exit code is not 0, so on 99.
  (cd "$ROOT" && node dist/test/native/plane-smoke.js "${vg[@]}") || status=1
  if [ $status -eq 0 ]; then log "valgrind: clean, zero errors"; else log "valgrind: errors reported (exit 99) or a test failed"; fi
  return $status
}

if [ "$MODE" = valgrind ]; then
  run_valgrind
  exit $?
fi
build_asan
set +e
run_asan
status=$?
set -e
if [ $status -eq 2 ]; then
  log "ASan cannot load into this node; falling back to valgrind memcheck"
  run_valgrind
  exit $?
fi
[ $status -eq 0 ] && log "clean: zero reports" || log "FAILED"
exit $status
