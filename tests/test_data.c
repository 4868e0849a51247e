/* test_data.c — the dataset module: IDX and CSV loaders (good files and every documented
 * error), subsets, stratified splits and standardisation. Builds its own input files;
 * the Fashion-MNIST checks run only where the data set is installed. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "engine/data/data.h"
#include "engine/rng.h"
#include "tests/testutil.h"

#define FASHION "/usr/share/datasets/fashion-mnist/"

/* ---- helpers ------------------------------------------------------------------------ */

/* Removes a file written by tu_write_temp (or gz_temp) and its folder. */
static void rm_temp(char *path)
{
    if (!path)
        return;
    unlink(path);
    char *slash = strrchr(path, '/');
    if (slash) {
        *slash = '\0';
        rmdir(path);
    }
    free(path);
}

static char *gz_temp(const char *name, const void *data, size_t len)
{
    char *dir = tu_temp_dir();
    cr_assert_not_null(dir);
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    snprintf(path, n, "%s/%s", dir, name);
    free(dir);
    gzFile g = gzopen(path, "wb");
    cr_assert_not_null(g);
    cr_assert_eq(gzwrite(g, data, (unsigned)len), (int)len);
    cr_assert_eq(gzclose(g), Z_OK);
    return path;
}

/* An IDX file in memory: magic 00 00 type rank, big-endian dims, then data. */
static unsigned char *idx_make(int type, int rank, const uint32_t *dims, const void *data,
                               size_t ndata, size_t *len)
{
    *len = 4 + 4 * (size_t)rank + ndata;
    unsigned char *b = malloc(*len);
    b[0] = 0;
    b[1] = 0;
    b[2] = (unsigned char)type;
    b[3] = (unsigned char)rank;
    for (int i = 0; i < rank; i++) {
        b[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
        b[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
        b[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
        b[7 + 4 * i] = (unsigned char)dims[i];
    }
    if (ndata)
        memcpy(b + 4 + 4 * rank, data, ndata);
    return b;
}

/* 3 images of 2x2 pixels and their labels, raw or gzip'd. */
static const unsigned char PIX[12] = {0, 1, 2, 3, 10, 20, 30, 40, 255, 254, 128, 7};
static const unsigned char LAB[3] = {4, 0, 2};

static char *write_idx(const char *name, int gz, int type, int rank, const uint32_t *dims,
                       const void *data, size_t ndata)
{
    size_t len;
    unsigned char *b = idx_make(type, rank, dims, data, ndata, &len);
    char *p = gz ? gz_temp(name, b, len) : tu_write_temp(name, b, len);
    free(b);
    cr_assert_not_null(p);
    return p;
}

static char *images3(int gz)
{
    uint32_t dims[3] = {3, 2, 2};
    return write_idx(gz ? "img.gz" : "img", gz, 0x08, 3, dims, PIX, sizeof PIX);
}

static char *labels3(int gz)
{
    uint32_t dims[1] = {3};
    return write_idx(gz ? "lab.gz" : "lab", gz, 0x08, 1, dims, LAB, sizeof LAB);
}

static char *csv_temp(const char *text) { return tu_write_temp("data.csv", text, strlen(text)); }

static void assert_zeroed(const ns_dataset *ds)
{
    static const ns_dataset zero;
    cr_assert(memcmp(ds, &zero, sizeof zero) == 0, "a failed load must leave *ds zeroed");
}

static void assert_one_line(const ns_err *err) { cr_assert_null(strchr(err->msg, '\n'), "%s", err->msg); }

#define assert_msg_has(err, s) \
    cr_assert(strstr((err).msg, (s)) != NULL, "expected '%s' in: %s", (s), (err).msg)

/* Loads text as CSV; returns the code and leaves the message in *err. */
static int csv_load(ns_dataset *ds, const char *text, const ns_csv_opts *o, ns_err *err)
{
    char *p = csv_temp(text);
    cr_assert_not_null(p);
    int rc = ns_dataset_load_csv(ds, p, o, err);
    rm_temp(p);
    if (rc)
        assert_zeroed(ds);
    return rc;
}

/* Expects a CSV error whose message contains want. */
static void csv_bad(const char *text, const ns_csv_opts *o, const char *want)
{
    ns_dataset ds;
    ns_err err = {0};
    cr_assert_eq(csv_load(&ds, text, o, &err), NS_EINPUT, "accepted: %s", text);
    assert_msg_has(err, want);
    assert_one_line(&err);
    assert_msg_has(err, "data.csv:");
}

/* ---- IDX ---------------------------------------------------------------------------- */

static void check_idx3(const ns_dataset *ds)
{
    cr_assert_eq(ds->n, 3);
    cr_assert_eq(ds->d, 4);
    cr_assert_eq(ds->task, NS_TASK_CLASSIFY);
    cr_assert_eq(ds->n_classes, 5);
    cr_assert_null(ds->class_names);
    cr_assert_null(ds->t);
    for (int i = 0; i < 12; i++)
        cr_assert_eq(ds->x[i], (float)PIX[i]);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ds->y[i], LAB[i]);
}

Test(idx, raw_round_trip)
{
    char *im = images3(0), *lb = labels3(0);
    ns_dataset ds;
    ns_err err = {0};
    cr_assert_eq(ns_dataset_load_idx(&ds, im, lb, &err), NS_OK, "%s", err.msg);
    check_idx3(&ds);
    ns_dataset_free(&ds);
    assert_zeroed(&ds);
    rm_temp(im);
    rm_temp(lb);
}

Test(idx, gzip_round_trip)
{
    char *im = images3(1), *lb = labels3(1);
    ns_dataset ds;
    ns_err err = {0};
    cr_assert_eq(ns_dataset_load_idx(&ds, im, lb, &err), NS_OK, "%s", err.msg);
    check_idx3(&ds);
    ns_dataset_free(&ds);
    /* Images alone (prediction input): no labels, no classes. */
    cr_assert_eq(ns_dataset_load_idx(&ds, im, NULL, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ds.n, 3);
    cr_assert_null(ds.y);
    cr_assert_eq(ds.n_classes, 0);
    ns_dataset_free(&ds);
    rm_temp(im);
    rm_temp(lb);
}

Test(idx, rank_two_and_one)
{
    uint32_t d2[2] = {4, 3}, d1[1] = {12};
    char *a = write_idx("r2", 0, 0x08, 2, d2, PIX, 12), *b = write_idx("r1", 1, 0x08, 1, d1, PIX, 12);
    ns_dataset ds;
    ns_err err = {0};
    cr_assert_eq(ns_dataset_load_idx(&ds, a, NULL, &err), NS_OK, "%s", err.msg);
    cr_assert(ds.n == 4 && ds.d == 3);
    ns_dataset_free(&ds);
    cr_assert_eq(ns_dataset_load_idx(&ds, b, NULL, &err), NS_OK, "%s", err.msg);
    cr_assert(ds.n == 12 && ds.d == 1);
    cr_assert_eq(ds.x[8], 255.0f);
    ns_dataset_free(&ds);
    rm_temp(a);
    rm_temp(b);
}

Test(idx, truncated_data)
{
    uint32_t dims[3] = {3, 2, 2};
    for (int gz = 0; gz < 2; gz++) {
        char *p = write_idx("img", gz, 0x08, 3, dims, PIX, 10); /* 2 bytes short */
        ns_dataset ds;
        ns_err err = {0};
        cr_assert_eq(ns_dataset_load_idx(&ds, p, NULL, &err), NS_EINPUT);
        assert_zeroed(&ds);
        assert_msg_has(err, "byte 26");
        assert_msg_has(err, "announces 12 bytes");
        assert_msg_has(err, "truncated");
        assert_one_line(&err);
        rm_temp(p);
    }
}

Test(idx, truncated_header_and_trailing_bytes)
{
    static const unsigned char shorth[6] = {0, 0, 8, 3, 0, 0};
    char *p = tu_write_temp("img", shorth, sizeof shorth);
    ns_dataset ds;
    ns_err err = {0};
    cr_assert_eq(ns_dataset_load_idx(&ds, p, NULL, &err), NS_EINPUT);
    assert_msg_has(err, "byte 6");
    assert_msg_has(err, "header");
    rm_temp(p);
    unsigned char more[13];
    memcpy(more, PIX, 12);
    more[12] = 99;
    uint32_t dims[3] = {3, 2, 2};
    p = write_idx("img", 0, 0x08, 3, dims, more, 13);
    cr_assert_eq(ns_dataset_load_idx(&ds, p, NULL, &err), NS_EINPUT);
    assert_msg_has(err, "byte 28: 1 bytes follow");
    rm_temp(p);
}

Test(idx, truncated_and_corrupt_gzip_stream)
{
    uint32_t dims[2] = {100, 100};
    unsigned char *data = malloc(10000);
    for (int i = 0; i < 10000; i++)
        data[i] = (unsigned char)(i * 7919 % 251);
    char *p = write_idx("img.gz", 1, 0x08, 2, dims, data, 10000);
    free(data);
    FILE *f = fopen(p, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    unsigned char *gz = malloc((size_t)size);
    fseek(f, 0, SEEK_SET);
    cr_assert_eq(fread(gz, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    ns_dataset ds;
    ns_err err = {0};
    cr_assert_eq(truncate(p, size / 2), 0);
    cr_assert_eq(ns_dataset_load_idx(&ds, p, NULL, &err), NS_EINPUT);
    assert_zeroed(&ds);
    assert_msg_has(err, "gzip");
    assert_msg_has(err, "truncated");
    rm_temp(p);
    for (long i = 20; i < size - 20; i += 3) /* scramble the deflate stream */
        gz[i] ^= 0x5a;
    p = tu_write_temp("img.gz", gz, (size_t)size);
    cr_assert_eq(ns_dataset_load_idx(&ds, p, NULL, &err), NS_EINPUT);
    assert_msg_has(err, "gzip");
    assert_one_line(&err);
    free(gz);
    rm_temp(p);
}

Test(idx, bad_magic)
{
    static const char text[] = "this is not an idx file";
    char *p = tu_write_temp("img", text, sizeof text - 1);
    ns_dataset ds;
    ns_err err = {0};
    cr_assert_eq(ns_dataset_load_idx(&ds, p, NULL, &err), NS_EINPUT);
    assert_zeroed(&ds);
    assert_msg_has(err, "byte 0: bad magic 74 68 69 73");
    rm_temp(p);
}

Test(idx, wrong_type_code)
{
    uint32_t dims[1] = {3};
    float v[3] = {1, 2, 3};
    char *p = write_idx("img", 0, 0x0D, 1, dims, v, sizeof v);
    ns_dataset ds;
    ns_err err = {0};
    cr_assert_eq(ns_dataset_load_idx(&ds, p, NULL, &err), NS_EINPUT);
    assert_msg_has(err, "byte 2: IDX type code 0x0D (float32) is not supported");
    rm_temp(p);
}

Test(idx, labels_must_be_rank_one)
{
    char *im = images3(0), *lb = images3(1);
    ns_dataset ds;
    ns_err err = {0};
    cr_assert_eq(ns_dataset_load_idx(&ds, im, lb, &err), NS_EINPUT);
    assert_msg_has(err, "byte 3: rank 3");
    assert_msg_has(err, "swapped");
    rm_temp(im);
    rm_temp(lb);
}

Test(idx, label_count_mismatch)
{
    uint32_t dims[1] = {2};
    char *im = images3(0), *lb = write_idx("lab", 0, 0x08, 1, dims, LAB, 2);
    ns_dataset ds;
    ns_err err = {0};
    cr_assert_eq(ns_dataset_load_idx(&ds, im, lb, &err), NS_EINPUT);
    assert_zeroed(&ds);
    assert_msg_has(err, "byte 4: 2 labels but");
    assert_msg_has(err, "holds 3 images");
    rm_temp(im);
    rm_temp(lb);
}

Test(idx, empty_and_missing_file)
{
    char *p = tu_write_temp("img", "", 0);
    ns_dataset ds;
    ns_err err = {0};
    cr_assert_eq(ns_dataset_load_idx(&ds, p, NULL, &err), NS_EINPUT);
    assert_msg_has(err, "byte 0: the file is empty");
    cr_assert_eq(ns_dataset_load_idx(&ds, "/nonexistent/nnsearch/img", NULL, &err), NS_EINPUT);
    assert_zeroed(&ds);
    assert_msg_has(err, "/nonexistent/nnsearch/img: cannot open: No such file or directory");
    char *dir = strdup(p);
    *strrchr(dir, '/') = '\0';
    cr_assert_eq(ns_dataset_load(&ds, dir, NULL, NULL, &err), NS_EINPUT);
    assert_msg_has(err, "is a folder");
    free(dir);
    rm_temp(p);
}

Test(idx, load_detects_format_and_fixed_vocabulary)
{
    char *im = images3(1), *lb = labels3(0);
    ns_dataset ds;
    ns_err err = {0};
    cr_assert_eq(ns_dataset_load(&ds, im, lb, NULL, &err), NS_OK, "%s", err.msg);
    check_idx3(&ds);
    ns_dataset_free(&ds);
    /* A test set read with the training vocabulary keeps its class count... */
    ns_csv_opts o = {NULL, NS_TASK_CLASSIFY, NULL, 10};
    cr_assert_eq(ns_dataset_load(&ds, im, lb, &o, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ds.n_classes, 10);
    ns_dataset_free(&ds);
    /* ... and refuses labels outside it (label 4 is byte 8 of the labels file). */
    o.n_classes = 3;
    cr_assert_eq(ns_dataset_load(&ds, im, lb, &o, &err), NS_EINPUT);
    assert_msg_has(err, "byte 8: label 4 is not one of the 3 training classes");
    o.n_classes = 0;
    o.task = NS_TASK_REGRESS;
    cr_assert_eq(ns_dataset_load(&ds, im, lb, &o, &err), NS_EINPUT);
    assert_msg_has(err, "not regression targets");
    rm_temp(im);
    rm_temp(lb);
}

Test(idx, fashion_mnist)
{
    if (access(FASHION "t10k-images-idx3-ubyte.gz", R_OK) != 0 ||
        access(FASHION "train-labels-idx1-ubyte.gz", R_OK) != 0 ||
        access(FASHION "t10k-labels-idx1-ubyte.gz", R_OK) != 0)
        cr_skip_test("Fashion-MNIST is not installed under " FASHION);
    ns_dataset ds;
    ns_err err = {0};
    cr_assert_eq(ns_dataset_load_idx(&ds, FASHION "t10k-images-idx3-ubyte.gz",
                                     FASHION "train-labels-idx1-ubyte.gz", &err), NS_EINPUT);
    assert_zeroed(&ds);
    assert_msg_has(err, "train-labels-idx1-ubyte.gz: byte 4: 60000 labels but");
    assert_msg_has(err, "holds 10000 images");
    cr_assert_eq(ns_dataset_load(&ds, FASHION "t10k-images-idx3-ubyte.gz",
                                 FASHION "t10k-labels-idx1-ubyte.gz", NULL, &err), NS_OK, "%s",
                 err.msg);
    cr_assert_eq(ds.n, 10000);
    cr_assert_eq(ds.d, 784);
    cr_assert_eq(ds.n_classes, 10);
    long counts[10];
    ns_dataset_class_counts(&ds, counts);
    for (int c = 0; c < 10; c++)
        cr_assert_eq(counts[c], 1000, "class %d: %ld", c, counts[c]);
    float mx = 0;
    for (long i = 0; i < ds.n * ds.d; i++)
        mx = ds.x[i] > mx ? ds.x[i] : mx;
    cr_assert_eq(mx, 255.0f);
    ns_dataset_free(&ds);
}

/* ---- CSV: good files ---------------------------------------------------------------- */

Test(csv, numeric_labels)
{
    ns_dataset ds;
    ns_err err = {0};
    ns_csv_opts o = {"label", NS_TASK_CLASSIFY, NULL, 0};
    cr_assert_eq(csv_load(&ds, "a,label,b\n1,0,2\n3,2,4\n5.5,1,-6e-1\n", &o, &err), NS_OK, "%s",
                 err.msg);
    cr_assert(ds.n == 3 && ds.d == 2 && ds.n_classes == 3);
    cr_assert_null(ds.class_names);
    cr_assert_null(ds.t);
    cr_assert_str_eq(ds.feature_names[0], "a");
    cr_assert_str_eq(ds.feature_names[1], "b");
    const float x[6] = {1, 2, 3, 4, 5.5f, -0.6f};
    const int32_t y[3] = {0, 2, 1};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(ds.x[i], x[i]);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ds.y[i], y[i]);
    ns_dataset_free(&ds);
}

Test(csv, string_labels_in_order_of_first_appearance)
{
    ns_dataset ds;
    ns_err err = {0};
    ns_csv_opts o = {"species", NS_TASK_CLASSIFY, NULL, 0};
    cr_assert_eq(csv_load(&ds, "x,species\n1,virginica\n2,setosa\n3,virginica\n4,2\n", &o, &err),
                 NS_OK, "%s", err.msg);
    cr_assert_eq(ds.n_classes, 3);
    cr_assert_str_eq(ds.class_names[0], "virginica");
    cr_assert_str_eq(ds.class_names[1], "setosa");
    cr_assert_str_eq(ds.class_names[2], "2");
    const int32_t y[4] = {0, 1, 0, 2};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(ds.y[i], y[i]);
    ns_dataset_free(&ds);
}

Test(csv, many_distinct_labels_stay_linear)
{
    /* One class per row: the vocabulary map must not go quadratic (20000 rows). */
    size_t cap = 20000 * 24 + 16, k = 0;
    char *text = malloc(cap);
    k += (size_t)snprintf(text, cap, "x,y\n");
    for (int i = 0; i < 20000; i++)
        k += (size_t)snprintf(text + k, cap - k, "%d,c%d\n", i, i);
    ns_dataset ds;
    ns_err err = {0};
    ns_csv_opts o = {"y", NS_TASK_CLASSIFY, NULL, 0};
    cr_assert_eq(csv_load(&ds, text, &o, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ds.n_classes, 20000);
    cr_assert_str_eq(ds.class_names[12345], "c12345");
    cr_assert_eq(ds.y[19999], 19999);
    ns_dataset_free(&ds);
    free(text);
}

Test(csv, regression)
{
    ns_dataset ds;
    ns_err err = {0};
    ns_csv_opts o = {"price", NS_TASK_REGRESS, NULL, 0};
    cr_assert_eq(csv_load(&ds, "price,x1,x2\n3.5,1,2\n-1e3,3,4\n", &o, &err), NS_OK, "%s",
                 err.msg);
    cr_assert(ds.n == 2 && ds.d == 2 && ds.task == NS_TASK_REGRESS && ds.n_classes == 0);
    cr_assert_null(ds.y);
    cr_assert_eq(ds.t[0], 3.5f);
    cr_assert_eq(ds.t[1], -1000.0f);
    cr_assert_eq(ds.x[3], 4.0f);
    cr_assert_str_eq(ds.feature_names[0], "x1");
    ns_dataset_free(&ds);
}

Test(csv, quoted_fields)
{
    ns_dataset ds;
    ns_err err = {0};
    ns_csv_opts o = {"y", NS_TASK_CLASSIFY, NULL, 0};
    cr_assert_eq(csv_load(&ds,
                          "\"a\", \"b, with comma\" ,\"y\"\n"
                          "\"1\",2,\"cat \"\"tabby\"\"\"\n"
                          "3, \"4\" ,\"two\nlines\"\n"
                          "5,6,\"cat \"\"tabby\"\"\"\n",
                          &o, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ds.n, 3);
    cr_assert_str_eq(ds.feature_names[1], "b, with comma");
    cr_assert_eq(ds.n_classes, 2);
    cr_assert_str_eq(ds.class_names[0], "cat \"tabby\"");
    cr_assert_str_eq(ds.class_names[1], "two\nlines");
    cr_assert_eq(ds.y[2], 0);
    cr_assert_eq(ds.x[3], 4.0f);
    ns_dataset_free(&ds);
}

Test(csv, crlf_whitespace_bom_and_blank_lines)
{
    ns_dataset ds;
    ns_err err = {0};
    ns_csv_opts o = {"y", NS_TASK_CLASSIFY, NULL, 0};
    cr_assert_eq(csv_load(&ds, "\xEF\xBB\xBF a ,\ty \r\n 1 , 0 \r\n\r\n2,1\r\n\r\n", &o, &err),
                 NS_OK, "%s", err.msg);
    cr_assert(ds.n == 2 && ds.d == 1);
    cr_assert_str_eq(ds.feature_names[0], "a");
    cr_assert_eq(ds.x[1], 2.0f);
    cr_assert_eq(ds.y[1], 1);
    ns_dataset_free(&ds);
    /* Line numbers count CRLF once and include blank lines. */
    o.task = NS_TASK_REGRESS;
    csv_bad("a,y\r\n1,0\r\n\r\n2,x\r\n", &o, "data.csv:4:2: target 'x' is not a number");
}

Test(csv, no_label_column_for_prediction)
{
    ns_dataset ds;
    ns_err err = {0};
    cr_assert_eq(csv_load(&ds, "a,b,c\n1,2,3\n4,5,6", NULL, &err), NS_OK, "%s", err.msg);
    cr_assert(ds.n == 2 && ds.d == 3);
    cr_assert_null(ds.y);
    cr_assert_null(ds.t);
    cr_assert_eq(ds.x[5], 6.0f);
    ns_dataset_free(&ds);
}

Test(csv, numbers_parse_as_strtod_does)
{
    static const char *v[] = {"0",      "-0.5",    "0.1",        "123.456",   "1e5",  "-7e-3",
                              "+2.25",  ".5",      "3.",         "0x1p-2",    "1.17549435e-38",
                              "16777217", "0.30000000000000004", "12345678901234567890",
                              "3.4028234e38", "9007199254740993", "0.000001"};
    size_t n = sizeof v / sizeof *v;
    char text[2048] = "x\n";
    for (size_t i = 0; i < n; i++) {
        strcat(text, v[i]);
        strcat(text, "\n");
    }
    ns_dataset ds;
    ns_err err = {0};
    cr_assert_eq(csv_load(&ds, text, NULL, &err), NS_OK, "%s", err.msg);
    cr_assert_eq((size_t)ds.n, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(ds.x[i], (float)strtod(v[i], NULL), "%s", v[i]);
    ns_dataset_free(&ds);
}

Test(csv, gzip_csv_through_load)
{
    static const char text[] = "a,y\n1,0\n2,1\n";
    char *p = gz_temp("d.csv.gz", text, sizeof text - 1);
    ns_dataset ds;
    ns_err err = {0};
    ns_csv_opts o = {"y", NS_TASK_CLASSIFY, NULL, 0};
    cr_assert_eq(ns_dataset_load(&ds, p, NULL, &o, &err), NS_OK, "%s", err.msg);
    cr_assert(ds.n == 2 && ds.n_classes == 2);
    ns_dataset_free(&ds);
    cr_assert_eq(ns_dataset_load(&ds, p, "labels.idx", &o, &err), NS_EINPUT);
    assert_msg_has(err, "only with IDX");
    rm_temp(p);
}

Test(csv, test_file_with_training_vocabulary)
{
    ns_dataset tr, te;
    ns_err err = {0};
    ns_csv_opts o = {"y", NS_TASK_CLASSIFY, NULL, 0};
    cr_assert_eq(csv_load(&tr, "x,y\n1,cat\n2,dog\n3,cat\n", &o, &err), NS_OK, "%s", err.msg);
    o.class_names = tr.class_names;
    o.n_classes = tr.n_classes;
    cr_assert_eq(csv_load(&te, "x,y\n1,dog\n", &o, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(te.n_classes, 2);
    cr_assert_eq(te.y[0], 1);
    cr_assert_str_eq(te.class_names[1], "dog");
    cr_assert_neq(te.class_names, tr.class_names); /* its own copy */
    ns_dataset_free(&te);
    csv_bad("x,y\n1,dog\n2,bird\n", &o,
            "data.csv:3:2: label 'bird' is not one of the 2 training classes ('cat', 'dog')");
    ns_dataset_free(&tr);
    /* A numeric vocabulary: integer labels in range only. */
    ns_csv_opts on = {"y", NS_TASK_CLASSIFY, NULL, 3};
    cr_assert_eq(csv_load(&te, "x,y\n1,2\n", &on, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(te.n_classes, 3);
    ns_dataset_free(&te);
    csv_bad("x,y\n1,2\n1,3\n", &on, "data.csv:3:2: label '3' is not a class index 0..2");
    csv_bad("x,y\n1,cat\n", &on, "data.csv:2:2: label 'cat' is not a class index 0..2");
}

/* ---- CSV: malformed files ----------------------------------------------------------- */

static const ns_csv_opts Y = {"y", NS_TASK_CLASSIFY, NULL, 0};

Test(csv_bad, wrong_field_count)
{
    csv_bad("a,b,y\n1,2,0\n3,0\n", &Y, "data.csv:3:3: 2 fields but the header has 3 columns");
    csv_bad("a,b,y\n1,2,0,9\n", &Y, "data.csv:2:4: 4 fields but the header has 3 columns");
}

Test(csv_bad, non_numeric_cell)
{
    csv_bad("a,b,y\n1,2,0\n1,abc,0\n", &Y, "data.csv:3:2: 'abc' in column 'b' is not a number");
    csv_bad("a,b,y\n1,2x,0\n", &Y, "data.csv:2:2: '2x' in column 'b' is not a number");
    csv_bad("a,b,y\n1,,0\n", &Y, "data.csv:2:2: empty cell in column 'b'");
}

Test(csv_bad, non_finite_cell)
{
    csv_bad("a,y\n nan ,0\n", &Y, "data.csv:2:1: 'nan' in column 'a' is not a finite number");
    csv_bad("a,y\n1,0\n-inf,0\n", &Y, "data.csv:3:1: '-inf' in column 'a' is not a finite");
    csv_bad("a,y\n1e999,0\n", &Y, "data.csv:2:1: '1e999' in column 'a' is not a finite");
    csv_bad("a,y\n1e300,0\n", &Y, "beyond the float range");
    ns_csv_opts r = {"y", NS_TASK_REGRESS, NULL, 0};
    csv_bad("a,y\n1,NaN\n", &r, "data.csv:2:2: target 'NaN' is not finite");
}

Test(csv_bad, missing_label_column)
{
    ns_csv_opts o = {"target", NS_TASK_CLASSIFY, NULL, 0};
    csv_bad("a,b,y\n1,2,0\n", &o,
            "data.csv:1:1: no column named 'target' for the label; the columns are 'a', 'b', 'y'");
    o.label = "Y";
    csv_bad("a,b,y\n1,2,0\n", &o, "did you mean 'y'?");
    csv_bad("1,2,3\n1,2,0\n", &o, "row 1 looks like data");
    csv_bad("y\n1\n", &Y, "the label is the only column");
}

Test(csv_bad, header_only_and_empty)
{
    csv_bad("a,y\n", &Y, "data.csv:2:1: no data rows after the header");
    csv_bad("a,y\n\n  \n", &Y, "no data rows after the header");
    csv_bad("", &Y, "data.csv:1:1: the file is empty");
    csv_bad(" \n\r\n", &Y, "the file is empty");
}

Test(csv_bad, header_names)
{
    csv_bad("a,b,a,y\n1,2,3,0\n", &Y, "data.csv:1:3: column name 'a' repeats column 1");
    csv_bad("0,0,y\n0,0,1\n", &Y, "row 1 looks like data");
    csv_bad(",a,y\n0,1,2\n", &Y, "data.csv:1:1: column 1 has no name");
}

/* One rule for label columns (docs/config.md, data): all numbers -> class indices, and a
 * number that cannot be one is refused whether it is negative or fractional; any text ->
 * every label is a name. A fractional value used to turn the column into names silently. */
Test(csv_bad, numeric_labels_must_all_be_class_indices)
{
    const char *fix = "when every label is a number the labels are class indices 0..K-1";
    csv_bad("a,y\n1,0\n2,1\n3,1.5\n4,2\n", &Y, "data.csv:4:2: class label 1.5 is not a whole number");
    csv_bad("a,y\n1,0\n2,1\n3,1.5\n", &Y, fix);
    csv_bad("a,y\n1,0\n2,1\n3,-2\n", &Y, "data.csv:4:2: class label -2 is negative");
    csv_bad("a,y\n1,0\n2,1\n3,-2\n", &Y, fix);
    csv_bad("a,y\n1,0.25\n2,0.75\n", &Y, "set data.task: regression");
    /* a test file read with the training's numeric vocabulary follows the same rule */
    ns_csv_opts k3 = {"y", NS_TASK_CLASSIFY, NULL, 3};
    csv_bad("a,y\n1,0\n2,1.5\n", &k3, "data.csv:3:2: label '1.5' is not a class index 0..2");
}

Test(csv, numeric_labels_written_as_decimals_or_mixed_with_names)
{
    ns_dataset ds;
    ns_err err = {0};
    /* whole numbers written as decimals (pandas writes 1.0 after a NaN) are indices */
    cr_assert_eq(csv_load(&ds, "a,y\n1,0.0\n2,2\n3,1e0\n", &Y, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ds.n_classes, 3);
    cr_assert_null(ds.class_names);
    cr_assert(ds.y[0] == 0 && ds.y[1] == 2 && ds.y[2] == 1);
    ns_dataset_free(&ds);
    /* one label that is not a number: every label is a name, numbers included */
    cr_assert_eq(csv_load(&ds, "a,y\n1,1.5\n2,-1\n3,n/a\n4,-1\n", &Y, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ds.n_classes, 3);
    cr_assert_str_eq(ds.class_names[0], "1.5");
    cr_assert_str_eq(ds.class_names[1], "-1");
    cr_assert_str_eq(ds.class_names[2], "n/a");
    cr_assert(ds.y[1] == 1 && ds.y[3] == 1);
    ns_dataset_free(&ds);
    /* inf, nan and hex are text, not numbers */
    cr_assert_eq(csv_load(&ds, "a,y\n1,0\n2,inf\n3,0x1\n", &Y, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ds.n_classes, 3);
    cr_assert_str_eq(ds.class_names[1], "inf");
    ns_dataset_free(&ds);
}

Test(csv_bad, labels)
{
    csv_bad("a,y\n1,1\n2,-1\n", &Y, "data.csv:3:2: class label -1 is negative");
    csv_bad("a,y\n1,1\n2,1000000\n", &Y, "data.csv:3:2: class label 1000000 is too large");
    csv_bad("a,y\n1,\n", &Y, "data.csv:2:2: the label is empty");
    ns_csv_opts r = {"y", NS_TASK_REGRESS, NULL, 0};
    csv_bad("a,y\n1,cat\n", &r, "data.csv:2:2: target 'cat' is not a number");
}

Test(csv_bad, too_many_columns)
{
    /* 2^20 + 1 columns: the header's bookkeeping (80 bytes a column) would otherwise grow
     * without bound with a long first line */
    long ncol = (1L << 20) + 1;
    size_t cap = (size_t)ncol * 10 + 16, k = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    for (long j = 0; j < ncol; j++)
        k += (size_t)snprintf(text + k, cap - k, "c%ld,", j);
    k += (size_t)snprintf(text + k, cap - k, "y\n1,0\n");
    csv_bad(text, &Y, "data.csv:1:1: the header has more than 1048576 columns");
    free(text);
}

Test(csv_bad, quoting)
{
    csv_bad("a,y\n\"1,0\n2,1\n", &Y, "data.csv:2:1: the quoted field is never closed");
    csv_bad("a,y\n\"1\"x,0\n", &Y, "data.csv:2:1: text after the closing quote");
    /* A newline inside a bad cell must not break the one-line message. */
    csv_bad("a,y\n\"1\n2\",0\n", &Y, "'1?2' in column 'a' is not a number");
}

Test(csv_bad, missing_file_and_bad_options)
{
    ns_dataset ds;
    ns_err err = {0};
    cr_assert_eq(ns_dataset_load_csv(&ds, "/nonexistent/d.csv", &Y, &err), NS_EINPUT);
    assert_zeroed(&ds);
    assert_msg_has(err, "/nonexistent/d.csv: cannot open: No such file or directory");
    char *names[1] = {"a"};
    ns_csv_opts o = {"y", NS_TASK_CLASSIFY, names, 0};
    csv_bad("a,y\n1,a\n", &o, "class names given with 0 classes");
}

/* ---- subset, counts, free ----------------------------------------------------------- */

Test(dataset, subset_class_counts_and_free)
{
    ns_dataset ds, sub;
    ns_err err = {0};
    ns_csv_opts o = {"y", NS_TASK_CLASSIFY, NULL, 0};
    cr_assert_eq(csv_load(&ds, "a,b,y\n1,2,u\n3,4,v\n5,6,u\n7,8,w\n", &o, &err), NS_OK, "%s",
                 err.msg);
    long counts[3];
    ns_dataset_class_counts(&ds, counts);
    cr_assert(counts[0] == 2 && counts[1] == 1 && counts[2] == 1);
    int32_t idx[2] = {3, 0};
    cr_assert_eq(ns_dataset_subset(&sub, &ds, idx, 2, &err), NS_OK, "%s", err.msg);
    cr_assert(sub.n == 2 && sub.d == 2 && sub.n_classes == 3);
    cr_assert(sub.x[0] == 7 && sub.x[1] == 8 && sub.x[2] == 1 && sub.x[3] == 2);
    cr_assert(sub.y[0] == 2 && sub.y[1] == 0);
    cr_assert_str_eq(sub.class_names[2], "w");
    cr_assert_str_eq(sub.feature_names[1], "b");
    cr_assert_neq(sub.feature_names, ds.feature_names);
    ns_dataset_free(&sub);
    cr_assert_eq(ns_dataset_subset(&sub, &ds, idx, 0, &err), NS_OK);
    cr_assert(sub.n == 0 && sub.y != NULL);
    ns_dataset_free(&sub);
    idx[1] = 4;
    cr_assert_eq(ns_dataset_subset(&sub, &ds, idx, 2, &err), NS_EINPUT);
    assert_zeroed(&sub);
    ns_dataset_free(&ds);
    ns_dataset zero = {0};
    ns_dataset_free(&zero);
    ns_dataset_free(&zero);
    ns_dataset_free(NULL);
}

/* ---- splits ------------------------------------------------------------------------- */

/* Classes of sizes 50, 30, 20, 2, 1, 0 interleaved. */
static void make_classes(ns_dataset *ds)
{
    static const long size[6] = {50, 30, 20, 2, 1, 0};
    memset(ds, 0, sizeof *ds);
    ds->n = 103;
    ds->d = 1;
    ds->n_classes = 6;
    ds->x = calloc(103, sizeof *ds->x);
    ds->y = malloc(103 * sizeof *ds->y);
    long left[6];
    memcpy(left, size, sizeof left);
    for (long i = 0, c = 0; i < 103; c = (c + 1) % 6) {
        if (left[c]) {
            ds->y[i++] = (int32_t)c;
            left[c]--;
        }
    }
}

static void check_partition(const int32_t *tr, long nt, const int32_t *va, long nv, long n)
{
    cr_assert_eq(nt + nv, n);
    char *seen = calloc((size_t)n, 1);
    for (long i = 0; i < nt; i++) {
        cr_assert(i == 0 || tr[i] > tr[i - 1], "train rows ascending");
        cr_assert(!seen[tr[i]]++);
    }
    for (long i = 0; i < nv; i++) {
        cr_assert(i == 0 || va[i] > va[i - 1], "val rows ascending");
        cr_assert(!seen[va[i]]++, "row %d in both", va[i]);
    }
    free(seen);
}

Test(split, stratified_counts_exact_and_partition)
{
    ns_dataset ds;
    make_classes(&ds);
    int32_t tr[103], va[103];
    long nt, nv;
    ns_err err = {0};
    cr_assert_eq(ns_split_stratified(&ds, 0.2, 42, tr, &nt, va, &nv, &err), NS_OK, "%s", err.msg);
    check_partition(tr, nt, va, nv, 103);
    /* round(0.2 m) per class, at least one training row kept: 10, 6, 4, 0, 0, 0. */
    long want[6] = {10, 6, 4, 0, 0, 0}, got[6] = {0};
    for (long i = 0; i < nv; i++)
        got[ds.y[va[i]]]++;
    for (int c = 0; c < 6; c++)
        cr_assert_eq(got[c], want[c], "class %d: %ld val rows", c, got[c]);
    /* A large fraction still leaves each class one training row. */
    cr_assert_eq(ns_split_stratified(&ds, 0.99, 1, tr, &nt, va, &nv, &err), NS_OK);
    check_partition(tr, nt, va, nv, 103);
    cr_assert_eq(nt, 5);
    ns_dataset_free(&ds);
}

Test(split, deterministic_and_seeded)
{
    ns_dataset ds;
    make_classes(&ds);
    int32_t tr[103], va[103], tr2[103], va2[103];
    long nt, nv, nt2, nv2;
    cr_assert_eq(ns_split_stratified(&ds, 0.3, 7, tr, &nt, va, &nv, NULL), NS_OK);
    cr_assert_eq(ns_split_stratified(&ds, 0.3, 7, tr2, &nt2, va2, &nv2, NULL), NS_OK);
    cr_assert(nt == nt2 && nv == nv2);
    cr_assert(memcmp(va, va2, (size_t)nv * sizeof *va) == 0);
    cr_assert(memcmp(tr, tr2, (size_t)nt * sizeof *tr) == 0);
    cr_assert_eq(ns_split_stratified(&ds, 0.3, 8, tr2, &nt2, va2, &nv2, NULL), NS_OK);
    cr_assert_eq(nv, nv2, "the counts do not depend on the seed");
    cr_assert(memcmp(va, va2, (size_t)nv * sizeof *va) != 0, "another seed, other rows");
    ns_dataset_free(&ds);
}

Test(split, regression_zero_fraction_and_bad_fraction)
{
    ns_dataset ds = {0};
    ds.n = 10;
    ds.d = 1;
    ds.task = NS_TASK_REGRESS;
    ds.x = calloc(10, sizeof *ds.x);
    ds.t = calloc(10, sizeof *ds.t);
    int32_t tr[10], va[10];
    long nt, nv;
    ns_err err = {0};
    cr_assert_eq(ns_split_stratified(&ds, 0.3, 3, tr, &nt, va, &nv, &err), NS_OK);
    check_partition(tr, nt, va, nv, 10);
    cr_assert_eq(nv, 3);
    cr_assert_eq(ns_split_stratified(&ds, 0.0, 3, tr, &nt, va, &nv, &err), NS_OK);
    cr_assert(nt == 10 && nv == 0);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(tr[i], i);
    const double bad[3] = {-0.1, 1.0, NAN};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(ns_split_stratified(&ds, bad[i], 3, tr, &nt, va, &nv, &err), NS_EINPUT);
        assert_msg_has(err, "validation fraction");
    }
    ns_dataset_free(&ds);
}

/* ---- row limits (data.max_rows) ------------------------------------------------------ */

/* Draws m rows of make_classes' 103 and checks they are ascending, distinct, and per class
 * the counts of Hamilton's rule (want). */
static void check_sample(const ns_dataset *ds, long m, uint64_t seed, const long want[6])
{
    int32_t idx[103];
    long k = -1, got[6] = {0};
    ns_err err = {0};
    cr_assert_eq(ns_sample_stratified(ds, m, seed, idx, &k, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(k, m < ds->n ? m : ds->n);
    for (long i = 0; i < k; i++) {
        cr_assert(idx[i] >= 0 && idx[i] < ds->n);
        cr_assert(i == 0 || idx[i] > idx[i - 1], "rows ascending and distinct");
        got[ds->y[idx[i]]]++;
    }
    for (int c = 0; c < 6; c++)
        cr_assert_eq(got[c], want[c], "m %ld, class %d: %ld rows, want %ld", m, c, got[c], want[c]);
}

Test(sample, stratified_counts_sum_to_m)
{
    ns_dataset ds;
    make_classes(&ds); /* classes of 50, 30, 20, 2, 1, 0 rows */
    /* m 20: shares 9.71, 5.83, 3.88, 0.39, 0.19: floors 9, 5, 3; the 3 rows left go to the
     * largest remainders (classes 2, 1, 0). m 50: 24.27, 14.56, 9.71, 0.97, 0.49: floors
     * 24, 14, 9 and the 3 left to classes 3, 2, 1, so a class of 2 rows keeps one. m 102:
     * 49.51, 29.71, 19.81, 1.98, 0.99: the 4 rows left go to classes 4, 3, 2, 1 (the row
     * dropped is one of the largest class's). */
    check_sample(&ds, 20, 5, (const long[6]){10, 6, 4, 0, 0, 0});
    check_sample(&ds, 50, 5, (const long[6]){24, 15, 10, 1, 0, 0});
    check_sample(&ds, 102, 5, (const long[6]){49, 30, 20, 2, 1, 0});
    check_sample(&ds, 103, 5, (const long[6]){50, 30, 20, 2, 1, 0});
    check_sample(&ds, 1000, 5, (const long[6]){50, 30, 20, 2, 1, 0}); /* more than n: every row */
    ns_dataset_free(&ds);
}

Test(sample, deterministic_and_seeded)
{
    ns_dataset ds;
    make_classes(&ds);
    int32_t a[103], b[103];
    long na, nb;
    cr_assert_eq(ns_sample_stratified(&ds, 40, 9, a, &na, NULL), NS_OK);
    cr_assert_eq(ns_sample_stratified(&ds, 40, 9, b, &nb, NULL), NS_OK);
    cr_assert(na == 40 && nb == 40 && memcmp(a, b, 40 * sizeof *a) == 0, "same seed, same rows");
    cr_assert_eq(ns_sample_stratified(&ds, 40, 10, b, &nb, NULL), NS_OK);
    cr_assert(memcmp(a, b, 40 * sizeof *a) != 0, "another seed, other rows");
    ns_dataset_free(&ds);
}

Test(sample, regression_and_bad_counts)
{
    ns_dataset ds = {0};
    ds.n = 10;
    ds.d = 1;
    ds.task = NS_TASK_REGRESS;
    ds.x = calloc(10, sizeof *ds.x);
    ds.t = calloc(10, sizeof *ds.t);
    int32_t idx[10];
    long k;
    ns_err err = {0};
    cr_assert_eq(ns_sample_stratified(&ds, 4, 1, idx, &k, &err), NS_OK);
    cr_assert_eq(k, 4);
    for (long i = 1; i < k; i++)
        cr_assert(idx[i] > idx[i - 1]);
    cr_assert_eq(ns_sample_stratified(&ds, 0, 1, idx, &k, &err), NS_EINPUT);
    assert_msg_has(err, "at least 1");
    cr_assert_eq(k, 0);
    cr_assert_eq(ns_sample_stratified(&ds, -3, 1, idx, &k, &err), NS_EINPUT);
    ns_dataset_free(&ds);
}

/* ---- cross-validation folds ---------------------------------------------------------- */

Test(folds, stratified_balanced_and_deterministic)
{
    ns_dataset ds;
    make_classes(&ds);
    enum { N = 103, K = 5 };
    int32_t f[N], g[N];
    ns_err err = {0};
    cr_assert_eq(ns_folds_stratified(&ds, K, 11, f, &err), NS_OK, "%s", err.msg);
    long size[K] = {0}, per[6][K] = {{0}}, count[6] = {0};
    for (long i = 0; i < N; i++) {
        cr_assert(f[i] >= 0 && f[i] < K, "row %ld in fold %d", i, f[i]);
        size[f[i]]++;
        per[ds.y[i]][f[i]]++;
        count[ds.y[i]]++;
    }
    /* 103 rows: folds of 21, 21, 21, 20, 20 in some order; each class floor/ceil(m / 5) */
    for (int k = 0; k < K; k++)
        cr_assert(size[k] == N / K || size[k] == N / K + 1, "fold %d has %ld rows", k, size[k]);
    for (int c = 0; c < 6; c++)
        for (int k = 0; k < K; k++)
            cr_assert(per[c][k] == count[c] / K || per[c][k] == count[c] / K + 1,
                      "class %d (%ld rows): %ld in fold %d", c, count[c], per[c][k], k);
    cr_assert_eq(ns_folds_stratified(&ds, K, 11, g, &err), NS_OK);
    cr_assert(memcmp(f, g, sizeof f) == 0, "same seed, same folds");
    cr_assert_eq(ns_folds_stratified(&ds, K, 12, g, &err), NS_OK);
    cr_assert(memcmp(f, g, sizeof f) != 0, "another seed, other folds");
    ns_dataset_free(&ds);
}

Test(folds, regression_and_bad_counts)
{
    ns_dataset ds = {0};
    ds.n = 10;
    ds.d = 1;
    ds.task = NS_TASK_REGRESS;
    ds.x = calloc(10, sizeof *ds.x);
    ds.t = calloc(10, sizeof *ds.t);
    int32_t f[10];
    ns_err err = {0};
    cr_assert_eq(ns_folds_stratified(&ds, 3, 1, f, &err), NS_OK);
    long size[3] = {0};
    for (int i = 0; i < 10; i++)
        size[f[i]]++;
    cr_assert(size[0] + size[1] + size[2] == 10 && size[0] >= 3 && size[1] >= 3 && size[2] >= 3);
    cr_assert_eq(ns_folds_stratified(&ds, 1, 1, f, &err), NS_EINPUT);
    assert_msg_has(err, "folds");
    cr_assert_eq(ns_folds_stratified(&ds, 11, 1, f, &err), NS_EINPUT);
    ns_dataset_free(&ds);
}

/* ---- standardisation ---------------------------------------------------------------- */

Test(standardizer, mean_zero_std_one_and_constant_feature)
{
    enum { N = 500, D = 4 };
    ns_dataset ds = {0};
    ds.n = N;
    ds.d = D;
    ds.task = NS_TASK_REGRESS;
    ds.x = malloc(N * D * sizeof *ds.x);
    ds.t = malloc(N * sizeof *ds.t);
    ns_rng r;
    ns_rng_seed(&r, 5);
    for (int i = 0; i < N; i++) {
        ds.x[i * D + 0] = (float)ns_rng_normal(&r);
        ds.x[i * D + 1] = (float)(3.0 * ns_rng_uniform(&r) - 100.0);
        ds.x[i * D + 2] = 0.1f; /* constant, not exact in binary */
        /* Large offset: the float mean is exact to 1e-3, i.e. 1e-4 of this spread. */
        ds.x[i * D + 3] = (float)(1e4 + 10 * ns_rng_normal(&r));
        ds.t[i] = (float)(50 + 10 * ns_rng_normal(&r));
    }
    ns_standardizer s;
    ns_err err = {0};
    cr_assert_eq(ns_standardizer_fit(&s, &ds, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(s.d, D);
    cr_assert_eq(s.scale[2], 1.0f);
    cr_assert(s.t_std > 5 && s.t_std < 15);
    ns_standardizer_apply(&s, ds.x, ds.n);
    ns_standardizer_apply_targets(&s, ds.t, ds.n);
    for (int j = 0; j <= D; j++) {
        double m = 0, v = 0;
        for (int i = 0; i < N; i++)
            m += j < D ? ds.x[i * D + j] : ds.t[i];
        m /= N;
        for (int i = 0; i < N; i++) {
            double e = (j < D ? ds.x[i * D + j] : ds.t[i]) - m;
            v += e * e;
        }
        double sd = sqrt(v / N);
        cr_assert(fabs(m) < 1e-4, "column %d mean %g", j, m);
        if (j == 2) {
            for (int i = 0; i < N; i++)
                cr_assert(isfinite(ds.x[i * D + j]) && fabs(ds.x[i * D + j]) < 1e-6);
        } else {
            cr_assert(fabs(sd - 1) < 1e-3, "column %d std %g", j, sd);
        }
    }
    ns_standardizer_free(&s);
    ns_standardizer_free(&s);
    ns_dataset_free(&ds);
}

Test(standardizer, classification_targets_constant_and_empty)
{
    ns_dataset ds = {0};
    ds.n = 3;
    ds.d = 2;
    ds.task = NS_TASK_REGRESS;
    float x[6] = {0, 5, 0, 5, 0, 5}, t[3] = {2, 2, 2};
    ds.x = x;
    ds.t = t;
    ns_standardizer s;
    ns_err err = {0};
    cr_assert_eq(ns_standardizer_fit(&s, &ds, &err), NS_OK);
    cr_assert(s.scale[0] == 1 && s.scale[1] == 1 && s.mean[1] == 5);
    cr_assert(s.t_mean == 2 && s.t_std == 1);
    ns_standardizer_free(&s);
    ds.task = NS_TASK_CLASSIFY;
    ds.t = NULL;
    cr_assert_eq(ns_standardizer_fit(&s, &ds, &err), NS_OK);
    cr_assert(s.t_mean == 0 && s.t_std == 1);
    ns_standardizer_free(&s);
    ds.n = 0;
    cr_assert_eq(ns_standardizer_fit(&s, &ds, &err), NS_EINPUT);
    cr_assert_null(s.mean);
}

Test(standardizer, values_near_the_float_maximum_stay_finite)
{
    /* -3.4e38 - 1.7e38 (the mean) overflows a float although the standardised value is
     * about -1.7 */
    enum { N = 4, D = 1 };
    float x[N] = {3.4e38f, 3.4e38f, 3.4e38f, -3.4e38f};
    ns_dataset ds = {.n = N, .d = D, .task = NS_TASK_REGRESS, .x = malloc(sizeof x),
                     .t = calloc(N, sizeof(float))};
    memcpy(ds.x, x, sizeof x);
    ns_standardizer s;
    ns_err err = {0};
    cr_assert_eq(ns_standardizer_fit(&s, &ds, &err), NS_OK, "%s", err.msg);
    ns_standardizer_apply(&s, ds.x, N);
    double m = 0, sd = 0;
    for (int i = 0; i < N; i++)
        m += (double)x[i] / N;
    for (int i = 0; i < N; i++)
        sd += ((double)x[i] - m) * ((double)x[i] - m) / N;
    sd = sqrt(sd);
    for (int i = 0; i < N; i++) {
        cr_assert(isfinite(ds.x[i]), "row %d: %g", i, ds.x[i]);
        cr_assert_float_eq(ds.x[i], ((double)x[i] - m) / sd, 1e-5, "row %d: %g", i, ds.x[i]);
    }
    ns_standardizer_free(&s);
    ns_dataset_free(&ds);
}
