/* modelfile_load.c — reads the trained-model file and the ensemble file (layout:
 * docs/model-format.md), checking every field as it goes: a damaged or foreign file is one
 * NS_EINPUT line with the byte offset, what is wrong and how to fix it. Writing is
 * modelfile.c's. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "model/modelfile.h"
#include "model/modelfile_impl.h"

/* What to do with a damaged file. */
#define FIX_CORRUPT "fix: copy the file again or re-create it with `nnsearch train`"
#define FIX_ENS "fix: copy the file again or re-create the ensemble"

static uint32_t get_u32(const unsigned char *b)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}
static uint64_t get_u64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

/* ---- loading ---------------------------------------------------------------------- */

/* Offsets are from the start of the file on disk: for an ensemble member they include the
 * member's position, so every message points at the byte to look at. */
typedef struct rd {
    FILE *f;
    const char *path;
    const char *who; /* "" for a model file, "member 2 of 5: " inside an ensemble */
    const char *fix; /* the advice for a damaged file; NULL: FIX_CORRUPT */
    ns_err *err;
    uint64_t off; /* next byte to read */
    uint64_t end; /* where the payload ends: the checksum's offset */
} rd;

/* NS_EINPUT "PATH: [member I of N: ]byte AT: <what>; fix: ..." for a file that passed the
 * checksum but does not make sense (written by a buggy or foreign writer). */
static int bad(rd *r, uint64_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(rd *r, uint64_t at, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return ns_err_set(r->err, NS_EINPUT, "%s: %sbyte %llu: %s; %s", r->path, r->who,
                      (unsigned long long)at, what, r->fix ? r->fix : FIX_CORRUPT);
}

static int read_failed(FILE *f, const char *path, uint64_t at, uint64_t want, ns_err *err)
{
    if (ferror(f))
        return ns_err_set(err, NS_ERUNTIME, "%s: byte %llu: read error: %s", path,
                          (unsigned long long)at, strerror(errno ? errno : EIO));
    return ns_err_set(err, NS_EINPUT,
                      "%s: byte %llu: file ends at byte %llu, expected %llu (it changed "
                      "while being read); fix: read it again once it is complete", path,
                      (unsigned long long)at, (unsigned long long)at, (unsigned long long)want);
}

static int seek_to(FILE *f, const char *path, uint64_t at, ns_err *err)
{
    if (at > (uint64_t)INT64_MAX || fseeko(f, (off_t)at, SEEK_SET) != 0)
        return ns_err_set(err, NS_ERUNTIME, "%s: cannot seek to byte %llu: %s", path,
                          (unsigned long long)at, strerror(errno ? errno : EINVAL));
    return 0;
}

/* Checks that n more bytes of `what` fit before the checksum, before anyone allocates;
 * the error points at `at`, the count that asked for them. */
static int rd_need_at(rd *r, uint64_t at, uint64_t n, const char *what)
{
    if (n > r->end - r->off)
        return bad(r, at, "%s needs %llu bytes but only %llu remain before the checksum",
                   what, (unsigned long long)n, (unsigned long long)(r->end - r->off));
    return 0;
}

static int rd_need(rd *r, uint64_t n, const char *what) { return rd_need_at(r, r->off, n, what); }

static int rd_bytes(rd *r, void *p, size_t n, const char *what)
{
    int rc = rd_need(r, n, what);
    if (rc)
        return rc;
    if (n && fread(p, 1, n, r->f) != n)
        return read_failed(r->f, r->path, r->off, r->off + n, r->err);
    r->off += n;
    return 0;
}

static int rd_u32(rd *r, uint32_t *v, const char *what)
{
    unsigned char b[4];
    int rc = rd_bytes(r, b, 4, what);
    if (!rc)
        *v = get_u32(b);
    return rc;
}

static int rd_u64(rd *r, uint64_t *v, const char *what)
{
    unsigned char b[8];
    int rc = rd_bytes(r, b, 8, what);
    if (!rc)
        *v = get_u64(b);
    return rc;
}

static int rd_f32s(rd *r, float *x, size_t n, const char *what)
{
    unsigned char buf[4096];
    int rc = rd_need(r, (uint64_t)n * 4, what);
    if (rc)
        return rc;
    for (size_t i = 0; i < n;) {
        size_t k = n - i < sizeof buf / 4 ? n - i : sizeof buf / 4;
        if ((rc = rd_bytes(r, buf, 4 * k, what)))
            return rc;
        for (size_t j = 0; j < k; j++) {
            uint32_t u = get_u32(buf + 4 * j);
            memcpy(&x[i + j], &u, 4);
        }
        i += k;
    }
    return 0;
}

static int rd_f32(rd *r, float *x, const char *what) { return rd_f32s(r, x, 1, what); }

/* A u32 that must lie in [lo, hi]. */
static int rd_range(rd *r, uint32_t *v, uint32_t lo, uint32_t hi, const char *what)
{
    uint64_t at = r->off;
    int rc = rd_u32(r, v, what);
    if (!rc && (*v < lo || *v > hi))
        rc = bad(r, at, "%s is %u, outside [%u, %u]", what, *v, lo, hi);
    return rc;
}

/* A length-prefixed string of at most max bytes with no NUL inside, into a new string. */
static int rd_string(rd *r, char **out, uint32_t max, const char *what)
{
    uint32_t n;
    uint64_t at = r->off;
    int rc = rd_range(r, &n, 0, max, what);
    if (rc || (rc = rd_need_at(r, at, n, what)))
        return rc;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return ns_err_set(r->err, NS_ERUNTIME, "%s: out of memory", r->path);
    rc = rd_bytes(r, s, n, what);
    s[rc ? 0 : n] = '\0';
    *out = s;
    if (!rc && memchr(s, '\0', n))
        rc = bad(r, at, "%s contains a NUL byte", what);
    return rc;
}

/* A names list: count 0 or want, then the strings. *names stays NULL for count 0. */
static int rd_names(rd *r, char ***names, uint32_t want, const char *what)
{
    uint32_t n;
    uint64_t at = r->off;
    int rc = rd_u32(r, &n, what);
    if (rc)
        return rc;
    if (n == 0)
        return 0;
    if (n != want && want == 0)
        return bad(r, at, "%s count is %u in a model without classes; it must be 0", what, n);
    if (n != want)
        return bad(r, at, "%s count is %u; it must be 0 or %u", what, n, want);
    if ((rc = rd_need_at(r, at, (uint64_t)n * 4, what))) /* each name has its length */
        return rc;
    *names = calloc(n, sizeof **names);
    if (!*names)
        return ns_err_set(r->err, NS_ERUNTIME, "%s: out of memory", r->path);
    for (uint32_t i = 0; i < n; i++)
        if ((rc = rd_string(r, &(*names)[i], NS_MODEL_MAX_NAME, what)))
            return rc;
    return 0;
}

static int rd_arch(rd *r, ns_model_file *mf)
{
    ns_mlp_spec *s = &mf->spec;
    uint32_t v;
    int rc;
    if ((rc = rd_range(r, &v, 1, NS_MODEL_MAX_DIM, "input count n_in")))
        return rc;
    s->n_in = (int)v;
    if ((rc = rd_range(r, &v, 1, NS_MODEL_MAX_DIM, "output count n_out")))
        return rc;
    s->n_out = (int)v;
    if ((rc = rd_range(r, &v, 0, NS_MAX_HIDDEN, "hidden layer count")))
        return rc;
    s->n_hidden = (int)v;
    for (int l = 0; l < s->n_hidden; l++) {
        if ((rc = rd_range(r, &v, 1, NS_MODEL_MAX_DIM, "hidden layer width")))
            return rc;
        s->hidden[l] = (int)v;
    }
    if ((rc = rd_range(r, &v, 0, NS_ACT_SIGMOID, "activation code")))
        return rc;
    s->act = (ns_act)v;
    uint64_t at = r->off;
    if ((rc = rd_f32(r, &s->dropout, "dropout")))
        return rc;
    if (!prob_ok(s->dropout))
        return bad(r, at, "dropout %g is outside [0, 1)", (double)s->dropout);
    if ((rc = rd_range(r, &v, 0, NS_INIT_XAVIER, "init code")))
        return rc;
    s->init = (ns_init)v;
    if ((rc = rd_range(r, &v, 0, NS_LOSS_MSE, "loss code")))
        return rc;
    s->loss = (ns_loss)v;
    at = r->off;
    if ((rc = rd_f32(r, &s->label_smoothing, "label smoothing")))
        return rc;
    if (!prob_ok(s->label_smoothing))
        return bad(r, at, "label smoothing %g is outside [0, 1)", (double)s->label_smoothing);
    at = r->off;
    if ((rc = rd_range(r, &v, 0, NS_TASK_REGRESS, "task code")))
        return rc;
    mf->task = (ns_task)v;
    if (mf->task == NS_TASK_REGRESS && s->loss != NS_LOSS_MSE)
        return bad(r, at, "a regression model with the cross-entropy loss");
    at = r->off;
    if ((rc = rd_u32(r, &v, "class count")))
        return rc;
    uint32_t want = mf->task == NS_TASK_CLASSIFY ? (uint32_t)s->n_out : 0;
    if (v != want)
        return bad(r, at, "class count is %u but a %s model with %d outputs needs %u", v,
                   mf->task == NS_TASK_CLASSIFY ? "classification" : "regression", s->n_out,
                   want);
    mf->n_classes = (int)v;
    return 0;
}

static int rd_preprocessing(rd *r, ns_model_file *mf)
{
    ns_standardizer *z = &mf->stdz;
    uint32_t d;
    uint64_t at = r->off;
    int rc = rd_u32(r, &d, "standardizer size");
    if (rc)
        return rc;
    if (d != (uint32_t)mf->spec.n_in)
        return bad(r, at, "standardizer size is %u but the model has %d inputs", d,
                   mf->spec.n_in);
    if ((rc = rd_need_at(r, at, (uint64_t)d * 8 + 8, "standardizer statistics")))
        return rc;
    z->mean = malloc((size_t)d * sizeof *z->mean);
    z->scale = malloc((size_t)d * sizeof *z->scale);
    if (!z->mean || !z->scale)
        return ns_err_set(r->err, NS_ERUNTIME, "%s: out of memory", r->path);
    z->d = (int)d;
    at = r->off;
    if ((rc = rd_f32s(r, z->mean, d, "feature means")) ||
        (rc = rd_f32s(r, z->scale, d, "feature scales")))
        return rc;
    for (uint32_t j = 0; j < d; j++) {
        if (!isfinite(z->mean[j]))
            return bad(r, at + 4 * j, "mean of feature %u is not finite", j);
        if (!isfinite(z->scale[j]))
            return bad(r, at + 4 * ((uint64_t)d + j), "scale of feature %u is not finite", j);
    }
    at = r->off;
    if ((rc = rd_f32(r, &z->t_mean, "target mean")))
        return rc;
    if (!isfinite(z->t_mean))
        return bad(r, at, "target mean %g is not finite", (double)z->t_mean);
    at = r->off;
    if ((rc = rd_f32(r, &z->t_std, "target std")))
        return rc;
    if (!isfinite(z->t_std) || !(z->t_std > 0))
        return bad(r, at, "target std %g must be finite and > 0", (double)z->t_std);
    return 0;
}

/* Version 2: a count (0 or n_in), then n_rows and the min, max, mean and std arrays. */
static int rd_feature_stats(rd *r, ns_model_file *mf)
{
    ns_feature_stats *fs = &mf->fstats;
    uint32_t d;
    uint64_t at = r->off;
    int rc = rd_u32(r, &d, "training statistics count");
    if (rc || d == 0)
        return rc;
    if (d != (uint32_t)mf->spec.n_in)
        return bad(r, at, "training statistics count is %u; it must be 0 or %d (the inputs)",
                   d, mf->spec.n_in);
    if ((rc = rd_need_at(r, at, 8 + (uint64_t)d * 16, "training statistics")))
        return rc;
    uint64_t n, at_n = r->off;
    if ((rc = rd_u64(r, &n, "training row count")))
        return rc;
    if (n < 1 || n > (uint64_t)INT64_MAX)
        return bad(r, at_n, "training row count is %llu, outside [1, 2^63 - 1]",
                   (unsigned long long)n);
    float *buf = malloc((size_t)d * 4 * sizeof *buf);
    if (!buf)
        return ns_err_set(r->err, NS_ERUNTIME, "%s: out of memory", r->path);
    *fs = (ns_feature_stats){.d = (int)d, .n_rows = (long)n, .min = buf, .max = buf + d,
                             .mean = buf + 2 * (size_t)d, .std = buf + 3 * (size_t)d};
    at = r->off;
    if ((rc = rd_f32s(r, buf, (size_t)d * 4, "training statistics")))
        return rc;
    for (uint32_t j = 0; j < d; j++) {
        const char *why;
        int k = ns_mf_stat_problem(fs, (int)j, &why);
        if (k >= 0)
            return bad(r, at + 4 * ((uint64_t)k * d + j), "%s of feature %u %s",
                       ns_mf_stat_name[k], j, why);
    }
    return 0;
}

/* An empty label name means "none" (IDX-trained models). */
static int rd_label_name(rd *r, ns_model_file *mf)
{
    int rc = rd_string(r, &mf->label_name, NS_MODEL_MAX_NAME, "label column name");
    if (!rc && mf->label_name && !mf->label_name[0]) {
        free(mf->label_name);
        mf->label_name = NULL;
    }
    return rc;
}

static int rd_provenance_params(rd *r, ns_model_file *mf)
{
    int rc;
    if ((rc = rd_u64(r, &mf->config_hash, "config hash")) ||
        (rc = rd_u64(r, &mf->seed, "seed")))
        return rc;
    char *tv = NULL;
    rc = rd_string(r, &tv, TOOL_VERSION_MAX, "tool version");
    if (tv)
        memcpy(mf->tool_version, tv, strlen(tv) + 1);
    free(tv);
    if (rc)
        return rc;

    uint64_t n, at = r->off;
    if ((rc = rd_u64(r, &n, "parameter count")))
        return rc;
    uint64_t want = ns_mlp_spec_param_count(&mf->spec);
    if (n != want) {
        char a[512];
        return bad(r, at, "parameter count is %llu but the %s architecture has %llu",
                   (unsigned long long)n, ns_mf_arch_str(&mf->spec, a, sizeof a),
                   (unsigned long long)want);
    }
    if ((rc = rd_need_at(r, at, n * 4, "parameters")))
        return rc;
    mf->params = malloc((size_t)n * sizeof *mf->params);
    if (!mf->params)
        return ns_err_set(r->err, NS_ERUNTIME, "%s: out of memory for %llu parameters",
                          r->path, (unsigned long long)n);
    mf->n_params = (size_t)n;
    return rd_f32s(r, mf->params, (size_t)n, "parameters");
}

/* What the envelopes of a model file and of an ensemble file share (magic, version, file
 * size, CRC-32 of all before it, in the same places) and where they differ. */
typedef struct kind {
    const unsigned char *magic; /* 8 bytes, the last one NUL: also the text for messages */
    const char *name;           /* "model", "ensemble" */
    uint32_t vmin, vmax;        /* versions this build reads */
    uint64_t min_size;          /* the least a file-size field may say */
    const char *min_what;       /* what those bytes hold, for the message */
    const char *fix;            /* the advice for a damaged file */
} kind;
static const kind MODEL_KIND = {MAGIC, "model", NS_MODEL_VERSION_MIN, NS_MODEL_VERSION,
                                HEADER_BYTES + CRC_BYTES, "a header and a checksum",
                                FIX_CORRUPT};
static const kind ENS_KIND = {ENS_MAGIC, "ensemble", ENS_VERSION, ENS_VERSION,
                              ENS_HEADER_BYTES + CRC_BYTES,
                              "a header, a member count and a checksum", FIX_ENS};

/* Magic, version, file size and checksum of the k-file in bytes [base, base + size) of f,
 * which is positioned at base: everything that does not need the sections. Verifying the
 * checksum before parsing means damage anywhere after the header is reported as what it
 * is, not as whichever field it happened to hit. who and base place an ensemble member's
 * messages ("member 2 of 5: byte <offset in the whole file>"). */
static int check_envelope(FILE *f, const char *path, const char *who, uint64_t base,
                          uint64_t size, const kind *k, uint64_t *file_size, uint32_t *version,
                          ns_err *err)
{
    const char *fix = who[0] ? FIX_ENS : k->fix; /* a bad member: the ensemble is to redo */
    unsigned char h[HEADER_BYTES];
    size_t want = size < HEADER_BYTES ? (size_t)size : HEADER_BYTES;
    if (want && fread(h, 1, want, f) != want)
        return read_failed(f, path, base, base + want, err);
    if (memcmp(h, k->magic, want < 8 ? want : 8) != 0) {
        if (k == &MODEL_KIND && !who[0] && want >= 8 && !memcmp(h, ENS_MAGIC, 8))
            return ns_err_set(err, NS_EINPUT,
                              "%s: byte 0: this is an ensemble file (models whose predictions "
                              "are averaged), not a single model; fix: read it with "
                              "ns_models_load, as `nnsearch predict` does", path);
        return ns_err_set(err, NS_EINPUT,
                          "%s: %sbyte %llu: not an nnsearch %s file (it does not start with "
                          "\"%s\"); %s", path, who, (unsigned long long)base, k->name,
                          (const char *)k->magic,
                          who[0] ? FIX_ENS : "fix: pass a model written by `nnsearch train`");
    }
    if (want >= 12) {
        uint32_t v = get_u32(h + 8);
        if (v < k->vmin || v > k->vmax)
            return ns_err_set(err, NS_EINPUT,
                              "%s: %sbyte %llu: %s format version %u, but this build of "
                              "nnsearch reads versions %u to %u; fix: %s", path, who,
                              (unsigned long long)(base + 8), k->name, v, k->vmin, k->vmax,
                              v > k->vmax
                                  ? "use the newer nnsearch that wrote it, or re-train with this one"
                              : k == &MODEL_KIND && !who[0]
                                  ? "the file is corrupt; re-create it with `nnsearch train`"
                                  : "the file is corrupt; re-create the ensemble");
        *version = v;
    }
    unsigned long long end = base + size; /* for the messages */
    if (want < HEADER_BYTES)
        return ns_err_set(err, NS_EINPUT,
                          "%s: %sbyte %llu: file ends at byte %llu, expected at least %llu (the "
                          "header); the file is truncated; %s", path, who, end, end,
                          (unsigned long long)(base + HEADER_BYTES), fix);
    uint64_t fs = get_u64(h + 12);
    if (fs < k->min_size)
        return ns_err_set(err, NS_EINPUT,
                          "%s: %sbyte %llu: the file size field says %llu bytes, less than %s; "
                          "the file is corrupt; %s", path, who,
                          (unsigned long long)(base + 12), (unsigned long long)fs, k->min_what,
                          fix);
    if (size < fs)
        return ns_err_set(err, NS_EINPUT,
                          "%s: %sbyte %llu: file ends at byte %llu, expected %llu; the file is "
                          "truncated; %s", path, who, end, end, (unsigned long long)(base + fs),
                          fix);
    if (size > fs) {
        char cut[96];
        if (who[0]) /* inside an ensemble: its writer put the member's length wrong */
            snprintf(cut, sizeof cut, "%s", "fix: re-create the ensemble");
        else
            snprintf(cut, sizeof cut, "fix: cut the file at %llu bytes or copy it again",
                     (unsigned long long)fs);
        return ns_err_set(err, NS_EINPUT,
                          "%s: %sbyte %llu: %llu unexpected bytes after the end of the %s "
                          "(trailing garbage); %s", path, who, (unsigned long long)(base + fs),
                          (unsigned long long)(size - fs), k->name, cut);
    }

    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, h, HEADER_BYTES);
    unsigned char buf[16384];
    for (uint64_t off = HEADER_BYTES; off < fs - CRC_BYTES;) {
        size_t n = fs - CRC_BYTES - off < sizeof buf ? (size_t)(fs - CRC_BYTES - off) : sizeof buf;
        if (fread(buf, 1, n, f) != n)
            return read_failed(f, path, base + off, base + fs, err);
        crc = crc32(crc, buf, (uInt)n);
        off += n;
    }
    unsigned char c[CRC_BYTES];
    if (fread(c, 1, CRC_BYTES, f) != CRC_BYTES)
        return read_failed(f, path, base + fs - CRC_BYTES, base + fs, err);
    if (get_u32(c) != (uint32_t)crc)
        return ns_err_set(err, NS_EINPUT,
                          "%s: %sbyte %llu: checksum mismatch: the file is corrupt (stored "
                          "%08x, computed %08x); %s", path, who,
                          (unsigned long long)(base + fs - CRC_BYTES), get_u32(c),
                          (uint32_t)crc, fix);
    *file_size = fs;
    return 0;
}

/* Opens path for reading when it is a regular file; *size is its length. */
static int open_regular(const char *path, FILE **f, uint64_t *size, ns_err *err)
{
    *f = fopen(path, "rb");
    if (!*f) /* a wrong path is the user's to fix: exit code 2 */
        return ns_err_set(err, errno == ENOENT || errno == EACCES ? NS_EINPUT : NS_ERUNTIME,
                          "%s: cannot open the model file: %s; fix: check the path", path,
                          strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fileno(*f), &st) != 0)
        rc = ns_err_set(err, NS_ERUNTIME, "%s: cannot stat the model file: %s", path,
                        strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = ns_err_set(err, NS_EINPUT, "%s: not a regular file; fix: pass the model file "
                        "itself", path);
    if (rc) {
        fclose(*f);
        *f = NULL;
        return rc;
    }
    *size = (uint64_t)st.st_size;
    return 0;
}

/* Reads the model file that fills bytes [base, base + size) of f: a whole model file
 * (base 0, who "") or one ensemble member. *mf must be zeroed; on failure it is freed
 * and zeroed again. */
static int read_model(FILE *f, const char *path, const char *who, uint64_t base,
                      uint64_t size, ns_model_file *mf, ns_err *err)
{
    uint64_t fs = 0;
    uint32_t version = 0;
    int rc = seek_to(f, path, base, err);
    if (!rc)
        rc = check_envelope(f, path, who, base, size, &MODEL_KIND, &fs, &version, err);
    if (!rc)
        rc = seek_to(f, path, base + HEADER_BYTES, err);
    if (!rc) {
        rd r = {.f = f, .path = path, .who = who, .fix = who[0] ? FIX_ENS : NULL, .err = err,
                .off = base + HEADER_BYTES, .end = base + fs - CRC_BYTES};
        /* Version 1 is version 2 without the training statistics. */
        if (!(rc = rd_arch(&r, mf)) && !(rc = rd_preprocessing(&r, mf)) &&
            !(rc = version >= 2 ? rd_feature_stats(&r, mf) : 0) &&
            !(rc = rd_names(&r, &mf->class_names, (uint32_t)mf->n_classes, "class names")) &&
            !(rc = rd_names(&r, &mf->feature_names, (uint32_t)mf->spec.n_in,
                            "feature names")) &&
            !(rc = rd_label_name(&r, mf)) &&
            !(rc = rd_provenance_params(&r, mf)) && r.off != r.end)
            rc = bad(&r, r.off, "%llu unexpected bytes between the parameters and the checksum",
                     (unsigned long long)(r.end - r.off));
    }
    if (rc)
        ns_model_file_free(mf);
    return rc;
}

int ns_model_load(const char *path, ns_model_file *mf, ns_err *err)
{
    memset(mf, 0, sizeof *mf);
    FILE *f;
    uint64_t size = 0;
    int rc = open_regular(path, &f, &size, err);
    if (rc)
        return rc;
    rc = read_model(f, path, "", 0, size, mf, err);
    fclose(f);
    return rc;
}

/* An ensemble file: its envelope, whose CRC covers the members too (so damage anywhere is
 * a checksum mismatch, as in a model file), then the member table (each length within
 * what is left, nothing between the last member and the checksum), then each member
 * through the model reader, which checks its own envelope and CRC, then that the members
 * agree. The file is read three times (two checksums and the parse), all sequentially. */
static int read_ensemble(FILE *f, const char *path, uint64_t size, ns_model_file **members,
                         int *n, ns_err *err)
{
    uint64_t fs = 0;
    uint32_t version = 0, count = 0;
    int rc = seek_to(f, path, 0, err);
    if (rc || (rc = check_envelope(f, path, "", 0, size, &ENS_KIND, &fs, &version, err)) ||
        (rc = seek_to(f, path, HEADER_BYTES, err)))
        return rc;
    rd r = {.f = f, .path = path, .who = "", .fix = FIX_ENS, .err = err, .off = HEADER_BYTES,
            .end = fs - CRC_BYTES};
    if ((rc = rd_range(&r, &count, 1, NS_ENSEMBLE_MAX_MEMBERS, "member count")))
        return rc;
    uint64_t start[NS_ENSEMBLE_MAX_MEMBERS], len[NS_ENSEMBLE_MAX_MEMBERS];
    for (uint32_t i = 0; i < count; i++) {
        uint64_t at = r.off;
        char what[64];
        snprintf(what, sizeof what, "the length of member %u of %u", i + 1, count);
        if ((rc = rd_u64(&r, &len[i], what)))
            return rc;
        if (len[i] > r.end - r.off)
            return bad(&r, at, "member %u of %u is %llu bytes long but only %llu remain before "
                       "the checksum", i + 1, count, (unsigned long long)len[i],
                       (unsigned long long)(r.end - r.off));
        start[i] = r.off;
        r.off += len[i];
        if ((rc = seek_to(f, path, r.off, err)))
            return rc;
    }
    if (r.off != r.end)
        return bad(&r, r.off, "%llu unexpected bytes between the last member and the checksum",
                   (unsigned long long)(r.end - r.off));

    ns_model_file *m = calloc(count, sizeof *m);
    if (!m)
        return ns_err_set(err, NS_ERUNTIME, "%s: out of memory for %u models", path, count);
    for (uint32_t i = 0; i < count && !rc; i++) {
        char who[48], why[512];
        snprintf(who, sizeof who, "member %u of %u: ", i + 1, count);
        rc = read_model(f, path, who, start[i], len[i], &m[i], err);
        if (!rc && i && ns_mf_members_differ(&m[0], &m[i], why, sizeof why))
            rc = ns_err_set(err, NS_EINPUT, "%s: byte %llu: member %u of %u disagrees with "
                            "member 1: %s; fix: an ensemble averages models trained for the "
                            "same task on the same columns; re-create it", path,
                            (unsigned long long)start[i], i + 1, count, why);
    }
    if (rc) {
        ns_models_free(m, (int)count);
        return rc;
    }
    *members = m;
    *n = (int)count;
    return 0;
}

int ns_models_load(const char *path, ns_model_file **members, int *n, ns_err *err)
{
    *members = NULL;
    *n = 0;
    FILE *f;
    uint64_t size = 0;
    int rc = open_regular(path, &f, &size, err);
    if (rc)
        return rc;
    unsigned char h[8];
    size_t k = size < 8 ? (size_t)size : 8;
    if (k && fread(h, 1, k, f) != k) {
        rc = read_failed(f, path, 0, k, err);
    } else if (k >= 3 && !memcmp(h, ENS_MAGIC, k)) {
        /* The magics share "NS": from the third byte on a truncated file shows its kind;
         * before that the model reader's message (truncated) is as good as any. */
        rc = read_ensemble(f, path, size, members, n, err);
    } else if (memcmp(h, MAGIC, k)) {
        rc = ns_err_set(err, NS_EINPUT,
                        "%s: byte 0: not an nnsearch model file (it starts neither with "
                        "\"NSMODEL\" nor with \"NSENSMB\", the mark of an ensemble); fix: "
                        "pass a model written by `nnsearch train`", path);
    } else {
        ns_model_file *m = calloc(1, sizeof *m);
        if (!m)
            rc = ns_err_set(err, NS_ERUNTIME, "%s: out of memory", path);
        else if ((rc = read_model(f, path, "", 0, size, m, err)))
            free(m);
        else {
            *members = m;
            *n = 1;
        }
    }
    fclose(f);
    return rc;
}

void ns_models_free(ns_model_file *members, int n)
{
    for (int i = 0; members && i < n; i++)
        ns_model_file_free(&members[i]);
    free(members);
}

void ns_model_file_free(ns_model_file *mf)
{
    if (!mf)
        return;
    for (int i = 0; mf->class_names && i < mf->n_classes; i++)
        free(mf->class_names[i]);
    free(mf->class_names);
    for (int i = 0; mf->feature_names && i < mf->spec.n_in; i++)
        free(mf->feature_names[i]);
    free(mf->feature_names);
    free(mf->label_name);
    free(mf->stdz.mean);
    free(mf->stdz.scale);
    ns_feature_stats_free(&mf->fstats);
    free(mf->params);
    memset(mf, 0, sizeof *mf);
}

