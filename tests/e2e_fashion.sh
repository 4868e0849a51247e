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
source "$(dirname "${BASH_SOURCE[0]}")/lib_e2e.sh"

"$NS" train configs/fashion-mnist-train.yaml --json --quiet -o "$T/fm.nsm" >"$T/fm.json"
check "train exit 0" test $? -eq 0
echo "fashion-mnist: $(tail -1 "$T/fm.json")"
acc=$(jnum "$T/fm.json" test_acc)
check "test accuracy $acc >= 0.885" num 'a >= 0.885' a="$acc"
"$NS" predict "$T/fm.nsm" "$D/t10k-images-idx3-ubyte.gz" --labels "$D/t10k-labels-idx1-ubyte.gz" \
  -o "$T/pred.csv" 2>"$T/pred.err"
check "predict exit 0" test $? -eq 0
pacc=$(sed -nE 's/.*accuracy ([0-9.]+).*/\1/p' "$T/pred.err")
check "predict accuracy $pacc equals the test accuracy $acc" num 'abs(a - b) < 1e-4' a="$acc" b="$pacc"
check "10000 predictions" test "$(wc -l <"$T/pred.csv")" -eq 10001
echo "e2e_fashion: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
