#!/usr/bin/env bash
# e2e_offsets.sh — end-to-end checks of decision offsets (search.decision_offsets): on an
# imbalanced file ranked by macro-F1, select fits offsets to its winner's held-out outputs
# (the validation split under holdout, the folds under cross-validation) and the final model
# carries them (offsets.yaml, or the refit); export hands that config out and `nnsearch
# train` reproduces the selection's test figures; `none` turns it off, and a balanced study
# fits none.
# usage: tests/e2e_offsets.sh PATH/TO/nnsearch   (run from the repository root)
set -uo pipefail
NS=${1:?usage: e2e_offsets.sh NNSEARCH}
NS=$(cd "$(dirname "$NS")" && pwd)/$(basename "$NS")
T=$(mktemp -d /tmp/nnsearch-offsets-XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/lib_e2e.sh"

# every amber, cobalt and jade row of the quickstart file, one ruby row in ten: 1:10
awk -F, 'NR == 1 || $NF != "ruby" || ++r % 10 == 0' configs/data/quickstart.csv >"$T/imb.csv"
cat >"$T/hold.yaml" <<YAML
data:
  train: $T/imb.csv
  test: $PWD/configs/data/quickstart-test.csv
  val_fraction: 0.2
model:
  hidden: [16]
  class_weights: none
train:
  batch_size: 64
  lr: {log_uniform: [1e-3, 1e-2]}
search:
  seed: 2
  resampling: holdout
  stages:
    - {stage: random, trials: 3, epochs: 3}
    - {stage: select}
YAML
"$NS" "$T/hold.yaml" -o "$T/hold" --quiet >/dev/null 2>"$T/hold.err"; rc=$?
check "holdout study: exit 0 ($(tail -1 "$T/hold.err"))" test $rc -eq 0
check "imbalanced: ranked by macro-F1" test "$(sqlite3 "$T/hold/study.db" "SELECT metric FROM study")" = val_macro_f1
w=$(dec "$T/hold" 2:select '$.winner')
o="$.decision_offsets"
vrows=$(sqlite3 "$T/hold/study.db" "SELECT json_extract(data_checks, '$.n_val') FROM study")
check "offsets fitted on the validation split's $vrows rows, applied" bash -c \
  "[ '$(dec "$T/hold" 2:select "$o.held_out")' = validation ] && [ '$(dec "$T/hold" 2:select "$o.rows")' = '$vrows' ] && [ '$(dec "$T/hold" 2:select "$o.applied")' = 1 ]"
before=$(dec "$T/hold" 2:select "$o.val_macro_f1_before")
after=$(dec "$T/hold" 2:select "$o.val_macro_f1_after")
ruby=$(dec "$T/hold" 2:select "$o.values[3]")
check "class 0's offset is 0; ruby, under-predicted without class weights, moves up ($ruby); macro-F1 on those rows $before -> $after" \
  num 'first == 0 and ruby > 0 and after > before' first="$(dec "$T/hold" 2:select "$o.values[0]")" ruby="$ruby" after="$after" before="$before"
check "the final model is the winner's config with the offsets" bash -c \
  "[ '$(dec "$T/hold" 2:select '$.final')' = offsets ] && [ '$(dec "$T/hold" 2:select '$.offsets.config')' = trials/$w/offsets.yaml ] && grep -q '^  decision_offsets: \[0, ' '$T/hold/trials/$w/offsets.yaml' && [ -f '$T/hold/trials/$w/offsets.nsm' ]"
"$NS" export "$T/hold" -o "$T/hold-best.yaml" >/dev/null
check "export hands out the config with the offsets" grep -q '^  decision_offsets: \[0, ' "$T/hold-best.yaml"
"$NS" train "$T/hold-best.yaml" -o "$T/hold-best.nsm" --json --quiet >"$T/hold-best.json" 2>/dev/null
ta=$(dec "$T/hold" 2:select '$.test_acc') tf=$(dec "$T/hold" 2:select '$.offsets.test_macro_f1')
check "the exported config trains to the selection's test accuracy and macro-F1 ($ta, $tf)" \
  num 'abs(a - ta) < 1e-9 and abs(f - tf) < 5e-6' a="$(jnum "$T/hold-best.json" test_acc)" ta="$ta" \
  f="$(jnum "$T/hold-best.json" test_macro_f1)" tf="$tf"
# the trial's own model and the one with offsets differ in the last biases only: the same
# weights elsewhere, so the offsets model predicts ruby more often on the test file
"$NS" predict "$T/hold/trials/$w/model.nsm" configs/data/quickstart-test.csv -o "$T/own.csv" 2>/dev/null
"$NS" predict "$T/hold/trials/$w/offsets.nsm" configs/data/quickstart-test.csv -o "$T/off.csv" 2>/dev/null
n_own=$(awk -F, 'NR > 1 && $2 == "ruby"' "$T/own.csv" | wc -l) n_off=$(awk -F, 'NR > 1 && $2 == "ruby"' "$T/off.csv" | wc -l)
check "with the offsets ruby is predicted for more test rows ($n_own -> $n_off)" test "$n_off" -gt "$n_own"
# softmax(z + o) / softmax(z) is exp(o) up to a per-row constant exactly when the two models
# differ by o in their last biases alone: log(p_off / p_own) - o is the same for every class
offs=$(sed -n 's/^  decision_offsets: \[\(.*\)\]$/\1/p' "$T/hold/trials/$w/offsets.yaml")
spread=$(/usr/bin/python3 -c '
import math, sys
o = [float(v) for v in sys.argv[3].split(",")]
worst = 0.0
for a, b in zip(open(sys.argv[1]).read().split("\n")[1:], open(sys.argv[2]).read().split("\n")[1:]):
    if not a:
        continue
    pa, pb = [float(v) for v in a.split(",")[2:]], [float(v) for v in b.split(",")[2:]]
    d = [math.log(q / p) - ok for p, q, ok in zip(pa, pb, o)]
    worst = max(worst, max(d) - min(d))
print(worst)' "$T/own.csv" "$T/off.csv" "$offs")
check "the offsets model is the trial's model with its last biases shifted by the offsets (log-ratio spread $spread)" \
  num 'spread < 2e-3' spread="$spread"

el=$(dec "$T/hold" 2:select '$.eligible')
check "no budget, holdout: the estimate resamples the $el candidates' predictions of the $vrows validation rows; the winner's own score there is its trial's" bash -c \
  "[ -n '$el' ] && [ '$el' -ge 1 ] && [ '$(dec "$T/hold" 2:select '$.estimate.method')' = 'bootstrap bias-corrected' ] && [ '$(dec "$T/hold" 2:select '$.estimate.held_out')' = validation ] && [ '$(dec "$T/hold" 2:select '$.estimate.rows')' = '$vrows' ] && [ '$(dec "$T/hold" 2:select '$.estimate.candidates')' = '$el' ] && awk -v a='$(dec "$T/hold" 2:select '$.estimate.measured')' -v b='$(sqlite3 "$T/hold/study.db" "SELECT val_metric FROM trial WHERE number = $w")' -v e='$(dec "$T/hold" 2:select '$.estimate.val_macro_f1')' 'BEGIN { exit !(a != \"\" && e != \"\" && a - b < 1e-6 && b - a < 1e-6 && e > 0 && e <= 1) }'"
"$NS" report "$T/hold" -o "$T/hold.html" >/dev/null
check "the report names the final model, the offsets' evidence and the estimate" bash -c \
  "grep -q 'Final model: the winner.s own config with decision offsets' '$T/hold.html' && grep -q 'Test figures are the model of the winner.s own config with decision offsets scored once' '$T/hold.html' && grep -q 'Decision offsets fitted on $vrows held-out rows' '$T/hold.html' && grep -q 'Expected on new data: val_macro_f1 <b>[0-9.]*</b>, where the winner scored [0-9.]* on the same $vrows held-out rows' '$T/hold.html'"
"$NS" status "$T/hold" >"$T/hold.status"
check "status names the final model" grep -q "final model: its own config with decision offsets, trials/$w/offsets.yaml" "$T/hold.status"

# search.decision_offsets: none: the winner's own model, no offsets
sed 's/^  seed: 2$/  seed: 2\n  decision_offsets: none/' "$T/hold.yaml" >"$T/none.yaml"
"$NS" "$T/none.yaml" -o "$T/none" --quiet >/dev/null 2>&1; rc=$?
check "decision_offsets: none: the same winner, no offsets, no final model" bash -c \
  "[ $rc -eq 0 ] && [ '$(dec "$T/none" 2:select '$.winner')' = '$w' ] && [ -z '$(dec "$T/none" 2:select "$o")' ] && [ -z '$(dec "$T/none" 2:select '$.final')' ] && [ ! -e '$T/none/trials/$w/offsets.yaml' ]"

# cross-validated: fitted on the folds' held-out rows (every row once), carried by the refit
sed 's/^  resampling: holdout$/  resampling: {cv: 3}/' "$T/hold.yaml" >"$T/cv.yaml"
"$NS" "$T/cv.yaml" -o "$T/cv" --quiet >/dev/null 2>"$T/cv.err"; rc=$?
check "cross-validated study: exit 0 ($(tail -1 "$T/cv.err"))" test $rc -eq 0
wc=$(dec "$T/cv" 2:select '$.winner')
rows=$(($(wc -l <"$T/imb.csv") - 1))
check "offsets fitted on the $rows rows the folds held out" bash -c \
  "[ '$(dec "$T/cv" 2:select "$o.held_out")' = folds ] && [ '$(dec "$T/cv" 2:select "$o.rows")' = '$rows' ]"
check "the refit carries them when applied" bash -c \
  "if [ '$(dec "$T/cv" 2:select "$o.applied")' = 1 ]; then grep -q '^  decision_offsets: \[0, ' '$T/cv/trials/$wc/refit.yaml'; else ! grep -q decision_offsets '$T/cv/trials/$wc/refit.yaml'; fi"
check "no fold model is left behind" bash -c "! ls '$T'/cv/trials/*/offsets-fold.nsm 2>/dev/null | grep -q ."

# a training config whose offsets do not match its classes: one line, exit 2, no model
sed 's/^  decision_offsets: \[.*\]$/  decision_offsets: [0, 1]/' "$T/hold-best.yaml" >"$T/two.yaml"
"$NS" train "$T/two.yaml" -o "$T/two.nsm" --quiet >/dev/null 2>"$T/two.err"; rc=$?
check "2 offsets for 4 classes: exit 2, one line, no model ($(cat "$T/two.err"))" bash -c \
  "[ $rc -eq 2 ] && [ \$(wc -l <'$T/two.err') -eq 1 ] && grep -q 'decision_offsets lists 2 offsets but the data has 4 classes' '$T/two.err' && [ ! -e '$T/two.nsm' ]"

# balanced data ranked by accuracy: argmax is what accuracy wants, no offsets
sed "s|^  train: $T/imb.csv|  train: $PWD/configs/data/quickstart.csv|" "$T/hold.yaml" >"$T/bal.yaml"
"$NS" "$T/bal.yaml" -o "$T/bal" --quiet >/dev/null 2>&1; rc=$?
check "balanced data, ranked by accuracy: no offsets" bash -c \
  "[ $rc -eq 0 ] && [ '$(sqlite3 "$T/bal/study.db" "SELECT metric FROM study")' = val_acc ] && [ -z '$(dec "$T/bal" 2:select "$o")' ]"

echo "e2e_offsets: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
