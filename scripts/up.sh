#!/usr/bin/env bash
# Installs what DynoStore needs, builds it, and starts the whole fabric on this machine:
# mosquitto with the plugin, dyno-auth, dyno-metadata, dyno-pubsub, dyno-gateway and five
# dyno-containers on 127.0.0.1. Arguments go to `dynostore up` (e.g. --data DIR --containers 7).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec build/bin/dynostore up "$@"
