#!/bin/sh
# make bench: run every build/bench/bench_* program and every bench/ref_*.py, then
# join them. A C program prints either complete lines
#     bench <name> ours=<x> ref=<y> ratio=<ref/ours> [extra=...]
# or half lines "ours <name> <ms> [extra=...]" whose reference half comes from the
# PyTorch script as "ref <name> <ms>". All times are milliseconds per call (best of
# several runs); ratio = ref/ours, so above 1 means vcm is faster.
BUILD=${1:-build}
export VCM_BUILD="$BUILD"
THREADS=${VCM_THREADS:-$(nproc)}
export VCM_THREADS=$THREADS
# OpenBLAS 0.3.21 falls back to generic SSE3 kernels on CPUs it does not know; vcm
# picks the right ones (docs/BENCH.md). Both sides of every comparison get the same.
if [ -z "$OPENBLAS_CORETYPE" ] && [ -x "$BUILD/vcm" ]; then
    OPENBLAS_CORETYPE=$("$BUILD/vcm" --blas-core); export OPENBLAS_CORETYPE
fi
out=$(mktemp); refs=$(mktemp)
# OpenMP threads that spin long (libgomp's default, ~3 ms) wait for scheduler ticks
# whenever anything else runs on the machine, which turns timings into multiples of
# 4 ms; threads that sleep at once pay a kernel wake-up at every parallel region. Both
# sides spin ~0.1 ms and then sleep, as vcm itself does (docs/TENSOR.md).
: "${OMP_WAIT_POLICY:=PASSIVE}"; export OMP_WAIT_POLICY
: "${GOMP_SPINCOUNT:=10000}"; export GOMP_SPINCOUNT
echo "# make bench: $(date -u +%Y-%m-%dT%H:%MZ), threads=$THREADS, openblas=${OPENBLAS_CORETYPE:-auto}, omp_wait=$OMP_WAIT_POLICY, gomp_spincount=$GOMP_SPINCOUNT, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for b in "$BUILD"/bench/bench_*; do
    case "$b" in *.d) continue ;; esac
    [ -x "$b" ] || continue
    case "$b" in
        # The reference there is threaded OpenBLAS, whose idle workers spin for ~2^28
        # cycles after each call and take a core from the vcm kernel timed next (ours
        # keep OpenBLAS single-threaded); a short timeout makes them sleep at once.
        *bench_matmul) OPENBLAS_THREAD_TIMEOUT=4 "$b" >>"$out" || echo "# $b failed" >&2 ;;
        *) "$b" >>"$out" || echo "# $b failed" >&2 ;;
    esac
done
# Data-parallel training over MPI: 1 rank x 2 threads against 2 ranks x 1 thread
# (the all-reduce figures come from bench_allreduce above).
[ -f bench/bench_mpi.sh ] && { sh bench/bench_mpi.sh "$BUILD" >>"$out" || echo "# bench/bench_mpi.sh failed" >&2; }
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
    for p in bench/ref_*.py; do
        [ -e "$p" ] || continue
        /usr/bin/python3 "$p" --threads "$THREADS" >>"$refs" || echo "# $p failed" >&2
    done
else
    echo "# PyTorch (python3-torch) not found: reference columns are missing; run make deps" >&2
fi
awk -v REFS="$refs" '
BEGIN { while ((getline l < REFS) > 0) { split(l, f, " "); if (f[1] == "ref") ref[f[2]] = f[3]; else if (l ~ /^(bench|#)/) print l } }
/^bench / { print; next }
/^ours / {
    extra = ""; for (i = 4; i <= NF; i++) extra = extra " " $i
    if ($2 in ref) printf "bench %s ours=%.4g ref=%.4g ratio=%.3f%s\n", $2, $3, ref[$2], ref[$2] / $3, extra
    else printf "bench %s ours=%.4g ref=missing ratio=missing%s\n", $2, $3, extra
    next
}
{ print }
' "$out"
rm -f "$out" "$refs"
