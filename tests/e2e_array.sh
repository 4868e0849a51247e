#!/usr/bin/env bash
# e2e_array.sh — trials trained together as one array (search.array): on the CPU a study
# whose trials of one shape train in lock-step equals, trial for trial and bit for bit, the
# study that trains each alone, with -j 1, -j 2 and after SIGKILLs and a resume; pruned
# trials among them; auto forms no arrays on the CPU; cross-validated trials train alone;
# a bad value is refused with its location.
# usage: tests/e2e_array.sh PATH/TO/nnsearch   (run from the repository root)
set -uo pipefail
NS=${1:?usage: e2e_array.sh NNSEARCH}
NS=$(cd "$(dirname "$NS")" && pwd)/$(basename "$NS")
T=$(mktemp -d /tmp/nnsearch-array-XXXXXX)
trap 'rm -rf "$T"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/lib_e2e.sh"

# two widths and two batch sizes: four shapes, so that arrays form and differ; everything
# else (activation, optimizer, schedule, LR, dropout) varies within an array
cat >"$T/a.yaml" <<YAML
data:
  train: $PWD/configs/data/quickstart.csv
  test: $PWD/configs/data/quickstart-test.csv
  val_fraction: 0.2
model:
  hidden: {choice: [[16], [32, 16]]}
  activation: {choice: [relu, tanh, gelu]}
  dropout: {uniform: [0, 0.3]}
train:
  epochs: 10
  batch_size: {choice: [32, 64]}
  optimizer: {choice: [adam, sgd, rmsprop]}
  lr: {log_uniform: [1e-3, 1e-1]}
  schedule: {choice: [constant, cosine]}
  patience: 2
search:
  name: a
  seed: 3
  resampling: holdout
  array: 8
  stages:
    - {stage: random, trials: 16, epochs: 10}
    - {stage: bayes, trials: 16, epochs: 10, round: 8}
    - {stage: select, top: 3}
YAML
sed 's/  array: 8/  array: 1/' "$T/a.yaml" >"$T/alone.yaml"

"$NS" "$T/alone.yaml" -j 1 -o "$T/ref" --quiet >/dev/null 2>"$T/ref.err"
rc=$?
check "each trial alone: exit 0 ($(tail -1 "$T/ref.err"))" test $rc -eq 0
check "each trial alone: 32 trials ended" test "$(sqlite3 "$T/ref/study.db" "SELECT count(*) FROM trial WHERE state IN ('complete','pruned','diverged')")" -eq 32

"$NS" "$T/a.yaml" -j 1 -o "$T/j1" >"$T/j1.out" 2>"$T/j1.err"
rc=$?
check "arrays, -j 1: exit 0 ($(tail -1 "$T/j1.err"))" test $rc -eq 0
groups=$(grep -c 'train together as one array' "$T/j1.err")
members=$(grep -o 'trials [0-9, ]* train together' "$T/j1.err" | grep -o '[0-9]\+' | sort -n | tr '\n' ' ')
echo "arrays formed: $groups; their trials: $members"
first_bayes=$(echo $members | tr ' ' '\n' | awk '$1 >= 16' | head -1)
first_random=$(echo $members | tr ' ' '\n' | awk '$1 < 16' | head -1)
check "arrays formed in both stages (random: trial $first_random, bayes: trial $first_bayes; $groups arrays)" \
  bash -c "[ $groups -ge 4 ] && [ -n '$first_random' ] && [ -n '$first_bayes' ]"
check "arrays, -j 1: the same trials, prunings and metrics as each trial alone" cmp -s <(table "$T/ref") <(table "$T/j1")
check "arrays, -j 1: the same decisions" cmp -s <(decisions "$T/ref") <(decisions "$T/j1")
check "arrays, -j 1: the same health findings" \
  cmp -s <(sqlite3 "$T/ref/study.db" "SELECT number, health FROM trial ORDER BY number") \
         <(sqlite3 "$T/j1/study.db" "SELECT number, health FROM trial ORDER BY number")
pruned=$(sqlite3 "$T/j1/study.db" "SELECT group_concat(number, ' ') FROM trial WHERE state='pruned'")
in_array=0
for n in $pruned; do [[ " $members " == *" $n "* ]] && in_array=$((in_array + 1)); done
check "trials were pruned inside arrays ($in_array of the pruned: $pruned)" test "$in_array" -ge 1
stopped=$(sqlite3 "$T/j1/study.db" "SELECT count(*) FROM trial WHERE json_extract(result, '$.stopped_early')")
check "early stopping ended some trials ($stopped)" test "$stopped" -ge 1
# a model file names its trial's config (so its folder): compare what the models predict
same_models=1
for n in $(echo "$members" | tr ' ' '\n' | head -6); do
  "$NS" predict "$T/ref/trials/$n/model.nsm" "$PWD/configs/data/quickstart-test.csv" -o "$T/p_ref.csv" 2>/dev/null &&
    "$NS" predict "$T/j1/trials/$n/model.nsm" "$PWD/configs/data/quickstart-test.csv" -o "$T/p_j1.csv" 2>/dev/null &&
    cmp -s "$T/p_ref.csv" "$T/p_j1.csv" || same_models=0
done
check "array members' model files predict the test rows as the trials alone do, to the digit" test $same_models -eq 1

"$NS" "$T/a.yaml" -j 2 -o "$T/j2" --quiet >/dev/null 2>&1
check "arrays, -j 2: exit 0" test $? -eq 0
check "arrays, -j 2: the same trials as each trial alone" cmp -s <(table "$T/ref") <(table "$T/j2")
check "arrays, -j 2: the same decisions" cmp -s <(decisions "$T/ref") <(decisions "$T/j2")

kill_and_resume "$NS" "$T/a.yaml" "$T/k" 3 "$T/ref"

# auto: no arrays on the CPU (an array is slower there than its trials one by one)
sed 's/  array: 8/  array: auto/' "$T/a.yaml" >"$T/auto.yaml"
"$NS" "$T/auto.yaml" -o "$T/auto" >/dev/null 2>"$T/auto.err"
rc=$?
check "array: auto on the CPU: exit 0 and no array" \
  bash -c "[ $rc -eq 0 ] && ! grep -q 'train together' '$T/auto.err'"
# cross-validated trials train alone (their folds run one after another)
sed 's/  resampling: holdout/  resampling: {cv: 3}/' "$T/a.yaml" >"$T/cv.yaml"
"$NS" "$T/cv.yaml" -o "$T/cv" >/dev/null 2>"$T/cv.err"
rc=$?
check "cross-validation with array: 8: exit 0 and no array" \
  bash -c "[ $rc -eq 0 ] && ! grep -q 'train together' '$T/cv.err'"

for bad in "-1" "many" "4097"; do
  sed "s/  array: 8/  array: $bad/" "$T/a.yaml" >"$T/bad.yaml"
  "$NS" "$T/bad.yaml" -o "$T/bad" >/dev/null 2>"$T/bad.err"
  rc=$?
  check "array: $bad is refused with exit 2 and its location ($(head -1 "$T/bad.err"))" \
    bash -c "[ $rc -eq 2 ] && grep -q 'bad.yaml:[0-9]*:[0-9]*: search.array' '$T/bad.err' && [ ! -e '$T/bad/study.db' ]"
done

echo "e2e_array: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
