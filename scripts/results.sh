#!/bin/sh
# make results: the paper's two findings measured on a fresh synthetic world
# (issue 5, docs/RESULTS.md).
#   synth world -> tokenizer -> 14 students and a critic -> docs/RESULTS.md
# Students: corpus (a) unfiltered, (b) critic-filtered (prediction >= 0.8), (c) filtered
# by the hidden truth (synth.fault null), each with region input roi, draw, none and
# text (the text-only baseline), plus roi on 1/4 and 1/2 of (b). All students get the
# same steps, batch, lr and seed. The critic starts from student (a)-roi.
# Jobs run RESULTS_JOBS at a time (default 2), each on RESULTS_THREADS threads (1): on
# the 2-core machine two one-thread trainings give more samples/s than one on two.
# Knobs (environment): RESULTS_DIR (results), RESULTS_IMAGES (3000), RESULTS_STEPS
# (1500), RESULTS_BATCH (16), RESULTS_LR (3e-3), RESULTS_SEED (1), RESULTS_ANNOTATED
# (5000), RESULTS_CRITIC_STEPS (600), RESULTS_CRITIC_LR (3e-4), RESULTS_THRESHOLD
# (0.8), RESULTS_JOBS (2), RESULTS_THREADS (1), RESULTS_OUT (docs/RESULTS.md).
# Dry run: RESULTS_IMAGES=300 RESULTS_STEPS=40 RESULTS_CRITIC_STEPS=20 RESULTS_OUT=/tmp/r.md
set -e
BUILD=${1:-build}
VCM="$BUILD/vcm"
DIR=${RESULTS_DIR:-results}
IMAGES=${RESULTS_IMAGES:-3000}
STEPS=${RESULTS_STEPS:-1500}
BATCH=${RESULTS_BATCH:-16}
LR=${RESULTS_LR:-3e-3}
SEED=${RESULTS_SEED:-1}
ANNOTATED=${RESULTS_ANNOTATED:-5000}
CRITIC_STEPS=${RESULTS_CRITIC_STEPS:-600}
CRITIC_LR=${RESULTS_CRITIC_LR:-3e-4}
THRESHOLD=${RESULTS_THRESHOLD:-0.8}
JOBS=${RESULTS_JOBS:-2}
THREADS=${RESULTS_THREADS:-1}
OUT=${RESULTS_OUT:-docs/RESULTS.md}
WARMUP=$(( STEPS / 15 > 1 ? STEPS / 15 : 1 ))

W="$DIR/world"
t0=$(date +%s)
stamp() { echo "results: [$(( $(date +%s) - t0 )) s] $*" >&2; }
# a field of a one-line JSON object: num FILE KEY
num() { [ -s "$1" ] && sed -nE "s/.*\"$2\": *(null|[-0-9.eE+]+).*/\1/p" "$1" | head -1; }
# The queue, in the order jobs start: (a)-roi first (the critic starts from it), the
# critic when (a)-roi is about to finish, then the main comparisons before the rest.
QUEUE="a_roi a_text a_none critic c_roi b_roi b_none b_text a_draw c_none c_text b_draw c_draw b_q2 b_q1"
# RESULTS_RESUME=1 continues a stopped run in $DIR: the world, the tokenizer and every
# job marked done are kept; the others run again (RESULTS_QUEUE may reorder them).
RESUME=${RESULTS_RESUME:-}
[ -n "$RESULTS_QUEUE" ] && QUEUE=$RESULTS_QUEUE

if [ -z "$RESULTS_TABLE_ONLY" ]; then   # RESULTS_TABLE_ONLY=1: only write the table of $DIR
[ -x "$VCM" ] || { echo "results: $VCM not found (make BUILD=$BUILD first)" >&2; exit 1; }
if [ -n "$RESUME" ] && [ -s "$DIR/tok.tok" ]; then
rm -rf "$DIR/failed" "$DIR/lock" "$DIR/total_s"
mkdir -p "$DIR/done" "$DIR/failed" "$DIR/logs"
t0=$(( $(date +%s) - $(cat "$DIR/elapsed_s" 2>/dev/null || echo 0) ))
stamp "resuming $DIR: done before: $(ls "$DIR/done" | tr '\n' ' ')"
else
rm -rf "$DIR"
mkdir -p "$DIR/done" "$DIR/failed" "$DIR/logs"

stamp "1 synthetic world: $IMAGES images, $ANNOTATED annotated records (vcm synth)"
"$VCM" synth --out "$W" --images "$IMAGES" --seed "$SEED" --annotated "$ANNOTATED" --quiet > "$DIR/synth.json"
stamp "$(cat "$DIR/synth.json")"
stamp "2 tokenizer (vcm tokenizer train)"
"$VCM" tokenizer train --corpus "$W/corpus.jsonl" --vocab 2048 --out "$DIR/tok.tok" > "$DIR/tokenizer.json" 2>/dev/null

# The corpora that do not need the critic.
cp "$W/corpus.jsonl" "$DIR/corpus_a.jsonl"
grep -F '"fault": null' "$W/corpus.jsonl" > "$DIR/corpus_c.jsonl"
# Held-out records for the critic: the corpus minus every annotated record.
grep -oE '"index": "[^"]*"' "$W/annotations.jsonl" > "$DIR/annotated_index.txt"
grep -v -F -f "$DIR/annotated_index.txt" "$W/corpus.jsonl" > "$DIR/heldout.jsonl" || true
fi

# ---------------------------------------------------------------- jobs
# Each job writes done/NAME or failed/NAME; a job that needs another waits for it.
wait_for() {
    while [ ! -e "$DIR/done/$1" ]; do
        [ -e "$DIR/failed/$1" ] && { echo "results: $1 failed, so $2 cannot run" >&2; return 1; }
        sleep 2
    done
}

# student NAME CORPUS REGION_INPUT: train, then multiple choice on mc_test.
student() {
    name=$1; corpus=$2; ri=$3
    stamp "student $name: $ri on $(wc -l < "$corpus") records, $STEPS steps x $BATCH"
    s=$(date +%s)
    "$VCM" train --config nano --region-input "$ri" --corpus "$corpus" --regions "$W/regions.jsonl" \
        --images-root "$W" --tokenizer "$DIR/tok.tok" --out "$DIR/$name.vcm" --steps "$STEPS" --batch "$BATCH" \
        --lr "$LR" --warmup "$WARMUP" --seed "$SEED" --threads "$THREADS" --ckpt-every "$STEPS" \
        --log "$DIR/logs/$name.csv" --log-every 100 > "$DIR/$name.train.json" 2> "$DIR/logs/$name.err"
    train_s=$(( $(date +%s) - s ))
    "$VCM" eval --model "$DIR/$name.vcm" --mc "$W/mc_test.jsonl" --open "$W/open_test.jsonl" --regions "$W/regions.jsonl" \
        --images-root "$W" --open-predictions "$DIR/logs/$name.open.jsonl" --threads "$THREADS" --quiet > "$DIR/$name.eval.json"
    echo "$train_s" > "$DIR/$name.train_s"
    stamp "student $name: $(cat "$DIR/$name.eval.json") (trained in ${train_s} s)"
}

critic() {
    wait_for a_roi critic
    stamp "critic: train from student a_roi on $(wc -l < "$W/annotations.jsonl") annotations, $CRITIC_STEPS steps"
    s=$(date +%s)
    "$VCM" critic train --annotations "$W/annotations.jsonl" --regions "$W/regions.jsonl" --images-root "$W" \
        --init "$DIR/a_roi.vcm" --out "$DIR/critic.vcm" --steps "$CRITIC_STEPS" --batch "$BATCH" --lr "$CRITIC_LR" \
        --seed "$SEED" --threads "$THREADS" --quiet > "$DIR/critic.train.json"
    stamp "critic: $(cat "$DIR/critic.train.json")"
    "$VCM" critic score --model "$DIR/critic.vcm" --corpus "$W/corpus.jsonl" --regions "$W/regions.jsonl" \
        --images-root "$W" --out "$DIR/scored.jsonl" --threads "$THREADS" --quiet > "$DIR/critic.score.json"
    "$VCM" critic filter --corpus "$DIR/scored.jsonl" --threshold "$THRESHOLD" --out "$DIR/corpus_b.jsonl" \
        > "$DIR/critic.filter.json" 2>/dev/null
    # the critic on the records it never saw (the held-out part of the scored corpus)
    grep -v -F -f "$DIR/annotated_index.txt" "$DIR/scored.jsonl" > "$DIR/heldout_scored.jsonl" || true
    "$VCM" critic eval --corpus "$DIR/heldout_scored.jsonl" --threshold "$THRESHOLD" > "$DIR/critic.eval.json"
    "$VCM" critic eval --corpus "$DIR/scored.jsonl" --threshold "$THRESHOLD" > "$DIR/critic.eval_all.json"
    awk 'NR % 4 == 1' "$DIR/corpus_b.jsonl" > "$DIR/corpus_b_q1.jsonl"   # 1/4, spread over the images
    awk 'NR % 2 == 1' "$DIR/corpus_b.jsonl" > "$DIR/corpus_b_q2.jsonl"   # 1/2
    echo "$(( $(date +%s) - s ))" > "$DIR/critic.s"
    stamp "critic: held-out $(cat "$DIR/critic.eval.json" | head -c 300)"
}

run_job() {
    case $1 in
        critic) critic ;;
        a_*) student "$1" "$DIR/corpus_a.jsonl" "${1#a_}" ;;
        c_*) student "$1" "$DIR/corpus_c.jsonl" "${1#c_}" ;;
        b_q1) wait_for critic "$1"; student "$1" "$DIR/corpus_b_q1.jsonl" roi ;;
        b_q2) wait_for critic "$1"; student "$1" "$DIR/corpus_b_q2.jsonl" roi ;;
        b_*) wait_for critic "$1"; student "$1" "$DIR/corpus_b.jsonl" "${1#b_}" ;;
    esac
}

echo 0 > "$DIR/next"
take() {  # the next job name, or nothing: a mkdir lock around a counter
    until mkdir "$DIR/lock" 2>/dev/null; do sleep 0.2; done
    n=$(cat "$DIR/next"); echo $(( n + 1 )) > "$DIR/next"
    rmdir "$DIR/lock"
    set -- $QUEUE
    [ "$n" -lt $# ] && shift "$n" && echo "$1"
    return 0
}
worker() {
    set +e   # a failed job is recorded, the others go on
    while job=$(take) && [ -n "$job" ]; do
        [ -e "$DIR/done/$job" ] && continue   # a resumed run keeps what is done
        (set -e; run_job "$job")   # a plain command, so that set -e holds inside the job
        rc=$?
        echo $(( $(date +%s) - t0 )) > "$DIR/elapsed_s"   # the clock a resumed run continues
        if [ $rc = 0 ]; then touch "$DIR/done/$job"
        else touch "$DIR/failed/$job"; stamp "FAILED: $job (logs in $DIR/logs/)"; fi
    done
}
stamp "3 students and critic: $(echo $QUEUE | wc -w) jobs, $JOBS at a time, $THREADS thread(s) each"
i=0
while [ $i -lt "$JOBS" ]; do worker & i=$((i + 1)); done
wait
total=$(( $(date +%s) - t0 ))
echo "$total" > "$DIR/total_s"
stamp "all jobs finished in ${total} s"
fi
total=$(cat "$DIR/total_s" 2>/dev/null || echo "unfinished, $(( $(date +%s) - $(stat -c %Y "$DIR/synth.json") )) so far")

# ---------------------------------------------------------------- the table
cell() {  # cell NAME: "items naming the region / other-region items"
    f="$DIR/$1.eval.json"
    [ -s "$f" ] || { echo "failed"; return; }
    printf '%.3f / %.3f' "$(num "$f" accuracy_named)" "$(num "$f" accuracy_other_region)"
}
# a field of the "open" report of an eval line (its head, or a sub-object): open_num FILE [GROUP] KEY
open_num() {
    if [ $# = 2 ]; then sed -nE 's/.*"open":\{([^{]*)"literal".*/\1/p' "$1" | sed -nE "s/.*\"$2\":(null|[-0-9.eE+]+).*/\1/p"
    else sed -nE "s/.*\"open\":.*\"$2\":\\{([^}]*)\\}.*/\\1/p" "$1" | sed -nE "s/.*\"$3\":(null|[-0-9.eE+]+).*/\\1/p"; fi
}
ocell() {  # ocell NAME [GROUP]: "refers / correct" of the open-ended answers
    f="$DIR/$1.eval.json"
    [ -s "$f" ] || { echo "failed"; return; }
    if [ $# = 1 ]; then printf '%.3f / %.3f' "$(open_num "$f" refers)" "$(open_num "$f" correct)"
    else printf '%.3f / %.3f' "$(open_num "$f" "$2" refers)" "$(open_num "$f" "$2" correct)"; fi
}
gcell() { f="$DIR/$1.eval.json"; [ -s "$f" ] && printf '%.3f' "$(num "$f" accuracy_grounding)" || echo failed; }
fcell() { f="$DIR/$1.eval.json"; [ -s "$f" ] && { v=$(open_num "$f" first_id_prob); [ "$v" = null ] && echo "–" || printf '%.3f' "$v"; } || echo failed; }
acc() { f="$DIR/$1.eval.json"; [ -s "$f" ] && num "$f" "$2" || echo 0; }
better() {  # better A B KEY: "yes"/"no" and the two numbers
    [ -s "$DIR/$1.eval.json" ] && [ -s "$DIR/$2.eval.json" ] || { echo "not measured ($1 or $2 failed)"; return; }
    a=$(acc "$1" "$3"); b=$(acc "$2" "$3")
    if awk "BEGIN{exit !($a > $b)}"; then echo "yes ($a vs $b)"; else echo "no ($a vs $b)"; fi
}
recs() { wc -l < "$1" | tr -d ' '; }
ce="$DIR/critic.eval.json"
ct="$DIR/critic.train.json"
cev() { [ -s "$ce" ] && num "$ce" "$1" || echo "failed"; }
failed=$(ls "$DIR/failed" | tr '\n' ' ')
for j in $QUEUE; do [ -e "$DIR/done/$j" ] || [ -e "$DIR/failed/$j" ] || failed="$failed$j(not run) "; done
{
echo "# Results: the critic, corpus filtering and region input"
echo
echo "Every number below comes from one run of \`make results\` (\`scripts/results.sh\`) on a"
echo "freshly built synthetic world (docs/SYNTH.md), written by the script itself."
echo "Run on $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average at the end"
echo "$(cut -d' ' -f1-3 /proc/loadavg) (the machine was shared); total time **${total} s**."
[ -n "$failed" ] && echo && echo "**Failed jobs: $failed** (their cells say \"failed\"; logs in \`$DIR/logs/\`)."
echo
echo "## Settings"
echo
echo "| what | value |"
echo "|---|---|"
echo "| world | \`vcm synth --images $IMAGES --seed $SEED --annotated $ANNOTATED\`: $(num "$DIR/synth.json" records) corpus records, mc_test $(num "$DIR/synth.json" mc_test) items ($(num "$DIR/synth.json" mc_test_other_region) other-region, $(num "$DIR/synth.json" mc_test_grounding) grounding), open_test $(num "$DIR/synth.json" open_test) questions |"
echo "| students | nano, $STEPS steps × $BATCH, lr $LR (warmup $WARMUP, cosine), seed $SEED, the same for all 14 |"
echo "| critic | nano trunk from student (a)-roi (\`--init\`), $CRITIC_STEPS steps × $BATCH, lr $CRITIC_LR, on the annotations' majority votes ($(num "$ct" n_train) train / $(num "$ct" n_val) validation) |"
echo "| filter | keep prediction ≥ $THRESHOLD (\`vcm critic filter\`) |"
echo "| evaluation | \`vcm eval\` on mc_test: multiple choice, mean log-prob per choice token (chance 0.25 on the items naming the region, about 0.33 on the grounding items); \`vcm eval --open\` on open_test: greedy answers with every region given, judged against the true answer (docs/INFERENCE.md) |"
echo "| parallelism | $JOBS jobs at a time, $THREADS thread(s) each |"
echo
echo "## The critic against the hidden fault labels"
echo
echo "Scored on the $(recs "$DIR/heldout.jsonl") corpus records that are not among the annotations"
echo "(the critic never saw them); a record is good when its \`synth.fault\` is null."
echo
echo "| held-out records | good | ROC-AUC | precision at $THRESHOLD | recall at $THRESHOLD | kept | ROC-AUC on its validation votes |"
echo "|---|---|---|---|---|---|---|"
echo "| $(cev with_truth) | $(cev good) | $(cev auc) | $(cev precision) | $(cev recall) | $(cev kept_share) | $(num "$ct" val_auc) |"
echo
echo "Precision: the share of good records among those kept; recall: the share of the good"
echo "records that are kept. The unfiltered corpus is $(awk "BEGIN{printf \"%.1f\", 100*$(recs "$DIR/corpus_c.jsonl")/$(recs "$DIR/corpus_a.jsonl")}")% good."
echo
echo "## Students: multiple-choice accuracy on mc_test (items naming the region / other-region items)"
echo
echo "| training corpus | records | roi | draw | none | text-only baseline |"
echo "|---|---|---|---|---|---|"
echo "| (a) unfiltered | $(recs "$DIR/corpus_a.jsonl") | $(cell a_roi) | $(cell a_draw) | $(cell a_none) | $(cell a_text) |"
nb=$( [ -s "$DIR/corpus_b.jsonl" ] && recs "$DIR/corpus_b.jsonl" || echo failed)
echo "| (b) critic-filtered (≥ $THRESHOLD) | $nb | $(cell b_roi) | $(cell b_draw) | $(cell b_none) | $(cell b_text) |"
echo "| (c) filtered by the true labels | $(recs "$DIR/corpus_c.jsonl") | $(cell c_roi) | $(cell c_draw) | $(cell c_none) | $(cell c_text) |"
echo
echo "Other-region items (the distractors are the right answers for other regions of the same"
echo "image) are at chance, 0.25, for a model that does not know which region is meant."
echo "\`roi\`: region tokens; \`draw\`: the boxes drawn on the pixels; \`none\`: the image"
echo "without any region information; text-only: no image, every \`[k]\` replaced by the"
echo "verbalizer's description of region k (the referring expression handed to a language model)."
echo
echo "## Students: what they answer when asked (open_test, greedy, every region given)"
echo
echo "Each cell: the share of answers that name the asked region(s) and no other / the share"
echo "that are the true answer. Then the grounding items of mc_test (choices naming"
echo "different regions) and the probability of the asked id as the first answer token."
echo
echo "| student | all | literal | relational | grounding MC | p(first id) |"
echo "|---|---|---|---|---|---|"
for c in a:unfiltered b:critic-filtered c:true-label-filtered; do
    for ri in roi draw none text; do
        j=${c%%:*}_$ri
        [ -e "$DIR/done/$j" ] || [ -e "$DIR/failed/$j" ] || continue
        echo "| ($(echo $j | cut -c1)) ${c#*:}, $ri | $(ocell $j) | $(ocell $j literal) | $(ocell $j relational) | $(gcell $j) | $(fcell $j) |"
    done
done
echo
echo "A student that cannot tell regions apart names a random region: refers near 1/regions"
echo "(about 0.3 here). The text-only baseline writes descriptions instead of ids; it refers"
echo "when its answer contains an asked region's description and no other's."
echo
echo "## Corpus size: roi students on part of the critic-filtered corpus"
echo
echo "| share of (b) | records | overall | other-region |"
echo "|---|---|---|---|"
for q in q1:¼ q2:½ roi:all; do
    n=${q%%:*}; label=${q#*:}
    case $n in q1|q2) c="$DIR/corpus_b_$n.jsonl"; s="b_$n" ;; *) c="$DIR/corpus_b.jsonl"; s=b_roi ;; esac
    r=$( [ -s "$c" ] && recs "$c" || echo failed)
    c=$(cell "$s"); [ "$c" = failed ] && c="failed / failed"
    echo "| $label | $r | $(echo "$c" | sed 's| / | \| |') |"
done
echo
echo "## Reading (computed by the script)"
echo
echo "- critic ROC-AUC ≥ 0.90 on held-out records: $(awk "BEGIN{a=\"$(cev auc)\"; if (a+0 >= 0.90) print \"yes (\" a \")\"; else print \"no (\" a \")\"}")"
echo "- critic-filtered beats unfiltered (roi, other-region items): $(better b_roi a_roi accuracy_other_region)"
echo "- critic-filtered beats unfiltered (roi, overall): $(better b_roi a_roi accuracy)"
echo "- filtered by the true labels beats unfiltered (roi, other-region): $(better c_roi a_roi accuracy_other_region)"
echo "- roi beats none on other-region items (unfiltered / critic-filtered): $(better a_roi a_none accuracy_other_region); $(better b_roi b_none accuracy_other_region)"
echo "- roi beats the text-only baseline on other-region items (unfiltered / critic-filtered): $(better a_roi a_text accuracy_other_region); $(better b_roi b_text accuracy_other_region)"
echo "- roi beats draw on other-region items (unfiltered): $(better a_roi a_draw accuracy_other_region)"
echo "- roi beats none on the grounding items (unfiltered): $(better a_roi a_none accuracy_grounding)"
echo
echo "## The paper's own figures (for a real run to compare to)"
echo
echo "Not from this script: the figures of Park et al. (2023)'s results table (the abstract in"
echo "shared/PAPER-ABSTRACT.txt states none; not re-checked here against the paper itself), the"
echo "reference for \`vcm eval --vcr\` on VCR's val.jsonl (docs/INFERENCE.md) with a real model."
echo
echo "| model (the paper's) | VCR Q→A | VCR QA→R | VCR Q→AR |"
echo "|---|---|---|---|"
echo "| BLIP-2 ViT-G, zero-shot | 56.1 | 49.8 | 28.0 |"
echo "| BLIP-2 ViT-G + LSKD | 59.0 | 56.4 | 33.4 |"
echo
echo "Sherlock comparison (the paper's): 19.5 → 29.7 with LSKD."
echo
echo "## Time"
echo
echo "| job | seconds | final loss |"
echo "|---|---|---|"
for j in $QUEUE; do
    if [ "$j" = critic ]; then echo "| critic (train, score $(recs "$DIR/corpus_a.jsonl") records, filter, eval) | $(cat "$DIR/critic.s" 2>/dev/null || echo failed) | $(num "$ct" train_loss) |"
    else echo "| $j | $(cat "$DIR/$j.train_s" 2>/dev/null || echo failed) | $(num "$DIR/$j.train.json" loss) |"; fi
done
echo "| **all** (wall clock, $JOBS at a time) | **$total** | |"
echo
echo "Command: \`make results\` (or \`sh scripts/results.sh BUILD\`), with"
echo "\`RESULTS_IMAGES=$IMAGES RESULTS_STEPS=$STEPS RESULTS_BATCH=$BATCH RESULTS_LR=$LR RESULTS_SEED=$SEED RESULTS_ANNOTATED=$ANNOTATED RESULTS_CRITIC_STEPS=$CRITIC_STEPS RESULTS_JOBS=$JOBS RESULTS_THREADS=$THREADS\`."
} > "$DIR/RESULTS.md"
cp "$DIR/RESULTS.md" "$OUT"
stamp "wrote $OUT (and $DIR/RESULTS.md); took ${total} s"
echo "results: took ${total} s"
[ -z "$failed" ]
