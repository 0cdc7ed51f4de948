#!/bin/sh
# vcm corpus validate | stats | index | get over the hand-written LSKD-format fixtures
# (tests/data/, photographs from Debian's python3-skimage) and every bad-input case of
# issue 3, each without and with --skip-bad, with its exact message.
. tests/lib.sh
D=tests/data
IMG=${VCM_SKIMAGE_DATA:-/usr/lib/python3/dist-packages/skimage/data}

# ---- help and usage
check "corpus --help" $VCM corpus --help
out_has "corpus --help lists validate" "validate"
for sub in validate stats index get; do
    check "corpus $sub --help" $VCM corpus $sub --help
    out_has "corpus $sub --help usage" "usage: vcm corpus $sub"
done
check_msg "validate needs --regions for records without references" 2 \
    "lskd_corpus.jsonl:1: image \"astronaut.png\": the record has no \"references\" and no region mapping was given (--regions)" \
    $VCM corpus validate $D/lskd_corpus.jsonl
check_msg "validate needs a file" 2 "expected one FILE" $VCM corpus validate --regions $D/lskd_regions.jsonl
check_msg "no subcommand" 2 "usage: vcm corpus" $VCM corpus
check_msg "unknown subcommand" 2 "unknown subcommand 'frobnicate'" $VCM corpus frobnicate
check_msg "missing corpus file" 2 "$TMP/nope.jsonl: cannot open" \
    $VCM corpus validate $TMP/nope.jsonl --regions $D/lskd_regions.jsonl
check_msg "missing mapping file" 2 "$TMP/nope.jsonl: cannot open" \
    $VCM corpus validate $D/lskd_corpus.jsonl --regions $TMP/nope.jsonl

# ---- the good fixtures: corpus, annotations, multiple choice; plain and gzip
check "validate lskd corpus" $VCM corpus validate $D/lskd_corpus.jsonl --regions $D/lskd_regions.jsonl --images-root "$IMG"
out_has "lskd corpus: 8 ok" '"records":8,"ok":8,"bad":0,"kinds":{"corpus":8,"annotation":0,"mc":0}'
out_has "lskd corpus: 4 images decoded" '"images_checked":4'
check "validate lskd annotations" $VCM corpus validate $D/lskd_annotations.jsonl --regions $D/lskd_regions.jsonl --images-root "$IMG"
out_has "annotations counted" '"kinds":{"corpus":0,"annotation":2,"mc":0}'
check "validate lskd mc" $VCM corpus validate $D/lskd_mc.jsonl --regions $D/lskd_regions.jsonl --images-root "$IMG"
out_has "mc counted" '"kinds":{"corpus":0,"annotation":0,"mc":2}'
# more choices than vcm eval scores (64) are refused by validate too, not only by eval
/usr/bin/python3 -c "
import json, sys
it = json.loads(open(sys.argv[1]).readline())
it['choices'] = (it['choices'] * 65)[:65]
print(json.dumps(it))" $D/lskd_mc.jsonl >"$TMP/mc65.jsonl"
check_msg "validate refuses 65 choices" 2 "mc65.jsonl:1: field \"choices\": 65 choices (at most 64)" \
    $VCM corpus validate "$TMP/mc65.jsonl" --regions $D/lskd_regions.jsonl --images-root "$IMG"

gzip -c $D/lskd_corpus.jsonl >"$TMP/lskd.jsonl.gz"
gzip -c $D/lskd_regions.jsonl >"$TMP/regions.jsonl.gz"
$VCM corpus validate $D/lskd_corpus.jsonl --regions $D/lskd_regions.jsonl >"$TMP/plain.json" 2>/dev/null
$VCM corpus validate "$TMP/lskd.jsonl.gz" --regions "$TMP/regions.jsonl.gz" >"$TMP/gz.json" 2>/dev/null
assert "gzip and plain validate alike" sh -c "sed 's/\"file\":\"[^\"]*\"//g' '$TMP/plain.json' >'$TMP/a'; \
    sed 's/\"file\":\"[^\"]*\"//g' '$TMP/gz.json' >'$TMP/b'; [ -s '$TMP/a' ] && cmp -s '$TMP/a' '$TMP/b'"
$VCM corpus stats $D/lskd_corpus.jsonl | sed 's/"file":"[^"]*"//' >"$TMP/s1"
$VCM corpus stats "$TMP/lskd.jsonl.gz" | sed 's/"file":"[^"]*"//' >"$TMP/s2"
assert "gzip and plain stats alike" sh -c "[ -s '$TMP/s1' ] && cmp -s '$TMP/s1' '$TMP/s2'"

# ---- stats
check "stats lskd corpus" $VCM corpus stats $D/lskd_corpus.jsonl
out_has "stats records/images" '"records":8,"kinds":{"corpus":8,"annotation":0,"mc":0},"images":4'
out_has "stats sources" '"sources":{"chatgpt_region_any_v4_people":2,"chatgpt_region_any_v4_animals":2,"chatgpt_region_any_v4_objects":4}'
out_has "stats splits" '"splits":{"train":5,"val":1,"test":2}'
out_has "stats words" '"question":{"records":8,"mean_words":7.875,"min_words":6,"max_words":10}'
out_has "stats mentions" '"total":33,"per_record_mean":4.125,"per_record_max":6,"multi_id":3'
out_has "stats region ids" '"region_ids":{"0":16,"1":10,"2":8,"3":3}'
out_has "stats prediction quantiles" '"prediction":{"n":4,"min":0.42,"p10":0.525,"p25":0.6825,"p50":0.825,"p75":0.8875,"p90":0.901,"max":0.91}'
out_has "stats synth faults" '"synth_faults":{"none":1,"generic_filler":1}'
check "stats annotations" $VCM corpus stats $D/lskd_annotations.jsonl
out_has "stats votes" '"votes":{"total":6,"accept":3}'
check "stats mc" $VCM corpus stats $D/lskd_mc.jsonl
out_has "stats mc items" '"mc":{"items":2,"distractor_other_region":1}'
check_msg "stats stops at a bad record" 2 "wrong_type.jsonl:3: field \"question\"" $VCM corpus stats $D/bad/wrong_type.jsonl
check "stats --skip-bad" $VCM corpus stats $D/bad/wrong_type.jsonl --skip-bad
out_has "stats --skip-bad counts" '"records":3,"skipped_bad":1'

# ---- random access (index) equals sequential, plain and gzip
grep -v '^[[:space:]]*$' $D/lskd_corpus.jsonl >"$TMP/seq"
check "get in reverse (plain)" sh -c "$VCM corpus get $D/lskd_corpus.jsonl 7 6 5 4 3 2 1 0 >'$TMP/rev'"
assert "random access = sequential (plain)" sh -c "tac '$TMP/rev' | cmp -s - '$TMP/seq'"
check "get shuffled (gzip)" sh -c "$VCM corpus get '$TMP/lskd.jsonl.gz' 3 0 7 1 6 2 5 4 >'$TMP/shuf'"
assert "random access = sequential (gzip)" sh -c "for i in 4 1 8 2 7 3 6 5; do sed -n \${i}p '$TMP/seq'; done | cmp -s - '$TMP/shuf'"
check_msg "get out of range" 2 "record \"8\" is not in 0..7" $VCM corpus get $D/lskd_corpus.jsonl 8
check "index gzip" $VCM corpus index "$TMP/lskd.jsonl.gz" --sample 20
out_has "index gzip records" '"gzip":true,"records":8'

# ---- output that cannot be written is a failure, not a silent exit 0 (stdout on a full device)
if [ -w /dev/full ]; then
    check_msg "stats to a full device fails" 1 "writing the output failed" sh -c "$VCM corpus stats $D/lskd_corpus.jsonl >/dev/full"
    check_msg "--help to a full device fails" 1 "writing the output failed" sh -c "$VCM corpus stats --help >/dev/full"
fi

# ---- a cut gzip is an error, never a shorter corpus: cut inside the stream, and with
# only its trailer (CRC, length) missing
sz=$(wc -c <"$TMP/lskd.jsonl.gz")
head -c $((sz / 2)) "$TMP/lskd.jsonl.gz" >"$TMP/cut.jsonl.gz"
head -c $((sz - 4)) "$TMP/lskd.jsonl.gz" >"$TMP/notrailer.jsonl.gz"
for f in cut notrailer; do
    check_msg "validate refuses a $f gzip" 2 "$f.jsonl.gz:" $VCM corpus validate "$TMP/$f.jsonl.gz" --regions $D/lskd_regions.jsonl
    check_msg "stats refuses a $f gzip" 2 "the gzip stream ends early" $VCM corpus stats "$TMP/$f.jsonl.gz"
done

# ---- bad input: each case stops with FILE:LINE[:COL]: problem (exit 2), or is counted
M=$D/bad/regions_images.jsonl
bad_case() { # NAME REASON MESSAGE [MAP]
    map=${4:-$M}
    check_msg "$1: exit 2 + message" 2 "$3" $VCM corpus validate $D/bad/$1.jsonl --regions $map --images-root "$IMG"
    assert "$1: nothing on stdout" test ! -s "$TMP/out"
    check "$1 --skip-bad" $VCM corpus validate $D/bad/$1.jsonl --regions $map --images-root "$IMG" --skip-bad
    out_has "$1 --skip-bad: counted as $2" "\"records\":4,\"ok\":3,\"bad\":1,"
    out_has "$1 --skip-bad: reason $2" "\"bad_by_reason\":{\"$2\":1}"
}
bad_case json_syntax json_syntax "tests/data/bad/json_syntax.jsonl:3:69: ']' expected near '\"open\"'"
bad_case wrong_type wrong_type "tests/data/bad/wrong_type.jsonl:3: field \"question\": expected a list of words, got a string"
bad_case missing_region missing_region \
    "tests/data/bad/missing_region.jsonl:3: field \"region\": region id 9 is not in the mapping of image \"chelsea.png\" (tests/data/bad/regions_images.jsonl:2)"
bad_case empty_question empty_question "tests/data/bad/empty_question.jsonl:3: field \"question\": empty (no words)"
bad_case missing_image missing_image \
    "tests/data/bad/regions_images.jsonl:5: image \"no_such_image.png\": cannot open $IMG/no_such_image.png (No such file or directory) (used by tests/data/bad/missing_image.jsonl:3)"
bad_case truncated_image bad_image \
    "tests/data/bad/regions_images.jsonl:6: image \"truncated.jpg\": cannot decode: $IMG/truncated.jpg: "
bad_case box_outside box_outside_image \
    "tests/data/bad/regions_images.jsonl:7: image \"camera.png\": region \"0\": box [100, 100, 600, 300] is outside the image (512x512) (used by tests/data/bad/box_outside.jsonl:3)"
bad_case box_x1_lt_x0 bad_box "tests/data/bad/regions_x1_lt_x0.jsonl:5: image \"horse.png\" region \"0\": box 0: x1 (90) < x0 (250)" \
    $D/bad/regions_x1_lt_x0.jsonl
out_has "box_x1_lt_x0 --skip-bad: the mapping counts it too" '"mapping":{"file":"tests/data/bad/regions_x1_lt_x0.jsonl","images":5,"skipped_lines":0,"bad_by_reason":{"bad_box":1}}'

# without --images-root the image cases are not looked at
check "no --images-root: images not opened" $VCM corpus validate $D/bad/missing_image.jsonl --regions $M
out_has "no --images-root: 4 ok" '"records":4,"ok":4,"bad":0'

# a mapping line that is not JSON, with --skip-bad: skipped and counted
{ head -2 $D/lskd_regions.jsonl; echo '{"image": "x.png", "region_locations": {"0": {"boxes": [[1, 2, 3, 4]]}'; \
  tail -2 $D/lskd_regions.jsonl; } >"$TMP/regions_syntax.jsonl"
check_msg "mapping syntax error" 2 "$TMP/regions_syntax.jsonl:3:70: '}' expected near end of file" \
    $VCM corpus validate $D/lskd_corpus.jsonl --regions "$TMP/regions_syntax.jsonl"
check "mapping syntax error --skip-bad" $VCM corpus validate $D/lskd_corpus.jsonl --regions "$TMP/regions_syntax.jsonl" --skip-bad
out_has "mapping line skipped and counted" '"images":4,"skipped_lines":1,"bad_by_reason":{"json_syntax":1}'

summary
