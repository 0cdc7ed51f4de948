#!/bin/sh
# make demo: the whole LSKD pipeline on the embedded synthetic world, on this machine.
#   synth world -> BPE tokenizer -> train the nano student -> multiple-choice eval ->
#   generate on a held-out synthetic image and on a real photograph -> summary.
# Everything lands in demo/ (DEMO_DIR). Sizes can be changed through the environment:
#   DEMO_IMAGES (world size), DEMO_STEPS, DEMO_BATCH.
set -e
BUILD=${1:-build}
VCM="$BUILD/vcm"
DIR=${DEMO_DIR:-demo}
IMAGES=${DEMO_IMAGES:-3000}
STEPS=${DEMO_STEPS:-3000}
BATCH=${DEMO_BATCH:-16}
SEED=${DEMO_SEED:-1}
PHOTO=${DEMO_PHOTO:-/usr/lib/python3/dist-packages/skimage/data/rocket.jpg}
mkdir -p "$DIR"
t0=$(date +%s)
stamp() { echo "demo: [$(( $(date +%s) - t0 )) s] $*" >&2; }

stamp "1/5 synthetic world: $IMAGES images (vcm synth)"
"$VCM" synth --out "$DIR/world" --images "$IMAGES" --seed "$SEED" --quiet > "$DIR/synth.json"
stamp "$(cat "$DIR/synth.json")"

stamp "2/5 tokenizer (vcm tokenizer train)"
"$VCM" tokenizer train --corpus "$DIR/world/corpus.jsonl" --vocab 2048 --out "$DIR/tok.tok" > "$DIR/tokenizer.json"

stamp "3/5 training the nano student, $STEPS steps of $BATCH (vcm train)"
t_train=$(date +%s)
"$VCM" train --config nano --corpus "$DIR/world/corpus.jsonl" --regions "$DIR/world/regions.jsonl" \
    --images-root "$DIR/world" --tokenizer "$DIR/tok.tok" --out "$DIR/nano.vcm" \
    --steps "$STEPS" --batch "$BATCH" --lr 3e-3 --warmup 100 --seed "$SEED" \
    --log "$DIR/train.csv" --log-every 50 --ckpt-every 500 > "$DIR/train.json"
train_s=$(( $(date +%s) - t_train ))

stamp "4/5 multiple-choice evaluation on mc_test (vcm eval)"
"$VCM" eval --model "$DIR/nano.vcm" --mc "$DIR/world/mc_test.jsonl" \
    --regions "$DIR/world/regions.jsonl" --images-root "$DIR/world" > "$DIR/eval.json"

stamp "5/5 generation (vcm generate)"
# a held-out image: the first test image, with its regions from the mapping
img=$(head -1 "$DIR/world/mc_test.jsonl" | sed -E 's/.*"image": *"([^"]*)".*/\1/')
boxes=$(grep -F "\"$img\"" "$DIR/world/regions.jsonl" | head -1 | grep -oE '\[\[[0-9., ]+\]\]' | tr -d '[] ' | head -3)
set --
for b in $boxes; do set -- "$@" --region "$b"; done
"$VCM" generate --model "$DIR/nano.vcm" --image "$DIR/world/$img" "$@" \
    --question "what could [0] be used for?" --samples 2 --temperature 0.7 --seed 1 \
    --draw "$DIR/generate_synth.png" > "$DIR/generate_synth.jsonl"
"$VCM" generate --model "$DIR/nano.vcm" --image "$PHOTO" \
    --region 295,125,345,415 --region 0,0,95,427 --region 545,0,640,427 --samples 2 --seed 1 \
    --draw "$DIR/generate_photo.png" > "$DIR/generate_photo.jsonl"

total=$(( $(date +%s) - t0 ))
num() { sed -E "s/.*\"$2\": *([-0-9.eE+]+).*/\1/" "$1"; }
echo
echo "vcm demo summary ($DIR/)"
echo "| what | value |"
echo "|---|---|"
echo "| synthetic world | $(num "$DIR/synth.json" images) images, $(num "$DIR/synth.json" records) corpus records |"
echo "| tokenizer | $(num "$DIR/tokenizer.json" vocab) ids |"
echo "| training | $STEPS steps x $BATCH, final loss $(num "$DIR/train.json" loss), $(num "$DIR/train.json" samples_per_s) samples/s, ${train_s} s |"
echo "| mc_test accuracy | $(num "$DIR/eval.json" accuracy) (n = $(num "$DIR/eval.json" n); chance 0.25) |"
echo "| mc_test accuracy, other-region items | $(num "$DIR/eval.json" accuracy_other_region) |"
echo "| generation, held-out image | $DIR/generate_synth.jsonl, boxes drawn in $DIR/generate_synth.png |"
echo "| generation, photograph | $DIR/generate_photo.jsonl, boxes drawn in $DIR/generate_photo.png |"
echo "| total time | ${total} s |"
echo
echo "first generated sample on the held-out image:"
head -1 "$DIR/generate_synth.jsonl"
