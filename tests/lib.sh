# Helpers for shell integration tests (tests/test_*.sh): source this file, call
# `check NAME CMD...` / `check_fails NAME EXPECTED_RC PATTERN CMD...` /
# `check_msg NAME EXPECTED_RC TEXT CMD...`, `out_has NAME TEXT`, end with `summary`.
VCM=${VCM_BIN:-build/vcm}
T_PASSED=0; T_FAILED=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

ok()   { T_PASSED=$((T_PASSED + 1)); echo "ok   $1"; }
fail() { T_FAILED=$((T_FAILED + 1)); echo "FAIL $1"; shift; [ $# -gt 0 ] && echo "  $*"; }

# check NAME CMD...: the command exits 0.
check() {
    name=$1; shift
    if "$@" >"$TMP/out" 2>"$TMP/err"; then ok "$name"; else fail "$name" "exit $?: $(head -c 600 "$TMP/err")"; fi
}

# check_fails NAME RC PATTERN CMD...: exits with RC and stderr matches PATTERN (grep -E).
check_fails() {
    name=$1; rc=$2; pat=$3; shift 3
    "$@" >"$TMP/out" 2>"$TMP/err"; got=$?
    if [ "$got" != "$rc" ]; then fail "$name" "exit $got, wanted $rc: $(head -c 600 "$TMP/err")"
    elif ! grep -Eq -- "$pat" "$TMP/err"; then fail "$name" "stderr lacks /$pat/: $(head -c 600 "$TMP/err")"
    else ok "$name"; fi
}

# check_msg NAME RC TEXT CMD...: exits with RC and stderr contains TEXT (fixed string).
check_msg() {
    name=$1; rc=$2; text=$3; shift 3
    "$@" >"$TMP/out" 2>"$TMP/err"; got=$?
    if [ "$got" != "$rc" ]; then fail "$name" "exit $got, wanted $rc: $(head -c 600 "$TMP/err")"
    elif ! grep -Fq -- "$text" "$TMP/err"; then fail "$name" "stderr lacks \"$text\": $(head -c 600 "$TMP/err")"
    else ok "$name"; fi
}

# out_has NAME TEXT: the last command's stdout contains TEXT.
out_has() {
    if grep -Fq -- "$2" "$TMP/out"; then ok "$1"; else fail "$1" "stdout lacks $2: $(head -c 600 "$TMP/out")"; fi
}

# assert NAME CONDITION-CMD...: any command used as a predicate.
assert() {
    name=$1; shift
    if "$@"; then ok "$name"; else fail "$name" "assertion failed: $*"; fi
}

summary() { echo "$T_PASSED passed, $T_FAILED failed"; [ "$T_FAILED" = 0 ]; }
