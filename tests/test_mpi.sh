#!/bin/sh
# Data-parallel training over Open MPI (docs/CLUSTER.md): 2 ranks give the one-process
# loss curve at every step (both ways of sharing a step), a checkpoint resumes on
# another number of ranks, killing a rank ends the job with a message naming the last
# checkpoint, which resumes. A 60-image world and nano keep it to about 30 s.
. tests/lib.sh

if ! $VCM train --help 2>/dev/null | grep -q "MPI in this build: Open MPI"; then
    echo "skipped: this vcm was built without MPI (no mpicc when it was built)"
    # Without MPI a launcher-started process must refuse to train alone.
    check_fails "a build without MPI refuses several launched processes" 1 "built without MPI" \
        env OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0 $VCM train --corpus x --regions x --tokenizer x --out x
    summary; exit $?
fi
if ! command -v mpirun >/dev/null 2>&1; then
    echo "skipped: no mpirun (install openmpi-bin), although vcm was built with MPI"
    fail "mpirun is missing in an MPI build"
    summary; exit $?
fi

# Containers: no ptrace for the single-copy path, maybe root (CI). A shared machine:
# waiting ranks yield their core (else a rank spinning on the other's core makes every
# message wait a time slice). No binding: the ranks may share cores.
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_mpi_yield_when_idle=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN="mpirun --allow-run-as-root --oversubscribe --bind-to none"
# Without ssh (a minimal container) Open MPI 4 refuses to start even on one machine.
command -v ssh >/dev/null 2>&1 || command -v rsh >/dev/null 2>&1 || export OMPI_MCA_plm_rsh_agent=/bin/false
# The asan tree: Open MPI does not free all it allocates; tests/lsan_mpi.supp names its
# libraries (make test-asan passes it too). Their stacks need the slow unwinder (they
# have no frame pointers) and the MCA components kept loaded; only for mpirun'd ranks.
case "${LSAN_OPTIONS:-}" in *lsan_mpi.supp*) ;; *)
    LSAN_OPTIONS="suppressions=$(pwd)/tests/lsan_mpi.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"; export LSAN_OPTIONS ;; esac
LSAN_OPTIONS="$LSAN_OPTIONS:print_suppressions=0"
RANK_ENV="ASAN_OPTIONS=fast_unwind_on_malloc=0${ASAN_OPTIONS:+:$ASAN_OPTIONS} OMPI_MCA_mca_base_component_disable_dlclose=1"

# 20 steps; 6 in a sanitizer build (ASan, and Open MPI's slow unwinding, is ~10x slower).
N=20
ldd "$VCM" 2>/dev/null | grep -q libasan && N=6
H=$((N / 2))

W=$TMP/world
$VCM synth --out "$W" --images 60 --seed 3 --quiet >/dev/null 2>&1
$VCM tokenizer train --corpus "$W/corpus.jsonl" --vocab 600 --out "$TMP/tok.tok" >/dev/null 2>&1
ARGS="--corpus $W/corpus.jsonl --regions $W/regions.jsonl --images-root $W --tokenizer $TMP/tok.tok --warmup 2 --seed 5 --quiet"
one() { $VCM train $ARGS --threads 1 "$@"; }          # one process
two() { env $RANK_ENV $MPIRUN -np 2 $VCM train $ARGS "$@"; }   # two ranks

# agree A.csv B.csv: the same steps, and losses within 1e-5 relative at every one.
agree() {
    awk -F, 'NR == FNR { if (FNR > 1) l[$1] = $2; next }
             FNR > 1 { n++; if (!($1 in l)) bad = 1; else { d = $2 - l[$1]; if (d < 0) d = -d; r = d / (l[$1] < 0 ? -l[$1] : l[$1]); if (r > m) m = r; if (r > 1e-5) bad = 1 } }
             END { printf "  %d steps, max relative difference %.2g\n", n, m; exit bad || n == 0 }' "$1" "$2"
}

# 1. The same global batch (4 samples, 1 micro-batch): each rank takes half of it.
check "one process, $N steps" one --out "$TMP/a1.vcm" --batch 4 --steps $N --log "$TMP/a1.csv"
check "mpirun -np 2, $N steps" two --out "$TMP/a2.vcm" --batch 4 --steps $N --log "$TMP/a2.csv"
assert "only rank 0 prints the summary" sh -c "[ \$(grep -c '\"steps\":$N' '$TMP/out') = 1 ]"
assert "$N rows in both logs" sh -c "[ \$(wc -l < '$TMP/a1.csv') = $((N + 1)) ] && [ \$(wc -l < '$TMP/a2.csv') = $((N + 1)) ]"
assert "2 ranks (slices of every micro-batch) give the 1-process loss at every step (1e-5)" agree "$TMP/a1.csv" "$TMP/a2.csv"

# 2. Gradient accumulation: 2 micro-batches of 2, one per rank.
check "one process, batch 2 x accum 2" one --out "$TMP/b1.vcm" --batch 2 --accum 2 --steps $H --log "$TMP/b1.csv"
check "2 ranks, batch 2 x accum 2" two --out "$TMP/b2.vcm" --batch 2 --accum 2 --steps $H --log "$TMP/b2.csv"
assert "2 ranks (whole micro-batches) give the 1-process loss at every step (1e-5)" agree "$TMP/b1.csv" "$TMP/b2.csv"
check_fails "a global batch the ranks cannot share is refused" 2 "cannot be shared by 2 ranks" \
    two --out "$TMP/x.vcm" --batch 3 --steps 2
# A bad record (every 10th line) stops every rank; rank 0 tells the reader's message.
sed '0~10s/"region": \[[0-9, ]*\]/"region": [77]/' "$W/corpus.jsonl" > "$TMP/bad.jsonl"
check_fails "a bad record read by any rank stops the job with its file:line" 2 "bad.jsonl:[0-9]+0: .*region id 77" \
    env $RANK_ENV $MPIRUN -np 2 $VCM train $ARGS --corpus "$TMP/bad.jsonl" --out "$TMP/x.vcm" --batch 4 --steps 50

# 3. Resume on another number of ranks: 2 ranks to step N/2, then 1 process to N,
# must retrace the 1-process run of part 1.
check "2 ranks stop at step $H" two --out "$TMP/r.vcm" --batch 4 --steps $N --ckpt-every $H --stop-after $H --log "$TMP/r.csv"
check "1 process resumes to step $N" one --out "$TMP/r.vcm" --batch 4 --steps $N --ckpt-every $H --resume --log "$TMP/r.csv"
assert "resumed across rank counts: the 1-process curve at every step" agree "$TMP/a1.csv" "$TMP/r.csv"
check "1 process stops at step $H" one --out "$TMP/s.vcm" --batch 4 --steps $N --ckpt-every $H --stop-after $H --log "$TMP/s.csv"
check "2 ranks resume to step $N" two --out "$TMP/s.vcm" --batch 4 --steps $N --ckpt-every $H --resume --log "$TMP/s.csv"
assert "and from 1 process to 2 ranks" agree "$TMP/a1.csv" "$TMP/s.csv"

# 4. Kill rank 1 mid-run: the job ends (non-zero), rank 0 names the last checkpoint,
# which is intact and resumes.
env $RANK_ENV $MPIRUN -np 2 $VCM train $ARGS --out "$TMP/k.vcm" --batch 4 --steps 10000 --ckpt-every 2 --log "$TMP/k.csv" \
    >"$TMP/k.out" 2>"$TMP/k.err" &
job=$!
victim=""
for i in $(seq 1 300); do   # up to 30 s for the first checkpoints
    if [ -e "$TMP/k.vcm" ] && [ "$(wc -l < "$TMP/k.csv" 2>/dev/null || echo 0)" -ge 4 ]; then
        for p in $(pgrep -P "$job" 2>/dev/null) $(pgrep -f "$TMP/k.vcm" 2>/dev/null); do
            tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && victim=$p && break
        done
        break
    fi
    sleep 0.1
done
[ -n "$victim" ] && kill -9 "$victim"
t0=$(date +%s)
wait $job; krc=$?
assert "rank 1 found and killed mid-run" [ -n "$victim" ]
assert "the job ends with a non-zero exit code (got $krc) within 20 s" sh -c "[ $krc != 0 ] && [ \$(( \$(date +%s) - $t0 )) -le 20 ]"
assert "the launcher names the dead rank" grep -q "rank 1" "$TMP/k.err"
assert "rank 0 names the last checkpoint and how to resume" sh -c "grep -q 'stopped by a signal' '$TMP/k.err' && grep -q 'last checkpoint is $TMP/k.vcm (step [0-9]*)' '$TMP/k.err' && grep -q -- '--resume' '$TMP/k.err'"
kstep=$(sed -n 's/.*last checkpoint is .* (step \([0-9]*\)).*/\1/p' "$TMP/k.err" | tail -1)
assert "the checkpoint is intact (it exports)" sh -c "$VCM export --model '$TMP/k.vcm' --out '$TMP/k.st' >/dev/null"
assert "no half-written checkpoint replaced it" sh -c "[ -n '$kstep' ] && [ $((${kstep:-0} % 2)) = 0 ]"
check "the killed run resumes (2 ranks, 2 more steps)" two --out "$TMP/k.vcm" --batch 4 --steps 10000 --ckpt-every 2 \
    --resume --stop-after $((${kstep:-0} + 2)) --log "$TMP/k.csv"
assert "the resumed log continues from the checkpoint" sh -c "[ \$(tail -1 '$TMP/k.csv' | cut -d, -f1) = $((${kstep:-0} + 2)) ]"

# 5. Kill rank 0 while it writes a checkpoint (its temporary file exists): the previous
# checkpoint stays whole and a different number of ranks (1) resumes from it.
env $RANK_ENV $MPIRUN -np 2 $VCM train $ARGS --out "$TMP/z.vcm" --batch 2 --steps 10000 --ckpt-every 1 \
    >/dev/null 2>"$TMP/z.err" &
job=$!
r0=""
for i in $(seq 1 300); do
    for p in $(pgrep -P "$job" 2>/dev/null) $(pgrep -f "$TMP/z.vcm" 2>/dev/null); do
        tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=0" && r0=$p
    done
    [ -n "$r0" ] && [ -e "$TMP/z.vcm" ] && break
    sleep 0.1
done
caught=0
if [ -n "$r0" ]; then
    n=0   # a tight loop of shell builtins: a nano checkpoint takes milliseconds to write
    while [ $n -lt 5000000 ]; do
        if [ -e "$TMP/z.vcm.tmp" ]; then kill -9 "$r0"; caught=1; break; fi
        n=$((n + 1))
    done
fi
[ "$caught" = 1 ] || kill -9 "$r0" 2>/dev/null
wait $job; zrc=$?
assert "rank 0 killed while its checkpoint temporary was open (exit $zrc)" sh -c "[ $caught = 1 ] && [ $zrc != 0 ]"
assert "the previous checkpoint is whole" sh -c "$VCM export --model '$TMP/z.vcm' --out '$TMP/z.st' >/dev/null"
# --stop-after 1: one step past the resumed one
check "and resumes on 1 process" one --out "$TMP/z.vcm" --batch 2 --steps 10000 --ckpt-every 1 --resume --stop-after 1
assert "from a step past 1" sh -c "grep -Eq '\"steps\":([2-9]|[1-9][0-9]+),' '$TMP/out'"
summary
