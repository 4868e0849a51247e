#!/usr/bin/env bash
# setup.sh — installs what nnsearch needs from Debian's archive (only what is missing)
# and builds it in Release into build/ (with MPI: OpenMPI is among them). Run as root on
# Debian 12. Idempotent.
#   --bench   also install the benchmark references (python3-torch, python3-optuna) and the
#             data of scripts/bench/tabular (python3-sklearn, r-base-core, r-cran-modeldata,
#             r-cran-kernlab)
#   --fuzz    also install clang with its libFuzzer and sanitizer runtimes and OpenMP
#             library (clang, libclang-rt-dev, libomp-dev) for scripts/fuzz/run
# The sanitizer build (scripts/sanitize) and the fault walk (scripts/faultwalk) need nothing
# more: gcc's ASan/UBSan runtimes come with build-essential. docs/TESTING.md.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential cmake pkgconf libgsl-dev libopenblas-dev libopenblas0-pthread python3
      libyaml-dev libsqlite3-dev sqlite3 zlib1g-dev libcriterion-dev dataset-fashion-mnist
      libxml2-utils chromium   # the report's test: xmllint, and a headless browser to render it
      bsdutils    # bsdutils: script(1), the pseudo-terminal of tests/e2e_progress.sh
      libopenmpi-dev openmpi-bin)   # MPI: mpirun runs of one study, tests/e2e_mpi.sh
for opt in "$@"; do
  case $opt in
    --bench) pkgs+=(python3-torch python3-optuna python3-sklearn r-base-core r-cran-modeldata
                    r-cran-kernlab) ;;
    --fuzz) pkgs+=(clang libclang-rt-dev libomp-dev) ;;
    *) echo "usage: scripts/setup.sh [--bench] [--fuzz]" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DNS_WERROR=ON >/dev/null
cmake --build build -j "$(nproc)"
test -x build/nnsearch
