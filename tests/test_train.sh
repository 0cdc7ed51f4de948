#!/bin/sh
# vcm train: a tiny run end to end, bit-exact resume, the CSV log, the NaN guard,
# bad flags. A 60-image world and 2-8 steps of a nano model keep it to seconds.
. tests/lib.sh
W=$TMP/world
$VCM synth --out "$W" --images 60 --seed 3 --quiet >/dev/null 2>&1
$VCM tokenizer train --corpus "$W/corpus.jsonl" --vocab 600 --out "$TMP/tok.tok" >/dev/null 2>&1
train() {  # train OUT [flags...]
    out=$1; shift
    $VCM train --corpus "$W/corpus.jsonl" --regions "$W/regions.jsonl" --images-root "$W" \
        --tokenizer "$TMP/tok.tok" --out "$out" --batch 4 --warmup 2 --seed 5 --threads 2 "$@"
}

check "a short run trains and writes a checkpoint" train "$TMP/a.vcm" --steps 6 --log "$TMP/a.csv" --val-corpus "$W/corpus.jsonl" --val-every 3 --val-batches 1
assert "the summary line is JSON with the steps" grep -q '"steps":6' "$TMP/out"
assert "the CSV has a header and one row a step" sh -c "head -1 '$TMP/a.csv' | grep -q '^step,loss,lr,grad_norm,samples_per_s,val_loss' && [ \$(wc -l < '$TMP/a.csv') = 7 ]"
assert "the validation loss is logged at step 3" sh -c "sed -n 4p '$TMP/a.csv' | cut -d, -f6 | grep -qE '^[0-9]'"
assert "the loss goes down" sh -c "awk -F, 'NR==2{a=\$2} NR==7{b=\$2} END{exit !(b<a)}' '$TMP/a.csv'"

# Resume: stop after 3 steps (checkpoint every 3), continue to 6; the losses and the
# final weights must equal the uninterrupted run's bit for bit.
check "a run stopped at step 3" train "$TMP/b.vcm" --steps 6 --ckpt-every 3 --stop-after 3 --log "$TMP/b.csv"
check "resumed to step 6" train "$TMP/b.vcm" --steps 6 --ckpt-every 3 --resume --log "$TMP/b.csv"
check "the uninterrupted run, same options" train "$TMP/c.vcm" --steps 6 --ckpt-every 3 --log "$TMP/c.csv"
assert "resumed losses equal the uninterrupted ones" sh -c "cut -d, -f1-4 '$TMP/b.csv' > '$TMP/b.cut'; cut -d, -f1-4 '$TMP/c.csv' > '$TMP/c.cut'; cmp -s '$TMP/b.cut' '$TMP/c.cut'"
assert "resumed checkpoint equals the uninterrupted one byte for byte" cmp -s "$TMP/b.vcm" "$TMP/c.vcm"
check_fails "resume with a different batch is refused" 2 "cannot resume: --batch" train "$TMP/b.vcm" --steps 8 --resume --batch 2

# Thread count does not change the numbers.
check "the same run on one thread" $VCM train --corpus "$W/corpus.jsonl" --regions "$W/regions.jsonl" --images-root "$W" \
    --tokenizer "$TMP/tok.tok" --out "$TMP/d.vcm" --batch 4 --warmup 2 --seed 5 --threads 1 --steps 6 --ckpt-every 3 --log "$TMP/d.csv"
assert "1 and 2 threads give the same checkpoint" cmp -s "$TMP/c.vcm" "$TMP/d.vcm"

# NaN guard: an absurd learning rate blows the loss up; the run stops with a message
# naming the last good checkpoint, which still loads (resume from it works).
check_fails "a non-finite loss stops the run" 1 "last good checkpoint is .*e.vcm \(step [0-9]+\)|not finite" train "$TMP/e.vcm" --steps 30 --ckpt-every 1 --lr 1e30 --clip 1e30 --warmup 1
assert "the last good checkpoint is intact" sh -c "$VCM export --model '$TMP/e.vcm' --out '$TMP/e.st' >/dev/null 2>&1"
# An update that overflows the weights (finite loss and gradient before it: the guard
# cannot see it) is never saved: no checkpoint called good holds NaN or inf.
check_msg "an overflowing update is not saved" 1 "the weights are not finite after the update; stopped before any checkpoint was written" \
    train "$TMP/f.vcm" --steps 3 --ckpt-every 1 --lr 1e39 --warmup 1
assert "and no checkpoint is left" sh -c "[ ! -e '$TMP/f.vcm' ]"

# An --out in a directory that does not exist is refused before any step
check_msg "an unwritable --out is found before training" 1 "/nonexistent/dir/x.vcm.tmp: cannot create" \
    train /nonexistent/dir/x.vcm --steps 1000 --quiet

# A log that cannot be written is a failed run (the rows were lost), not exit 0
if [ -w /dev/full ]; then
    check_msg "a log on a full device fails the run" 1 "/dev/full: writing the log failed" \
        train "$TMP/g.vcm" --steps 2 --log /dev/full --quiet
fi

# A gzip corpus trains too (shuffled span by span), and resumes bit-exactly.
gzip -c "$W/corpus.jsonl" > "$TMP/corpus.jsonl.gz"
gz() { out=$1; shift; $VCM train --corpus "$TMP/corpus.jsonl.gz" --regions "$W/regions.jsonl" --images-root "$W" \
    --tokenizer "$TMP/tok.tok" --out "$out" --batch 4 --warmup 2 --seed 5 --steps 4 --ckpt-every 2 --quiet "$@"; }
check "a .jsonl.gz corpus trains" gz "$TMP/z1.vcm"
check "a .jsonl.gz run stopped at step 2" gz "$TMP/z2.vcm" --stop-after 2
check "and resumed" gz "$TMP/z2.vcm" --resume
assert "gzip resume equals the uninterrupted run" cmp -s "$TMP/z1.vcm" "$TMP/z2.vcm"

# Bad usage and bad input.
check_fails "missing --corpus" 2 "--corpus is required" $VCM train --regions x --tokenizer y --out z
# a checkpoint path with a quote and a backslash stays one JSON string in the summary
mkdir -p "$TMP/q\"x\\y"
check "train to an odd path" train "$TMP/q\"x\\y/m.vcm" --steps 1 --quiet
assert "the summary's checkpoint is that path" /usr/bin/python3 -c "import json,sys; sys.exit(json.load(open(sys.argv[1]))['checkpoint'] != sys.argv[2])" "$TMP/out" "$TMP/q\"x\\y/m.vcm"
check_fails "unknown config" 2 "unknown model config" train "$TMP/f.vcm" --steps 1 --config huge
check_fails "bad region input" 2 "expected roi, draw or none" train "$TMP/f.vcm" --steps 1 --region-input boxes
check_fails "missing corpus file" 2 "nope.jsonl" $VCM train --corpus "$TMP/nope.jsonl" --regions "$W/regions.jsonl" --tokenizer "$TMP/tok.tok" --out "$TMP/f.vcm"
check "draw and none region inputs train" sh -c "$VCM train --corpus '$W/corpus.jsonl' --regions '$W/regions.jsonl' --images-root '$W' --tokenizer '$TMP/tok.tok' --out '$TMP/g.vcm' --batch 2 --steps 1 --region-input draw --quiet && $VCM train --corpus '$W/corpus.jsonl' --regions '$W/regions.jsonl' --images-root '$W' --tokenizer '$TMP/tok.tok' --out '$TMP/h.vcm' --batch 2 --steps 1 --region-input none --quiet"
check "--help" $VCM train --help
summary
