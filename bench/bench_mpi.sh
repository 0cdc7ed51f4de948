#!/bin/sh
# Data-parallel training on this machine (docs/CLUSTER.md): nano at a global batch of
# 32, one process with 2 threads against 2 MPI ranks with 1 thread each, same numbers.
#   bench mpi_train_nano_b32_1x2 ours=<samples/s> unit=samples/s
#   bench mpi_train_nano_b32_2x1 ours=<samples/s> unit=samples/s vs_1x2=<ratio>
# The rate is the median over steps 3..N of the CSV's samples_per_s (steps 1-2 decode
# and cache the images). bench/run.sh runs it; alone: sh bench/bench_mpi.sh BUILD.
BUILD=${1:-build}
VCM=$BUILD/vcm
STEPS=${BENCH_MPI_STEPS:-10}
if ! "$VCM" train --help 2>/dev/null | grep -q "MPI in this build: Open MPI"; then
    echo "# bench_mpi: $VCM was built without MPI, skipped"; exit 0
fi
command -v mpirun >/dev/null 2>&1 || { echo "# bench_mpi: no mpirun (openmpi-bin), skipped"; exit 0; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$VCM" synth --out "$T/w" --images 60 --seed 3 --quiet >/dev/null 2>&1 &&
"$VCM" tokenizer train --corpus "$T/w/corpus.jsonl" --vocab 600 --out "$T/tok.tok" >/dev/null 2>&1 ||
    { echo "# bench_mpi: cannot make the synthetic world"; exit 0; }
ARGS="--corpus $T/w/corpus.jsonl --regions $T/w/regions.jsonl --images-root $T/w --tokenizer $T/tok.tok
      --batch 32 --steps $STEPS --warmup 2 --seed 1 --quiet"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# As bench/run.sh: idle OpenMP threads spin ~0.1 ms, then sleep (long-spinning ones turn
# any other load on the machine into stalls at every barrier of a 2-thread team:
# measured 7 vs 42 samples/s).
: "${OMP_WAIT_POLICY:=PASSIVE}"; export OMP_WAIT_POLICY
: "${GOMP_SPINCOUNT:=10000}"; export GOMP_SPINCOUNT
# Without ssh (a minimal container) Open MPI 4 refuses to start even on one machine.
command -v ssh >/dev/null 2>&1 || command -v rsh >/dev/null 2>&1 || export OMPI_MCA_plm_rsh_agent=/bin/false
# median of column 5 (samples_per_s) over steps >= 3
rate() { awk -F, 'NR > 1 && $1 >= 3 { v[n++] = $5 } END { if (!n) { print "nan"; exit }
    for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    printf "%.1f", n % 2 ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2 }' "$1"; }

"$VCM" train $ARGS --threads 2 --out "$T/a.vcm" --log "$T/a.csv" >/dev/null 2>"$T/a.err" ||
    { echo "# bench_mpi: 1x2 failed: $(tail -1 "$T/a.err")"; exit 0; }
mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 "$VCM" train $ARGS --threads 1 --out "$T/b.vcm" \
    --log "$T/b.csv" >/dev/null 2>"$T/b.err" ||
    { echo "# bench_mpi: 2x1 failed: $(tail -3 "$T/b.err" | tr '\n' ' ')"; exit 0; }
a=$(rate "$T/a.csv"); b=$(rate "$T/b.csv")
echo "bench mpi_train_nano_b32_1x2 ours=$a unit=samples/s ranks=1 threads=2"
echo "bench mpi_train_nano_b32_2x1 ours=$b unit=samples/s ranks=2 threads=1 vs_1x2=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", (a > 0 ? b / a : 0) }')"
