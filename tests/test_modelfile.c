/* test_modelfile.c — the model file: bit-exact round trips (training statistics
 * included), the documented byte layout, version-1 files still loading, and every kind of
 * damage (flipped bytes, truncation at each offset, bad magic, future version, wrong or
 * huge counts, bad statistics) failing cleanly with NS_EINPUT and a zeroed struct. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "model/modelfile.h"
#include "tests/testutil.h"

/* ---- helpers ---------------------------------------------------------------------- */

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    cr_assert_not_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Number of entries in dir (not . and ..); the name of the last one into last. */
static int count_entries(const char *dir, char *last, size_t cap)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "opendir %s: %s", dir, strerror(errno));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        n++;
        if (last)
            snprintf(last, cap, "%s", e->d_name);
    }
    closedir(d);
    return n;
}

/* Removes the files in dir, then dir (tests create no deeper folders). */
static void rm_dir(char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char *p = path_in(dir, e->d_name);
            unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 16);
    cr_assert_not_null(b);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void write_all(const char *path, const void *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "create %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(b, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static uint32_t get32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static void put32(unsigned char *b, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> 8 * i);
}
static uint64_t get64(const unsigned char *b) { return get32(b) | (uint64_t)get32(b + 4) << 32; }
static void put64(unsigned char *b, uint64_t v)
{
    put32(b, (uint32_t)v);
    put32(b + 4, (uint32_t)(v >> 32));
}

/* Rewrites the file-size field and the trailing CRC so that a deliberately edited file
 * gets past the envelope checks and exercises the section checks. */
static void reseal(unsigned char *b, size_t len)
{
    put64(b + 12, len);
    put32(b + len - 4, (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)(len - 4)));
}

static char *dup_str(const char *s)
{
    char *d = strdup(s);
    cr_assert_not_null(d);
    return d;
}

static void fill_stdz(ns_model_file *mf, int d, float t_mean, float t_std)
{
    mf->stdz.d = d;
    mf->stdz.mean = malloc((size_t)d * sizeof(float));
    mf->stdz.scale = malloc((size_t)d * sizeof(float));
    cr_assert(mf->stdz.mean && mf->stdz.scale);
    for (int j = 0; j < d; j++) {
        mf->stdz.mean[j] = -1.5f + 0.37f * (float)j;
        mf->stdz.scale[j] = 1.0f / (0.1f + (float)j);
    }
    mf->stdz.t_mean = t_mean;
    mf->stdz.t_std = t_std;
}

/* Parameters whose bits walk the whole u32 range (NaN payloads, infinities, subnormals,
 * -0): a round trip through any float arithmetic would change some of them. */
static void fill_params(ns_model_file *mf)
{
    mf->params = malloc(mf->n_params * sizeof(float));
    cr_assert_not_null(mf->params);
    for (size_t i = 0; i < mf->n_params; i++) {
        uint32_t u = (uint32_t)(i * 2654435761u) ^ 0x5bd1e995u;
        if (i == 0)
            u = 0x80000000u; /* -0 */
        if (i == 1)
            u = 0x7fc01234u; /* quiet NaN with a payload */
        if (i == 2)
            u = 0x00000001u; /* smallest subnormal */
        memcpy(&mf->params[i], &u, 4);
    }
}

/* Training statistics whose bits are worth checking: -0, a subnormal, a count above
 * 2^32, a constant feature (std 0, min == mean == max). */
static void fill_fstats(ns_model_file *mf, int d)
{
    float *buf = malloc(4 * (size_t)d * sizeof(float));
    cr_assert_not_null(buf);
    ns_feature_stats *fs = &mf->fstats;
    *fs = (ns_feature_stats){.d = d, .n_rows = 0x123456789L, .min = buf, .max = buf + d,
                             .mean = buf + 2 * d, .std = buf + 3 * d};
    for (int j = 0; j < d; j++) {
        fs->min[j] = -2.5f - 0.3f * (float)j;
        fs->max[j] = 3.0f + 0.1f * (float)j;
        fs->mean[j] = 0.1f * (float)j - 0.3f;
        fs->std[j] = 0.9f + 0.01f * (float)j;
    }
    fs->mean[0] = -0.0f;
    uint32_t sub = 1;
    memcpy(&fs->std[1], &sub, 4);
    fs->min[2] = fs->max[2] = fs->mean[2] = 1.75f;
    fs->std[2] = 0.0f;
}

/* 5-7-3-4 GELU classifier; with names also with training statistics (the full file). */
static const char *CLASS_NAMES[] = {"cat", "", "na\xc3\xafve \xc3\xa9t\xc3\xa9", "x y,\"z\""};
static const char *FEATURE_NAMES[] = {"petal length", "f1", "a", "", "sepal width (cm)"};

static void make_classifier(ns_model_file *mf, int names)
{
    memset(mf, 0, sizeof *mf);
    mf->spec = (ns_mlp_spec){.n_in = 5, .n_out = 4, .n_hidden = 2, .hidden = {7, 3},
                             .act = NS_ACT_GELU, .dropout = 0.25f, .init = NS_INIT_XAVIER,
                             .loss = NS_LOSS_XENT, .label_smoothing = 0.1f};
    mf->task = NS_TASK_CLASSIFY;
    mf->n_classes = 4;
    fill_stdz(mf, 5, 0.0f, 1.0f);
    if (names) {
        mf->class_names = calloc(4, sizeof(char *));
        mf->feature_names = calloc(5, sizeof(char *));
        cr_assert(mf->class_names && mf->feature_names);
        for (int i = 0; i < 4; i++)
            mf->class_names[i] = dup_str(CLASS_NAMES[i]);
        for (int i = 0; i < 5; i++)
            mf->feature_names[i] = dup_str(FEATURE_NAMES[i]);
        mf->label_name = dup_str("kind");
        fill_fstats(mf, 5);
    }
    mf->config_hash = 0xdeadbeefcafebabeull;
    mf->seed = 0x8000000000000005ull;
    snprintf(mf->tool_version, sizeof mf->tool_version, "nnsearch 0.1.0");
    mf->n_params = 7 * 5 + 7 + 3 * 7 + 3 + 4 * 3 + 4; /* 82 */
    fill_params(mf);
}

/* 3-4-2-1 tanh regressor, no names. */
static void make_regressor(ns_model_file *mf)
{
    memset(mf, 0, sizeof *mf);
    mf->spec = (ns_mlp_spec){.n_in = 3, .n_out = 1, .n_hidden = 2, .hidden = {4, 2},
                             .act = NS_ACT_TANH, .dropout = 0.0f, .init = NS_INIT_HE,
                             .loss = NS_LOSS_MSE, .label_smoothing = 0.0f};
    mf->task = NS_TASK_REGRESS;
    mf->n_classes = 0;
    fill_stdz(mf, 3, 3.5f, 2.25f);
    mf->config_hash = 1;
    mf->seed = 0;
    snprintf(mf->tool_version, sizeof mf->tool_version, "0.1.0-dev+g1234567");
    mf->n_params = 4 * 3 + 4 + 2 * 4 + 2 + 1 * 2 + 1; /* 29 */
    fill_params(mf);
}

static int bits_equal(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

static void assert_same(const ns_model_file *a, const ns_model_file *b)
{
    cr_assert_eq(a->spec.n_in, b->spec.n_in);
    cr_assert_eq(a->spec.n_out, b->spec.n_out);
    cr_assert_eq(a->spec.n_hidden, b->spec.n_hidden);
    for (int l = 0; l < NS_MAX_HIDDEN; l++)
        cr_assert_eq(a->spec.hidden[l], b->spec.hidden[l], "hidden[%d]", l);
    cr_assert_eq(a->spec.act, b->spec.act);
    cr_assert(bits_equal(a->spec.dropout, b->spec.dropout));
    cr_assert_eq(a->spec.init, b->spec.init);
    cr_assert_eq(a->spec.loss, b->spec.loss);
    cr_assert(bits_equal(a->spec.label_smoothing, b->spec.label_smoothing));
    cr_assert_eq(a->task, b->task);
    cr_assert((!a->label_name && !b->label_name) ||
              (a->label_name && b->label_name && !strcmp(a->label_name, b->label_name)));
    cr_assert_eq(a->n_classes, b->n_classes);
    cr_assert_eq(a->stdz.d, b->stdz.d);
    for (int j = 0; j < a->stdz.d; j++) {
        cr_assert(bits_equal(a->stdz.mean[j], b->stdz.mean[j]), "mean[%d]", j);
        cr_assert(bits_equal(a->stdz.scale[j], b->stdz.scale[j]), "scale[%d]", j);
    }
    cr_assert(bits_equal(a->stdz.t_mean, b->stdz.t_mean));
    cr_assert(bits_equal(a->stdz.t_std, b->stdz.t_std));
    cr_assert_eq(a->class_names == NULL, b->class_names == NULL);
    for (int i = 0; a->class_names && i < a->n_classes; i++)
        cr_assert_str_eq(a->class_names[i], b->class_names[i]);
    cr_assert_eq(a->feature_names == NULL, b->feature_names == NULL);
    for (int i = 0; a->feature_names && i < a->spec.n_in; i++)
        cr_assert_str_eq(a->feature_names[i], b->feature_names[i]);
    cr_assert_eq(a->fstats.d, b->fstats.d);
    cr_assert_eq(a->fstats.n_rows, b->fstats.n_rows);
    cr_assert_eq(a->fstats.min == NULL, b->fstats.min == NULL);
    for (int j = 0; j < a->fstats.d; j++) {
        cr_assert(bits_equal(a->fstats.min[j], b->fstats.min[j]), "stats min[%d]", j);
        cr_assert(bits_equal(a->fstats.max[j], b->fstats.max[j]), "stats max[%d]", j);
        cr_assert(bits_equal(a->fstats.mean[j], b->fstats.mean[j]), "stats mean[%d]", j);
        cr_assert(bits_equal(a->fstats.std[j], b->fstats.std[j]), "stats std[%d]", j);
    }
    cr_assert_eq(a->config_hash, b->config_hash);
    cr_assert_eq(a->seed, b->seed);
    cr_assert_str_eq(a->tool_version, b->tool_version);
    cr_assert_eq(a->n_params, b->n_params);
    cr_assert_eq(memcmp(a->params, b->params, a->n_params * sizeof(float)), 0,
                 "parameters differ bit-wise");
}

static void assert_zeroed(const ns_model_file *mf)
{
    static const ns_model_file zero;
    cr_assert_eq(memcmp(mf, &zero, sizeof zero), 0, "a failed load must leave *mf zeroed");
}

/* Saves mf to dir/m.nsm and returns the bytes. */
static unsigned char *saved_bytes(const char *dir, const ns_model_file *mf, size_t *len)
{
    char *p = path_in(dir, "m.nsm");
    ns_err err = {0};
    cr_assert_eq(ns_model_save(p, mf, &err), NS_OK, "%s", err.msg);
    unsigned char *b = read_all(p, len);
    free(p);
    return b;
}

/* Writes b to dir/bad.nsm and loads it; fills err; asserts the failure is clean. */
static int load_bytes(const char *dir, const unsigned char *b, size_t len, ns_err *err)
{
    char *p = path_in(dir, "bad.nsm");
    write_all(p, b, len);
    ns_model_file mf;
    memset(&mf, 0xab, sizeof mf); /* load must not depend on what was there */
    *err = (ns_err){0};
    int rc = ns_model_load(p, &mf, err);
    if (rc != NS_OK) {
        assert_zeroed(&mf);
        cr_assert(strncmp(err->msg, p, strlen(p)) == 0, "error does not name the file: %s",
                  err->msg);
        cr_assert(strchr(err->msg, '\n') == NULL, "error is not one line: %s", err->msg);
    }
    ns_model_file_free(&mf);
    unlink(p);
    free(p);
    return rc;
}

/* Offsets of the sections for a model with nh hidden layers and d inputs, with (st 1) or
 * without training statistics. */
#define OFF_ARCH 20
static size_t off_prep(int nh) { return OFF_ARCH + 40 + 4 * (size_t)nh; }
static size_t off_stats(int nh, int d) { return off_prep(nh) + 4 + 8 * (size_t)d + 8; }
static size_t stats_bytes(int d, int st) { return 4 + (st ? 8 + 16 * (size_t)d : 0); }
static size_t off_names(int nh, int d, int st) { return off_stats(nh, d) + stats_bytes(d, st); }

/* The version-1 form of a version-2 file: the same bytes without the training-statistics
 * section (whose size st says), version 1, resealed. Returns the new length. */
static size_t to_v1(unsigned char *b, size_t len, int nh, int d, int st)
{
    size_t at = off_stats(nh, d), cut = stats_bytes(d, st);
    memmove(b + at, b + at + cut, len - at - cut);
    len -= cut;
    put32(b + 8, 1);
    reseal(b, len);
    return len;
}

/* ---- round trips ------------------------------------------------------------------ */

Test(modelfile, roundtrip_with_names)
{
    char *dir = tu_temp_dir();
    char *p = path_in(dir, "m.nsm");
    ns_model_file a, b;
    ns_err err = {0};
    make_classifier(&a, 1);
    cr_assert_eq(ns_model_save(p, &a, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_model_load(p, &b, &err), NS_OK, "%s", err.msg);
    assert_same(&a, &b);

    /* The layout of docs/model-format.md, byte for byte where it is cheap to check. */
    size_t len;
    unsigned char *f = read_all(p, &len);
    size_t names = 4, tool = strlen(a.tool_version);
    for (int i = 0; i < 4; i++)
        names += 4 + strlen(CLASS_NAMES[i]);
    names += 4;
    for (int i = 0; i < 5; i++)
        names += 4 + strlen(FEATURE_NAMES[i]);
    names += 4 + strlen("kind"); /* label column name */
    size_t want = off_names(2, 5, 1) + names + 8 + 8 + 4 + tool + 8 + 4 * a.n_params + 4;
    cr_assert_eq(len, want, "file is %zu bytes, the documented layout gives %zu", len, want);
    cr_assert_eq(memcmp(f, "NSMODEL\0", 8), 0);
    cr_assert_eq(get32(f + 8), NS_MODEL_VERSION);
    cr_assert_eq(get64(f + 12), len);
    cr_assert_eq(get32(f + OFF_ARCH), 5);       /* n_in */
    cr_assert_eq(get32(f + OFF_ARCH + 8), 2);   /* n_hidden */
    cr_assert_eq(get32(f + OFF_ARCH + 12), 7);  /* hidden[0] */
    cr_assert_eq(get32(f + OFF_ARCH + 20), NS_ACT_GELU);
    cr_assert_eq(get32(f + OFF_ARCH + 24), 0x3e800000u); /* dropout 0.25 */
    cr_assert_eq(get32(f + 8), 2);
    const size_t S = off_stats(2, 5); /* training statistics: count, rows, min, max, ... */
    cr_assert_eq(get32(f + S), 5);
    cr_assert_eq(get64(f + S + 4), 0x123456789ull);
    cr_assert_eq(get32(f + S + 12), 0xc0200000u);          /* min[0] = -2.5 */
    cr_assert_eq(get32(f + S + 12 + 20), 0x40400000u);     /* max[0] = 3 */
    cr_assert_eq(get32(f + S + 12 + 40), 0x80000000u);     /* mean[0] = -0 */
    cr_assert_eq(get32(f + S + 12 + 60 + 4), 1u);          /* std[1], a subnormal */
    cr_assert_eq(get32(f + off_names(2, 5, 1)), 4);        /* class names */
    cr_assert_eq(get64(f + len - 4 - 4 * a.n_params - 8), a.n_params);
    cr_assert_eq(get32(f + len - 4), (uint32_t)crc32(crc32(0L, Z_NULL, 0), f, (uInt)(len - 4)));
    free(f);

    ns_model_file_free(&a);
    ns_model_file_free(&b);
    free(p);
    rm_dir(dir);
}

Test(modelfile, roundtrip_without_names)
{
    char *dir = tu_temp_dir();
    char *p = path_in(dir, "m.nsm");
    ns_model_file a, b;
    ns_err err = {0};
    make_classifier(&a, 0);
    cr_assert_eq(ns_model_save(p, &a, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_model_load(p, &b, &err), NS_OK, "%s", err.msg);
    assert_same(&a, &b);
    cr_assert_null(b.class_names);
    cr_assert_null(b.feature_names);
    ns_model_file_free(&a);
    ns_model_file_free(&b);

    make_regressor(&a);
    cr_assert_eq(ns_model_save(p, &a, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_model_load(p, &b, &err), NS_OK, "%s", err.msg);
    assert_same(&a, &b);
    ns_model_file_free(&a);
    ns_model_file_free(&b);
    free(p);
    rm_dir(dir);
}

Test(modelfile, roundtrip_no_hidden_layer)
{
    char *dir = tu_temp_dir();
    char *p = path_in(dir, "m.nsm");
    ns_model_file a, b;
    ns_err err = {0};
    make_regressor(&a);
    free(a.params);
    a.spec.n_hidden = 0;
    a.spec.hidden[0] = a.spec.hidden[1] = 0;
    a.n_params = 3 + 1;
    fill_params(&a);
    cr_assert_eq(ns_model_save(p, &a, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_model_load(p, &b, &err), NS_OK, "%s", err.msg);
    assert_same(&a, &b);
    ns_model_file_free(&a);
    ns_model_file_free(&b);
    free(p);
    rm_dir(dir);
}

/* The sizes docs/model-format.md gives: 136 bytes for the smallest file (1 input,
 * 1 output, no hidden layer, no names, empty tool version, no statistics), 160 with
 * statistics (12 + 16d more). */
Test(modelfile, smallest_file_sizes_match_the_docs)
{
    char *dir = tu_temp_dir();
    ns_model_file a;
    make_regressor(&a);
    free(a.params);
    ns_standardizer_free(&a.stdz);
    a.spec = (ns_mlp_spec){.n_in = 1, .n_out = 1, .loss = NS_LOSS_MSE};
    fill_stdz(&a, 1, 0.0f, 1.0f);
    a.tool_version[0] = '\0';
    a.n_params = 2;
    fill_params(&a);
    size_t len;
    unsigned char *b = saved_bytes(dir, &a, &len);
    cr_assert_eq(len, 136);
    free(b);
    a.fstats = (ns_feature_stats){.d = 1, .n_rows = 1, .min = calloc(4, sizeof(float))};
    cr_assert_not_null(a.fstats.min);
    a.fstats.max = a.fstats.min + 1;
    a.fstats.mean = a.fstats.min + 2;
    a.fstats.std = a.fstats.min + 3;
    b = saved_bytes(dir, &a, &len);
    cr_assert_eq(len, 136 + 8 + 16);
    free(b);
    ns_model_file_free(&a);
    rm_dir(dir);
}

/* ---- version 1 ---------------------------------------------------------------------- */

/* A version-1 file is a version-2 file without the statistics section: it loads, with the
 * statistics absent and everything else the same. */
Test(modelfile, version1_bytes_load_without_statistics)
{
    char *dir = tu_temp_dir();
    for (int st = 0; st <= 1; st++) {
        ns_model_file a, b;
        make_classifier(&a, st); /* names and statistics, or neither */
        cr_assert_eq(a.fstats.d, st ? 5 : 0);
        size_t len;
        unsigned char *f = saved_bytes(dir, &a, &len);
        cr_assert_eq(get32(f + off_stats(2, 5)), st ? 5u : 0u);
        unsigned char *v2 = malloc(len);
        cr_assert_not_null(v2);
        memcpy(v2, f, len);
        size_t n1 = to_v1(f, len, 2, 5, st);
        cr_assert_eq(n1, len - stats_bytes(5, st));
        char *p = path_in(dir, "v1.nsm");
        write_all(p, f, n1);
        ns_err err = {0};
        cr_assert_eq(ns_model_load(p, &b, &err), NS_OK, "st %d: %s", st, err.msg);
        ns_feature_stats_free(&a.fstats);
        assert_same(&a, &b);
        cr_assert_eq(b.fstats.d, 0);
        cr_assert_eq(b.fstats.n_rows, 0);
        cr_assert_null(b.fstats.min);
        ns_model_file_free(&b);

        /* Version 1 keeps the version-1 damage checks: any cut or flipped byte fails. */
        for (size_t k = 0; k < n1; k++) {
            cr_assert_eq(load_bytes(dir, f, k, &err), NS_EINPUT, "v1 cut at %zu", k);
            f[k] ^= 0xff;
            cr_assert_eq(load_bytes(dir, f, n1, &err), NS_EINPUT, "v1 flip at %zu", k);
            f[k] ^= 0xff;
        }
        /* A version-2 body labelled version 1 is refused: the statistics section is not
         * skipped or guessed at, it breaks the version-1 layout. */
        memcpy(f, v2, len);
        put32(f + 8, 1);
        reseal(f, len);
        cr_assert_eq(load_bytes(dir, f, len, &err), NS_EINPUT, "st %d: v2 body as v1", st);
        free(f);
        free(v2);
        free(p);
        ns_model_file_free(&a);
    }
    rm_dir(dir);
}

/* A file written by the version-1 writer (nnsearch 0.1.0 before this format change:
 * `nnsearch train configs/tiny-train.yaml -o tests/data/tiny-v1.nsm`). */
Test(modelfile, version1_file_from_the_old_writer_loads)
{
    const char *p = NS_SOURCE_DIR "/tests/data/tiny-v1.nsm";
    size_t len;
    unsigned char *f = read_all(p, &len);
    cr_assert_eq(get32(f + 8), 1, "the fixture is not a version-1 file");
    free(f);
    ns_model_file mf;
    ns_err err = {0};
    cr_assert_eq(ns_model_load(p, &mf, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(mf.spec.n_in, 8);
    cr_assert_eq(mf.spec.n_out, 3);
    cr_assert_eq(mf.spec.n_hidden, 2);
    cr_assert_eq(mf.spec.hidden[0], 32);
    cr_assert_eq(mf.n_params, (size_t)(8 * 32 + 32 + 32 * 16 + 16 + 16 * 3 + 3));
    cr_assert_not_null(mf.feature_names);
    cr_assert_str_eq(mf.feature_names[2], "f3");
    cr_assert_str_eq(mf.class_names[1], "beta");
    cr_assert_str_eq(mf.label_name, "label");
    cr_assert_eq(mf.fstats.d, 0);
    cr_assert_null(mf.fstats.min);
    ns_model_file_free(&mf);
}

/* Every byte of a full version-2 file replaced by 0x00 and by 0xff, the file resealed so
 * the section checks (statistics included) see it: each load either succeeds (the value
 * happened to stay valid) or fails cleanly; and a bad value in the statistics is caught. */
Test(modelfile, resealed_damage_at_every_offset_is_clean)
{
    char *dir = tu_temp_dir();
    ns_model_file a;
    make_classifier(&a, 1);
    size_t len;
    unsigned char *b = saved_bytes(dir, &a, &len);
    unsigned char *c = malloc(len);
    cr_assert_not_null(c);
    const size_t S = off_stats(2, 5), S_END = S + stats_bytes(5, 1);
    int stats_refused = 0;
    ns_err err;
    for (size_t i = 20; i < len - 4; i++)
        for (int v = 0; v <= 0xff; v += 0xff) {
            memcpy(c, b, len);
            c[i] = (unsigned char)v;
            reseal(c, len);
            int rc = load_bytes(dir, c, len, &err);
            cr_assert(rc == NS_OK || rc == NS_EINPUT, "byte %zu = %d: rc %d", i, v, rc);
            if (rc == NS_EINPUT && i >= S && i < S_END && strstr(err.msg, "training"))
                stats_refused++;
        }
    /* 35 of the 184 changes today, e.g. 0xff in a value's top byte makes it NaN or
     * negative; the rest leave valid statistics (or are refused by a later section). */
    cr_assert_geq(stats_refused, 30, "only %d damaged statistics bytes were refused",
                  stats_refused);
    free(c);
    free(b);
    ns_model_file_free(&a);
    rm_dir(dir);
}

/* ---- saving ----------------------------------------------------------------------- */

Test(modelfile, atomic_save_leaves_no_temp_files)
{
    char *dir = tu_temp_dir();
    char *p = path_in(dir, "m.nsm");
    ns_model_file a, r, b;
    ns_err err = {0};
    make_classifier(&a, 1);
    make_regressor(&r);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(ns_model_save(p, i % 2 ? &r : &a, &err), NS_OK, "%s", err.msg);
        char last[256] = "";
        cr_assert_eq(count_entries(dir, last, sizeof last), 1, "save %d left extra files", i);
        cr_assert_str_eq(last, "m.nsm");
    }
    /* The last save (of a) replaced the regressor completely. */
    cr_assert_eq(ns_model_load(p, &b, &err), NS_OK, "%s", err.msg);
    assert_same(&a, &b);

    /* Permissions follow the umask like any other output, not mkstemp's 0600. */
    mode_t um = umask(022);
    umask(um);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0666 & ~um, "mode %o", (unsigned)(st.st_mode & 0777));

    ns_model_file_free(&a);
    ns_model_file_free(&r);
    ns_model_file_free(&b);
    free(p);
    rm_dir(dir);
}

Test(modelfile, save_into_missing_folder_fails_and_leaves_nothing)
{
    char *dir = tu_temp_dir();
    char *p = path_in(dir, "no/such/m.nsm");
    ns_model_file a;
    ns_err err = {0};
    make_classifier(&a, 1);
    cr_assert_eq(ns_model_save(p, &a, &err), NS_ERUNTIME);
    cr_assert(strstr(err.msg, strerror(ENOENT)), "%s", err.msg);
    cr_assert(strncmp(err.msg, p, strlen(p)) == 0, "%s", err.msg);
    cr_assert_eq(count_entries(dir, NULL, 0), 0);
    ns_model_file_free(&a);
    free(p);
    rm_dir(dir);
}

Test(modelfile, save_refuses_inconsistent_model)
{
    char *dir = tu_temp_dir();
    char *p = path_in(dir, "m.nsm");
    ns_err err = {0};
    ns_model_file a;
    make_classifier(&a, 1);

    a.n_params--; /* wrong parameter count */
    cr_assert_eq(ns_model_save(p, &a, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "82 parameters"), "%s", err.msg);
    a.n_params++;

    a.n_classes = 3; /* classes != outputs */
    cr_assert_eq(ns_model_save(p, &a, &err), NS_EINPUT);
    a.n_classes = 4;

    a.stdz.d = 4;
    cr_assert_eq(ns_model_save(p, &a, &err), NS_EINPUT);
    a.stdz.d = 5;

    a.spec.act = (ns_act)17;
    cr_assert_eq(ns_model_save(p, &a, &err), NS_EINPUT);
    a.spec.act = NS_ACT_RELU;

    a.spec.dropout = NAN;
    cr_assert_eq(ns_model_save(p, &a, &err), NS_EINPUT);
    a.spec.dropout = 0;

    a.fstats.d = 4; /* statistics for another input count */
    cr_assert_eq(ns_model_save(p, &a, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "training statistics have d = 4"), "%s", err.msg);
    a.fstats.d = 5;

    a.fstats.n_rows = 0;
    cr_assert_eq(ns_model_save(p, &a, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "summarise 0 rows"), "%s", err.msg);
    a.fstats.n_rows = 10;

    a.fstats.std[3] = -1.0f;
    cr_assert_eq(ns_model_save(p, &a, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "training std of feature 3"), "%s", err.msg);
    a.fstats.std[3] = 1.0f;

    a.fstats.mean[1] = a.fstats.max[1] + 1.0f; /* outside the training range */
    cr_assert_eq(ns_model_save(p, &a, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "training mean of feature 1"), "%s", err.msg);
    a.fstats.mean[1] = a.fstats.min[1];

    memset(a.tool_version, 'v', sizeof a.tool_version); /* not terminated */
    cr_assert_eq(ns_model_save(p, &a, &err), NS_EINPUT);
    a.tool_version[0] = '\0';

    cr_assert_eq(count_entries(dir, NULL, 0), 0, "a refused save created a file");
    cr_assert_eq(ns_model_save(p, &a, &err), NS_OK, "%s", err.msg);
    ns_model_file_free(&a);
    free(p);
    rm_dir(dir);
}

/* ---- damage ----------------------------------------------------------------------- */

Test(modelfile, flipped_byte_is_a_checksum_mismatch)
{
    char *dir = tu_temp_dir();
    ns_model_file a;
    make_classifier(&a, 1);
    size_t len;
    unsigned char *b = saved_bytes(dir, &a, &len);
    ns_err err;

    b[len / 2] ^= 0x10;
    cr_assert_eq(load_bytes(dir, b, len, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "checksum mismatch: the file is corrupt"), "%s", err.msg);
    b[len / 2] ^= 0x10;

    /* Every single-byte change anywhere fails cleanly; past the header it is always
     * reported as a checksum mismatch, whichever field it hit. */
    for (size_t i = 0; i < len; i++) {
        b[i] ^= 0xff;
        cr_assert_eq(load_bytes(dir, b, len, &err), NS_EINPUT, "flip at %zu: %s", i, err.msg);
        if (i >= 20)
            cr_assert(strstr(err.msg, "checksum mismatch"), "flip at %zu: %s", i, err.msg);
        b[i] ^= 0xff;
    }
    cr_assert_eq(load_bytes(dir, b, len, &err), NS_OK, "%s", err.msg);
    free(b);
    ns_model_file_free(&a);
    rm_dir(dir);
}

Test(modelfile, truncation_at_every_offset)
{
    char *dir = tu_temp_dir();
    ns_model_file a;
    make_classifier(&a, 1);
    size_t len;
    unsigned char *b = saved_bytes(dir, &a, &len);
    ns_err err;
    for (size_t n = 0; n < len; n++) {
        cr_assert_eq(load_bytes(dir, b, n, &err), NS_EINPUT, "cut at %zu: %s", n, err.msg);
        char want[96];
        if (n >= 20)
            snprintf(want, sizeof want, "file ends at byte %zu, expected %zu", n, len);
        else
            snprintf(want, sizeof want, "file ends at byte %zu, expected at least 20", n);
        cr_assert(strstr(err.msg, want), "cut at %zu: %s", n, err.msg);
    }
    free(b);
    ns_model_file_free(&a);
    rm_dir(dir);
}

Test(modelfile, trailing_garbage)
{
    char *dir = tu_temp_dir();
    ns_model_file a;
    make_regressor(&a);
    size_t len;
    unsigned char *b = saved_bytes(dir, &a, &len);
    ns_err err;
    b[len] = '\n';
    cr_assert_eq(load_bytes(dir, b, len + 1, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "1 unexpected bytes after the end"), "%s", err.msg);

    /* Also inside a resealed file: bytes between the parameters and the checksum. */
    unsigned char *c = malloc(len + 8);
    memcpy(c, b, len - 4);
    memset(c + len - 4, 0, 8);
    reseal(c, len + 4);
    cr_assert_eq(load_bytes(dir, c, len + 4, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "between the parameters and the checksum"), "%s", err.msg);
    free(c);
    free(b);
    ns_model_file_free(&a);
    rm_dir(dir);
}

Test(modelfile, bad_magic)
{
    char *dir = tu_temp_dir();
    ns_model_file a;
    make_regressor(&a);
    size_t len;
    unsigned char *b = saved_bytes(dir, &a, &len);
    ns_err err;
    b[1] = 's';
    cr_assert_eq(load_bytes(dir, b, len, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "byte 0: not an nnsearch model file"), "%s", err.msg);

    const char csv[] = "sepal_length,sepal_width,species\n5.1,3.5,setosa\n";
    cr_assert_eq(load_bytes(dir, (const unsigned char *)csv, sizeof csv - 1, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "not an nnsearch model file"), "%s", err.msg);
    free(b);
    ns_model_file_free(&a);
    rm_dir(dir);
}

Test(modelfile, future_version)
{
    char *dir = tu_temp_dir();
    ns_model_file a;
    make_regressor(&a);
    size_t len;
    unsigned char *b = saved_bytes(dir, &a, &len);
    ns_err err;
    put32(b + 8, NS_MODEL_VERSION + 1);
    reseal(b, len);
    cr_assert_eq(load_bytes(dir, b, len, &err), NS_EINPUT);
    char want[128];
    snprintf(want, sizeof want, "byte 8: model format version %d, but this build of nnsearch "
             "reads versions 1 to %d", NS_MODEL_VERSION + 1, NS_MODEL_VERSION);
    cr_assert(strstr(err.msg, want), "%s", err.msg);
    cr_assert(strstr(err.msg, "use the newer nnsearch"), "%s", err.msg);
    cr_assert_eq(NS_MODEL_VERSION, 2);

    put32(b + 8, 0); /* below every version: damage, not a newer writer */
    reseal(b, len);
    cr_assert_eq(load_bytes(dir, b, len, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "model format version 0"), "%s", err.msg);
    cr_assert(strstr(err.msg, "the file is corrupt"), "%s", err.msg);
    free(b);
    ns_model_file_free(&a);
    rm_dir(dir);
}

Test(modelfile, wrong_parameter_count)
{
    char *dir = tu_temp_dir();
    ns_model_file a;
    make_regressor(&a); /* 29 parameters */
    size_t len;
    unsigned char *b = saved_bytes(dir, &a, &len);
    size_t at = len - 4 - 4 * 29 - 8; /* the u64 count */
    ns_err err;

    /* One parameter too many, and the bytes for it: consistent but wrong for 3-4-2-1. */
    unsigned char *c = malloc(len + 4);
    memcpy(c, b, len - 4);
    put64(c + at, 30);
    memset(c + len - 4, 0, 4);
    reseal(c, len + 4);
    cr_assert_eq(load_bytes(dir, c, len + 4, &err), NS_EINPUT);
    char want[128];
    snprintf(want, sizeof want, "byte %zu: parameter count is 30 but the 3-4-2-1 architecture "
             "has 29", at);
    cr_assert(strstr(err.msg, want), "%s", err.msg);

    /* One too few. */
    memcpy(c, b, len - 8);
    put64(c + at, 28);
    reseal(c, len - 4);
    cr_assert_eq(load_bytes(dir, c, len - 4, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "parameter count is 28"), "%s", err.msg);
    free(c);
    free(b);
    ns_model_file_free(&a);
    rm_dir(dir);
}

/* Count and enum fields set to absurd values in an otherwise valid (resealed) file: each
 * is refused at its own offset, before anything is allocated for it. */
Test(modelfile, huge_and_out_of_range_fields)
{
    char *dir = tu_temp_dir();
    ns_model_file a;
    make_classifier(&a, 1);
    size_t len;
    unsigned char *b = saved_bytes(dir, &a, &len);
    unsigned char *c = malloc(len);
    const size_t P = off_prep(2), S = off_stats(2, 5), N = off_names(2, 5, 1);
    const size_t SA = S + 12; /* the statistics arrays: min, max, mean, std of 5 features */
    size_t F = N + 4, fnames = 0; /* F: the feature-name count */
    for (int i = 0; i < 4; i++)
        F += 4 + strlen(CLASS_NAMES[i]);
    for (int i = 0; i < 5; i++)
        fnames += 4 + strlen(FEATURE_NAMES[i]);
    const size_t T = F + 4 + fnames + 4 + strlen("kind") + 16; /* tool-version length */
    const size_t NP = len - 4 - 4 * a.n_params - 8;
    cr_assert_eq(get32(b + F), 5, "feature-name count not where the layout says");
    cr_assert_eq(get32(b + T), strlen(a.tool_version));
    const struct {
        size_t off;
        int wide; /* u64 field */
        uint64_t v;
        const char *expect;
    } cases[] = {
        {OFF_ARCH + 0, 0, 0xffffffffu, "input count n_in"},
        {OFF_ARCH + 0, 0, 0, "input count n_in"},
        {OFF_ARCH + 4, 0, 0x80000000u, "output count n_out"},
        {OFF_ARCH + 8, 0, 0xffffffffu, "hidden layer count"},
        {OFF_ARCH + 8, 0, NS_MAX_HIDDEN + 1, "hidden layer count"},
        {OFF_ARCH + 12, 0, 0xffffffffu, "hidden layer width"},
        {OFF_ARCH + 16, 0, 0, "hidden layer width"},
        {OFF_ARCH + 20, 0, 99, "activation code"},
        {OFF_ARCH + 24, 0, 0x7fc00000u, "dropout"},
        {OFF_ARCH + 24, 0, 0x3f800000u, "dropout"}, /* 1.0 */
        {OFF_ARCH + 28, 0, 2, "init code"},
        {OFF_ARCH + 32, 0, 0xffffffffu, "loss code"},
        {OFF_ARCH + 36, 0, 0xbf800000u, "label smoothing"}, /* -1.0 */
        {OFF_ARCH + 40, 0, 7, "task code"},
        {OFF_ARCH + 40, 0, NS_TASK_REGRESS, "regression model with the cross-entropy"},
        {OFF_ARCH + 44, 0, 0xffffffffu, "class count"},
        {OFF_ARCH + 44, 0, 3, "class count"},
        {P, 0, 0xffffffffu, "standardizer size"},
        {P + 4, 0, 0x7f800000u, "mean of feature 0"},   /* +inf */
        {P + 4 + 20, 0, 0xffc00000u, "scale of feature 0"}, /* NaN */
        {P + 44, 0, 0x7f800000u, "target mean"},        /* +inf */
        {P + 48, 0, 0, "target std"},
        {S, 0, 0xffffffffu, "training statistics count is"},
        {S, 0, 4, "training statistics count is 4; it must be 0 or 5"},
        {S + 4, 1, 0, "training row count is 0"},
        {S + 4, 1, (uint64_t)INT64_MAX + 1, "training row count is"},
        {SA + 4 * 3, 0, 0x7fc00000u, "training minimum of feature 3 is not finite"},
        {SA + 20 + 4 * 0, 0, 0xff800000u, "training maximum of feature 0"},   /* -inf */
        {SA + 20 + 4 * 1, 0, 0xc0400000u, "training maximum of feature 1"},   /* -3 < min */
        {SA + 40 + 4 * 4, 0, 0x41200000u, "training mean of feature 4"},      /* 10 > max */
        {SA + 40 + 4 * 2, 0, 0x3fe00001u, "training mean of feature 2"},      /* > the constant */
        {SA + 60 + 4 * 2, 0, 0xbf800000u, "training std of feature 2"},       /* -1 */
        {SA + 60 + 4 * 4, 0, 0x7f800000u, "training std of feature 4"},       /* +inf */
        {N, 0, 0xffffffffu, "class names count"},
        {N, 0, 2, "class names count"},
        {N + 4, 0, 0xffffffffu, "class names is"},
        {N + 4, 0, NS_MODEL_MAX_NAME, "class names needs 4096 bytes"},
        {F, 0, 0xffffffffu, "feature names count"},
        {F + 4, 0, 0x7ffffff0u, "feature names is"},
        {T, 0, 0xffffffffu, "tool version is"},
        {T, 0, 32, "tool version is"},
        {NP, 1, UINT64_MAX, "parameter count is"},
        {NP, 1, (uint64_t)1 << 62, "parameter count is"},
        {NP, 1, 0, "parameter count is"},
    };
    ns_err err;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memcpy(c, b, len);
        if (cases[k].wide)
            put64(c + cases[k].off, cases[k].v);
        else
            put32(c + cases[k].off, (uint32_t)cases[k].v);
        reseal(c, len);
        cr_assert_eq(load_bytes(dir, c, len, &err), NS_EINPUT, "case %zu: %s", k, err.msg);
        cr_assert(strstr(err.msg, cases[k].expect), "case %zu: %s", k, err.msg);
        char at[48];
        snprintf(at, sizeof at, ": byte %zu: ", cases[k].off);
        cr_assert(strstr(err.msg, at), "case %zu: wrong offset: %s", k, err.msg);
    }

    /* Counts within the limits but larger than the file: refused against the bytes left. */
    memcpy(c, b, len);
    put32(c + OFF_ARCH, NS_MODEL_MAX_DIM);
    put32(c + P, NS_MODEL_MAX_DIM);
    reseal(c, len);
    cr_assert_eq(load_bytes(dir, c, len, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "standardizer statistics needs"), "%s", err.msg);

    /* A resealed file that ends inside the statistics: refused at their count, before
     * anything is allocated for them. */
    memcpy(c, b, S + 22);
    reseal(c, S + 22 + 4);
    cr_assert_eq(load_bytes(dir, c, S + 22 + 4, &err), NS_EINPUT);
    char want[128];
    snprintf(want, sizeof want, "byte %zu: training statistics needs 88 bytes but only 18 "
             "remain", S);
    cr_assert(strstr(err.msg, want), "%s", err.msg);

    /* A NUL byte inside a name. */
    memcpy(c, b, len);
    c[N + 4 + 4 + 1] = '\0'; /* inside "cat" */
    reseal(c, len);
    cr_assert_eq(load_bytes(dir, c, len, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "contains a NUL byte"), "%s", err.msg);

    free(c);
    free(b);
    ns_model_file_free(&a);
    rm_dir(dir);
}

/* ---- loading odds and ends -------------------------------------------------------- */

Test(modelfile, load_missing_file_and_folder)
{
    char *dir = tu_temp_dir();
    char *p = path_in(dir, "none.nsm");
    ns_model_file mf;
    ns_err err = {0};
    cr_assert_eq(ns_model_load(p, &mf, &err), NS_EINPUT); /* a wrong path: the user's to fix */
    cr_assert(strstr(err.msg, strerror(ENOENT)), "%s", err.msg);
    assert_zeroed(&mf);
    cr_assert_eq(ns_model_load(dir, &mf, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "not a regular file"), "%s", err.msg);
    assert_zeroed(&mf);
    free(p);
    rm_dir(dir);
}

Test(modelfile, free_is_safe)
{
    ns_model_file mf;
    memset(&mf, 0, sizeof mf);
    ns_model_file_free(&mf);
    ns_model_file_free(&mf);
    ns_model_file_free(NULL);
    make_classifier(&mf, 1);
    ns_model_file_free(&mf);
    assert_zeroed(&mf);
    ns_model_file_free(&mf);
}

/* ---- ensemble files --------------------------------------------------------------- */

/* Member v of a test ensemble: the full classifier, each with its own weights (bits
 * XOR v), standardisation and training statistics; member 2 also with other widths. */
static void make_member(ns_model_file *mf, int v)
{
    make_classifier(mf, 1);
    if (v == 2) {
        free(mf->params);
        mf->spec.n_hidden = 1;
        mf->spec.hidden[0] = 4;
        mf->spec.hidden[1] = 0;
        mf->n_params = 4 * 5 + 4 + 4 * 4 + 4; /* 44 */
        fill_params(mf);
    }
    for (size_t i = 0; i < mf->n_params; i++) {
        uint32_t u;
        memcpy(&u, &mf->params[i], 4);
        u ^= (uint32_t)v * 0x01010101u;
        memcpy(&mf->params[i], &u, 4);
    }
    for (int j = 0; j < 5; j++) {
        mf->stdz.mean[j] += (float)v;
        mf->stdz.scale[j] *= 1.0f + (float)v;
        mf->fstats.max[j] += (float)v;
    }
    mf->fstats.n_rows += v;
    mf->seed += (uint64_t)v;
}

static void make_members(ns_model_file *m, int n)
{
    for (int i = 0; i < n; i++)
        make_member(&m[i], i);
}

static void free_members(ns_model_file *m, int n)
{
    for (int i = 0; i < n; i++)
        ns_model_file_free(&m[i]);
}

/* The ensemble layout of docs/model-format.md written out independently of the code under
 * test: header, then per member its u64 length and bytes, then the CRC. */
static unsigned char *build_ensemble(unsigned char *const *parts, const size_t *lens, int n,
                                     size_t *len)
{
    size_t total = 24 + 4;
    for (int i = 0; i < n; i++)
        total += 8 + lens[i];
    unsigned char *b = malloc(total + 16);
    cr_assert_not_null(b);
    memcpy(b, "NSENSMB\0", 8);
    put32(b + 8, 1);
    put64(b + 12, total);
    put32(b + 20, (uint32_t)n);
    size_t at = 24;
    for (int i = 0; i < n; i++) {
        put64(b + at, lens[i]);
        memcpy(b + at + 8, parts[i], lens[i]);
        at += 8 + lens[i];
    }
    put32(b + at, (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)at));
    *len = total;
    return b;
}

/* Saves members as dir/e.nse and returns the bytes. */
static unsigned char *ensemble_bytes(const char *dir, const ns_model_file *m, int n, size_t *len)
{
    char *p = path_in(dir, "e.nse");
    ns_err err = {0};
    cr_assert_eq(ns_ensemble_save(p, m, n, &err), NS_OK, "%s", err.msg);
    unsigned char *b = read_all(p, len);
    unlink(p);
    free(p);
    return b;
}

/* Writes b to dir/bad.nse and loads it with ns_models_load; fills err; asserts that a
 * failure is clean (nothing handed back, one line naming the file). */
static int load_models_bytes(const char *dir, const unsigned char *b, size_t len, ns_err *err)
{
    char *p = path_in(dir, "bad.nse");
    write_all(p, b, len);
    ns_model_file *m = (ns_model_file *)&m; /* load must set it whatever it was */
    int n = -7;
    *err = (ns_err){0};
    int rc = ns_models_load(p, &m, &n, err);
    if (rc != NS_OK) {
        cr_assert_null(m, "a failed load handed back members");
        cr_assert_eq(n, 0);
        cr_assert(strncmp(err->msg, p, strlen(p)) == 0, "error does not name the file: %s",
                  err->msg);
        cr_assert(strchr(err->msg, '\n') == NULL, "error is not one line: %s", err->msg);
    } else {
        cr_assert(n >= 1 && m);
    }
    ns_models_free(m, rc == NS_OK ? n : 0);
    unlink(p);
    free(p);
    return rc;
}

Test(ensemble, roundtrip_three_members_and_layout)
{
    char *dir = tu_temp_dir();
    char *p = path_in(dir, "e.nse");
    ns_model_file a[3];
    make_members(a, 3);
    ns_err err = {0};
    cr_assert_eq(ns_ensemble_save(p, a, 3, &err), NS_OK, "%s", err.msg);
    ns_model_file *b = NULL;
    int n = 0;
    cr_assert_eq(ns_models_load(p, &b, &n, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(n, 3);
    for (int i = 0; i < 3; i++)
        assert_same(&a[i], &b[i]);
    cr_assert_eq(b[2].spec.n_hidden, 1, "member 3 keeps its own architecture");
    cr_assert_eq(b[1].stdz.mean[0], a[0].stdz.mean[0] + 1.0f);
    ns_models_free(b, n);

    /* Byte for byte the documented layout: each member is exactly what ns_model_save
     * writes for it, and the file is what an independent writer of the layout gives. */
    size_t len;
    unsigned char *f = read_all(p, &len);
    unsigned char *parts[3];
    size_t lens[3];
    for (int i = 0; i < 3; i++)
        parts[i] = saved_bytes(dir, &a[i], &lens[i]);
    size_t want_len;
    unsigned char *want = build_ensemble(parts, lens, 3, &want_len);
    cr_assert_eq(len, want_len, "file is %zu bytes, the documented layout gives %zu", len,
                 want_len);
    cr_assert_eq(memcmp(f, want, len), 0, "the file differs from the documented layout");
    cr_assert_eq(get64(f + 24), lens[0]);
    cr_assert_eq(memcmp(f + 32, parts[0], lens[0]), 0);
    for (int i = 0; i < 3; i++)
        free(parts[i]);
    free(want);
    free(f);

    /* The single-model reader refuses it, saying what it is and what to use. */
    ns_model_file one;
    cr_assert_eq(ns_model_load(p, &one, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "byte 0: this is an ensemble file") &&
              strstr(err.msg, "ns_models_load"), "%s", err.msg);
    assert_zeroed(&one);

    /* An ensemble of one is allowed. */
    cr_assert_eq(ns_ensemble_save(p, a + 1, 1, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_models_load(p, &b, &n, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    assert_same(&a[1], &b[0]);
    ns_models_free(b, n);

    free_members(a, 3);
    free(p);
    rm_dir(dir);
}

Test(ensemble, models_load_reads_a_model_file_as_one_member)
{
    char *dir = tu_temp_dir();
    char *p = path_in(dir, "m.nsm");
    ns_model_file a;
    make_regressor(&a);
    ns_err err = {0};
    cr_assert_eq(ns_model_save(p, &a, &err), NS_OK, "%s", err.msg);
    ns_model_file *b = NULL;
    int n = 0;
    cr_assert_eq(ns_models_load(p, &b, &n, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    assert_same(&a, &b[0]);
    ns_models_free(b, n);
    ns_models_free(NULL, 0);

    /* The same error rules as ns_model_load: a wrong path, and a model file's own damage
     * reported as before. */
    char *none = path_in(dir, "none.nse");
    cr_assert_eq(ns_models_load(none, &b, &n, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, strerror(ENOENT)), "%s", err.msg);
    cr_assert(b == NULL && n == 0);
    cr_assert_eq(ns_models_load(dir, &b, &n, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "not a regular file"), "%s", err.msg);
    size_t len;
    unsigned char *m = saved_bytes(dir, &a, &len);
    cr_assert_eq(load_models_bytes(dir, m, len - 1, &err), NS_EINPUT);
    char want[96];
    snprintf(want, sizeof want, "byte %zu: file ends at byte %zu, expected %zu", len - 1,
             len - 1, len);
    cr_assert(strstr(err.msg, want), "%s", err.msg);
    free(m);
    free(none);
    ns_model_file_free(&a);
    free(p);
    rm_dir(dir);
}

Test(ensemble, save_refuses_bad_counts_bad_members_and_disagreement)
{
    char *dir = tu_temp_dir();
    char *p = path_in(dir, "e.nse");
    ns_model_file a[3];
    make_members(a, 3);
    ns_err err = {0};

    cr_assert_eq(ns_ensemble_save(p, a, 0, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "0 members"), "%s", err.msg);
    cr_assert_eq(ns_ensemble_save(p, a, NS_ENSEMBLE_MAX_MEMBERS + 1, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "257 members"), "%s", err.msg);
    cr_assert_eq(ns_ensemble_save(p, NULL, 2, &err), NS_EINPUT);

    a[2].n_params--; /* a member that would not save on its own */
    cr_assert_eq(ns_ensemble_save(p, a, 3, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "member 3 of 3: n_params is 43"), "%s", err.msg);
    a[2].n_params++;

    /* Feature names differ. */
    free(a[1].feature_names[3]);
    a[1].feature_names[3] = dup_str("other");
    cr_assert_eq(ns_ensemble_save(p, a, 3, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "member 2 of 3 disagrees with member 1: feature 3 is named "
                              "'other', in member 1 ''"), "%s", err.msg);
    free(a[1].feature_names[3]);
    a[1].feature_names[3] = dup_str(FEATURE_NAMES[3]);

    /* A member with 3 classes among members with 4. */
    ns_model_file c;
    make_classifier(&c, 1);
    free(c.params);
    free(c.class_names[3]);
    c.spec.n_out = c.n_classes = 3;
    c.n_params = 7 * 5 + 7 + 3 * 7 + 3 + 3 * 3 + 3; /* 78 */
    fill_params(&c);
    ns_model_file mixed[2] = {a[0], c};
    cr_assert_eq(ns_ensemble_save(p, mixed, 2, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "member 2 of 2 disagrees with member 1: 3 classes, member 1 has "
                              "4"), "%s", err.msg);
    c.n_classes = 4; /* restore what free expects: 4 class names were allocated... */
    c.class_names[3] = NULL; /* ...of which the last is already freed */
    ns_model_file_free(&c);

    /* A label column, and class names absent in one member. */
    free(a[2].label_name);
    a[2].label_name = dup_str("kind2");
    cr_assert_eq(ns_ensemble_save(p, a, 3, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "member 3 of 3 disagrees with member 1: label column 'kind2'"),
              "%s", err.msg);
    free(a[2].label_name);
    a[2].label_name = dup_str("kind");
    char **names = a[1].class_names;
    a[1].class_names = NULL;
    cr_assert_eq(ns_ensemble_save(p, a, 3, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "class names absent, member 1's present"), "%s", err.msg);
    a[1].class_names = names;

    cr_assert_eq(count_entries(dir, NULL, 0), 0, "a refused save created a file");
    cr_assert_eq(ns_ensemble_save(p, a, 3, &err), NS_OK, "%s", err.msg);

    /* Into a missing folder: an I/O error, nothing left behind. */
    char *q = path_in(dir, "no/such/e.nse");
    cr_assert_eq(ns_ensemble_save(q, a, 3, &err), NS_ERUNTIME);
    cr_assert(strstr(err.msg, strerror(ENOENT)), "%s", err.msg);
    cr_assert_eq(count_entries(dir, NULL, 0), 1);
    free(q);
    free_members(a, 3);
    free(p);
    rm_dir(dir);
}

Test(ensemble, bad_magic)
{
    char *dir = tu_temp_dir();
    ns_model_file a[2];
    make_members(a, 2);
    size_t len;
    unsigned char *b = ensemble_bytes(dir, a, 2, &len);
    ns_err err;
    cr_assert_eq(load_models_bytes(dir, b, len, &err), NS_OK, "%s", err.msg);
    b[5] = 'm'; /* "NSENSmB" */
    cr_assert_eq(load_models_bytes(dir, b, len, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "byte 0: not an nnsearch model file (it starts neither with "
                              "\"NSMODEL\" nor with \"NSENSMB\""), "%s", err.msg);
    const char csv[] = "x,y\n1,2\n";
    cr_assert_eq(load_models_bytes(dir, (const unsigned char *)csv, sizeof csv - 1, &err),
                 NS_EINPUT);
    cr_assert(strstr(err.msg, "not an nnsearch model file"), "%s", err.msg);
    free(b);
    free_members(a, 2);
    rm_dir(dir);
}

Test(ensemble, future_version)
{
    char *dir = tu_temp_dir();
    ns_model_file a[2];
    make_members(a, 2);
    size_t len;
    unsigned char *b = ensemble_bytes(dir, a, 2, &len);
    ns_err err;
    put32(b + 8, 2);
    reseal(b, len);
    cr_assert_eq(load_models_bytes(dir, b, len, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "byte 8: ensemble format version 2, but this build of nnsearch "
                              "reads versions 1 to 1"), "%s", err.msg);
    free(b);
    free_members(a, 2);
    rm_dir(dir);
}

Test(ensemble, truncation_at_every_offset)
{
    char *dir = tu_temp_dir();
    ns_model_file a[3];
    make_members(a, 3);
    size_t len;
    unsigned char *b = ensemble_bytes(dir, a, 3, &len);
    ns_err err;
    for (size_t n = 0; n < len; n++) {
        cr_assert_eq(load_models_bytes(dir, b, n, &err), NS_EINPUT, "cut at %zu: %s", n,
                     err.msg);
        char want[160];
        if (n >= 20)
            snprintf(want, sizeof want, "byte %zu: file ends at byte %zu, expected %zu", n, n,
                     len);
        else
            snprintf(want, sizeof want, "file ends at byte %zu, expected at least 20", n);
        cr_assert(strstr(err.msg, want), "cut at %zu: %s", n, err.msg);
    }
    free(b);
    free_members(a, 3);
    rm_dir(dir);
}

Test(ensemble, flipped_byte_is_a_checksum_mismatch)
{
    char *dir = tu_temp_dir();
    ns_model_file a[2];
    make_members(a, 2);
    size_t len;
    unsigned char *b = ensemble_bytes(dir, a, 2, &len);
    ns_err err;
    /* Anywhere: in the header, the member table, inside a member. Past the header the
     * ensemble's own CRC catches it first, whichever field it hit. */
    for (size_t i = 0; i < len; i++) {
        b[i] ^= 0x04;
        cr_assert_eq(load_models_bytes(dir, b, len, &err), NS_EINPUT, "flip at %zu: %s", i,
                     err.msg);
        if (i >= 20) {
            char want[64];
            snprintf(want, sizeof want, "byte %zu: checksum mismatch", len - 4);
            cr_assert(strstr(err.msg, want), "flip at %zu: %s", i, err.msg);
        }
        b[i] ^= 0x04;
    }
    cr_assert_eq(load_models_bytes(dir, b, len, &err), NS_OK, "%s", err.msg);
    free(b);
    free_members(a, 2);
    rm_dir(dir);
}

Test(ensemble, member_count_zero_and_too_large)
{
    char *dir = tu_temp_dir();
    ns_model_file a[2];
    make_members(a, 2);
    size_t len;
    unsigned char *b = ensemble_bytes(dir, a, 2, &len);
    ns_err err;
    const uint32_t counts[] = {0, NS_ENSEMBLE_MAX_MEMBERS + 1, 0xffffffffu};
    for (int k = 0; k < 3; k++) {
        put32(b + 20, counts[k]);
        reseal(b, len);
        cr_assert_eq(load_models_bytes(dir, b, len, &err), NS_EINPUT);
        char want[96];
        snprintf(want, sizeof want, "byte 20: member count is %u, outside [1, 256]", counts[k]);
        cr_assert(strstr(err.msg, want), "%s", err.msg);
    }
    /* One member fewer than stored: the second becomes bytes before the checksum. */
    put32(b + 20, 1);
    reseal(b, len);
    cr_assert_eq(load_models_bytes(dir, b, len, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "unexpected bytes between the last member and the checksum") &&
              strstr(err.msg, "fix: copy the file again or re-create the ensemble"), "%s",
              err.msg);
    /* One more than stored: the third length runs into the checksum. */
    put32(b + 20, 3);
    reseal(b, len);
    cr_assert_eq(load_models_bytes(dir, b, len, &err), NS_EINPUT);
    char want[96];
    snprintf(want, sizeof want, "byte %zu: the length of member 3 of 3 needs 8 bytes but only "
             "0 remain", len - 4);
    cr_assert(strstr(err.msg, want), "%s", err.msg);
    free(b);
    free_members(a, 2);
    rm_dir(dir);
}

Test(ensemble, member_length_past_the_end)
{
    char *dir = tu_temp_dir();
    ns_model_file a[3];
    make_members(a, 3);
    size_t len;
    unsigned char *b = ensemble_bytes(dir, a, 3, &len);
    ns_err err;
    size_t l0 = get64(b + 24), at1 = 24 + 8 + l0, l1 = get64(b + at1);
    size_t at2 = at1 + 8 + l1, l2 = get64(b + at2);
    cr_assert_eq(at2 + 8 + l2 + 4, len);

    put64(b + at2, l2 + 1); /* one byte into the checksum */
    reseal(b, len);
    cr_assert_eq(load_models_bytes(dir, b, len, &err), NS_EINPUT);
    char want[128];
    snprintf(want, sizeof want, "byte %zu: member 3 of 3 is %zu bytes long but only %zu remain "
             "before the checksum", at2, l2 + 1, l2);
    cr_assert(strstr(err.msg, want), "%s", err.msg);

    put64(b + at2, l2);
    put64(b + at1, UINT64_MAX); /* far past the end, no overflow */
    reseal(b, len);
    cr_assert_eq(load_models_bytes(dir, b, len, &err), NS_EINPUT);
    snprintf(want, sizeof want, "byte %zu: member 2 of 3 is %llu bytes long", at1,
             (unsigned long long)UINT64_MAX);
    cr_assert(strstr(err.msg, want), "%s", err.msg);

    /* Lengths that add up but cut a member short: member 2 loses its last 4 bytes to a
     * length field that gives member 3 the 4 bytes more it now spans. The member reader,
     * placed in the file, says which member and where. */
    put64(b + at1, l1 - 4);
    put64(b + at2 - 4, l2 + 4);
    reseal(b, len);
    cr_assert_eq(load_models_bytes(dir, b, len, &err), NS_EINPUT);
    snprintf(want, sizeof want, "member 2 of 3: byte %zu: file ends at byte %zu, expected %zu",
             at1 + 8 + l1 - 4, at1 + 8 + l1 - 4, at1 + 8 + l1);
    cr_assert(strstr(err.msg, want), "%s", err.msg);
    free(b);
    free_members(a, 3);
    rm_dir(dir);
}

Test(ensemble, trailing_bytes)
{
    char *dir = tu_temp_dir();
    ns_model_file a[2];
    make_members(a, 2);
    size_t len;
    unsigned char *b = ensemble_bytes(dir, a, 2, &len);
    ns_err err;
    b[len] = '\n';
    cr_assert_eq(load_models_bytes(dir, b, len + 1, &err), NS_EINPUT);
    char want[96];
    snprintf(want, sizeof want, "byte %zu: 1 unexpected bytes after the end of the ensemble",
             len);
    cr_assert(strstr(err.msg, want), "%s", err.msg);

    /* Inside a resealed file: bytes between the last member and the checksum. */
    unsigned char *c = malloc(len + 8);
    memcpy(c, b, len - 4);
    memset(c + len - 4, 0, 8);
    reseal(c, len + 4);
    cr_assert_eq(load_models_bytes(dir, c, len + 4, &err), NS_EINPUT);
    snprintf(want, sizeof want, "byte %zu: 4 unexpected bytes between the last member and the "
             "checksum", len - 4);
    cr_assert(strstr(err.msg, want), "%s", err.msg);
    free(c);
    free(b);
    free_members(a, 2);
    rm_dir(dir);
}

/* Damage inside a member that the ensemble's CRC does not see (a buggy writer): the
 * message names the member and the offset in the whole file. */
Test(ensemble, problem_inside_a_member_names_it)
{
    char *dir = tu_temp_dir();
    ns_model_file a[3];
    make_members(a, 3);
    size_t len;
    unsigned char *b = ensemble_bytes(dir, a, 3, &len);
    ns_err err;
    size_t l0 = get64(b + 24), at1 = 24 + 8 + l0, m1 = at1 + 8, l1 = get64(b + at1);
    b[m1 + 100] ^= 0x01;
    reseal(b, len);
    cr_assert_eq(load_models_bytes(dir, b, len, &err), NS_EINPUT);
    char want[96];
    snprintf(want, sizeof want, "member 2 of 3: byte %zu: checksum mismatch", m1 + l1 - 4);
    cr_assert(strstr(err.msg, want), "%s", err.msg);
    b[m1 + 100] ^= 0x01;

    /* A member that is not a model file at all. */
    b[m1 + 2] = 'X';
    reseal(b, len);
    cr_assert_eq(load_models_bytes(dir, b, len, &err), NS_EINPUT);
    snprintf(want, sizeof want, "member 2 of 3: byte %zu: not an nnsearch model file", m1);
    cr_assert(strstr(err.msg, want), "%s", err.msg);
    b[m1 + 2] = 'M';

    /* A field inside a member, member CRC resealed too: the field's offset in the file. */
    put32(b + m1 + OFF_ARCH + 20, 99); /* activation code (member 2 has two hidden layers) */
    put32(b + m1 + l1 - 4, (uint32_t)crc32(crc32(0L, Z_NULL, 0), b + m1, (uInt)(l1 - 4)));
    reseal(b, len);
    cr_assert_eq(load_models_bytes(dir, b, len, &err), NS_EINPUT);
    snprintf(want, sizeof want, "member 2 of 3: byte %zu: activation code is 99",
             m1 + OFF_ARCH + 20);
    cr_assert(strstr(err.msg, want), "%s", err.msg);
    free(b);
    free_members(a, 3);
    rm_dir(dir);
}

/* Members that disagree, written by another writer (ns_ensemble_save refuses them). */
Test(ensemble, load_refuses_members_that_disagree)
{
    char *dir = tu_temp_dir();
    ns_model_file a[2], c;
    make_members(a, 2);
    unsigned char *parts[2];
    size_t lens[2], len;
    ns_err err;

    /* Feature names. */
    free(a[1].feature_names[0]);
    a[1].feature_names[0] = dup_str("petal width");
    parts[0] = saved_bytes(dir, &a[0], &lens[0]);
    parts[1] = saved_bytes(dir, &a[1], &lens[1]);
    unsigned char *b = build_ensemble(parts, lens, 2, &len);
    cr_assert_eq(load_models_bytes(dir, b, len, &err), NS_EINPUT);
    char want[160];
    snprintf(want, sizeof want, "byte %zu: member 2 of 2 disagrees with member 1: feature 0 is "
             "named 'petal width', in member 1 'petal length'", 24 + 8 + lens[0] + 8);
    cr_assert(strstr(err.msg, want), "%s", err.msg);
    free(b);
    free(parts[1]);

    /* Class count: a 3-class member after a 4-class one. */
    make_classifier(&c, 1);
    free(c.params);
    free(c.class_names[3]);
    c.class_names[3] = NULL;
    c.spec.n_out = c.n_classes = 3;
    c.n_params = 78;
    fill_params(&c);
    parts[1] = saved_bytes(dir, &c, &lens[1]);
    b = build_ensemble(parts, lens, 2, &len);
    cr_assert_eq(load_models_bytes(dir, b, len, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "member 2 of 2 disagrees with member 1: 3 classes, member 1 has 4"),
              "%s", err.msg);
    free(b);
    free(parts[1]);
    c.n_classes = 4;
    ns_model_file_free(&c);

    /* A regressor among classifiers. */
    make_regressor(&c);
    parts[1] = saved_bytes(dir, &c, &lens[1]);
    b = build_ensemble(parts, lens, 2, &len);
    cr_assert_eq(load_models_bytes(dir, b, len, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "task is regression, member 1's classification"), "%s", err.msg);
    free(b);
    free(parts[1]);
    ns_model_file_free(&c);

    /* The same member twice agrees. */
    parts[1] = parts[0];
    lens[1] = lens[0];
    b = build_ensemble(parts, lens, 2, &len);
    cr_assert_eq(load_models_bytes(dir, b, len, &err), NS_OK, "%s", err.msg);
    free(b);
    free(parts[0]);
    free_members(a, 2);
    rm_dir(dir);
}
