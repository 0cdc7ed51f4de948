# make install / uninstall into a staged tree (DESTDIR), and the examples built against
# it with pkg-config alone, as a user of an installed vcm would build them.
. tests/lib.sh
BUILD=${VCM_BUILD:-build}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
JPG=/usr/lib/python3/dist-packages/skimage/data/rocket.jpg   # 640x427
STAGE=$TMP/stage
P=$STAGE/usr

# The caller's compiler and flags (the build's stamps), so that make finds everything
# built and rebuilds nothing; not the caller's MAKEFLAGS (a jobserver we cannot join).
read -r BCC BCFLAGS <"$BUILD/cflags"
BMPI=$(sed -n 's/^VCM_MPI=\([01]\).*/\1/p' "$BUILD/mpi.flags")
SAN=$(echo "$BCFLAGS" | grep -o -- '-fsanitize=[^ ]*' | head -1)   # a sanitizer build links with it
mk() {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory BUILD="$BUILD" CC="$BCC" \
        CFLAGS="$BCFLAGS" LDFLAGS="-fopenmp $SAN" VCM_MPI="$BMPI" DESTDIR="$STAGE" PREFIX=/usr "$@"
}
CMDS=$(sed -n 's/^[[:space:]]*X.\([a-z_][a-z0-9_]*\),.*/\1/p' tools/tools.h)

# ---------------------------------------------------------------- install
check "make install DESTDIR=... PREFIX=/usr" mk install
assert "bin/vcm is executable" test -x "$P/bin/vcm"
missing=""
for c in $CMDS; do [ -L "$P/bin/vcm-$c" ] && [ "$(readlink "$P/bin/vcm-$c")" = vcm ] || missing="$missing $c"; done
assert "bin/vcm-<command> links to vcm for every command of tools/tools.h (missing:$missing)" test -z "$missing"
assert "lib/libvcm.a" test -s "$P/lib/libvcm.a"
assert "the public headers keep their folders" test -f "$P/include/vcm/tensor/tensor.h" -a -f "$P/include/vcm/base/base.h" \
    -a -f "$P/include/vcm/train/train.h"
assert "no private header is installed" sh -c '! find "$0/include" -name "*internal*" | grep -q .' "$P"
assert "share/vcm/prompt_v1.txt is the default prompt" cmp -s distill/prompt_v1.txt "$P/share/vcm/prompt_v1.txt"
assert "vcm.pc says prefix=/usr" grep -qx 'prefix=/usr' "$P/lib/pkgconfig/vcm.pc"

# ---------------------------------------------------------------- pkg-config
# the .pc is written for /usr; --define-variable moves it to the staged copy
pc() { PKG_CONFIG_PATH="$P/lib/pkgconfig" pkg-config --define-variable=prefix="$P" "$@" vcm; }
PCC=$(pc --cflags); PCL=$(pc --libs)
assert "pkg-config: -I the staged include/vcm, -L its lib -lvcm" sh -c \
    'case "$0 $1 " in *"-I$2/include/vcm "*"-L$2/lib -lvcm "*) ;; *) exit 1;; esac' "$PCC" "$PCL" "$P"
# the sources alone, away from the tree: only the installed headers can be found
mkdir -p "$TMP/ex"
cp examples/tensor_example.c examples/generate.c "$TMP/ex/"
for e in tensor_example generate; do
    check "$e builds with pkg-config --cflags / --libs vcm alone, no warning" $BCC -Wall -Wextra -Werror $PCC \
        "$TMP/ex/$e.c" $PCL $SAN -o "$TMP/ex/$e"
done

check "tensor_example runs" "$TMP/ex/tensor_example"
assert "tensor_example: the loss is the cross-entropy of x·Wᵀ, the gradient its finite difference" $PY -c '
import math, re, sys
out = open(sys.argv[1]).read()
loss = float(re.search(r"^loss (\S+)$", out, re.M).group(1))
g, fd = map(float, re.search(r"^dloss/dW\[1\]\[2\] (\S+) \(finite difference (\S+)\)$", out, re.M).groups())
x = [[((r * 8 + c) % 5) / 5 - 0.4 for c in range(8)] for r in range(4)]
W = [[((r * 8 + c) % 7) / 10 - 0.3 for c in range(8)] for r in range(3)]
y = [0, 2, 1, 2]
want = 0
for r in range(4):
    z = [sum(x[r][c] * W[k][c] for c in range(8)) for k in range(3)]
    m = max(z)
    want += (math.log(sum(math.exp(v - m) for v in z)) + m - z[y[r]]) / 4
assert abs(loss - want) < 1e-5, (loss, want)
assert abs(g - fd) < 1e-3 and abs(g) > 1e-3, (g, fd)
' "$TMP/out"
assert "README shows examples/tensor_example.c as it is" $PY -c '
import sys
readme = open("README.md").read()
sec = readme.split("## The tensor API in a short example", 1)[1]
code = sec.split("```c\n", 1)[1].split("```\n", 1)[0]
assert code == open("examples/tensor_example.c").read(), "the README snippet differs from the file"
'

# ---------------------------------------------------------------- vcm-<command>
check "vcm-generate --help" "$P/bin/vcm-generate" --help
out_has "vcm-generate --help prints generate's usage" "usage: vcm generate"
bad=""
for c in $CMDS; do "$P/bin/vcm-$c" --help 2>/dev/null | head -1 | grep -q "^usage: vcm $c" || bad="$bad $c"; done
assert "every vcm-<command> --help is that command's (wrong:$bad)" test -z "$bad"
check_msg "vcm-generate: its own flag errors" 2 "vcm generate: " "$P/bin/vcm-generate" --model

# ---------------------------------------------------------------- the generate example
check "generate example: --help" "$TMP/ex/generate" --help
out_has "generate example: --help prints its usage" "usage: generate MODEL.vcm IMAGE QUESTION"
check_msg "generate example: no arguments is bad usage" 2 "usage: generate" "$TMP/ex/generate"
check_msg "generate example: a missing checkpoint" 2 "bad checkpoint" \
    "$TMP/ex/generate" "$TMP/nope.vcm" "$JPG" "what is [0] doing?" 1,1,5,5
W=$TMP/w   # a tiny barely trained model, as tests/test_generate.sh makes (about a second)
"$VCM" synth --out "$W" --images 60 >/dev/null 2>&1 &&
"$VCM" tokenizer train --corpus "$W/corpus.jsonl" --vocab 400 --out "$W/tok.tok" >/dev/null 2>&1 &&
"$VCM" train --corpus "$W/corpus.jsonl" --regions "$W/regions.jsonl" --images-root "$W" --tokenizer "$W/tok.tok" \
    --out "$W/m.vcm" --steps 2 --batch 4 --warmup 1 --quiet --threads 1 >/dev/null 2>&1
assert "tiny world and checkpoint" test -s "$W/m.vcm"
check "generate example: an answer from the tiny model" env VCM_THREADS=1 "$TMP/ex/generate" "$W/m.vcm" "$JPG" \
    "What is [1] doing next to [0]?" 50,60,200,300 250,40,420,400
cp "$TMP/out" "$TMP/ex_answer"
check "vcm generate, greedy, the same question" "$VCM" generate --model "$W/m.vcm" --image "$JPG" --region 50,60,200,300 \
    --region 250,40,420,400 --question "What is [1] doing next to [0]?" --temperature 0 --threads 1
assert "generate example: the question and the answer vcm generate gives" $PY -c '
import json, sys
ex = open(sys.argv[1], "rb").read()
o = json.loads(open(sys.argv[2]).read())
def ascii(b): return bytes(c for c in b if c < 128).strip()   # vcm writes each invalid byte as U+FFFD
q = ex.split(b"\n", 1)[0]
assert q == b"question: " + o["question"].encode(), (q, o["question"])
a = ex.split(b"\nanswer:", 1)[1].split(b"\nrationale:", 1)[0]
assert ascii(a) == ascii((o["answer"] or "").encode()), (a, o["answer"])
' "$TMP/ex_answer" "$TMP/out"
check_msg "generate example: a region outside the image" 2 "outside the 640x427 image" \
    "$TMP/ex/generate" "$W/m.vcm" "$JPG" "what is [0] doing?" 600,400,700,420
check_msg "generate example: a mention past the regions" 2 "past [0]" \
    "$TMP/ex/generate" "$W/m.vcm" "$JPG" "is [1] near [0]?" 1,1,50,50

# ---------------------------------------------------------------- uninstall
echo keep >"$P/lib/pkgconfig/other.pc"     # not ours: must survive
check "make uninstall, the same DESTDIR and PREFIX" mk uninstall
assert "uninstall leaves what it did not install" test -f "$P/lib/pkgconfig/other.pc"
rm -f "$P/lib/pkgconfig/other.pc"
left=$(find "$STAGE" ! -type d)
assert "nothing left but empty folders (left: $left)" test -z "$left"
assert "include/vcm and share/vcm are gone" test ! -e "$P/include/vcm" -a ! -e "$P/share/vcm"

summary
