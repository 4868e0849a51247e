/* testutil.c — see testutil.h. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *tu_temp_dir(void)
{
    char tmpl[] = "/tmp/nnsearch-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
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
