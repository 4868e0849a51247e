/* export.c — `export` of status_export.h: copies a study's winner, as its final model's
 * config, out under two provenance lines, checked first to be a fixed config that `nnsearch
 * train` runs as-is. It reads the study without its lock and writes only the exported
 * file, atomically. status.c prints the study. */
#include "search/cli/status_export.h"
#include "search/cli/study_text.h"

#include "engine/atomic.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "search/config/config.h"
#include "search/stages/driver.h"
#include "search/study/store.h"
#include "search/study/view.h"

#ifndef NS_VERSION
#define NS_VERSION "unknown"
#endif

static int oom(const char *where, ns_err *err)
{
    return ns_err_set(err, NS_ERUNTIME, "%s: out of memory", where);
}

/* The whole file, NUL-terminated (caller frees); NULL with errno set on failure. */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - 1 - n, f);
        if (ferror(f)) {
            int e = errno;
            free(b);
            b = NULL;
            errno = e;
            break;
        }
        if (feof(f))
            break;
        char *nb = realloc(b, cap *= 2);
        if (!nb) {
            free(b);
            errno = ENOMEM;
        }
        b = nb;
    }
    fclose(f);
    if (b) {
        b[n] = '\0';
        *len = n;
    }
    return b;
}

/* Writes a then b to path atomically (engine/atomic.h): path holds the old file or the
 * whole new one, never a part. The output path is the user's: failures are NS_EINPUT. */
static int write_atomic(const char *path, const char *a, size_t alen, const char *b,
                        size_t blen, ns_err *err)
{
    ns_atomic_file out;
    if (ns_atomic_check_dest(path, err)) /* a folder or a device: its own reason */
        return NS_EINPUT;
    int rc = ns_atomic_open(&out, path, NULL);
    if (!rc) {
        fwrite(a, 1, alen, out.f);
        fwrite(b, 1, blen, out.f);
        rc = ns_atomic_commit(&out, NULL); /* a short write shows in the stream's error flag */
    }
    if (rc) {
        int e = errno;
        return ns_err_set(err, ns_err_code_of_errno(e), "%s: cannot write the exported config: "
                          "%s; check that the folder exists, is writable and has free space",
                          path, strerror(e));
    }
    return NS_OK;
}

/* The two provenance lines (caller frees); NULL when out of memory. */
static char *provenance(const char *dir, const ns_study_row *st, const ns_trial_row *best,
                        const char *out_path)
{
    char *buf = NULL, *abs = realpath(dir, NULL);
    size_t len = 0;
    char num[40], date[32];
    time_t now = time(NULL);
    struct tm tm;
    if (!gmtime_r(&now, &tm) || !strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(date, sizeof date, "unknown date");
    ns_text_num(num, sizeof num, best->val_metric);
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        free(abs);
        return NULL;
    }
    fprintf(f, "# exported by nnsearch %s from study ", NS_VERSION);
    ns_text_line(f, st->name);
    fputs(" (", f);
    ns_text_line(f, abs ? abs : dir);
    fprintf(f, "), trial %d, ", best->number);
    ns_text_line(f, st->metric);
    fprintf(f, " %s, config hash ", num);
    ns_text_line(f, st->config_hash);
    fprintf(f, ", %s\n# run it with: nnsearch train ", date);
    ns_text_line(f, out_path);
    fputc('\n', f);
    free(abs);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

int ns_cmd_export(const char *dir, const char *out_path, FILE *out, ns_err *err)
{
    ns_store *s = NULL;
    ns_study_row st = {0};
    ns_trial_row best = {0};
    int found = 0;
    ns_final_model_kind final_kind = NS_FINAL_MODEL_OWN;
    char *def_path = NULL, *src = NULL, *text = NULL, *header = NULL;
    size_t len = 0;
    char *d = ns_text_dir(dir);
    if (!d)
        return oom(dir, err);
    int rc = ns_study_open_readonly(d, &s, err);
    if (rc != NS_OK)
        goto done;
    rc = ns_store_begin(s, err);
    if (rc == NS_OK)
        rc = ns_store_study_get(s, &st, err);
    if (rc == NS_OK)
        rc = ns_store_best(s, st.higher_is_better, NS_SELECT_REJECT, &best, &found, err);
    if (rc == NS_OK) { /* a final stage's trial is the choice (ns_study_stages_choice) */
        ns_stage_row *stages = NULL;
        int n_stages = 0;
        rc = ns_store_stages(s, &stages, &n_stages, err);
        long fin = rc == NS_OK ? ns_study_stages_choice(stages, n_stages, &final_kind) : -1;
        ns_stage_rows_free(stages, n_stages);
        ns_trial_row t;
        int tf = 0;
        if (fin >= 0 && (rc = ns_store_trial_get(s, (int)fin, &t, &tf, err)) == NS_OK && tf) {
            if (t.state == NS_TRIAL_COMPLETE && isfinite(t.val_metric)) {
                if (found)
                    ns_trial_row_free(&best);
                best = t;
                found = 1;
            } else {
                ns_trial_row_free(&t);
            }
        }
    }
    ns_store_rollback(s);
    ns_store_close(s);
    if (rc != NS_OK)
        goto done;
    if (!found) {
        rc = ns_err_set(err, NS_EINPUT, "%s: no complete trial to export yet", d);
        goto done;
    }
    if (!out_path)
        out_path = def_path = ns_text_printf("%s/best.yaml", d);
    /* the winner is exported as its final model, whichever the decision made: the fold
     * ensemble or the refit on every training row (cross-validated), its config with
     * decision offsets (holdout), else its own config */
    src = ns_text_printf("%s/trials/%d/%s", d, best.number,
               final_kind == NS_FINAL_MODEL_ENSEMBLE  ? NS_ENSEMBLE_CONFIG
               : final_kind == NS_FINAL_MODEL_OFFSETS ? NS_OFFSETS_CONFIG
               : final_kind == NS_FINAL_MODEL_REFIT   ? NS_REFIT_CONFIG
                                                      : "config.yaml");
    if (src && access(src, F_OK) != 0) {
        free(src);
        src = ns_text_printf("%s/trials/%d/config.yaml", d, best.number);
    }
    if (!out_path || !src) {
        rc = oom(d, err);
        goto done;
    }
    {
        char *db = ns_text_printf("%s/study.db", d), *wal = ns_text_printf("%s/study.db-wal", d),
             *shm = ns_text_printf("%s/study.db-shm", d), *cs = ns_text_printf("%s/config.source", d),
             *lk = ns_text_printf("%s/study.lock", d);
        const char *in[] = {db, wal, shm, cs, lk, src};
        rc = ns_atomic_check_not_input(out_path, in, 6, err);
        free(db), free(wal), free(shm), free(cs), free(lk);
        if (rc)
            goto done;
    }
    if (!(text = read_all(src, &len))) {
        rc = ns_err_set(err, NS_EINPUT, "%s: cannot read the config of trial %d (the best): %s; "
                        "the study folder is incomplete: restore the file, or run the search "
                        "again in a new folder", src, best.number, strerror(errno));
        goto done;
    }
    /* What is exported must be what `nnsearch train` runs: check it before writing. */
    ns_config c;
    if ((rc = ns_config_parse(&c, src, text, len, err)) != NS_OK)
        goto done;
    int fixed = c.space.n == 0 && !c.search.given;
    ns_config_free(&c);
    if (!fixed) {
        rc = ns_err_set(err, NS_EINPUT, "%s: the config of trial %d is not a fixed training "
                        "config (it has search spaces or a search: section); the study folder "
                        "was changed: run the search again in a new folder", src, best.number);
        goto done;
    }
    if (!(header = provenance(d, &st, &best, out_path))) {
        rc = oom(d, err);
        goto done;
    }
    if ((rc = write_atomic(out_path, header, strlen(header), text, len, err)) != NS_OK)
        goto done;
    fprintf(out, "%s\n", out_path);
    if (fflush(out) != 0)
        rc = ns_err_set(err, NS_ERUNTIME, "%s: writing to the output: %s", out_path,
                        strerror(errno));
done:
    free(header);
    free(text);
    free(src);
    free(def_path);
    ns_trial_row_free(&best);
    ns_study_row_free(&st);
    free(d);
    return rc;
}
