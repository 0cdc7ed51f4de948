#!/bin/sh
# vcm import: a checkpoint exported to safetensors comes back bit for bit (the same
# score, the same greedy text, the same exported bytes), from the file's metadata, from
# --like or from --config; a student and a critic. Files that do not fit are refused
# with every renamed, reshaped, retyped tensor named, a truncated file as truncated,
# and no file is written under --out (an existing one is left as it was).
. tests/lib.sh
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
JPG=/usr/lib/python3/dist-packages/skimage/data/rocket.jpg
W=$TMP/w

# ---------------------------------------------------------------- a checkpoint, quickly
"$VCM" synth --out "$W" --images 30 --seed 3 --quiet >/dev/null 2>&1 &&
"$VCM" tokenizer train --corpus "$W/corpus.jsonl" --vocab 400 --out "$W/tok.tok" >/dev/null 2>&1 &&
"$VCM" train --corpus "$W/corpus.jsonl" --regions "$W/regions.jsonl" --images-root "$W" --tokenizer "$W/tok.tok" \
    --out "$TMP/m.vcm" --steps 2 --batch 4 --warmup 1 --quiet --threads 1 >/dev/null 2>&1
assert "tiny world and checkpoint" test -s "$TMP/m.vcm"
check "export it" "$VCM" export --model "$TMP/m.vcm" --out "$TMP/m.safetensors"
COUNTS=$(grep -oE '"tensors":[0-9]+,"params":[0-9]+' "$TMP/out")
# shape NAME [reversed]: a tensor's shape in the export as our messages print it ("[2048, 128]")
shape() {
    "$PY" - "$TMP/m.safetensors" "$@" <<'EOF'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n, = struct.unpack("<Q", b[:8]); s = json.loads(b[8:8 + n])[sys.argv[2]]["shape"]
print("[" + ", ".join(map(str, s[::-1] if len(sys.argv) > 3 else s)) + "]")
EOF
}
TOK=$(shape dec.tok.weight); BOX=$(shape bridge.box_proj.weight); XOB=$(shape bridge.box_proj.weight reversed)
NORM=$(shape dec.norm.bias); QKVB=$(shape vit.blocks.0.attn.qkv.bias)

# What a model prints: log-probabilities of a text, and a greedy answer.
outputs() {  # outputs MODEL OUT_PREFIX
    "$VCM" score --model "$1" --image "$JPG" --region 50,60,200,300 --region 250,40,420,400 \
        --text "question: what is [0] doing next to [1] ? answer: [0] is flying ." --threads 1 >"$2.score" 2>/dev/null &&
    "$VCM" generate --model "$1" --image "$JPG" --region 50,60,200,300 --region 250,40,420,400 \
        --question "what is [1] doing?" --temperature 0 --max-tokens 16 --threads 1 >"$2.gen" 2>/dev/null
}
assert "the original's outputs" outputs "$TMP/m.vcm" "$TMP/orig"

# ---------------------------------------------------------------- round trips
check "import from the file's metadata" "$VCM" import --in "$TMP/m.safetensors" --out "$TMP/back.vcm"
out_has "its JSON line: every tensor, config and tokenizer from the metadata" \
    "$COUNTS"',"config":"nano","kind":"student","config_from":"metadata","tokenizer":"metadata"}'
assert "the imported model's outputs" outputs "$TMP/back.vcm" "$TMP/back"
assert "vcm score: the same numbers, bit for bit" cmp "$TMP/orig.score" "$TMP/back.score"
assert "vcm generate --temperature 0: the same text and log-prob" cmp "$TMP/orig.gen" "$TMP/back.gen"
assert "the score printed numbers (not an empty file)" grep -q '"logprobs":\[-' "$TMP/orig.score"
check "export the imported one" "$VCM" export --model "$TMP/back.vcm" --out "$TMP/back.safetensors"
assert "same safetensors bytes as the first export" cmp "$TMP/m.safetensors" "$TMP/back.safetensors"

# A file without our metadata (as torch's save_file writes it): --like or --config.
"$PY" - "$TMP/m.safetensors" "$TMP/nometa.safetensors" <<'EOF'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n, = struct.unpack("<Q", b[:8]); h = json.loads(b[8:8 + n])
h.pop("__metadata__")
j = json.dumps(h).encode()
open(sys.argv[2], "wb").write(struct.pack("<Q", len(j)) + j + b[8 + n:])
EOF
check_msg "no metadata: refused, naming the way out" 2 'no "vcm_config" in __metadata__ (not written by vcm export): pass --like CKPT or --config NAME' \
    "$VCM" import --in "$TMP/nometa.safetensors" --out "$TMP/x.vcm"
check "--like takes config and tokenizer from a checkpoint" "$VCM" import --in "$TMP/nometa.safetensors" --like "$TMP/m.vcm" --out "$TMP/like.vcm"
out_has "and says so" '"config_from":"like","tokenizer":"like"}'
outputs "$TMP/like.vcm" "$TMP/like"
assert "--like: score and text bit for bit" sh -c "cmp -s '$TMP/orig.score' '$TMP/like.score' && cmp -s '$TMP/orig.gen' '$TMP/like.gen'"
check "--config nano --tokenizer" "$VCM" import --in "$TMP/nometa.safetensors" --config nano --tokenizer "$W/tok.tok" --out "$TMP/cfg.vcm"
out_has "and says so" '"config_from":"config","tokenizer":"file"}'
outputs "$TMP/cfg.vcm" "$TMP/cfg"
assert "--config: score and text bit for bit" sh -c "cmp -s '$TMP/orig.score' '$TMP/cfg.score' && cmp -s '$TMP/orig.gen' '$TMP/cfg.gen'"
rm -f "$TMP/x.vcm"
check_msg "--like a checkpoint that is not there" 2 "--like $TMP/nope.vcm: No such file" \
    "$VCM" import --in "$TMP/m.safetensors" --like "$TMP/nope.vcm" --out "$TMP/x.vcm"
assert "--like not there: no output file" test ! -e "$TMP/x.vcm"
# --like wins over the file's config; one that differs only where shapes do not show is noted
"$PY" - "$TMP/m.safetensors" "$TMP/scale1.safetensors" <<'EOF'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n, = struct.unpack("<Q", b[:8]); h = json.loads(b[8:8 + n])
c = json.loads(h["__metadata__"]["vcm_config"]); c["region_id_scale"] = 1
h["__metadata__"]["vcm_config"] = json.dumps(c)
j = json.dumps(h).encode()
open(sys.argv[2], "wb").write(struct.pack("<Q", len(j)) + j + b[8 + n:])
EOF
check_msg "--like over another config in the metadata: a note" 0 "was exported from another config" \
    "$VCM" import --in "$TMP/scale1.safetensors" --like "$TMP/m.vcm" --out "$TMP/x.vcm"
check_msg "--like and --config together" 2 "give one" \
    "$VCM" import --in "$TMP/nometa.safetensors" --config nano --like "$TMP/m.vcm" --out "$TMP/x.vcm"
check_msg "--config of another size: every shape named" 2 "tensor vit.patch_embed.weight has shape $(shape vit.patch_embed.weight) in the file but [" \
    "$VCM" import --in "$TMP/m.safetensors" --config small --out "$TMP/x.vcm"
check_msg "--format other than safetensors" 2 'unknown --format "onnx"' \
    "$VCM" import --in "$TMP/m.safetensors" --out "$TMP/x.vcm" --format onnx
check "--help" "$VCM" import --help
out_has "--help shows the usage" "usage: vcm import --in M.safetensors --out M.vcm"

# A critic comes back as a critic (its kind travels in vcm_config).
"$VCM" critic train --annotations "$W/annotations.jsonl" --regions "$W/regions.jsonl" --images-root "$W" \
    --tokenizer "$W/tok.tok" --out "$TMP/c.vcm" --steps 1 --batch 2 --val-frac 0 --threads 1 --quiet >/dev/null 2>&1
check "critic: export" "$VCM" export --model "$TMP/c.vcm" --out "$TMP/c.safetensors"
check "critic: import" "$VCM" import --in "$TMP/c.safetensors" --out "$TMP/cback.vcm"
out_has "critic: kind critic" '"kind":"critic"'
head -4 "$W/corpus.jsonl" >"$TMP/few.jsonl"
cscore() { "$VCM" critic score --model "$1" --corpus "$TMP/few.jsonl" --regions "$W/regions.jsonl" --images-root "$W" --threads 1 --quiet; }
cscore "$TMP/c.vcm" >"$TMP/c.scored" 2>/dev/null
cscore "$TMP/cback.vcm" >"$TMP/cback.scored" 2>/dev/null
assert "critic score: the same predictions, bit for bit" sh -c "[ -s '$TMP/c.scored' ] && cmp -s '$TMP/c.scored' '$TMP/cback.scored'"

# ---------------------------------------------------------------- refused files
# edit SRC DST MODE: a copy with its header changed (the data bytes as they were).
edit() {
    "$PY" - "$@" <<'EOF'
import json, struct, sys
src, dst, mode = sys.argv[1:4]
b = open(src, "rb").read()
n, = struct.unpack("<Q", b[:8]); h = json.loads(b[8:8 + n]); data = b[8 + n:]
if mode in ("rename", "many"):
    h["dec.tok.weightX"] = h.pop("dec.tok.weight")
if mode in ("reshape", "many"):
    h["bridge.box_proj.weight"]["shape"].reverse()           # same bytes, other shape
if mode == "many":
    h["vit.norm.bias"]["dtype"] = "BF16"
    h["extra.weight"] = dict(h.pop("dec.norm.bias"))
    q = h["vit.blocks.0.attn.qkv.bias"]; q["shape"] = [3, q["shape"][0] // 3]
j = json.dumps(h).encode()
open(dst, "wb").write(struct.pack("<Q", len(j)) + j + data)
EOF
}
# refused NAME FILE TEXT: exit 2 with TEXT, nothing under --out, an existing --out kept.
refused() {
    rm -f "$TMP/r.vcm" "$TMP/r.vcm.tmp"
    check_msg "$1" 2 "$3" "$VCM" import --in "$2" --out "$TMP/r.vcm"
    assert "$1: no output file" sh -c "[ ! -e '$TMP/r.vcm' ] && [ ! -e '$TMP/r.vcm.tmp' ]"
}
edit "$TMP/m.safetensors" "$TMP/renamed.safetensors" rename
refused "renamed tensor: the missing name" "$TMP/renamed.safetensors" \
    "tensor dec.tok.weight $TOK of the model is missing from the file"
assert "renamed tensor: and the extra name" grep -qF "tensor dec.tok.weightX $TOK in the file is not a parameter of the model" "$TMP/err"
assert "renamed tensor: nothing written, said so" grep -qF "2 tensors do not fit the model (1 missing, 1 not in the model, 0 with another shape, 0 unreadable); nothing written" "$TMP/err"
edit "$TMP/m.safetensors" "$TMP/reshaped.safetensors" reshape
refused "reshaped tensor: named with both shapes" "$TMP/reshaped.safetensors" \
    "tensor bridge.box_proj.weight has shape $XOB in the file but $BOX in the model"
edit "$TMP/m.safetensors" "$TMP/many.safetensors" many
refused "several problems" "$TMP/many.safetensors" "7 tensors do not fit the model (2 missing, 2 not in the model, 2 with another shape, 1 unreadable)"
assert "several problems: one line each, each naming its tensor" "$PY" -c '
import sys
tok, norm, box, xob, qkvb = sys.argv[2:]
q = int(qkvb[1:-1])
lines = [l for l in open(sys.argv[1]).read().splitlines() if l.startswith("vcm import: ") and "tensor " in l]
want = ["tensor dec.tok.weight %s of the model is missing" % tok,
        "tensor dec.norm.bias %s of the model is missing" % norm,
        "tensor dec.tok.weightX %s in the file is not a parameter" % tok,
        "tensor extra.weight %s in the file is not a parameter" % norm,
        "tensor bridge.box_proj.weight has shape %s in the file but %s" % (xob, box),
        "tensor vit.blocks.0.attn.qkv.bias has shape [3, %d] in the file but %s" % (q // 3, qkvb),
        "tensor vit.norm.bias: dtype BF16 (only F32 is read)"]
for w in want:
    assert sum(w in l for l in lines) == 1, (w, lines)
assert len(lines) == len(want), lines
' "$TMP/err" "$TOK" "$NORM" "$BOX" "$XOB" "$QKVB"
size=$(wc -c <"$TMP/m.safetensors")
head -c $((size - 1000)) "$TMP/m.safetensors" >"$TMP/trunc.safetensors"
refused "truncated in the data" "$TMP/trunc.safetensors" "truncated: tensor "
assert "truncated: both sizes" grep -qF "but the file holds $((size - 1000 - 8 - $(od -An -tu8 -N8 "$TMP/m.safetensors" | tr -d ' '))) data bytes (file size $((size - 1000)))" "$TMP/err"
head -c 100 "$TMP/m.safetensors" >"$TMP/trunc2.safetensors"
refused "truncated in the header" "$TMP/trunc2.safetensors" "not a safetensors file or truncated: header length"
refused "missing file" "$TMP/nope.safetensors" "nope.safetensors: No such file"
cp "$TMP/m.vcm" "$TMP/keep.vcm"
check_msg "an existing --out on refusal" 2 "nothing written" "$VCM" import --in "$TMP/renamed.safetensors" --out "$TMP/keep.vcm"
assert "is left as it was" cmp -s "$TMP/m.vcm" "$TMP/keep.vcm"

summary
