#!/bin/sh
# Run every libFuzzer harness of BUILD (build-fuzz) for SECONDS each on a fresh copy of
# its seeds (tests/fuzz/seeds/<name>/), so the inputs it finds never land in git.
# Per harness: executions, and whether it crashed (artifacts in BUILD/findings/<name>/,
# the log in BUILD/run/<name>.log). Exit 1 when any harness found something.
# Usage: sh tests/fuzz/run.sh [BUILD [SECONDS [HARNESS...]]]
BUILD=${1:-build-fuzz}
SECONDS_EACH=${2:-60}
[ $# -gt 2 ] && shift 2 || set --
SEEDS=$(dirname "$0")/seeds
names=$*
[ -n "$names" ] || names=$(cd "$BUILD" && ls fuzz_* 2>/dev/null | sed 's/^fuzz_//')
[ -n "$names" ] || { echo "fuzz: no harness in $BUILD (make fuzz builds them)" >&2; exit 2; }

RUN=$BUILD/run
mkdir -p "$RUN"
found=0
printf '%-12s %12s  %s\n' harness executions result
for n in $names; do
    bin=$BUILD/fuzz_$n
    [ -x "$bin" ] || { echo "fuzz: $bin missing" >&2; found=1; continue; }
    corpus=$RUN/$n.corpus
    art=$BUILD/findings/$n
    rm -rf "$corpus" "$RUN/tmp-$n"
    mkdir -p "$corpus" "$art" "$RUN/tmp-$n"
    [ -d "$SEEDS/$n" ] && cp "$SEEDS/$n"/* "$corpus"/ 2>/dev/null
    log=$RUN/$n.log
    # -timeout: a unit this slow is a finding too (an input that makes a reader hang)
    TMPDIR=$RUN/tmp-$n nice "$bin" -max_total_time="$SECONDS_EACH" -print_final_stats=1 -timeout=60 \
        -artifact_prefix="$art/" "$corpus" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    # UBSan reports and continues: a "runtime error" in the log is a finding too
    grep -q "runtime error" "$log" && [ $rc -eq 0 ] && rc=99
    if [ $rc -eq 0 ]; then
        result="ok"
    else
        found=1
        what=$(grep -m1 -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | cut -c1-160)
        result="FOUND (exit $rc): ${what:-see $log}; input: $art/$(ls -t "$art" | head -n 1)"
    fi
    printf '%-12s %12s  %s\n' "$n" "${execs:-?}" "$result"
    rm -rf "$RUN/tmp-$n"
done
[ $found -eq 0 ] && echo "fuzz: no findings" || echo "fuzz: findings above (logs in $RUN, inputs in $BUILD/findings)"
exit $found
