#!/usr/bin/env bash
# e2e_limits.sh — end-to-end checks of what a study costs and how it stops: a stage of
# ten million trials capped by seconds creates only the trials it ran and answers SIGTERM
# within a second or two; trial counts beyond the 32-bit trial numbers are refused up front;
# too many BLAS threads for the cores draw one warning; no fixed-size buffer cuts a value
# short (a long choice recorded with a failed trial, a GP warm start of many inputs); a
# checkpoint left ahead of the store (power loss under synchronous=NORMAL) does not change
# the study.
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
rc=$?
check "SIGTERM then resume: exit 0 ($(tail -1 "$T/i2.err"))" test $rc -eq 0
check "SIGTERM then resume: the stage completed" \
  test "$(sqlite3 "$T/i/study.db" "SELECT state FROM stage WHERE name = '1:random'")" = complete

# SIGTERM during an LR range test (100,000 sweep steps): the sweep stops within a step, the
# trial is recorded interrupted (it runs again on resume), exit 130
cat >"$T/sweep.yaml" <<YAML
data:
  train: $PWD/configs/data/quickstart.csv
  label: label
  val_fraction: 0.2
model:
  hidden: [128, 128]
search:
  resampling: holdout
  stages:
    - {stage: lr_range, seeds: 1, sweep_steps: 100000}
YAML
"$NS" "$T/sweep.yaml" -j 1 -o "$T/sw" --quiet >/dev/null 2>&1 &
pid=$!
for _ in $(seq 200); do [[ "$(sqlite3 "$T/sw/study.db" "SELECT state FROM trial WHERE number = 0" 2>/dev/null)" == running ]] && break; sleep 0.05; done
sleep 0.5
t0=$(ms)
kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
t=$(($(ms) - t0))
kill -KILL "$pid" 2>/dev/null
wait "$pid"; rc=$?
check "SIGTERM during an LR range test: ended within 2 s (took $t ms)" test "$t" -le 2000
check "SIGTERM during an LR range test: exit 130 (got $rc)" test "$rc" -eq 130
check "SIGTERM during an LR range test: the trial is interrupted, no curve" \
  test "$(sqlite3 "$T/sw/study.db" "SELECT state FROM trial WHERE number = 0")" = interrupted -a ! -e "$T/sw/trials/0/lr_curve.csv"

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

# --- no silent caps --------------------------------------------------------------------------
# a failed point's values are recorded whole: a 400-digit choice (adam + nesterov fails)
z=$(printf '0%.0s' $(seq 400))
cat >"$T/long.yaml" <<YAML
data:
  train: $PWD/configs/data/tiny.csv
  label: label
  val_fraction: 0.2
model:
  hidden: [8]
  dropout: {choice: [0.1${z}1, 0.2]}
train:
  optimizer: {choice: [adam, sgd]}
  nesterov: true
search:
  resampling: holdout
  stages:
    - {stage: random, trials: 6, epochs: 1}
YAML
"$NS" "$T/long.yaml" -o "$T/long" --quiet >/dev/null 2>&1
check "long choice: exit 0" test $? -eq 0
check "long choice: some points failed" test "$(sqlite3 "$T/long/study.db" "SELECT count(*) FROM trial WHERE state = 'failed'")" -ge 1
check "long choice: every failed point's params are valid JSON with the whole value" \
  test "$(sqlite3 "$T/long/study.db" "SELECT count(*) FROM trial WHERE state = 'failed' AND NOT (json_valid(params) AND json_extract(params, '$.\"model.dropout\"') = '0.1${z}1')")" -eq 0

# the GP warm start of a wide space: 133 batch sizes and the LR are 134 GP inputs, 272
# hyperparameters (more than the 256 once read back); trial 3's proposal starts its fit
# from trial 2's gp.hyp, so other values there give another proposal
bs=$(seq -s, 8 140)
cat >"$T/wide.yaml" <<YAML
data:
  train: $PWD/configs/data/tiny.csv
  label: label
  val_fraction: 0.2
model:
  hidden: [8]
train:
  batch_size: {choice: [$bs]}
  lr: {log_uniform: [1e-3, 1e-1]}
search:
  seed: 3
  resampling: holdout
  stages:
    - {stage: bayes, trials: 4, round: 1, init: 2, epochs: 1}
YAML
"$NS" "$T/wide.yaml" -o "$T/wa" --quiet >/dev/null 2>&1
check "wide space: exit 0" test $? -eq 0
check "wide space: 272 warm-start values beside trial 2" test "$(wc -l <"$T/wa/trials/2/gp.hyp")" -eq 272
# forget_trial3 DIR: the study as it stood before trial 3 was proposed
forget_trial3() {
  rm -f "$1/study.lock"
  sqlite3 "$1/study.db" "DELETE FROM epoch WHERE trial = 3; DELETE FROM trial WHERE number = 3;
    UPDATE stage SET state = 'running', decision = NULL, finished = NULL WHERE name = '1:bayes'"
  rm -rf "$1/trials/3"
}
p3() { sqlite3 "$1/study.db" "SELECT params FROM trial WHERE number = 3"; }
cp -r "$T/wa" "$T/wb" && forget_trial3 "$T/wb"
"$NS" resume "$T/wb" --quiet >/dev/null 2>&1
check "wide space: trial 3 proposed again is the same ($(p3 "$T/wb"))" test "$(p3 "$T/wb")" = "$(p3 "$T/wa")"
cp -r "$T/wa" "$T/wc" && forget_trial3 "$T/wc"
python3 - "$T/wc/trials/2/gp.hyp" <<'PY'
import math, sys
v = [float.fromhex(l.strip()) for l in open(sys.argv[1])]
open(sys.argv[1], 'w').write(''.join((x + 1.0).hex() + '\n' if math.isfinite(x) else 'nan\n' for x in v))
PY
"$NS" resume "$T/wc" --quiet >/dev/null 2>&1
check "wide space: another warm start, another proposal (the start is read back)" test "$(p3 "$T/wc")" != "$(p3 "$T/wa")"

# --- a checkpoint ahead of the store --------------------------------------------------------
# The store commits with synchronous=NORMAL, checkpoints are fsynced: after a power loss the
# store can have lost its last epochs of a trial while the checkpoint holds them. Simulated:
# a copy of study.db taken while trial 0 ran, put back after a SIGTERM checkpointed trial 0
# further on. The resumed study must equal the unbroken one, epoch records included.
cat >"$T/power.yaml" <<YAML
data:
  train: $PWD/configs/data/tiny.csv
  label: label
  val_fraction: 0.2
model:
  hidden: [8]
train:
  lr: {log_uniform: [1e-3, 1e-1]}
search:
  seed: 5
  resampling: holdout
  stages:
    - {stage: random, trials: 2, epochs: 6000}
YAML
# The trials, the epoch records and the health findings, timings left out.
state() {
  table "$1"
  sqlite3 "$1/study.db" "SELECT number, result, health, health_flags FROM trial ORDER BY number"
  sqlite3 "$1/study.db" "SELECT trial, epoch, step, train_loss, val_loss, val_acc, lr, grad_norm, layer_grad_norm FROM epoch ORDER BY trial, epoch"
}
epochs0() { sqlite3 "$1/study.db" "SELECT count(*) FROM epoch WHERE trial = 0" 2>/dev/null || echo 0; }
"$NS" "$T/power.yaml" -j 1 -o "$T/pa" --quiet >/dev/null 2>&1
check "power loss: the unbroken run exit 0" test $? -eq 0
"$NS" "$T/power.yaml" -j 1 -o "$T/pb" --quiet >/dev/null 2>&1 &
pid=$!
for _ in $(seq 400); do [[ $(epochs0 "$T/pb") -ge 200 ]] && break; sleep 0.01; done
sqlite3 "$T/pb/study.db" ".backup '$T/snap.db'"
snap=$(sqlite3 "$T/snap.db" "SELECT max(epoch) FROM epoch WHERE trial = 0")
for _ in $(seq 400); do [[ $(epochs0 "$T/pb") -ge $((snap + 500)) ]] && break; sleep 0.01; done
kill -TERM "$pid"; wait "$pid"; rc=$?
check "power loss: SIGTERM during trial 0 (exit $rc)" test "$rc" -eq 130
check "power loss: trial 0 left a checkpoint" test -f "$T/pb/trials/0/checkpoint"
ahead=$(sqlite3 "$T/pb/study.db" "SELECT max(epoch) FROM epoch WHERE trial = 0")
check "power loss: the checkpoint is ahead of the copy (epoch $ahead > $snap)" test "$ahead" -gt "$snap"
cp "$T/snap.db" "$T/pb/study.db" && rm -f "$T/pb/study.db-wal" "$T/pb/study.db-shm"
"$NS" resume "$T/pb" >/dev/null 2>"$T/pb.err"
rc=$?
check "power loss: resume exit 0 ($(tail -1 "$T/pb.err"))" test $rc -eq 0
check "power loss: resume says the checkpoint was ahead" grep -q "trial 0: its checkpoint (epoch [0-9]*) is ahead of the study's records" "$T/pb.err"
check "power loss: the resumed study equals the unbroken one, every epoch recorded" \
  cmp -s <(state "$T/pa") <(state "$T/pb")
check "power loss: integrity_check ok" test "$(sqlite3 "$T/pb/study.db" 'PRAGMA integrity_check')" = ok

echo "e2e_limits: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
