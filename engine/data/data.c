/* data.c — dataset ownership and operations: format detection (ns_dataset_load), free,
 * subsets, class counts, stratified splits, standardisation; plus what the loaders share
 * (whole-file reading through zlib, string arrays). Not a parser: IDX is data_idx.c, CSV
 * data_csv.c. No preprocessing beyond the standardizer. */
#include "engine/data/data_impl.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "engine/rng.h"

/* ---------------------------------------------------------------------------------------
 * Helpers the loaders share: string arrays, reading a whole file */

static void data_strs_free(char **a, long n)
{
    if (!a)
        return;
    for (long i = 0; i < n; i++)
        free(a[i]);
    free(a);
}

int ns_dataset_match_columns(ns_dataset *ds, char *const *names, int d, int extra_ok,
                             const char *path, const char *why_needed, ns_err *err)
{
    if (!names || !ds->feature_names) {
        if (ds->d != d)
            return ns_err_set(err, NS_EINPUT, "%s: rows have %d features, expected %d; %s, so "
                              "use data with the same columns", path, ds->d, d, why_needed);
        return NS_OK;
    }
    int *col = malloc((size_t)(d > 0 ? d : 1) * sizeof *col);
    unsigned char *used = calloc((size_t)(ds->d > 0 ? ds->d : 1), 1);
    int rc = col && used ? NS_OK : ns_err_set(err, NS_ERUNTIME, "out of memory");
    for (int j = 0; j < d && !rc; j++) {
        col[j] = -1;
        for (int k = 0; k < ds->d && col[j] < 0; k++)
            if (!used[k] && !strcmp(names[j], ds->feature_names[k]))
                col[j] = k;
        if (col[j] < 0)
            rc = ns_err_set(err, NS_EINPUT, "%s:1: column '%.200s' is missing; %s, add it", path,
                            names[j], why_needed);
        else
            used[col[j]] = 1;
    }
    for (int k = 0; k < ds->d && !rc && !extra_ok; k++)
        if (!used[k])
            rc = ns_err_set(err, NS_EINPUT, "%s:1: column '%.200s' is not a feature of the "
                            "training file; remove or rename it", path, ds->feature_names[k]);
    int same = ds->d == d;
    for (int j = 0; j < d && same && !rc; j++)
        same = col[j] == j;
    if (!rc && !same) {
        float *x = malloc((size_t)(ds->n > 0 ? ds->n : 1) * (size_t)(d > 0 ? d : 1) * sizeof *x);
        char **fn = calloc((size_t)(d > 0 ? d : 1), sizeof *fn);
        if (!x || !fn) {
            free(x);
            free(fn);
            rc = ns_err_set(err, NS_ERUNTIME, "out of memory");
        } else {
            for (long i = 0; i < ds->n; i++)
                for (int j = 0; j < d; j++)
                    x[(size_t)i * (size_t)d + (size_t)j] = ds->x[(size_t)i * (size_t)ds->d + (size_t)col[j]];
            for (int j = 0; j < d; j++) { /* the names move; the dropped ones are freed */
                fn[j] = ds->feature_names[col[j]];
                ds->feature_names[col[j]] = NULL;
            }
            data_strs_free(ds->feature_names, ds->d);
            free(ds->x);
            ds->x = x;
            ds->feature_names = fn;
            ds->d = d;
        }
    }
    free(col);
    free(used);
    return rc;
}

/* Contract in data_impl.h. */
int data_strs_dup(char ***out, char *const *src, long n)
{
    *out = NULL;
    if (!src || n <= 0)
        return 0;
    char **a = calloc((size_t)n, sizeof *a);
    if (!a)
        return -1;
    for (long i = 0; i < n; i++) {
        if (!(a[i] = strdup(src[i] ? src[i] : ""))) {
            data_strs_free(a, n);
            return -1;
        }
    }
    *out = a;
    return 0;
}

static int data_file_open(const char *path, gzFile *g, struct stat *st, ns_err *err)
{
    if (stat(path, st) != 0)
        return ns_err_set(err, NS_EINPUT, "%s: cannot open: %s; check the path", path,
                          strerror(errno));
    if (S_ISDIR(st->st_mode))
        return ns_err_set(err, NS_EINPUT,
                          "%s: is a folder, not a data file; give the path of a file", path);
    errno = 0;
    *g = gzopen(path, "rb");
    if (!*g) {
        if (errno)
            return ns_err_set(err, NS_EINPUT, "%s: cannot open: %s; check the path and its "
                              "permissions", path, strerror(errno));
        return ns_err_set(err, NS_ERUNTIME, "%s: out of memory opening the file", path);
    }
    return NS_OK;
}

/* zlib's complaint after a failed or short read, or NS_OK when the stream ended cleanly. */
static int data_gz_check(gzFile g, const char *path, size_t len, off_t file_size, ns_err *err)
{
    int zerr = Z_OK;
    const char *zmsg = gzerror(g, &zerr);
    if (zerr == Z_OK || zerr == Z_STREAM_END)
        return NS_OK;
    if (zerr == Z_BUF_ERROR) /* zlib's "unexpected end of file" */
        return ns_err_set(err, NS_EINPUT, "%s: byte %lld: the gzip stream ends before its end "
                          "marker (after %zu bytes of data); the file is truncated, "
                          "download/copy it again", path, (long long)file_size, len);
    if (zerr == Z_ERRNO)
        return ns_err_set(err, NS_ERUNTIME, "%s: byte %zu: read error: %s; check the disk",
                          path, len, strerror(errno));
    if (zerr == Z_MEM_ERROR)
        return ns_err_set(err, NS_ERUNTIME, "%s: out of memory while decompressing", path);
    return ns_err_set(err, NS_EINPUT, "%s: byte %zu of the decompressed data: the gzip data is "
                      "corrupt (zlib: %s); download/copy the file again", path, len, zmsg);
}

/* Contract in data_impl.h. */
int data_file_read(const char *path, char **out, size_t *out_len, int *gz, ns_err *err)
{
    gzFile g = NULL;
    char *buf = NULL;
    struct stat st;
    size_t len = 0, cap;
    int rc;
    *out = NULL;
    *out_len = 0;
    if ((rc = data_file_open(path, &g, &st, err)))
        return rc;
    gzbuffer(g, 1 << 17);
    /* A raw file's size is exact; a gzip'd one grows by doubling (linear overall). */
    cap = (S_ISREG(st.st_mode) && st.st_size > 0) ? (size_t)st.st_size + 1 : 1 << 16;
    if (!(buf = malloc(cap)))
        goto oom;
    for (;;) {
        if (cap - len < 2) {
            if (cap > SIZE_MAX / 2)
                goto oom;
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                goto oom;
            buf = nb;
            cap *= 2;
        }
        size_t want = cap - 1 - len;
        if (want > (1u << 30))
            want = 1u << 30;
        int r = gzread(g, buf + len, (unsigned)want);
        if (r < 0) {
            rc = data_gz_check(g, path, len, st.st_size, err);
            if (rc == NS_OK) /* zlib said -1 but has no error: should not happen */
                rc = ns_err_set(err, NS_ERUNTIME, "%s: byte %zu: read failed", path, len);
            goto fail;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    if ((rc = data_gz_check(g, path, len, st.st_size, err)))
        goto fail;
    *gz = !gzdirect(g);
    gzclose(g);
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return NS_OK;
oom:
    rc = ns_err_set(err, NS_ERUNTIME, "%s: out of memory reading %zu bytes", path, len);
fail:
    free(buf);
    gzclose(g);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Format detection, ownership */

int ns_dataset_load(ns_dataset *ds, const char *path, const char *labels_path,
                    const ns_csv_opts *opts, ns_err *err)
{
    gzFile g = NULL;
    struct stat st;
    unsigned char head[2] = {1, 1};
    int rc;
    memset(ds, 0, sizeof *ds);
    /* Decompressed bytes: IDX starts with two zero bytes, which no text file does. */
    if ((rc = data_file_open(path, &g, &st, err)))
        return rc;
    int got = gzread(g, head, 2);
    gzclose(g);
    if (got == 2 && head[0] == 0 && head[1] == 0) {
        if (labels_path && opts && opts->task == NS_TASK_REGRESS)
            return ns_err_set(err, NS_EINPUT, "%s: IDX labels are class indices, not regression "
                              "targets; use the classification task or a CSV file", labels_path);
        int fixed = opts && opts->task == NS_TASK_CLASSIFY && opts->n_classes > 0
                        ? opts->n_classes : 0;
        if ((rc = data_idx_load(ds, path, labels_path, fixed, err)))
            return rc;
        if (fixed && opts->class_names &&
            data_strs_dup(&ds->class_names, opts->class_names, fixed) != 0) {
            ns_dataset_free(ds);
            return ns_err_set(err, NS_ERUNTIME, "%s: out of memory copying class names", path);
        }
        return NS_OK;
    }
    if (labels_path)
        return ns_err_set(err, NS_EINPUT, "%s: a separate labels file (%s) goes only with IDX "
                          "images; in a CSV file name the label column instead", path,
                          labels_path);
    return ns_dataset_load_csv(ds, path, opts, err);
}

void ns_dataset_free(ns_dataset *ds)
{
    if (!ds)
        return;
    free(ds->x);
    free(ds->y);
    free(ds->t);
    data_strs_free(ds->class_names, ds->n_classes);
    data_strs_free(ds->feature_names, ds->d);
    memset(ds, 0, sizeof *ds);
}

int ns_dataset_subset(ns_dataset *dst, const ns_dataset *src, const int32_t *idx, long n,
                      ns_err *err)
{
    ns_dataset t = {0};
    int rc;
    if (n < 0 || (n > 0 && !idx)) {
        rc = ns_err_set(err, NS_EINPUT, "subset: %ld rows requested without row numbers", n);
        goto fail_zero;
    }
    for (long i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= src->n) {
            rc = ns_err_set(err, NS_EINPUT, "subset: row %ld is outside the dataset's %ld rows",
                            (long)idx[i], src->n);
            goto fail_zero;
        }
    t.n = n;
    t.d = src->d;
    t.task = src->task;
    t.n_classes = src->n_classes;
    /* At least one element, so that x, y and t are non-NULL exactly when src's are. */
    size_t rows = n > 0 ? (size_t)n : 1, d = (size_t)src->d;
    if (!(t.x = malloc(rows * d * sizeof *t.x)))
        goto oom;
    for (long i = 0; i < n; i++)
        memcpy(t.x + (size_t)i * d, src->x + (size_t)idx[i] * d, d * sizeof *t.x);
    if (src->y) {
        if (!(t.y = malloc(rows * sizeof *t.y)))
            goto oom;
        for (long i = 0; i < n; i++)
            t.y[i] = src->y[idx[i]];
    }
    if (src->t) {
        if (!(t.t = malloc(rows * sizeof *t.t)))
            goto oom;
        for (long i = 0; i < n; i++)
            t.t[i] = src->t[idx[i]];
    }
    if (data_strs_dup(&t.class_names, src->class_names, src->n_classes) != 0 ||
        data_strs_dup(&t.feature_names, src->feature_names, src->d) != 0)
        goto oom;
    *dst = t;
    return NS_OK;
oom:
    rc = ns_err_set(err, NS_ERUNTIME, "subset: out of memory for %ld rows of %d features", n,
                    src->d);
    ns_dataset_free(&t);
fail_zero:
    memset(dst, 0, sizeof *dst);
    return rc;
}

void ns_dataset_class_counts(const ns_dataset *ds, long *counts)
{
    for (int c = 0; c < ds->n_classes; c++)
        counts[c] = 0;
    if (!ds->y)
        return;
    for (long i = 0; i < ds->n; i++)
        if (ds->y[i] >= 0 && ds->y[i] < ds->n_classes)
            counts[ds->y[i]]++;
}

/* ---------------------------------------------------------------------------------------
 * Splits */

/* Validation rows out of m: round(frac * m), half away from zero, but never all of them:
 * every class (or a regression set) with at least one row keeps at least one for training. */
static long data_split_count(double frac, long m)
{
    long k = lround(frac * (double)m);
    if (k > m - 1)
        k = m - 1;
    return k < 0 ? 0 : k;
}

int ns_folds_stratified(const ns_dataset *ds, int K, uint64_t seed, int32_t *fold_of, ns_err *err)
{
    long n = ds->n;
    if (K < 2 || (long)K > n)
        return ns_err_set(err, NS_EINPUT, "cross-validation: %d folds for %ld rows; use 2 to %ld folds", K,
                          n, n);
    if (n > INT32_MAX)
        return ns_err_set(err, NS_EINPUT, "cross-validation: %ld rows is more than %d", n, INT32_MAX);
    int classes = ds->task == NS_TASK_CLASSIFY && ds->y && ds->n_classes > 0 ? ds->n_classes : 1;
    int32_t *rows = malloc((size_t)n * sizeof *rows);
    long *start = calloc((size_t)classes + 1, sizeof *start);
    if (!rows || !start) {
        free(rows);
        free(start);
        return ns_err_set(err, NS_ERUNTIME, "out of memory assigning folds");
    }
    for (long i = 0; i < n; i++) {
        int c = classes > 1 ? ds->y[i] : 0;
        if (c < 0 || c >= classes) {
            free(rows);
            free(start);
            return ns_err_set(err, NS_EINPUT, "cross-validation: row %ld has label %d outside 0..%d", i, c,
                              classes - 1);
        }
        start[c + 1]++;
    }
    for (int c = 0; c < classes; c++)
        start[c + 1] += start[c];
    long *next = calloc((size_t)classes, sizeof *next);
    if (!next) {
        free(rows);
        free(start);
        return ns_err_set(err, NS_ERUNTIME, "out of memory assigning folds");
    }
    for (int c = 0; c < classes; c++)
        next[c] = start[c];
    for (long i = 0; i < n; i++)
        rows[next[classes > 1 ? ds->y[i] : 0]++] = (int32_t)i;
    free(next);
    ns_rng rng;
    ns_rng_seed(&rng, seed);
    int f = 0; /* the fold the next row goes to: carried from class to class */
    for (int c = 0; c < classes; c++) {
        long m = start[c + 1] - start[c];
        ns_rng_shuffle_i32(&rng, rows + start[c], m);
        for (long j = 0; j < m; j++) {
            fold_of[rows[start[c] + j]] = f;
            f = f + 1 == K ? 0 : f + 1;
        }
    }
    free(rows);
    free(start);
    return NS_OK;
}

int ns_split_stratified(const ns_dataset *ds, double frac, uint64_t seed, int32_t *idx_train,
                        long *n_train, int32_t *idx_val, long *n_val, ns_err *err)
{
    unsigned char *in_val = NULL;
    long *start = NULL;
    long n = ds->n;
    int rc = NS_OK;
    *n_train = 0;
    *n_val = 0;
    if (!(frac >= 0.0 && frac < 1.0))
        return ns_err_set(err, NS_EINPUT, "validation fraction %g is outside [0, 1); use a value "
                          "such as 0.1", frac);
    if (n < 0 || n > INT32_MAX)
        return ns_err_set(err, NS_EINPUT, "split: %ld rows is outside 0..%d", n, INT32_MAX);
    if (!(in_val = calloc(n > 0 ? (size_t)n : 1, 1)))
        goto oom;
    ns_rng rng;
    ns_rng_seed(&rng, seed);
    /* idx_train is scratch first: rows grouped by class, then shuffled within each group;
     * the first k of a group go to validation. Writing the outputs afterwards in row order
     * makes them ascending whatever order the shuffle left. */
    if (ds->task == NS_TASK_CLASSIFY && ds->y && ds->n_classes > 0) {
        int K = ds->n_classes;
        if (!(start = calloc((size_t)K + 1, sizeof *start)))
            goto oom;
        for (long i = 0; i < n; i++) {
            if (ds->y[i] < 0 || ds->y[i] >= K) {
                rc = ns_err_set(err, NS_EINPUT, "split: row %ld has label %d outside 0..%d", i,
                                (int)ds->y[i], K - 1);
                goto fail;
            }
            start[ds->y[i] + 1]++;
        }
        for (int c = 0; c < K; c++)
            start[c + 1] += start[c];
        for (long i = 0; i < n; i++) /* start[c] walks to the end of group c ... */
            idx_train[start[ds->y[i]]++] = (int32_t)i;
        for (int c = K; c > 0; c--) /* ... so shift back to recover the group starts */
            start[c] = start[c - 1];
        start[0] = 0;
        for (int c = 0; c < K; c++) {
            long m = start[c + 1] - start[c];
            ns_rng_shuffle_i32(&rng, idx_train + start[c], m);
            long k = data_split_count(frac, m);
            for (long j = 0; j < k; j++)
                in_val[idx_train[start[c] + j]] = 1;
        }
    } else {
        for (long i = 0; i < n; i++)
            idx_train[i] = (int32_t)i;
        ns_rng_shuffle_i32(&rng, idx_train, n);
        long k = data_split_count(frac, n);
        for (long j = 0; j < k; j++)
            in_val[idx_train[j]] = 1;
    }
    long nt = 0, nv = 0;
    for (long i = 0; i < n; i++) {
        if (in_val[i])
            idx_val[nv++] = (int32_t)i;
        else
            idx_train[nt++] = (int32_t)i;
    }
    *n_train = nt;
    *n_val = nv;
    goto done;
oom:
    rc = ns_err_set(err, NS_ERUNTIME, "split: out of memory for %ld rows", n);
fail:
done:
    free(start);
    free(in_val);
    return rc;
}

typedef struct sample_share {
    long long rem; /* m n_k mod n: the fraction of a row class k's exact share is short of */
    int k;
} sample_share;

static int sample_share_cmp(const void *a, const void *b)
{
    const sample_share *x = a, *y = b;
    if (x->rem != y->rem)
        return x->rem > y->rem ? -1 : 1;
    return (x->k > y->k) - (x->k < y->k);
}

int ns_sample_stratified(const ns_dataset *ds, long m, uint64_t seed, int32_t *idx, long *n_out,
                         ns_err *err)
{
    long n = ds->n;
    int32_t *order = NULL;
    long *start = NULL;
    unsigned char *keep = NULL;
    sample_share *share = NULL;
    int rc = NS_OK;
    *n_out = 0;
    if (m < 1)
        return ns_err_set(err, NS_EINPUT, "sample: %ld rows asked for; ask for at least 1", m);
    if (n < 0 || n > INT32_MAX)
        return ns_err_set(err, NS_EINPUT, "sample: %ld rows is outside 0..%d", n, INT32_MAX);
    if (m >= n) {
        for (long i = 0; i < n; i++)
            idx[i] = (int32_t)i;
        *n_out = n;
        return NS_OK;
    }
    if (!(order = malloc((size_t)n * sizeof *order)) || !(keep = calloc((size_t)n, 1)))
        goto oom;
    ns_rng rng;
    ns_rng_seed(&rng, seed);
    if (ds->task == NS_TASK_CLASSIFY && ds->y && ds->n_classes > 0) {
        int K = ds->n_classes;
        if (!(start = calloc((size_t)K + 1, sizeof *start)) || !(share = malloc((size_t)K * sizeof *share)))
            goto oom;
        for (long i = 0; i < n; i++) {
            if (ds->y[i] < 0 || ds->y[i] >= K) {
                rc = ns_err_set(err, NS_EINPUT, "sample: row %ld has label %d outside 0..%d", i,
                                (int)ds->y[i], K - 1);
                goto done;
            }
            start[ds->y[i] + 1]++;
        }
        /* Hamilton's rule: floors first, then the largest remainders. */
        long given = 0;
        for (int c = 0; c < K; c++) {
            long long t = (long long)m * start[c + 1];
            share[c].rem = t % n;
            share[c].k = c;
            given += (long)(t / n);
        }
        qsort(share, (size_t)K, sizeof *share, sample_share_cmp);
        long *take = calloc((size_t)K, sizeof *take);
        if (!take)
            goto oom;
        for (int c = 0; c < K; c++)
            take[c] = (long)((long long)m * start[c + 1] / n);
        for (long j = 0; j < m - given; j++)
            take[share[j].k]++;
        for (int c = 0; c < K; c++)
            start[c + 1] += start[c];
        for (long i = 0; i < n; i++) /* grouped by class, as in ns_split_stratified */
            order[start[ds->y[i]]++] = (int32_t)i;
        for (int c = K; c > 0; c--)
            start[c] = start[c - 1];
        start[0] = 0;
        for (int c = 0; c < K; c++) {
            ns_rng_shuffle_i32(&rng, order + start[c], start[c + 1] - start[c]);
            for (long j = 0; j < take[c]; j++)
                keep[order[start[c] + j]] = 1;
        }
        free(take);
    } else {
        for (long i = 0; i < n; i++)
            order[i] = (int32_t)i;
        ns_rng_shuffle_i32(&rng, order, n);
        for (long j = 0; j < m; j++)
            keep[order[j]] = 1;
    }
    long k = 0;
    for (long i = 0; i < n; i++)
        if (keep[i])
            idx[k++] = (int32_t)i;
    *n_out = k;
    goto done;
oom:
    rc = ns_err_set(err, NS_ERUNTIME, "sample: out of memory for %ld rows", n);
done:
    free(order);
    free(start);
    free(keep);
    free(share);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Standardisation */

/* Constant feature: a spread at the rounding level of the mean is noise that 1 / sd would
 * blow up into a feature, and 1 / sd must stay a finite float (so sd is never 0 here). */
static int data_is_constant(double sd, double mean)
{
    return !(sd > 1e-12 * fabs(mean)) || !(1.0 / sd <= FLT_MAX);
}

int ns_standardizer_fit(ns_standardizer *s, const ns_dataset *ds, ns_err *err)
{
    ns_standardizer t = {0};
    double *acc = NULL;
    int rc;
    memset(s, 0, sizeof *s);
    if (ds->n < 1 || ds->d < 1)
        return ns_err_set(err, NS_EINPUT, "standardisation needs at least one training row and "
                          "feature, the training set has %ld x %d; use more data or a smaller "
                          "validation fraction", ds->n, ds->d);
    size_t d = (size_t)ds->d;
    long n = ds->n;
    t.d = ds->d;
    t.mean = malloc(d * sizeof *t.mean);
    t.scale = malloc(d * sizeof *t.scale);
    acc = calloc(2 * d, sizeof *acc);
    if (!t.mean || !t.scale || !acc) {
        rc = ns_err_set(err, NS_ERUNTIME, "standardizer: out of memory for %zu features", d);
        goto fail;
    }
    /* Two passes in double (mean, then squared deviations from it): no cancellation, and
     * row-major inner loops over features that the compiler vectorises. */
    double *mean = acc, *ss = acc + d;
    for (long i = 0; i < n; i++) {
        const float *xr = ds->x + (size_t)i * d;
        for (size_t j = 0; j < d; j++)
            mean[j] += xr[j];
    }
    for (size_t j = 0; j < d; j++)
        mean[j] /= (double)n;
    for (long i = 0; i < n; i++) {
        const float *xr = ds->x + (size_t)i * d;
        for (size_t j = 0; j < d; j++) {
            double dv = xr[j] - mean[j];
            ss[j] += dv * dv;
        }
    }
    for (size_t j = 0; j < d; j++) {
        t.mean[j] = (float)mean[j];
        double sd = sqrt(ss[j] / (double)n);
        t.scale[j] = data_is_constant(sd, mean[j]) ? 1.0f : (float)(1.0 / sd);
    }
    t.t_mean = 0.0f;
    t.t_std = 1.0f;
    if (ds->task == NS_TASK_REGRESS && ds->t) {
        double tm = 0.0, tss = 0.0;
        for (long i = 0; i < n; i++)
            tm += ds->t[i];
        tm /= (double)n;
        for (long i = 0; i < n; i++)
            tss += (ds->t[i] - tm) * (ds->t[i] - tm);
        double sd = sqrt(tss / (double)n);
        t.t_mean = (float)tm;
        t.t_std = data_is_constant(sd, tm) ? 1.0f : (float)sd;
    }
    free(acc);
    *s = t;
    return NS_OK;
fail:
    free(acc);
    ns_standardizer_free(&t);
    return rc;
}

void ns_standardizer_apply(const ns_standardizer *s, float *x, long n)
{
    size_t d = (size_t)s->d;
    for (long i = 0; i < n; i++) {
        float *xr = x + (size_t)i * d;
        for (size_t j = 0; j < d; j++) {
            float v = (xr[j] - s->mean[j]) * s->scale[j];
            /* near FLT_MAX the float difference overflows though the result is small: then
             * in double (only then: the usual bits stay those of the float formula) */
            if (!isfinite(v) && isfinite(xr[j]))
                v = (float)(((double)xr[j] - (double)s->mean[j]) * (double)s->scale[j]);
            xr[j] = v;
        }
    }
}

void ns_standardizer_apply_targets(const ns_standardizer *s, float *t, long n)
{
    for (long i = 0; i < n; i++)
        t[i] = (t[i] - s->t_mean) / s->t_std;
}

void ns_standardizer_free(ns_standardizer *s)
{
    if (!s)
        return;
    free(s->mean);
    free(s->scale);
    memset(s, 0, sizeof *s);
}
