# vcm generate / score / eval end to end on a tiny world (a barely trained nano model:
# the text is noise, the formats and the error handling are what is checked).
. tests/lib.sh
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
DATA=/usr/lib/python3/dist-packages/skimage/data
JPG=$DATA/rocket.jpg          # 640x427
W=$TMP/w

# ---------------------------------------------------------------- a checkpoint, quickly
"$VCM" synth --out "$W" --images 60 >/dev/null 2>&1 &&
"$VCM" tokenizer train --corpus "$W/corpus.jsonl" --vocab 400 --out "$W/tok.tok" >/dev/null 2>&1 &&
"$VCM" train --corpus "$W/corpus.jsonl" --regions "$W/regions.jsonl" --images-root "$W" --tokenizer "$W/tok.tok" \
    --out "$W/m.vcm" --steps 2 --batch 4 --warmup 1 --quiet --threads 1 >/dev/null 2>&1
assert "tiny world and checkpoint" test -s "$W/m.vcm"
M="--model $W/m.vcm --tokenizer $W/tok.tok"
B3="--region 50,60,200,300 --region 250,40,420,400 --region 450,200,600,420"

# ---------------------------------------------------------------- the embedded tokenizer
check "generate with the tokenizer saved in the checkpoint (no --tokenizer)" "$VCM" generate --model "$W/m.vcm" \
    --image "$JPG" --region 50,60,200,300 --samples 1 --seed 5 --max-tokens 20 --threads 1
cp "$TMP/out" "$TMP/gen_embedded"
check "the same with --tokenizer" "$VCM" generate --model "$W/m.vcm" --tokenizer "$W/tok.tok" \
    --image "$JPG" --region 50,60,200,300 --samples 1 --seed 5 --max-tokens 20 --threads 1
assert "embedded and separate tokenizer give the same text" cmp -s "$TMP/out" "$TMP/gen_embedded"

# ---------------------------------------------------------------- generate
check "generate: 3 regions, 3 samples, --draw" "$VCM" generate $M --image "$JPG" $B3 --samples 3 --seed 5 \
    --max-tokens 40 --draw "$TMP/drawn.png" --threads 1
cp "$TMP/out" "$TMP/gen1"
assert "generate: one JSON line per sample with every field" $PY -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 3, lines
for i, l in enumerate(lines):
    o = json.loads(l)
    assert o["sample"] == i
    for k in ("question", "answer", "rationale", "logprob", "tokens", "text"):
        assert k in o, k
    assert isinstance(o["logprob"], float) and o["logprob"] < 0
    assert 1 <= o["tokens"] <= 40
    assert o["text"].startswith("question:")
    assert o["question"] is not None
' "$TMP/gen1"
"$VCM" generate $M --image "$JPG" $B3 --samples 3 --seed 5 --max-tokens 40 --threads 1 >"$TMP/gen2" 2>/dev/null
assert "generate: same seed, same bytes" cmp -s "$TMP/gen1" "$TMP/gen2"
"$VCM" generate $M --image "$JPG" $B3 --samples 3 --seed 6 --max-tokens 40 --threads 1 >"$TMP/gen3" 2>/dev/null
assert "generate: another seed, other text" sh -c '! cmp -s "$0" "$1"' "$TMP/gen1" "$TMP/gen3"
# mentions past the given regions are never drawn (only [0]..[2] exist)
assert "generate: no mention past the regions given" sh -c '! grep -Eq "\[([3-9]|1[0-5])\]" "$0"' "$TMP/gen1"

check "generate: --question, greedy" "$VCM" generate $M --image "$JPG" $B3 --question "What is [1] doing?" \
    --temperature 0 --max-tokens 12 --threads 1
assert "generate: the question as the corpus writes it" $PY -c '
import json, sys
o = json.loads(open(sys.argv[1]).read())
assert o["question"] == "what is [1] doing ?", o["question"]
assert o["text"].startswith("question: what is [1] doing ? answer:"), o["text"]
assert o["answer"] is not None
' "$TMP/out"

assert "draw: the PNG shows each numbered box" $PY -c '
import sys
from PIL import Image
d = Image.open(sys.argv[1]).convert("RGB"); o = Image.open(sys.argv[2]).convert("RGB")
assert d.size == o.size == (640, 427), (d.size, o.size)
palette = [(230, 25, 75), (60, 180, 75), (0, 130, 200)]
boxes = [(50, 60, 200, 300), (250, 40, 420, 400), (450, 200, 600, 420)]
for k, (x0, y0, x1, y1) in enumerate(boxes):
    ym = (y0 + y1) // 2
    for x in (x0, x0 + 1, x1 - 1):                      # the 2 px outline, left and right
        assert d.getpixel((x, ym)) == palette[k], (k, x, d.getpixel((x, ym)))
    assert d.getpixel(((x0 + x1) // 2, y0)) == palette[k]   # top edge
    # the label "[k]": its background in the box colour just above the box
    above = [d.getpixel((x, y)) for x in range(x0, x0 + 20) for y in range(max(0, y0 - 20), y0)]
    assert above.count(palette[k]) > 20, k
far = d.getpixel((630, 100)), o.getpixel((630, 100))     # outside every box: untouched
assert all(abs(a - b) <= 8 for a, b in zip(*far)), far
' "$TMP/drawn.png" "$JPG"

# ---------------------------------------------------------------- generate: errors
check_fails "generate: box outside the image" 2 "--region 2 .*outside the 640x427 image" \
    "$VCM" generate $M --image "$JPG" --region 1,1,10,10 --region 600,400,700,420
check_fails "generate: x1 < x0" 2 "--region 1 .*x1 < x0" "$VCM" generate $M --image "$JPG" --region 100,10,50,40
check_fails "generate: not a box" 2 "--region 1 .*x0,y0,x1,y1" "$VCM" generate $M --image "$JPG" --region 1,2,3
check_fails "generate: missing image" 2 "nope.jpg" "$VCM" generate $M --image "$TMP/nope.jpg" --region 1,1,5,5
check_fails "generate: truncated JPEG" 2 "truncated.jpg" "$VCM" generate $M --image "$DATA/truncated.jpg" --region 1,1,5,5
head -c 100000 "$W/m.vcm" >"$TMP/trunc.vcm"
check_fails "generate: truncated checkpoint" 2 "bad checkpoint" \
    "$VCM" generate --model "$TMP/trunc.vcm" --tokenizer "$W/tok.tok" --image "$JPG" --region 1,1,5,5
# A header whose config asks for far more weights than the file holds (CRC made right,
# so only the size check can tell) is refused before the model is built: dec_d 128 -> 996
/usr/bin/python3 -c "
import sys, struct, zlib
b = bytearray(open(sys.argv[1], 'rb').read())
hs = struct.unpack_from('<Q', b, 16)[0]
i = b.find(b'\"dec_d\":128', 0, hs)
assert i > 0
b[i:i + 11] = b'\"dec_d\":996'
b[40:44] = b'\0\0\0\0'
struct.pack_into('<I', b, 40, zlib.crc32(bytes(b[:hs])))
open(sys.argv[2], 'wb').write(b)" "$W/m.vcm" "$TMP/big.vcm"
check_fails "generate: a header asking for more weights than the file holds" 2 "needs at least [0-9]+ bytes of weights but the file holds" \
    "$VCM" generate --model "$TMP/big.vcm" --tokenizer "$W/tok.tok" --image "$JPG" --region 1,1,5,5
printf 'not a checkpoint at all' >"$TMP/junk.vcm"
check_fails "generate: not a checkpoint" 2 "bad checkpoint" \
    "$VCM" generate --model "$TMP/junk.vcm" --tokenizer "$W/tok.tok" --image "$JPG" --region 1,1,5,5
check_fails "generate: question mentions a region not given" 2 "mentions \[3\]" \
    "$VCM" generate $M --image "$JPG" $B3 --question "is [3] near [0]?"
# [16] and up name no region of any model (the tokenizer has [0]..[15]): refused, not read as text
check_fails "generate: [16] in the question is refused" 2 "mentions \[16\] but 3 regions" \
    "$VCM" generate $M --image "$JPG" $B3 --question "what is [16] next to [0] ?"
check_fails "score: [99] in the text is refused" 2 "mentions \[99\]" \
    "$VCM" score $M --image "$JPG" --region 1,1,9,9 --text "question: what is [99] ?"
check_fails "generate: bad --top-p" 2 "top-p" "$VCM" generate $M --image "$JPG" --top-p 1.5

# ---------------------------------------------------------------- score
check "score: a text with a prompt" "$VCM" score $M --image "$JPG" $B3 \
    --text "question: what is [0] doing ? answer: [0] is flying ." --prompt-len-from "answer:" --threads 1
assert "score: tokens, log-probs, sum and mean agree" $PY -c '
import json, sys
o = json.loads(open(sys.argv[1]).read())
n = len(o["tokens"])
assert n == len(o["ids"]) == len(o["logprobs"]) and n > 5
assert "".join(o["tokens"]) == "question: what is [0] doing ? answer: [0] is flying ."
f = o["first_scored"]
assert "".join(o["tokens"][:f]).endswith("answer:"), o["tokens"][:f]
s = sum(o["logprobs"][f:])
assert abs(s - o["sum"]) < 1e-4 and o["n"] == n - f and abs(o["mean"] - s / o["n"]) < 1e-4
assert all(x < 0 for x in o["logprobs"])
' "$TMP/out"
check_fails "score: prompt not at a token boundary" 2 "token boundary" \
    "$VCM" score $M --image "$JPG" --region 1,1,9,9 --text "question: what is [0] doing ?" --prompt-len-from "question: wh"

# ---------------------------------------------------------------- eval
check "eval: kv" "$VCM" eval $M --mc "$W/mc_test.jsonl" --regions "$W/regions.jsonl" --images-root "$W" \
    --corpus "$W/corpus.jsonl" --predictions "$TMP/pred_kv.jsonl" --threads 1 --quiet
cp "$TMP/out" "$TMP/eval_kv"
# a run that fails (a bad line in the middle of the file) leaves an existing predictions
# file as it was, and no temporary beside it
cp "$TMP/pred_kv.jsonl" "$TMP/pred_keep.jsonl"
{ head -2 "$W/mc_test.jsonl"; echo '{"broken": '; } >"$TMP/mc_bad.jsonl"
check_fails "eval: a bad item fails the run" 2 "mc_bad.jsonl:3" "$VCM" eval $M --mc "$TMP/mc_bad.jsonl" \
    --regions "$W/regions.jsonl" --images-root "$W" --predictions "$TMP/pred_kv.jsonl" --threads 1 --quiet
assert "eval: the old predictions are intact" sh -c "cmp -s '$TMP/pred_kv.jsonl' '$TMP/pred_keep.jsonl' && [ ! -e '$TMP/pred_kv.jsonl.tmp' ]"
check "eval: batch" "$VCM" eval $M --mc "$W/mc_test.jsonl" --regions "$W/regions.jsonl" --images-root "$W" \
    --method batch --predictions "$TMP/pred_batch.jsonl" --threads 1 --quiet
assert "eval: the JSON object, and both methods score alike" $PY -c '
import json, sys
kv = json.loads(open(sys.argv[1]).read()); ba = json.loads(open(sys.argv[2]).read())
n = sum(1 for l in open(sys.argv[3]) if l.strip())
assert kv["n"] == n == ba["n"], (kv, n)
for k in ("accuracy", "accuracy_other_region", "n_other_region", "perplexity"):
    assert k in kv, k
assert 0 <= kv["accuracy"] <= 1 and kv["perplexity"] > 1
assert kv["accuracy"] == ba["accuracy"] and kv["n_other_region"] == ba["n_other_region"]
for a, b in zip(open(sys.argv[4]), open(sys.argv[5])):
    a, b = json.loads(a), json.loads(b)
    assert a["pred"] == b["pred"] and a["label"] == b["label"]
    assert all(abs(x - y) <= 1e-4 * abs(y) + 1e-5 for x, y in zip(a["scores"], b["scores"])), (a, b)
' "$TMP/eval_kv" "$TMP/out" "$W/mc_test.jsonl" "$TMP/pred_kv.jsonl" "$TMP/pred_batch.jsonl"

head -2 "$W/mc_test.jsonl" >"$TMP/bad.jsonl"
echo '{"image": "images/000001.png", "regions": [0], "question": ["what", "?"], "choices": [["a"], ["b"]], "label": 7}' >>"$TMP/bad.jsonl"
sed -n 3p "$W/mc_test.jsonl" >>"$TMP/bad.jsonl"
check_fails "eval: a bad item names file and line" 2 "bad.jsonl:3: .*label" \
    "$VCM" eval $M --mc "$TMP/bad.jsonl" --regions "$W/regions.jsonl" --images-root "$W" --quiet
check "eval: --skip-bad" "$VCM" eval $M --mc "$TMP/bad.jsonl" --regions "$W/regions.jsonl" --images-root "$W" --quiet --threads 1 --skip-bad
assert "eval: --skip-bad counts it" $PY -c '
import json, sys
o = json.loads(open(sys.argv[1]).read()); assert o["n"] == 3 and o["skipped"] == 1, o
' "$TMP/out"

# ---------------------------------------------------------------- eval --open
check "eval: --open with --mc" "$VCM" eval $M --mc "$W/mc_test.jsonl" --open "$W/open_test.jsonl" --regions "$W/regions.jsonl" \
    --images-root "$W" --open-predictions "$TMP/open_pred.jsonl" --threads 1 --quiet
cp "$TMP/out" "$TMP/eval_open"
assert "eval --open: the report agrees with its predictions, ids as in the file" $PY -c '
import json, sys
o = json.loads(open(sys.argv[1]).read())
items = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
preds = [json.loads(l) for l in open(sys.argv[3])]
op = o["open"]
assert op["n"] == len(items) == len(preds) > 0, (op["n"], len(items), len(preds))
assert "n_grounding" in o and "accuracy_named" in o and o["n_grounding"] > 0
def words(ws):
    return " ".join(("[%d]" % w[0]) if isinstance(w, list) else w.lower() for w in ws)
refers = correct = 0
for it, p in zip(items, preds):
    assert p["question"] == words(it["question"]), (p["question"], it["question"])   # no renumbering
    assert p["truth"] == words(it["answer"])
    assert not p["correct"] or p["refers"]
    assert p["correct"] == (p["answer"] is not None and " ".join(p["answer"].split()) == p["truth"])
    refers += p["refers"]; correct += p["correct"]
    first_is_id = isinstance(it["answer"][0], list)
    assert (p["first_id_prob"] is not None) == first_is_id
assert abs(op["refers"] - refers / len(preds)) < 1e-6 and abs(op["correct"] - correct / len(preds)) < 1e-6
def copied(it):   # one asked region, named by the question: the answer should start with it
    return len(it["region"]) == 1 and any(isinstance(w, list) and it["region"][0] in w for w in it["question"])
first = [copied(it) for it in items if isinstance(it["answer"][0], list)]
assert op["n_first_id"] == sum(first) and op["n_first_id_multi"] == len(first) - sum(first)
assert sum(g["n"] for g in op["by_type"].values()) == op["n"]
assert op["literal"]["n"] + op["relational"]["n"] == op["n"]
' "$TMP/eval_open" "$W/open_test.jsonl" "$TMP/open_pred.jsonl"

# the first-id probability is the one vcm score gives the true answer's first id
$PY -c '
import json, sys
items = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
preds = [json.loads(l) for l in open(sys.argv[2])]
maps = {}
for l in open(sys.argv[3]):
    r = json.loads(l); maps[r["image"]] = r
i = next(i for i, p in enumerate(preds) if p["first_id_prob"] is not None)
it, p = items[i], preds[i]
locs = maps[it["image"]]["region_locations"]
regs = " ".join("--region " + ",".join(str(v) for v in locs[str(k)]["boxes"][0]) for k in it["region_all"])
print(it["image"], "%r" % p["first_id_prob"], regs, "question: %s answer: %s" % (p["question"], p["truth"]), sep="\t")
' "$W/open_test.jsonl" "$TMP/open_pred.jsonl" "$W/regions.jsonl" > "$TMP/first_id"
IFS="$(printf '\t')" read -r fimg fprob fregs ftext < "$TMP/first_id"
check "score: the first open-ended item with all its regions" "$VCM" score $M --image "$W/$fimg" $fregs --text "$ftext" \
    --prompt-len-from "answer:" --threads 1
assert "eval --open: first_id_prob equals the score of that id" $PY -c '
import json, math, sys
o = json.loads(open(sys.argv[1]).read()); want = float(sys.argv[2])
f = o["first_scored"]
j = next(j for j in range(f, len(o["tokens"])) if o["tokens"][j].startswith("["))
got = math.exp(o["logprobs"][j])
assert abs(got - want) <= 1e-4 * want + 1e-6, (got, want, o["tokens"][f:j + 1])
' "$TMP/out" "$fprob"

echo '{"image": "images/000001.png", "region_all": [0], "question": ["what", "?"], "answer": ["a"], "rationale": []}' >"$TMP/bad_open.jsonl"
check_fails "eval --open: an item without its asked regions names file and line" 2 "bad_open.jsonl:1: .*asked region" \
    "$VCM" eval $M --open "$TMP/bad_open.jsonl" --regions "$W/regions.jsonl" --images-root "$W" --quiet
check_fails "eval: neither --mc nor --open" 2 "give --mc" "$VCM" eval $M --regions "$W/regions.jsonl"

summary
