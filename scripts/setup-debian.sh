#!/usr/bin/env bash
# Installs, with apt-get, only the Debian 12 packages that parex's build, tests, examples
# and benchmarks need and that are missing. Safe to run again: it does nothing then.
#   scripts/setup-debian.sh           # build + tests + demo + benchmarks
set -euo pipefail

packages=(
  g++ cmake make
  libboost1.81-dev                 # Asio, Process, Interprocess (headers)
  libboost-serialization1.81-dev
  libboost-test1.81-dev
  libboost-filesystem1.81-dev      # Boost.Process v1 needs it
  libboost-mpi1.81-dev openmpi-bin # parex::mpi (MpiExecutor) and its tests under mpirun
  libtbb-dev                       # tools/: the oneTBB side of the thread-pool benchmark
  python3                          # tools/: the Python side-by-side benchmarks
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "parex: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
