#!/bin/sh
# Run every test program (build/tests/test_*) and shell test (tests/test_*.sh),
# add up their "N passed, N failed" lines and end with the total.
# Usage: tests/run.sh BUILD_DIR [name-filter]
BUILD=${1:-build}
FILTER=${2:-}
export VCM_BIN="$BUILD/vcm"
# Unset gradient buffers start as NaN in tests (tensor/graph.c): a backward kernel that
# adds into one without grad_accumulate then fails loudly instead of reading zeros.
export VCM_POISON_GRADS=1
export VCM_BUILD="$BUILD"
passed=0; failed=0; broken=""
log=$(mktemp)
for t in "$BUILD"/tests/test_* tests/test_*.sh; do
    [ -e "$t" ] || continue
    case "$t" in *.d) continue ;; esac
    [ -n "$FILTER" ] && case "$t" in *"$FILTER"*) ;; *) continue ;; esac
    echo "== $t"
    start=$(date +%s)
    case "$t" in
        *.sh) sh "$t" >"$log" 2>&1; rc=$? ;;
        *) "$t" >"$log" 2>&1; rc=$? ;;
    esac
    cat "$log"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
    if [ -z "$line" ]; then
        broken="$broken $t(rc=$rc)"; failed=$((failed + 1))
    else
        p=$(echo "$line" | sed -E 's/^([0-9]+) passed, ([0-9]+) failed.*/\1/')
        f=$(echo "$line" | sed -E 's/^([0-9]+) passed, ([0-9]+) failed.*/\2/')
        passed=$((passed + p)); failed=$((failed + f))
        if [ "$rc" != 0 ] && [ "$f" = 0 ]; then broken="$broken $t(rc=$rc)"; failed=$((failed + 1)); fi
    fi
    echo "   ($(( $(date +%s) - start )) s)"
done
rm -f "$log"
[ -n "$broken" ] && echo "programs that crashed or printed no summary:$broken"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
