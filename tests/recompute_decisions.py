# recompute_decisions.py — recomputes a stage's decision from the trials the study stored,
# by the rules docs/config.md and the headers state, written again here in Python (stdlib
# only), and compares: a decision the C code computed wrongly fails, however plausible it
# looks. Used by tests/e2e_stages.sh (not a test by itself).
# usage: /usr/bin/python3 tests/recompute_decisions.py STUDY_DIR lr_range|batch_sweep TOLERANCE|compare
# Exit 0 when every number agrees; else one line per difference on stderr and exit 1.
import csv, json, math, sqlite3, sys
d, what = sys.argv[1], sys.argv[2]
db = sqlite3.connect(d + "/study.db")
bad = []
def expect(ok, msg):
    if not ok:
        bad.append(msg)
def close(a, b, rel=2e-5):  # decisions print 6 significant digits
    return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= rel * max(abs(a), abs(b)) + 1e-12
def decision(stage):
    return json.loads(db.execute("SELECT decision FROM stage WHERE name = ?", (stage,)).fetchone()[0])
def trials(stage):
    return [{"n": r[0], "state": r[1], "flags": r[2], "params": json.loads(r[3]), "result": json.loads(r[4] or "{}")}
            for r in db.execute("SELECT number, state, coalesce(health_flags, 0), params, result FROM trial "
                                "WHERE stage = ? ORDER BY number", (stage,))]
def healthy(t):  # no finding that selection rejects (NS_SELECT_REJECT = 287)
    return not (t["flags"] > 0 and t["flags"] & 287)

if what == "lr_range":
    # each seed's pick from its curve (trials/<n>/lr_curve.csv, 17 digits) by the rules of
    # engine/train/lrfind.h: skip the first n/10 points and, after a blow-up, the last 5;
    # valley = 3/4 along the longest strictly decreasing subsequence; min10 = the LR of the
    # lowest loss / 10; steepest = the most negative d loss / d log(lr) (np.gradient's
    # second-order differences). Then per family: the median pick, bounds pick / 3 .. x 3.
    dec = decision("1:lr_range")
    expect(dec["rule"] == "valley", "rule %s" % dec["rule"])
    picks = {}
    for t in trials("1:lr_range"):
        rows = list(csv.DictReader(open("%s/trials/%d/lr_curve.csv" % (d, t["n"]))))
        lr = [float(r["lr"]) for r in rows]
        y = [float(r["smoothed"]) for r in rows]
        a, b = len(y) // 10, len(y) - (5 if t["result"]["blew_up"] else 0)
        ys, lrs, m = y[a:b], lr[a:b], b - a
        ln, first, end = [1] * m, list(range(m)), 0
        for i in range(m):
            for j in range(i):
                if ys[i] < ys[j] and ln[j] + 1 > ln[i]:
                    ln[i], first[i] = ln[j] + 1, first[j]
            if ln[i] > ln[end]:
                end = i
        valley = lrs[first[end] + int(0.75 * (end - first[end]))]
        lo = min(range(m), key=lambda i: (ys[i], i))
        x = [math.log(v) for v in lrs]
        def grad(i):
            if i in (0, m - 1):
                p = 0 if i == 0 else m - 2
                return (ys[p + 1] - ys[p]) / (x[p + 1] - x[p])
            h0, h1 = x[i] - x[i - 1], x[i + 1] - x[i]
            return (h0 * h0 * ys[i + 1] - h1 * h1 * ys[i - 1] + (h1 * h1 - h0 * h0) * ys[i]) / (h0 * h1 * (h0 + h1))
        steep = lrs[min(range(m), key=lambda i: (grad(i), i))]
        r = t["result"]
        for k, v in (("pick", valley), ("valley", valley), ("min10", lrs[lo] / 10), ("steepest", steep)):
            expect(close(r[k], v), "trial %d: %s %s, recomputed %.6g" % (t["n"], k, r[k], v))
        picks.setdefault(r["family"], []).append(valley)
    expect(sorted(picks) == ["adaptive", "sgd"], "families %s" % sorted(picks))
    for fam, p in picks.items():
        p, k = sorted(p), len(p)
        centre = p[k // 2] if k % 2 else math.sqrt(p[k // 2 - 1] * p[k // 2])
        for key, v in (("lr", centre), ("lo", p[0] / 3), ("hi", p[-1] * 3), ("spread", p[-1] / p[0])):
            expect(close(dec.get(fam + "_" + key), v, 1e-3 if key == "spread" else 2e-5),
                   "%s_%s %s, recomputed %.6g" % (fam, key, dec.get(fam + "_" + key), v))

elif what == "batch_sweep":
    # the largest stable size (complete, no rejected finding, finite loss) whose val loss
    # is within the stage's tolerance of the best stable one
    name = db.execute("SELECT name FROM stage WHERE name LIKE '%:batch_sweep'").fetchone()[0]
    dec = decision(name)
    ts = trials(name)
    tol = float(sys.argv[3])
    expect(dec["tolerance"] == tol, "tolerance %s" % dec["tolerance"])
    sz = [t["params"]["train.batch_size"] for t in ts]
    loss = [t["result"].get("val_loss") for t in ts]
    stable = [t["state"] == "complete" and healthy(t) and isinstance(l, (int, float)) and math.isfinite(l)
              for t, l in zip(ts, loss)]
    best = min(l for l, s in zip(loss, stable) if s)
    chosen = max(b for b, l, s in zip(sz, loss, stable) if s and l <= best * (1 + tol))
    expect(dec["batch_size"] == chosen, "batch_size %s, recomputed %s" % (dec["batch_size"], chosen))
    expect([e["batch"] for e in dec["sizes"]] == sz and [e["trial"] for e in dec["sizes"]] == [t["n"] for t in ts],
           "sizes %s" % dec["sizes"])
    for e, l, s in zip(dec["sizes"], loss, stable):
        expect(close(e["val_loss"], l) and e["stable"] == s, "size %s: %s, trial's val_loss %s stable %s" % (e["batch"], e, l, s))
    # the short-list: stable sizes whose study metric is not worse than the chosen size's by
    # more than 2 standard errors (its fold SE, else binomial on the validation rows)
    metric, higher, checks = db.execute("SELECT metric, higher_is_better, data_checks FROM study").fetchone()
    vm = {t["n"]: r[0] for t in ts for r in db.execute("SELECT val_metric FROM trial WHERE number = ?", (t["n"],))}
    ct = next(t for t, b, s in zip(ts, sz, stable) if s and b == chosen)
    se = ct["result"].get("val_se")
    if not (isinstance(se, (int, float)) and se > 0):
        nv = json.loads(checks)["n_val"]
        m = vm[ct["n"]]
        se = math.sqrt(max(m * (1 - m), 0) / nv) if higher and metric != "val_loss" and nv > 0 else float("nan")
    expect(close(dec["metric_se"], se) if math.isfinite(se) else dec["metric_se"] is None,
           "metric_se %s, recomputed %s" % (dec["metric_se"], se))
    c = vm[ct["n"]]
    short = [b for t, b, s in zip(ts, sz, stable)
             if s and (t is ct or (math.isfinite(se) and (vm[t["n"]] >= c - 2 * se if higher else vm[t["n"]] <= c + 2 * se)))]
    expect(dec["shortlist"] == short and dec["separated"] == (len(short) < 2),
           "shortlist %s separated %s, recomputed %s" % (dec["shortlist"], dec["separated"], short))

elif what == "compare":
    # per pair of the seeds' val losses: mean, sample sd, the 95% t interval; ranking by
    # mean; Welch's two-sided p against the leader; separated when the runner-up's p < 0.05
    def betacf(a, b, x):  # continued fraction of the regularised incomplete beta (Lentz)
        tiny = 1e-300
        c, dd = 1.0, 1.0 - (a + b) * x / (a + 1)
        dd = 1 / (dd if abs(dd) > tiny else tiny)
        h = dd
        for m in range(1, 300):
            for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                        -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
                dd = 1 + num * dd
                dd = 1 / (dd if abs(dd) > tiny else tiny)
                c = 1 + num / c
                c = c if abs(c) > tiny else tiny
                h *= dd * c
            if abs(dd * c - 1) < 1e-15:
                break
        return h
    def ibeta(a, b, x):
        if x <= 0 or x >= 1:
            return 0.0 if x <= 0 else 1.0
        lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x)
        if x < (a + 1) / (a + b + 2):
            return math.exp(lbt) * betacf(a, b, x) / a
        return 1 - math.exp(lbt) * betacf(b, a, 1 - x) / b
    def t_sf(t, df):  # P(T > t), t >= 0
        return 0.5 * ibeta(df / 2, 0.5, df / (df + t * t))
    def t_q975(df):
        lo, hi = 0.0, 1e4
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if t_sf(mid, df) > 0.025 else (lo, mid)
        return (lo + hi) / 2
    dec = decision("3:compare")
    seen = {}
    for t in trials("3:compare"):
        key = "%s/%s" % (t["params"]["train.optimizer"], t["params"]["train.schedule"])
        v = t["result"].get("val_loss")
        seen.setdefault(key, [])
        if t["state"] == "complete" and isinstance(v, (int, float)) and math.isfinite(v):
            seen[key].append(v)
    stats = {}
    for key, v in seen.items():
        n = len(v)
        mean = sum(v) / n
        sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1))
        stats[key] = (n, mean, sd)
    pairs = {p["pair"]: p for p in dec["pairs"]}
    expect(sorted(pairs) == sorted(seen), "pairs %s, trials %s" % (sorted(pairs), sorted(seen)))
    ranked = [p["pair"] for p in dec["pairs"] if p["excluded"] is None]
    expect(ranked == sorted(ranked, key=lambda k: stats[k][1]), "ranking %s" % ranked)
    expect(dec["leader"] == ranked[0] and dec["shortlist"] == ranked[:2], "leader %s, short-list %s" % (dec["leader"], dec["shortlist"]))
    n0, m0, s0 = stats[ranked[0]]
    def welch(k):
        n, m, s = stats[k]
        va, vb = s * s / n, s0 * s0 / n0
        tt = (m - m0) / math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va * va / (n - 1) + vb * vb / (n0 - 1))
        return 2 * t_sf(abs(tt), df)
    for k in seen:
        n, m, s = stats[k]
        half = t_q975(n - 1) * s / math.sqrt(n)
        p = pairs[k]
        expect(p["n"] == n and close(p["mean_val_loss"], m) and close(p["ci95"][0], m - half, 5e-5) and close(p["ci95"][1], m + half, 5e-5),
               "%s: n %s mean %s ci95 %s, recomputed %d %.6g [%.6g, %.6g]" % (k, p["n"], p["mean_val_loss"], p["ci95"], n, m, m - half, m + half))
        if p["excluded"] is None:
            pv = 1.0 if k == ranked[0] else welch(k)
            expect(close(p["p_vs_leader"], pv, 1e-4), "%s: p_vs_leader %s, recomputed %.6g" % (k, p["p_vs_leader"], pv))
    sep = len(ranked) < 2 or welch(ranked[1]) < 0.05
    expect(dec["separated"] == sep, "separated %s, recomputed %s" % (dec["separated"], sep))

for b in bad:
    print("recompute %s: %s" % (what, b), file=sys.stderr)
sys.exit(1 if bad else 0)
