#!/usr/bin/env bash
# e2e_kill.sh — the kill campaign: a five-stage study (lr_range, batch_sweep, compare, bayes
# in rounds of 2 with median pruning, which under cross-validation races, select; quickstart
# data, epoch budgets, no wall-clock caps) SIGKILLed at seeded random moments in every stage and resumed each time,
# with -j 1 and -j 2, ends equal to the uninterrupted study; so does a study resumed between
# two bayes rounds in a process whose OpenBLAS starts with several threads.
# Not the one-stage kill rounds (lib_e2e.sh kill_and_resume, in the stage scripts).
# usage: tests/e2e_kill.sh PATH/TO/nnsearch [SEED]   (run from the repository root)
set -uo pipefail
NS=${1:?usage: e2e_kill.sh NNSEARCH [SEED]}
NS=$(cd "$(dirname "$NS")" && pwd)/$(basename "$NS")
SEED=${2:-12}
T=$(mktemp -d /tmp/nnsearch-kill-XXXXXX)
trap 'rm -rf "$T"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/lib_e2e.sh"
t_begin=$EPOCHREALTIME

cat >"$T/k.yaml" <<YAML
data:
  train: $PWD/configs/data/quickstart.csv
  test: $PWD/configs/data/quickstart-test.csv
model:
  hidden: {choice: [[16], [32]]}
  dropout: {uniform: [0, 0.3]}
train:
  epochs: 8
  batch_size: 64
  optimizer: adam
  lr: {log_uniform: [1e-4, 1e-1]}
  schedule: cosine
search:
  name: kill
  seed: 5
  resampling: {cv: 3}
  final: ensemble   # select trains the 3 members: time for its kills to land
  stages:
    - {stage: lr_range, seeds: 2, sweep_steps: 400}   # long enough for its kills to land
    - {stage: batch_sweep, sizes: [16, 32, 64, 128], epochs: 3}
    - {stage: compare, optimizers: [adam, sgd], schedules: [cosine, constant], seeds: 1, epochs: 3}
    - {stage: bayes, trials: 24, init: 4, epochs: 8, round: 2, prune: median}
    - {stage: select}
YAML
db() { sqlite3 "$1/study.db" "$2" 2>/dev/null; }
# the progress lines with stderr not a terminal: "2026-12-06 15:25:31 trial 3 complete: ..."
TS='^[0-9-]+ [0-9:]+ '

# ---- the uninterrupted study ----------------------------------------------------------------
"$NS" "$T/k.yaml" -j 2 -o "$T/ref" >/dev/null 2>"$T/ref.err"
rc=$? # before the check: a $(...) in its arguments would set $? to its own status
check "uninterrupted: exit 0 ($(tail -1 "$T/ref.err" | cut -c1-200))" test $rc -eq 0
check "uninterrupted: 5 stages complete" \
  test "$(db "$T/ref" "SELECT count(*) FROM stage WHERE state = 'complete'")" = 5
check "uninterrupted: every trial ended" \
  test "$(db "$T/ref" "SELECT count(*) FROM trial WHERE state NOT IN ('complete', 'pruned')")" = 0
mapfile -t names < <(db "$T/ref" "SELECT name FROM stage ORDER BY position")
# the campaign steers by these lines
check "uninterrupted: the progress has the header and each stage's completion line" \
  test "$(grep -cE -e "${TS}nnsearch: study " -e "${TS}stage [1-5]:[a-z_]* done:" "$T/ref.err")" = 6
first_bayes=$(db "$T/ref" "SELECT min(number) FROM trial WHERE stage = '4:bayes'")

# ---- killed between two bayes rounds ------------------------------------------------------------
# cut_at REF N DIR: DIR becomes the study REF as a SIGKILL leaves it after trial N - 1 ended and
# before trial N was planned (N the first of a round): later trials, their epochs and folders
# gone, the bayes stage running, select not begun.
cut_at() {
  local ref=$1 n=$2 dir=$3
  rm -rf "$dir"; cp -r "$ref" "$dir"
  sqlite3 "$dir/study.db" "DELETE FROM epoch WHERE trial >= $n; DELETE FROM trial WHERE number >= $n;
    UPDATE stage SET state = 'running', decision = NULL, finished = NULL WHERE name = '4:bayes';
    DELETE FROM stage WHERE position > (SELECT position FROM stage WHERE name = '4:bayes')"
  for t in "$dir"/trials/*; do [[ $(basename "$t") -ge $n ]] && rm -rf "$t"; done
  rm -f "$dir/best.yaml"
}
# OpenBLAS's thread count is the process's: several in a fresh process, the last trial's
# train.threads (1) in a running one. Each resume below proposes a round first, before any
# trial of its own has run. The later rounds, whose GPs see enough points for threaded and
# single-threaded OpenBLAS calls to round apart (before the fix 18, 20 and 22 differed).
bad_cuts=""
for k in 14 16 18 20 22; do
  n=$((first_bayes + k))
  cut_at "$T/ref" "$n" "$T/cut"
  OPENBLAS_NUM_THREADS=2 "$NS" resume "$T/cut" -j $((k % 4 ? 2 : 1)) --quiet >/dev/null 2>&1 || bad_cuts="$bad_cuts $n(exit $?)"
  cmp -s <(table "$T/ref") <(table "$T/cut") && cmp -s <(decisions "$T/ref") <(decisions "$T/cut") || bad_cuts="$bad_cuts $n"
done
check "resumed between two bayes rounds under OPENBLAS_NUM_THREADS=2: the uninterrupted study (differs from trial:${bad_cuts:- none})" \
  test -z "$bad_cuts"
t_cuts=$EPOCHREALTIME

# ---- the campaign -------------------------------------------------------------------------------
# Each attempt runs the study (the config first, `resume` once the study exists) with -j 1 or
# -j 2 and SIGKILLs it at a seeded random point of its progress, as its progress lines show it:
# while the open stage (the first not complete in study.db) has fewer kills than its quota,
# after the header (data loaded, study open) and a random share (up to 0.6) of the stage's
# trials not yet ended; once it has them, after the stage's completion line, so that the next
# stage gets its kills; then a random 0 to 20 ms more. The lines are read from a FIFO by shell
# builtins, so the kill follows its line closely even on a busy machine, where fixed delays
# land anywhere. A kill counts for the stage that is open in study.db after it.
quota=(4 4 4 10 4) # 26: a few may overshoot into the next stage
mapfile -t rnd < <(python3 -c "import random; r = random.Random($SEED); print('\n'.join('%.6f' % r.random() for _ in range(600)))")
count_of=(); for i in "${!names[@]}"; do count_of[i]=$(db "$T/ref" "SELECT count(*) FROM trial WHERE stage = '${names[i]}'"); done
mkfifo "$T/progress"
# run_killed ERE N US CMD...: runs CMD with its progress into the FIFO and SIGKILLs it US
# microseconds after the header and then N lines matching ERE (N < 0: lets it end). Sets rc.
run_killed() {
  local ere=$1 n=$2 us=$3 line head=0 seen=0 left wait
  shift 3
  "$@" >/dev/null 2>"$T/progress" &
  local pid=$!
  exec 3<"$T/progress"
  while ((n >= 0)) && IFS= read -r line <&3; do
    if ((!head)); then [[ $line =~ ${TS}nnsearch:\ study\  ]] && head=1
    elif [[ $line =~ $ere ]]; then seen=$((seen + 1)); fi
    ((head && seen >= n)) && break
  done
  if ((n >= 0 && head && seen >= n)); then
    local deadline=$((${EPOCHREALTIME/./} + us))
    while left=$((deadline - ${EPOCHREALTIME/./})); ((left > 0)); do
      printf -v wait '%d.%06d' $((left / 1000000)) $((left % 1000000))
      IFS= read -r -t "$wait" line <&3 || { (($? > 128)) || break; }
    done
    kill -KILL $pid 2>/dev/null
  fi
  while IFS= read -r line <&3; do :; done # to its end (a killed process's is at once)
  exec 3<&-
  { wait $pid; } 2>/dev/null
  rc=$?
}
hits=(0 0 0 0 0) attempts=0 j1=0 j2=0 ri=0 log=""
while ((attempts < 100)); do
  s=$(db "$T/c" "SELECT count(*) FROM stage WHERE state = 'complete'"); s=${s:-0}
  ((s == 5)) && break
  ended=$(db "$T/c" "SELECT count(*) FROM trial WHERE stage = '${names[s]}' AND state IN ('complete', 'pruned', 'diverged', 'failed')")
  k=$(awk -v u="${rnd[ri]}" -v n=$((count_of[s] - ${ended:-0})) 'BEGIN { print int(u * 0.6 * n) }')
  us=$(awk -v u="${rnd[ri + 1]}" 'BEGIN { print int(20000 * u) }')
  j=$(awk -v u="${rnd[ri + 2]}" 'BEGIN { print (u < 0.5 ? 1 : 2) }'); ri=$((ri + 3))
  ((j == 1)) && j1=$((j1 + 1)) || j2=$((j2 + 1))
  if [[ -f "$T/c/config.source" ]]; then cmd=("$NS" resume "$T/c" -j "$j"); else cmd=("$NS" "$T/k.yaml" -j "$j" -o "$T/c"); fi
  if ((hits[s] < quota[s])); then
    run_killed "${TS}trial [0-9]+ (complete|pruned|diverged|failed)" "$k" "$us" "${cmd[@]}"
    what="header+${k}trials+${us}us"
  elif ((s + 1 < 5)); then
    run_killed "${TS}stage ${names[s]} done:" 1 "$us" "${cmd[@]}"
    what="${names[s]}+${us}us"
  else # the last stage has its kills: the study ends
    run_killed x -1 0 "${cmd[@]}"
  fi
  attempts=$((attempts + 1))
  ((rc == 0)) && continue
  if ((rc != 137)); then check "attempt $attempts ended by itself with exit $rc" false; break; fi
  at=$(db "$T/c" "SELECT count(*) FROM stage WHERE state = 'complete'"); at=${at:-0}
  ((at < 5)) && hits[at]=$((hits[at] + 1))
  log="$log ${names[at]:-done}@$what/-j$j"
done
kills=$((hits[0] + hits[1] + hits[2] + hits[3] + hits[4]))
echo "e2e_kill: $kills kills (${names[0]} ${hits[0]}, ${names[1]} ${hits[1]}, ${names[2]} ${hits[2]}, ${names[3]} ${hits[3]}, ${names[4]} ${hits[4]}) in $attempts runs ($j1 with -j 1, $j2 with -j 2), seed $SEED" >&2
[[ -n ${KILL_DEBUG:-} ]] && echo "e2e_kill:$log" >&2
check "at least 20 kills ($kills:$log)" test "$kills" -ge 20
for i in "${!names[@]}"; do
  check "kills landed in ${names[i]} (${hits[i]})" test "${hits[i]}" -ge 2
done
"$NS" resume "$T/c" -j 1 --quiet >/dev/null 2>&1
check "the last resume exit 0" test $? -eq 0
check "killed $kills times: the same trials as uninterrupted" cmp -s <(table "$T/ref") <(table "$T/c")
check "killed $kills times: the same decisions as uninterrupted" cmp -s <(decisions "$T/ref") <(decisions "$T/c")
check "killed $kills times: the same per-fold results" \
  cmp -s <(db "$T/ref" "SELECT number, result FROM trial ORDER BY number") <(db "$T/c" "SELECT number, result FROM trial ORDER BY number")
check "killed $kills times: integrity_check ok" test "$(db "$T/c" 'PRAGMA integrity_check')" = ok
if [[ $fail -ne 0 ]]; then diff <(table "$T/ref") <(table "$T/c") | head -6 >&2; fi

# ---- damaged checkpoints: a holdout study stopped mid-trial whose checkpoints are then cut
# short (a disk error) resumes by running those trials again from the start, to the same end
cat >"$T/h.yaml" <<YAML
data:
  train: $PWD/configs/data/quickstart.csv
model:
  hidden: [64]
train:
  epochs: 3000
  batch_size: 32
  lr: {log_uniform: [1e-3, 1e-2]}
search:
  seed: 3
  resampling: holdout
  stages:
    - {stage: random, trials: 2, epochs: 3000}
    - {stage: select}
YAML
"$NS" "$T/h.yaml" -j 2 -o "$T/href" --quiet >/dev/null 2>&1
"$NS" "$T/h.yaml" -j 2 -o "$T/hcut" --quiet >/dev/null 2>&1 &
pid=$!
for _ in $(seq 400); do [[ -s $T/hcut/trials/0/checkpoint && -s $T/hcut/trials/1/checkpoint ]] && break; sleep 0.01; done
kill -INT $pid; wait $pid
cut=0
for f in "$T"/hcut/trials/*/checkpoint; do [[ -s $f ]] && truncate -s 100 "$f" && cut=$((cut + 1)); done
"$NS" resume "$T/hcut" --quiet >/dev/null 2>"$T/hcut.err"; rc=$?
check "damaged checkpoints ($cut cut short): resume exit 0 ($(head -c 200 "$T/hcut.err"))" test $rc -eq 0
check "... at least one checkpoint was damaged" test "$cut" -ge 1
check "... the same trials as uninterrupted" cmp -s <(table "$T/href") <(table "$T/hcut")
check "... no failed trial" test "$(db "$T/hcut" "SELECT count(*) FROM trial WHERE state = 'failed'")" = 0

t_end=$EPOCHREALTIME
echo "e2e_kill: $(awk -v a="$t_begin" -v b="$t_cuts" -v c="$t_end" 'BEGIN { printf "%.1f s (uninterrupted and round cuts %.1f s, campaign %.1f s)", c - a, b - a, c - b }')" >&2
echo "e2e_kill: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
