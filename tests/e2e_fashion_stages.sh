#!/usr/bin/env bash
# e2e_fashion_stages.sh — the acceptance run of the stages: configs/fashion-mnist-stages.yaml
# (lr_range, batch_sweep, compare, final) on the real Fashion-MNIST with 2 workers; the
# configuration the stages pick, trained for its budget, must reach test accuracy >= 0.88,
# status must show each decision, and the exported config must train to the same numbers.
# usage: tests/e2e_fashion_stages.sh PATH/TO/nnsearch   (run from the repository root)
set -uo pipefail
NS=${1:?usage: e2e_fashion_stages.sh NNSEARCH}
T=$(mktemp -d /tmp/nnsearch-fstages-XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
check() { local what=$1; shift; if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $what" >&2; fi; }
dec() { sqlite3 "$T/fm/study.db" "SELECT json_extract(decision, '$2') FROM stage WHERE name = '$1'"; }

start=$(date +%s.%N)
"$NS" configs/fashion-mnist-stages.yaml -j 2 -o "$T/fm" --quiet >/dev/null 2>"$T/err"
check "the stages run (exit 0; $(tail -1 "$T/err"))" test $? -eq 0
secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
check "4 stages complete" test "$(sqlite3 "$T/fm/study.db" "SELECT count(*) FROM stage WHERE state='complete'")" -eq 4
acc=$(dec 4:final '$.test_acc')
echo "fashion-mnist stages: ${secs}s; adam-like LR $(dec 1:lr_range '$.adaptive_lr'), sgd LR $(dec 1:lr_range '$.sgd_lr');" \
  "batch $(dec 2:batch_sweep '$.batch_size') (noise scale $(dec 2:batch_sweep '$.noise_scale'));" \
  "leader $(dec 3:compare '$.leader'); final test accuracy $acc"
check "the chosen configuration reaches test accuracy $acc >= 0.88" awk -v a="$acc" 'BEGIN { exit !(a >= 0.88) }'
"$NS" status "$T/fm" >"$T/status.txt"
check "status shows every decision" bash -c "grep -q 'lr_range *complete  rule=' '$T/status.txt' &&
  grep -q 'batch_sweep *complete  batch_size=' '$T/status.txt' && grep -q 'compare *complete  leader=' '$T/status.txt' &&
  grep -q 'final *complete  trial=' '$T/status.txt'"
"$NS" export "$T/fm" -o "$T/best.yaml" >/dev/null
check "export exit 0" test $? -eq 0
tacc=$("$NS" train "$T/best.yaml" --json --quiet -o "$T/best.nsm" | tail -1 | sed -E 's/.*"test_acc":([0-9.]+).*/\1/')
check "the exported config trains to the final trial's test accuracy ($tacc vs $acc)" \
  awk -v a="$acc" -v b="$tacc" 'BEGIN { exit !(a - b < 1e-9 && b - a < 1e-9) }'
echo "e2e_fashion_stages: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
