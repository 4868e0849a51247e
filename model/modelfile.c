/* modelfile.c — writes the trained-model file and the ensemble file that holds several of
 * them (layout: docs/model-format.md), the rules saving and loading share, and the
 * training statistics a model file carries. Every field is encoded one by one in
 * little-endian order, so a file is the same on any host and never depends on struct
 * padding. Reading is modelfile_load.c's. Not a general serialiser: it knows these two
 * formats. */
#include "model/modelfile.h"

#include "engine/atomic.h"
#include "model/modelfile_impl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---- shared rules ----------------------------------------------------------------- */

/* The training statistics of one feature against their invariants: -1 if they hold, else
 * which of the four arrays is wrong (0 min, 1 max, 2 mean, 3 std, the file order) with
 * the reason in *why. Comparisons are written so that NaN fails them. */
int ns_mf_stat_problem(const ns_feature_stats *fs, int j, const char **why)
{
    float mn = fs->min[j], mx = fs->max[j], mean = fs->mean[j], sd = fs->std[j];
    if (!isfinite(mn))
        return (*why = "is not finite", 0);
    if (!isfinite(mx) || !(mx >= mn))
        return (*why = "is not finite or is below the minimum", 1);
    if (!isfinite(mean) || !(mean >= mn && mean <= mx))
        return (*why = "is not finite or lies outside [minimum, maximum]", 2);
    if (!isfinite(sd) || !(sd >= 0))
        return (*why = "is not finite or is negative", 3);
    return -1;
}
const char *const ns_mf_stat_name[4] = {"training minimum", "training maximum",
                                         "training mean", "training std"};

/* Whether member b of an ensemble may be averaged with member a: the same task, inputs,
 * outputs and names (architecture widths, weights and statistics may differ). Returns 0,
 * or 1 with what differs in why. A NULL label name and an empty one are the same (the file
 * stores both as empty). Names are cut in the message: one may be 4096 bytes. */
int ns_mf_members_differ(const ns_model_file *a, const ns_model_file *b, char *why,
                          size_t cap)
{
#define WHY(...) return (snprintf(why, cap, __VA_ARGS__), 1)
    static const char *const TASK[] = {"classification", "regression"};
    if (a->task != b->task)
        WHY("task is %s, member 1's %s", TASK[b->task == NS_TASK_REGRESS],
            TASK[a->task == NS_TASK_REGRESS]);
    if (a->n_classes != b->n_classes) /* before n_out, which it equals: the clearer word */
        WHY("%d classes, member 1 has %d", b->n_classes, a->n_classes);
    if (a->spec.n_in != b->spec.n_in || a->spec.n_out != b->spec.n_out)
        WHY("%d inputs and %d outputs, member 1 has %d and %d", b->spec.n_in, b->spec.n_out,
            a->spec.n_in, a->spec.n_out);
    if (!a->class_names != !b->class_names)
        WHY("class names %s, member 1's %s", b->class_names ? "present" : "absent",
            a->class_names ? "present" : "absent");
    for (int i = 0; a->class_names && i < a->n_classes; i++)
        if (strcmp(a->class_names[i], b->class_names[i]))
            WHY("class %d is named '%.60s', in member 1 '%.60s'", i, b->class_names[i],
                a->class_names[i]);
    if (!a->feature_names != !b->feature_names)
        WHY("feature names %s, member 1's %s", b->feature_names ? "present" : "absent",
            a->feature_names ? "present" : "absent");
    for (int j = 0; a->feature_names && j < a->spec.n_in; j++)
        if (strcmp(a->feature_names[j], b->feature_names[j]))
            WHY("feature %d is named '%.60s', in member 1 '%.60s'", j, b->feature_names[j],
                a->feature_names[j]);
    const char *la = a->label_name ? a->label_name : "", *lb = b->label_name ? b->label_name : "";
    if (strcmp(la, lb))
        WHY("label column '%.60s', member 1's '%.60s'", lb, la);
#undef WHY
    return 0;
}

/* "784-256-128-10" for messages. */
const char *ns_mf_arch_str(const ns_mlp_spec *s, char *buf, size_t cap)
{
    size_t k = (size_t)snprintf(buf, cap, "%d", s->n_in);
    for (int l = 0; l < s->n_hidden && k < cap; l++)
        k += (size_t)snprintf(buf + k, cap - k, "-%d", s->hidden[l]);
    if (k < cap)
        snprintf(buf + k, cap - k, "-%d", s->n_out);
    return buf;
}
static void put_u32(unsigned char *b, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}
/* ---- saving ----------------------------------------------------------------------- */

/* Checks everything load would check, so a file that saves also loads. Returns 0, or
 * nonzero with "what; fix" in why. */
static int check_model(const ns_model_file *mf, char *why, size_t cap)
{
    const char *bug = "fix: this is a bug in the code that built the model";
#define WHY(...) return (snprintf(why, cap, __VA_ARGS__), 1)
    if (!mf)
        WHY("no model given; %s", bug);
    const ns_mlp_spec *s = &mf->spec;
    if (!dim_ok((uint64_t)(int64_t)s->n_in) || !dim_ok((uint64_t)(int64_t)s->n_out))
        WHY("n_in = %d, n_out = %d; both must be in [1, %d]; %s", s->n_in, s->n_out,
            NS_MODEL_MAX_DIM, bug);
    if (s->n_hidden < 0 || s->n_hidden > NS_MAX_HIDDEN)
        WHY("n_hidden = %d is outside [0, %d]; %s", s->n_hidden, NS_MAX_HIDDEN, bug);
    for (int l = 0; l < s->n_hidden; l++)
        if (!dim_ok((uint64_t)(int64_t)s->hidden[l]))
            WHY("hidden layer %d has width %d, outside [1, %d]; %s", l + 1, s->hidden[l],
                NS_MODEL_MAX_DIM, bug);
    if ((unsigned)s->act > NS_ACT_SIGMOID || (unsigned)s->init > NS_INIT_XAVIER ||
        (unsigned)s->loss > NS_LOSS_MSE || (unsigned)mf->task > NS_TASK_REGRESS)
        WHY("act %d, init %d, loss %d or task %d is not a known value; %s", (int)s->act,
            (int)s->init, (int)s->loss, (int)mf->task, bug);
    if (!prob_ok(s->dropout) || !prob_ok(s->label_smoothing))
        WHY("dropout %g and label_smoothing %g must be in [0, 1); %s", (double)s->dropout,
            (double)s->label_smoothing, bug);
    if (mf->task == NS_TASK_CLASSIFY && mf->n_classes != s->n_out)
        WHY("classification with n_classes = %d but n_out = %d; they must be equal; %s",
            mf->n_classes, s->n_out, bug);
    if (mf->task == NS_TASK_REGRESS && (mf->n_classes != 0 || mf->class_names))
        WHY("regression with n_classes = %d or class names; both must be absent; %s",
            mf->n_classes, bug);
    if (mf->task == NS_TASK_REGRESS && s->loss != NS_LOSS_MSE)
        WHY("regression needs the MSE loss; %s", bug);
    const ns_standardizer *z = &mf->stdz;
    if (z->d != s->n_in || !z->mean || !z->scale)
        WHY("standardizer has d = %d (or no statistics) but n_in = %d; store identity "
            "statistics (mean 0, scale 1) when standardisation is off", z->d, s->n_in);
    for (int j = 0; j < z->d; j++)
        if (!isfinite(z->mean[j]) || !isfinite(z->scale[j]))
            WHY("standardizer statistics of feature %d are not finite; %s", j, bug);
    if (!isfinite(z->t_mean) || !isfinite(z->t_std) || !(z->t_std > 0))
        WHY("target statistics t_mean %g, t_std %g: need finite values and t_std > 0 "
            "(0 and 1 when unused)", (double)z->t_mean, (double)z->t_std);
    for (int i = 0; mf->class_names && i < mf->n_classes; i++)
        if (!mf->class_names[i] || strlen(mf->class_names[i]) > NS_MODEL_MAX_NAME)
            WHY("class name %d is missing or longer than %d bytes; %s", i, NS_MODEL_MAX_NAME,
                bug);
    for (int i = 0; mf->feature_names && i < s->n_in; i++)
        if (!mf->feature_names[i] || strlen(mf->feature_names[i]) > NS_MODEL_MAX_NAME)
            WHY("feature name %d is missing or longer than %d bytes; %s", i,
                NS_MODEL_MAX_NAME, bug);
    if (mf->label_name && strlen(mf->label_name) > NS_MODEL_MAX_NAME)
        WHY("label name longer than %d bytes; %s", NS_MODEL_MAX_NAME, bug);
    const ns_feature_stats *fs = &mf->fstats;
    if (fs->d != 0 && (fs->d != s->n_in || !fs->min || !fs->max || !fs->mean || !fs->std))
        WHY("training statistics have d = %d (or no arrays) but n_in = %d; store d = 0 "
            "when there are none; %s", fs->d, s->n_in, bug);
    if (fs->d != 0 && fs->n_rows < 1)
        WHY("training statistics summarise %ld rows; need at least 1; %s", fs->n_rows, bug);
    for (int j = 0; j < fs->d; j++) {
        const char *what;
        int k = ns_mf_stat_problem(fs, j, &what);
        if (k >= 0)
            WHY("%s of feature %d %s; %s", ns_mf_stat_name[k], j, what, bug);
    }
    if (!memchr(mf->tool_version, '\0', sizeof mf->tool_version))
        WHY("tool_version is not a terminated string of at most %d bytes; %s",
            TOOL_VERSION_MAX, bug);
    uint64_t want = ns_mlp_spec_param_count(s);
    if ((uint64_t)mf->n_params != want || !mf->params) {
        char a[512];
        WHY("n_params is %zu but the %s architecture has %llu parameters (or params is "
            "NULL); pass this architecture's parameter buffer", mf->n_params,
            ns_mf_arch_str(s, a, sizeof a), (unsigned long long)want);
    }
#undef WHY
    return 0;
}

/* Byte sink: with f == NULL it only counts, which gives the file size up front. A sink
 * with an outer sink (an ensemble member) hands its bytes on to that one, which writes
 * them, and keeps its own offset and checksum: each member carries its own CRC. */
typedef struct wr {
    FILE *f;
    uint64_t off;  /* bytes emitted so far */
    uLong crc;     /* zlib crc32 of those bytes */
    int failed;    /* errno of the first failed write, 0 if none */
    struct wr *outer; /* or NULL */
} wr;

static void wr_bytes(wr *w, const void *p, size_t n)
{
    if (w->outer) {
        wr_bytes(w->outer, p, n);
        if (w->outer->f && n)
            w->crc = crc32(w->crc, p, (uInt)n);
    } else if (w->f && !w->failed && n) {
        if (fwrite(p, 1, n, w->f) != n)
            w->failed = errno ? errno : EIO;
        w->crc = crc32(w->crc, p, (uInt)n); /* n is at most a few KiB here */
    }
    w->off += n;
}

static void wr_u32(wr *w, uint32_t v)
{
    unsigned char b[4];
    put_u32(b, v);
    wr_bytes(w, b, 4);
}

static void wr_u64(wr *w, uint64_t v)
{
    unsigned char b[8];
    put_u64(b, v);
    wr_bytes(w, b, 8);
}

/* Floats travel as their IEEE-754 bits, so every value (NaN payloads too) round-trips. */
static void wr_f32s(wr *w, const float *x, size_t n)
{
    unsigned char buf[4096];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        put_u32(buf + k, u);
        k += 4;
        if (k == sizeof buf) {
            wr_bytes(w, buf, k);
            k = 0;
        }
    }
    wr_bytes(w, buf, k);
}

static void wr_f32(wr *w, float x) { wr_f32s(w, &x, 1); }

static void wr_str(wr *w, const char *s, size_t n)
{
    wr_u32(w, (uint32_t)n);
    wr_bytes(w, s, n);
}

/* Everything but the trailing checksum, in the order of docs/model-format.md. */
static void serialize(wr *w, const ns_model_file *mf, uint64_t file_size)
{
    const ns_mlp_spec *s = &mf->spec;
    wr_bytes(w, MAGIC, sizeof MAGIC);
    wr_u32(w, NS_MODEL_VERSION);
    wr_u64(w, file_size);

    wr_u32(w, (uint32_t)s->n_in);
    wr_u32(w, (uint32_t)s->n_out);
    wr_u32(w, (uint32_t)s->n_hidden);
    for (int l = 0; l < s->n_hidden; l++)
        wr_u32(w, (uint32_t)s->hidden[l]);
    wr_u32(w, (uint32_t)s->act);
    wr_f32(w, s->dropout);
    wr_u32(w, (uint32_t)s->init);
    wr_u32(w, (uint32_t)s->loss);
    wr_f32(w, s->label_smoothing);
    wr_u32(w, (uint32_t)mf->task);
    wr_u32(w, (uint32_t)mf->n_classes);

    wr_u32(w, (uint32_t)mf->stdz.d);
    wr_f32s(w, mf->stdz.mean, (size_t)mf->stdz.d);
    wr_f32s(w, mf->stdz.scale, (size_t)mf->stdz.d);
    wr_f32(w, mf->stdz.t_mean);
    wr_f32(w, mf->stdz.t_std);

    const ns_feature_stats *fs = &mf->fstats; /* version 2 */
    wr_u32(w, (uint32_t)fs->d);
    if (fs->d) {
        wr_u64(w, (uint64_t)fs->n_rows);
        wr_f32s(w, fs->min, (size_t)fs->d);
        wr_f32s(w, fs->max, (size_t)fs->d);
        wr_f32s(w, fs->mean, (size_t)fs->d);
        wr_f32s(w, fs->std, (size_t)fs->d);
    }

    int nc = mf->class_names ? mf->n_classes : 0;
    wr_u32(w, (uint32_t)nc);
    for (int i = 0; i < nc; i++)
        wr_str(w, mf->class_names[i], strlen(mf->class_names[i]));
    int nf = mf->feature_names ? s->n_in : 0;
    wr_u32(w, (uint32_t)nf);
    for (int i = 0; i < nf; i++)
        wr_str(w, mf->feature_names[i], strlen(mf->feature_names[i]));
    wr_str(w, mf->label_name ? mf->label_name : "", mf->label_name ? strlen(mf->label_name) : 0);

    wr_u64(w, mf->config_hash);
    wr_u64(w, mf->seed);
    wr_str(w, mf->tool_version, strlen(mf->tool_version));

    wr_u64(w, (uint64_t)mf->n_params);
    wr_f32s(w, mf->params, mf->n_params);
}

int ns_model_save(const char *path, const ns_model_file *mf, ns_err *err)
{
    char why[768];
    if (check_model(mf, why, sizeof why))
        return ns_err_set(err, NS_EINPUT, "%s: cannot save the model: %s", path, why);

    wr count = {0};
    serialize(&count, mf, 0);
    uint64_t total = count.off + CRC_BYTES;

    ns_atomic_file out;
    int rc = ns_atomic_open(&out, path, err);
    if (rc)
        return rc;
    wr w = {.f = out.f, .crc = crc32(0L, Z_NULL, 0)};
    serialize(&w, mf, total);
    wr_u32(&w, (uint32_t)w.crc);
    if (w.failed || w.off != total) { /* the second can't happen: both passes run the same code */
        ns_atomic_abort(&out);
        return ns_err_set(err, NS_ERUNTIME, "%s: cannot write the model file: %s; check free "
                          "space and permissions of the folder", path,
                          strerror(w.failed ? w.failed : EIO));
    }
    return ns_atomic_commit(&out, err);
}

/* Bytes ns_model_save would write for mf (a checked model). */
static uint64_t model_size(const ns_model_file *mf)
{
    wr count = {0};
    serialize(&count, mf, 0);
    return count.off + CRC_BYTES;
}

int ns_ensemble_save(const char *path, const ns_model_file *members, int n, ns_err *err)
{
    char why[768];
    if (!members || n < 1 || n > NS_ENSEMBLE_MAX_MEMBERS)
        return ns_err_set(err, NS_EINPUT, "%s: cannot save the ensemble: %d members (or none "
                          "given); an ensemble has 1 to %d; fix: this is a bug in the code "
                          "that built it", path, n, NS_ENSEMBLE_MAX_MEMBERS);
    for (int i = 0; i < n; i++) {
        if (check_model(&members[i], why, sizeof why))
            return ns_err_set(err, NS_EINPUT, "%s: cannot save the ensemble: member %d of %d: "
                              "%s", path, i + 1, n, why);
        if (i && ns_mf_members_differ(&members[0], &members[i], why, sizeof why))
            return ns_err_set(err, NS_EINPUT, "%s: cannot save the ensemble: member %d of %d "
                              "disagrees with member 1: %s; fix: average only models trained "
                              "for the same task on the same columns", path, i + 1, n, why);
    }
    uint64_t total = ENS_HEADER_BYTES + CRC_BYTES;
    for (int i = 0; i < n; i++)
        total += 8 + model_size(&members[i]);

    ns_atomic_file out;
    int rc = ns_atomic_open(&out, path, err);
    if (rc)
        return rc;
    wr w = {.f = out.f, .crc = crc32(0L, Z_NULL, 0)};
    wr_bytes(&w, ENS_MAGIC, sizeof ENS_MAGIC);
    wr_u32(&w, ENS_VERSION);
    wr_u64(&w, total);
    wr_u32(&w, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        /* Exactly the bytes ns_model_save writes, its own CRC included. */
        uint64_t len = model_size(&members[i]);
        wr_u64(&w, len);
        wr m = {.outer = &w, .crc = crc32(0L, Z_NULL, 0)};
        serialize(&m, &members[i], len);
        wr_u32(&m, (uint32_t)m.crc);
    }
    wr_u32(&w, (uint32_t)w.crc);
    if (w.failed || w.off != total) { /* the second can't happen: both passes run the same code */
        ns_atomic_abort(&out);
        return ns_err_set(err, NS_ERUNTIME, "%s: cannot write the ensemble file: %s; check "
                          "free space and permissions of the folder", path,
                          strerror(w.failed ? w.failed : EIO));
    }
    return ns_atomic_commit(&out, err);
}

/* ---- training statistics ------------------------------------------------------------ */

int ns_feature_stats_compute(ns_feature_stats *fs, const ns_dataset *ds, ns_err *err)
{
    memset(fs, 0, sizeof *fs);
    if (ds->n < 1 || ds->d < 1)
        return ns_err_set(err, NS_EINPUT, "training statistics need at least one row and "
                          "feature, the training set has %ld x %d", ds->n, ds->d);
    size_t d = (size_t)ds->d;
    long n = ds->n;
    float *buf = malloc(4 * d * sizeof *buf);
    double *acc = calloc(2 * d, sizeof *acc);
    if (!buf || !acc) {
        free(buf);
        free(acc);
        return ns_err_set(err, NS_ERUNTIME, "training statistics: out of memory for %zu "
                          "features", d);
    }
    float *mn = buf, *mx = buf + d, *mean = buf + 2 * d, *sd = buf + 3 * d;
    double *sum = acc, *ss = acc + d;
    /* Two passes in double, like ns_standardizer_fit: the mean, then squared deviations
     * from it, so there is no cancellation; row-major inner loops over features. */
    memcpy(mn, ds->x, d * sizeof *mn);
    memcpy(mx, ds->x, d * sizeof *mx);
    for (long i = 0; i < n; i++) {
        const float *xr = ds->x + (size_t)i * d;
        for (size_t j = 0; j < d; j++) {
            sum[j] += xr[j];
            mn[j] = xr[j] < mn[j] ? xr[j] : mn[j];
            mx[j] = xr[j] > mx[j] ? xr[j] : mx[j];
        }
    }
    for (size_t j = 0; j < d; j++)
        sum[j] /= (double)n;
    for (long i = 0; i < n; i++) {
        const float *xr = ds->x + (size_t)i * d;
        for (size_t j = 0; j < d; j++) {
            double dv = xr[j] - sum[j];
            ss[j] += dv * dv;
        }
    }
    int rc = NS_OK;
    for (size_t j = 0; j < d && !rc; j++) {
        if (!isfinite(sum[j]) || !isfinite(ss[j]) || !isfinite(mn[j]) || !isfinite(mx[j])) {
            rc = ns_err_set(err, NS_EINPUT, "training statistics: feature %zu has a value "
                            "that is not finite after standardisation; check that column of "
                            "the training data", j);
            break;
        }
        /* The mean of values in [min, max] lies there; the clamp only guards the last
         * rounding to float, so the invariant checked on save and load always holds. */
        float m = (float)sum[j];
        mean[j] = m < mn[j] ? mn[j] : m > mx[j] ? mx[j] : m;
        sd[j] = (float)sqrt(ss[j] / (double)n);
    }
    free(acc);
    if (rc) {
        free(buf);
        return rc;
    }
    *fs = (ns_feature_stats){.d = (int)d, .n_rows = n, .min = mn, .max = mx, .mean = mean,
                             .std = sd};
    return NS_OK;
}

void ns_feature_stats_free(ns_feature_stats *fs)
{
    if (!fs)
        return;
    free(fs->min); /* the whole 4d buffer */
    memset(fs, 0, sizeof *fs);
}
