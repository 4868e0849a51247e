#!/usr/bin/env bash
# e2e_fashion_stages.sh — the acceptance run of the stages: configs/fashion-mnist-stages.yaml
# (lr_range, batch_sweep, compare, final) on the real Fashion-MNIST with 2 workers; the
# configuration the stages pick, trained for its budget, is compared with the config's own
# hand-set values trained for the same budget without any search (measured here, with the
# final trial's seed); status must show each decision, and the exported config must train
# to the same numbers.
# usage: tests/e2e_fashion_stages.sh PATH/TO/nnsearch   (run from the repository root)
set -uo pipefail
NS=${1:?usage: e2e_fashion_stages.sh NNSEARCH}
T=$(mktemp -d /tmp/nnsearch-fstages-XXXXXX)
trap 'rm -rf "$T"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/lib_e2e.sh" # pass, fail, check, jnum, num
dec() { sqlite3 "$T/fm/study.db" "SELECT json_extract(decision, '$2') FROM stage WHERE name = '$1'"; }

start=$(date +%s.%N)
"$NS" configs/fashion-mnist-stages.yaml -j 2 -o "$T/fm" --quiet >/dev/null 2>"$T/err"
rc=$?
check "the stages run (exit 0; $(tail -1 "$T/err"))" test $rc -eq 0
secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
check "4 stages complete" test "$(sqlite3 "$T/fm/study.db" "SELECT count(*) FROM stage WHERE state='complete'")" -eq 4
acc=$(dec 4:final '$.test_acc')
echo "fashion-mnist stages: ${secs}s; adam-like LR $(dec 1:lr_range '$.adaptive_lr'), sgd LR $(dec 1:lr_range '$.sgd_lr');" \
  "batch $(dec 2:batch_sweep '$.batch_size') (noise scale $(dec 2:batch_sweep '$.noise_scale'));" \
  "leader $(dec 3:compare '$.leader'); final test accuracy $acc"
# no search: the config's hand-set values (adam, LR 1e-3, batch 128, cosine) for the same
# 10 epochs, from the final trial's seed (0.8929 test accuracy; the final trial 0.8956).
# Over seeds 1..3 the hand-set values reach 0.8973, 0.8969 and 0.8929, the stages' choice
# (rmsprop, one-cycle, batch 64) 0.8952, 0.8955 and 0.8952: the stages do not beat the
# hand-set values beyond chance, so what is asserted is that they are not worse beyond it,
# by at most 2 standard errors of the difference of two accuracies on the 10,000 test rows
# (2 x sqrt(2 x 0.9 x 0.1 / 10000) = 0.0085). With the range test's valley rule broken
# (the LR half-way along the valley: 0.0002 for Adam) the final trial reached 0.877 and
# this check failed; the old limit, 0.88, was 0.003 from passing it.
sed '/^search:/,$d' configs/fashion-mnist-stages.yaml >"$T/hand.yaml"
fseed=$(sqlite3 "$T/fm/study.db" "SELECT seed FROM trial WHERE stage = '4:final'")
"$NS" train "$T/hand.yaml" --seed "$fseed" --json --quiet -o "$T/hand.nsm" >"$T/hand.json" 2>"$T/hand.err"
rc=$?
check "the hand-set config trains (exit 0; $(tail -1 "$T/hand.err"))" test $rc -eq 0
hacc=$(jnum "$T/hand.json" test_acc)
echo "no search (hand-set values, 10 epochs, seed $fseed): test accuracy $hacc"
check "the chosen configuration's test accuracy $acc is within 0.0085 of the hand-set one's $hacc or above" \
  num 'a >= h - 0.0085' a="$acc" h="$hacc"
"$NS" status "$T/fm" >"$T/status.txt"
check "status shows every decision" bash -c "grep -q 'lr_range *complete  rule=' '$T/status.txt' &&
  grep -q 'batch_sweep *complete  batch_size=' '$T/status.txt' && grep -q 'compare *complete  leader=' '$T/status.txt' &&
  grep -q 'final *complete  trial=' '$T/status.txt'"
"$NS" export "$T/fm" -o "$T/best.yaml" >/dev/null
check "export exit 0" test $? -eq 0
tacc=$("$NS" train "$T/best.yaml" --json --quiet -o "$T/best.nsm" | jnum - test_acc)
check "the exported config trains to the final trial's test accuracy ($tacc vs $acc)" \
  num 'abs(a - b) < 1e-9' a="$acc" b="$tacc"
echo "e2e_fashion_stages: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
