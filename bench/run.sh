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
        *bench_model) "$b" --no-train >>"$out" || echo "# $b failed" >&2 ;;   # training steps: below
        *) "$b" >>"$out" || echo "# $b failed" >&2 ;;
    esac
done
# Data-parallel training over MPI: 1 rank x 2 threads against 2 ranks x 1 thread
# (the all-reduce figures come from bench_allreduce above).
[ -f bench/bench_mpi.sh ] && { sh bench/bench_mpi.sh "$BUILD" >>"$out" || echo "# bench/bench_mpi.sh failed" >&2; }
have_torch=0
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
    have_torch=1
    for p in bench/ref_*.py; do
        [ -e "$p" ] || continue
        case "$p" in
            *ref_model.py) /usr/bin/python3 "$p" --threads "$THREADS" --no-train >>"$refs" || echo "# $p failed" >&2 ;;
            *) /usr/bin/python3 "$p" --threads "$THREADS" >>"$refs" || echo "# $p failed" >&2 ;;
        esac
    done
else
    echo "# PyTorch (python3-torch) not found: reference columns are missing; run make deps" >&2
fi
# The full training steps, ours and PyTorch's in turn, ROUNDS times (VCM_BENCH_ROUNDS,
# default 3); each side's best over its rounds is reported. On a shared VM a slow spell
# lasts seconds and used to land on one side's only run: interleaving gives both sides
# the same chances. Each run is a fresh process (its peak memory is its own) timing the
# best of 10 (nano) or 4 (small) steps after a warm-up step.
peak=$(sed -n 's/^bench sgemm_peak_model gflops=\([0-9.]*\).*/\1/p' "$out" | head -1)
r=0
while [ "$r" -lt "${VCM_BENCH_ROUNDS:-3}" ]; do
    for cfg in "nano 32 10" "small 8 4"; do
        # shellcheck disable=SC2086
        "$BUILD/bench/bench_model" --one $cfg "${peak:-0}" >>"$out" || echo "# bench_model --one $cfg failed" >&2
        # shellcheck disable=SC2086
        [ "$have_torch" = 1 ] && { /usr/bin/python3 bench/ref_model.py --threads "$THREADS" --one $cfg >>"$refs" ||
            echo "# ref_model.py --one $cfg failed" >&2; }
    done
    r=$((r + 1))
done
# Joined in awk. A name measured several times (the rounds above) keeps its smallest
# value on each side, with the extra fields of that run; of the flops lines, the run with
# the most achieved GFLOPS (= the fastest step) is kept.
awk -v REFS="$refs" '
function num(k,   i, kv) { for (i = 1; i <= NF; i++) if (split($i, kv, "=") == 2 && kv[1] == k) return kv[2] + 0; return -1 }
BEGIN {
    while ((getline l < REFS) > 0) {
        split(l, f, " ")
        if (f[1] == "ref") { if (!(f[2] in ref) || f[3] + 0 < ref[f[2]] + 0) ref[f[2]] = f[3] }
        else if (l ~ /^(bench|#)/) print l
    }
}
/^bench flops_/ { a = num("achieved_gflops"); if (!($2 in fl) || a > fla[$2]) { if (!($2 in fl)) flo[++nf] = $2; fl[$2] = $0; fla[$2] = a }; next }
/^bench / { print; next }
/^ours / {
    extra = ""; for (i = 4; i <= NF; i++) extra = extra " " $i
    if (!($2 in ov)) { oo[++no] = $2; ov[$2] = $3; ox[$2] = extra }
    else if ($3 + 0 < ov[$2] + 0) { ov[$2] = $3; ox[$2] = extra }
    next
}
{ print }
END {
    for (k = 1; k <= no; k++) {
        n = oo[k]
        if (n in ref) printf "bench %s ours=%.4g ref=%.4g ratio=%.3f%s\n", n, ov[n], ref[n], ref[n] / ov[n], ox[n]
        else printf "bench %s ours=%.4g ref=missing ratio=missing%s\n", n, ov[n], ox[n]
        fk = "flops_" n
        if (fk in fl) print fl[fk]
    }
    for (k = 1; k <= nf; k++) { n = substr(flo[k], 7); if (!(n in ov)) print fl[flo[k]] }
}
' "$out"
rm -f "$out" "$refs"
