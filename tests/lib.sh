# Helpers for shell integration tests (tests/test_*.sh): source this file, call
# `check NAME CMD...` / `check_fails NAME EXPECTED_RC PATTERN CMD...` /
# `check_msg NAME EXPECTED_RC TEXT CMD...`, `out_has NAME TEXT`, end with `summary`.
VCM=${VCM_BIN:-build/vcm}
T_PASSED=0; T_FAILED=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

ok()   { T_PASSED=$((T_PASSED + 1)); echo "ok   $1"; }
fail() { T_FAILED=$((T_FAILED + 1)); echo "FAIL $1"; shift; [ $# -gt 0 ] && echo "  $*"; }

# The helpers' own variables start with _: a caller's $name etc. stay as they were.

# check NAME CMD...: the command exits 0.
check() {
    _n=$1; shift
    if "$@" >"$TMP/out" 2>"$TMP/err"; then ok "$_n"; else fail "$_n" "exit $?: $(head -c 600 "$TMP/err")"; fi
}

# expect_exit NAME RC GREP_MODE PATTERN CMD...: exits with RC and stderr matches PATTERN
# (GREP_MODE -E: a regex, -F: a fixed string). check_fails and check_msg are its two uses.
expect_exit() {
    _n=$1; _rc=$2; _mode=$3; _pat=$4; shift 4
    "$@" >"$TMP/out" 2>"$TMP/err"; _got=$?
    if [ "$_got" != "$_rc" ]; then fail "$_n" "exit $_got, wanted $_rc: $(head -c 600 "$TMP/err")"
    elif ! grep -q "$_mode" -- "$_pat" "$TMP/err"; then fail "$_n" "stderr lacks \"$_pat\": $(head -c 600 "$TMP/err")"
    else ok "$_n"; fi
}
# check_fails NAME RC PATTERN CMD...: exits with RC and stderr matches PATTERN (grep -E).
check_fails() { _a=$1; _b=$2; _c=$3; shift 3; expect_exit "$_a" "$_b" -E "$_c" "$@"; }
# check_msg NAME RC TEXT CMD...: exits with RC and stderr contains TEXT (fixed string).
check_msg() { _a=$1; _b=$2; _c=$3; shift 3; expect_exit "$_a" "$_b" -F "$_c" "$@"; }

# out_has NAME TEXT: the last command's stdout contains TEXT.
out_has() {
    if grep -Fq -- "$2" "$TMP/out"; then ok "$1"; else fail "$1" "stdout lacks $2: $(head -c 600 "$TMP/out")"; fi
}

# assert NAME CONDITION-CMD...: any command used as a predicate.
assert() {
    _n=$1; shift
    if "$@"; then ok "$_n"; else fail "$_n" "assertion failed: $*"; fi
}

summary() { echo "$T_PASSED passed, $T_FAILED failed"; [ "$T_FAILED" = 0 ]; }
