/* report_answer.c — the report's first section, the answer: the winner with its standard
 * error and resampling, its validation and test figures and final model, how it was chosen
 * (eligibility, near-ties, re-scoring, advice), the other top trials and why they lost, its
 * findings, and its exported config with the commands that use it. It shows what the
 * decisions stored; it decides nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search/report/report_impl.h"
#include "search/study/json.h"

/* The whole file, NUL-terminated, at most cap bytes (caller frees); NULL when unreadable. */
static char *read_text(const char *path, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *b = malloc(cap + 1);
    size_t n = b ? fread(b, 1, cap, f) : 0;
    fclose(f);
    if (b)
        b[n] = '\0';
    return b;
}

/* One row of the metrics table: the validation value and, with a test column, the first
 * test value among the sources. */
static void metric_row(FILE *f, const char *label, const char *res, const char *vkey,
                       const char *const *tsrc, const char *tkey, int test)
{
    double v = NAN, t = NAN;
    char a[32], b[32];
    ns_rj_num(res, vkey, &v);
    for (int i = 0; i < 3; i++)
        if (tsrc[i] && ns_rj_num(tsrc[i], tkey, &t))
            break;
    if (!isfinite(v) && !isfinite(t))
        return;
    fprintf(f, "<tr><td>%s</td><td class=\"n\">%s</td>", label, ns_num(a, v));
    if (test)
        fprintf(f, "<td class=\"n\">%s</td>", ns_num(b, t));
    fputs("</tr>\n", f);
}

void ns_rep_view_answer(ns_report *r)
{
    FILE *f = r->f;
    const ns_trial_row *w = r->best;
    char num[32], num2[32];
    ns_rep_section(r, "answer", "The answer");
    if (!w) {
        int running = -1;
        for (int i = 0; i < r->v.n_stages; i++)
            if (r->v.stages[i].state == NS_STAGE_RUNNING)
                running = i;
        fputs("<p class=\"big\">No trial has completed with a metric yet", f);
        if (running >= 0) {
            fputs("; stage ", f);
            ns_html_text(f, r->v.stages[running].name);
            fputs(" is running", f);
        }
        fputs(".</p>\n</section>\n", f);
        return;
    }
    const char *res = ns_rj_doc(w->result);
    const char *dec = r->decider ? ns_rj_doc(r->decider->decision) : NULL;
    const char *kind = r->decider ? ns_rep_stage_kind(r->decider->name) : "";
    char final_kind[16] = "";
    const char *fin = NULL, *b, *e;
    if (dec && ns_rj_str(dec, "final", final_kind, sizeof final_kind) && ns_rj_get(dec, final_kind, &b, &e) &&
        *b == '{')
        fin = b;

    double se = NAN, k = NAN;
    if (!ns_rj_num(res, "val_se", &se) && dec)
        ns_rj_num(dec, "standard_error", &se);
    fprintf(f, "<p class=\"big\">Winner: <b>trial %d</b> (stage ", w->number);
    ns_html_text(f, w->stage);
    fputs("), ", f);
    ns_html_text(f, r->v.study.metric);
    fprintf(f, " <b>%s</b>", ns_num(num, w->val_metric));
    if (isfinite(se))
        fprintf(f, " &#177; %s (standard error)", ns_num(num2, se));
    if (ns_rj_num(res, "cv", &k)) {
        double rep = 1;
        ns_rj_num(res, "repeats", &rep);
        fprintf(f, ", %.0f-fold cross-validation x %.0f", k, rep);
    } else {
        fputs(", holdout validation", f);
    }
    fprintf(f, ", %d epochs.</p>\n", w->epochs);

    /* validation and test metrics: the test set is scored once, for the winner only */
    const char *tsrc[3] = {dec, fin, res};
    int has_test = 0;
    static const char *const tkeys[] = {"test_loss", "test_acc", "test_rmse", "test_macro_f1",
                                        "test_balanced_acc"};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 5; j++) {
            double t;
            if (tsrc[i] && ns_rj_num(tsrc[i], tkeys[j], &t) && isfinite(t))
                has_test = 1;
        }
    fprintf(f, "<table class=\"small\"><tr><th>metric</th><th>validation</th>%s</tr>\n",
            has_test ? "<th>test</th>" : "");
    metric_row(f, "loss", res, "val_loss", tsrc, "test_loss", has_test);
    metric_row(f, "accuracy", res, "val_acc", tsrc, "test_acc", has_test);
    metric_row(f, "balanced accuracy", res, "val_balanced_acc", tsrc, "test_balanced_acc", has_test);
    metric_row(f, "macro-F1", res, "val_macro_f1", tsrc, "test_macro_f1", has_test);
    metric_row(f, "RMSE", res, "val_rmse", tsrc, "test_rmse", has_test);
    fputs("</table>\n", f);
    if (has_test)
        fprintf(f, "<p class=\"note\">Test figures are the %s scored once on data.test; the test "
                "set never chose anything.</p>\n",
                !fin ? "winner's model"
                : !strcmp(final_kind, "ensemble") ? "fold ensemble"
                : !strcmp(final_kind, "offsets") ? "model of the winner's own config with decision offsets"
                                                 : "refit model");
    else
        fputs("<p class=\"note\">No test figures: the config has no data.test (or the winner was "
              "not scored on it).</p>\n", f);

    /* how it was chosen */
    fputs("<h3>How it was chosen</h3>\n<ul>\n", f);
    if (dec && !strcmp(kind, "select")) {
        double el = NAN, cons = NAN, params = NAN;
        ns_rj_num(dec, "eligible", &el);
        ns_rj_num(dec, "considered", &cons);
        fputs("<li>Stage <b>", f);
        ns_html_text(f, r->decider->name);
        if (isfinite(cons))
            fprintf(f, "</b> chose it among <b>%.0f eligible</b> of %.0f trials considered "
                    "(converged stably without overfitting)", el, cons);
        else
            fprintf(f, "</b> chose it among %.0f eligible trials", el);
        if (ns_rj_get(dec, "ineligible", &b, &e) && *b == '{') {
            const char *sep = "; not eligible: ";
            for (const char *p = ns_json_skip_ws(b + 1); *p == '"';) {
                const char *kend = ns_json_string_end(p);
                const char *v = ns_json_skip_ws(ns_json_skip_ws(kend) + 1);
                double c = strtod(v, NULL);
                if (c > 0) {
                    fprintf(f, "%s%.0f ", sep, c);
                    ns_html_text_n(f, p + 1, (size_t)(kend - 1 - (p + 1)));
                    sep = ", ";
                }
                p = ns_json_skip_ws(ns_json_value_end(v));
                if (*p != ',')
                    break;
                p = ns_json_skip_ws(p + 1);
            }
        }
        fputs(".</li>\n", f);
        if (ns_rj_get(dec, "fallback", &b, &e) && !strncmp(b, "true", 4))
            fputs("<li>No trial converged stably without overfitting: every complete trial was a "
                  "candidate (fallback).</li>\n", f);
        char advice[640];
        if (ns_rj_str(dec, "advice", advice, sizeof advice) > 0) {
            fputs("<li><b>Advice:</b> ", f);
            ns_html_text(f, advice);
            fputs(".</li>\n", f);
        }
        if (ns_rj_num(dec, "standard_error", &se))
            fprintf(f, "<li>Trials within the standard error of the best (%s) count as ties; among "
                    "ties the smaller and healthier model wins.</li>\n", ns_num(num, se));
        if (ns_rj_num(dec, "params", &params))
            fprintf(f, "<li>The winner has %.0f parameters.</li>\n", params);
        if (ns_rj_get(dec, "rescored", &b, &e) && *b == '{') {
            double rounds = 0;
            ns_rj_num(b, "rounds", &rounds);
            fprintf(f, "<li>With the study budget left, select re-scored the top candidates on new "
                    "folds (%.0f round%s); the metric above is the mean over all their folds.</li>\n",
                    rounds, rounds == 1 ? "" : "s");
        }
        if (fin) {
            double members = NAN;
            char cfg[256] = "";
            ns_rj_str(fin, "config", cfg, sizeof cfg);
            if (!strcmp(final_kind, "ensemble") && ns_rj_num(fin, "members", &members))
                fprintf(f, "<li>Final model: the fold ensemble of %.0f members (its fold models, "
                        "predictions averaged), ", members);
            else if (!strcmp(final_kind, "offsets"))
                fputs("<li>Final model: the winner's own config with decision offsets, ", f);
            else
                fputs("<li>Final model: the winner's config refit on every training row, ", f);
            ns_html_text(f, cfg);
            fputs(".</li>\n", f);
        }
        if (ns_rj_get(dec, "decision_offsets", &b, &e) && *b == '{') {
            char why[200] = "", mname[64];
            double before = NAN, after = NAN, rows = 0;
            if (ns_rj_str(b, "skipped", why, sizeof why)) {
                fputs("<li>No decision offsets: ", f);
                ns_html_text(f, why);
                fputs(".</li>\n", f);
            } else {
                snprintf(mname, sizeof mname, "%s_before", r->v.study.metric);
                ns_rj_num(b, mname, &before);
                snprintf(mname, sizeof mname, "%s_after", r->v.study.metric);
                ns_rj_num(b, mname, &after);
                ns_rj_num(b, "rows", &rows);
                fprintf(f, "<li>Decision offsets fitted on %.0f held-out rows: ", rows);
                ns_html_text(f, r->v.study.metric);
                fprintf(f, " %s there with them against %s without", ns_num(num, after), ns_num(num2, before));
                const char *ab, *ae;
                fputs(ns_rj_get(b, "applied", &ab, &ae) && !strncmp(ab, "true", 4)
                          ? "; the final model carries them.</li>\n"
                          : "; all 0, the model decides by its largest output.</li>\n", f);
            }
        }
        if (ns_rj_get(dec, "estimate", &b, &e) && *b == '{') {
            char why[200] = "";
            double v = NAN, meas = NAN, cands = 0, rows = 0;
            if (ns_rj_str(b, "skipped", why, sizeof why)) {
                fputs("<li>No estimate on new data: ", f);
                ns_html_text(f, why);
                fputs(".</li>\n", f);
            } else if (ns_rj_num(b, r->v.study.metric, &v) && ns_rj_num(b, "measured", &meas)) {
                char method[40] = "";
                ns_rj_num(b, "candidates", &cands);
                ns_rj_num(b, "rows", &rows);
                ns_rj_str(b, "method", method, sizeof method);
                fputs("<li>Expected on new data: ", f);
                ns_html_text(f, r->v.study.metric);
                if (!strcmp(method, "re-scored"))
                    fprintf(f, " <b>%s</b>: the winner's mean over the re-scoring folds of all %.0f rows, "
                            "the best of %.0f re-scored candidates (%s on the validation split that "
                            "short-listed it)", ns_num(num, v), rows, cands, ns_num(num2, meas));
                else
                    fprintf(f, " <b>%s</b>, where the winner scored %s on the same %.0f held-out rows: "
                            "the best of %.0f candidates is also the luckiest on them, and resampling "
                            "the rows (bootstrap bias-corrected) takes that luck out",
                            ns_num(num, v), ns_num(num2, meas), rows, cands);
                fputs(".</li>\n", f);
            }
        }
    } else if (dec && !strcmp(kind, "final")) {
        fputs("<li>Stage <b>", f);
        ns_html_text(f, r->decider->name);
        fputs("</b> trained the configuration the earlier stages chose for the config's own "
              "budget; its trial is the answer.</li>\n", f);
    } else {
        fputs("<li>No select or final stage has decided: this is the best complete trial by the "
              "metric among those without a finding that selection rejects.</li>\n", f);
    }
    fputs("</ul>\n", f);
    if (dec && ns_rj_get(dec, "others", &b, &e) && ns_rj_first(b)) {
        fputs("<table class=\"small\"><tr><th>other top trial</th><th>", f);
        ns_html_text(f, r->v.study.metric);
        fputs("</th><th>why it lost</th></tr>\n", f);
        for (const char *p = ns_rj_first(b); p; p = ns_rj_next(p)) {
            fputs("<tr><td class=\"n\">", f);
            ns_rj_put(f, p, "trial", "?");
            fputs("</td><td class=\"n\">", f);
            ns_rj_put(f, p, r->v.study.metric, "-");
            fputs("</td><td>", f);
            ns_rj_put(f, p, "why", "");
            fputs("</td></tr>\n", f);
        }
        fputs("</table>\n", f);
    }
    const char *health = ns_rj_doc(w->health);
    if (health && ns_rj_first(health)) {
        fputs("<p>The winner's own findings:</p><ul>\n", f);
        for (const char *p = ns_rj_first(health); p; p = ns_rj_next(p)) {
            fputs("<li><b>", f);
            ns_rj_put(f, p, "code", "?");
            fputs("</b>: ", f);
            ns_rj_put(f, p, "message", "");
            fputs(" <i>(fix: ", f);
            ns_rj_put(f, p, "fix", "");
            fputs(")</i></li>\n", f);
        }
        fputs("</ul>\n", f);
    }

    /* its full config and the commands */
    char rel[256];
    if (!(fin && ns_rj_str(fin, "config", rel, sizeof rel)))
        snprintf(rel, sizeof rel, "trials/%d/config.yaml", w->number);
    size_t plen = strlen(r->dir) + strlen(rel) + 2;
    char *path = malloc(plen);
    char *text = NULL;
    if (path) {
        snprintf(path, plen, "%s/%s", r->dir, rel);
        text = read_text(path, 1 << 16);
    }
    fputs("<h3>Its config</h3>\n<p class=\"note\">", f);
    ns_html_text(f, r->shown);
    fputc('/', f);
    ns_html_text(f, rel);
    fputs(" (what <code>nnsearch export</code> hands out, below two lines of provenance):</p>\n", f);
    if (text) {
        fputs("<pre class=\"cfg\">", f);
        ns_html_text(f, text);
        fputs("</pre>\n", f);
    } else {
        ns_rep_none(r, "the file cannot be read (the study folder was moved or changed)");
    }
    free(text);
    free(path);
    fputs("<h3>Use it</h3>\n<pre class=\"cmd\">nnsearch export ", f);
    ns_html_text(f, r->shown);
    fputs("       # writes ", f);
    ns_html_text(f, r->shown);
    fputs("/best.yaml\nnnsearch train ", f);
    ns_html_text(f, r->shown);
    fputs("/best.yaml -o model.nsm   # trains the final model\nnnsearch predict model.nsm DATA.csv</pre>\n", f);
    fputs("</section>\n", f);
}
