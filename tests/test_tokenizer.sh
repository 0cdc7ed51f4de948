#!/bin/sh
# vcm tokenizer: train / encode / decode / info from the command line.
. tests/lib.sh

# A small corpus in the released LSKD format (nested id lists, multi-id mentions).
cat >"$TMP/corpus.jsonl" <<'JSON'
{"image": "VG_100K/1.jpg", "region": [4], "region_all": [0, 2, 4], "question": ["What", "is", [4], "doing", "?"], "answer": [[4], "is", "waiting", "for", "the", "bus", "."], "rationale": [[4], "stands", "at", "a", "bus", "stop", "."]}
{"image": "VG_100K/2.jpg", "region": [0, 2], "region_all": [0, 2], "question": ["Why", "are", [0, 2], "standing", "together", "?"], "answer": ["They", "are", "waiting", "for", "the", "bus", "."], "rationale": [[0], "and", [2], "stand", "at", "the", "same", "bus", "stop", "."]}
{"image": "VG_100K/3.jpg", "region": [1], "region_all": [1], "question": ["What", "could", [1], "be", "used", "for", "?"], "answer": [[1], "could", "be", "used", "for", "waiting", "."], "rationale": ["People", "wait", "for", "the", "bus", "on", "a", "bench", "."]}
JSON
i=0; while [ $i -lt 30 ]; do cat "$TMP/corpus.jsonl"; i=$((i + 1)); done >"$TMP/big.jsonl"
gzip -c "$TMP/big.jsonl" >"$TMP/big.jsonl.gz"

check "help" $VCM tokenizer --help
check "train help" $VCM tokenizer train --help
check "encode help" $VCM tokenizer encode --help
check "decode help" $VCM tokenizer decode --help
check "info help" $VCM tokenizer info --help
check_fails "no subcommand" 2 "usage" $VCM tokenizer
check_fails "unknown subcommand" 2 "unknown subcommand" $VCM tokenizer nope

check "train jsonl" $VCM tokenizer train --corpus "$TMP/big.jsonl" --vocab 300 --out "$TMP/s.tok"
assert "train summary is JSON with the vocab" grep -q '"vocab": 300' "$TMP/out"
# a vocab larger than the text supports: training stops when no pair occurs twice
check "train to exhaustion" $VCM tokenizer train --corpus "$TMP/big.jsonl" --vocab 2048 --out "$TMP/a.tok"
assert "stopped early" grep -q '"vocab": 3[0-9][0-9],' "$TMP/out"
# a path with a quote and a backslash stays one JSON string in the summary
mkdir -p "$TMP/q\"x\\y"
check "train to an odd path" $VCM tokenizer train --corpus "$TMP/big.jsonl" --vocab 300 --out "$TMP/q\"x\\y/t.tok"
assert "the summary's out is that path" /usr/bin/python3 -c "import json,sys; sys.exit(json.load(open(sys.argv[1]))['out'] != sys.argv[2])" "$TMP/out" "$TMP/q\"x\\y/t.tok"
check "train again" $VCM tokenizer train --corpus "$TMP/big.jsonl" --vocab 2048 --out "$TMP/b.tok"
assert "training is deterministic" cmp -s "$TMP/a.tok" "$TMP/b.tok"
check "train jsonl.gz" $VCM tokenizer train --corpus "$TMP/big.jsonl.gz" --vocab 2048 --out "$TMP/c.tok"
assert "gzip corpus gives the same tokenizer" cmp -s "$TMP/a.tok" "$TMP/c.tok"
check "info" $VCM tokenizer info --tok "$TMP/a.tok" --tokens
V=$(sed -n '1s/.*"vocab": \([0-9]*\).*/\1/p' "$TMP/out")
assert "info lists every id" [ "$(wc -l <"$TMP/out")" -eq $((1 + V)) ]

# the corpus is rendered as the model reads it: lower-cased, "question: ... answer: ..."
check "encode a rendered sentence" $VCM tokenizer encode --tok "$TMP/a.tok" --text "question: what is [0] doing ?"
n=$(tr -cd ',' <"$TMP/out" | wc -c)
assert "rendered text is one token a word (8 tokens)" [ "$n" -le 7 ]
check "mention is one id" $VCM tokenizer encode --tok "$TMP/a.tok" --text "[4]"
assert "[4] -> [7]" grep -qx '\[7\]' "$TMP/out"
check "bos/eos" $VCM tokenizer encode --tok "$TMP/a.tok" --bos-eos --text "<bos>"
assert "literal <bos> is bytes, specials only from the flag" grep -q '^\[1, [0-9, ]*, 2\]$' "$TMP/out"

# stdin round trip, including odd lines
printf 'question: what is [0] doing ?\n[16] [3 <bos> [15][15]\nunicode caf\303\251 \342\234\223\n\n  two  spaces \t tab\n' >"$TMP/lines"
check "encode stdin" sh -c "$VCM tokenizer encode --tok $TMP/a.tok <$TMP/lines >$TMP/ids"
assert "one array per line" [ "$(wc -l <"$TMP/ids")" -eq 5 ]
check "decode stdin" sh -c "$VCM tokenizer decode --tok $TMP/a.tok <$TMP/ids >$TMP/back"
assert "decode(encode(x)) == x" cmp -s "$TMP/lines" "$TMP/back"
check "decode --skip-special" $VCM tokenizer decode --tok "$TMP/a.tok" --skip-special --ids '[1, 3, 2]'
assert "skip-special keeps [k]" grep -qx '\[0\]' "$TMP/out"

check "train text" $VCM tokenizer train --corpus "$TMP/lines" --vocab 280 --out "$TMP/t.tok"

# bad input: exit 2 and a message naming the file (and line)
check_fails "missing corpus" 2 "nope.jsonl" $VCM tokenizer train --corpus "$TMP/nope.jsonl" --out "$TMP/x.tok"
check_fails "missing --out" 2 "--out is required" $VCM tokenizer train --corpus "$TMP/big.jsonl"
check_fails "vocab too small" 2 "--vocab" $VCM tokenizer train --corpus "$TMP/big.jsonl" --vocab 10 --out "$TMP/x.tok"
printf '%s\n' '{"image": "a.jpg", "question": ["what", "?"], "answer": ["x"], "rationale": ["y"]}' '{"image": "b.jpg", "question": "not a list", "answer": ["x"]}' >"$TMP/bad.jsonl"
check_fails "bad record" 2 "bad.jsonl:2" $VCM tokenizer train --corpus "$TMP/bad.jsonl" --out "$TMP/x.tok"
assert "nothing written on failure" [ ! -e "$TMP/x.tok" ]
check "bad record skipped" $VCM tokenizer train --corpus "$TMP/bad.jsonl" --skip-bad --vocab 280 --out "$TMP/x.tok"
assert "skipped count reported" grep -q '"skipped": 1' "$TMP/out"
head -c 100 "$TMP/a.tok" >"$TMP/trunc.tok"
check_fails "truncated tok" 2 "trunc.tok:[0-9]+: .*truncated" $VCM tokenizer encode --tok "$TMP/trunc.tok" --text hi
sed 's/^vcm-bpe 1$/vcm-bpe 9/' "$TMP/a.tok" >"$TMP/v9.tok"
check_fails "future version" 2 "v9.tok:1: .*version 9" $VCM tokenizer encode --tok "$TMP/v9.tok" --text hi
check_fails "not a tok" 2 "corpus.jsonl:1: not a vcm tokenizer" $VCM tokenizer decode --tok "$TMP/corpus.jsonl" --ids '[]'
check_fails "decode bad JSON" 2 "stdin:1:[0-9]+:" sh -c "echo '[1, 2' | $VCM tokenizer decode --tok $TMP/a.tok"
check_fails "decode id out of range" 2 "not an id in 0..$((V - 1))" $VCM tokenizer decode --tok "$TMP/a.tok" --ids "[5, $V]"
check_fails "decode not an array" 2 "expected a JSON array" $VCM tokenizer decode --tok "$TMP/a.tok" --ids '{"a": 1}'
summary
