#!/usr/bin/env bash
# e2e_search.sh — end-to-end checks of `nnsearch CONFIG` as a search: results independent of
# -j, export trains to the trial's own numbers, SIGKILL at random moments and SIGINT followed
# by resume give the uninterrupted study, a changed config and a second writer are refused.
# usage: tests/e2e_search.sh PATH/TO/nnsearch   (run from the repository root)
set -uo pipefail
NS=${1:?usage: e2e_search.sh NNSEARCH}
NS=$(cd "$(dirname "$NS")" && pwd)/$(basename "$NS")
T=$(mktemp -d /tmp/nnsearch-search-XXXXXX)
trap 'rm -rf "$T"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/lib_e2e.sh" # pass, fail, check, jnum, num
expect_error() { # NAME SUBSTRING CMD...: exit 2 and one stderr line holding SUBSTRING
  local name=$1 want=$2; shift 2
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [[ $rc -ne 2 ]]; then fail=$((fail + 1)); echo "FAIL: $name: exit $rc, expected 2 ($(head -c 300 "$T/err"))" >&2; return; fi
  if [[ $(wc -l <"$T/err") -ne 1 ]] || ! grep -qF -- "$want" "$T/err"; then
    fail=$((fail + 1)); echo "FAIL: $name: '$want' not the one line of: $(cat "$T/err")" >&2; return; fi
  pass=$((pass + 1))
}
# The trial table as the study records it (timings left out).

cat >"$T/s.yaml" <<YAML
data:
  train: $PWD/configs/data/tiny.csv
  label: label
  val_fraction: 0.2
model:
  hidden: {choice: [[16], [32, 16]]}
  activation: {choice: [relu, tanh]}
  dropout: {uniform: [0, 0.2]}
train:
  batch_size: {choice: [16, 32]}
  optimizer: {choice: [adam, sgd]}
  lr: {log_uniform: [1e-3, 1e-1]}
  schedule: cosine
search:
  name: s
  seed: 7
  resampling: holdout   # epoch checkpoints and kills mid-trial; e2e_cv.sh checks cross-validation
  stages:                    # two stages: kills also land between them
    - {stage: random, trials: 4, epochs: 300}
    - {stage: random, trials: 4, epochs: 250}
YAML

"$NS" "$T/s.yaml" -j 1 -o "$T/a" --quiet >"$T/a.out" 2>"$T/a.err"
rc=$?
check "search -j 1 exit 0 ($(tail -1 "$T/a.err"))" test $rc -eq 0
check "8 trials recorded" test "$(sqlite3 "$T/a/study.db" 'SELECT count(*) FROM trial')" -eq 8
check "every trial ended" test "$(sqlite3 "$T/a/study.db" "SELECT count(*) FROM trial WHERE state IN ('queued','running','interrupted')")" -eq 0
check "epochs recorded for every complete trial" test "$(sqlite3 "$T/a/study.db" "SELECT count(DISTINCT trial) FROM epoch")" -eq "$(sqlite3 "$T/a/study.db" "SELECT count(*) FROM trial WHERE state='complete' OR state='diverged'")"
check "best.yaml exported" test -s "$T/a/best.yaml"
check "both stages complete with decisions" test "$(sqlite3 "$T/a/study.db" "SELECT count(*) FROM stage WHERE state='complete' AND decision LIKE '%best_trial%'")" -eq 2

"$NS" "$T/s.yaml" -j 2 -o "$T/b" --quiet >/dev/null 2>&1
check "search -j 2 exit 0" test $? -eq 0
check "-j 1 and -j 2 give the same trials" cmp -s <(table "$T/a") <(table "$T/b")

# status
"$NS" status "$T/a" --json >"$T/status.json"
check "status --json exit 0" test $? -eq 0
check "status --json has stages, trials, best" grep -q '"stages".*"trials".*"best"' <(tr -d '\n' <"$T/status.json")
"$NS" status "$T/a" >"$T/status.txt"
check "status text" grep -q "best" "$T/status.txt"
check "every finished trial was judged" test "$(sqlite3 "$T/a/study.db" "SELECT count(*) FROM trial WHERE state IN ('complete','diverged') AND (health IS NULL OR health_flags IS NULL)")" -eq 0
check "status --json carries the data checks" grep -q '"data_checks":{"n_train":' "$T/status.json"
check "status --json carries each trial's findings" test "$(grep -o '"health":\[' "$T/status.json" | wc -l)" -ge 8
check "status text has a health column and the data line" grep -q "health.*params" "$T/status.txt"
check "status text reports the data checks" grep -q "^data: " "$T/status.txt"
sel=$(sqlite3 "$T/a/study.db" "SELECT number FROM trial WHERE state='complete' ORDER BY (coalesce(health_flags, 0) & 287) != 0, val_metric DESC, number LIMIT 1")
check "status picks trial $sel: healthy first, then the metric" grep -qF "\"best\":{\"number\":$sel," "$T/status.json"

# export trains to the trial's own validation metric (same seed: identical)
# selection: trials with a disqualifying finding (bits of NS_SELECT_REJECT: diverged 1,
# oscillating 2, loss_spikes 4, overfitting 8, generalisation_gap 16, exploding 256 = 287)
# come after every healthy one
best=$(sqlite3 "$T/a/study.db" "SELECT number, val_metric FROM trial WHERE state='complete' ORDER BY (coalesce(health_flags, 0) & 287) != 0, val_metric DESC, number LIMIT 1")
bn=${best%%|*} bv=${best#*|}
"$NS" export "$T/a" -o "$T/exported.yaml" >/dev/null
check "export exit 0" test $? -eq 0
acc=$("$NS" train "$T/exported.yaml" --json --quiet -o "$T/exp.nsm" | jnum - val_acc)
check "exported trial $bn trains to its val_acc $bv (got $acc)" num 'abs(a - b) < 1e-9' a="$acc" b="$bv"

# SIGKILL at random moments, resume each time: the same study as uninterrupted
rm -rf "$T/c"
: >"$T/early"
kills=0 cut_short=0
# NS_TEST_TIME_SCALE stretches the delays for slower builds (scripts/sanitize sets it)
for delay in 0.15 0.3 0.25 0.4 0.6 0.9; do
  delay=$(awk -v d="$delay" -v s="${NS_TEST_TIME_SCALE:-1}" 'BEGIN { print d * s }')
  bash -c 'timeout -s KILL "$@" >/dev/null 2>&1; exit 0' _ "$delay" "$NS" "$T/s.yaml" -j 2 -o "$T/c" --quiet 2>/dev/null
  kills=$((kills + 1))
  # every trial complete after any kill must come out of the later runs untouched
  sqlite3 "$T/c/study.db" "SELECT number, finished FROM trial WHERE state='complete'" >>"$T/early" 2>/dev/null
  [[ "$(sqlite3 "$T/c/study.db" "SELECT count(*) FROM stage WHERE state='complete'" 2>/dev/null)" == 2 ]] && break
  cut_short=$((cut_short + 1))
done
check "at least one kill cut the study short ($cut_short of $kills)" test "$cut_short" -ge 1
"$NS" resume "$T/c" --quiet >/dev/null 2>&1
check "resume after $kills kills exit 0" test $? -eq 0
check "killed and resumed study equals the uninterrupted one" cmp -s <(table "$T/a") <(table "$T/c")
check "integrity_check ok" test "$(sqlite3 "$T/c/study.db" 'PRAGMA integrity_check')" = ok
check "trials complete before the kills were not run again ($(wc -l <"$T/early") of them)" \
  bash -c "comm -23 <(sort -u '$T/early') <(sqlite3 '$T/c/study.db' \"SELECT number, finished FROM trial WHERE state='complete'\" | sort) | wc -l | grep -qx 0"
check "at least one trial was complete before the resumes" test -s "$T/early"

# SIGINT: running trials checkpoint, exit 130, resume finishes the same study
rm -rf "$T/d"
"$NS" "$T/s.yaml" -j 2 -o "$T/d" --quiet >/dev/null 2>"$T/d.err" &
pid=$!
# signal once a trial runs: earlier, nnsearch has not installed its handler yet, and a
# background job of a script inherits SIGINT ignored (a slow start would then finish)
for _ in $(seq 600); do
  [[ "$(sqlite3 "$T/d/study.db" "SELECT count(*) FROM trial WHERE state='running'" 2>/dev/null)" -ge 1 ]] && break
  sleep 0.05
done
kill -INT "$pid"
wait "$pid"; rc=$?
check "SIGINT exit 130 (got $rc)" test "$rc" -eq 130
check "SIGINT left interrupted or unstarted trials" test "$(sqlite3 "$T/d/study.db" "SELECT count(*) FROM trial WHERE state IN ('interrupted','queued')")" -ge 1
"$NS" resume "$T/d" --quiet >/dev/null 2>&1
check "SIGINT then resume equals the uninterrupted study" cmp -s <(table "$T/a") <(table "$T/d")

# a point whose values do not go together is a failed trial, and the search goes on
cat >"$T/mix.yaml" <<YAML
data:
  train: $PWD/configs/data/tiny.csv
  val_fraction: 0.2
model:
  hidden: [8]
train:
  optimizer: {choice: [adam, sgd]}
  nesterov: true
search:
  stages:
    - {stage: random, trials: 6, epochs: 2}
YAML
"$NS" "$T/mix.yaml" -o "$T/mix" --quiet >/dev/null 2>&1
check "search with impossible points exit 0" test $? -eq 0
check "adam + nesterov trials failed with the reason" test "$(sqlite3 "$T/mix/study.db" "SELECT count(*) FROM trial WHERE state='failed' AND error LIKE '%do not go together%'")" -ge 1
check "sgd + nesterov trials completed" test "$(sqlite3 "$T/mix/study.db" "SELECT count(*) FROM trial WHERE state='complete'")" -ge 1

# refusals: a changed config, a second writer
sed 's/seed: 7/seed: 8/' "$T/s.yaml" >"$T/s2.yaml"
expect_error "changed config refused" "--force" "$NS" "$T/s2.yaml" -o "$T/a" --quiet
"$NS" "$T/s.yaml" -o "$T/e" --quiet >/dev/null 2>&1 &
pid=$!
sleep 0.15
expect_error "second writer refused" "in use" "$NS" "$T/s.yaml" -o "$T/e" --quiet
wait "$pid"
{ head -20 configs/data/tiny.csv; echo "1,2,x,4,5,6,7,8,alpha"; } >"$T/bad.csv"
sed "s#$PWD/configs/data/tiny.csv#$T/bad.csv#" "$T/s.yaml" >"$T/bad.yaml"
expect_error "bad data in a search" "bad.csv:21:3" "$NS" "$T/bad.yaml" -o "$T/f" --quiet
check "bad data leaves no study behind" test ! -e "$T/f"
expect_error "status of no study" "no study" "$NS" status "$T/nowhere"

echo "e2e_search: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
