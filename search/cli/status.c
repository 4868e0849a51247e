/* status.c — `status` and the search's closing summary of status_export.h: reads a study
 * through the store (read-only, one snapshot), ranks its trials and prints them as a table
 * or as one JSON object. It decides nothing and writes nothing in the study; the JSON it
 * reads is the driver's, checked only far enough to embed it safely. export.c copies the
 * winner's config out. */
#include "search/cli/status_export.h"
#include "search/cli/study_text.h"

#include "search/study/json.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "search/config/config.h"
#include "search/stages/driver.h"
#include "search/study/store.h"
#include "search/study/view.h"

/* ---- small helpers ------------------------------------------------------------------ */

static int oom(const char *where, ns_err *err)
{
    return ns_err_set(err, NS_ERUNTIME, "%s: out of memory", where);
}

/* ---- JSON --------------------------------------------------------------------------- */

/* Copies valid JSON [b, e) without the space outside strings. */
static void put_compact(FILE *f, const char *b, const char *e)
{
    int in_str = 0;
    for (const char *p = b; p < e; p++) {
        if (in_str) {
            fputc(*p, f);
            if (*p == '\\')
                fputc(*++p, f);
            else if (*p == '"')
                in_str = 0;
        } else if (*p == '"') {
            in_str = 1;
            fputc(*p, f);
        } else if (!isspace((unsigned char)*p)) {
            fputc(*p, f);
        }
    }
}

/* s as a JSON string (NULL: null). */
static void put_str(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(f, "\\u%04x", c);
            else
                fputc(c, f);
        }
    }
    fputc('"', f);
}

/* A stored JSON column as JSON: NULL as null, valid JSON compacted, anything else (a
 * column written by hand) as a string, so that the output stays one valid object. */
static void put_embedded(FILE *f, const char *t)
{
    if (!t)
        fputs("null", f);
    else if (ns_json_valid(t))
        put_compact(f, ns_json_skip_ws(t), t + strlen(t));
    else
        put_str(f, t);
}

/* A number as JSON: non-finite as null, finite with every bit. */
static void put_num(FILE *f, double v)
{
    char buf[40];
    if (!isfinite(v)) {
        fputs("null", f);
        return;
    }
    ns_text_num(buf, sizeof buf, v);
    fputs(buf, f);
}

/* A JSON object as "key=value key=value" for the table (strings without their quotes, but
 * for those with a space, which keep them and their escapes);
 * "-" for NULL or {}; other JSON compacted; text that is not JSON as it is. */
static void put_pairs(FILE *f, const char *t)
{
    if (!t) {
        fputc('-', f);
        return;
    }
    if (!ns_json_valid(t)) {
        ns_text_line(f, t);
        return;
    }
    const char *p = ns_json_skip_ws(t);
    if (*p != '{') {
        put_compact(f, p, t + strlen(t));
        return;
    }
    p = ns_json_skip_ws(p + 1);
    if (*p == '}') {
        fputc('-', f);
        return;
    }
    for (int first = 1;; first = 0) {
        const char *kend = ns_json_string_end(p); /* valid JSON: a key, ':', a value, ',' or '}' */
        if (!first)
            fputc(' ', f);
        put_compact(f, p + 1, kend - 1);
        fputc('=', f);
        const char *v = ns_json_skip_ws(ns_json_skip_ws(kend) + 1);
        const char *vend = ns_json_value_end(v);
        if (*v == '"' && memchr(v, ' ', (size_t)(vend - v)))
            fwrite(v, 1, (size_t)(vend - v), f); /* quoted: a phrase stays one value */
        else if (*v == '"')
            put_compact(f, v + 1, vend - 1);
        else
            put_compact(f, v, vend);
        p = ns_json_skip_ws(vend);
        if (*p == '}')
            return;
        p = ns_json_skip_ws(p + 1);
    }
}

/* The text of a JSON string's body [b, e) on one line: escapes decoded, a \\u escape or a
 * control character as '?'. */
static void put_unescaped(FILE *f, const char *b, const char *e)
{
    for (const char *p = b; p < e; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\\' && p + 1 < e) {
            c = (unsigned char)*++p;
            if (c == 'u') {
                p += 4;
                c = '?';
            } else if (c != '"' && c != '\\' && c != '/') {
                c = ' ';
            }
        }
        fputc(c < 0x20 || c == 0x7f ? '?' : c, f);
    }
}

/* Each finding of a health array as "PREFIX code: message (fix: ...)" on its own line;
 * nothing for NULL, [] or text that is not an array of objects. */
static void put_findings_at(FILE *f, const char *p, const char *prefix);

static void put_findings(FILE *f, const char *t, const char *prefix)
{
    if (t && ns_json_valid(t))
        put_findings_at(f, ns_json_skip_ws(t), prefix);
}

/* The same for a valid JSON value at p. */
static void put_findings_at(FILE *f, const char *p, const char *prefix)
{
    if (*p != '[')
        return;
    p = ns_json_skip_ws(p + 1);
    while (*p == '{') {
        const char *end = ns_json_value_end(p), *b, *e;
        fputs(prefix, f);
        if (ns_json_get(p, "code", &b, &e))
            put_unescaped(f, b, e);
        if (ns_json_get(p, "message", &b, &e)) {
            fputs(": ", f);
            put_unescaped(f, b, e);
        }
        if (ns_json_get(p, "fix", &b, &e)) {
            fputs(" (fix: ", f);
            put_unescaped(f, b, e);
            fputc(')', f);
        }
        fputc('\n', f);
        p = ns_json_skip_ws(end);
        if (*p != ',')
            break;
        p = ns_json_skip_ws(p + 1);
    }
}

/* Each element of the array at p (valid JSON) that is an object: fn(f, object). */
static void for_each_object(FILE *f, const char *p, void (*fn)(FILE *, const char *))
{
    if (*p != '[')
        return;
    p = ns_json_skip_ws(p + 1);
    while (*p == '{') {
        fn(f, p);
        p = ns_json_skip_ws(ns_json_value_end(p));
        if (*p != ',')
            break;
        p = ns_json_skip_ws(p + 1);
    }
}

/* key's value of the object at obj, on the line as it is (strings without quotes). */
static void put_field(FILE *f, const char *obj, const char *key, const char *missing)
{
    const char *b, *e;
    if (ns_json_get(obj, key, &b, &e))
        put_unescaped(f, b, e);
    else
        fputs(missing, f);
}

static void put_pair_row(FILE *f, const char *o)
{
    const char *b, *e;
    fputs("           ", f);
    put_field(f, o, "pair", "?");
    fputs(": mean val loss ", f);
    put_field(f, o, "mean_val_loss", "-");
    if (ns_json_get(o, "ci95", &b, &e)) {
        fputs(", 95% CI ", f);
        put_compact(f, b, e);
    }
    fputs(", p vs leader ", f);
    put_field(f, o, "p_vs_leader", "-");
    if (ns_json_get(o, "excluded", &b, &e) && strncmp(b, "null", 4)) {
        fputs(", excluded: ", f);
        put_unescaped(f, b, e);
    }
    fputc('\n', f);
}

static void put_other_row(FILE *f, const char *o)
{
    fputs("           trial ", f);
    put_field(f, o, "trial", "?");
    fputs(": ", f);
    put_field(f, o, "why", "");
    fputc('\n', f);
}

/* A select decision's eligibility as one line: "eligible E of N trials; not eligible: 20
 * pruned, 6 overfitting, ..." (the reasons with a count, in the decision's order; a trial
 * with several findings counts under each). Nothing for a decision without "ineligible". */
static void put_eligibility(FILE *f, const char *decision)
{
    const char *b, *e;
    double considered, eligible;
    if (!ns_json_get(decision, "ineligible", &b, &e) || *b != '{' ||
        !ns_json_get_num(decision, "considered", &considered))
        return;
    if (!ns_json_get_num(decision, "eligible", &eligible))
        eligible = 0;
    fprintf(f, "           eligible %.0f of %.0f trials", eligible, considered);
    const char *p = ns_json_skip_ws(b + 1), *sep = "; not eligible: ";
    while (*p == '"') {
        const char *kend = ns_json_string_end(p);
        const char *v = ns_json_skip_ws(ns_json_skip_ws(kend) + 1);
        const char *vend = ns_json_value_end(v);
        char *numend;
        double count = strtod(v, &numend);
        if (numend == vend && count > 0) {
            fprintf(f, "%s%.0f ", sep, count);
            put_unescaped(f, p + 1, kend - 1);
            sep = ", ";
        }
        p = ns_json_skip_ws(vend);
        if (*p != ',')
            break;
        p = ns_json_skip_ws(p + 1);
    }
    fputc('\n', f);
}

/* The object under key in decision as a string of its own (malloc'd), so that its keys
 * are read without the rest's; NULL when there is none or out of memory. */
static char *object_of(const char *decision, const char *key)
{
    const char *b, *e;
    if (!ns_json_get(decision, key, &b, &e) || *b != '{')
        return NULL;
    char *obj = malloc((size_t)(e - b) + 1);
    if (obj) {
        memcpy(obj, b, (size_t)(e - b));
        obj[e - b] = 0;
    }
    return obj;
}

/* A cross-validated winner's final model, one line: "final model: fold ensemble of 5
 * members, trials/12/ensemble.yaml"; nothing when the decision made none. */
static void put_final(FILE *f, const char *decision)
{
    char kind[16], config[256];
    double members;
    if (!ns_json_get_str(decision, "final", kind, sizeof kind))
        return;
    char *obj = object_of(decision, kind);
    if (!obj)
        return;
    if (ns_json_get_str(obj, "config", config, sizeof config)) {
        if (!strcmp(kind, "ensemble") && ns_json_get_num(obj, "members", &members))
            fprintf(f, "           final model: fold ensemble of %.0f members (its fold models, "
                    "predictions averaged), %s\n", members, config);
        else if (!strcmp(kind, "offsets"))
            fprintf(f, "           final model: its own config with decision offsets, %s\n", config);
        else
            fprintf(f, "           final model: refit on every training row, %s\n", config);
    }
    free(obj);
}

/* The winner's estimate on new data, one line: "estimate on new data: val_acc 0.6923
 * (bootstrap bias-corrected over 102 candidates on 73 held-out rows, where the winner scored
 * 0.7671)", or why there is none. */
static void put_estimate(FILE *f, const char *decision, const char *metric)
{
    char *obj = object_of(decision, "estimate"), why[200], method[40];
    double v, meas, cands, rows;
    if (obj && ns_json_get_str(obj, "skipped", why, sizeof why))
        fprintf(f, "           estimate on new data: none (%s)\n", why);
    else if (obj && ns_json_get_num(obj, metric, &v) && ns_json_get_num(obj, "measured", &meas) &&
             ns_json_get_num(obj, "candidates", &cands) && ns_json_get_num(obj, "rows", &rows) &&
             ns_json_get_str(obj, "method", method, sizeof method)) {
        if (!strcmp(method, "re-scored"))
            fprintf(f, "           estimate on new data: %s %.4f (its mean over the re-scoring folds of "
                    "all %.0f rows, the best of %.0f re-scored; %.4f on the validation split)\n",
                    metric, v, rows, cands, meas);
        else
            fprintf(f, "           estimate on new data: %s %.4f (bootstrap bias-corrected over %.0f "
                    "candidates on %.0f held-out rows, where the winner scored %.4f)\n", metric, v,
                    cands, rows, meas);
    }
    free(obj);
}

/* The evidence of a compare (its ranking) or select (its eligibility, why the others
 * lost, its final model, its estimate) decision, one line each below the stage's line. */
static void put_stage_evidence(FILE *f, const ns_stage_row *st, const char *metric)
{
    const char *colon = strchr(st->name, ':'), *b, *e;
    if (!colon || !st->decision || !ns_json_valid(st->decision))
        return;
    if (!strcmp(colon + 1, "compare") && ns_json_get(st->decision, "pairs", &b, &e)) {
        for_each_object(f, b, put_pair_row);
    } else if (!strcmp(colon + 1, "select")) {
        put_eligibility(f, st->decision);
        char advice[640];
        if (ns_json_get_str(st->decision, "advice", advice, sizeof advice))
            fprintf(f, "           advice: %s\n", advice);
        put_final(f, st->decision);
        put_estimate(f, st->decision, metric);
        if (ns_json_get(st->decision, "others", &b, &e))
            for_each_object(f, b, put_other_row);
    } else if (!strcmp(colon + 1, "final")) {
        put_final(f, st->decision);
    }
}

/* ---- reading a study: search/study/view.h ------------------------------------------- */

/* A cross-validated trial's folds, one line: "folds:   4-fold cross-validation x 1, 4 folds
 * run, standard error 0.005847: 0.9387 0.912 ..."; nothing for a holdout trial. */
static void put_folds(FILE *f, const ns_trial_row *t)
{
    double v[64], se, k, r;
    int n = t->result ? ns_json_get_nums(t->result, "folds", v, 64) : -1;
    if (n < 1 || !ns_json_get_num(t->result, "cv", &k) || !ns_json_get_num(t->result, "repeats", &r))
        return;
    fprintf(f, "folds:   %.0f-fold cross-validation x %.0f, %d fold%s run", k, r, n, n == 1 ? "" : "s");
    if (ns_json_get_num(t->result, "val_se", &se))
        fprintf(f, ", standard error %.4g", se);
    fputs(":", f);
    for (int i = 0; i < n && i < 64; i++)
        fprintf(f, " %.4g", v[i]);
    fputs(n > 64 ? " ...\n" : "\n", f);
}

/* ---- status ------------------------------------------------------------------------- */

/* How many trials a stage recorded, how many of them ended and how many were pruned. */
typedef struct stage_count {
    int trials, ended, pruned;
} stage_count;

static stage_count count_stage(const ns_study_view *v, const char *stage)
{
    stage_count c = {0, 0, 0};
    for (int i = 0; i < v->n_trials; i++) {
        const ns_trial_row *t = &v->trials[i];
        if (strcmp(t->stage, stage))
            continue;
        c.trials++;
        c.ended += t->state == NS_TRIAL_COMPLETE || t->state == NS_TRIAL_PRUNED ||
                   t->state == NS_TRIAL_DIVERGED || t->state == NS_TRIAL_FAILED;
        c.pruned += t->state == NS_TRIAL_PRUNED;
    }
    return c;
}

/* The prune rate of a stage that prunes (a bayes stage, or one with a pruned trial):
 * "pruned P of N trials (R%)", of the ended trials while some are still to run. */
static void put_prune_rate(FILE *f, const ns_study_view *v, const ns_stage_row *st)
{
    const char *colon = strchr(st->name, ':');
    stage_count c = count_stage(v, st->name);
    if (c.trials == 0 || (c.pruned == 0 && !(colon && !strcmp(colon + 1, "bayes"))))
        return;
    fprintf(f, "           pruned %d of %d %strials (%.0f%%)", c.pruned, c.ended,
            c.ended < c.trials ? "ended " : "", c.ended ? 100.0 * c.pruned / c.ended : 0.0);
    if (c.ended < c.trials)
        fprintf(f, "; %d in all", c.trials);
    fputc('\n', f);
}

static void put_trial_json(FILE *f, const ns_trial_row *t)
{
    fprintf(f, "{\"number\":%d,\"stage\":", t->number);
    put_str(f, t->stage);
    fputs(",\"state\":", f);
    put_str(f, ns_trial_state_name(t->state));
    fputs(",\"params\":", f);
    put_embedded(f, t->params);
    fputs(",\"val_metric\":", f);
    put_num(f, t->val_metric);
    fprintf(f, ",\"epochs\":%d,\"seconds\":", t->epochs);
    put_num(f, t->seconds);
    fputs(",\"health\":", f);
    put_embedded(f, t->health);
    fputs(",\"result\":", f);
    put_embedded(f, t->result);
    fputc('}', f);
}

static void status_json(FILE *f, const ns_study_view *v, const ns_trial_row *best)
{
    const ns_study_row *st = &v->study;
    fputs("{\"study\":{\"name\":", f);
    put_str(f, st->name);
    fputs(",\"metric\":", f);
    put_str(f, st->metric);
    fprintf(f, ",\"higher_is_better\":%s,\"seed\":%llu,\"config_hash\":",
            st->higher_is_better ? "true" : "false", (unsigned long long)st->seed);
    put_str(f, st->config_hash);
    fputs(",\"data_checks\":", f);
    put_embedded(f, st->data_checks);
    fputs("},\"stages\":[", f);
    for (int i = 0; i < v->n_stages; i++) {
        fputs(i ? ",{\"name\":" : "{\"name\":", f);
        put_str(f, v->stages[i].name);
        fputs(",\"state\":", f);
        put_str(f, ns_stage_state_name(v->stages[i].state));
        stage_count c = count_stage(v, v->stages[i].name);
        fprintf(f, ",\"trials\":%d,\"ended\":%d,\"pruned\":%d,\"decision\":", c.trials, c.ended,
                c.pruned);
        put_embedded(f, v->stages[i].decision);
        fputc('}', f);
    }
    fputs("],\"trials\":[", f);
    for (int i = 0; i < v->n_trials; i++) {
        if (i)
            fputc(',', f);
        put_trial_json(f, &v->trials[i]);
    }
    fputs("],\"best\":", f);
    if (best)
        put_trial_json(f, best);
    else
        fputs("null", f);
    fputs("}\n", f);
}

static int max_int(int a, int b)
{
    return a > b ? a : b;
}

static void status_text(FILE *f, const char *dir, const ns_study_view *v, const ns_trial_row *const *r,
                        const ns_trial_row *best)
{
    const ns_study_row *st = &v->study;
    char num[40];
    fputs("study:   ", f);
    ns_text_line(f, st->name);
    fputs(" (", f);
    ns_text_line(f, dir);
    fputs(")\nmetric:  ", f);
    ns_text_line(f, st->metric);
    fprintf(f, " (%s is better)\nconfig:  hash ", st->higher_is_better ? "higher" : "lower");
    ns_text_line(f, st->config_hash);
    fprintf(f, ", seed %llu\n", (unsigned long long)st->seed);

    const char *fb, *fe;
    if (!st->data_checks)
        fputs("data:    not checked\n", f);
    else if (!ns_json_valid(st->data_checks) || !ns_json_get(st->data_checks, "findings", &fb, &fe) ||
             *ns_json_skip_ws(ns_json_skip_ws(fb) + 1) == ']')
        fputs("data:    checks passed (imbalance, shift, non-finite, constant, duplicates)\n", f);
    else {
        fputs("data:\n", f);
        put_findings_at(f, fb, "  ");
    }
    if (v->n_stages == 0)
        fputs("stages:  none yet\n", f);
    else
        fputs("stages:\n", f);
    int wname = 0;
    for (int i = 0; i < v->n_stages; i++)
        wname = max_int(wname, (int)strlen(v->stages[i].name));
    for (int i = 0; i < v->n_stages; i++) {
        fputs("  ", f);
        ns_text_line(f, v->stages[i].name);
        fprintf(f, "%*s  %-8s  ", wname - (int)strlen(v->stages[i].name), "",
                ns_stage_state_name(v->stages[i].state));
        put_pairs(f, v->stages[i].decision);
        fputc('\n', f);
        put_prune_rate(f, v, &v->stages[i]);
        put_stage_evidence(f, &v->stages[i], st->metric);
    }

    if (v->n_trials == 0) {
        fputs("trials:  none yet\n", f);
    } else {
        int count[NS_TRIAL_INTERRUPTED + 1] = {0};
        for (int i = 0; i < v->n_trials; i++)
            if ((int)v->trials[i].state >= 0 && v->trials[i].state <= NS_TRIAL_INTERRUPTED)
                count[v->trials[i].state]++;
        fprintf(f, "trials:  %d (", v->n_trials);
        const char *sep = "";
        for (int s = 0; s <= NS_TRIAL_INTERRUPTED; s++) {
            if (count[s]) {
                fprintf(f, "%s%d %s", sep, count[s], ns_trial_state_name((ns_trial_state)s));
                sep = ", ";
            }
        }
        fputs("), best first\n", f);
        int wnum = 5, wstage = 5, wstate = 5, wmetric = max_int(8, (int)strlen(st->metric));
        for (int i = 0; i < v->n_trials; i++) {
            wnum = max_int(wnum, snprintf(num, sizeof num, "%d", v->trials[i].number));
            wstage = max_int(wstage, (int)strlen(v->trials[i].stage));
            wstate = max_int(wstate, (int)strlen(ns_trial_state_name(v->trials[i].state)));
        }
        int whealth = 6;
        char hc[256];
        for (int i = 0; i < v->n_trials; i++) {
            ns_health_flags_text(v->trials[i].health_flags, hc, sizeof hc);
            whealth = max_int(whealth, (int)strlen(hc));
        }
        fprintf(f, "  %*s  %-*s  %-*s  %*s  %6s  %8s  %-*s  params\n", wnum, "trial", wstage, "stage",
                wstate, "state", wmetric, st->metric, "epochs", "seconds", whealth, "health");
        for (int i = 0; i < v->n_trials; i++) {
            const ns_trial_row *t = r[i];
            fprintf(f, "  %*d  ", wnum, t->number);
            ns_text_line(f, t->stage);
            fprintf(f, "%*s  %-*s  ", wstage - (int)strlen(t->stage), "", wstate,
                    ns_trial_state_name(t->state));
            if (isfinite(t->val_metric))
                snprintf(num, sizeof num, "%.6g", t->val_metric);
            else
                snprintf(num, sizeof num, "-");
            fprintf(f, "%*s  %6d  ", wmetric, num, t->epochs);
            if (isfinite(t->seconds))
                snprintf(num, sizeof num, "%.1f", t->seconds);
            else
                snprintf(num, sizeof num, "-");
            fprintf(f, "%8s  ", num);
            ns_health_flags_text(t->health_flags, hc, sizeof hc);
            fprintf(f, "%-*s  ", whealth, hc);
            put_pairs(f, t->params);
            fputc('\n', f);
        }
        for (int i = 0; i < v->n_trials; i++) {
            const ns_trial_row *t = &v->trials[i];
            if (t->state == NS_TRIAL_FAILED && t->error) {
                fprintf(f, "failed:  trial %d: ", t->number);
                ns_text_line(f, t->error);
                fputc('\n', f);
            }
        }
    }

    /* why trials that scored better than the best lost, and the best's own findings */
    for (int i = 0; best && i < v->n_trials; i++) {
        const ns_trial_row *t = r[i];
        if (ns_trial_rank_class(t) != 1 || t->val_metric == best->val_metric ||
            (t->val_metric > best->val_metric) != (st->higher_is_better != 0))
            continue;
        char pre[64];
        snprintf(pre, sizeof pre, "skipped: trial %d (%s ", t->number, st->metric);
        fputs(pre, f);
        ns_text_num(num, sizeof num, t->val_metric);
        fprintf(f, "%s) is not chosen:\n", num);
        put_findings(f, t->health, "           ");
    }
    if (best) {
        char pre[64];
        snprintf(pre, sizeof pre, "           ");
        if (best->health_flags > 0) {
            int chosen = ns_study_stages_choice(v->stages, v->n_stages, NULL) == best->number;
            fprintf(f, "health:  trial %d%s:\n", best->number,
                    chosen ? " (the stages' choice)"
                    : ns_trial_rank_class(best) == 1 ? " (every complete trial has a disqualifying finding)"
                                            : "");
            put_findings(f, best->health, pre);
        }
        ns_text_num(num, sizeof num, best->val_metric);
        fprintf(f, "best:    trial %d (stage ", best->number);
        ns_text_line(f, best->stage);
        fputs("), ", f);
        ns_text_line(f, st->metric);
        fprintf(f, " %s after %d epochs; export it with: nnsearch export ", num, best->epochs);
        ns_text_line(f, dir);
        fputc('\n', f);
        put_folds(f, best);
    } else {
        fputs("best:    none yet (no complete trial)\n", f);
    }
}

/* The study in dir, read for printing: *d is dir without trailing slashes (caller frees
 * it and *v on NS_OK; nothing to free otherwise). */
static int view_open(const char *dir, char **d, ns_study_view *v, ns_err *err)
{
    if (!(*d = ns_text_dir(dir)))
        return oom(dir, err);
    int rc = ns_study_view_load(*d, v, err);
    if (rc != NS_OK) {
        free(*d);
        *d = NULL;
    }
    return rc;
}

int ns_cmd_status(const char *dir, int json, FILE *out, ns_err *err)
{
    ns_study_view v;
    const ns_trial_row **r = NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = NULL;
    char *d;
    int rc = view_open(dir, &d, &v, err);
    if (rc != NS_OK)
        return rc;
    /* Built in memory first: an error prints nothing, a success prints all at once. */
    if (!(r = ns_study_view_rank(&v)) || !(mem = open_memstream(&buf, &len))) {
        rc = oom(d, err);
        goto done;
    }
    const ns_trial_row *best = ns_study_view_best(&v, r);
    if (json)
        status_json(mem, &v, best);
    else
        status_text(mem, d, &v, r, best);
    if (fclose(mem) != 0) {
        mem = NULL;
        rc = oom(d, err);
        goto done;
    }
    mem = NULL;
    if (fwrite(buf, 1, len, out) != len || fflush(out) != 0)
        rc = ns_err_set(err, NS_ERUNTIME, "%s: writing the status: %s", d, strerror(errno));
done:
    if (mem)
        fclose(mem);
    free(buf);
    free((void *)r);
    ns_study_view_free(&v);
    free(d);
    return rc;
}

/* ---- the closing summary of a search ------------------------------------------------- */

/* The decision of the last complete select or final stage, or NULL. */
static const char *choice_decision(const ns_study_view *v)
{
    for (int i = v->n_stages - 1; i >= 0; i--) {
        const char *colon = strchr(v->stages[i].name, ':');
        if (v->stages[i].state == NS_STAGE_COMPLETE && colon && v->stages[i].decision &&
            (!strcmp(colon + 1, "final") || !strcmp(colon + 1, "select")))
            return v->stages[i].decision;
    }
    return NULL;
}

static void summary_text(FILE *f, const char *dir, const ns_study_view *v,
                         const ns_trial_row *const *r, const ns_trial_row *best, int top)
{
    const ns_study_row *st = &v->study;
    int rankable = 0;
    for (int i = 0; i < v->n_trials; i++)
        rankable += ns_trial_rank_class(r[i]) < 2;
    int k = rankable < top ? rankable : top;
    if (k == 0) {
        fprintf(f, "no complete trial among %d\n", v->n_trials);
        return;
    }
    fprintf(f, "top %d of %d trials by ", k, v->n_trials);
    ns_text_line(f, st->metric);
    fprintf(f, " (%s is better; trials without a disqualifying finding first):\n",
            st->higher_is_better ? "higher" : "lower");
    int wnum = 1, wstage = 1;
    char num[40], hc[256];
    for (int i = 0; i < k; i++) {
        wnum = max_int(wnum, snprintf(num, sizeof num, "%d", r[i]->number));
        wstage = max_int(wstage, (int)strlen(r[i]->stage));
    }
    for (int i = 0; i < k; i++) {
        const ns_trial_row *t = r[i];
        fprintf(f, " %s trial %*d  ", t == best ? "*" : " ", wnum, t->number);
        ns_text_line(f, t->stage);
        ns_health_flags_text(t->health_flags, hc, sizeof hc);
        fprintf(f, "%*s  %.4f  %3d epochs  %-11s  ", wstage - (int)strlen(t->stage), "",
                t->val_metric, t->epochs, hc);
        put_pairs(f, t->params);
        fputc('\n', f);
    }
    if (!best)
        return;
    fprintf(f, "winner: trial %d (stage ", best->number);
    ns_text_line(f, best->stage);
    fputs("), ", f);
    ns_text_line(f, st->metric);
    const char *d = choice_decision(v);
    double x;
    ns_final_model_kind fk = NS_FINAL_MODEL_OWN;
    const int chosen = d && ns_study_stages_choice(v->stages, v->n_stages, &fk) == best->number;
    /* the decision's figure when it chose this trial: select's re-scoring may have replaced
     * the trial's own (its mean over more folds), and the standard error below is of that */
    fprintf(f, " %.4f", chosen && ns_json_get_num(d, st->metric, &x) && isfinite(x) ? x : best->val_metric);
    if (chosen) {
        if (ns_json_get_num(d, "standard_error", &x) && isfinite(x))
            fprintf(f, " +- %.4f", x);
        if (ns_json_get_num(d, "test_acc", &x) && isfinite(x))
            fprintf(f, ", test_acc %.4f", x);
        if (ns_json_get_num(d, "test_rmse", &x) && isfinite(x))
            fprintf(f, ", test_rmse %.4g", x);
        if (fk == NS_FINAL_MODEL_ENSEMBLE)
            fputs(" (fold ensemble)", f);
        if (strstr(d, "\"applied\":true"))
            fputs(" (with decision offsets)", f);
        char *obj = object_of(d, "estimate");
        if (obj && ns_json_get_num(obj, st->metric, &x) && isfinite(x))
            fprintf(f, "; expected on new data %.4f", x);
        free(obj);
    }
    if (best->health_flags > 0) {
        ns_health_flags_text(best->health_flags, hc, sizeof hc);
        fprintf(f, "; health: %s (nnsearch status ", hc);
        ns_text_line(f, dir);
        fputs(" tells why)", f);
    }
    fputs("; export it with: nnsearch export ", f);
    ns_text_line(f, dir);
    fputc('\n', f);
}

int ns_cmd_summary(const char *dir, int top, FILE *out, ns_err *err)
{
    ns_study_view v;
    char *buf = NULL;
    size_t len = 0;
    char *d;
    int rc = view_open(dir, &d, &v, err);
    if (rc != NS_OK)
        return rc;
    const ns_trial_row **r = ns_study_view_rank(&v);
    FILE *mem = r ? open_memstream(&buf, &len) : NULL;
    if (!mem) {
        rc = oom(d, err);
    } else {
        summary_text(mem, d, &v, r, ns_study_view_best(&v, r), top);
        if (fclose(mem) != 0)
            rc = oom(d, err);
        else if (fwrite(buf, 1, len, out) != len || fflush(out) != 0)
            rc = ns_err_set(err, NS_ERUNTIME, "%s: writing the summary: %s", d, strerror(errno));
    }
    free(buf);
    free((void *)r);
    ns_study_view_free(&v);
    free(d);
    return rc;
}
