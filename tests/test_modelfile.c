/* test_modelfile.c — the model file: bit-exact round trips, the documented byte layout,
 * and every kind of damage (flipped bytes, truncation at each offset, bad magic, future
 * version, wrong or huge counts) failing cleanly with NS_EINPUT and a zeroed struct. */
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

#include "../model/modelfile.h"
#include "testutil.h"

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

/* 5-7-3-4 GELU classifier with class and feature names. */
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

/* Offsets of the sections for a model with nh hidden layers and d inputs. */
#define OFF_ARCH 20
static size_t off_prep(int nh) { return OFF_ARCH + 40 + 4 * (size_t)nh; }
static size_t off_names(int nh, int d) { return off_prep(nh) + 4 + 8 * (size_t)d + 8; }

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
    size_t want = off_names(2, 5) + names + 8 + 8 + 4 + tool + 8 + 4 * a.n_params + 4;
    cr_assert_eq(len, want, "file is %zu bytes, the documented layout gives %zu", len, want);
    cr_assert_eq(memcmp(f, "NSMODEL\0", 8), 0);
    cr_assert_eq(get32(f + 8), NS_MODEL_VERSION);
    cr_assert_eq(get64(f + 12), len);
    cr_assert_eq(get32(f + OFF_ARCH), 5);       /* n_in */
    cr_assert_eq(get32(f + OFF_ARCH + 8), 2);   /* n_hidden */
    cr_assert_eq(get32(f + OFF_ARCH + 12), 7);  /* hidden[0] */
    cr_assert_eq(get32(f + OFF_ARCH + 20), NS_ACT_GELU);
    cr_assert_eq(get32(f + OFF_ARCH + 24), 0x3e800000u); /* dropout 0.25 */
    cr_assert_eq(get32(f + off_names(2, 5)), 4);         /* class names */
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
             "reads version %d", NS_MODEL_VERSION + 1, NS_MODEL_VERSION);
    cr_assert(strstr(err.msg, want), "%s", err.msg);
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
    const size_t P = off_prep(2), N = off_names(2, 5);
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
