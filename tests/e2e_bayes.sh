#!/usr/bin/env bash
# e2e_bayes.sh — end-to-end checks of the bayes and select stages: GP proposals in rounds
# with median-rule pruning after a random stage, then the selection with its reasons; the
# same trials, prunings and choice with -j 1, -j 2 and after SIGKILLs and resumes; export
# follows the selection; the GP's proposals beat random search's on the same budget.
# usage: tests/e2e_bayes.sh PATH/TO/nnsearch   (run from the repository root)
set -uo pipefail
NS=${1:?usage: e2e_bayes.sh NNSEARCH}
NS=$(cd "$(dirname "$NS")" && pwd)/$(basename "$NS")
T=$(mktemp -d /tmp/nnsearch-bayes-XXXXXX)
trap 'rm -rf "$T"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/lib_e2e.sh"

cat >"$T/b.yaml" <<YAML
data:
  train: $PWD/configs/data/quickstart.csv
  test: $PWD/configs/data/quickstart-test.csv
  val_fraction: 0.2
model:
  hidden: {choice: [[16], [64], [64, 32]]}
  activation: {choice: [relu, tanh]}
  dropout: {uniform: [0, 0.3]}
train:
  epochs: 20
  batch_size: {int: [32, 256], log: true}
  lr: {log_uniform: [1e-4, 1e-1]}
  schedule: cosine
search:
  name: b
  seed: 2
  resampling: holdout   # this script checks epoch pruning; e2e_cv.sh checks cross-validation
  stages:
    - {stage: random, trials: 6, epochs: 20}
    - {stage: bayes, trials: 12, epochs: 20, round: 2}
    - {stage: select, top: 4}
YAML

"$NS" "$T/b.yaml" -j 1 -o "$T/a" >"$T/a.out" 2>"$T/a.err"
rc=$?
check "bayes -j 1 exit 0 ($(tail -1 "$T/a.err"))" test $rc -eq 0
check "18 trials, none left running" test "$(sqlite3 "$T/a/study.db" "SELECT count(*) FROM trial WHERE state IN ('complete','pruned')")" -eq 18
check "the median rule pruned some trials" test "$(sqlite3 "$T/a/study.db" "SELECT count(*) FROM trial WHERE state='pruned'")" -ge 1
check "pruned trials stopped before the budget" test "$(sqlite3 "$T/a/study.db" "SELECT max(epochs) FROM trial WHERE state='pruned'")" -lt 20
check "bayes proposals differ from each other" test "$(sqlite3 "$T/a/study.db" "SELECT count(DISTINCT params) FROM trial WHERE stage='2:bayes'")" -eq 12
w=$(dec "$T/a" 3:select '$.winner')
others=$(sqlite3 "$T/a/study.db" "SELECT json_array_length(decision, '$.others') FROM stage WHERE name='3:select'")
check "select names a winner ($w), its test accuracy ($(dec "$T/a" 3:select '$.test_acc')) and why 4 others lost ($others)" \
  bash -c "[ -n '$w' ] && [ -n '$(dec "$T/a" 3:select '$.test_acc')' ] && [ '$others' = 4 ] && [ -n '$(dec "$T/a" 3:select '$.others[0].why')' ]"
check "the winner has no disqualifying finding" test "$(sqlite3 "$T/a/study.db" "SELECT coalesce(health_flags,0) & (287|32) FROM trial WHERE number=$w")" -eq 0
"$NS" export "$T/a" -o "$T/best.yaml" >/dev/null
check "export writes the winner's config" grep -q "trial $w," "$T/best.yaml"
"$NS" status "$T/a" >"$T/status.txt"
check "status shows the selection" grep -q "select *complete  winner=$w" "$T/status.txt"
np=$(sqlite3 "$T/a/study.db" "SELECT count(*) FROM trial WHERE state='pruned'")
pct=$(awk -v p="$np" 'BEGIN { printf "%.0f", 100 * p / 12 }')
check "status shows the bayes stage's prune rate ($np of 12)" grep -qx "           pruned $np of 12 trials ($pct%)" "$T/status.txt"
ne=$(dec "$T/a" 3:select '$.eligible')
check "select counts the 18 trials it considered, $ne eligible, the $np pruned among the others" \
  bash -c "[ '$(dec "$T/a" 3:select '$.considered')' = 18 ] && [ '$(dec "$T/a" 3:select '$.ineligible.pruned')' = $np ] && [ $ne -ge 1 ] && [ $ne -le $((18 - np)) ]"
check "status shows the eligibility" grep -q "^           eligible $ne of 18 trials; not eligible: $np pruned" "$T/status.txt"

"$NS" "$T/b.yaml" -j 2 -o "$T/b" --quiet >/dev/null 2>&1
check "bayes -j 2 exit 0" test $? -eq 0
check "-j 1 and -j 2: the same trials and prunings" cmp -s <(table "$T/a") <(table "$T/b")
check "-j 1 and -j 2: the same decisions" cmp -s <(decisions "$T/a") <(decisions "$T/b")

kill_and_resume "$NS" "$T/b.yaml" "$T/c" 3 "$T/a"

# asha: trials stop only at the rungs min_epochs x 3^k (20 epochs: 2, 6, 18)
sed 's/{stage: bayes, trials: 12, epochs: 20, round: 2}/{stage: bayes, trials: 12, epochs: 20, round: 2, prune: asha}/' "$T/b.yaml" >"$T/asha.yaml"
"$NS" "$T/asha.yaml" -o "$T/asha" --quiet >/dev/null 2>&1
check "asha: exit 0" test $? -eq 0
rungs=$(sqlite3 "$T/asha/study.db" "SELECT group_concat(DISTINCT epochs) FROM trial WHERE state='pruned'")
echo "asha stopped trials at epochs: $rungs"
check "asha: some trials stopped, all at rungs 2, 6 or 18 ($rungs)" \
  bash -c "[ -n '$rungs' ] && [ -z \"\$(tr , '\\n' <<<'$rungs' | grep -vx -e 2 -e 6 -e 18)\" ]"
# bayes beats random. In b.yaml the GP never proposes: its 12 trials are all Sobol design
# points (init defaults to 2 x 8 inputs = 16). Here init: 4, so 12 of the stage's 16
# trials are the GP's, without pruning (every trial runs its 20 epochs: comparable); the
# control is the same study with a random stage of 16 in place of bayes, so trials 0..5
# are the same and 10..21 compare the GP's proposals with random search's. Measured over
# seeds 1..8: the GP's 12 have mean val_acc 0.83..0.93 and 9..12 of them reach 0.85,
# random search's 12 a mean of 0.43..0.64 and 3..6 (one trial in three); the difference of
# the means is 0.23..0.50. With the GP switched off (its Sobol design for every proposal)
# the difference was -0.01..+0.03, with EI maximised the wrong way the GP's mean 0.26..0.38.
sed -e 's/{stage: bayes, trials: 12, epochs: 20, round: 2}/{stage: bayes, trials: 16, epochs: 20, round: 2, init: 4, prune: none}/' \
    "$T/b.yaml" >"$T/gp.yaml"
sed -e 's/{stage: bayes, trials: 16, epochs: 20, round: 2, init: 4, prune: none}/{stage: random, trials: 16, epochs: 20}/' \
    "$T/gp.yaml" >"$T/rs.yaml"
"$NS" "$T/gp.yaml" -j 2 -o "$T/gp" --quiet >/dev/null 2>"$T/gp.err"
rc=$?
check "GP study: exit 0 ($(tail -1 "$T/gp.err"))" test $rc -eq 0
"$NS" "$T/rs.yaml" -j 2 -o "$T/rs" --quiet >/dev/null 2>"$T/rs.err"
rc=$?
check "random control: exit 0 ($(tail -1 "$T/rs.err"))" test $rc -eq 0
check "the GP study and its control share their first 6 trials" \
  cmp -s <(table "$T/gp" | head -6) <(table "$T/rs" | head -6)
gpv=$(sqlite3 "$T/gp/study.db" "SELECT group_concat(val_metric, ' ') FROM (SELECT val_metric FROM trial WHERE number BETWEEN 10 AND 21 AND stage = '2:bayes' AND state = 'complete' ORDER BY number)")
rsv=$(sqlite3 "$T/rs/study.db" "SELECT group_concat(val_metric, ' ') FROM (SELECT val_metric FROM trial WHERE number BETWEEN 10 AND 21 AND stage = '2:random' AND state = 'complete' ORDER BY number)")
echo "val_acc of trials 10..21: GP $gpv; random $rsv"
check "bayes beats random: the GP's 12 proposals average at least 0.15 more val_acc than random search's 12, and 8 or more reach 0.85" \
  /usr/bin/python3 -c "
import sys
g, r = [float(v) for v in '$gpv'.split()], [float(v) for v in '$rsv'.split()]
if len(g) != 12 or len(r) != 12:
    sys.exit('trials: %d GP, %d random, expected 12 each' % (len(g), len(r)))
mg, mr, k = sum(g) / 12, sum(r) / 12, sum(v >= 0.85 for v in g)
print('mean val_acc: GP %.4f, random %.4f (difference %.4f); GP proposals at 0.85 or more: %d of 12' % (mg, mr, mg - mr, k))
sys.exit(0 if mg - mr >= 0.15 and k >= 8 else 1)"

# bayes as the first stage: nothing has made trials/ yet when the first proposal is kept
sed -e '/stage: random/d' -e 's/trials: 12, epochs: 20/trials: 4, epochs: 3/' "$T/b.yaml" >"$T/first.yaml"
"$NS" "$T/first.yaml" -o "$T/first" --quiet >/dev/null 2>"$T/first.err"
rc=$?
check "bayes as the first stage: exit 0 ($(tail -1 "$T/first.err"))" test $rc -eq 0
check "bayes as the first stage: 4 trials ended, each round's fit kept beside its first trial (rounds of 2: trials 0 and 2)" \
  bash -c "[ \"\$(sqlite3 '$T/first/study.db' \"SELECT count(*) FROM trial WHERE state IN ('complete','pruned')\")\" = 4 ] && [ \"\$(cd '$T'/first/trials && ls */gp.hyp | tr '\\n' ' ')\" = '0/gp.hyp 2/gp.hyp ' ]"
printf 'data: {train: %s}\nsearch:\n  stages: [{stage: bayes, trials: 3, epochs: 2}]\n' "$PWD/configs/data/tiny.csv" >"$T/bad.yaml"
"$NS" "$T/bad.yaml" -o "$T/bad" >/dev/null 2>"$T/bad.err"; rc=$?
check "bayes without searched keys: exit 2 with a location ($(cat "$T/bad.err"))" \
  bash -c "[ $rc -eq 2 ] && grep -q 'bad.yaml:3:.*bayes stage searches' '$T/bad.err'"
echo "e2e_bayes: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
