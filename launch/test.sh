#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), build, then every C++ and Python test through CTest.
# Usage: bash launch/test.sh [ctest arguments, e.g. -R Parity]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash launch/build.sh
[ -d ../shared/data ] || echo "note: ../shared/data is absent; tests that need it will be skipped"
cd build
ctest --output-on-failure -j "${LETHE_TEST_JOBS:-$(nproc)}" "$@"
