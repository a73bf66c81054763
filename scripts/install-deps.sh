#!/usr/bin/env bash
# Installs every Debian 12 package DynoStore needs to build, run, test and benchmark.
# Idempotent; run as root (or with sudo available).
set -euo pipefail
pkgs=(
  # libclang-rt-dev: clang's libFuzzer and sanitizer runtimes, only a Recommends of clang
  build-essential cmake pkg-config clang libclang-rt-dev
  mosquitto mosquitto-dev libmosquitto-dev mosquitto-clients
  libcjson-dev libcurl4-openssl-dev libsqlite3-dev libssl-dev
  libmicrohttpd-dev libisal-dev libcmocka-dev
  python3 redis-server procps openssl
  # groff-base: test_client_install renders the installed dynostore(1) and fails on warnings
  groff-base
  # scripts/compose-test.sh (issue 15): a private Docker daemon, compose 1.29, and the base
  # image made with debootstrap from the apt mirror (no image registry)
  docker.io docker-compose debootstrap
  # chromium, nodejs: the web console's browser tests (tests/browser, issue 12) drive Debian's
  # chromium with playwright-core from npm (tests/browser/install.sh); no browser is ever
  # downloaded. npm comes with nodejs here (Debian's own npm package is only needed where
  # nodejs is Debian's, and would conflict with a nodejs that bundles it)
  chromium nodejs
  # the S3 door's tests (issue 14) run the real S3 tools against the gateway; boto3 only
  # under /usr/bin/python3
  awscli s3cmd rclone python3-boto3
)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  # waits for another apt run to release the lock instead of failing at once
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q \
    --no-install-recommends "${missing[@]}"
fi
# Debian's nodejs has no npm of its own: add Debian's npm only then.
if ! command -v npm >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q \
    --no-install-recommends npm
fi
# s3rver (npm, node 20): the local S3 server the s3 backend's tests run against (issue 13),
# in the project's tests/s3/node_modules (kept out of git), not system-wide
if command -v npm >/dev/null 2>&1; then
  here="$(cd "$(dirname "$0")/.." && pwd)"
  if [ ! -x "$here/tests/s3/node_modules/.bin/s3rver" ]; then
    (cd "$here/tests/s3" && npm install --no-save --no-audit --no-fund s3rver@3)
  fi
fi
