#!/usr/bin/env bash
# e2e_cli.sh — end-to-end checks of the nnsearch program as a user runs it: train on the
# tiny CSV and on a generated regression CSV, JSON records, predict, determinism across
# runs, the drift warning of predict, and one-line errors with exit code 2 for bad configs,
# data and models.
# usage: tests/e2e_cli.sh PATH/TO/nnsearch   (run from the repository root)
set -uo pipefail
NS=${1:?usage: e2e_cli.sh NNSEARCH}
NS=$(cd "$(dirname "$NS")" && pwd)/$(basename "$NS")
T=$(mktemp -d /tmp/nnsearch-e2e-XXXXXX)
trap 'rm -rf "$T"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/lib_e2e.sh" # pass, fail, check, jnum, num
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# expect_error NAME EXPECTED_SUBSTRING CMD... : exit code 2, one stderr line with the substring
expect_error() {
  local name=$1 want=$2; shift 2
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [[ $rc -ne 2 ]]; then bad "$name: exit $rc, expected 2 ($(head -c 300 "$T/err"))"; return; fi
  if [[ $(wc -l <"$T/err") -ne 1 ]]; then bad "$name: expected one stderr line, got: $(cat "$T/err")"; return; fi
  if ! grep -qF -- "$want" "$T/err"; then bad "$name: '$want' not in: $(cat "$T/err")"; return; fi
  ok
}

# --- help and version
check "help" bash -c "'$NS' --help | grep -q 'nnsearch train CONFIG'"
check "version" bash -c "'$NS' --version | grep -Eq '^nnsearch [0-9]+\.[0-9]+'"
expect_error "no args is usage" "unknown option" "$NS" --bogus

# --- train the tiny CSV config, JSON records
"$NS" train configs/tiny-train.yaml --json --quiet -o "$T/tiny.nsm" >"$T/run1.json" 2>"$T/run1.err"
check "train exit 0" test $? -eq 0
check "30 epoch records + final" test "$(wc -l <"$T/run1.json")" -eq 31
check "epoch record keys" grep -q '"epoch":1,.*"train_loss":.*"val_loss":.*"val_acc":.*"lr":.*"seconds":.*"samples_per_s":' "$T/run1.json"
check "final record: per-class metrics and the health findings" \
  grep -q '"final":true,.*"val_balanced_acc":0\.[0-9]*,"val_macro_f1":0\.[0-9]*,.*"health":\[\]' "$T/run1.json"
# the default model path drops the config's last extension only: results/my.cfg/model.nsm
mkdir -p "$T/dflt/cfg" && sed "s|data/tiny.csv|$PWD/configs/data/tiny.csv|" configs/tiny-train.yaml >"$T/dflt/cfg/my.cfg.yaml"
(cd "$T/dflt" && "$NS" train cfg/my.cfg.yaml --quiet >/dev/null 2>&1)
check "train's default model path: results/<config name less its extension>/model.nsm" test -s "$T/dflt/results/my.cfg/model.nsm"
"$NS" train configs/tiny-train.yaml -o "$T/tiny_text.nsm" >"$T/run_text.out" 2>"$T/run_text.err"
check "text output: health line and balanced accuracy" \
  bash -c "grep -q '^health: ok' '$T/run_text.out' && grep -q 'balanced_acc 0\.' '$T/run_text.out'"
# LR far too high: the run stops as diverged, says why, and still exits 0 with a model
sed -e "s|data/tiny.csv|$PWD/configs/data/tiny.csv|" -e 's/^\( *\)lr:.*/\1lr: 1000/' -e 's/^\( *\)optimizer:.*/\1optimizer: sgd/' configs/tiny-train.yaml >"$T/hot.yaml"
"$NS" train "$T/hot.yaml" -o "$T/hot.nsm" >"$T/hot.out" 2>&1
check "a diverging run exits 0 and names the finding ($(grep health "$T/hot.out" | head -1))" \
  bash -c "grep -q 'DIVERGED' '$T/hot.out' && grep -q '^health: diverged (mistake 2)' '$T/hot.out'"
check "final record" bash -c "tail -1 '$T/run1.json' | grep -q '\"final\":true'"
acc=$(jnum "$T/run1.json" val_acc)
check "tiny val_acc >= 0.8 (got $acc)" num 'a >= 0.8' a="$acc"
check "model written" test -s "$T/tiny.nsm"

# --- same seed, same numbers (everything but timings)
"$NS" train configs/tiny-train.yaml --json --quiet -o "$T/tiny2.nsm" >"$T/run2.json" 2>/dev/null
strip() { sed -E 's/"(seconds|samples_per_s)":[^,}]*//g; s/"model":"[^"]*"//' "$1"; }
check "deterministic JSON" cmp -s <(strip "$T/run1.json") <(strip "$T/run2.json")
check "deterministic model file" cmp -s "$T/tiny.nsm" "$T/tiny2.nsm"

# --- predict on the training CSV (label column present: accuracy reported)
"$NS" predict "$T/tiny.nsm" configs/data/tiny.csv -o "$T/pred.csv" 2>"$T/pred.err"
check "predict exit 0" test $? -eq 0
check "predict rows" test "$(wc -l <"$T/pred.csv")" -eq 601
check "predict header" bash -c "head -1 '$T/pred.csv' | grep -q '^row,prediction,p_alpha,p_beta,p_gamma$'"
check "predict accuracy line" grep -q 'accuracy' "$T/pred.err"
# columns in another order, label dropped: same predictions
awk -F, 'BEGIN{OFS=","} {print $8,$7,$6,$5,$4,$3,$2,$1}' configs/data/tiny.csv >"$T/shuffled.csv"
"$NS" predict "$T/tiny.nsm" "$T/shuffled.csv" 2>/dev/null >"$T/pred2.csv"
check "predict by column name" cmp -s "$T/pred.csv" "$T/pred2.csv"

# --- drift check: the training data gives no warning; a column moved by a large constant
# gives one, naming it, with the predictions still written and exit status 0.
check "help lists --no-drift-check" bash -c "'$NS' predict --help | grep -q -- '--no-drift-check'"
check "no drift warning on the training data ($(cat "$T/pred.err"))" \
  bash -c "! grep -q 'warning' '$T/pred.err' && ! grep -q 'note' '$T/pred.err'"
# the model file holds statistics of the 480 training rows (600 less val_fraction 0.2), in
# standardised units (mean 0, std 1): header 20 + architecture 48 + preprocessing 76 bytes
# put them at byte 144 (docs/model-format.md)
check "statistics cover the 8 features and 480 training rows" test \
  "$(od -An -tu4 -j144 -N4 "$T/tiny.nsm" | tr -d ' ') $(od -An -tu8 -j148 -N8 "$T/tiny.nsm" | tr -d ' ')" = "8 480"
check "statistics are in standardised units (means 0, stds 1)" bash -c \
  "od -An -v -tf4 -w4 -j$((156 + 64)) -N64 '$T/tiny.nsm' | awk 'NR <= 8 && (\$1 > 1e-4 || \$1 < -1e-4) { bad = 1 }
     NR > 8 && (\$1 > 1.0001 || \$1 < 0.9999) { bad = 1 } END { exit bad || NR != 16 }'"
awk -F, 'BEGIN{OFS=","} NR > 1 { $3 = $3 + 1000 } { print }' configs/data/tiny.csv >"$T/drifted.csv"
check "drifted copy differs only in f3" bash -c "head -1 '$T/drifted.csv' | grep -q '^f1,f2,f3,' &&
  diff <(cut -d, -f1,2,4- configs/data/tiny.csv) <(cut -d, -f1,2,4- '$T/drifted.csv') >/dev/null"
"$NS" predict "$T/tiny.nsm" "$T/drifted.csv" -o "$T/pred_drift.csv" 2>"$T/drift.err"
check "predict on drifted data exits 0" test $? -eq 0
check "predictions written despite drift" test "$(wc -l <"$T/pred_drift.csv")" -eq 601
check "shift warning names f3 ($(cat "$T/drift.err"))" grep -qE \
  '^nnsearch: warning: drift: 1 of 8 features \(12\.5%\) shifted .*: f3 \(\+[0-9.]+ std\); .*retrain' "$T/drift.err"
check "out-of-range warning names f3" grep -qE \
  '^nnsearch: warning: drift: 12\.[0-9]% of the input values .* outside .*most in f3 \(100\.0% of rows\)' "$T/drift.err"
check "two warning lines" test "$(grep -c 'warning' "$T/drift.err")" -eq 2
"$NS" predict "$T/tiny.nsm" "$T/drifted.csv" --no-drift-check -o "$T/pred_nd.csv" 2>"$T/nd.err"
rc=$?
check "--no-drift-check: exit 0, no warning, same predictions" bash -c \
  "test $rc -eq 0 && ! grep -q warning '$T/nd.err' && cmp -s '$T/pred_drift.csv' '$T/pred_nd.csv'"
# a model file of format version 1 (written before the statistics existed) still predicts,
# with one note that the check was skipped
"$NS" predict tests/data/tiny-v1.nsm "$T/drifted.csv" -o "$T/pred_v1.csv" 2>"$T/v1.err"
check "version-1 model predicts (exit 0)" test $? -eq 0
check "version-1 model: 600 predictions" test "$(wc -l <"$T/pred_v1.csv")" -eq 601
check "version-1 model: one note, no warning ($(cat "$T/v1.err"))" bash -c \
  "grep -q '^nnsearch: note: .*tiny-v1.nsm has no training statistics' '$T/v1.err' &&
   ! grep -q warning '$T/v1.err' && test \$(wc -l <'$T/v1.err') -eq 2"

# --- ensemble files (docs/model-format.md, "Ensemble files"), assembled here byte by byte
# from the layout: of the model once, or twice, they predict exactly what the model does,
# drift warnings included
le() { local v=$1 n=$2 i; for ((i = 0; i < n; i++)); do printf "\\x$(printf %02x $(((v >> (8 * i)) & 255)))"; done; }
ensemble() { # OUT MODEL...
  local out=$1 total=28 m; shift
  for m; do total=$((total + 8 + $(stat -c %s "$m"))); done
  { printf 'NSENSMB\0'; le 1 4; le "$total" 8; le $# 4
    for m; do le "$(stat -c %s "$m")" 8; cat "$m"; done; } >"$out"
  gzip -c "$out" | tail -c 8 | head -c 4 >>"$out" # gzip's trailer: the CRC-32 of its input
}
ensemble "$T/one.nse" "$T/tiny.nsm"
ensemble "$T/two.nse" "$T/tiny.nsm" "$T/tiny.nsm"
check "ensemble file layout: 24-byte header, the model, the CRC" \
  test "$(stat -c %s "$T/two.nse")" -eq $((28 + 2 * (8 + $(stat -c %s "$T/tiny.nsm"))))
"$NS" predict "$T/one.nse" configs/data/tiny.csv -o "$T/pred_one.csv" 2>"$T/one.err"
rc=$?
check "ensemble of one: exit 0, the model's predictions and summary ($(cat "$T/one.err"))" \
  bash -c "test $rc -eq 0 && cmp -s '$T/pred.csv' '$T/pred_one.csv' && cmp -s '$T/pred.err' '$T/one.err'"
"$NS" predict "$T/two.nse" "$T/drifted.csv" -o "$T/pred_two.csv" 2>"$T/two.err"
rc=$?
check "ensemble of the model twice: exit 0, the same predictions and drift warnings" \
  bash -c "test $rc -eq 0 && cmp -s '$T/pred_drift.csv' '$T/pred_two.csv' && cmp -s '$T/drift.err' '$T/two.err'"
head -c 100 "$T/two.nse" >"$T/trunc.nse"
expect_error "truncated ensemble" "trunc.nse: byte 100: file ends at byte 100, expected" \
  "$NS" predict "$T/trunc.nse" configs/data/tiny.csv

# --- checkpoints: a run killed at any moment and continued gives the uninterrupted bits
# 15000 epochs of the tiny model: about 2 s, so kills land after the first checkpoints
# (written once a second) as well as before them.
sed -e 's/epochs: 30/epochs: 15000/' -e 's#data/tiny.csv#'"$PWD"'/configs/data/tiny.csv#' \
  configs/tiny-train.yaml >"$T/long.yaml"
"$NS" train "$T/long.yaml" --quiet -o "$T/long_a.nsm" >/dev/null 2>&1
for delay in 0.3 1.4; do
  rm -f "$T/ck" "$T/long_b.nsm"
  # bash -c absorbs the KILL status, so the test's shell prints no "Killed" line
  bash -c 'timeout -s KILL "$@" >/dev/null 2>&1; exit 0' _ "$delay" \
    "$NS" train "$T/long.yaml" --quiet --checkpoint "$T/ck" -o "$T/long_b.nsm" 2>/dev/null
  "$NS" train "$T/long.yaml" --quiet --checkpoint "$T/ck" -o "$T/long_b.nsm" >/dev/null 2>&1
  check "resume after SIGKILL at ${delay}s gives identical model" cmp -s "$T/long_a.nsm" "$T/long_b.nsm"
done
check "no temporary checkpoint files left" bash -c "! ls '$T' | grep -q 'ck.tmp'"
# SIGINT: the run stops after its current step, checkpoints, exits 130; the same command
# continues it to the uninterrupted bits. A second signal exits at once.
cp "$T/long.yaml" "$T/longer.yaml"
rm -f "$T/ck2"
"$NS" train "$T/longer.yaml" --quiet --checkpoint "$T/ck2" -o "$T/longer_b.nsm" >/dev/null 2>"$T/int.err" &
pid=$!
sleep 0.6
kill -INT "$pid"
wait "$pid"; rc=$?
check "SIGINT exits 130 (got $rc)" test "$rc" -eq 130
check "SIGINT message names the checkpoint" grep -q "continues from" "$T/int.err"
check "no model written on interrupt" test ! -e "$T/longer_b.nsm"
"$NS" train "$T/longer.yaml" --quiet --checkpoint "$T/ck2" -o "$T/longer_b.nsm" >/dev/null 2>&1
check "resume after SIGINT gives identical model" cmp -s "$T/long_a.nsm" "$T/longer_b.nsm"
sed 's/seed: 1/seed: 2/' "$T/long.yaml" >"$T/other.yaml"
expect_error "checkpoint of another run" "not a checkpoint of this run" \
  "$NS" train "$T/other.yaml" --quiet --checkpoint "$T/ck" -o "$T/x.nsm"

# --- regression end to end
awk 'BEGIN { srand(3); print "a,b,c,y"; for (i = 0; i < 400; i++) { a = rand(); b = rand(); c = rand();
  printf "%.5f,%.5f,%.5f,%.5f\n", a, b, c, 3 * a - 2 * b + c * c + 10 } }' >"$T/reg.csv"
cat >"$T/reg.yaml" <<YAML
data:
  train: reg.csv
  label: y
  task: regression
model:
  hidden: [16]
  activation: tanh
train:
  epochs: 40
  batch_size: 16
  lr: 0.01
YAML
"$NS" train "$T/reg.yaml" --json --quiet -o "$T/reg.nsm" >"$T/reg.json" 2>"$T/reg.err"
rc=$? # before the check: a $(...) in its arguments would set $? to its own status
check "regression train exit 0 ($(cat "$T/reg.err"))" test $rc -eq 0
rmse=$(jnum "$T/reg.json" val_rmse)
check "regression val_rmse < 0.15 (got $rmse)" num 'a < 0.15' a="$rmse"
"$NS" predict "$T/reg.nsm" "$T/reg.csv" >"$T/reg_pred.csv" 2>"$T/reg_pred.err"
# the predictions against the file's own targets, recomputed here: in target units (y runs
# from 8.4 to 13.8, sd 1.0; a model that predicts the mean has RMSE 1.0, ours 0.05) and the
# RMSE predict reports
check "regression predictions in target units: 400, RMSE against y < 0.15, as predict reports ($(cat "$T/reg_pred.err"))" \
  /usr/bin/python3 -c "
import csv, math, re, sys
y = [float(r['y']) for r in csv.DictReader(open('$T/reg.csv'))]
p = [float(r['prediction']) for r in csv.DictReader(open('$T/reg_pred.csv'))]
said = re.search(r'rmse ([0-9.]+)', open('$T/reg_pred.err').read())
rmse = math.sqrt(sum((a - b) ** 2 for a, b in zip(y, p)) / len(y)) if len(p) == len(y) == 400 else math.inf
sys.exit(0 if rmse < 0.15 and said and abs(float(said.group(1)) - rmse) < 1e-5 else 'rmse %g' % rmse)"

# --- bad input: one line, exit 2, location
printf 'data:\n  train: data/tiny.csv\nmodel:\n  hiden: [4]\n' >"$T/typo.yaml"
cp -r configs/data "$T/"
expect_error "unknown key" "typo.yaml:4:3" "$NS" train "$T/typo.yaml"
printf 'data:\n  train: data/tiny.csv\ntrain:\n  lr: fast\n' >"$T/type.yaml"
expect_error "wrong type" "type.yaml:4:7" "$NS" train "$T/type.yaml"
printf 'data:\n  train: nowhere.csv\n' >"$T/missing.yaml"
expect_error "missing data file" "nowhere.csv" "$NS" train "$T/missing.yaml"
printf 'data:\n  train: data/tiny.csv\ntrain:\n  lr: {log_uniform: [1e-4, 1e-1]}\nsearch:\n  stages:\n    - {stage: random, trials: 2, epochs: 1}\n' >"$T/space.yaml"
expect_error "train refuses a search space" "space.yaml:4:7: train.lr is a search space" "$NS" train "$T/space.yaml"
expect_error "missing config" "nope.yaml" "$NS" train "$T/nope.yaml"
{ head -5 configs/data/tiny.csv; echo "1,2,x,4,5,6,7,8,alpha"; } >"$T/data/bad.csv"
printf 'data:\n  train: data/bad.csv\n' >"$T/badcsv.yaml"
expect_error "non-numeric cell" "bad.csv:6:3" "$NS" train "$T/badcsv.yaml"
cut -d, -f2- configs/data/tiny.csv >"$T/narrow.csv"
expect_error "predict missing column" "f1" "$NS" predict "$T/tiny.nsm" "$T/narrow.csv"
head -c 200 "$T/tiny.nsm" >"$T/trunc.nsm"
expect_error "truncated model" "trunc.nsm" "$NS" predict "$T/trunc.nsm" configs/data/tiny.csv
expect_error "labels with a CSV" "--labels is for IDX" "$NS" predict "$T/tiny.nsm" configs/data/tiny.csv --labels x
expect_error "predict needs args" "predict needs" "$NS" predict "$T/tiny.nsm"
expect_error "unknown option" "--frobnicate" "$NS" train configs/tiny-train.yaml --frobnicate
"$NS" predict "$T/trunc.nsm" configs/data/tiny.csv -o "$T/never.csv" 2>/dev/null
check "a failed predict leaves no output or temporary file" bash -c "! ls '$T' | grep -q never"

# --- lr-find: suggestion, plot, CSV of every seed; the search config's spaces taken at
# their middle; one-line errors for bad options
"$NS" lr-find configs/tiny-train.yaml --csv "$T/lr.csv" >"$T/lr.out" 2>"$T/lr.err"
rc=$?
check "lr-find exit 0 ($(head -c 300 "$T/lr.err"))" test $rc -eq 0
check "lr-find suggestion line" grep -Eq '^suggestion: lr [0-9.e+-]+ \(rule valley' "$T/lr.out"
check "lr-find bounds and plot" bash -c "grep -q '^bounds: ' '$T/lr.out' && grep -q '^ *+-----' '$T/lr.out'"
check "lr-find CSV header" bash -c "head -1 '$T/lr.csv' | grep -qx 'seed,step,lr,loss,smoothed'"
check "lr-find CSV rows > 20 ($(wc -l <"$T/lr.csv"))" test "$(wc -l <"$T/lr.csv")" -gt 21
"$NS" lr-find configs/tiny-train.yaml --seeds 1 --steps 50 --json >"$T/lr.json" 2>/dev/null
check "lr-find --json: one object" bash -c "test \$(wc -l <'$T/lr.json') -eq 1 && grep -q '\"suggestion\":[0-9]' '$T/lr.json' && grep -q '\"lr_min\":' '$T/lr.json'"
"$NS" lr-find "$T/space.yaml" --seeds 1 --steps 40 >"$T/lr_space.out" 2>&1
check "lr-find takes a search config at the middle of its spaces" grep -q '^suggestion:' "$T/lr_space.out"
expect_error "lr-find bad rule" "--rule" "$NS" lr-find configs/tiny-train.yaml --rule fastest
expect_error "lr-find bad seeds" "--seeds" "$NS" lr-find configs/tiny-train.yaml --seeds 0
expect_error "lr-find unknown option" "--bogus" "$NS" lr-find configs/tiny-train.yaml --bogus
expect_error "lr-find end below start" "end LR" "$NS" lr-find configs/tiny-train.yaml --start 1 --end 0.1

# data.max_rows / data.test_max_rows: a stratified sample of each file, the rest of the run unchanged
printf 'data:\n  train: %s\n  test: %s\n  max_rows: 500\n  test_max_rows: 100\nmodel: {hidden: [16]}\ntrain: {epochs: 2}\n' \
  "$PWD/configs/data/quickstart.csv" "$PWD/configs/data/quickstart-test.csv" >"$T/rows.yaml"
"$NS" train "$T/rows.yaml" -o "$T/rows.nsm" >"$T/rows.out" 2>"$T/rows.err"
check "max_rows: 500 of 3000 rows, 100 test rows ($(head -1 "$T/rows.err"))" \
  grep -q '450 training, 50 validation, 100 test rows' "$T/rows.err"
sed 's/max_rows: 500/max_rows: 1/' "$T/rows.yaml" >"$T/rows1.yaml"
expect_error "max_rows: 1 is refused" "data.max_rows: 1 row is too few" "$NS" train "$T/rows1.yaml"

echo "e2e_cli: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
