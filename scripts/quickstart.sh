#!/usr/bin/env bash
# Quick start: install what is missing, build, and run the node on the sample config
# (AE SEGNODE, DICOM port 11112, HTTP API on 127.0.0.1:8080, working directory and SQLite
# under ./var). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec ./build/segnode serve --config config/segnode.toml "$@"
