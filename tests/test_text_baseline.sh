#!/bin/sh
# The text-only baseline end to end: vcm train --region-input text on a tiny synthetic
# world, without any image (the same checkpoint bytes with and without the images),
# vcm eval (kv = batch, perplexity), vcm generate / score with --description, and the
# errors: a missing description (FILE:LINE), a text config with another region input.
. tests/lib.sh
W=$TMP/world
$VCM synth --out "$W" --images 60 --seed 4 --quiet >/dev/null 2>&1
$VCM tokenizer train --corpus "$W/corpus.jsonl" --vocab 600 --out "$TMP/tok.tok" >/dev/null 2>&1
train() {  # train OUT ROOT [flags...]
    out=$1; root=$2; shift 2
    $VCM train --corpus "$W/corpus.jsonl" --regions "$W/regions.jsonl" --images-root "$root" \
        --tokenizer "$TMP/tok.tok" --out "$out" --batch 4 --warmup 2 --seed 5 --threads 1 --steps 6 \
        --lr 3e-3 --quiet "$@"
}

check "text mode trains" train "$TMP/a.vcm" "$W" --region-input text --log "$TMP/a.csv"
assert "the loss goes down" sh -c "awk -F, 'NR==2{a=\$2} NR==7{b=\$2} END{exit !(b<a)}' '$TMP/a.csv'"
assert "the checkpoint is the nano-text config: region input text, a 96-token window" \
    sh -c "head -c 4096 '$TMP/a.vcm' | tr -d '\\000' | grep -q '\"name\":\"nano-text\".*\"max_text\":96,\"region_input\":\"text\"'"
assert "the checkpoint holds no ViT" sh -c "! head -c 65536 '$TMP/a.vcm' | grep -aq 'vit.patch_embed'"
# No pixel is read: the same run with the images gone gives the same bytes.
check "text mode trains without any image" train "$TMP/b.vcm" "$TMP/no-images" --region-input text
assert "with and without images: the same checkpoint, byte for byte" cmp -s "$TMP/a.vcm" "$TMP/b.vcm"
check_fails "roi mode does need the images" 2 "no-images" train "$TMP/c.vcm" "$TMP/no-images"
check_fails "a text config with another region input is refused" 2 "nano-text is the text-only baseline" \
    train "$TMP/c.vcm" "$W" --config nano-text

check "eval: multiple choice with descriptions, no image" \
    $VCM eval --model "$TMP/a.vcm" --mc "$W/mc_test.jsonl" --regions "$W/regions.jsonl" --images-root "$TMP/no-images" \
    --quiet --threads 1 --corpus "$W/corpus.jsonl" --predictions "$TMP/kv.jsonl"
cp "$TMP/out" "$TMP/eval_kv.json"
assert "eval reports accuracy, other-region accuracy and perplexity" \
    grep -q '"accuracy":[0-9.]*,"n_other_region":[1-9][0-9]*,"accuracy_other_region":[0-9.]*.*"perplexity":[0-9]' "$TMP/eval_kv.json"
check "eval --method batch" $VCM eval --model "$TMP/a.vcm" --mc "$W/mc_test.jsonl" --regions "$W/regions.jsonl" \
    --method batch --quiet --threads 1 --predictions "$TMP/batch.jsonl"
assert "kv and batch pick the same choices" sh -c "cut -d, -f1-4 '$TMP/kv.jsonl' > '$TMP/kv.cut'; cut -d, -f1-4 '$TMP/batch.jsonl' > '$TMP/batch.cut'; cmp -s '$TMP/kv.cut' '$TMP/batch.cut'"

check "generate with descriptions" $VCM generate --model "$TMP/a.vcm" --description "a red cup" --description "a big dog" \
    --question "What could [0] be used for?" --samples 2 --temperature 0.7 --seed 3 --threads 1
assert "the prompt carries the description, not the id" grep -q '"question":"what could a red cup be used for ?"' "$TMP/out"
assert "two samples" sh -c "[ \$(wc -l < '$TMP/out') = 2 ]"
check "generate, a two-region mention" $VCM generate --model "$TMP/a.vcm" --description "a red cup" --description "a big dog" \
    --question "are [0] , [1] near?" --samples 1 --seed 3 --threads 1
assert "[0] , [1] becomes the two descriptions joined by and, as in training" \
    grep -q '"question":"are a red cup and a big dog near ?"' "$TMP/out"
check "score with a description" $VCM score --model "$TMP/a.vcm" --description "a red cup" \
    --text "question: what is [0] for ? answer: [0] could be used to drink hot tea ." --prompt-len-from "answer:" --threads 1
sed -E 's/.*"sum":([-0-9.]+).*/\1/' "$TMP/out" > "$TMP/sum1"
check "score of the same text written out" $VCM score --model "$TMP/a.vcm" \
    --text "question: what is a red cup for ? answer: a red cup could be used to drink hot tea ." --prompt-len-from "answer:" --threads 1
sed -E 's/.*"sum":([-0-9.]+).*/\1/' "$TMP/out" > "$TMP/sum2"
assert "[0] + --description scores as the written-out text" cmp -s "$TMP/sum1" "$TMP/sum2"
check_fails "a mention without a description is refused" 2 "mentions \[1\] but 1 description" \
    $VCM generate --model "$TMP/a.vcm" --description "a cup" --question "is [1] big?"
check "an image model for contrast (roi, 2 steps)" train "$TMP/r.vcm" "$W" --steps 2
check_fails "--description is refused for an image model" 2 "is for a text-only model" \
    $VCM score --model "$TMP/r.vcm" --image "$W/images/000000.png" --text "x" --description "a cup"

# A mapping without descriptions: an input error naming the file and line.
sed 's/"region_descriptions": {[^}]*}/"region_descriptions": {}/' "$W/regions.jsonl" > "$TMP/nodesc.jsonl"
check_fails "training without descriptions names the corpus line" 2 "corpus.jsonl:[0-9]+: region [0-9]+ of image .* has no description" \
    $VCM train --corpus "$W/corpus.jsonl" --regions "$TMP/nodesc.jsonl" --images-root "$W" --tokenizer "$TMP/tok.tok" \
    --out "$TMP/d.vcm" --batch 2 --steps 1 --region-input text --quiet --threads 1
check_fails "eval without descriptions names the item's line" 2 "mc_test.jsonl:1: region [0-9]+ of image .* has no description" \
    $VCM eval --model "$TMP/a.vcm" --mc "$W/mc_test.jsonl" --regions "$TMP/nodesc.jsonl" --quiet --threads 1
summary
