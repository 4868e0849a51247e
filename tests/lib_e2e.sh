# lib_e2e.sh — shared by the end-to-end scripts (sourced, not a test itself: ctest runs
# tests/e2e_*.sh): the check counter, numbers read from JSON and compared as numbers, a
# study's trials and decisions without timings, and the kill-and-resume round every stage
# must survive.

pass=0 fail=0
# check WHAT CMD...: counts CMD's success; a failure prints WHAT.
check() { local what=$1; shift; if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $what" >&2; fi; }

# Numbers. A value that is missing, empty or not a finite number makes the comparison
# fail: a pattern match that misses leaves the whole line, and awk compares that as a
# string and passes; these never do.
# jnum FILE KEY: the number KEY of the JSON object on FILE's last line ('-': stdin); prints
# it (17 digits) or prints nothing and fails when the line is not JSON or the value is
# missing or not a finite number.
jnum() {
  /usr/bin/python3 -c '
import json, math, sys
f = sys.stdin if sys.argv[1] == "-" else open(sys.argv[1])
lines = f.read().splitlines()
try:
    v = json.loads(lines[-1])[sys.argv[2]]
except (IndexError, ValueError, KeyError, TypeError) as e:
    sys.exit("jnum: no %s in %r (%s)" % (sys.argv[2], lines[-1][:200] if lines else "", e))
if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
    sys.exit("jnum: %s is %r, not a finite number" % (sys.argv[2], v))
print(repr(float(v)))' "$@"
}
# num EXPR NAME=VALUE...: evaluates the Python expression EXPR with each NAME bound to its
# VALUE read as a finite number; fails, saying why, when a VALUE is not one or EXPR is false.
num() {
  /usr/bin/python3 -c '
import math, re, sys
env = {"abs": abs, "min": min, "max": max, "sqrt": math.sqrt, "log": math.log}
for a in sys.argv[2:]:
    k, _, v = a.partition("=")
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", v.strip()):
        sys.exit("num: %s = %r is not a number" % (k, v[:200]))
    env[k] = float(v)
ok = eval(sys.argv[1], {"__builtins__": {}}, env)
sys.exit(0 if ok is True else "num: %s is false for %s" % (sys.argv[1], " ".join(sys.argv[2:])))' "$@"
}

# The trial table as the study records it (timings left out).
table() { sqlite3 "$1/study.db" "SELECT number, stage, state, params, seed, epochs, val_metric FROM trial ORDER BY number"; }
# The stages' decisions without samples/s (evidence measured anew by every run).
decisions() { sqlite3 "$1/study.db" "SELECT name, state, decision FROM stage ORDER BY position" | sed -E 's/"samples_per_s":[^,}]*//g'; }
# dec DIR STAGE PATH: a JSON path of a stage's decision.
dec() { sqlite3 "$1/study.db" "SELECT json_extract(decision, '$3') FROM stage WHERE name = '$2'"; }

# kill_and_resume NS CONFIG DIR STAGES REF: runs CONFIG with -j 2 into DIR, SIGKILLed after
# growing delays until all STAGES stages are complete, then resumes it; checks that a kill
# cut it short at least once and that trials and decisions equal those of study REF.
kill_and_resume() {
  local ns=$1 config=$2 dir=$3 stages=$4 ref=$5 cut_short=0
  for delay in 0.01 0.03 0.05 0.08 0.12 0.2 0.35 0.5 0.7 1 1.5 2 3; do
    bash -c 'timeout -s KILL "$@" >/dev/null 2>&1; exit 0' _ "$delay" "$ns" "$config" -j 2 -o "$dir" --quiet 2>/dev/null
    [[ "$(sqlite3 "$dir/study.db" "SELECT count(*) FROM stage WHERE state='complete'" 2>/dev/null)" == "$stages" ]] && break
    cut_short=$((cut_short + 1))
  done
  check "at least one kill cut the study short ($cut_short)" test "$cut_short" -ge 1
  "$ns" resume "$dir" --quiet >/dev/null 2>&1
  check "resume exit 0" test $? -eq 0
  check "killed and resumed: the same trials" cmp -s <(table "$ref") <(table "$dir")
  check "killed and resumed: the same decisions" cmp -s <(decisions "$ref") <(decisions "$dir")
}
