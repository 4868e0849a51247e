/* data_impl.h — internal to the dataset module: what data.c, data_idx.c and data_csv.c share.
 * Not a public header: only engine/data/data*.c include it; everyone else sees data.h alone.
 * It declares only helpers used by more than one of those files; the rest stay static. */
#ifndef NS_DATA_IMPL_H
#define NS_DATA_IMPL_H

#include <stddef.h>

#include "engine/data/data.h"

/* data.c. Reads all of path, gzip'd or raw (zlib passes raw files through), into a malloc'd
 * buffer with a NUL after the data (the CSV tokenizer relies on it); caller frees *out.
 * *gz: whether it was decompressed. Errors name the path (and byte offset); *out NULL. */
int data_file_read(const char *path, char **out, size_t *out_len, int *gz, ns_err *err);

/* data.c. Deep copy of n strings (a NULL entry becomes ""); *out = NULL when src is NULL or
 * n <= 0. Returns 0 or -1 (out of memory, nothing left allocated). */
int data_strs_dup(char ***out, char *const *src, long n);

/* data_idx.c. The IDX loader behind ns_dataset_load_idx and ns_dataset_load;
 * fixed_classes > 0: labels must be below it (a vocabulary from training) and n_classes is
 * fixed_classes. Same contract as ns_dataset_load_idx otherwise. */
int data_idx_load(ns_dataset *ds, const char *images_path, const char *labels_path,
                  int fixed_classes, ns_err *err);

#endif
