/* predict.c — model file (or ensemble file) + new data -> predictions CSV. Columns of a CSV
 * are matched to the model's features by name, so column order and extra columns do not
 * matter. An ensemble's prediction is the mean of its members'; nothing here trains. */
#include "search/cli/predict.h"

#include "engine/atomic.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "engine/data/data.h"
#include "engine/train/metrics.h"
#include "model/infer.h"
#include "model/modelfile.h"

/* 1 if the first line of a text file (gzipped or not) has a comma-separated field equal to
 * name (quotes and surrounding blanks ignored). The header may be of any length. */
static int header_has(const char *path, const char *name)
{
    gzFile f = gzopen(path, "rb"); /* reads a plain file as it is */
    if (!f)
        return 0;
    char *line = NULL;
    size_t len = 0, cap = 0;
    int found = 0, c;
    while ((c = gzgetc(f)) >= 0 && c != '\n') {
        if (len + 2 > cap) {
            char *bigger = realloc(line, cap = cap ? 2 * cap : 256);
            if (!bigger)
                break;
            line = bigger;
        }
        line[len++] = (char)c;
        line[len] = 0;
    }
    if (line && len > 0) {
        line[strcspn(line, "\r\n")] = 0;
        char *save = NULL;
        for (char *tok = strtok_r(line, ",", &save); tok && !found; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ' || *tok == '"')
                tok++;
            size_t n = strlen(tok);
            while (n && (tok[n - 1] == ' ' || tok[n - 1] == '"'))
                tok[--n] = 0;
            found = !strcmp(tok, name);
        }
    }
    free(line);
    gzclose(f);
    return found;
}

/* 1 if the file (inside its gzip, if gzipped) starts as text, not as IDX's zero bytes. */
static int is_text(const char *path)
{
    gzFile f = gzopen(path, "rb");
    if (!f)
        return 0;
    unsigned char b[2] = {0, 0};
    int n = gzread(f, b, 2);
    gzclose(f);
    return n >= 1 && b[0] != 0;
}

/* Reorders ds's columns to the model's feature order (by name); extra columns are left out. */
static int match_columns(ns_dataset *ds, const ns_model_file *mf, const char *data_path, ns_err *err)
{
    return ns_dataset_match_columns(ds, mf->feature_names, mf->spec.n_in, 1, data_path,
                                    "the model was trained with it", err);
}

static void write_field(FILE *f, const char *s)
{
    if (strpbrk(s, ",\"\n\r")) {
        fputc('"', f);
        for (; *s; s++) {
            if (*s == '"')
                fputc('"', f);
            fputc(*s, f);
        }
        fputc('"', f);
    } else {
        fputs(s, f);
    }
}

void ns_predict_summary_free(ns_predict_summary *sum)
{
    if (!sum)
        return;
    ns_drift_report_free(&sum->drift);
    memset(sum, 0, sizeof *sum);
}

int ns_predict_file(const char *model_path, const char *data_path, const char *labels_path,
                    const char *out_path, int drift_check, ns_predict_summary *sum,
                    ns_err *err)
{
    memset(sum, 0, sizeof *sum);
    ns_model_file *mm = NULL;
    int n_models = 0;
    ns_dataset ds = {0};
    ns_infer r = {0};
    float *probs = NULL; /* (EB, K): one member's probabilities or outputs for a batch */
    FILE *out = stdout;
    ns_atomic_file af = {0};
    double *acc = NULL;
    const char *inputs[] = {model_path, data_path, labels_path};
    if (out_path && (ns_atomic_check_dest(out_path, err) || /* before the work, not after it */
                     ns_atomic_check_not_input(out_path, inputs, 3, err)))
        return NS_EINPUT;
    long *conf = NULL; /* (K, K) confusion matrix when the data has labels */
    /* A model file is an ensemble of one: the mean of one member's outputs is that
     * member's outputs, bit for bit (below). */
    int rc = ns_models_load(model_path, &mm, &n_models, err);
    if (rc)
        return rc;
    /* Members agree on task, columns, classes and names (ns_models_load checked it):
     * member 0 speaks for all of them in what follows. */
    const ns_model_file *mf = &mm[0];

    ns_csv_opts o = {.label = NULL, .task = mf->task};
    int text = is_text(data_path);
    if (text && labels_path) {
        rc = ns_err_set(err, NS_EINPUT, "%s: --labels is for IDX images; a CSV brings its labels in "
                        "its '%s' column", data_path, mf->label_name ? mf->label_name : "label");
        goto done;
    }
    if (text && mf->label_name && header_has(data_path, mf->label_name)) {
        o.label = mf->label_name;
        o.class_names = mf->class_names;
        o.n_classes = mf->n_classes;
    }
    if ((rc = ns_dataset_load(&ds, data_path, text ? NULL : labels_path, &o, err)))
        goto done;
    if ((rc = match_columns(&ds, mf, data_path, err)))
        goto done;
    if (ds.y && mf->task == NS_TASK_CLASSIFY && ds.n_classes > mf->n_classes) {
        rc = ns_err_set(err, NS_EINPUT, "%s: labels go up to %d but the model knows %d classes",
                        labels_path ? labels_path : data_path, ds.n_classes - 1, mf->n_classes);
        goto done;
    }

    /* One network holds one member's weights at a time (ns_infer): memory stays one
     * network and one batch whatever the member count. */
    const int EB = 1024, K = mf->spec.n_out;
    if ((rc = ns_infer_open(&r, EB, err)))
        goto done;
    probs = malloc((size_t)EB * K * sizeof *probs);
    acc = malloc((size_t)EB * K * sizeof *acc);
    if (!probs || !acc) {
        rc = ns_err_set(err, NS_ERUNTIME, "out of memory");
        goto done;
    }
    if (out_path) {
        if ((rc = ns_atomic_open(&af, out_path, err)))
            goto done;
        out = af.f;
    }
    fputs("row,prediction", out);
    if (mf->task == NS_TASK_CLASSIFY)
        for (int c = 0; c < K; c++) {
            fputs(",p_", out);
            if (mf->class_names)
                write_field(out, mf->class_names[c]);
            else
                fprintf(out, "%d", c);
        }
    fputc('\n', out);
    long hits = 0;
    double sq = 0;
    if (mf->task == NS_TASK_CLASSIFY && ds.y && !(conf = calloc((size_t)K * K, sizeof *conf))) {
        rc = ns_err_set(err, NS_ERUNTIME, "out of memory");
        goto done;
    }
    for (long i0 = 0; i0 < ds.n; i0 += EB) {
        int B = (int)(ds.n - i0 < EB ? ds.n - i0 : EB);
        /* acc = the mean over members, in double, of the probabilities (classification)
         * or of the outputs in target units (regression: each member maps back with its
         * own target statistics). The first member is copied rather than added to 0, and
         * x / 1 is x, so one member gives its own values exactly (-0 included). */
        for (int k = 0; k < n_models; k++) {
            const ns_model_file *mk = &mm[k];
            if ((rc = ns_infer_run(&r, mk, ds.x + (size_t)i0 * ds.d, B, 1, NS_INFER_PROBS, probs,
                                   err)))
                goto done;
            const float *p = probs;
            for (int i = 0; i < B; i++)
                for (int c = 0; c < (mk->task == NS_TASK_CLASSIFY ? K : 1); c++) {
                    size_t at = (size_t)i * K + c;
                    double v = mk->task == NS_TASK_CLASSIFY
                                   ? (double)p[at]
                                   : (double)p[at] * mk->stdz.t_std + mk->stdz.t_mean;
                    acc[at] = k ? acc[at] + v : v;
                }
        }
        for (int i = 0; i < B; i++) {
            double *q = acc + (size_t)i * K;
            for (int c = 0; c < (mf->task == NS_TASK_CLASSIFY ? K : 1); c++)
                q[c] /= n_models;
            fprintf(out, "%ld,", i0 + i);
            if (mf->task == NS_TASK_CLASSIFY) {
                int arg = 0;
                for (int c = 1; c < K; c++)
                    if (q[c] > q[arg])
                        arg = c;
                if (mf->class_names)
                    write_field(out, mf->class_names[arg]);
                else
                    fprintf(out, "%d", arg);
                for (int c = 0; c < K; c++)
                    fprintf(out, ",%.6g", q[c]);
                if (ds.y) {
                    hits += ds.y[i0 + i] == arg;
                    if (ds.y[i0 + i] >= 0 && ds.y[i0 + i] < K)
                        conf[(size_t)ds.y[i0 + i] * K + arg]++;
                }
            } else {
                double v = q[0];
                fprintf(out, "%.9g", v);
                if (ds.t)
                    sq += (v - ds.t[i0 + i]) * (v - ds.t[i0 + i]);
            }
            fputc('\n', out);
        }
    }
    sum->rows = ds.n;
    if (ds.y && ds.n) {
        sum->has_accuracy = 1;
        sum->accuracy = (double)hits / ds.n;
        ns_class_metrics(conf, K, &sum->balanced_acc, &sum->macro_f1);
    }
    if (ds.t && ds.n) {
        sum->has_rmse = 1;
        sum->rmse = sqrt(sq / ds.n);
    }
    /* The drift check runs once the rows are no longer needed raw: it standardises them in
     * place, in the units of the statistics. An ensemble is checked against member 0's
     * standardisation and training statistics: one reference, whose numbers are those of
     * one model file (the members of a fold ensemble saw most of the same rows). One
     * O(n d) pass, small next to the forward passes. */
    if (drift_check && !mf->fstats.d) {
        sum->drift_state = NS_DRIFT_NO_STATS;
    } else if (drift_check) {
        ns_standardizer_apply(&mf->stdz, ds.x, ds.n);
        if ((rc = ns_drift_check(&sum->drift, &mf->fstats, mf->feature_names, ds.x, ds.n, ds.d,
                                 err)))
            goto done;
        sum->drift_state = NS_DRIFT_DONE;
    }
    if (out_path) {
        rc = ns_atomic_commit(&af, err); /* frees af: nothing left for `done` */
    } else if (fflush(stdout)) {
        rc = ns_err_set(err, NS_ERUNTIME, "cannot write predictions: %s", strerror(errno));
    }
done:
    ns_atomic_abort(&af); /* no-op once committed or never opened */
    free(conf);
    free(acc);
    free(probs);
    ns_infer_close(&r);
    ns_dataset_free(&ds);
    ns_models_free(mm, n_models);
    return rc;
}
