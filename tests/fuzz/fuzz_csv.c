/* fuzz_csv.c — libFuzzer target for the CSV loader (ns_dataset_load_csv, and
 * ns_dataset_load, which sniffs the format). Byte 0 picks the options, the rest is the
 * file (a memory file): bit 0 gzips it; bits 1-2 the label: column "label" with a built
 * vocabulary, no label, column "y" as a regression target, or "label" with the fixed names
 * {a, b, c}; bit 3 (with the first) fixes a numeric vocabulary of 3 classes; bit 4 reads
 * through ns_dataset_load. A dataset that loads must keep the loader's contract: finite
 * features, labels below n_classes, names where promised (a file the sniffing loader reads
 * as IDX has no label column). */
#include <math.h>
#include <stdlib.h>

#include "engine/data/data.h"
#include "tests/fuzz/fuzz_util.h"

/* idx: the sniffing loader read the file as IDX (two zero bytes after gunzip; no column
 * names), which carries no label column: without a labels file it is prediction input. */
static void check_dataset(const ns_dataset *ds, const ns_csv_opts *o, int idx)
{
    if (ds->n < 0 || ds->d < 0 || (ds->n && !ds->x))
        abort();
    for (long i = 0; i < ds->n * (long)ds->d; i++)
        if (!isfinite(ds->x[i]))
            abort();
    if (o && o->label && o->task == NS_TASK_CLASSIFY && !idx) {
        if (!ds->y && ds->n)
            abort();
        for (long i = 0; i < ds->n; i++)
            if (ds->y[i] < 0 || ds->y[i] >= ds->n_classes)
                abort();
        for (int c = 0; ds->class_names && c < ds->n_classes; c++)
            if (!ds->class_names[c])
                abort();
    }
    if (o && o->label && o->task == NS_TASK_REGRESS && !idx)
        for (long i = 0; i < ds->n; i++)
            if (!isfinite(ds->t[i]))
                abort();
    for (int j = 0; ds->feature_names && j < ds->d; j++)
        if (!ds->feature_names[j])
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0];
    static char *names[3] = {"a", "b", "c"};
    ns_csv_opts o = {.label = "label", .task = NS_TASK_CLASSIFY};
    const ns_csv_opts *op = &o;
    switch ((mode >> 1) & 3) {
    case 0:
        o.n_classes = mode & 8 ? 3 : 0;
        break;
    case 1:
        op = NULL;
        break;
    case 2:
        o.label = "y";
        o.task = NS_TASK_REGRESS;
        break;
    case 3:
        o.class_names = names;
        o.n_classes = 3;
        break;
    }
    const char *path = fz_memfile(0, data + 1, size - 1, mode & 1);
    ns_dataset ds;
    ns_err err;
    int rc = mode & 16 ? ns_dataset_load(&ds, path, NULL, op, &err)
                       : ns_dataset_load_csv(&ds, path, op, &err);
    if (fz_report(rc, &err) == NS_OK)
        check_dataset(&ds, op, (mode & 16) && !ds.feature_names); /* CSV names its columns */
    ns_dataset_free(&ds);
    return 0;
}
