/* testutil.h — helpers shared by the Criterion tests: temporary files, the tolerance
 * check |ref - x| <= atol + rtol * |ref| that reports the worst element, and a small
 * classification data set. */
#ifndef NS_TESTUTIL_H
#define NS_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/data/data.h"

/* Writes len bytes to a new file in a fresh temporary folder; returns its path (static
 * storage per call index is not shared: the caller frees the returned string). */
char *tu_write_temp(const char *name, const void *data, size_t len);
/* A fresh, empty temporary folder (caller frees). */
char *tu_temp_dir(void);
/* Largest |a - b| / (atol + rtol |a|) over n; <= 1 means all within tolerance.
 * *worst receives the index of the worst element. */
double tu_close_ratio(const double *ref, const float *x, size_t n, double atol, double rtol,
                      size_t *worst);

/* Three Gaussian blobs in d dimensions, n rows in random order from seed: class c sits at
 * 1.5 on the features j with j % 3 == c, with noise sd spread. Free with ns_dataset_free. */
void tu_blobs(ns_dataset *ds, long n, int d, uint64_t seed, double spread);

#endif
