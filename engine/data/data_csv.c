/* data_csv.c — the CSV loader: tokenizer, number parser, label vocabulary, and the small
 * helpers only it needs (error-text quoting, a string map). Not format detection or dataset
 * operations (data.c), not IDX (data_idx.c); no preprocessing beyond text to floats. */
#include "engine/data/data_impl.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The model file refuses longer class or feature names; refuse them here, at the source. */
#define NS_DATA_MAX_NAME 4096
/* Integer labels beyond this are codes (ids, years), not class indices: one output unit per
 * value up to the largest would be absurd, so they must be given as names or renumbered. */
#define NS_DATA_MAX_INT_LABEL 65535
/* Columns of the header. Each costs about 80 bytes of bookkeeping for as little as two of
 * file, so an unbounded header (a binary file, a table with a newline-free gigabyte line)
 * could take 40 times the file in memory before any row is read. */
#define NS_DATA_MAX_COLS (1 << 20)
/* How many names an error message lists before "...". */
#define NS_DATA_LIST_NAMES 8

/* ---------------------------------------------------------------------------------------
 * Small helpers: error text, string map */

/* Copies at most 40 bytes of s for an error message, control bytes as '?', so a bad cell
 * (or a quoted one holding a newline) cannot break the one-line rule. */
static const char *data_show(char *out, size_t cap, const char *s, size_t len)
{
    size_t k = 0, max = cap - 4;
    if (max > 40)
        max = 40;
    for (size_t i = 0; i < len && k < max; i++)
        out[k++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (len > max)
        out[k++] = '.', out[k++] = '.', out[k++] = '.';
    out[k] = '\0';
    return out;
}

/* "a, b, c, ... (40 in all)" into out. */
static const char *data_names_list(char *out, size_t cap, char *const *names, long n)
{
    size_t k = 0;
    out[0] = '\0';
    for (long i = 0; i < n && i < NS_DATA_LIST_NAMES; i++) {
        char tmp[64];
        data_show(tmp, sizeof tmp, names[i], strlen(names[i]));
        int w = snprintf(out + k, cap - k, "%s'%s'", i ? ", " : "", tmp);
        if (w < 0 || (size_t)w >= cap - k)
            return out;
        k += (size_t)w;
    }
    if (n > NS_DATA_LIST_NAMES)
        snprintf(out + k, cap - k, ", ... (%ld in all)", n);
    return out;
}


/* Open-addressing map from NUL-terminated strings (not copied) to int32: duplicate column
 * names and label vocabularies stay linear even with one class per row. */
typedef struct data_strmap {
    const char **key; /* (mask + 1), NULL = empty slot */
    int32_t *val;     /* (mask + 1) */
    size_t mask;
    size_t n;
} data_strmap;

static uint64_t data_str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int data_strmap_init(data_strmap *m, size_t expect)
{
    size_t cap = 16;
    while (cap < 2 * expect)
        cap *= 2;
    m->key = calloc(cap, sizeof *m->key);
    m->val = malloc(cap * sizeof *m->val);
    m->mask = cap - 1;
    m->n = 0;
    if (!m->key || !m->val) {
        free(m->key);
        free(m->val);
        m->key = NULL;
        m->val = NULL;
        return -1;
    }
    return 0;
}

static void data_strmap_free(data_strmap *m)
{
    free(m->key);
    free(m->val);
    memset(m, 0, sizeof *m);
}

static int32_t data_strmap_get(const data_strmap *m, const char *k)
{
    for (size_t i = data_str_hash(k) & m->mask;; i = (i + 1) & m->mask) {
        if (!m->key[i])
            return -1;
        if (strcmp(m->key[i], k) == 0)
            return m->val[i];
    }
}

/* Inserts k (absent) -> v. Returns 0 or -1 (out of memory). */
static int data_strmap_put(data_strmap *m, const char *k, int32_t v)
{
    if (2 * (m->n + 1) > m->mask + 1) {
        data_strmap big;
        if (data_strmap_init(&big, m->n + 1) != 0)
            return -1;
        for (size_t i = 0; i <= m->mask; i++)
            if (m->key[i])
                data_strmap_put(&big, m->key[i], m->val[i]);
        data_strmap_free(m);
        *m = big;
    }
    size_t i = data_str_hash(k) & m->mask;
    while (m->key[i])
        i = (i + 1) & m->mask;
    m->key[i] = k;
    m->val[i] = v;
    m->n++;
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Tokenizer, numbers, labels */

typedef struct data_csv_cur {
    char *p, *end;
    long line; /* 1-based line of p */
} data_csv_cur;

typedef struct data_csv_field {
    char *s;    /* NUL-terminated in place, quotes removed and "" unescaped */
    size_t len;
} data_csv_field;

/* Skips blank (whitespace-only) lines; returns 1 at the end of the data. */
static int data_csv_skip_blank(data_csv_cur *c)
{
    for (;;) {
        char *q = c->p;
        while (q < c->end && (*q == ' ' || *q == '\t'))
            q++;
        if (q == c->end) {
            c->p = q;
            return 1;
        }
        if (*q != '\n' && *q != '\r')
            return 0;
        if (*q == '\r' && q + 1 < c->end && q[1] == '\n')
            q++;
        c->p = q + 1;
        c->line++;
    }
}

/* Tokenizes the record at c->p (not blank) into *f, growing *f when grow is set, else
 * storing at most *cap fields and only counting the rest. *nf: fields in the record.
 * Fields are unquoted and NUL-terminated in place: the terminator lands on a delimiter,
 * whitespace or quote that has already been consumed, or on the NUL after the buffer. */
static int data_csv_record(data_csv_cur *c, data_csv_field **f, int *cap, int grow, int *nf,
                           const char *path, ns_err *err)
{
    char *p = c->p, *end = c->end;
    long line0 = c->line;
    int k = 0;
    for (;;) {
        char *s, *e;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p < end && *p == '"') {
            s = e = ++p;
            for (;;) {
                if (p == end)
                    return ns_err_set(err, NS_EINPUT, "%s:%ld:%d: the quoted field is never "
                                      "closed; add the closing quote (a quote inside a field "
                                      "is written \"\")", path, line0, k + 1);
                if (*p == '"') {
                    if (p + 1 < end && p[1] == '"') {
                        *e++ = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                if (*p == '\n')
                    c->line++;
                *e++ = *p++;
            }
            while (p < end && (*p == ' ' || *p == '\t'))
                p++;
            if (p < end && *p != ',' && *p != '\n' && *p != '\r')
                return ns_err_set(err, NS_EINPUT, "%s:%ld:%d: text after the closing quote; "
                                  "quote the whole field or remove the stray characters", path,
                                  line0, k + 1);
        } else {
            s = p;
            while (p < end && *p != ',' && *p != '\n' && *p != '\r')
                p++;
            e = p;
            while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
        }
        if (k == *cap && grow) {
            if (k >= NS_DATA_MAX_COLS)
                return ns_err_set(err, NS_EINPUT, "%s:%ld:1: the header has more than %d "
                                  "columns, the most nnsearch reads; check that this is a CSV "
                                  "file with one row per line, or keep the columns you need",
                                  path, line0, NS_DATA_MAX_COLS);
            int ncap = *cap ? (*cap > INT_MAX / 2 ? INT_MAX : 2 * *cap) : 64;
            data_csv_field *nf2 = realloc(*f, (size_t)ncap * sizeof **f);
            if (!nf2)
                return ns_err_set(err, NS_ERUNTIME, "%s:%ld: out of memory for %d fields", path,
                                  line0, ncap);
            *f = nf2;
            *cap = ncap;
        }
        if (k < *cap) {
            (*f)[k].s = s;
            (*f)[k].len = (size_t)(e - s);
        } else if (grow || k == INT_MAX) {
            return ns_err_set(err, NS_EINPUT, "%s:%ld:1: too many fields in one row; this is "
                              "not a table nnsearch can read", path, line0);
        }
        k++;
        char delim = p < end ? *p : '\0';
        if (p < end)
            p++;
        *e = '\0';
        if (delim == ',')
            continue;
        if (delim == '\r' && p < end && *p == '\n')
            p++;
        if (delim)
            c->line++;
        break;
    }
    c->p = p;
    *nf = k;
    return NS_OK;
}

static const double data_pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                      1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                      1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Parses a whole field as a finite float: 0 ok, 1 not a number (or empty), 2 not finite,
 * 3 finite but outside the float range. Plain decimals (what CSV writers emit) take a fast
 * path that rounds exactly as strtod does (mantissa < 2^53 over an exact power of ten is
 * one correctly rounded division); everything else goes to strtod on the NUL-terminated
 * field. Both end in the same (float)double conversion, so the paths agree bit for bit. */
static int data_csv_number(const char *s, size_t len, float *out)
{
    const char *p = s, *e = s + len;
    int neg = 0, nd = 0, fd = 0;
    uint64_t m = 0;
    double v;
    if (p < e && (*p == '-' || *p == '+'))
        neg = *p++ == '-';
    while (p < e && *p >= '0' && *p <= '9' && nd < 18)
        m = m * 10 + (uint64_t)(*p++ - '0'), nd++;
    if (p < e && *p == '.') {
        p++;
        while (p < e && *p >= '0' && *p <= '9' && nd < 18)
            m = m * 10 + (uint64_t)(*p++ - '0'), nd++, fd++;
    }
    if (p == e && nd > 0 && m <= (1ULL << 53)) {
        v = fd ? (double)m / data_pow10[fd] : (double)m;
        v = neg ? -v : v;
    } else {
        char *endp;
        if (len == 0)
            return 1;
        v = strtod(s, &endp);
        if (endp != e)
            return 1;
        if (!isfinite(v))
            return 2;
    }
    float f = (float)v;
    if (!isfinite(f))
        return 3;
    *out = f;
    return 0;
}

/* Whether a label is a number: a plain decimal with an optional sign, fraction and exponent
 * ("3", "-1", "1.5", "2e3"), finite; hex, inf and nan are text. One test decides both the
 * rule of data_csv_classes (all numbers: class indices) and what a number is there. */
static int data_label_number(const char *s, double *v)
{
    if (!*s || strspn(s, "0123456789+-.eE") != strlen(s) || !strpbrk(s, "0123456789"))
        return 0;
    char *end;
    double x = strtod(s, &end);
    if (*end || !isfinite(x))
        return 0;
    *v = x;
    return 1;
}

/* Why a number cannot be a class index 0..NS_DATA_MAX_INT_LABEL, or NULL when it can. */
static const char *data_label_not_index(double v)
{
    if (v < 0)
        return "negative";
    if (v != floor(v))
        return "not a whole number";
    if (v > NS_DATA_MAX_INT_LABEL)
        return "too large";
    return NULL;
}

/* Growable per-row storage while parsing. */
typedef struct data_csv_rows {
    long cap;
    float *x;     /* (cap, d) */
    float *t;     /* (cap) regression targets, or NULL */
    char **lab;   /* (cap) classification label text (in the file buffer), or NULL */
    long *line;   /* (cap) line of each row, for label errors found after parsing */
} data_csv_rows;

static int data_csv_rows_grow(data_csv_rows *r, long cap, int d, int want_t, int want_lab)
{
    if (cap < 1)
        cap = 1;
    if ((size_t)cap > SIZE_MAX / sizeof(float) / (size_t)d)
        return -1;
    float *x = realloc(r->x, (size_t)cap * (size_t)d * sizeof *x);
    if (!x)
        return -1;
    r->x = x;
    if (want_t) {
        float *t = realloc(r->t, (size_t)cap * sizeof *t);
        if (!t)
            return -1;
        r->t = t;
    }
    if (want_lab) {
        char **lab = realloc(r->lab, (size_t)cap * sizeof *lab);
        if (!lab)
            return -1;
        r->lab = lab;
        long *line = realloc(r->line, (size_t)cap * sizeof *line);
        if (!line)
            return -1;
        r->line = line;
    }
    r->cap = cap;
    return 0;
}

/* Whether the header names are numbers, all but at most one (a text label): then row 1
 * is probably data and the file has no header. Only ever a hint in an error message. */
static int data_csv_all_numeric(const data_csv_field *f, int n)
{
    int text = 0;
    for (int i = 0; i < n; i++) {
        float v;
        text += data_csv_number(f[i].s, f[i].len, &v) != 0;
    }
    return n >= 2 ? text <= 1 : text == 0;
}

/* Maps the label text of every row to a class index and sets t->y, n_classes and
 * class_names. Vocabulary: opts names (fixed), opts n_classes (fixed, numeric), or built:
 * labels that are all numbers are indices (names NULL; one that cannot be an index is an
 * error), else every label is a name, in order of first appearance. */
static int data_csv_classes(ns_dataset *t, data_csv_rows *r, int col, const char *path,
                            const ns_csv_opts *o, ns_err *err)
{
    data_strmap map = {0};
    const char **first = NULL; /* built string vocabulary: first text of each class */
    char buf[96], list[512];
    int rc = NS_OK;
    long n = t->n;
    if (!(t->y = malloc((size_t)n * sizeof *t->y)))
        goto oom;
    if (o->class_names) {
        if (data_strmap_init(&map, (size_t)o->n_classes) != 0)
            goto oom;
        for (int c = 0; c < o->n_classes; c++)
            if (data_strmap_get(&map, o->class_names[c]) < 0 &&
                data_strmap_put(&map, o->class_names[c], c) != 0)
                goto oom;
        for (long i = 0; i < n; i++) {
            int32_t c = data_strmap_get(&map, r->lab[i]);
            if (c < 0) {
                rc = ns_err_set(err, NS_EINPUT, "%s:%ld:%d: label '%s' is not one of the %d "
                                "training classes (%s); fix the label or train with this class",
                                path, r->line[i], col + 1,
                                data_show(buf, sizeof buf, r->lab[i], strlen(r->lab[i])),
                                o->n_classes, data_names_list(list, sizeof list, o->class_names,
                                                              o->n_classes));
                goto fail;
            }
            t->y[i] = c;
        }
        t->n_classes = o->n_classes;
        if (data_strs_dup(&t->class_names, o->class_names, o->n_classes) != 0)
            goto oom;
        goto done;
    }
    if (o->n_classes > 0) {
        for (long i = 0; i < n; i++) {
            double v;
            if (!data_label_number(r->lab[i], &v) || data_label_not_index(v) ||
                v >= o->n_classes) {
                rc = ns_err_set(err, NS_EINPUT, "%s:%ld:%d: label '%s' is not a class index "
                                "0..%d like the training labels; fix the label", path,
                                r->line[i], col + 1,
                                data_show(buf, sizeof buf, r->lab[i], strlen(r->lab[i])),
                                o->n_classes - 1);
                goto fail;
            }
            t->y[i] = (int32_t)v;
        }
        t->n_classes = o->n_classes;
        goto done;
    }
    /* The rule (docs/config.md, data): when every label is a number, the labels are class
     * indices 0..K-1, and a number that cannot be one (negative, fractional, too large) is
     * an error, since it most likely means a regression target or a mislabelled row; when
     * any label is not a number, every label is a class name, "2" included. */
    double v = 0;
    long max = 0, i;
    for (i = 0; i < n && data_label_number(r->lab[i], &v); i++)
        ;
    if (i == n) {
        for (i = 0; i < n; i++) {
            data_label_number(r->lab[i], &v);
            const char *why = data_label_not_index(v);
            if (why) {
                rc = ns_err_set(err, NS_EINPUT, "%s:%ld:%d: class label %s is %s; when every "
                                "label is a number the labels are class indices 0..K-1 "
                                "(K <= %d): renumber them, give the classes names, or set "
                                "data.task: regression for a numeric target", path, r->line[i],
                                col + 1, data_show(buf, sizeof buf, r->lab[i], strlen(r->lab[i])),
                                why, NS_DATA_MAX_INT_LABEL + 1);
                goto fail;
            }
            t->y[i] = (int32_t)v;
            if ((long)v > max)
                max = (long)v;
        }
        t->n_classes = (int)max + 1;
        goto done;
    }
    /* Names, in order of first appearance. */
    long cap = 16, k = 0;
    if (data_strmap_init(&map, 16) != 0 || !(first = malloc((size_t)cap * sizeof *first)))
        goto oom;
    for (i = 0; i < n; i++) {
        int32_t c = data_strmap_get(&map, r->lab[i]);
        if (c < 0) {
            if (k == cap) {
                const char **nf = realloc(first, (size_t)cap * 2 * sizeof *first);
                if (!nf)
                    goto oom;
                first = nf;
                cap *= 2;
            }
            c = (int32_t)k;
            first[k++] = r->lab[i];
            if (data_strmap_put(&map, r->lab[i], c) != 0)
                goto oom;
        }
        t->y[i] = c;
    }
    t->n_classes = (int)k;
    if (data_strs_dup(&t->class_names, (char *const *)first, k) != 0)
        goto oom;
done:
    free(first);
    data_strmap_free(&map);
    return NS_OK;
oom:
    rc = ns_err_set(err, NS_ERUNTIME, "%s: out of memory mapping %ld labels to classes", path, n);
fail:
    free(first);
    data_strmap_free(&map);
    return rc;
}

int ns_dataset_load_csv(ns_dataset *ds, const char *path, const ns_csv_opts *opts, ns_err *err)
{
    static const ns_csv_opts no_label = {NULL, NS_TASK_CLASSIFY, NULL, 0};
    const ns_csv_opts *o = opts ? opts : &no_label;
    char *buf = NULL;
    data_csv_field *f = NULL;
    data_csv_rows r = {0};
    data_strmap names = {0};
    ns_dataset t = {0};
    char show[96], list[512];
    size_t len = 0;
    int gz = 0, fcap = 0, nf = 0, rc;
    memset(ds, 0, sizeof *ds);
    if (o->task != NS_TASK_CLASSIFY && o->task != NS_TASK_REGRESS)
        return ns_err_set(err, NS_EINPUT, "%s: unknown task %d", path, (int)o->task);
    if (o->class_names && o->n_classes <= 0)
        return ns_err_set(err, NS_EINPUT, "%s: class names given with %d classes; pass the "
                          "vocabulary's size in n_classes", path, o->n_classes);
    if ((rc = data_file_read(path, &buf, &len, &gz, err)))
        return rc;
    data_csv_cur c = {buf, buf + len, 1};
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) /* UTF-8 byte-order mark (Excel) */
        c.p += 3;
    if (len >= 2 && (memcmp(buf, "\xFF\xFE", 2) == 0 || memcmp(buf, "\xFE\xFF", 2) == 0)) {
        rc = ns_err_set(err, NS_EINPUT, "%s:1:1: the file is UTF-16 text; save it as UTF-8 "
                        "(or ASCII) CSV", path);
        goto fail;
    }

    /* Header. */
    if (data_csv_skip_blank(&c)) {
        rc = ns_err_set(err, NS_EINPUT, "%s:1:1: the file is empty; a CSV file needs a header "
                        "row naming the columns and at least one data row", path);
        goto fail;
    }
    long hline = c.line;
    if ((rc = data_csv_record(&c, &f, &fcap, 1, &nf, path, err)))
        goto fail;
    int ncols = nf, label_col = -1;
    if (data_strmap_init(&names, (size_t)ncols) != 0)
        goto oom;
    for (int j = 0; j < ncols; j++) {
        if (f[j].len == 0) {
            rc = ns_err_set(err, NS_EINPUT, "%s:%ld:%d: column %d has no name; name every column "
                            "in the header (a pandas index column: write the CSV with "
                            "index=False)", path, hline, j + 1, j + 1);
            goto fail;
        }
        if (f[j].len > NS_DATA_MAX_NAME) {
            rc = ns_err_set(err, NS_EINPUT, "%s:%ld:%d: column name of %zu bytes, the limit is %d; "
                            "shorten it", path, hline, j + 1, f[j].len, NS_DATA_MAX_NAME);
            goto fail;
        }
        int32_t prev = data_strmap_get(&names, f[j].s);
        if (prev >= 0) {
            rc = ns_err_set(err, NS_EINPUT, "%s:%ld:%d: column name '%s' repeats column %d; give "
                            "every column a unique name%s", path, hline, j + 1,
                            data_show(show, sizeof show, f[j].s, f[j].len), prev + 1,
                            data_csv_all_numeric(f, ncols)
                                ? " (row 1 looks like data: the file needs a header row)" : "");
            goto fail;
        }
        if (data_strmap_put(&names, f[j].s, j) != 0)
            goto oom;
    }
    if (o->label) {
        label_col = data_strmap_get(&names, o->label);
        if (label_col < 0) {
            const char *like = NULL;
            char *hn[NS_DATA_LIST_NAMES] = {0};
            int show_n = ncols < NS_DATA_LIST_NAMES ? ncols : NS_DATA_LIST_NAMES;
            char like_s[96], hint[128];
            for (int j = 0; j < ncols && !like; j++)
                if (strcasecmp(f[j].s, o->label) == 0)
                    like = f[j].s;
            for (int j = 0; j < show_n; j++)
                hn[j] = f[j].s;
            data_names_list(list, sizeof list, hn, show_n);
            if (ncols > show_n)
                snprintf(list + strlen(list), sizeof list - strlen(list), ", ... (%d in all)",
                         ncols);
            if (like)
                snprintf(hint, sizeof hint, "did you mean '%s'?",
                         data_show(like_s, sizeof like_s, like, strlen(like)));
            else if (data_csv_all_numeric(f, ncols))
                snprintf(hint, sizeof hint, "row 1 looks like data: the file needs a header row");
            else
                snprintf(hint, sizeof hint, "name the label column by one of them");
            rc = ns_err_set(err, NS_EINPUT, "%s:%ld:1: no column named '%s' for the label; the "
                            "columns are %s; %s", path, hline,
                            data_show(show, sizeof show, o->label, strlen(o->label)), list, hint);
            goto fail;
        }
    }
    int d = ncols - (label_col >= 0);
    if (d == 0) {
        rc = ns_err_set(err, NS_EINPUT, "%s:%ld:1: the label is the only column; the file needs "
                        "at least one feature column", path, hline);
        goto fail;
    }
    t.d = d;
    t.task = o->task;
    if (!(t.feature_names = calloc((size_t)d, sizeof *t.feature_names)))
        goto oom;
    for (int j = 0, k = 0; j < ncols; j++)
        if (j != label_col && !(t.feature_names[k++] = strdup(f[j].s)))
            goto oom;
    data_strmap_free(&names); /* its keys live in the header, done with */

    /* Data rows. The first allocation is exact for ordinary files: one row per line, and
     * a row takes at least max(ncols - 1, 1) + 1 bytes, which bounds a file of blank lines. */
    int want_t = label_col >= 0 && o->task == NS_TASK_REGRESS;
    int want_lab = label_col >= 0 && o->task != NS_TASK_REGRESS;
    long est = 1;
    for (const char *q = c.p; (q = memchr(q, '\n', (size_t)(c.end - q))) != NULL; q++)
        est++;
    size_t per_row = (size_t)(ncols > 2 ? ncols : 2);
    if ((size_t)est > (size_t)(c.end - c.p) / per_row + 1)
        est = (long)((size_t)(c.end - c.p) / per_row + 1);
    if (data_csv_rows_grow(&r, est, d, want_t, want_lab) != 0)
        goto oom;
    long n = 0;
    while (!data_csv_skip_blank(&c)) {
        long line = c.line;
        if (n == r.cap) {
            if (r.cap >= INT32_MAX) {
                rc = ns_err_set(err, NS_EINPUT, "%s:%ld:1: more than %d rows; split the file",
                                path, line, INT32_MAX);
                goto fail;
            }
            long ncap = r.cap > INT32_MAX / 2 ? INT32_MAX : 2 * r.cap;
            if (data_csv_rows_grow(&r, ncap, d, want_t, want_lab) != 0)
                goto oom;
        }
        int cap = ncols; /* fields past ncols are counted, not stored */
        if ((rc = data_csv_record(&c, &f, &cap, 0, &nf, path, err)))
            goto fail;
        if (nf != ncols) {
            rc = ns_err_set(err, NS_EINPUT, "%s:%ld:%d: %d fields but the header has %d columns; "
                            "%s", path, line, nf < ncols ? nf + 1 : ncols + 1, nf, ncols,
                            nf < ncols ? "add the missing values (or the missing commas)"
                                       : "quote fields that contain commas, or remove the "
                                         "extra values");
            goto fail;
        }
        float *xr = r.x + (size_t)n * (size_t)d;
        for (int j = 0, k = 0; j < ncols; j++) {
            const char *s = f[j].s;
            size_t sl = f[j].len;
            if (j == label_col) {
                if (sl == 0) {
                    rc = ns_err_set(err, NS_EINPUT, "%s:%ld:%d: the label is empty; every row "
                                    "needs a label (drop unlabelled rows)", path, line, j + 1);
                    goto fail;
                }
                if (want_lab) {
                    if (sl > NS_DATA_MAX_NAME) {
                        rc = ns_err_set(err, NS_EINPUT, "%s:%ld:%d: label of %zu bytes, the "
                                        "limit is %d; shorten it", path, line, j + 1, sl,
                                        NS_DATA_MAX_NAME);
                        goto fail;
                    }
                    r.lab[n] = f[j].s;
                    r.line[n] = line;
                    continue;
                }
                int bad = data_csv_number(s, sl, &r.t[n]);
                if (bad) {
                    rc = ns_err_set(err, NS_EINPUT, "%s:%ld:%d: target '%s' is %s; a regression "
                                    "target must be a finite number (for class labels use the "
                                    "classification task)", path, line, j + 1,
                                    data_show(show, sizeof show, s, sl),
                                    bad == 1 ? "not a number" : bad == 2 ? "not finite"
                                                                         : "beyond the float range");
                    goto fail;
                }
                continue;
            }
            int bad = data_csv_number(s, sl, &xr[k]);
            if (bad) {
                if (sl == 0)
                    rc = ns_err_set(err, NS_EINPUT, "%s:%ld:%d: empty cell in column '%s'; every "
                                    "feature needs a number (impute missing values or drop the "
                                    "row)", path, line, j + 1,
                                    data_show(list, sizeof list, t.feature_names[k],
                                              strlen(t.feature_names[k])));
                else
                    rc = ns_err_set(err, NS_EINPUT, "%s:%ld:%d: '%s' in column '%s' is %s; %s",
                                    path, line, j + 1, data_show(show, sizeof show, s, sl),
                                    data_show(list, sizeof list, t.feature_names[k],
                                              strlen(t.feature_names[k])),
                                    bad == 1 ? "not a number" : bad == 2 ? "not a finite number"
                                                                         : "beyond the float range",
                                    bad == 1 ? "features must be numbers (encode categories as "
                                               "numbers or one-hot columns)"
                                             : bad == 2 ? "replace missing or infinite values "
                                                          "(impute them or drop the row)"
                                                        : "rescale the column");
                goto fail;
            }
            k++;
        }
        n++;
    }
    if (n == 0) {
        rc = ns_err_set(err, NS_EINPUT, "%s:%ld:1: no data rows after the header; the file needs "
                        "at least one row of data", path, c.line);
        goto fail;
    }
    t.n = n;
    if (n < r.cap) /* give back what the estimate over-reserved (blank lines) */
        data_csv_rows_grow(&r, n, d, want_t, want_lab); /* a failed shrink keeps the old block */
    t.x = r.x;
    r.x = NULL;
    if (want_t) {
        t.t = r.t;
        r.t = NULL;
    }
    if (want_lab) {
        if ((rc = data_csv_classes(&t, &r, label_col, path, o, err)))
            goto fail;
    } else if (o->task == NS_TASK_CLASSIFY && o->n_classes > 0) {
        /* Prediction input: no labels, the declared vocabulary still describes the data. */
        t.n_classes = o->n_classes;
        if (data_strs_dup(&t.class_names, o->class_names, o->n_classes) != 0)
            goto oom;
    }
    free(r.t);
    free(r.lab);
    free(r.line);
    free(f);
    free(buf);
    *ds = t;
    return NS_OK;
oom:
    rc = ns_err_set(err, NS_ERUNTIME, "%s: out of memory while reading the CSV file", path);
fail:
    data_strmap_free(&names);
    free(r.x);
    free(r.t);
    free(r.lab);
    free(r.line);
    free(f);
    free(buf);
    ns_dataset_free(&t);
    return rc;
}
