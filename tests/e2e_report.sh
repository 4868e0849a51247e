#!/usr/bin/env bash
# e2e_report.sh — end-to-end checks of the HTML report: a small study running every stage
# (lr_range, batch_sweep, compare, random, bayes, select on configs/data/quickstart.csv) writes
# DIR/report.html after each stage, `nnsearch report` rebuilds it; the page is well-formed
# XML (xmllint), self-contained (no http(s) reference, no src=, no external style), has every
# view, and renders in headless Chromium to a screenshot that is not blank, without console
# errors. A report that cannot be written costs the search one warning line per stage, not
# the search. Needs xmllint (libxml2-utils), chromium and python3 (scripts/setup.sh).
# usage: tests/e2e_report.sh PATH/TO/nnsearch   (run from the repository root)
set -uo pipefail
NS=${1:?usage: e2e_report.sh NNSEARCH}
NS=$(cd "$(dirname "$NS")" && pwd)/$(basename "$NS")
T=$(mktemp -d /tmp/nnsearch-report-XXXXXX)
trap 'rm -rf "$T"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/lib_e2e.sh"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

cat >"$T/r.yaml" <<YAML
data:
  train: $PWD/configs/data/quickstart.csv
  test: $PWD/configs/data/quickstart-test.csv
  label: label
model:
  hidden: {choice: [[16], [64], [64, 32]]}
  activation: {choice: [relu, tanh]}
  dropout: {uniform: [0, 0.3]}
train:
  epochs: 8
  batch_size: 64
  optimizer: adam
  lr: {log_uniform: [1e-4, 1e-1]}
  schedule: cosine
search:
  name: rep
  seed: 1
  stages:
    - {stage: lr_range, seeds: 2, sweep_steps: 60}
    - {stage: batch_sweep, sizes: [32, 64, 128], epochs: 3}
    - {stage: compare, optimizers: [sgd, adam], schedules: [constant, cosine], seeds: 2, epochs: 3, shortlist: 2}
    - {stage: random, trials: 6, epochs: 6}
    - {stage: bayes, trials: 10, epochs: 6, round: 2}
    - {stage: select, top: 3}
YAML

"$NS" "$T/r.yaml" -j 2 -o "$T/s" >"$T/s.out" 2>"$T/s.err"
check "search exit 0 ($(tail -1 "$T/s.err"))" test $? -eq 0
check "the search wrote DIR/report.html" test -s "$T/s/report.html"
check "written after the last stage (the select decision is in it)" grep -q "chose it among" "$T/s/report.html"
check "the search ends with the winner's test score and the report's path ($(tail -2 "$T/s.out" | head -1))" bash -c \
  "grep -q '^winner: trial $(dec "$T/s" 6:select '$.winner'), chosen by stage 6:select; test_acc 0\.[0-9]* on the test set' '$T/s.out' && tail -1 '$T/s.out' | grep -qx 'report: $T/s/report.html'"
check "no temporary report left beside it" test -z "$(ls "$T/s" | grep 'report.html.tmp')"

out=$("$NS" report "$T/s" -o "$T/r.html")
check "report -o exit 0, prints the path ($out)" test "$out" = "$T/r.html"
R=$T/r.html
bytes=$(stat -c %s "$R")
echo "report: $bytes bytes"
check "report under 1 MB for a small study ($bytes)" test "$bytes" -lt 1000000

# well-formed: XHTML-compatible markup, so the XML parser checks every element is closed
check "xmllint: well-formed ($(xmllint --noout "$R" 2>&1 | head -1))" xmllint --noout "$R"
# self-contained: nothing fetched from anywhere
check "no http:// or https:// in the page" bash -c "! grep -qiE 'https?://' '$R'"
check "no src= (no external script or image)" bash -c "! grep -qiE '\\bsrc *=' '$R'"
check "no <link>, @import or url() other than in-page references" \
  bash -c "! grep -qiE '<link|@import|url\\([^#]' '$R'"
# every view, each chart titled and with axis titles
for id in answer mistakes lr batch compare history curves params timeline stages trials; do
  check "section #$id" grep -q "<section id=\"$id\">" "$R"
done
charts=$(grep -c '<svg class="chart"' "$R")
titles=$(grep -c 'class="ctitle"' "$R")
check "at least 8 charts ($charts), each with a title ($titles)" bash -c "[ $charts -ge 8 ] && [ $titles -eq $charts ]"
check "axis titles with units" bash -c "grep -q 'learning rate (log scale)' '$R' && grep -q 'samples per second' '$R' && grep -q 'seconds since the first trial started' '$R'"
w=$(dec "$T/s" 6:select '$.winner')
check "the answer names the winner (trial $w) and its test accuracy" \
  bash -c "grep -q 'Winner: <b>trial $w</b>' '$R' && grep -q '>$(dec "$T/s" 6:select '$.test_acc')<' '$R'"
check "the winner's config is shown" grep -q "trial $w of study rep" "$R"
check "the importance ranking says how it is computed" grep -q "How it is computed" "$R"
check "the parallel coordinates draw lr on a log axis" grep -q 'train.lr (log)' "$R"

# the same page rendered by a browser: not blank, no script error
if ! command -v chromium >/dev/null; then
  check "chromium is installed (scripts/setup.sh installs it)" false
else
  render() { # render HTML PNG DOM LOG
    timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --enable-logging=stderr \
      --v=0 --user-data-dir="$T/chromium" --window-size=1280,4000 --screenshot="$2" --dump-dom \
      "file://$1" >"$3" 2>"$4"
  }
  render "$R" "$T/r.png" "$T/r.dom" "$T/r.log"
  check "chromium rendered a screenshot" test -s "$T/r.png"
  check "the screenshot is not blank ($(python3 "$HERE/png_check.py" "$T/r.png" 0 0 2>&1))" \
    python3 "$HERE/png_check.py" "$T/r.png" 200 0.05
  check "the page's script ran (data-js-ok)" grep -q 'data-js-ok="1"' "$T/r.dom"
  check "no script error on the page (data-js-error)" bash -c "! grep -q 'data-js-error=' '$T/r.dom'"
  check "no console error in chromium's log ($(grep -m1 'CONSOLE' "$T/r.log"))" \
    bash -c "! grep -qE 'CONSOLE|Uncaught' '$T/r.log'"
  check "the table filter counted the trials" \
    grep -qE "id=\"fcount\">$(sqlite3 "$T/s/study.db" 'SELECT count(*) FROM trial') of" "$T/r.dom"
  # the checks above can fail: a page with an error is caught by both
  sed 's|</body>|<script>no_such_function();</script></body>|' "$R" >"$T/bad.html"
  render "$T/bad.html" "$T/bad.png" "$T/bad.dom" "$T/bad.log"
  check "control: a script error is caught in the DOM and in the log" \
    bash -c "grep -q 'data-js-error=' '$T/bad.dom' && grep -q 'Uncaught ReferenceError' '$T/bad.log'"
fi

# a report that cannot be written: one warning line per stage, the search goes on
mkdir -p "$T/w/report.html"
"$NS" "$T/r.yaml" -j 2 -o "$T/w" --quiet >"$T/w.out" 2>"$T/w.err"
check "unwritable report: the search still exits 0" test $? -eq 0
nw=$(grep -c "warning: .*report.html not written" "$T/w.err")
check "unwritable report: one warning line per stage ($nw of 6)" test "$nw" -eq 6
check "unwritable report: nothing else on stderr" test "$(wc -l <"$T/w.err")" -eq 6

# views of stages that did not run say so
cat >"$T/small.yaml" <<YAML
data:
  train: $PWD/configs/data/tiny.csv
model:
  hidden: [16]
train:
  epochs: 3
  lr: {log_uniform: [1e-3, 1e-1]}
search:
  name: small
  seed: 1
  stages:
    - {stage: random, trials: 3, epochs: 3}
YAML
mkdir -p "$T/small" && touch "$T/small/report.html.tmp.Ab12Cd" # as a search killed mid-write leaves
"$NS" "$T/small.yaml" -o "$T/small" --quiet >/dev/null 2>&1
check "a random-only study: report written" test -s "$T/small/report.html"
check "the temporary file a killed search left is removed" test ! -e "$T/small/report.html.tmp.Ab12Cd"
check "it says lr_range, batch_sweep and compare did not run" \
  bash -c "grep -q 'No lr_range stage ran' '$T/small/report.html' && grep -q 'No batch_sweep stage ran' '$T/small/report.html' && grep -q 'No compare stage ran' '$T/small/report.html'"
check "and is well-formed" xmllint --noout "$T/small/report.html"

# scale: the study's random and bayes trials (with their epochs) copied to over 1,000 trials,
# later in time, as if the search had gone on; the report stays fast and small
cp -r "$T/s" "$T/big"
sqlite3 "$T/big/study.db" "
  CREATE TEMP TABLE src AS SELECT * FROM trial WHERE stage IN ('4:random', '5:bayes');
  CREATE TEMP TABLE k AS WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 70) SELECT i FROM k;
  INSERT INTO trial SELECT 1000 + 100 * k.i + number, stage, params, seed, state,
         started + k.i * 30, finished + k.i * 30, seconds, epochs, val_metric, result, health,
         checkpoint, error, health_flags FROM src, k;
  INSERT INTO epoch SELECT 1000 + 100 * k.i + e.trial, e.epoch, e.step, e.train_loss, e.val_loss, e.val_acc,
         e.val_rmse, e.lr, e.grad_norm, e.layer_grad_norm, e.seconds, e.samples_per_s, e.diverged,
         e.stopped_early FROM epoch e JOIN src ON src.number = e.trial, k;"
nbig=$(sqlite3 "$T/big/study.db" 'SELECT count(*) FROM trial')
t0=$(date +%s.%N)
"$NS" report "$T/big" -o "$T/big.html" >/dev/null
t1=$(date +%s.%N)
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
bigsize=$(stat -c %s "$T/big.html")
echo "report of $nbig trials: $secs s, $bigsize bytes"
check "over 1,000 trials ($nbig)" test "$nbig" -gt 1000
check "the report of $nbig trials takes under 2 s ($secs s)" awk -v s="$secs" 'BEGIN { exit !(s < 2) }'
check "and stays under 5 MB ($bigsize bytes)" test "$bigsize" -lt 5000000
check "and is well-formed" xmllint --noout "$T/big.html"

# usage errors
"$NS" report "$T/none" >/dev/null 2>"$T/e1"
check "no study: exit 2 with the reason" bash -c "[ $? -eq 2 ] && grep -q 'no study here' '$T/e1'"
"$NS" report >/dev/null 2>"$T/e2"
check "no DIR: exit 2" test $? -eq 2
"$NS" report "$T/s" -o "$T/nofolder/r.html" >/dev/null 2>"$T/e3"
check "unwritable -o: exit 2 with the path" bash -c "[ $? -eq 2 ] && grep -q 'nofolder/r.html' '$T/e3'"

echo "e2e_report: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
