/* testutil.c — see testutil.h. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "tests/testutil.h"

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/rng.h"

/* Folders made by this process; removed with their contents when it exits (Criterion runs
 * each test in its own process, so every test cleans up after itself). */
static char *made[256];
static int n_made;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_made(void)
{
    for (int i = 0; i < n_made; i++) {
        nftw(made[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(made[i]);
    }
    n_made = 0;
}

char *tu_temp_dir(void)
{
    char tmpl[] = "/tmp/nnsearch-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    if (!d)
        return NULL;
    if (n_made < (int)(sizeof made / sizeof *made)) {
        if (n_made == 0)
            atexit(rm_made);
        made[n_made++] = strdup(d);
    }
    return strdup(d);
}

char *tu_write_temp(const char *name, const void *data, size_t len)
{
    char *dir = tu_temp_dir();
    if (!dir)
        return NULL;
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    snprintf(path, n, "%s/%s", dir, name);
    free(dir);
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(path);
        return NULL;
    }
    if (len && fwrite(data, 1, len, f) != len) {
        fclose(f);
        free(path);
        return NULL;
    }
    fclose(f);
    return path;
}

double tu_close_ratio(const double *ref, const float *x, size_t n, double atol, double rtol,
                      size_t *worst)
{
    double w = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs(ref[i] - (double)x[i]) / (atol + rtol * fabs(ref[i]));
        if (!(r <= w)) { /* NaN counts as worst */
            w = isnan(r) ? INFINITY : r;
            wi = i;
        }
    }
    if (worst)
        *worst = wi;
    return w;
}

void tu_blobs(ns_dataset *ds, long n, int d, uint64_t seed, double spread)
{
    memset(ds, 0, sizeof *ds);
    ds->n = n;
    ds->d = d;
    ds->task = NS_TASK_CLASSIFY;
    ds->n_classes = 3;
    ds->x = malloc((size_t)n * d * sizeof(float));
    ds->y = malloc((size_t)n * sizeof(int32_t));
    ns_rng r;
    ns_rng_seed(&r, seed);
    for (long i = 0; i < n; i++) {
        int c = (int)ns_rng_below(&r, 3);
        ds->y[i] = c;
        for (int j = 0; j < d; j++)
            ds->x[i * d + j] = (float)((j % 3 == c ? 1.5 : 0.0) + spread * ns_rng_normal(&r));
    }
}
