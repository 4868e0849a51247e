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
# AddressSanitizer reserves terabytes of address space before main: no ASan-built
# program starts under ulimit -v (scripts/sanitize sets NS_TEST_ASAN). (The block is
# not indented: it holds a here-document.)
if [[ -n ${NS_TEST_ASAN:-} ]]; then
  echo "skipped under AddressSanitizer: the ulimit -v cases"
else
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
fi

# --- 3. a damaged study: an emptied study.db beside its trials/ was started afresh by
# resume (exit 0), a damaged page made status exit 1. Every command must refuse it with
# one line (exit 2) and change no file of the study.
cat >"$T/q.yaml" <<YAML
data:
  train: $TINY
model:
  hidden: {choice: [[8], [16]]}
train:
  lr: {log_uniform: [1e-3, 1e-1]}
search:
  name: q
  resampling: holdout
  stages:
    - {stage: random, trials: 3, epochs: 2}
    - {stage: select}
YAML
"$NS" "$T/q.yaml" -o "$T/q" --quiet >/dev/null 2>&1
check "a small study to damage" test -s "$T/q/study.db" -a -d "$T/q/trials/0"
# sums of every file but the lock (it holds the pid of the last opener) and SQLite's
# shared-memory index (rebuilt by any reader)
sums() { (cd "$1" && find . -type f ! -name study.lock ! -name 'study.db-shm' | sort | xargs sha256sum); }
damage_round() { # NAME DIR: every command refuses DIR, and DIR is left as it was
  local name=$1 dir=$2 before
  before=$(sums "$dir")
  expect_error "$name: resume" "$dir: the study is damaged: " "$NS" resume "$dir" --quiet
  check "$name: resume names the remedy" grep -q "restore $dir/study.db from a backup, or run the config into a new folder" "$T/err"
  cp "$T/err" "$T/$name.resume.err"
  expect_error "$name: status" "$dir: the study is damaged: " "$NS" status "$dir"
  expect_error "$name: status --json" "$dir: the study is damaged: " "$NS" status "$dir" --json
  expect_error "$name: export" "$dir: the study is damaged: " "$NS" export "$dir" -o "$T/$name-best.yaml"
  check "$name: no export written" test ! -e "$T/$name-best.yaml"
  expect_error "$name: run into it" "$dir: the study is damaged: " "$NS" "$T/q.yaml" -o "$dir" --quiet
  check "$name: the study's files are untouched" cmp -s <(echo "$before") <(sums "$dir")
}
cp -a "$T/q" "$T/empty" && : >"$T/empty/study.db" && rm -f "$T/empty/study.db-wal" "$T/empty/study.db-shm"
damage_round empty "$T/empty"
check "empty: says what is damaged" grep -q "study.db is empty (0 bytes) but trials/ holds the study's trials" "$T/empty.resume.err"
cp -a "$T/q" "$T/missing" && rm -f "$T/missing/study.db"*
damage_round missing "$T/missing"
check "missing: says what is damaged" grep -q "study.db is missing but trials/ holds the study's trials" "$T/missing.resume.err"
# page 3 of 4 KiB overwritten with garbage (a table's root page)
cp -a "$T/q" "$T/page"
head -c 4096 /dev/urandom >"$T/garbage"
dd if="$T/garbage" of="$T/page/study.db" bs=4096 seek=2 conv=notrunc status=none
damage_round page "$T/page"
check "page: SQLite's finding is named" grep -q "study.db fails SQLite's check (Page 3: " "$T/page.resume.err"
# the header page: not a database at all
cp -a "$T/q" "$T/header"
dd if="$T/garbage" of="$T/header/study.db" bs=4096 seek=0 count=1 conv=notrunc status=none
damage_round header "$T/header"
check "header: says what is damaged" grep -q "study.db is not a database (file is not a database) but trials/ holds" "$T/header.resume.err"
# the undamaged study still reads
"$NS" status "$T/q" >/dev/null 2>&1
check "the undamaged study's status exits 0" test $? -eq 0

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

# a test file's columns are matched to the training file's by name: the same rows with their
# columns in another order score the same; a renamed or an extra column is refused
python3 - "$T" <<'PY'
import random, sys
random.seed(1)
R = [(a, b, c, "pos" if a > 0 else "neg") for a, b, c in ([random.gauss(0, 1) for _ in range(3)] for _ in range(400))]
d = sys.argv[1]
open(d + "/ctr.csv", "w").write("a,b,c,label\n" + "".join("%f,%f,%f,%s\n" % r for r in R[:300]))
open(d + "/cte.csv", "w").write("a,b,c,label\n" + "".join("%f,%f,%f,%s\n" % r for r in R[300:]))
open(d + "/cte_reord.csv", "w").write("c,label,b,a\n" + "".join("%f,%s,%f,%f\n" % (r[2], r[3], r[1], r[0]) for r in R[300:]))
open(d + "/cte_renamed.csv", "w").write("x,b,c,label\n" + "".join("%f,%f,%f,%s\n" % r for r in R[300:]))
open(d + "/cte_extra.csv", "w").write("a,b,c,e,label\n" + "".join("%f,%f,%f,1,%s\n" % r for r in R[300:]))
PY
for t in cte cte_reord cte_renamed cte_extra; do
  printf 'data:\n  train: ctr.csv\n  test: %s.csv\nmodel:\n  hidden: [8]\ntrain:\n  epochs: 20\n  batch_size: 16\n' $t >"$T/$t.yaml"
done
"$NS" train "$T/cte.yaml" -o "$T/cte.nsm" --quiet >"$T/cte.out" 2>&1
"$NS" train "$T/cte_reord.yaml" -o "$T/cte_reord.nsm" --quiet >"$T/cte_reord.out" 2>&1
a=$(grep -o 'test_acc [0-9.]*' "$T/cte.out") b=$(grep -o 'test_acc [0-9.]*' "$T/cte_reord.out")
check "test columns in another order: the same test score ($a, $b)" test -n "$a" -a "$a" = "$b"
check "... and far above chance (the rows were read as trained: 0.5 when columns are by position)" awk -v v="${a#test_acc }" 'BEGIN { exit !(v > 0.8) }'
expect_error "a renamed test column" "cte_renamed.csv:1: column 'a' is missing; the training file has it, add it" \
  "$NS" train "$T/cte_renamed.yaml" -o "$T/cte_renamed.nsm"
expect_error "an extra test column" "cte_extra.csv:1: column 'e' is not a feature of the training file" \
  "$NS" train "$T/cte_extra.yaml" -o "$T/cte_extra.nsm"

echo "e2e_input: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
