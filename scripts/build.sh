#!/usr/bin/env bash
# Configures (once) and builds segnode into ./build. Extra arguments go to the configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/CMakeCache.txt ] || [ $# -gt 0 ]; then
  # SEGNODE_WERROR=ON (CI sets it): warnings are errors.
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSEGNODE_WERROR="${SEGNODE_WERROR:-OFF}" "$@"
fi
cmake --build build
