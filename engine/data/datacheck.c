/* datacheck.c — the once-per-study data checks (rules and defaults in datacheck.h).
 * Moments in double over the full parts, KS on even-stride subsamples sorted by a radix
 * sort (the hot spot: one sort per feature and part), copied rows through a hash set of the
 * training rows. Not a loader and not a policy: it only measures and reports. */
#include "engine/data/datacheck.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jsonbuf.h"
#include "engine/rng.h"

#define DEFAULT_IMBALANCE_FIX \
    "class-weighted loss (model.class_weights: auto or balanced); judge by balanced accuracy " \
    "and macro-F1"

void ns_datacheck_spec_default(ns_datacheck_spec *s)
{
    memset(s, 0, sizeof *s);
    s->imbalance_ratio = 3.0;
    s->imbalance_min_count = 0;
    s->smd_max = 0.2;
    s->alpha = 0.01;
    s->shift_share = 0.1;
    s->label_tv_max = 0.1;
    s->ks_max_rows = 5000;
    s->dup_share = 0.01;
    s->imbalance_fix = NULL;
}

/* ---- Kolmogorov-Smirnov ---- */

double ns_ks_q(double l)
{
    if (!(l > 0))
        return 1.0;
    double q;
    if (l < 1.18) {
        /* 1 - Q(l) = sqrt(2 pi) / l sum_k exp(-(2k-1)^2 pi^2 / (8 l^2)): few terms here */
        double f = -M_PI * M_PI / (8.0 * l * l), s = 0.0;
        for (int k = 1; k <= 100; k++) {
            double t = exp(f * (2 * k - 1) * (2 * k - 1));
            s += t;
            if (t <= 1e-17 * s)
                break;
        }
        q = 1.0 - sqrt(2.0 * M_PI) / l * s;
    } else {
        double s = 0.0, sign = 1.0;
        for (int k = 1; k <= 100; k++) {
            double t = exp(-2.0 * k * k * l * l);
            s += sign * t;
            sign = -sign;
            if (t <= 1e-17 * s)
                break;
        }
        q = 2.0 * s;
    }
    return q < 0 ? 0.0 : q > 1 ? 1.0 : q;
}

double ns_ks_sorted(const float *a, long na, const float *b, long nb, double *p)
{
    long i = 0, j = 0;
    double d = 0.0;
    /* Equal values step together: a tie across the samples is one step of both CDFs. */
    while (i < na && j < nb) {
        long i0 = i, j0 = j;
        float v = a[i] < b[j] ? a[i] : b[j];
        while (i < na && a[i] == v)
            i++;
        while (j < nb && b[j] == v)
            j++;
        if (i == i0 && j == j0)
            break; /* a NaN, outside the contract: stop rather than spin */
        double diff = fabs((double)i / na - (double)j / nb);
        if (diff > d)
            d = diff;
    }
    /* After one sample runs out the gap only closes, so the maximum is already seen. */
    if (p) {
        double ne = (double)na * nb / ((double)na + nb), r = sqrt(ne);
        *p = ns_ks_q((r + 0.12 + 0.11 / r) * d);
    }
    return d;
}

/* Order-preserving map between finite floats and unsigned keys. -0 and +0 get adjacent
 * keys, so equal values still end up next to each other, as the KS walk needs. */
static inline uint32_t float_key(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

static inline float key_float(uint32_t k)
{
    uint32_t u = (k & 0x80000000u) ? k & 0x7fffffffu : ~k;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* LSD radix sort of k[0..n) by bytes, tmp of the same size; a pass whose byte is the same
 * for every key is skipped (most of them for pixel data). The result ends in k. */
static void radix_sort(uint32_t *k, uint32_t *tmp, long n)
{
    long cnt[256];
    uint32_t *src = k, *dst = tmp;
    for (int shift = 0; shift < 32; shift += 8) {
        memset(cnt, 0, sizeof cnt);
        for (long i = 0; i < n; i++)
            cnt[(src[i] >> shift) & 255]++;
        if (cnt[(src[0] >> shift) & 255] == n)
            continue;
        long sum = 0;
        for (int b = 0; b < 256; b++) {
            long c = cnt[b];
            cnt[b] = sum;
            sum += c;
        }
        for (long i = 0; i < n; i++)
            dst[cnt[(src[i] >> shift) & 255]++] = src[i];
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != k)
        memcpy(k, src, (size_t)n * sizeof *k);
}

/* ---- per-part moments ---- */

typedef struct moments {
    double *mean, *var; /* (d) over finite values; var is the population variance */
    long *cnt;          /* (d) finite values */
    long non_finite;
} moments;

/* Two passes in double (mean, then squared deviations), row by row for the cache. */
static void moments_compute(moments *m, const ns_dataset *ds)
{
    int d = ds->d;
    for (int j = 0; j < d; j++) {
        m->mean[j] = 0;
        m->var[j] = 0;
        m->cnt[j] = 0;
    }
    long bad = 0;
    for (long i = 0; i < ds->n; i++) {
        const float *r = ds->x + (size_t)i * d;
        for (int j = 0; j < d; j++) {
            if (isfinite(r[j])) {
                m->mean[j] += r[j];
                m->cnt[j]++;
            } else {
                bad++;
            }
        }
    }
    for (int j = 0; j < d; j++)
        m->mean[j] = m->cnt[j] ? m->mean[j] / m->cnt[j] : 0.0;
    for (long i = 0; i < ds->n; i++) {
        const float *r = ds->x + (size_t)i * d;
        for (int j = 0; j < d; j++) {
            if (isfinite(r[j])) {
                double e = r[j] - m->mean[j];
                m->var[j] += e * e;
            }
        }
    }
    for (int j = 0; j < d; j++)
        m->var[j] = m->cnt[j] ? m->var[j] / m->cnt[j] : 0.0;
    m->non_finite = bad;
}

/* ---- copied rows ---- */

static uint64_t row_hash(const float *r, int d)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int j = 0; j < d; j++) {
        uint32_t u;
        memcpy(&u, &r[j], 4);
        h = (h ^ u) * 0x100000001b3ULL;
    }
    return ns_hash64(h);
}

typedef struct rowset {
    const ns_dataset *ds;
    size_t mask;
    long *row;      /* (cap) training row + 1; 0 = empty slot */
    uint64_t *hash; /* (cap) */
} rowset;

static int rowset_build(rowset *s, const ns_dataset *train)
{
    size_t cap = 16;
    while (cap < 2 * (size_t)train->n)
        cap *= 2;
    s->ds = train;
    s->mask = cap - 1;
    s->row = calloc(cap, sizeof *s->row);
    s->hash = malloc(cap * sizeof *s->hash);
    if (!s->row || !s->hash)
        return -1;
    for (long i = 0; i < train->n; i++) {
        uint64_t h = row_hash(train->x + (size_t)i * train->d, train->d);
        size_t k = h & s->mask;
        while (s->row[k])
            k = (k + 1) & s->mask;
        s->row[k] = i + 1;
        s->hash[k] = h;
    }
    return 0;
}

static int rowset_has(const rowset *s, const float *r)
{
    int d = s->ds->d;
    uint64_t h = row_hash(r, d);
    for (size_t k = h & s->mask; s->row[k]; k = (k + 1) & s->mask)
        if (s->hash[k] == h &&
            memcmp(s->ds->x + (size_t)(s->row[k] - 1) * d, r, (size_t)d * sizeof *r) == 0)
            return 1;
    return 0;
}

static void rowset_free(rowset *s)
{
    free(s->row);
    free(s->hash);
}

/* ---- KS over all features, in blocks of columns ---- */

#define KS_BLOCK 64

/* How many rows KS uses of a part of n rows. */
static long ks_rows(long n, long max_rows)
{
    return max_rows > 0 && n > max_rows ? max_rows : n;
}

/* The k-th of m rows: floor(k n / m), in 64-bit so 5000 x 60000 cannot overflow. */
static inline long ks_row(long k, long n, long m)
{
    typedef unsigned long long u64;
    return m == n ? k : (long)((u64)k * (u64)n / (u64)m);
}

/* Gathers the finite values of columns j0..j0+nb of the subsample (m rows), sorts each
 * column and writes it as floats to out + c * m; len[c] receives its length. keys holds
 * nb * m entries, tmp m. */
static void gather_sorted(const ns_dataset *ds, long m, int j0, int nb, uint32_t *keys,
                          uint32_t *tmp, float *out, long *len)
{
    int d = ds->d;
    for (int c = 0; c < nb; c++)
        len[c] = 0;
    for (long k = 0; k < m; k++) {
        const float *r = ds->x + (size_t)ks_row(k, ds->n, m) * d + j0;
        for (int c = 0; c < nb; c++)
            if (isfinite(r[c]))
                keys[(size_t)c * m + len[c]++] = float_key(r[c]);
    }
    for (int c = 0; c < nb; c++) {
        uint32_t *kc = keys + (size_t)c * m;
        float *oc = out + (size_t)c * m;
        if (len[c] > 0)
            radix_sort(kc, tmp, len[c]);
        for (long i = 0; i < len[c]; i++)
            oc[i] = key_float(kc[i]);
    }
}

/* ---- findings ---- */

static void emit(ns_data_report *rep, const char *code, ns_mistake mistake, const char *fix,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void emit(ns_data_report *rep, const char *code, ns_mistake mistake, const char *fix,
                 const char *fmt, ...)
{
    if (rep->n_findings >= NS_DATACHECK_MAX_FINDINGS)
        return; /* cannot happen: each code fires at most once per pair */
    va_list ap;
    va_start(ap, fmt);
    ns_finding_vset(&rep->findings[rep->n_findings++], code, mistake, fix, fmt, ap);
    va_end(ap);
}

/* Appends piece to the NUL-terminated buf (size cap) only if all of it fits with room
 * left for a trailing ", ..." (5 characters); returns 0 when it did not fit. */
static int append(char *buf, size_t cap, const char *piece)
{
    size_t len = strlen(buf), n = strlen(piece);
    if (len + n + 5 >= cap)
        return 0;
    memcpy(buf + len, piece, n + 1);
    return 1;
}

static void feature_name(const ns_dataset *train, int j, char *out, size_t cap)
{
    if (train->feature_names && train->feature_names[j])
        snprintf(out, cap, "%s", train->feature_names[j]);
    else
        snprintf(out, cap, "feature %d", j);
}

static void class_name(const ns_dataset *train, int c, char *out, size_t cap)
{
    if (train->class_names && c < train->n_classes && train->class_names[c])
        snprintf(out, cap, "'%s'", train->class_names[c]);
    else
        snprintf(out, cap, "%d", c);
}

static int worse(const ns_shift_feature *a, const ns_shift_feature *b)
{
    double x = fabs(a->smd), y = fabs(b->smd);
    return x > y || (x == y && a->index < b->index);
}

/* Keeps w[0..*n) as the top NS_DATACHECK_WORST by worse(), in order. */
static void worst_insert(ns_shift_feature *w, int *n, const ns_shift_feature *f)
{
    int pos = *n;
    while (pos > 0 && worse(f, &w[pos - 1]))
        pos--;
    if (pos >= NS_DATACHECK_WORST)
        return;
    int last = *n < NS_DATACHECK_WORST ? *n : NS_DATACHECK_WORST - 1;
    memmove(&w[pos + 1], &w[pos], (size_t)(last - pos) * sizeof *w);
    w[pos] = *f;
    if (*n < NS_DATACHECK_WORST)
        (*n)++;
}

/* ---- the check ---- */

static int has_labels(const ns_dataset *ds)
{
    return ds && ds->task == NS_TASK_CLASSIFY && ds->y && ds->n_classes > 0;
}

/* Label counts of ds into cnt[0..K); labels outside [0, K) are ignored (loaders never
 * produce them). */
static void label_counts(const ns_dataset *ds, int K, long *cnt)
{
    for (int c = 0; c < K; c++)
        cnt[c] = 0;
    for (long i = 0; i < ds->n; i++)
        if (ds->y[i] >= 0 && ds->y[i] < K)
            cnt[ds->y[i]]++;
}

static void label_shift(ns_shift_pair *pr, const ns_dataset *train, const ns_dataset *o,
                        long *ca, long *cb, int K, const ns_datacheck_spec *sp,
                        ns_data_report *rep)
{
    label_counts(train, K, ca);
    label_counts(o, K, cb);
    double na = 0, nb = 0;
    for (int c = 0; c < K; c++) {
        na += ca[c];
        nb += cb[c];
    }
    pr->label_tv = NAN;
    pr->label_p = NAN;
    if (na == 0 || nb == 0)
        return;
    double tv = 0, chi = 0, most = -1;
    int df = -1, cmost = 0;
    for (int c = 0; c < K; c++) {
        double pa = ca[c] / na, pb = cb[c] / nb, t = (double)ca[c] + cb[c];
        tv += fabs(pa - pb);
        if (fabs(pa - pb) > most) {
            most = fabs(pa - pb);
            cmost = c;
        }
        if (t > 0) {
            double ea = t * na / (na + nb), eb = t * nb / (na + nb);
            chi += (ca[c] - ea) * (ca[c] - ea) / ea + (cb[c] - eb) * (cb[c] - eb) / eb;
            df++;
        }
    }
    tv *= 0.5;
    double p = 1.0;
    if (df >= 1) {
        p = gsl_cdf_chisq_Q(chi, df);
        if (!isfinite(p)) /* GSL's error path: decide by the side of the mean */
            p = chi > df ? 0.0 : 1.0;
    }
    pr->label_tv = tv;
    pr->label_p = p;
    if (tv > sp->label_tv_max && p < sp->alpha) {
        char cn[64];
        class_name(train, cmost, cn, sizeof cn);
        emit(rep, "label_shift", NS_MISTAKE_TRAIN_NOT_TEST,
             "use a stratified split, or re-split the pooled data so every part has the "
             "same class mix",
             "train vs %s: label distributions differ: total variation %.3f (chi-square p "
             "%.2g); class %s is %.1f%% of train, %.1f%% of %s",
             pr->part, tv, p, cn, 100.0 * ca[cmost] / na, 100.0 * cb[cmost] / nb, pr->part);
    }
}

/* feature_shift for one pair: the counts, then as many of the worst shifted features as
 * fit in the message, then ", ..." when some were left out. */
static void shift_finding(ns_shift_pair *pr, const ns_datacheck_spec *sp, ns_data_report *rep)
{
    if (!(pr->n_features > 0 && pr->share > sp->shift_share))
        return;
    char msg[sizeof rep->findings[0].message], piece[96];
    snprintf(msg, sizeof msg,
             "train vs %s: %d of %d features shifted (%.1f%%; |SMD| > %g and KS p < %.2g); "
             "worst: ",
             pr->part, pr->n_shifted, pr->n_features, 100.0 * pr->share, sp->smd_max,
             pr->ks_alpha);
    int listed = 0;
    for (int i = 0; i < pr->n_worst; i++) {
        const ns_shift_feature *f = &pr->worst[i];
        if (!f->shifted)
            continue;
        if (isfinite(f->smd))
            snprintf(piece, sizeof piece, "%s%s (SMD %+.2f, KS D %.2f)", listed ? ", " : "",
                     f->name, f->smd, f->ks_d);
        else
            snprintf(piece, sizeof piece, "%s%s (constant, values differ)",
                     listed ? ", " : "", f->name);
        if (!append(msg, sizeof msg, piece))
            break;
        listed++;
    }
    if (listed < pr->n_shifted && strlen(msg) + 5 < sizeof msg)
        strcat(msg, listed ? ", ..." : "...");
    emit(rep, "feature_shift", NS_MISTAKE_TRAIN_NOT_TEST,
         "check that the parts come from the same source and period; re-split the pooled "
         "data at random (stratified) if they need not differ",
         "%s", msg);
}

/* Sets rep->class_counts and the imbalance numbers; fires class_imbalance. */
static int classes_check(const ns_datacheck_spec *sp, const ns_dataset *train,
                         ns_data_report *rep)
{
    int K = train->n_classes;
    rep->classify = 1;
    rep->n_classes = K;
    rep->class_counts = calloc((size_t)K, sizeof *rep->class_counts);
    if (!rep->class_counts)
        return -1;
    label_counts(train, K, rep->class_counts);
    long big = 0, small = 0;
    int cbig = -1;
    for (int c = 0; c < K; c++) {
        long k = rep->class_counts[c];
        if (k == 0) {
            rep->empty_classes++;
            continue;
        }
        if (k > big) {
            big = k;
            cbig = c;
        }
        if (rep->smallest_class < 0 || k < small) {
            small = k;
            rep->smallest_class = c;
        }
    }
    rep->smallest_count = small;
    rep->imbalance_ratio = small > 0 ? (double)big / small : NAN;
    int by_ratio = rep->imbalance_ratio > sp->imbalance_ratio;
    int by_count = sp->imbalance_min_count > 0 && small > 0 && small < sp->imbalance_min_count;
    if (!by_ratio && !by_count)
        return 0;
    char cs[64], cl[64], extra[64] = "";
    class_name(train, rep->smallest_class, cs, sizeof cs);
    class_name(train, cbig, cl, sizeof cl);
    if (rep->empty_classes)
        snprintf(extra, sizeof extra, "; %d classes have no training rows",
                 rep->empty_classes);
    emit(rep, "class_imbalance", NS_MISTAKE_NO_CONVERGENCE, sp->imbalance_fix ? sp->imbalance_fix : DEFAULT_IMBALANCE_FIX,
         "training classes are imbalanced: largest/smallest = %.1f (class %s: %ld rows, class "
         "%s: %ld rows)%s%s",
         rep->imbalance_ratio, cl, big, cs, small,
         by_count && !by_ratio ? "; the smallest class has too few rows" : "", extra);
    return 0;
}

/* SMD of every feature of part b against a (NAN: not compared); returns the count compared. */
static int smd_all(const moments *a, const moments *b, int d, double *smd)
{
    int n = 0;
    for (int j = 0; j < d; j++) {
        if (!a->cnt[j] || !b->cnt[j]) {
            smd[j] = NAN;
            continue;
        }
        n++;
        double diff = b->mean[j] - a->mean[j], pooled = sqrt(0.5 * (a->var[j] + b->var[j]));
        if (pooled > 0)
            smd[j] = diff / pooled;
        else
            smd[j] = diff == 0 ? 0.0 : diff > 0 ? INFINITY : -INFINITY;
    }
    return n;
}

int ns_data_check(const ns_datacheck_spec *spec, const ns_dataset *train,
                  const ns_dataset *val, const ns_dataset *test, ns_data_report *rep,
                  ns_err *err)
{
    memset(rep, 0, sizeof *rep);
    rep->smallest_class = -1;
    rep->imbalance_ratio = NAN;
    ns_datacheck_spec def;
    if (!spec) {
        ns_datacheck_spec_default(&def);
        spec = &def;
    }
    if (!train || train->n < 1 || train->d < 1 || !train->x)
        return ns_err_set(err, NS_EINPUT,
                          "data check: the training part is empty; give it at least one row");
    static const char *const part_name[2] = {"val", "test"};
    const ns_dataset *other[2] = {val, test};
    for (int p = 0; p < 2; p++) {
        if (other[p] && other[p]->n <= 0)
            other[p] = NULL; /* an empty part is skipped like an absent one */
        if (other[p] && other[p]->d != train->d)
            return ns_err_set(err, NS_EINPUT,
                              "data check: %s has %d features but train has %d; give every "
                              "part the same columns",
                              part_name[p], other[p]->d, train->d);
    }
    gsl_set_error_handler_off(); /* GSL would abort on a domain error */

    int d = train->d, rc = NS_ERUNTIME, K = 0;
    for (int p = -1; p < 2; p++) {
        const ns_dataset *ds = p < 0 ? train : other[p];
        if (has_labels(ds) && ds->n_classes > K)
            K = ds->n_classes;
    }
    long m[3];
    for (int p = 0; p < 3; p++) {
        const ns_dataset *ds = p ? other[p - 1] : train;
        m[p] = ds ? ks_rows(ds->n, spec->ks_max_rows) : 0;
    }
    long m_max = m[0] > m[1] ? m[0] : m[1];
    m_max = m_max > m[2] ? m_max : m[2];

    moments mo[3] = {{0}};
    double *dbl = malloc((size_t)8 * d * sizeof *dbl); /* mean, var x 3; smd x 2 */
    long *lng = malloc(((size_t)3 * d + 2 * (size_t)(K + 1)) * sizeof *lng);
    uint32_t *keys = malloc((size_t)KS_BLOCK * m_max * sizeof *keys);
    uint32_t *tmp = malloc((size_t)m_max * sizeof *tmp);
    float *sorted[3] = {NULL, NULL, NULL};
    rowset rs = {0};
    if (!dbl || !lng || !keys || !tmp)
        goto fail;
    for (int p = 0; p < 3; p++) {
        mo[p].mean = dbl + (size_t)(2 * p) * d;
        mo[p].var = dbl + (size_t)(2 * p + 1) * d;
        mo[p].cnt = lng + (size_t)p * d;
        if (m[p] && !(sorted[p] = malloc((size_t)KS_BLOCK * m[p] * sizeof *sorted[p])))
            goto fail;
    }
    double *smd[2] = {dbl + (size_t)6 * d, dbl + (size_t)7 * d};
    long *ca = lng + (size_t)3 * d, *cb = ca + K + 1;

    rep->n_train = train->n;
    rep->n_val = other[0] ? other[0]->n : 0;
    rep->n_test = other[1] ? other[1]->n : 0;
    rep->d = d;
    for (int p = 0; p < 3; p++) {
        const ns_dataset *ds = p ? other[p - 1] : train;
        if (!ds)
            continue;
        moments_compute(&mo[p], ds);
        rep->non_finite[p] = mo[p].non_finite;
    }
    /* Constant: the variance is exactly 0 iff every finite value is the same (n equal
     * floats sum exactly in double for n < 2^29, so the mean is that value). */
    for (int j = 0; j < d; j++)
        if (mo[0].cnt[j] == 0 || mo[0].var[j] == 0) {
            if (rep->n_constant < NS_DATACHECK_CONST_LIST)
                rep->constant_idx[rep->n_constant] = j;
            rep->n_constant++;
        }

    if (has_labels(train) && classes_check(spec, train, rep))
        goto fail;

    for (int p = 0; p < 2; p++) {
        ns_shift_pair *pr = &rep->pair[p];
        pr->part = part_name[p];
        pr->label_tv = NAN;
        pr->label_p = NAN;
        if (!other[p])
            continue;
        pr->compared = 1;
        pr->n = other[p]->n;
        pr->n_features = smd_all(&mo[0], &mo[p + 1], d, smd[p]);
        pr->ks_alpha = pr->n_features ? spec->alpha / pr->n_features : spec->alpha;
    }

    /* KS, a block of columns at a time: each training column is sorted once for both pairs */
    if (other[0] || other[1]) {
        long len[3][KS_BLOCK];
        for (int j0 = 0; j0 < d; j0 += KS_BLOCK) {
            int nb = d - j0 < KS_BLOCK ? d - j0 : KS_BLOCK;
            gather_sorted(train, m[0], j0, nb, keys, tmp, sorted[0], len[0]);
            for (int p = 0; p < 2; p++) {
                if (!other[p])
                    continue;
                ns_shift_pair *pr = &rep->pair[p];
                gather_sorted(other[p], m[p + 1], j0, nb, keys, tmp, sorted[p + 1], len[p + 1]);
                for (int c = 0; c < nb; c++) {
                    int j = j0 + c;
                    double s = smd[p][j];
                    if (isnan(s) || len[0][c] == 0 || len[p + 1][c] == 0)
                        continue; /* not compared (or no finite value in the subsample) */
                    ns_shift_feature f = {.index = j, .smd = s};
                    f.ks_d = ns_ks_sorted(sorted[0] + (size_t)c * m[0], len[0][c],
                                          sorted[p + 1] + (size_t)c * m[p + 1], len[p + 1][c],
                                          &f.ks_p);
                    f.shifted = isinf(s) || (fabs(s) > spec->smd_max && f.ks_p < pr->ks_alpha);
                    pr->n_shifted += f.shifted;
                    worst_insert(pr->worst, &pr->n_worst, &f);
                }
            }
        }
        if (rowset_build(&rs, train))
            goto fail;
    }

    for (int p = 0; p < 2; p++) {
        const ns_dataset *o = other[p];
        ns_shift_pair *pr = &rep->pair[p];
        if (!o)
            continue;
        for (int i = 0; i < pr->n_worst; i++)
            feature_name(train, pr->worst[i].index, pr->worst[i].name,
                         sizeof pr->worst[i].name);
        pr->share = pr->n_features ? (double)pr->n_shifted / pr->n_features : 0.0;
        shift_finding(pr, spec, rep);

        if (rep->classify && has_labels(o))
            label_shift(pr, train, o, ca, cb, K, spec, rep);

        for (long i = 0; i < o->n; i++)
            pr->duplicates += rowset_has(&rs, o->x + (size_t)i * d);
        double dshare = (double)pr->duplicates / o->n;
        if (pr->duplicates > 0 && dshare > spec->dup_share)
            emit(rep, "duplicate_rows", NS_MISTAKE_TRAIN_NOT_TEST,
                 "deduplicate the pooled data before splitting: copies of training rows make "
                 "this part's score optimistic",
                 "%ld of %ld %s rows (%.2f%%) are exact copies of training rows (features "
                 "only)",
                 pr->duplicates, o->n, pr->part, 100.0 * dshare);
    }

    if (rep->non_finite[0] || rep->non_finite[1] || rep->non_finite[2])
        emit(rep, "non_finite", NS_MISTAKE_NEW_DATA,
             "remove or impute the NaN/inf cells before training; nnsearch's loaders "
             "refuse them",
             "non-finite feature values: train %ld, val %ld, test %ld (left out of these "
             "checks)",
             rep->non_finite[0], rep->non_finite[1], rep->non_finite[2]);

    if (rep->n_constant > 0) {
        char msg[sizeof rep->findings[0].message], nm[48], piece[64];
        snprintf(msg, sizeof msg, "%d of %d features are constant in training: ",
                 rep->n_constant, d);
        int listed = 0;
        for (int i = 0; i < rep->n_constant && i < NS_DATACHECK_CONST_LIST; i++) {
            feature_name(train, rep->constant_idx[i], nm, sizeof nm);
            snprintf(piece, sizeof piece, "%s%s", listed ? ", " : "", nm);
            if (!append(msg, sizeof msg, piece))
                break;
            listed++;
        }
        if (listed < rep->n_constant && strlen(msg) + 5 < sizeof msg)
            strcat(msg, listed ? ", ..." : "...");
        emit(rep, "constant_features", NS_MISTAKE_NEW_DATA,
             "drop the constant columns: they carry no information, and new data that "
             "varies there meets untrained weights",
             "%s", msg);
    }
    rc = NS_OK;

fail:
    rowset_free(&rs);
    free(dbl);
    free(lng);
    free(keys);
    free(tmp);
    for (int p = 0; p < 3; p++)
        free(sorted[p]);
    if (rc != NS_OK) {
        ns_data_report_free(rep);
        return ns_err_set(err, rc, "data check: out of memory");
    }
    return NS_OK;
}

void ns_data_report_free(ns_data_report *rep)
{
    if (!rep)
        return;
    free(rep->class_counts);
    memset(rep, 0, sizeof *rep);
}

/* ---- JSON ---- */

int ns_data_report_json(const ns_data_report *rep, char *buf, size_t cap)
{
    ns_jbuf j = {buf, buf ? cap : 0, 0};
    ns_jbuf_putf(&j, "{\"n_train\":%ld,\"n_val\":%ld,\"n_test\":%ld,\"d\":%d,\"classes\":",
         rep->n_train, rep->n_val, rep->n_test, rep->d);
    if (rep->classify && rep->class_counts) {
        ns_jbuf_put(&j, "{\"counts\":[", 11);
        for (int c = 0; c < rep->n_classes; c++)
            ns_jbuf_putf(&j, c ? ",%ld" : "%ld", rep->class_counts[c]);
        ns_jbuf_put(&j, "],\"ratio\":", 10);
        ns_jbuf_num(&j, rep->imbalance_ratio);
        ns_jbuf_putf(&j, ",\"smallest\":{\"index\":%d,\"count\":%ld},\"empty\":%d}",
             rep->smallest_class, rep->smallest_count, rep->empty_classes);
    } else {
        ns_jbuf_put(&j, "null", 4);
    }
    ns_jbuf_putf(&j, ",\"non_finite\":{\"train\":%ld,\"val\":%ld,\"test\":%ld}", rep->non_finite[0],
         rep->non_finite[1], rep->non_finite[2]);
    ns_jbuf_putf(&j, ",\"constant\":{\"count\":%d,\"first\":[", rep->n_constant);
    for (int i = 0; i < rep->n_constant && i < NS_DATACHECK_CONST_LIST; i++)
        ns_jbuf_putf(&j, i ? ",%d" : "%d", rep->constant_idx[i]);
    ns_jbuf_put(&j, "]},\"pairs\":[", 12);
    int first = 1;
    for (int p = 0; p < 2; p++) {
        const ns_shift_pair *pr = &rep->pair[p];
        if (!pr->compared)
            continue;
        ns_jbuf_put(&j, first ? "{\"part\":" : ",{\"part\":", first ? 8 : 9);
        first = 0;
        ns_jbuf_str(&j, pr->part ? pr->part : "", SIZE_MAX);
        ns_jbuf_putf(&j, ",\"n\":%ld,\"compared\":%d,\"shifted\":%d,\"share\":", pr->n,
             pr->n_features, pr->n_shifted);
        ns_jbuf_num(&j, pr->share);
        ns_jbuf_put(&j, ",\"ks_alpha\":", 12);
        ns_jbuf_num(&j, pr->ks_alpha);
        ns_jbuf_put(&j, ",\"label_tv\":", 12);
        ns_jbuf_num(&j, pr->label_tv);
        ns_jbuf_put(&j, ",\"label_p\":", 11);
        ns_jbuf_num(&j, pr->label_p);
        ns_jbuf_putf(&j, ",\"duplicates\":%ld,\"worst\":[", pr->duplicates);
        for (int i = 0; i < pr->n_worst; i++) {
            const ns_shift_feature *f = &pr->worst[i];
            ns_jbuf_putf(&j, "%s{\"index\":%d,\"name\":", i ? "," : "", f->index);
            ns_jbuf_str(&j, f->name, SIZE_MAX);
            ns_jbuf_put(&j, ",\"smd\":", 7);
            ns_jbuf_num(&j, f->smd);
            ns_jbuf_put(&j, ",\"ks_d\":", 8);
            ns_jbuf_num(&j, f->ks_d);
            ns_jbuf_put(&j, ",\"ks_p\":", 8);
            ns_jbuf_num(&j, f->ks_p);
            ns_jbuf_putf(&j, ",\"shifted\":%s}", f->shifted ? "true" : "false");
        }
        ns_jbuf_put(&j, "]}", 2);
    }
    ns_jbuf_put(&j, "],\"findings\":", 13);
    int fits = j.len < j.cap;
    int n = ns_findings_json(rep->findings, rep->n_findings, fits ? j.buf + j.len : NULL,
                             fits ? j.cap - j.len : 0);
    j.len += n > 0 ? (size_t)n : 0;
    ns_jbuf_put(&j, "}", 1);
    return (int)ns_jbuf_finish(&j);
}
