#!/usr/bin/env bash
# Installs what DynoStore needs, builds it, and runs every test:
#   1. unit tests under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/),
#   2. the libFuzzer targets (tests/fuzz) for DYNO_FUZZ_SECONDS each (build-fuzz/, clang),
#   3. the whole suite (unit, integration and fault tests against real processes) on build/.
# Usage: scripts/test.sh [ctest arguments, e.g. -R roundtrip]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# playwright-core for the web console's browser tests (npm; the browser is Debian's chromium)
tests/browser/install.sh
echo "== build (sanitizers) =="
BUILD_DIR=build-asan scripts/build.sh -DDYNO_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
echo "== unit tests under ASan + UBSan =="
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan -L unit --output-on-failure -j2
echo "== fuzz (libFuzzer + ASan + UBSan) =="
# Only the fuzz targets (and the core they link) are built here: the rest of the tree is
# covered by the other two builds.
CC=clang cmake -S . -B build-fuzz -DDYNO_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz --target fuzz -j"$(nproc)"
ctest --test-dir build-fuzz -L fuzz --output-on-failure -j2
echo "== build =="
scripts/build.sh
echo "== all tests =="
ctest --test-dir build --output-on-failure "$@"
