#!/usr/bin/env bash
# e2e_progress.sh — what a running search shows on stderr: on a terminal (a pseudo-terminal
# made by script(1)) one status line rewritten in place with \r and erase-line, with the
# ETA, a line per stage decision and the closing top trials and winner; with stderr in a
# file, timestamped lines and no escape sequences; NO_COLOR; --quiet (errors only); the
# budget left as the ETA of a stage that runs until its budget share ends.
# usage: tests/e2e_progress.sh PATH/TO/nnsearch   (run from the repository root)
set -uo pipefail
NS=${1:?usage: e2e_progress.sh NNSEARCH}
NS=$(cd "$(dirname "$NS")" && pwd)/$(basename "$NS")
T=$(mktemp -d /tmp/nnsearch-progress-XXXXXX)
trap 'rm -rf "$T"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/lib_e2e.sh"
ESC=$'\033' CR=$'\r'

cat >"$T/s.yaml" <<YAML
data:
  train: $PWD/configs/data/tiny.csv
  val_fraction: 0.2
model:
  hidden: [32]
train:
  epochs: 10
  batch_size: 32
  optimizer: adam
  lr: 1e-3
  schedule: cosine
search:
  name: pr
  seed: 3
  stages:
    - {stage: lr_range, seeds: 2, sweep_steps: 60}
    - {stage: batch_sweep, sizes: [16, 32, 64], epochs: 4}
    - {stage: compare, optimizers: [sgd, adam], schedules: [constant, cosine], seeds: 1, epochs: 4, shortlist: 2}
    - {stage: final}
YAML

# in_tty OUT CMD: runs CMD (a shell command line) with stdout and stderr on a
# pseudo-terminal (script(1)), the terminal's bytes to OUT; returns CMD's status
in_tty() { script -q -e -c "$2" /dev/null >"$1" </dev/null; }

# ---- a terminal: the live line --------------------------------------------------------
(unset NO_COLOR; TERM=xterm in_tty "$T/tty.err" "'$NS' '$T/s.yaml' -j 2 -o '$T/a' >'$T/tty.out'")
rc=$?
N=$(sqlite3 "$T/a/study.db" "SELECT count(*) FROM trial")
check "tty: exit 0 ($rc; $(tail -c 300 "$T/tty.err" | tr -d '\033'))" test $rc -eq 0
check "tty: the status line is rewritten in place (\\r then erase-line)" grep -qaF "$CR$ESC[K" "$T/tty.err"
check "tty: several rewrites of the status line" test "$(grep -aoF "$CR$ESC[K" "$T/tty.err" | wc -l)" -ge 5
check "tty: the status line shows the stage and trials done/planned" grep -qaE '\[3/4 compare\].* [0-9]+/[0-9]+ done, [0-9] running' "$T/tty.err"
check "tty: the status line shows an ETA from measured trial times" grep -qaE 'ETA [0-9]+(s|m[0-9]{2}s)' "$T/tty.err"
check "tty: the status line shows the best so far" grep -qaE 'best (val_acc )?0\.[0-9]{4} \(trial [0-9]+\)' "$T/tty.err"
# what stays on the screen: the text with every rewritten line dropped
sed -e 's/\r\x1b\[K/\n/g' -e 's/\x1b\[[0-9;]*m//g' "$T/tty.err" | tr -d '\r' | grep -av '^\[' >"$T/tty.screen"
for st in 1:lr_range 2:batch_sweep 3:compare 4:final; do
  check "tty: stage $st ends with a one-line summary" grep -qaE "^stage $st done: .{10,}" "$T/tty.screen"
done
check "tty: lr_range's summary names the LR and bounds" grep -qaE '^stage 1:lr_range done: LR range test: .*LR [0-9.e-]+ \(bounds ' "$T/tty.screen"
check "tty: batch_sweep's summary names the batch size" grep -qaE '^stage 2:batch_sweep done: batch size [0-9]+' "$T/tty.screen"
check "tty: the search ends with the top trials" grep -qaE "^top [0-9]+ of $N trials by val_acc" "$T/tty.screen"
check "tty: ... and the winner" grep -qaE '^winner: trial [0-9]+ \(stage 4:final\), val_acc 0\.[0-9]{4}' "$T/tty.screen"
check "tty: the live line is cleared before the summary" grep -qaE "$CR$ESC\\[Ktop [0-9]+ of" "$T/tty.err"
check "tty: colours by default" grep -qaE "$ESC\\[[0-9;]+m" "$T/tty.err"
check "tty: stdout keeps the results only" bash -c "grep -q '^best: trial' '$T/tty.out' && ! grep -qa 'ETA' '$T/tty.out'"
w=$(sed -n 's/^winner: trial \([0-9]*\).*/\1/p' "$T/tty.screen")
check "tty: the winner is the final stage's trial ($w)" test "$w" = "$(dec "$T/a" 4:final '$.trial')"

# NO_COLOR: the same live line without a colour
rm -rf "$T/a"
(export NO_COLOR=1 TERM=xterm; in_tty "$T/nc.err" "'$NS' '$T/s.yaml' -j 2 -o '$T/a' >/dev/null"); rc=$?
check "NO_COLOR: exit 0" test $rc -eq 0
check "NO_COLOR: no colour sequence" bash -c "! grep -qaE '$ESC\\[[0-9;]*m' '$T/nc.err'"
check "NO_COLOR: still rewritten in place" grep -qaF "$CR$ESC[K" "$T/nc.err"

# --quiet on a terminal: nothing on stderr (stdout goes to a file)
rm -rf "$T/a"
(export TERM=xterm; in_tty "$T/q.err" "'$NS' '$T/s.yaml' -j 2 -o '$T/a' --quiet >/dev/null"); rc=$?
check "--quiet: exit 0" test $rc -eq 0
check "--quiet: nothing on the terminal ($(head -c 200 "$T/q.err"))" test ! -s "$T/q.err"
# --quiet still reports errors, in one line
"$NS" "$T/missing.yaml" --quiet >/dev/null 2>"$T/qe.err"; rc=$?
check "--quiet: an error still shows, one line, exit 2 ($(cat "$T/qe.err"))" bash -c \
  "[ $rc -eq 2 ] && [ \$(wc -l <'$T/qe.err') -eq 1 ] && grep -q 'missing.yaml' '$T/qe.err'"

# ---- not a terminal: timestamped lines -------------------------------------------------
rm -rf "$T/a"
"$NS" "$T/s.yaml" -j 2 -o "$T/a" >"$T/plain.out" 2>"$T/plain.err"; rc=$?
check "plain: exit 0" test $rc -eq 0
check "plain: no \\r and no escape sequence" bash -c "! grep -qaF '$CR' '$T/plain.err' && ! grep -qaF '$ESC' '$T/plain.err'"
# every progress line (before the closing summary) starts with a timestamp
sed '/^top [0-9]* of/,$d' "$T/plain.err" >"$T/plain.progress"
check "plain: progress lines" test "$(wc -l <"$T/plain.progress")" -ge 8
check "plain: every progress line is timestamped" bash -c \
  "! grep -vqE '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} ' '$T/plain.progress'"
check "plain: the stage summaries" test "$(grep -cE '^[0-9-]+ [0-9:]+ stage [1-4]:[a-z_]+ done: ' "$T/plain.progress")" -eq 4
check "plain: trial lines carry done/planned, ETA and best" grep -qE \
  "trial [0-9]+ complete: val_acc 0\.[0-9]{4} \([0-9]+ epochs, .*\) \| [0-9]+/$N done, [0-9] running \| ETA ([0-9]|--).* \| best " "$T/plain.progress"
# not chatty: at most a line per trial plus the stage and study lines
check "plain: at most one line per trial ($(wc -l <"$T/plain.progress") lines)" \
  test "$(wc -l <"$T/plain.progress")" -le $((N + 4 * 2 + 3))
check "plain: the top trials and the winner close it" bash -c \
  "grep -qE '^top [0-9]+ of $N trials' '$T/plain.err' && grep -qE '^winner: trial [0-9]+' '$T/plain.err'"
"$NS" "$T/s.yaml" -j 2 -o "$T/b" --quiet >/dev/null 2>"$T/plainq.err"; rc=$?
check "plain --quiet: exit 0 and nothing on stderr" bash -c "[ $rc -eq 0 ] && [ ! -s '$T/plainq.err' ]"
check "progress output does not change the study" cmp -s <(table "$T/a") <(table "$T/b")

# ---- a stage that runs until its budget share ends: the budget left is the ETA ----------
cat >"$T/b.yaml" <<YAML
data:
  train: $PWD/configs/data/tiny.csv
  val_fraction: 0.2
  label: label
model:
  hidden: [16]
  dropout: {uniform: [0, 0.3]}
train:
  batch_size: 32
  lr: {log_uniform: [1e-3, 1e-1]}
search:
  name: bud
  resampling: holdout
  stages:
    - {stage: random, trials: 2, epochs: 3}
    - {stage: bayes, round: 2, epochs: 3}
YAML
"$NS" "$T/b.yaml" -o "$T/bud" --budget 3s -j 2 >/dev/null 2>"$T/bud.err"; rc=$?
check "budget: exit 0 ($(tail -1 "$T/bud.err"))" test $rc -eq 0
check "budget: the bayes stage announces its budget share" grep -qE 'stage 2/2 bayes: trials until its budget share ends \([0-9]+s\)' "$T/bud.err"
check "budget: trial lines show the time left as the ETA" grep -qE 'trial [0-9]+ (complete|pruned).*ETA [0-9]+s \(budget( share)?\)' "$T/bud.err"

echo "e2e_progress: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
