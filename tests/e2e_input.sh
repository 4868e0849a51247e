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

# --- 2. a model that cannot fit: "out of memory allocating the model", exit 1 (or, where
# the kernel lets the allocations through, a process that fills the machine and is killed).
# Every case runs under ulimit -v 4 GB, so that a build without the check cannot take the
# machine's memory (the physical-RAM limit itself is test_memory's, which allocates
# nothing). 2^40 parameters:
printf 'data:\n  train: %s\nmodel:\n  hidden: [1048576, 1048576]\ntrain:\n  epochs: 1\n' "$TINY" >"$T/huge.yaml"
expect_error "a model beyond the machine's memory" "huge.yaml: the model does not fit in memory: model.hidden [1048576, 1048576] with 8 inputs and 3 outputs has 1099525259267 parameters; with their gradients, adam's 2 state copies (train.optimizer) and the activations of batch 1024 (train.batch_size, train.eval_batch) training needs 16.0 TiB, but this process may use" \
  bash -c "ulimit -v 4000000; exec '$NS' train '$T/huge.yaml' -o '$T/huge.nsm'"
check "no model file" test ! -e "$T/huge.nsm"
# under ulimit -v 4 GB: 2^30 parameters with sgd's momentum need 12.8 GiB
printf 'data:\n  train: %s\nmodel:\n  hidden: [32768, 32768]\ntrain:\n  epochs: 1\n  optimizer: sgd\n' "$TINY" >"$T/big.yaml"
expect_error "a model beyond ulimit -v" "sgd's 1 state copy (train.optimizer) and the activations of batch 1024 (train.batch_size, train.eval_batch) training needs 12.8 GiB, but this process may use" \
  bash -c "ulimit -v 4000000; exec '$NS' train '$T/big.yaml' -o '$T/big.nsm'"
check "ulimit -v is named" grep -q "(ulimit -v, the address-space limit, less what is mapped)" "$T/err"
# a search whose model is not searched: refused before the study starts
cat "$T/big.yaml" - >"$T/big-search.yaml" <<'YAML'
  lr: {log_uniform: [1e-3, 1e-1]}
search:
  resampling: holdout
  stages:
    - {stage: random, trials: 2, epochs: 1}
YAML
expect_error "a search whose every trial is too large" "big-search.yaml: no trial can fit in memory: model.hidden [32768, 32768] with 8 inputs and 3 outputs has 1074167811 parameters; they and their gradients alone need 8.0 GiB" \
  bash -c "ulimit -v 4000000; exec '$NS' '$T/big-search.yaml' -o '$T/big-study'"
check "no study folder for a refused search" test ! -e "$T/big-study"
# a search whose model is searched: the trials that cannot fit fail with the reason, the
# others run, the study ends normally
sed 's/^  hidden: .*/  hidden: {choice: [[16], [32768, 32768]]}/' "$T/big-search.yaml" >"$T/some-search.yaml"
sed -i 's/trials: 2/trials: 6/' "$T/some-search.yaml"
(ulimit -v 4000000; "$NS" "$T/some-search.yaml" -o "$T/some-study" --quiet >/dev/null 2>"$T/some.err")
check "a search with some trials too large exits 0 ($(head -c 300 "$T/some.err"))" test $? -eq 0
failed=$(sqlite3 "$T/some-study/study.db" "SELECT count(*) FROM trial WHERE state = 'failed' AND params LIKE '%32768%' AND error LIKE '%the model does not fit in memory: model.hidden [32768, 32768]%'" 2>/dev/null)
others=$(sqlite3 "$T/some-study/study.db" "SELECT count(*) FROM trial WHERE state = 'complete' AND params NOT LIKE '%32768%'" 2>/dev/null)
all=$(sqlite3 "$T/some-study/study.db" "SELECT count(*) FROM trial" 2>/dev/null)
check "the too-large trials failed with the reason, the others completed ($failed + $others of $all)" \
  bash -c "test '${failed:-0}' -ge 1 && test '${others:-0}' -ge 1 && test \$(( ${failed:-0} + ${others:-0} )) -eq '${all:-0}'"
"$NS" status "$T/some-study" >"$T/some.status" 2>&1
check "status shows the reason" grep -q "^failed:  trial [0-9]*: .*the model does not fit in memory" "$T/some.status"

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
