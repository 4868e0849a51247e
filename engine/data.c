/* data.c — IDX and CSV loaders, subsets, stratified splits and standardisation statistics.
 * Each loader reads the whole file into memory (through zlib, so .gz works too), checks
 * everything and reports the first problem as one line. Not a streaming reader, and no
 * preprocessing beyond turning bytes and text into floats: scaling is the standardizer's. */
#include "data.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <zlib.h>

#include "rng.h"

/* The model file refuses longer class or feature names; refuse them here, at the source. */
#define NS_DATA_MAX_NAME 4096
/* Integer labels beyond this are codes (ids, years), not class indices: one output unit per
 * value up to the largest would be absurd, so they must be given as names or renumbered. */
#define NS_DATA_MAX_INT_LABEL 65535
/* How many names an error message lists before "...". */
#define NS_DATA_LIST_NAMES 8

/* ---------------------------------------------------------------------------------------
 * Small helpers: names, error text, string map */

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

static void data_strs_free(char **a, long n)
{
    if (!a)
        return;
    for (long i = 0; i < n; i++)
        free(a[i]);
    free(a);
}

/* Deep copy of n strings; *out = NULL when src is NULL. Returns 0 or -1 (out of memory). */
static int data_strs_dup(char ***out, char *const *src, long n)
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
 * Reading a whole file */

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

/* Reads all of path, gzip'd or raw (zlib passes raw files through), into a buffer with a
 * NUL after the data (the CSV tokenizer relies on it). *gz: whether it was decompressed. */
static int data_file_read(const char *path, char **out, size_t *out_len, int *gz, ns_err *err)
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
 * IDX */

static const char *data_idx_type_name(int t)
{
    switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return "unknown";
    }
}

typedef struct data_idx {
    char *buf;
    size_t len;
    long n;                    /* items: the first dimension */
    long item;                 /* bytes per item: product of the other dimensions, 1 if none */
    const unsigned char *data; /* (n, item) */
} data_idx;

/* Reads and checks one IDX file; labels: must be rank 1. */
static int data_idx_read(data_idx *f, const char *path, int labels, ns_err *err)
{
    int gz = 0, rc;
    memset(f, 0, sizeof *f);
    if ((rc = data_file_read(path, &f->buf, &f->len, &gz, err)))
        return rc;
    const unsigned char *b = (const unsigned char *)f->buf;
    size_t len = f->len;
    const char *dec = gz ? " (decompressed)" : "";
    if (len == 0) {
        rc = ns_err_set(err, NS_EINPUT, "%s: byte 0: the file is empty; an IDX file starts with "
                        "00 00 08 RANK, download/copy it again", path);
        goto fail;
    }
    if (len < 4) {
        rc = ns_err_set(err, NS_EINPUT, "%s: byte %zu: the file%s ends inside the 4-byte IDX "
                        "magic; the file is truncated, download/copy it again", path, len, dec);
        goto fail;
    }
    if (b[0] != 0 || b[1] != 0) {
        rc = ns_err_set(err, NS_EINPUT, "%s: byte 0: bad magic %02x %02x %02x %02x, an IDX file "
                        "starts with 00 00 08 RANK; check that the path names an IDX file",
                        path, b[0], b[1], b[2], b[3]);
        goto fail;
    }
    if (b[2] != 0x08) {
        rc = ns_err_set(err, NS_EINPUT, "%s: byte 2: IDX type code 0x%02X (%s) is not supported, "
                        "only 0x08 (unsigned byte) is; convert the data to unsigned bytes or CSV",
                        path, b[2], data_idx_type_name(b[2]));
        goto fail;
    }
    int rank = b[3];
    if (rank == 0 || (labels && rank != 1)) {
        rc = ns_err_set(err, NS_EINPUT, "%s: byte 3: rank %d, a%s file needs rank %s; %s", path,
                        rank, labels ? " labels" : "n IDX", labels ? "1" : ">= 1",
                        labels ? "check that images and labels are not swapped"
                               : "the file is corrupt, download/copy it again");
        goto fail;
    }
    size_t hdr = 4 + 4 * (size_t)rank;
    if (len < hdr) {
        rc = ns_err_set(err, NS_EINPUT, "%s: byte %zu: the file%s ends inside the header, which "
                        "needs %zu bytes for rank %d; the file is truncated, download/copy it "
                        "again", path, len, dec, hdr, rank);
        goto fail;
    }
    uint64_t total = 1, item = 1, n = 0;
    int overflow = 0;
    for (int i = 0; i < rank; i++) {
        const unsigned char *q = b + 4 + 4 * i;
        uint64_t dim = (uint64_t)q[0] << 24 | (uint64_t)q[1] << 16 | (uint64_t)q[2] << 8 | q[3];
        if (i == 0)
            n = dim;
        else if (dim && item > UINT64_MAX / dim)
            overflow = 1;
        else
            item *= dim;
        if (dim && total > UINT64_MAX / dim)
            overflow = 1;
        else
            total *= dim;
    }
    if (overflow) {
        rc = ns_err_set(err, NS_EINPUT, "%s: byte 4: the dimensions in the header overflow 64 "
                        "bits; the file is corrupt, download/copy it again", path);
        goto fail;
    }
    if (n == 0 || item == 0) {
        rc = ns_err_set(err, NS_EINPUT, "%s: byte 4: the header announces %s; the file holds no "
                        "data, use the complete file", path, n == 0 ? "0 items" : "empty items");
        goto fail;
    }
    if (total > len - hdr) {
        rc = ns_err_set(err, NS_EINPUT, "%s: byte %zu: file%s ends at byte %zu but the header "
                        "announces %llu bytes of data after its %zu (%llu in all); the file is "
                        "truncated, download/copy it again", path, len, dec, len,
                        (unsigned long long)total, hdr, (unsigned long long)(hdr + total));
        goto fail;
    }
    if (total < len - hdr) {
        rc = ns_err_set(err, NS_EINPUT, "%s: byte %llu: %llu bytes follow the %llu bytes of data "
                        "the header announces; the file is corrupt or not what its header says, "
                        "download/copy it again", path, (unsigned long long)(hdr + total),
                        (unsigned long long)(len - hdr - total), (unsigned long long)total);
        goto fail;
    }
    if (n > INT32_MAX || item > INT_MAX) {
        rc = ns_err_set(err, NS_EINPUT, "%s: byte 4: %llu items of %llu values exceed the limits "
                        "(%d items, %d values each); split the data", path,
                        (unsigned long long)n, (unsigned long long)item, INT32_MAX, INT_MAX);
        goto fail;
    }
    f->n = (long)n;
    f->item = (long)item;
    f->data = b + hdr;
    return NS_OK;
fail:
    free(f->buf);
    memset(f, 0, sizeof *f);
    return rc;
}

/* The IDX loader; fixed_classes > 0: labels must be below it (a vocabulary from training). */
static int data_idx_load(ns_dataset *ds, const char *images_path, const char *labels_path,
                         int fixed_classes, ns_err *err)
{
    data_idx im = {0}, lb = {0};
    ns_dataset t = {0};
    int rc;
    memset(ds, 0, sizeof *ds);
    if ((rc = data_idx_read(&im, images_path, 0, err)))
        goto fail;
    if (labels_path) {
        if ((rc = data_idx_read(&lb, labels_path, 1, err)))
            goto fail;
        if (lb.n != im.n) {
            rc = ns_err_set(err, NS_EINPUT, "%s: byte 4: %ld labels but %s holds %ld images; "
                            "use the labels file that belongs to these images", labels_path,
                            lb.n, images_path, im.n);
            goto fail;
        }
    }
    t.n = im.n;
    t.d = (int)im.item;
    t.task = NS_TASK_CLASSIFY;
    size_t cells = (size_t)im.n * (size_t)im.item;
    if (cells > SIZE_MAX / sizeof *t.x || !(t.x = malloc(cells * sizeof *t.x))) {
        rc = ns_err_set(err, NS_ERUNTIME, "%s: out of memory for %ld x %ld floats", images_path,
                        im.n, im.item);
        goto fail;
    }
    /* Raw byte values; standardisation happens later, on training rows only. */
    for (size_t i = 0; i < cells; i++)
        t.x[i] = (float)im.data[i];
    free(im.buf);
    im.buf = NULL;
    if (labels_path) {
        if (!(t.y = malloc((size_t)t.n * sizeof *t.y))) {
            rc = ns_err_set(err, NS_ERUNTIME, "%s: out of memory for %ld labels", labels_path,
                            t.n);
            goto fail;
        }
        int max = 0;
        for (long i = 0; i < t.n; i++) {
            int v = lb.data[i];
            if (fixed_classes > 0 && v >= fixed_classes) {
                rc = ns_err_set(err, NS_EINPUT, "%s: byte %ld: label %d is not one of the %d "
                                "training classes 0..%d; use labels from the same label set as "
                                "the training data", labels_path, 8 + i, v, fixed_classes,
                                fixed_classes - 1);
                goto fail;
            }
            t.y[i] = v;
            if (v > max)
                max = v;
        }
        t.n_classes = fixed_classes > 0 ? fixed_classes : max + 1;
    } else {
        t.n_classes = fixed_classes > 0 ? fixed_classes : 0;
    }
    free(lb.buf);
    *ds = t;
    return NS_OK;
fail:
    free(im.buf);
    free(lb.buf);
    ns_dataset_free(&t);
    return rc;
}

int ns_dataset_load_idx(ns_dataset *ds, const char *images_path, const char *labels_path,
                        ns_err *err)
{
    return data_idx_load(ds, images_path, labels_path, 0, err);
}

/* ---------------------------------------------------------------------------------------
 * CSV */

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

/* "[+-]digits" -> 1 and *v (saturated), else 0. */
static int data_label_int(const char *s, long *v)
{
    int neg = 0;
    long x = 0;
    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    if (!*s)
        return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return 0;
        if (x < 1000000000L)
            x = x * 10 + (*s - '0');
    }
    *v = neg ? -x : x;
    return 1;
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
 * all-integer labels are indices (names NULL), else names in order of first appearance. */
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
            long v;
            if (!data_label_int(r->lab[i], &v) || v < 0 || v >= o->n_classes) {
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
    long v = 0, max = 0, i;
    for (i = 0; i < n && data_label_int(r->lab[i], &v); i++)
        ;
    if (i == n) { /* all integers: they are the class indices */
        for (i = 0; i < n; i++) {
            data_label_int(r->lab[i], &v);
            if (v < 0 || v > NS_DATA_MAX_INT_LABEL) {
                rc = ns_err_set(err, NS_EINPUT, "%s:%ld:%d: class label %s is %s; integer "
                                "labels must be class indices 0..K-1 (K <= %d), renumber them "
                                "or use names", path, r->line[i], col + 1,
                                data_show(buf, sizeof buf, r->lab[i], strlen(r->lab[i])),
                                v < 0 ? "negative" : "too large", NS_DATA_MAX_INT_LABEL + 1);
                goto fail;
            }
            t->y[i] = (int32_t)v;
            if (v > max)
                max = v;
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
        for (size_t j = 0; j < d; j++)
            xr[j] = (xr[j] - s->mean[j]) * s->scale[j];
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
