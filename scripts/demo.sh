#!/usr/bin/env bash
# The main job: installs what is missing, builds, and maps a CPU-bound function over a
# generated data set on every backend: examples/map_demo (serial loop, ThreadPoolExecutor,
# ProcessPoolExecutor, with a speed-up table), then examples/mpi_map, the same map on
# MpiExecutor under mpirun (one client rank + one worker rank per core). Both print the
# primes they found; the answers must agree.
#   scripts/demo.sh [map_demo options, e.g. --blocks 96 --workers 4]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-debian.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target map_demo mpi_map
build/release/examples/map_demo "$@" | tee /tmp/parex-demo.$$
echo
# As root Open MPI wants both ALLOW variables; one node: shared memory and self only.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_pml=ob1
timeout 600 mpirun --oversubscribe -np "$(( $(nproc) + 1 ))" build/release/examples/mpi_map "$@" | tee -a /tmp/parex-demo.$$
found=$(grep -o 'primes found: [0-9]*' /tmp/parex-demo.$$ | sort -u | wc -l)
rm -f /tmp/parex-demo.$$
if [ "$found" -ne 1 ]; then echo "demo: the backends disagree" >&2; exit 1; fi
echo "demo: the same answer on every backend"
