#!/usr/bin/env bash
# e2e_cli_usage.sh — how the command line reads: each command's own --help (and what its -o
# names), an unknown command as a one-line error with exit 2 (with a suggestion when it is
# close to a command) while a config path still runs, options before or after the
# arguments for every command, and predict's balanced accuracy and macro-F1 checked
# against an independent computation in Python.
# usage: tests/e2e_cli_usage.sh PATH/TO/nnsearch   (run from the repository root)
set -uo pipefail
NS=${1:?usage: e2e_cli_usage.sh NNSEARCH}
NS=$(cd "$(dirname "$NS")" && pwd)/$(basename "$NS")
T=$(mktemp -d /tmp/nnsearch-usage-XXXXXX)
trap 'rm -rf "$T"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/lib_e2e.sh"

# expect_error NAME SUBSTRING CMD...: exit 2 and exactly one stderr line holding SUBSTRING
expect_error() {
  local name=$1 want=$2; shift 2
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  check "$name: exit 2, one line with '$want' (exit $rc: $(head -c 300 "$T/err"))" bash -c \
    "[ $rc -eq 2 ] && [ \$(wc -l <'$T/err') -eq 1 ] && grep -qF -- \"\$1\" '$T/err'" _ "$want"
}

# ---- per-command help -----------------------------------------------------------------
"$NS" --help >"$T/global.txt"
check "global --help: exit 0, lists the commands" grep -q 'nnsearch lr-find CONFIG' "$T/global.txt"
check "global --help: says how paths resolve" bash -c \
  "grep -q 'data paths inside a config resolve against the config file' '$T/global.txt' && grep -q 'resolves against the working directory' '$T/global.txt'"
for cmd in resume status export train predict lr-find; do
  "$NS" "$cmd" --help >"$T/h.txt" 2>"$T/h.err"; rc=$?
  check "$cmd --help: exit 0, its own usage on stdout, nothing on stderr" bash -c \
    "[ $rc -eq 0 ] && head -1 '$T/h.txt' | grep -q '^usage: nnsearch $cmd ' && [ ! -s '$T/h.err' ] && ! cmp -s '$T/h.txt' '$T/global.txt'"
  "$NS" help "$cmd" >"$T/h2.txt"
  check "help $cmd is $cmd --help" cmp -s "$T/h.txt" "$T/h2.txt"
  "$NS" "$cmd" ARG -h >"$T/h3.txt"
  check "$cmd ARG -h is $cmd --help" cmp -s "$T/h.txt" "$T/h3.txt"
done
"$NS" configs/tiny-train.yaml --help >"$T/hs.txt"
check "CONFIG --help: the search's usage" bash -c "head -1 '$T/hs.txt' | grep -q '^usage: nnsearch CONFIG.yaml'"
check "search --help: -o names the study folder" grep -q -- '-o, --output DIR .*FOLDER' "$T/hs.txt"
check "export --help: -o names the YAML file" bash -c "'$NS' export --help | grep -q -- '-o, --output FILE .*YAML FILE'"
check "train --help: -o names the model file" bash -c "'$NS' train --help | grep -q -- '-o, --output FILE .*model FILE'"
check "predict --help: -o names the CSV file" bash -c "'$NS' predict --help | grep -q -- '-o, --output FILE .*CSV FILE'"
check "predict --help: names its figures" bash -c "'$NS' predict --help | grep -q 'balanced accuracy'"

# ---- unknown commands --------------------------------------------------------------------
expect_error "a misspelt command" "unknown command 'stauts' (did you mean 'status'?)" "$NS" stauts "$T"
expect_error "a misspelt command with a config" "did you mean 'lr-find'?" "$NS" lr-fnd configs/tiny-train.yaml
expect_error "a word that is nothing" "unknown command 'frobnicate'" "$NS" frobnicate
expect_error "a folder" "is a folder, not a config file" "$NS" "$T"
expect_error "a missing .yaml is the loader's error" "missing.yaml" "$NS" "$T/missing.yaml"
expect_error "no command" "missing the command" "$NS" --quiet
expect_error "an unknown option without a command" "unknown option '--bogus'" "$NS" --bogus
expect_error "an option the command does not take" "unknown option '-j'" "$NS" -j 2 status "$T"
expect_error "-j beyond search.parallel's range" "-j: expected a whole number 1..4096" "$NS" configs/quickstart.yaml -j 5000
expect_error "--threads 0" "--threads: expected a whole number 1..4096" "$NS" train configs/tiny-train.yaml --threads 0
expect_error "--seed below 0" "--seed: expected a whole number >= 0" "$NS" train configs/tiny-train.yaml --seed -1
# a config is any existing file, whatever its name
sed "s#data/tiny.csv#$PWD/configs/data/tiny.csv#" configs/tiny-train.yaml >"$T/tiny.conf"
"$NS" "$T/tiny.conf" --quiet -o "$T/conf.nsm" >/dev/null 2>"$T/conf.err"
check "an existing file without .yaml runs as a config ($(head -c 200 "$T/conf.err"))" test -s "$T/conf.nsm"

# ---- options before or after the arguments ----------------------------------------------
cat >"$T/s.yaml" <<YAML
data:
  train: $PWD/configs/data/tiny.csv
  val_fraction: 0.2
model:
  hidden: [16]
  dropout: {uniform: [0, 0.2]}
train:
  batch_size: 32
  lr: {log_uniform: [1e-3, 1e-1]}
search:
  name: u
  seed: 5
  resampling: holdout
  stages:
    - {stage: random, trials: 3, epochs: 3}
YAML
"$NS" -j 2 -o "$T/before" --quiet "$T/s.yaml" >/dev/null 2>"$T/before.err"; rc=$?
check "nnsearch -j 2 -o DIR --quiet CONFIG: exit 0 ($(head -c 200 "$T/before.err"))" test $rc -eq 0
"$NS" "$T/s.yaml" -o "$T/after" --quiet -j 2 >/dev/null 2>&1; rc=$?
check "options after the config: exit 0" test $rc -eq 0
check "options before and after: the same study" cmp -s <(table "$T/before") <(table "$T/after")
check "-o before the config named the study folder" test -s "$T/before/study.db"
# outputs that are not files: refused before any work, one line, exit 2, the thing intact
mkfifo "$T/pipe" && mkdir -p "$T/afolder"
expect_error "train -o a pipe" "pipe: is a pipe, not a file" "$NS" train configs/tiny-train.yaml -o "$T/pipe"
check "... the pipe is still a pipe" test -p "$T/pipe"
expect_error "train -o a folder" "afolder: is a folder, not a file" "$NS" train configs/tiny-train.yaml -o "$T/afolder"
expect_error "train --checkpoint a folder" "afolder: is a folder, not a file" "$NS" train configs/tiny-train.yaml -o "$T/m.nsm" --checkpoint "$T/afolder"
check "... no model written" test ! -e "$T/m.nsm"
expect_error "export -o a pipe" "pipe: is a pipe, not a file" "$NS" export "$T/before" -o "$T/pipe"
expect_error "report -o a folder" "afolder: is a folder, not a file" "$NS" report "$T/before" -o "$T/afolder"
expect_error "predict -o a pipe" "pipe: is a pipe, not a file" "$NS" predict "$T/before/trials/0/model.nsm" configs/data/tiny.csv -o "$T/pipe"
check "... still a pipe" test -p "$T/pipe"
# an output that is one of the command's inputs is refused, the input intact
cp "$T/before/study.db" "$T/db.bak"
expect_error "export -o the study's own database" "which this command reads" "$NS" export "$T/before" -o "$T/before/study.db"
expect_error "report -o the study's own database" "which this command reads" "$NS" report "$T/before" -o "$T/before/study.db"
check "... the study database untouched" cmp -s "$T/db.bak" "$T/before/study.db"
cp configs/tiny-train.yaml "$T/tt.yaml" && sed -i "s|data/tiny.csv|$PWD/configs/data/tiny.csv|" "$T/tt.yaml" && cp "$T/tt.yaml" "$T/tt.bak"
expect_error "train -o its own config" "which this command reads" "$NS" train "$T/tt.yaml" -o "$T/tt.yaml"
check "... the config untouched" cmp -s "$T/tt.yaml" "$T/tt.bak"
cp configs/data/tiny.csv "$T/td.csv"
expect_error "predict -o its data" "which this command reads" "$NS" predict "$T/before/trials/0/model.nsm" "$T/td.csv" -o "$T/td.csv"
check "... the data untouched" cmp -s "$T/td.csv" configs/data/tiny.csv
expect_error "a search with -o ''" "option -o needs a folder name, not an empty one" "$NS" "$T/s.yaml" -o ""
expect_error "train -o ''" "an empty output path" "$NS" train configs/tiny-train.yaml -o ""
sed 's/resampling: holdout/resampling: holdout/; s/^  val_fraction: .*//' "$T/s.yaml" >"$T/vf.yaml"
sed -i 's/^data:/data:\n  val_fraction: 0.001/' "$T/vf.yaml"
# a gzipped CSV trains and predicts as the CSV does; a pipe as data is refused at once
gzip -c configs/data/tiny.csv >"$T/tiny.csv.gz"
sed "s|data/tiny.csv|$T/tiny.csv.gz|" configs/tiny-train.yaml >"$T/gz.yaml"
"$NS" train "$T/gz.yaml" -o "$T/gz.nsm" --quiet >"$T/gz.out" 2>"$T/gz.err"; rc=$?
check "a gzipped CSV trains: exit 0 ($(head -c 200 "$T/gz.err"))" test $rc -eq 0
"$NS" train configs/tiny-train.yaml -o "$T/plain.nsm" --quiet >"$T/plain.out" 2>/dev/null
check "... to a model that predicts as the CSV's does" \
  cmp -s <("$NS" predict "$T/gz.nsm" configs/data/tiny.csv 2>/dev/null) <("$NS" predict "$T/plain.nsm" configs/data/tiny.csv 2>/dev/null)
check "predict reads the gzipped CSV by its header" \
  bash -c "'$NS' predict '$T/gz.nsm' '$T/tiny.csv.gz' 2>/dev/null | head -1 | grep -q '^row,prediction,p_alpha'"
mkfifo "$T/datapipe"
sed "s|data/tiny.csv|$T/datapipe|" configs/tiny-train.yaml >"$T/pipe.yaml"
expect_error "a pipe as data" "is not a regular file (a pipe or a device)" timeout 10 "$NS" train "$T/pipe.yaml" -o "$T/pipe.nsm"
# a data file changed after the study ran: resume refuses it (the config's hash cannot see
# it); restored, the study resumes; --force continues with the new data
cp configs/data/tiny.csv "$T/dd.csv"
sed "s|$PWD/configs/data/tiny.csv|$T/dd.csv|" "$T/s.yaml" >"$T/dd.yaml"
"$NS" "$T/dd.yaml" -o "$T/dd" --quiet >/dev/null 2>&1
sed -i '2s/^[-0-9.]*,/0.5,/' "$T/dd.csv"
check "... one value of the data file changed" bash -c "! cmp -s '$T/dd.csv' configs/data/tiny.csv"
expect_error "resume on changed data" "the data differ from those the study was run on" "$NS" resume "$T/dd"
cp configs/data/tiny.csv "$T/dd.csv"
"$NS" resume "$T/dd" --quiet >/dev/null 2>&1
check "resume on the data restored: exit 0" test $? -eq 0
sed -i '2s/^[-0-9.]*,/0.5,/' "$T/dd.csv"
"$NS" resume "$T/dd" --force --quiet >/dev/null 2>&1
check "resume --force on changed data: exit 0" test $? -eq 0
# an LR range test whose every sweep blows up: its 3 seeds' trials fail, the stage keeps the
# config's LRs and the study goes on (it used to stop every run and resume with exit 1)
sed 's/    - {stage: random, trials: 3, epochs: 3}/    - {stage: lr_range, start: 10, end: 1e6}\n    - {stage: random, trials: 3, epochs: 3}/' "$T/s.yaml" >"$T/lrb.yaml"
"$NS" "$T/lrb.yaml" -o "$T/lrb" --quiet >/dev/null 2>"$T/lrb.err"; rc=$?
check "an LR range test without a usable curve: the search ends, exit 0 ($(head -c 200 "$T/lrb.err"))" test $rc -eq 0
check "... its trials failed, the random stage completed" \
  test "$(sqlite3 "$T/lrb/study.db" "SELECT count(*) FROM trial WHERE stage LIKE '%lr_range' AND state = 'failed'") $(sqlite3 "$T/lrb/study.db" "SELECT state FROM stage WHERE name LIKE '%random'")" = "3 complete"
expect_error "a holdout search with no validation rows" "leaves no validation rows to compare trials on" "$NS" "$T/vf.yaml" -o "$T/vf"
check "... and no study folder" test ! -e "$T/vf"
"$NS" --json status "$T/before" >"$T/st1.json"
"$NS" status "$T/before" --json >"$T/st2.json"
check "status: --json before DIR" bash -c "[ -s '$T/st1.json' ] && cmp -s '$T/st1.json' '$T/st2.json'"
"$NS" -o "$T/exp1.yaml" export "$T/before" >/dev/null
"$NS" export -o "$T/exp2.yaml" "$T/before" >/dev/null
# the two files differ only in the line naming the file itself and in the export's time
# stamp (the two exports may fall either side of a second)
for f in exp1 exp2; do
  grep -v 'run it with' "$T/$f.yaml" | sed -E 's/, [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$//' >"$T/$f.body"
done
check "export: -o before the command and before DIR" bash -c "[ -s '$T/exp1.yaml' ] && cmp -s '$T/exp1.body' '$T/exp2.body'"
"$NS" resume --quiet -j 1 "$T/before" >/dev/null 2>"$T/res.err"; rc=$?
check "resume: options before DIR ($(head -c 200 "$T/res.err"))" test $rc -eq 0
"$NS" train --quiet --json -o "$T/m1.nsm" configs/tiny-train.yaml >"$T/m1.json"
"$NS" train configs/tiny-train.yaml --json -o "$T/m2.nsm" --quiet >"$T/m2.json"
check "train: options before CONFIG give the same run" bash -c "[ -s '$T/m1.nsm' ] && [ -s '$T/m2.nsm' ] && cmp -s <(tail -1 '$T/m1.json' | sed 's/\"model\":.*//') <(tail -1 '$T/m2.json' | sed 's/\"model\":.*//')"
"$NS" lr-find --seeds 1 --steps 40 --json configs/tiny-train.yaml >"$T/lr1.json" 2>/dev/null
"$NS" lr-find configs/tiny-train.yaml --json --steps 40 --seeds 1 >"$T/lr2.json" 2>/dev/null
check "lr-find: options before CONFIG" bash -c "[ -s '$T/lr1.json' ] && cmp -s '$T/lr1.json' '$T/lr2.json'"

# ---- predict: accuracy, balanced accuracy and macro-F1 -----------------------------------
# an imbalanced sample of the tiny CSV (all of one class, a few of the others), so that the
# three figures differ
python3 - "$PWD/configs/data/tiny.csv" "$T/imb.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
head, body = rows[0], rows[1:]
li = head.index("label")
keep, seen = [], {}
for r in body:
    c = r[li]
    seen[c] = seen.get(c, 0) + 1
    cap = {0: 10**9, 1: 25, 2: 8}[sorted({x[li] for x in body}).index(c)]
    if seen[c] <= cap:
        keep.append(r)
w = csv.writer(open(sys.argv[2], "w", newline=""), lineterminator="\n")
w.writerow(head)
w.writerows(keep)
PY
"$NS" predict -o "$T/pred.csv" "$T/m1.nsm" "$T/imb.csv" 2>"$T/pred.err"; rc=$?
check "predict (options first): exit 0 ($(cat "$T/pred.err"))" test $rc -eq 0
check "predict: accuracy, balanced_acc and macro_f1 on one line" grep -qE \
  '^nnsearch: [0-9]+ rows, accuracy 0\.[0-9]{4}, balanced_acc 0\.[0-9]{4}, macro_f1 0\.[0-9]{4}$' "$T/pred.err"
python3 - "$T/imb.csv" "$T/pred.csv" "$T/pred.err" <<'PY' >"$T/py.txt" 2>&1
import csv, re, sys
truth = [r["label"] for r in csv.DictReader(open(sys.argv[1]))]
pred = [r["prediction"] for r in csv.DictReader(open(sys.argv[2]))]
assert len(truth) == len(pred), (len(truth), len(pred))
n = len(truth)
acc = sum(t == p for t, p in zip(truth, pred)) / n
classes_true = sorted(set(truth))
recall = [sum(t == p == c for t, p in zip(truth, pred)) / truth.count(c) for c in classes_true]
bacc = sum(recall) / len(recall)
f1 = []
for c in sorted(set(truth) | set(pred)):  # scikit-learn's labels: the union
    tp = sum(t == p == c for t, p in zip(truth, pred))
    fp = sum(p == c and t != c for t, p in zip(truth, pred))
    fn = sum(t == c and p != c for t, p in zip(truth, pred))
    f1.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
mf1 = sum(f1) / len(f1)
line = open(sys.argv[3]).read()
m = re.search(r"(\d+) rows, accuracy ([0-9.]+), balanced_acc ([0-9.]+), macro_f1 ([0-9.]+)", line)
got = [float(m.group(i)) for i in (2, 3, 4)]
want = [acc, bacc, mf1]
print("rows", n, "want", ["%.6f" % x for x in want], "got", got)
assert int(m.group(1)) == n
# printed with 4 decimals: within half a unit of the last place
assert all(abs(g - w) <= 0.5e-4 + 1e-9 for g, w in zip(got, want)), (got, want)
# the sample is imbalanced enough that the figures tell different stories
assert abs(acc - bacc) > 1e-3 or abs(acc - mf1) > 1e-3, want
PY
rc=$?
check "predict's figures equal Python's ($(tail -1 "$T/py.txt"))" test $rc -eq 0

# ---- --device: chosen once, refused with the fix when it cannot be had ----------------
printf 'data: {train: %s, label: label, val_fraction: 0.2}\nmodel: {hidden: [8]}\ntrain: {epochs: 2}\n' \
  "$PWD/configs/data/tiny.csv" >"$T/tiny.yaml"
expect_error "--device gpu" "expected cpu, cuda or auto" "$NS" --device gpu configs/quickstart.yaml
expect_error "--device without a value" "--device needs a value" "$NS" lr-find configs/quickstart.yaml --device
if ! "$NS" --version | grep -q '^cuda: yes, [1-9]'; then
  expect_error "--device cuda without a GPU" "--device cpu" "$NS" --device cuda configs/quickstart.yaml -o "$T/nogpu"
  check "--device cuda without a GPU: nothing written" test ! -e "$T/nogpu"
  sed 's/train: {epochs: 2}/train: {epochs: 2, device: cuda}/' "$T/tiny.yaml" >"$T/cuda.yaml"
  expect_error "train.device: cuda without a GPU (train)" "train.device: device cuda" "$NS" train "$T/cuda.yaml" -o "$T/cuda.nsm"
  printf 'data: {train: %s, label: label, val_fraction: 0.2}\nmodel: {hidden: [8], dropout: {uniform: [0, 0.5]}}\ntrain: {device: cuda}\nsearch: {stages: [{stage: random, trials: 2, epochs: 1}]}\n' \
    "$PWD/configs/data/tiny.csv" >"$T/cuda.yaml"
  expect_error "train.device: cuda without a GPU (search)" "train.device: device cuda" "$NS" "$T/cuda.yaml" -o "$T/cudas"
  check "train.device: cuda without a GPU: no model, no study" bash -c "[ ! -e '$T/cuda.nsm' ] && [ ! -e '$T/cudas' ]"
  sed 's/train: {epochs: 2}/train: {epochs: 2, precision: bf16}/' "$T/tiny.yaml" >"$T/bf16.yaml"
  expect_error "train.precision: bf16 on the CPU" "train.precision: precision bf16 runs on a GPU" "$NS" train "$T/bf16.yaml" -o "$T/bf16.nsm"
  "$NS" train "$T/tiny.yaml" --device auto -o "$T/auto.nsm" --quiet >/dev/null 2>"$T/auto.err"; rc=$?
  check "--device auto without a GPU: trains on the CPU and says so (exit $rc: $(head -c 200 "$T/auto.err"))" bash -c \
    "[ $rc -eq 0 ] && grep -q '^nnsearch: device auto: cpu (' '$T/auto.err' && [ -s '$T/auto.nsm' ]"
fi
"$NS" train "$T/tiny.yaml" --device=cpu -o "$T/cpu.nsm" --quiet >/dev/null 2>&1
check "--device=cpu: the same model as no --device" bash -c \
  "'$NS' train '$T/tiny.yaml' -o '$T/plain.nsm' --quiet >/dev/null 2>&1 && cmp -s '$T/cpu.nsm' '$T/plain.nsm'"

echo "e2e_cli_usage: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
