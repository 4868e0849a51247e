#!/usr/bin/env bash
# e2e_fault.sh — failures of the machine, injected through the fault shim
# (tests/fault/faultshim.c, LD_PRELOAD; scripts/faultwalk walks every write and allocation):
# a full disk while writing a trial's config, checkpoint or model, the study database or
# best.yaml, once or for good, and failed allocations inside the YAML reader. Each must end
# the run with one clear line and exit 1 or 2 (or be absorbed: exit 0),
# leave a study that passes integrity_check and no trial recorded as failed, and once the
# disk has room `nnsearch resume` must end with the uninterrupted run's trials and decisions.
# usage: tests/e2e_fault.sh PATH/TO/nnsearch   (run from the repository root)
set -uo pipefail
NS=${1:?usage: e2e_fault.sh NNSEARCH}
NS=$(cd "$(dirname "$NS")" && pwd)/$(basename "$NS")
T=$(mktemp -d /tmp/nnsearch-fault-XXXXXX)
trap 'rm -rf "$T"' EXIT
source tests/lib_e2e.sh
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
cc -shared -fPIC -O2 -o "$T/shim.so" tests/fault/faultshim.c -ldl || { echo "FAIL: cannot build the shim" >&2; exit 1; }
# under scripts/sanitize: the shim comes before the ASan runtime, which then must not object
asan="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

head -121 configs/data/tiny.csv >"$T/small.csv"
cat >"$T/f.yaml" <<YAML
data: {train: $T/small.csv, label: label, val_fraction: 0.25}
model: {hidden: {choice: [[4], [8]]}, dropout: {uniform: [0, 0.2]}}
train: {batch_size: 32, lr: {log_uniform: [1e-3, 1e-1]}}
search:
  name: f
  seed: 1
  resampling: holdout
  stages:
    - {stage: random, trials: 2, epochs: 2}
    - {stage: select}
YAML
"$NS" "$T/f.yaml" -o "$T/ref" -j 1 --quiet >/dev/null 2>&1
check "uninterrupted run exit 0" test $? -eq 0

# fault_point NAME WHY ENV...: runs the study with the shim set by ENV; the run must end
# with exit 0, or 1/2 and one line matching WHY; then the study must pass integrity_check,
# hold no trial recorded as failed, and resume (or the same command, when the study was not
# recorded yet) to the uninterrupted trials and decisions.
fault_point() {
  local t0=$SECONDS
  local name=$1 why=$2 d=$T/$1; shift 2
  env LD_PRELOAD="$T/shim.so" NS_FAULT_LOG="$T/$name.log" "$@" ASAN_OPTIONS="$asan" \
    "$NS" "$T/f.yaml" -o "$d" -j 1 --quiet >/dev/null 2>"$T/$name.err"
  local rc=$?
  check "$name: the fault fired" grep -q '^fault ' "$T/$name.log"
  check "$name: exit 0, 1 or 2 (got $rc)" test "$rc" -le 2
  if ((rc)); then
    check "$name: one line naming the cause ($(head -c 300 "$T/$name.err"))" \
      bash -c "[ \$(wc -l <'$T/$name.err') -eq 1 ] && grep -q '^nnsearch: .*\($why\)' '$T/$name.err'"
  fi
  if [[ -f $d/study.db ]]; then
    check "$name: integrity_check ok" test "$(sqlite3 "$d/study.db" 'PRAGMA integrity_check')" = ok
    check "$name: no trial recorded as failed" test "$(sqlite3 "$d/study.db" "SELECT count(*) FROM trial WHERE state='failed'" 2>/dev/null || echo 0)" -eq 0
  fi
  if [[ -f $d/config.source ]]; then
    "$NS" resume "$d" -j 1 --quiet >/dev/null 2>"$T/$name.err2"
  else
    "$NS" "$T/f.yaml" -o "$d" -j 1 --quiet >/dev/null 2>"$T/$name.err2"
  fi
  check "$name: resume exit 0 ($(head -c 200 "$T/$name.err2"))" test $? -eq 0
  check "$name: resumed study has the uninterrupted trials" cmp -s <(table "$T/ref") <(table "$d")
  check "$name: and its decisions" cmp -s <(decisions "$T/ref") <(decisions "$d")
  rm -rf "$d"
  [[ -n ${FAULT_TIMES:-} ]] && echo "$name $((SECONDS - t0)) s" >&2
}

# full_disk NAME PATH_PART [sticky]: the first write to a file whose path holds PATH_PART
# fails with ENOSPC (with sticky, every write to such a file from then on). The message must
# name the file and say why; sqlite says only "unable to open database file" when it cannot
# create its log, so for the database that is accepted.
full_disk() {
  local why="${2%-wal}.*\(No space left on device\|disk is full\)"
  [[ $2 == study.db* ]] && why='study.db.*\(unable to open database file\|disk is full\|disk I/O error\|No space left on device\)'
  fault_point "$1" "$why" NS_FAULT_WRITE=1 NS_FAULT_PATH="$2" NS_FAULT_STICKY="${3:+1}"
}
full_disk trial-config trials/1/config.yaml
full_disk checkpoint trials/0/checkpoint
full_disk model trials/1/model.nsm
full_disk model-for-good trials/0/model.nsm sticky
full_disk database-create study.db-wal
full_disk database study.db-wal sticky
full_disk best best.yaml

# A machine that runs short is never the user's input: a full disk creating the study
# folder or its lock exits 1 (runtime), not 2 (a bad path), with no advice about paths.
# (sqlite does not say why it could not open the database, so that stays exit 2.)
expect_runtime() {
  local name=$1 why=$2; shift 2
  env LD_PRELOAD="$T/shim.so" NS_FAULT_LOG="$T/$name.log" "$@" ASAN_OPTIONS="$asan" \
    "$NS" "$T/f.yaml" -o "$T/$name" -j 1 --quiet >/dev/null 2>"$T/$name.err"
  local rc=$?
  check "$name: exit 1 (got $rc: $(head -c 200 "$T/$name.err"))" test "$rc" -eq 1
  check "$name: says why, no advice about the path" \
    bash -c "grep -q '$why' '$T/$name.err' && ! grep -q 'check the' '$T/$name.err'"
  rm -rf "$T/$name"
}
expect_runtime folder-full 'cannot create the study folder .*No space left on device' \
  NS_FAULT_WRITE=1 NS_FAULT_PATH=folder-full
expect_runtime lock-full 'study.lock: No space left on device' NS_FAULT_WRITE=1 NS_FAULT_PATH=study.lock

# Failed allocations inside libyaml (which reads every config: the study's, each trial's
# when it runs and when select counts its parameters), at every 150th of them: out of
# memory is never a bad config, a failed trial or a winner of "0 parameters".
env LD_PRELOAD="$T/shim.so" NS_FAULT_IN=libyaml NS_FAULT_LOG="$T/yaml.count" ASAN_OPTIONS="$asan" \
  "$NS" "$T/f.yaml" -o "$T/count" -j 1 --quiet >/dev/null 2>&1
total=$(sed -n 's/^counts allocs=\([0-9]*\) .*/\1/p' "$T/yaml.count" | tail -1)
check "libyaml allocations counted (${total:-none})" test "${total:-0}" -gt 100
for ((n = 1; n <= ${total:-0}; n += 150)); do
  fault_point "yaml-alloc-$n" 'out of memory' NS_FAULT_ALLOC=$n NS_FAULT_IN=libyaml
done

echo "e2e_fault: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
