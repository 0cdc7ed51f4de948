#!/bin/sh
# vcm synth on the command line: --help, bad flags (exit 2 with a message), a small
# world (exit 0, one JSON line on stdout, the six outputs), a contact sheet.
. tests/lib.sh

check "synth --help" $VCM synth --help
grep -q -- "--images" "$TMP/out" && ok "help lists --images" || fail "help lists --images"
check_fails "synth without --out" 2 "--out is required" $VCM synth --images 3
check_fails "synth --images zero" 2 "--images" $VCM synth --out "$TMP/w" --images 0
check_fails "synth --images not a number" 2 "--images wants a number" $VCM synth --out "$TMP/w" --images ten
check_fails "synth --fault-rate 1.5" 2 "fault-rate must be in" $VCM synth --out "$TMP/w" --images 3 --fault-rate 1.5
check_fails "synth --seed -1" 2 "--seed wants an unsigned integer" $VCM synth --out "$TMP/w" --seed -1
check_fails "synth --per-image 0" 2 "per-image must be in" $VCM synth --out "$TMP/w" --images 3 --per-image 0
check_fails "synth unknown flag" 2 "unknown flag" $VCM synth --out "$TMP/w" --colour red
check_fails "synth unwritable dir" 1 "vcm synth: " $VCM synth --out /proc/vcm-no/w --images 3
[ ! -e "$TMP/w" ] && ok "bad flags write nothing" || fail "bad flags write nothing"

check "synth 30 images" $VCM synth --out "$TMP/w" --images 30 --seed 4 --quiet
[ "$(wc -l <"$TMP/out")" = 1 ] && grep -q '"records": 144' "$TMP/out" && ok "stats line on stdout" \
    || fail "stats line on stdout" "$(cat "$TMP/out")"
for f in regions.jsonl corpus.jsonl annotations.jsonl mc_val.jsonl mc_test.jsonl open_val.jsonl open_test.jsonl; do
    [ -s "$TMP/w/$f" ] && ok "wrote $f" || fail "wrote $f"
done
[ "$(ls "$TMP/w/images" | grep -c '\.png$')" = 30 ] && ok "30 PNGs" || fail "30 PNGs"
[ -z "$(find "$TMP/w" -name '*.tmp')" ] && ok "no .tmp left" || fail "no .tmp left"
sum1=$(cat "$TMP/w"/*.jsonl "$TMP/w"/images/*.png | cksum)
$VCM synth --out "$TMP/w2" --images 30 --seed 4 --quiet --threads 1 >/dev/null 2>&1
sum2=$(cat "$TMP/w2"/*.jsonl "$TMP/w2"/images/*.png | cksum)
[ "$sum1" = "$sum2" ] && ok "same seed, same bytes (2 threads vs 1)" || fail "same seed, same bytes"

check "synth --contact-sheet" $VCM synth --contact-sheet "$TMP/sheet.png" --sheet-images 2
[ -s "$TMP/sheet.png" ] && ok "contact sheet written" || fail "contact sheet written"
summary
