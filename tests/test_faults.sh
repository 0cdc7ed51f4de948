#!/bin/sh
# The fault matrix of the write paths (issue 18): every command that writes a file, on a
# full disk and on a read-only one. In every cell the command exits 1, its message names
# the file and the system's reason, the previous output under the same name is still
# there byte for byte, and no temporary is left beside it. The disks are small tmpfs
# mounts, so this needs root (CI and the project's machines run as root); elsewhere it
# says so and checks nothing.
. tests/lib.sh
FULL=$TMP/full RO=$TMP/ro
mkdir -p "$FULL" "$RO"
if ! mount -t tmpfs -o size=40m tmpfs "$FULL" 2>/dev/null; then
    echo "skip the fault matrix: cannot mount a tmpfs here (not root?)"
    summary
    exit 0
fi
trap 'umount "$FULL" 2>/dev/null; umount "$RO" 2>/dev/null; rm -rf "$TMP"' EXIT
mount -t tmpfs -o size=40m tmpfs "$RO"

W=$TMP/world
$VCM synth --out "$W" --images 40 --seed 3 --quiet >/dev/null 2>&1
$VCM tokenizer train --corpus "$W/corpus.jsonl" --vocab 400 --out "$TMP/tok.tok" >/dev/null 2>&1
train() {  # train OUT [flags...]
    out=$1; shift
    $VCM train --corpus "$W/corpus.jsonl" --regions "$W/regions.jsonl" --images-root "$W" \
        --tokenizer "$TMP/tok.tok" --out "$out" --batch 4 --warmup 1 --seed 5 --quiet "$@"
}
train "$TMP/m.vcm" --steps 2 >/dev/null 2>&1
$VCM critic train --annotations "$W/annotations.jsonl" --regions "$W/regions.jsonl" --images-root "$W" \
    --tokenizer "$TMP/tok.tok" --out "$TMP/c.vcm" --steps 2 --batch 4 >/dev/null 2>&1
$VCM critic score --model "$TMP/c.vcm" --corpus "$W/corpus.jsonl" --regions "$W/regions.jsonl" --images-root "$W" \
    --out "$TMP/scored.jsonl" >/dev/null 2>&1

# fill DIR to the last byte
fill() { dd if=/dev/zero of="$1/ballast" bs=64k 2>/dev/null; dd if=/dev/zero of="$1/ballast2" bs=1 2>/dev/null; true; }
unfill() { rm -f "$1/ballast" "$1/ballast2"; }
# cell NAME FILE NAMED CMD...: CMD fails (exit 1) with a message naming NAMED (a regex:
# the file, or the folder it writes in) and the system's reason; the previous FILE
# (already in place) survives byte for byte
cell() {
    _name=$1; _file=$2; _named=$3; shift 3
    cp "$_file" "$TMP/before"
    check_fails "$_name: exit 1 naming the file and the reason" 1 "$_named.*(No space left on device|Read-only file system)" "$@"
    assert "$_name: the previous file is intact" cmp -s "$_file" "$TMP/before"
    assert "$_name: no temporary left" sh -c "! ls '$(dirname "$_file")' | grep -q '\\.tmp'"
}

# ---- the previous outputs, on both disks
for d in "$FULL" "$RO"; do
    cp "$TMP/m.vcm" "$d/m.vcm"
    $VCM export --model "$TMP/m.vcm" --out "$d/m.safetensors" >/dev/null
    cp "$TMP/tok.tok" "$d/t.tok"
    $VCM critic filter --corpus "$TMP/scored.jsonl" --threshold 0.5 --out "$d/kept.jsonl" >/dev/null 2>&1
    mkdir -p "$d/w"
    for f in corpus.jsonl regions.jsonl; do cp "$W/$f" "$d/w/$f"; done
done
mount -o remount,ro "$RO"

for d in "$FULL" "$RO"; do
    what=$( [ "$d" = "$FULL" ] && echo "full disk" || echo "read-only disk" )
    [ "$d" = "$FULL" ] && fill "$FULL"
    cell "train checkpoint, $what" "$d/m.vcm" m.vcm train "$d/m.vcm" --steps 2
    cell "export, $what" "$d/m.safetensors" m.safetensors $VCM export --model "$TMP/m.vcm" --out "$d/m.safetensors"
    cell "tokenizer train, $what" "$d/t.tok" t.tok $VCM tokenizer train --corpus "$W/corpus.jsonl" --vocab 400 --out "$d/t.tok"
    cell "critic filter, $what" "$d/kept.jsonl" kept.jsonl \
        $VCM critic filter --corpus "$TMP/scored.jsonl" --threshold 0.1 --out "$d/kept.jsonl"
    cell "synth, $what" "$d/w/corpus.jsonl" "/w/" $VCM synth --out "$d/w" --images 200 --seed 4 --quiet
    [ "$d" = "$FULL" ] && unfill "$FULL"
done

# ---- SIGKILL in the middle of a write: the file under its name is the old one or a whole
# new one, never a prefix (export and synth here; checkpoints in test_checkpoint.c)
K=$TMP/kill
mkdir -p "$K"
$VCM export --model "$TMP/m.vcm" --out "$K/m.safetensors" >/dev/null
$VCM synth --out "$K/w" --images 30 --seed 7 --quiet >/dev/null 2>&1
cp "$K/m.safetensors" "$TMP/st.old"; cp "$K/w/corpus.jsonl" "$TMP/corpus.old"
whole=0
for t in 1 2 3 4 5 6; do
    $VCM synth --out "$K/w" --images 400 --seed $((7 + t)) --quiet >/dev/null 2>&1 &
    p1=$!
    $VCM export --model "$TMP/m.vcm" --out "$K/m.safetensors" >/dev/null 2>&1 &
    p2=$!
    sleep 0.0$t
    kill -9 $p1 $p2 2>/dev/null
    wait $p1 $p2 2>/dev/null
    if cmp -s "$K/m.safetensors" "$TMP/st.old" && { cmp -s "$K/w/corpus.jsonl" "$TMP/corpus.old" ||
        $VCM corpus validate "$K/w/corpus.jsonl" --regions "$K/w/regions.jsonl" --images-root "$K/w" >/dev/null 2>&1; }; then
        whole=$((whole + 1))
    fi
    cp "$K/w/corpus.jsonl" "$TMP/corpus.old"
done
assert "kill -9 during export and synth: old or whole new files, 6 of 6" [ "$whole" = 6 ]

summary
