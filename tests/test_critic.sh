#!/bin/sh
# vcm critic: train, score, filter and eval end to end on a tiny synthetic world; the
# scored corpus keeps every byte but "prediction"; the filter's threshold edge; bad
# input names file and line; a student checkpoint is not taken for a critic.
. tests/lib.sh
W=$TMP/world
$VCM synth --out "$W" --images 30 --seed 3 --quiet >/dev/null 2>&1
$VCM tokenizer train --corpus "$W/corpus.jsonl" --vocab 600 --out "$TMP/tok.tok" >/dev/null 2>&1
ctrain() {  # ctrain OUT [flags...]
    out=$1; shift
    $VCM critic train --annotations "$W/annotations.jsonl" --regions "$W/regions.jsonl" --images-root "$W" \
        --tokenizer "$TMP/tok.tok" --out "$out" --batch 2 --warmup 2 --seed 5 --threads 2 --quiet "$@"
}
# scoring costs a forward pass a record: keep it small, 24 records with a wrong_region
# one among them (the per-kind report is checked for it below)
{ head -23 "$W/corpus.jsonl"; tail -n +24 "$W/corpus.jsonl" | grep -m1 '"fault": "wrong_region"'; } > "$TMP/corpus.jsonl"
score() { $VCM critic score --regions "$W/regions.jsonl" --images-root "$W" --threads 2 --quiet "$@"; }

check "critic train: a few steps write a checkpoint" ctrain "$TMP/c.vcm" --steps 3 --val-frac 0.3
assert "its JSON line has the held-out figures" sh -c "grep -q '\"steps\":3' '$TMP/out' && grep -Eq '\"val_auc\":(null|[0-9.]+),\"val_auc_fault\":(null|[0-9.]+),\"val_with_fault\":[1-9]' '$TMP/out' && grep -q '\"by_kind\":{\"good\"' '$TMP/out'"
check "the same seed gives the same checkpoint" ctrain "$TMP/c2.vcm" --steps 3 --val-frac 0.3
assert "byte for byte" cmp -s "$TMP/c.vcm" "$TMP/c2.vcm"
check "a student's trunk can start the critic (--init)" sh -c "$VCM train --corpus '$W/corpus.jsonl' --regions '$W/regions.jsonl' --images-root '$W' --tokenizer '$TMP/tok.tok' --out '$TMP/s.vcm' --steps 1 --batch 2 --threads 2 --quiet >/dev/null && $VCM critic train --annotations '$W/annotations.jsonl' --regions '$W/regions.jsonl' --images-root '$W' --init '$TMP/s.vcm' --out '$TMP/ci.vcm' --steps 1 --batch 2 --val-frac 0 --threads 2 --quiet"
assert "and says so" grep -q "\"init\":\"$TMP/s.vcm\"" "$TMP/out"

# score: every record back, byte for byte, with one "prediction" in [0, 1] added last
check "critic score writes the scored corpus" score --model "$TMP/c.vcm" --corpus "$TMP/corpus.jsonl" --out "$TMP/scored.jsonl"
assert "the summary line counts every record" grep -q "\"records\":24," "$TMP/out"
assert "every other field is unchanged, byte for byte" sh -c "sed -E 's/, \"prediction\": [0-9.]+\}\$/}/' '$TMP/scored.jsonl' | cmp -s - '$TMP/corpus.jsonl'"
assert "every prediction is a number in [0, 1]" sh -c "[ \$(grep -cE '\"prediction\": (0\.[0-9]+|1\.0+)\}\$' '$TMP/scored.jsonl') = 24 ]"
check "scoring to stdout" sh -c "$VCM critic score --model '$TMP/c.vcm' --corpus '$TMP/corpus.jsonl' --regions '$W/regions.jsonl' --images-root '$W' --threads 1 --quiet > '$TMP/scored1.jsonl'"
assert "gives the same bytes on 1 thread as on 2" cmp -s "$TMP/scored.jsonl" "$TMP/scored1.jsonl"
gzip -c "$TMP/corpus.jsonl" > "$TMP/corpus.jsonl.gz"
check "gzip in, gzip out" score --model "$TMP/c.vcm" --corpus "$TMP/corpus.jsonl.gz" --out "$TMP/scored.jsonl.gz"
assert "the same records" sh -c "gzip -dc '$TMP/scored.jsonl.gz' | cmp -s - '$TMP/scored.jsonl'"
# a prediction already there is replaced where it stands
sed -E '1,3s/^\{/{"prediction": 0.123456789, /' "$TMP/corpus.jsonl" > "$TMP/pre.jsonl"
check "an existing prediction is replaced" score --model "$TMP/c.vcm" --corpus "$TMP/pre.jsonl" --out "$TMP/pre_scored.jsonl"
assert "in place, once, the rest unchanged" sh -c "[ \$(grep -c '\"prediction\"' '$TMP/pre_scored.jsonl') = 24 ] && ! grep -q '0.123456789' '$TMP/pre_scored.jsonl' && head -3 '$TMP/pre_scored.jsonl' | sed -E 's/^\{\"prediction\": [0-9.]+, /{/' | cmp -s - '$TMP/corpus.jsonl' -n \$(head -3 '$TMP/corpus.jsonl' | wc -c)"
check "rescoring a scored corpus changes nothing" score --model "$TMP/c.vcm" --corpus "$TMP/scored.jsonl" --out "$TMP/rescored.jsonl"
assert "byte for byte" cmp -s "$TMP/scored.jsonl" "$TMP/rescored.jsonl"

# filter: the threshold edge (exactly 0.8 is kept)
printf '%s\n' '{"image": "a", "prediction": 0.79999}' '{"image": "b", "prediction": 0.8}' \
    '{"image": "c", "prediction": 0.80001}' '{"image": "d", "prediction": 8e-1}' > "$TMP/edge.jsonl"
check "filter at 0.8" $VCM critic filter --corpus "$TMP/edge.jsonl" --threshold 0.8 --out "$TMP/kept.jsonl"
assert "keeps 0.8, 0.80001 and 8e-1, not 0.79999" sh -c "[ \"\$(cut -c12 '$TMP/kept.jsonl' | tr -d '\n')\" = bcd ]"
assert "reports kept/total" grep -q '"kept":3,"total":4' "$TMP/out"
check "filter to stdout, default threshold 0.8" sh -c "$VCM critic filter --corpus '$TMP/edge.jsonl' > '$TMP/kept2.jsonl'"
assert "the same records" cmp -s "$TMP/kept.jsonl" "$TMP/kept2.jsonl"
check "filter a scored corpus, gzip out" $VCM critic filter --corpus "$TMP/scored.jsonl.gz" --threshold 0.5 --out "$TMP/f.jsonl.gz"
assert "kept lines are scored lines, unchanged" sh -c "gzip -dc '$TMP/f.jsonl.gz' | grep -vxFf '$TMP/scored.jsonl' | wc -l | grep -qx 0"

# eval against the hidden truth
check "critic eval" $VCM critic eval --corpus "$TMP/scored.jsonl" --threshold 0.5
assert "reports AUC, precision, recall per kind" sh -c "grep -Eq '\"auc\":[0-9.]+,\"precision\":(null|[0-9.]+),\"recall\":[0-9.]+' '$TMP/out' && grep -q '\"wrong_region\":{\"n\":' '$TMP/out'"

# bad input: exit 2 with file:line
printf '%s\n' '{"image": "a", "prediction": 0.9}' '{"image": "b", "prediction": "high"}' > "$TMP/badtype.jsonl"
check_fails "a prediction that is not a number" 2 "badtype.jsonl:2: \"prediction\" is not a number" $VCM critic filter --corpus "$TMP/badtype.jsonl"
printf '%s\n' '{"image": "a", "prediction": 0.9}' '{"image": "b", "prediction": 0.9}' '{"image": "c", "predic' > "$TMP/trunc.jsonl"
check_fails "a truncated line" 2 "trunc.jsonl:3(:[0-9]+)?:" $VCM critic filter --corpus "$TMP/trunc.jsonl" --out "$TMP/trunc_out.jsonl"
assert "leaves no output behind" sh -c "[ ! -e '$TMP/trunc_out.jsonl' ] && [ ! -e '$TMP/trunc_out.jsonl.tmp' ]"
printf '%s\n' '{"image": "a"}' > "$TMP/nopred.jsonl"
check_fails "a record without prediction" 2 "nopred.jsonl:1: no \"prediction\"" $VCM critic filter --corpus "$TMP/nopred.jsonl"
check_fails "a missing corpus" 2 "nothere.jsonl" $VCM critic filter --corpus "$TMP/nothere.jsonl"
check_fails "score: a missing corpus" 2 "nothere.jsonl" score --model "$TMP/c.vcm" --corpus "$TMP/nothere.jsonl"
head -c 300 "$W/corpus.jsonl" > "$TMP/trunc_corpus.jsonl"
check_fails "score: a truncated record" 2 "trunc_corpus.jsonl:1" score --model "$TMP/c.vcm" --corpus "$TMP/trunc_corpus.jsonl"
check_fails "train: records without votes" 2 "corpus.jsonl:1: no \"votes\"" $VCM critic train --annotations "$W/corpus.jsonl" --regions "$W/regions.jsonl" --images-root "$W" --tokenizer "$TMP/tok.tok" --out "$TMP/x.vcm" --steps 1
check_fails "a student checkpoint is not a critic" 2 "a student checkpoint, not a critic" score --model "$TMP/s.vcm" --corpus "$TMP/corpus.jsonl"
check_fails "a critic checkpoint is not a student" 2 "a critic checkpoint, not a student" $VCM eval --model "$TMP/c.vcm" --mc "$W/mc_test.jsonl" --regions "$W/regions.jsonl" --images-root "$W"
check_fails "an unknown subcommand" 2 "unknown subcommand" $VCM critic frobnicate
check_fails "a missing required flag" 2 "--out is required" $VCM critic train --annotations "$W/annotations.jsonl" --regions "$W/regions.jsonl" --tokenizer "$TMP/tok.tok"
for sub in train score filter eval; do
    check "critic $sub --help" $VCM critic $sub --help
done
summary
