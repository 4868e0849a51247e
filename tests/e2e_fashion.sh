#!/usr/bin/env bash
# e2e_fashion.sh — the acceptance run of the trainer: configs/fashion-mnist-train.yaml on
# the real Fashion-MNIST (Debian's dataset-fashion-mnist) must reach test accuracy >= 0.885,
# and predict with the saved model must reproduce that accuracy on t10k.
# usage: tests/e2e_fashion.sh PATH/TO/nnsearch   (run from the repository root)
set -uo pipefail
NS=${1:?usage: e2e_fashion.sh NNSEARCH}
D=/usr/share/datasets/fashion-mnist
T=$(mktemp -d /tmp/nnsearch-fashion-XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
check() { local what=$1; shift; if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $what" >&2; fi; }

"$NS" train configs/fashion-mnist-train.yaml --json --quiet -o "$T/fm.nsm" >"$T/fm.json"
check "train exit 0" test $? -eq 0
final=$(tail -1 "$T/fm.json")
acc=$(sed -E 's/.*"test_acc":([0-9.]+).*/\1/' <<<"$final")
echo "fashion-mnist: $final"
check "test accuracy $acc >= 0.885" awk -v a="$acc" 'BEGIN { exit !(a >= 0.885) }'
"$NS" predict "$T/fm.nsm" "$D/t10k-images-idx3-ubyte.gz" --labels "$D/t10k-labels-idx1-ubyte.gz" \
  -o "$T/pred.csv" 2>"$T/pred.err"
check "predict exit 0" test $? -eq 0
pacc=$(sed -E 's/.*accuracy ([0-9.]+).*/\1/' "$T/pred.err")
check "predict accuracy $pacc equals the test accuracy $acc" awk -v a="$acc" -v b="$pacc" 'BEGIN { exit !(a - b < 1e-4 && b - a < 1e-4) }'
check "10000 predictions" test "$(wc -l <"$T/pred.csv")" -eq 10001
echo "e2e_fashion: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
