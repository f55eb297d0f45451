#!/usr/bin/env bash
# Configures and builds lethe into build/ (Release, Ninja, ccache + a shared precompiled header).
# Arguments are target names (e.g. `lethe`); none = everything. Runs launch/setup.sh first unless LETHE_SKIP_SETUP=1.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
[ "${LETHE_SKIP_SETUP:-0}" = 1 ] || bash launch/setup.sh
# ccache must ignore what a PCH build legitimately changes, or it never hits.
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
# Paths relative to the checkout, so a fresh clone elsewhere (CI) hits the same cache entries.
export CCACHE_BASEDIR="$root"
[ -f build/build.ninja ] || cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "${LETHE_JOBS:-$(nproc)}" ${1:+--target "$@"}
