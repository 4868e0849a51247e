/* view.c — reading a whole study (view.h) for status, export and the report: one snapshot,
 * the best-first order and the study's answer. It decides nothing the driver did not: the
 * order is ns_store_best's and the choice is the stages' own decision. */
#include "search/study/view.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "search/study/json.h"

int ns_study_open_readonly(const char *dir, ns_store **s, ns_err *err)
{
    *s = NULL;
    size_t n = strlen(dir) + sizeof "/study.db";
    char *db = malloc(n);
    if (!db)
        return ns_err_set(err, NS_ERUNTIME, "%s: out of memory", dir);
    snprintf(db, n, "%s/study.db", dir);
    struct stat sb;
    int missing = stat(db, &sb) != 0 || !S_ISREG(sb.st_mode);
    free(db);
    int rc = ns_store_check_damage(dir, err); /* trials without their study.db */
    if (rc)
        return rc;
    if (missing)
        return ns_err_set(err, NS_EINPUT, "%s: no study here (no study.db); run nnsearch CONFIG "
                          "first", dir);
    return ns_store_open_readonly(s, dir, err);
}

void ns_study_view_free(ns_study_view *v)
{
    ns_study_row_free(&v->study);
    ns_stage_rows_free(v->stages, v->n_stages);
    ns_trial_rows_free(v->trials, v->n_trials);
    memset(v, 0, sizeof *v);
}

int ns_study_view_read(ns_store *s, ns_study_view *v, ns_err *err)
{
    memset(v, 0, sizeof *v);
    int rc = ns_store_study_get(s, &v->study, err);
    if (rc == NS_OK)
        rc = ns_store_stages(s, &v->stages, &v->n_stages, err);
    if (rc == NS_OK)
        rc = ns_store_trials(s, &v->trials, &v->n_trials, err);
    if (rc != NS_OK)
        ns_study_view_free(v);
    return rc;
}

int ns_study_view_load(const char *dir, ns_study_view *v, ns_err *err)
{
    ns_store *s;
    memset(v, 0, sizeof *v);
    int rc = ns_study_open_readonly(dir, &s, err);
    if (rc != NS_OK)
        return rc;
    rc = ns_store_begin(s, err);
    if (rc == NS_OK)
        rc = ns_study_view_read(s, v, err);
    ns_store_rollback(s);
    ns_store_close(s);
    return rc;
}

int ns_trial_rank_class(const ns_trial_row *t)
{
    if (t->state != NS_TRIAL_COMPLETE || !isfinite(t->val_metric))
        return 2;
    return t->health_flags > 0 && (t->health_flags & NS_SELECT_REJECT) ? 1 : 0;
}

typedef struct ranked {
    const ns_trial_row *t;
    int higher_is_better;
} ranked;

static int rank_cmp(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    int ca = ns_trial_rank_class(a->t), cb = ns_trial_rank_class(b->t);
    if (ca != cb)
        return ca - cb;
    if (ca < 2 && a->t->val_metric != b->t->val_metric) {
        int lower = a->t->val_metric < b->t->val_metric;
        return (lower != a->higher_is_better) ? -1 : 1;
    }
    return (a->t->number > b->t->number) - (a->t->number < b->t->number);
}

const ns_trial_row **ns_study_view_rank(const ns_study_view *v)
{
    size_t n = (size_t)(v->n_trials ? v->n_trials : 1);
    ranked *r = malloc(n * sizeof *r);
    const ns_trial_row **out = malloc(n * sizeof *out);
    if (!r || !out) {
        free(r);
        free(out);
        return NULL;
    }
    for (int i = 0; i < v->n_trials; i++)
        r[i] = (ranked){&v->trials[i], v->study.higher_is_better};
    qsort(r, (size_t)v->n_trials, sizeof *r, rank_cmp);
    for (int i = 0; i < v->n_trials; i++)
        out[i] = r[i].t;
    free(r);
    return out;
}

long ns_study_stages_choice(const ns_stage_row *stages, int n, ns_final_model_kind *final)
{
    for (int i = n - 1; i >= 0; i--) {
        const char *colon = strchr(stages[i].name, ':');
        double t;
        if (stages[i].state != NS_STAGE_COMPLETE || !colon)
            continue;
        if ((!strcmp(colon + 1, "final") && ns_json_get_num(stages[i].decision, "trial", &t)) ||
            (!strcmp(colon + 1, "select") && ns_json_get_num(stages[i].decision, "winner", &t))) {
            char kind[16] = "";
            if (final) {
                ns_json_get_str(stages[i].decision, "final", kind, sizeof kind);
                *final = !strcmp(kind, "refit")      ? NS_FINAL_MODEL_REFIT
                         : !strcmp(kind, "ensemble") ? NS_FINAL_MODEL_ENSEMBLE
                         : !strcmp(kind, "offsets")  ? NS_FINAL_MODEL_OFFSETS
                                                     : NS_FINAL_MODEL_OWN;
            }
            return (long)t;
        }
    }
    return -1;
}

const ns_trial_row *ns_study_view_best(const ns_study_view *v, const ns_trial_row *const *ranked)
{
    long fin = ns_study_stages_choice(v->stages, v->n_stages, NULL);
    for (int i = 0; fin >= 0 && i < v->n_trials; i++)
        if (v->trials[i].number == fin && ns_trial_rank_class(&v->trials[i]) < 2)
            return &v->trials[i];
    return v->n_trials > 0 && ns_trial_rank_class(ranked[0]) < 2 ? ranked[0] : NULL;
}
