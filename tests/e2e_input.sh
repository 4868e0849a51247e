#!/usr/bin/env bash
# e2e_input.sh — bad input as a user meets it, through the nnsearch program: a config that
# would cost minutes to parse, a model too large for the machine, a damaged study, label
# columns that cannot train a classifier. Each case must give one line and exit 2, quickly,
# and leave every file it was given untouched. Not the located messages of ordinary config
# and data mistakes: those are e2e_cli.sh's and the unit tests'.
# usage: tests/e2e_input.sh PATH/TO/nnsearch   (run from the repository root)
set -uo pipefail
NS=${1:?usage: e2e_input.sh NNSEARCH}
NS=$(cd "$(dirname "$NS")" && pwd)/$(basename "$NS")
T=$(mktemp -d /tmp/nnsearch-e2e-input-XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }

# expect_error NAME EXPECTED_SUBSTRING CMD... : exit code 2 within 20 s, one stderr line
# holding the substring
expect_error() {
  local name=$1 want=$2; shift 2
  timeout 20 "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [[ $rc -ne 2 ]]; then bad "$name: exit $rc, expected 2 ($(head -c 300 "$T/err"))"; return; fi
  if [[ $(wc -l <"$T/err") -ne 1 ]]; then bad "$name: expected one stderr line, got: $(head -c 600 "$T/err")"; return; fi
  if ! grep -qF -- "$want" "$T/err"; then bad "$name: '$want' not in: $(cat "$T/err")"; return; fi
  ok
}
# fast NAME SECONDS CMD...: CMD ends within SECONDS (its exit status is not judged here).
fast() {
  local name=$1 lim=$2; shift 2
  local t0 t1
  t0=$(date +%s.%N); timeout 10 "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
  check "$name: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s, at most $lim s" \
    awk -v a="$t0" -v b="$t1" -v l="$lim" 'BEGIN { exit !(b - a <= l) }'
}
TINY=$PWD/configs/data/tiny.csv

# --- 1. a config that costs minutes to parse: 150,000 nested lists (300 KB) kept libyaml's
# scanner busy for about a minute; now refused at once, located
python3 -c "
d = 150000
print('data:\n  train: $TINY\nmodel:\n  hidden: ' + '[' * d + ']' * d)" >"$T/deep.yaml"
expect_error "deeply nested config" "deep.yaml:4:" "$NS" train "$T/deep.yaml" -o "$T/deep.nsm"
check "the nesting is named" grep -q "nested more than 16 deep" "$T/err"
fast "deeply nested config refused" 2 "$NS" train "$T/deep.yaml" -o "$T/deep.nsm"
fast "deeply nested search config refused" 2 "$NS" "$T/deep.yaml" -o "$T/deep-study"
check "no model or study from a refused config" bash -c "! test -e '$T/deep.nsm' && ! test -e '$T/deep-study'"

# --- 4. labels: a single class trained to "val_acc 1.0" without a word; a fractional label
# among class indices turned the whole column into names, a negative one was refused
awk -F, 'NR == 1 { print; next } { $NF = "alpha"; print }' OFS=, configs/data/tiny.csv >"$T/one.csv"
printf 'data:\n  train: %s\nmodel:\n  hidden: [8]\ntrain:\n  epochs: 2\n' "$T/one.csv" >"$T/one.yaml"
expect_error "train on a single class" "one.csv: the label column 'label' of all 600 rows is class 'alpha'; a classifier needs at least 2 classes" \
  "$NS" train "$T/one.yaml" -o "$T/one.nsm"
check "no model from a single class" test ! -e "$T/one.nsm"
cat "$T/one.yaml" - >"$T/one-search.yaml" <<'YAML'
search:
  stages:
    - {stage: random, trials: 2, epochs: 2}
YAML
sed -i 's/^  hidden: \[8\]/  hidden: {choice: [[8], [16]]}/' "$T/one-search.yaml"
expect_error "search on a single class" "a classifier needs at least 2 classes" "$NS" "$T/one-search.yaml" -o "$T/one-study"
check "no study from a single class" test ! -e "$T/one-study"
awk -F, 'NR == 1 { print; next } { $NF = (NR == 40 ? "1.5" : NR % 3); print }' OFS=, configs/data/tiny.csv >"$T/frac.csv"
sed "s|$T/one.csv|$T/frac.csv|" "$T/one.yaml" >"$T/frac.yaml"
expect_error "a fractional class index" "frac.csv:40:9: class label 1.5 is not a whole number; when every label is a number the labels are class indices" \
  "$NS" train "$T/frac.yaml" -o "$T/frac.nsm"
awk -F, 'NR == 1 { print; next } { $NF = (NR == 40 ? "-1" : NR % 3); print }' OFS=, configs/data/tiny.csv >"$T/neg.csv"
sed "s|$T/one.csv|$T/neg.csv|" "$T/one.yaml" >"$T/neg.yaml"
expect_error "a negative class index" "neg.csv:40:9: class label -1 is negative; when every label is a number the labels are class indices" \
  "$NS" train "$T/neg.yaml" -o "$T/neg.nsm"

echo "e2e_input: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
