#!/bin/sh
# Real data in (issue 15): vcm regions import-vg over a hand-written Visual Genome
# fixture (tests/data/vg/, images from Debian's python3-skimage), the mapping it writes
# validated against a corpus in the LSKD release's format; corpus records that carry
# their own boxes ("references") validated and trained on without a mapping; every bad
# variant refused with file, entry and problem, exit 2, and no output file left.
. tests/lib.sh
D=tests/data
V=tests/data/vg
IMG=${VCM_SKIMAGE_DATA:-/usr/lib/python3/dist-packages/skimage/data}

# ---- help and usage
check "regions --help" $VCM regions --help
out_has "regions --help lists import-vg" "import-vg"
check "regions import-vg --help" $VCM regions import-vg --help
out_has "import-vg --help usage" "usage: vcm regions import-vg REGION_DESCRIPTIONS.json --out MAP.jsonl"
out_has "import-vg --help documents the selection" "--max-regions N"
check_msg "regions without a subcommand" 2 "usage: vcm regions" $VCM regions
check_msg "regions unknown subcommand" 2 "unknown subcommand 'import-coco'" $VCM regions import-coco
check_msg "import-vg needs --out" 2 "--out is required" $VCM regions import-vg $V/region_descriptions.json
check_msg "import-vg needs the file" 2 "expected one REGION_DESCRIPTIONS.json" $VCM regions import-vg --out "$TMP/m.jsonl"
check_msg "import-vg bad --max-regions" 2 "max regions must be in 1..4096" \
    $VCM regions import-vg $V/region_descriptions.json --out "$TMP/m.jsonl" --max-regions 0
assert "a refused option leaves no file" sh -c "! ls '$TMP'/m.jsonl* >/dev/null 2>&1"

# ---- the fixture: exactly the expected mapping (selection, order, obj_guess, names)
imp() { $VCM regions import-vg "$@" --objects $V/objects.json --image-data $V/image_data.json; }
check "import-vg the fixture" imp $V/region_descriptions.json --out "$TMP/map.jsonl"
assert "the mapping is the expected one byte for byte" cmp -s "$TMP/map.jsonl" $V/expected_regions.jsonl
out_has "summary: images" '"images":4,"images_written":3,"images_without_regions":1'
out_has "summary: regions kept, small, near-duplicate" '"regions":15,"regions_kept":12,"regions_small":2,"regions_duplicate":1,"regions_over_max":0'
out_has "summary: obj_guess from objects.json" '"obj_guess_set":6,"image_data_images":4,"objects":6,"object_names":6'
assert "no temporary left behind" sh -c "! ls '$TMP'/map.jsonl.tmp >/dev/null 2>&1"
tr -d '\n' < $V/region_descriptions.json > "$TMP/one_line.json"   # VG's own layout: one line
check "import-vg a one-line file" imp "$TMP/one_line.json" --out "$TMP/map1.jsonl"
assert "one line gives the same mapping" cmp -s "$TMP/map1.jsonl" $V/expected_regions.jsonl
gzip -c $V/region_descriptions.json > "$TMP/rd.json.gz"
check "import-vg a gzip file" imp "$TMP/rd.json.gz" --out "$TMP/map2.jsonl"
assert "gzip gives the same mapping" cmp -s "$TMP/map2.jsonl" $V/expected_regions.jsonl
check "--max-regions 2 --image-dir photos" imp $V/region_descriptions.json --out "$TMP/map3.jsonl" --max-regions 2 --image-dir photos
out_has "--max-regions counts what it drops" '"regions_kept":6,"regions_small":2,"regions_duplicate":1,"regions_over_max":6'
assert "--image-dir names the images DIR/<id>.jpg" grep -q '"image":"photos/3.jpg"' "$TMP/map3.jsonl"

# ---- the mapping against a corpus in the release's format, the images checked
mkdir -p "$TMP/vg/VG_100K" "$TMP/vg/VG_100K_2"
ln -s "$IMG/astronaut.png" "$TMP/vg/VG_100K/1.jpg"
ln -s "$IMG/chelsea.png" "$TMP/vg/VG_100K/2.jpg"
ln -s "$IMG/rocket.jpg" "$TMP/vg/VG_100K_2/3.jpg"
check "corpus validate accepts the imported mapping" $VCM corpus validate $V/corpus.jsonl --regions "$TMP/map.jsonl" --images-root "$TMP/vg"
out_has "all 4 records ok, 3 images decoded" '"records":4,"ok":4,"bad":0,"kinds":{"corpus":4,"annotation":0,"mc":0},"bad_by_reason":{},"images_checked":3'

# ---- every bad variant: file, entry (index, image, line, byte), problem; exit 2; no output
printf 'precious\n' > "$TMP/keep.jsonl"
bad_vg() {   # NAME TEXT ARGS...: refused with TEXT, and the existing --out file is untouched
    name=$1; text=$2; shift 2
    check_msg "import-vg refuses $name" 2 "$text" $VCM regions import-vg "$@" --out "$TMP/keep.jsonl"
    assert "import-vg $name: the old output is intact, no temporary" sh -c \
        "[ \"\$(cat '$TMP/keep.jsonl')\" = precious ] && ! ls '$TMP'/keep.jsonl.tmp >/dev/null 2>&1"
}
bad_vg missing_phrase "$V/bad/missing_phrase.json: entry 1 (image 2, line 3, byte 850): regions[1] (region 202): missing field \"phrase\"" \
    $V/bad/missing_phrase.json
bad_vg wrong_type "$V/bad/wrong_type.json: entry 1 (image 2, line 3, byte 850): regions[2] (region 203): field \"width\": expected a number, got a string" \
    $V/bad/wrong_type.json
bad_vg negative_width "$V/bad/negative_width.json: entry 2 (image 3, line 4, byte 1299): regions[0] (region 301): negative width (-54)" \
    $V/bad/negative_width.json
bad_vg box_outside "$V/bad/box_outside.json: entry 1 (image 2, line 3, byte 850): regions[0] (region 201): box [0, 0, 460, 300] (x, y, x + width, y + height) is outside the image (451x300)" \
    $V/bad/box_outside.json --image-data $V/image_data.json
bad_vg regions_not_list "entry 2 (image 3, line 4, byte 1299): field \"regions\": expected a list, got an object" $V/bad/regions_not_list.json
bad_vg duplicate_image "entry 4 (image 2, line 6, byte 1797): image 2 is already entry 1" $V/bad/duplicate_image.json
bad_vg image_id_mismatch "entry 0 (image 1, line 2, byte 2): regions[3] (region 104): field \"image_id\": 2, but the entry is image 1" \
    $V/bad/image_id_mismatch.json
bad_vg syntax "$V/bad/syntax.json: entry 2 (line 4, byte 1316): '}' expected near '\"regions\"'" $V/bad/syntax.json
bad_vg cut_short "$V/bad/cut_short.json: entry 2 (line 4, byte 1299): the file ends inside it (cut short?)" $V/bad/cut_short.json
bad_vg not_a_list "$V/bad/not_a_list.json: line 1, byte 0: expected a JSON list ('[') at the top level" $V/bad/not_a_list.json
bad_vg objects_names "$V/bad/objects_names.json: entry 2 (image 3, line 4, byte 451): objects[0] (object 3001): field \"names\": expected a non-empty list of strings, got a string" \
    $V/region_descriptions.json --objects $V/bad/objects_names.json
bad_vg image_data_no_height "$V/bad/image_data_no_height.json: entry 2 (image 3, line 4, byte 290): missing field \"height\"" \
    $V/region_descriptions.json --image-data $V/bad/image_data_no_height.json
tr -d '\n' < $V/bad/missing_phrase.json > "$TMP/bad_one_line.json"
bad_vg one_line_missing_phrase "entry 1 (image 2, line 1, byte 848): regions[1] (region 202): missing field \"phrase\"" \
    "$TMP/bad_one_line.json"
bad_vg missing_file "$TMP/nope.json: cannot open" "$TMP/nope.json"

# --clip and --skip-bad: the two ways past a bad box
check "--clip clips a box past the image" $VCM regions import-vg $V/bad/box_outside.json --image-data $V/image_data.json --clip --out "$TMP/clip.jsonl"
out_has "--clip counts it" '"boxes_clipped":1'
assert "--clip: the box ends at the image's edge" grep -q '"boxes":\[\[0,0,451,300\]\]' "$TMP/clip.jsonl"
check "--skip-bad drops a bad region" $VCM regions import-vg $V/bad/box_outside.json --image-data $V/image_data.json --skip-bad --out "$TMP/skip.jsonl"
out_has "--skip-bad counts it by reason" '"bad_entries":0,"bad_regions_or_objects":1,"bad_by_reason":{"box_outside_image":1}'

# ---- records with "references": no mapping needed
check "validate references without --regions" $VCM corpus validate $D/lskd_references.jsonl --images-root "$IMG"
out_has "references: 6 ok, images decoded, no mapping" '"records":6,"ok":6,"bad":0,"kinds":{"corpus":6,"annotation":0,"mc":0},"bad_by_reason":{},"images_checked":4,"with_references":6,"mapping":null'
check "validate references with a mapping too" $VCM corpus validate $D/lskd_references.jsonl --regions $D/lskd_regions.jsonl
check_msg "a record without references needs the mapping" 2 \
    "$D/bad/references_absent.jsonl:3: image \"astronaut.png\": the record has no \"references\" and no region mapping was given (--regions)" \
    $VCM corpus validate $D/bad/references_absent.jsonl
bad_ref() {   # FILE REASON TEXT [flags]: refused with TEXT; counted under REASON with --skip-bad
    f=$1; reason=$2; text=$3; shift 3
    check_msg "validate refuses $f" 2 "$D/bad/$f:3: $text" $VCM corpus validate $D/bad/$f "$@"
    check "validate $f --skip-bad" $VCM corpus validate $D/bad/$f --skip-bad "$@"
    out_has "$f --skip-bad: 3 ok, 1 bad" '"records":4,"ok":3,"bad":1,'
    out_has "$f --skip-bad: counted as $reason" "\"bad_by_reason\":{\"$reason\":1}"
}
bad_ref references_wrong_type.jsonl wrong_type 'field "references": expected a list of regions, got a string'
bad_ref references_box_3_numbers.jsonl bad_box 'field "references[1].boxes[0]": expected a box [x0, y0, x1, y1], got a list of fewer than 4 numbers'
bad_ref references_flat_box.jsonl bad_box 'field "references[1].boxes": expected a list of boxes [[x0, y0, x1, y1], ...], got a list of numbers'
bad_ref references_box_string.jsonl bad_box 'field "references[0].boxes[0][2]": a coordinate must be a number, got a string'
bad_ref references_missing_boxes.jsonl missing_field 'field "references[1]": missing field "boxes"'
bad_ref references_missing_region.jsonl missing_region "field \"region\": region id 1 is not in the record's \"references\" (1 region)"
bad_ref references_box_outside.jsonl box_outside_image 'field "references": region 1: box [275, 340, 530, 512] is outside the image "astronaut.png" (512x512)' \
    --images-root "$IMG"
bad_ref references_absent.jsonl image_not_in_mapping 'image "astronaut.png": the record has no "references" and no region mapping was given'

# ---- training on records with references, no mapping file
check "tokenizer on the references corpus" $VCM tokenizer train --corpus $D/lskd_references.jsonl --vocab 400 --out "$TMP/ref.tok"
check "train --steps 2 (nano) without --regions" $VCM train --corpus $D/lskd_references.jsonl --images-root "$IMG" \
    --tokenizer "$TMP/ref.tok" --out "$TMP/ref.vcm" --config nano --steps 2 --batch 2 --warmup 1 --threads 2 --quiet
out_has "train: 2 steps, nothing skipped" '"steps":2,'
assert "train: the checkpoint is written" test -s "$TMP/ref.vcm"
check_msg "train refuses a record without references and no mapping" 2 \
    "$D/bad/references_absent.jsonl:3: image \"astronaut.png\": the record has no \"references\"" \
    $VCM train --corpus $D/bad/references_absent.jsonl --images-root "$IMG" --tokenizer "$TMP/ref.tok" \
    --out "$TMP/ref2.vcm" --steps 2 --batch 4 --threads 2 --quiet
check_msg "train refuses a bad references box" 2 \
    "$D/bad/references_box_3_numbers.jsonl:3: field \"references[1].boxes[0]\": expected a box" \
    $VCM train --corpus $D/bad/references_box_3_numbers.jsonl --images-root "$IMG" --tokenizer "$TMP/ref.tok" \
    --out "$TMP/ref2.vcm" --steps 2 --batch 4 --threads 2 --quiet

summary
