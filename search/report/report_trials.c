/* report_trials.c — the views over all trials: the optimisation history, the learning curves
 * of the top trials, parallel coordinates of the searched parameters with an importance
 * ranking, and the timeline of the worker pool. Summaries it computes (running best,
 * importance, lanes, busy share) are plain and said on the page; none feeds back into a
 * decision. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "search/report/report_impl.h"
#include "search/study/json.h"

#define WINNER_COLOR "#d55e00"
#define BAD_COLOR "#c62828"
#define PALE_COLOR "#9aa4ae"

static const char *stage_color(const ns_report *r, const char *stage)
{
    return ns_color(ns_rep_stage_index(r, stage));
}

/* ---- optimisation history ------------------------------------------------------------- */

void ns_rep_view_history(ns_report *r)
{
    FILE *f = r->f;
    char label[128];
    ns_rep_section(r, "history", "Optimisation history");
    double ylo = INFINITY, yhi = -INFINITY;
    int n = 0, maxnum = 0, bad = 0;
    for (int i = 0; i < r->v.n_trials; i++) {
        const ns_trial_row *t = &r->v.trials[i];
        if (isfinite(t->val_metric)) {
            ylo = fmin(ylo, t->val_metric);
            yhi = fmax(yhi, t->val_metric);
            n++;
        } else if (t->state == NS_TRIAL_FAILED || t->state == NS_TRIAL_DIVERGED) {
            bad++;
        }
        if (t->number > maxnum)
            maxnum = t->number;
    }
    if (!n && !bad) {
        ns_rep_none(r, "No trial has a metric yet.");
        fputs("</section>\n", f);
        return;
    }
    ns_chart c;
    snprintf(label, sizeof label, "%s of every trial in the order queued, and the running best",
             r->v.study.metric);
    ns_chart_begin(&c, f, r->next_id++, 1120, 440, 0, 250, label);
    ns_axis_fit(&c.x, 0, maxnum, 0, 0.02, c.x0, c.x0 + c.w);
    c.x.whole = 1;
    ns_axis_fit(&c.y, ylo, yhi, 0, 0.06, c.y0 + c.h, c.y0);
    ns_chart_axes(&c, "trial number (order queued)", ns_rep_metric_label(r->v.study.metric), NULL, 0,
                  NULL, 0);
    /* the running best: complete trials without a finding that selection rejects */
    fputs("<polyline fill=\"none\" stroke=\"#333\" stroke-width=\"1.8\" points=\"", f);
    double run = NAN;
    for (int i = 0; i < r->v.n_trials; i++) {
        const ns_trial_row *t = &r->v.trials[i];
        if (ns_trial_rank_class(t) != 0)
            continue;
        int better = !isfinite(run) || (r->v.study.higher_is_better ? t->val_metric > run
                                                                    : t->val_metric < run);
        if (!better)
            continue;
        if (isfinite(run))
            fprintf(f, "%.1f,%.1f ", ns_axis_px(&c.x, t->number), ns_axis_px(&c.y, run));
        run = t->val_metric;
        fprintf(f, "%.1f,%.1f ", ns_axis_px(&c.x, t->number), ns_axis_px(&c.y, run));
    }
    if (isfinite(run))
        fprintf(f, "%.1f,%.1f", ns_axis_px(&c.x, maxnum), ns_axis_px(&c.y, run));
    fputs("\"/>\n", f);
    double rad = r->v.n_trials > 300 ? 3 : 4.5;
    for (int i = 0; i < r->v.n_trials; i++) {
        const ns_trial_row *t = &r->v.trials[i];
        double x = ns_axis_px(&c.x, t->number);
        if (t->state == NS_TRIAL_FAILED || t->state == NS_TRIAL_DIVERGED) {
            double y = isfinite(t->val_metric) ? ns_axis_px(&c.y, t->val_metric) : c.y0 + c.h - 8;
            fprintf(f, "<path d=\"M%.1f %.1fl8 8m0 -8l-8 8\" stroke=\"%s\" stroke-width=\"2\">", x - 4,
                    y - 4, BAD_COLOR);
            ns_rep_trial_title(r, t);
            fputs("</path>\n", f);
            continue;
        }
        if (!isfinite(t->val_metric))
            continue;
        double y = ns_axis_px(&c.y, t->val_metric);
        if (t->state == NS_TRIAL_PRUNED)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%s\">", x, y, rad * 0.7,
                    PALE_COLOR);
        else if (ns_trial_rank_class(t) == 1)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"#fff\" stroke=\"%s\" "
                    "stroke-width=\"1.5\">", x, y, rad, stage_color(r, t->stage));
        else
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%s\">", x, y, rad,
                    stage_color(r, t->stage));
        ns_rep_trial_title(r, t);
        fputs("</circle>\n", f);
    }
    if (r->best)
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"10\" fill=\"none\" stroke=\"%s\" "
                "stroke-width=\"2.5\"/>\n", ns_axis_px(&c.x, r->best->number),
                ns_axis_px(&c.y, r->best->val_metric), WINNER_COLOR);
    int li = 0;
    for (int s = 0; s < r->v.n_stages; s++) {
        int has = 0;
        for (int i = 0; i < r->v.n_trials && !has; i++)
            has = !strcmp(r->v.trials[i].stage, r->v.stages[s].name) && isfinite(r->v.trials[i].val_metric);
        if (has)
            ns_chart_legend(&c, li++, ns_color(s), NULL, 'o', r->v.stages[s].name);
    }
    ns_chart_legend(&c, li++, "#555", NULL, 'c', "complete, rejecting finding");
    ns_chart_legend(&c, li++, PALE_COLOR, NULL, 'o', "pruned (metric when stopped)");
    ns_chart_legend(&c, li++, BAD_COLOR, NULL, 'x', "diverged or failed");
    ns_chart_legend(&c, li++, "#333", NULL, 0, "running best (healthy)");
    ns_chart_legend(&c, li++, WINNER_COLOR, NULL, 'c', "the answer");
    ns_chart_end(&c);
    fprintf(f, "<p class=\"note\">%d trials with a metric; %d diverged or failed (drawn at their "
            "metric, or at the bottom without one). LR range sweeps have no metric and are not "
            "drawn. Short evidence stages (batch_sweep, compare) train a few epochs, so their "
            "metrics sit below the full-budget trials'. Hover a point for its trial. %s</p>\n", n,
            bad, isfinite(run) ? "" : "No healthy complete trial yet.");
    fputs("</section>\n", f);
}

/* ---- learning curves ------------------------------------------------------------------ */

/* The colours of the top trials' curves, skipping the winner's orange. */
static const char *curve_color(int k)
{
    static const int pick[] = {0, 1, 2, 3, 5, 6};
    return ns_color(pick[k % 6]);
}

void ns_rep_view_curves(ns_report *r)
{
    FILE *f = r->f;
    char label[128];
    ns_rep_section(r, "curves", "Learning curves");
    double ylo = INFINITY, yhi = -INFINITY;
    int emax = 0, any = 0;
    for (int k = 0; k < r->n_curves; k++) {
        for (int i = 0; i < r->curve_len[k]; i++) {
            const ns_epoch_record *e = &r->curve[k][i];
            emax = e->epoch > emax ? e->epoch : emax;
            double v[2] = {e->train_loss, e->val_loss};
            for (int j = 0; j < 2; j++)
                if (isfinite(v[j])) {
                    ylo = fmin(ylo, v[j]);
                    any = 1;
                    /* the first epochs set the scale; a blow-up later is clipped */
                    if (i < 2 || v[j] < 3 * ylo + 1)
                        yhi = fmax(yhi, v[j]);
                }
        }
    }
    if (!any) {
        ns_rep_none(r, "No complete trial has epoch records yet.");
        fputs("</section>\n", f);
        return;
    }
    ns_chart c;
    ns_chart_begin(&c, f, r->next_id++, 1120, 440, 0, 250,
                   "Training (dashed) and validation (solid) loss per epoch: the top trials and the winner");
    ns_axis_fit(&c.x, 1, emax > 1 ? emax : 2, 0, 0.02, c.x0, c.x0 + c.w);
    c.x.whole = 1;
    ns_axis_fit(&c.y, ylo, yhi, 0, 0.05, c.y0 + c.h, c.y0);
    ns_chart_axes(&c, "epoch", "loss (per row)", NULL, 0, NULL, 0);
    ns_chart_clip(&c);
    for (int k = 0; k < r->n_curves; k++) {
        const ns_trial_row *t = r->curve_trial[k];
        const char *col = t == r->best ? WINNER_COLOR : curve_color(k);
        for (int j = 0; j < 2; j++) {
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\"%s points=\"", col,
                    t == r->best ? "2.6" : "1.8", j == 0 ? " stroke-dasharray=\"6 4\"" : "");
            for (int i = 0; i < r->curve_len[k]; i++) {
                const ns_epoch_record *e = &r->curve[k][i];
                double v = j == 0 ? e->train_loss : e->val_loss;
                if (isfinite(v))
                    fprintf(f, "%.1f,%.1f ", ns_axis_px(&c.x, e->epoch), ns_axis_px(&c.y, v));
            }
            fprintf(f, "\"><title>trial %d, %s loss</title></polyline>\n", t->number,
                    j == 0 ? "training" : "validation");
        }
    }
    ns_chart_unclip(&c);
    int li = 0;
    for (int k = 0; k < r->n_curves; k++) {
        const ns_trial_row *t = r->curve_trial[k];
        char num[32];
        snprintf(label, sizeof label, "trial %d%s: %s", t->number, t == r->best ? " (winner)" : "",
                 ns_num(num, t->val_metric));
        ns_chart_legend(&c, li++, t == r->best ? WINNER_COLOR : curve_color(k),
                        NULL, 0, label);
    }
    ns_chart_legend(&c, li++, "#333", NULL, 0, "validation loss");
    ns_chart_legend(&c, li++, "#333", "6 4", 0, "training loss");
    fprintf(f, "<text class=\"legend\" x=\"%.1f\" y=\"%.1f\">(trial: ", c.x0 + c.w + 16, c.y0 + 12 + 19 * li);
    ns_html_text(f, r->v.study.metric);
    fputs(")</text>\n", f);
    ns_chart_end(&c);
    fputs("<p class=\"note\">The five best trials by the metric (healthy ones first, as selection "
          "ranks them) and the winner. A cross-validated trial's epochs are the means over the "
          "folds that reached them; a pruned trial stops early. Training loss is the mean over "
          "each epoch's batches (with dropout), validation loss is measured after the epoch.</p>\n", f);
    fputs("</section>\n", f);
}

/* ---- parameters: parallel coordinates and importance ---------------------------------- */

/* Text with spaces and quotes left out: "[64, 32]" and [64,32] compare equal. */
static void squeeze(const char *b, const char *e, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = b; p < e && *p && n + 1 < cap; p++)
        if (*p != ' ' && *p != '"' && *p != '\'')
            out[n++] = *p;
    out[n] = '\0';
}

/* The value of dim d in a trial's params: a number, or a choice's index; NaN when absent. */
static double param_value(const ns_dim *d, const char *params)
{
    const char *b, *e;
    if (!params || !ns_json_get(params, d->name, &b, &e))
        return NAN;
    if (b[-1] == '"')
        b--, e++;
    if (d->kind != NS_DIM_CHOICE) {
        char *end;
        double v = strtod(b, &end);
        return end == e ? v : NAN;
    }
    char want[128], have[128];
    squeeze(b, e, want, sizeof want);
    for (int i = 0; i < d->n_choices; i++) {
        squeeze(d->choices[i], d->choices[i] + strlen(d->choices[i]), have, sizeof have);
        if (!strcmp(want, have))
            return i;
    }
    /* a number that matches a numeric choice ("0.1" and 0.10) */
    char *end;
    double x = strtod(want, &end);
    if (!*want || *end)
        return NAN;
    for (int i = 0; i < d->n_choices; i++) {
        char *cend;
        squeeze(d->choices[i], d->choices[i] + strlen(d->choices[i]), have, sizeof have);
        if (*have && strtod(have, &cend) == x && !*cend)
            return i;
    }
    return NAN;
}

typedef struct pc_row {
    const ns_trial_row *t;
    double key;       /* metric, oriented: larger is better */
} pc_row;

typedef struct ranked_value {
    double x;
    int i;
} ranked_value;

static int rv_cmp(const void *pa, const void *pb)
{
    const ranked_value *a = pa, *b = pb;
    return a->x != b->x ? (a->x > b->x) - (a->x < b->x) : a->i - b->i;
}

/* Average ranks (1-based, ties share their mean rank) of x[0..n) into rank; tmp holds n. */
static void ranks(const double *x, int n, double *rank, ranked_value *tmp)
{
    for (int i = 0; i < n; i++)
        tmp[i] = (ranked_value){x[i], i};
    qsort(tmp, (size_t)n, sizeof *tmp, rv_cmp);
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && tmp[j + 1].x == tmp[i].x)
            j++;
        for (int k = i; k <= j; k++)
            rank[tmp[k].i] = (i + j) / 2.0 + 1;
        i = j + 1;
    }
}

typedef struct importance {
    int dim;
    double eta2, rho, chance;
    int groups;
} importance;

static int imp_cmp(const void *pa, const void *pb)
{
    const importance *a = pa, *b = pb;
    return (a->eta2 < b->eta2) - (a->eta2 > b->eta2);
}

/* eta^2 of the metric ranks mr over groups of dim values v (choices: each one; numbers: up to
 * five bins of equal count by value rank), and Spearman's rho for numbers. */
static importance importance_of(const ns_dim *d, const double *v, const double *mr, int n,
                                double *vr, ranked_value *idx)
{
    importance im = {0, 0, NAN, 0, 0};
    int G = d->kind == NS_DIM_CHOICE ? d->n_choices : 5;
    if (G > 64)
        G = 64;
    double sum[64] = {0}, cnt[64] = {0}, mean = (n + 1) / 2.0, sst = 0, ssb = 0;
    ranks(v, n, vr, idx);
    for (int i = 0; i < n; i++) {
        int g = d->kind == NS_DIM_CHOICE ? (int)v[i] : (int)((vr[i] - 1) * G / n);
        g = g < 0 ? 0 : g >= G ? G - 1 : g;
        sum[g] += mr[i];
        cnt[g]++;
        sst += (mr[i] - mean) * (mr[i] - mean);
    }
    for (int g = 0; g < G; g++)
        if (cnt[g] > 0) {
            ssb += cnt[g] * (sum[g] / cnt[g] - mean) * (sum[g] / cnt[g] - mean);
            im.groups++;
        }
    im.eta2 = sst > 0 ? ssb / sst : 0;
    im.chance = n > 1 ? (im.groups - 1.0) / (n - 1.0) : NAN;
    if (d->kind != NS_DIM_CHOICE) {
        double sxy = 0, sxx = 0, syy = 0;
        for (int i = 0; i < n; i++) {
            sxy += (vr[i] - mean) * (mr[i] - mean);
            sxx += (vr[i] - mean) * (vr[i] - mean);
            syy += (mr[i] - mean) * (mr[i] - mean);
        }
        im.rho = sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
    }
    return im;
}

void ns_rep_view_params(ns_report *r)
{
    FILE *f = r->f;
    char num[32], num2[32];
    ns_rep_section(r, "params", "Searched parameters");
    const ns_space *sp = &r->space;
    if (sp->n == 0) {
        ns_rep_none(r, "The study's config searches no parameter (or could not be read back): "
                    "nothing to draw.");
        fputs("</section>\n", f);
        return;
    }
    int D = sp->n;
    pc_row *rows = malloc((size_t)(r->v.n_trials ? r->v.n_trials : 1) * sizeof *rows);
    double *val = malloc((size_t)(r->v.n_trials ? r->v.n_trials : 1) * (size_t)D * sizeof *val);
    if (!rows || !val) {
        free(rows);
        free(val);
        fputs("</section>\n", f);
        return;
    }
    int n = 0, n_complete = 0;
    double mlo = INFINITY, mhi = -INFINITY;
    for (int i = 0; i < r->v.n_trials; i++) {
        const ns_trial_row *t = &r->v.trials[i];
        const char *k = ns_rep_stage_kind(t->stage);
        if ((strcmp(k, "random") && strcmp(k, "bayes")) || !isfinite(t->val_metric) ||
            (t->state != NS_TRIAL_COMPLETE && t->state != NS_TRIAL_PRUNED))
            continue;
        const char *p = ns_rj_doc(t->params);
        int ok = 1;
        for (int j = 0; j < D && ok; j++)
            ok = isfinite(val[(size_t)n * D + j] = param_value(&sp->dims[j], p));
        if (!ok)
            continue;
        rows[n].t = t;
        rows[n].key = r->v.study.higher_is_better ? t->val_metric : -t->val_metric;
        n_complete += t->state == NS_TRIAL_COMPLETE;
        mlo = fmin(mlo, t->val_metric);
        mhi = fmax(mhi, t->val_metric);
        n++;
    }
    if (!n) {
        ns_rep_none(r, "No trial of a random or bayes stage has a metric yet: the parallel coordinates "
                    "show the trials that sample the search space.");
        free(rows);
        free(val);
        fputs("</section>\n", f);
        return;
    }
    /* draw order: pruned first, then the complete ones from worst to best (best on top) */
    int *order = malloc((size_t)n * sizeof *order);
    ranked_value *ord = malloc((size_t)n * sizeof *ord);
    if (!order || !ord) {
        free(order);
        free(ord);
        free(rows);
        free(val);
        fputs("</section>\n", f);
        return;
    }
    for (int i = 0; i < n; i++)
        ord[i] = (ranked_value){rows[i].t->state == NS_TRIAL_PRUNED ? -INFINITY : rows[i].key, i};
    qsort(ord, (size_t)n, sizeof *ord, rv_cmp);
    /* colour by the metric's rank among the complete trials: a few bad trials would
     * otherwise squeeze every good one into one colour */
    double *crank = malloc((size_t)n * sizeof *crank);
    int n_drawn_complete = 0;
    for (int i = 0; i < n; i++) {
        order[i] = ord[i].i;
        if (crank)
            crank[ord[i].i] = rows[ord[i].i].t->state == NS_TRIAL_PRUNED ? 0 : n_drawn_complete++;
    }
    free(ord);

    ns_chart c;
    ns_chart_begin(&c, f, r->next_id++, 1120, 470, 60, 150,
                   "Parallel coordinates: one line per trial of the random and bayes stages, coloured by the metric's rank");
    c.y0 += 34; /* room for the axis names */
    c.h -= 34;
    int K = D + 1;
    double gap = c.w / (K - 1);
    ns_axis *ax = malloc((size_t)K * sizeof *ax);
    if (!ax) {
        free(crank);
        free(order);
        free(rows);
        free(val);
        fputs("</svg>\n</section>\n", f);
        return;
    }
    for (int j = 0; j < D; j++) {
        const ns_dim *d = &sp->dims[j];
        if (d->kind == NS_DIM_CHOICE)
            ax[j] = ns_axis_category(d->n_choices, c.y0 + c.h, c.y0);
        else
            ns_axis_fit(&ax[j], d->lo, d->hi, d->kind == NS_DIM_LOG_UNIFORM || d->kind == NS_DIM_INT_LOG,
                        0.02, c.y0 + c.h, c.y0);
    }
    ns_axis_fit(&ax[D], mlo, mhi, 0, 0.04, c.y0 + c.h, c.y0);
    /* lines */
    for (int q = 0; q < n; q++) {
        int i = order[q];
        const ns_trial_row *t = rows[i].t;
        char col[8];
        int pruned = t->state == NS_TRIAL_PRUNED;
        ns_ramp(crank && n_drawn_complete > 1 ? crank[i] / (n_drawn_complete - 1) : 1, col);
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\"%s%s points=\"",
                pruned ? PALE_COLOR : col, n > 300 ? "1" : "1.4", n > 300 ? " stroke-opacity=\"0.6\"" : "",
                pruned ? " stroke-dasharray=\"3 3\"" : "");
        for (int j = 0; j < D; j++)
            fprintf(f, "%.1f,%.1f ", c.x0 + gap * j, ns_axis_px(&ax[j], val[(size_t)i * D + j]));
        fprintf(f, "%.1f,%.1f\">", c.x0 + gap * D, ns_axis_px(&ax[D], t->val_metric));
        ns_rep_trial_title(r, t);
        fputs("</polyline>\n", f);
    }
    if (r->best)
        for (int i = 0; i < n; i++)
            if (rows[i].t == r->best) {
                fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"3\" points=\"",
                        WINNER_COLOR);
                for (int j = 0; j < D; j++)
                    fprintf(f, "%.1f,%.1f ", c.x0 + gap * j, ns_axis_px(&ax[j], val[(size_t)i * D + j]));
                fprintf(f, "%.1f,%.1f\"><title>trial %d: the answer</title></polyline>\n",
                        c.x0 + gap * D, ns_axis_px(&ax[D], r->best->val_metric), r->best->number);
            }
    /* axes: a line, the name on top (two rows when they are close), ticks */
    for (int j = 0; j < K; j++) {
        double x = c.x0 + gap * j;
        const ns_dim *d = j < D ? &sp->dims[j] : NULL;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\" "
                "stroke-width=\"1.2\"/>\n", x, c.y0, x, c.y0 + c.h);
        double ny = c.y0 - 10 - (gap < 220 && j % 2 ? 17 : 0);
        fprintf(f, "<text class=\"axisname\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">", x, ny,
                j == 0 ? "start" : j == K - 1 ? "end" : "middle");
        ns_html_text(f, d ? d->name : r->v.study.metric);
        if (d && (d->kind == NS_DIM_LOG_UNIFORM || d->kind == NS_DIM_INT_LOG))
            fputs(" (log)", f);
        fputs("</text>\n", f);
        if (d && d->kind == NS_DIM_CHOICE) {
            for (int i = 0; i < d->n_choices; i++) {
                fprintf(f, "<text class=\"lbl\" x=\"%.1f\" y=\"%.1f\"%s>", x + (j == K - 1 ? -5 : 5),
                        ns_axis_px(&ax[j], i) + 4, j == K - 1 ? " text-anchor=\"end\"" : "");
                ns_html_text(f, d->choices[i]);
                fputs("</text>\n", f);
            }
        } else {
            double t[16];
            int nt = ns_axis_ticks(&ax[j], t, 16);
            int step = nt > 6 ? 2 : 1;
            for (int i = 0; i < nt; i += step) {
                double y = ns_axis_px(&ax[j], t[i]);
                fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>"
                        "<text class=\"lbl\" x=\"%.1f\" y=\"%.1f\"%s>%g</text>\n", x - 4, y, x, y,
                        x + (j == K - 1 ? -6 : 6), y + 4, j == K - 1 ? " text-anchor=\"end\"" : "", t[i]);
            }
        }
    }
    /* the colour bar */
    int gid = c.id;
    double bx = c.x0 + c.w + 40, by = c.y0 + 20, bh = c.h - 60;
    fprintf(f, "<defs><linearGradient id=\"ramp%d\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">", gid);
    for (int s = 0; s <= 8; s++) {
        char col[8];
        ns_ramp(s / 8.0, col);
        fprintf(f, "<stop offset=\"%.3f\" stop-color=\"%s\"/>", s / 8.0, col);
    }
    fprintf(f, "</linearGradient></defs>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"16\" height=\"%.1f\" "
            "fill=\"url(#ramp%d)\"/>\n", bx, by, bh, gid);
    fprintf(f, "<text class=\"legend\" x=\"%.1f\" y=\"%.1f\">colour: rank</text>\n", bx - 6, by - 26);
    fprintf(f, "<text class=\"legend\" x=\"%.1f\" y=\"%.1f\">best %s</text>\n", bx - 6, by - 8,
            ns_num(num, r->v.study.higher_is_better ? mhi : mlo));
    fprintf(f, "<text class=\"legend\" x=\"%.1f\" y=\"%.1f\">worst %s</text>\n", bx - 6, by + bh + 18,
            ns_num(num, r->v.study.higher_is_better ? mlo : mhi));
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>"
            "<text class=\"legend\" x=\"%.1f\" y=\"%.1f\">winner</text>\n", bx - 6, by + bh + 40,
            bx + 16, by + bh + 40, WINNER_COLOR, bx + 22, by + bh + 44);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
            "stroke-dasharray=\"3 3\" stroke-width=\"1.5\"/><text class=\"legend\" x=\"%.1f\" "
            "y=\"%.1f\">pruned</text>\n", bx - 6, by + bh + 60, bx + 16, by + bh + 60, PALE_COLOR,
            bx + 22, by + bh + 64);
    ns_chart_end(&c);
    free(ax);

    /* importance over the complete trials */
    fputs("<h3>Parameter importance</h3>\n", f);
    if (n_complete < 8) {
        fprintf(f, "<p class=\"none\">Too few complete trials of the random and bayes stages (%d; "
                "8 needed) to rank the parameters.</p>\n", n_complete);
    } else {
        double *v = malloc((size_t)n_complete * sizeof *v), *m = malloc((size_t)n_complete * sizeof *m);
        double *mr = malloc((size_t)n_complete * sizeof *mr), *vr = malloc((size_t)n_complete * sizeof *vr);
        ranked_value *idx = malloc((size_t)n_complete * sizeof *idx);
        importance *im = malloc((size_t)D * sizeof *im);
        if (v && m && mr && vr && idx && im) {
            int nc = 0;
            for (int i = 0; i < n; i++)
                if (rows[i].t->state == NS_TRIAL_COMPLETE)
                    m[nc++] = rows[i].key;
            ranks(m, nc, mr, idx);
            for (int j = 0; j < D; j++) {
                nc = 0;
                for (int i = 0; i < n; i++)
                    if (rows[i].t->state == NS_TRIAL_COMPLETE)
                        v[nc++] = val[(size_t)i * D + j];
                im[j] = importance_of(&sp->dims[j], v, mr, nc, vr, idx);
                im[j].dim = j;
            }
            qsort(im, (size_t)D, sizeof *im, imp_cmp);
            fputs("<table class=\"small\"><tr><th>rank</th><th>parameter</th><th>scale</th><th>"
                  "variance share of the metric's rank (&#951;&#178;)</th><th>chance level</th>"
                  "<th>Spearman &#961; (better with larger values)</th></tr>\n", f);
            for (int j = 0; j < D; j++) {
                const ns_dim *d = &sp->dims[im[j].dim];
                fprintf(f, "<tr><td class=\"n\">%d</td><td>", j + 1);
                ns_html_text(f, d->name);
                fprintf(f, "</td><td>%s</td><td><span class=\"bar\" style=\"width:%.0fpx\"></span> %.3f"
                        "</td><td class=\"n\">%.3f</td><td class=\"n\">%s</td></tr>\n",
                        ns_dim_kind_name(d->kind), 200 * im[j].eta2, im[j].eta2, im[j].chance,
                        ns_num(num2, im[j].rho));
            }
            fputs("</table>\n", f);
            fprintf(f, "<p class=\"note\">How it is computed: over the %d complete trials of the random "
                    "and bayes stages, the metric is turned into ranks (best = highest), and each "
                    "parameter splits the trials into groups: one per choice, or five bins of equal "
                    "count by value for a range. &#951;&#178; is the share of the rank variance "
                    "between the groups, a first-order (one parameter at a time) variance share in "
                    "the spirit of fANOVA, without its model and without interactions. By chance "
                    "alone it is about (groups - 1) / (trials - 1), the chance level shown; the "
                    "bayes stage samples good regions more often, which can inflate it. Spearman's "
                    "&#961; is the rank correlation of a range's value with the metric.</p>\n", nc);
        }
        free(v);
        free(m);
        free(mr);
        free(vr);
        free(idx);
        free(im);
    }
    free(crank);
    free(order);
    free(rows);
    free(val);
    fputs("</section>\n", f);
}

/* ---- timeline ------------------------------------------------------------------------- */

typedef struct tl_item {
    const ns_trial_row *t;
    double s, e;
    int lane;
} tl_item;

static int tl_cmp(const void *pa, const void *pb)
{
    const tl_item *a = pa, *b = pb;
    if (a->s != b->s)
        return (a->s > b->s) - (a->s < b->s);
    return a->t->number - b->t->number;
}

#define TL_MAX_LANES 64
/* First fit in start order: a trial takes the first lane whose last trial ended by its start
 * (no slack: greedy colouring of intervals sorted by start uses exactly as many lanes as the
 * most trials that overlapped, also for trials of a few milliseconds) */

void ns_rep_view_timeline(ns_report *r)
{
    FILE *f = r->f;
    char num[32], num2[32];
    ns_rep_section(r, "timeline", "Timeline of the worker pool");
    tl_item *it = malloc((size_t)(r->v.n_trials ? r->v.n_trials : 1) * sizeof *it);
    if (!it) {
        fputs("</section>\n", f);
        return;
    }
    double last = -INFINITY;
    for (int i = 0; i < r->v.n_trials; i++) {
        const ns_trial_row *t = &r->v.trials[i];
        if (isfinite(t->started))
            last = fmax(last, t->started);
        if (isfinite(t->finished))
            last = fmax(last, t->finished);
    }
    int n = 0;
    for (int i = 0; i < r->v.n_trials; i++) {
        const ns_trial_row *t = &r->v.trials[i];
        if (!isfinite(t->started))
            continue;
        it[n] = (tl_item){t, t->started, isfinite(t->finished) ? t->finished : last, 0};
        n++;
    }
    if (!n) {
        ns_rep_none(r, "No trial has started yet.");
        free(it);
        fputs("</section>\n", f);
        return;
    }
    qsort(it, (size_t)n, sizeof *it, tl_cmp);
    double lane_end[TL_MAX_LANES], busy[TL_MAX_LANES] = {0}, total = 0;
    int lanes = 0;
    for (int i = 0; i < n; i++) {
        int l = 0;
        while (l < lanes && lane_end[l] > it[i].s)
            l++;
        if (l == lanes) {
            if (lanes == TL_MAX_LANES) { /* more at once than drawn: the busiest lane takes it */
                l = TL_MAX_LANES - 1;
            } else {
                lanes++;
            }
        }
        it[i].lane = l;
        lane_end[l] = it[i].e;
        busy[l] += it[i].e - it[i].s;
        total += it[i].e - it[i].s;
    }
    double t0 = it[0].s, span = last - t0;
    if (!(span > 0))
        span = 1;
    const char *ylab[TL_MAX_LANES];
    char ybuf[TL_MAX_LANES][16];
    for (int l = 0; l < lanes; l++) {
        snprintf(ybuf[l], sizeof ybuf[l], "lane %d", l + 1);
        ylab[l] = ybuf[l];
    }
    ns_chart c;
    int height = 130 + 30 * lanes, legend_h = 100 + 19 * (r->v.n_stages + 2);
    ns_chart_begin(&c, f, r->next_id++, 1120, height > legend_h ? height : legend_h, 0, 250,
                   "Trials over time, one row per lane of the pool (each bar a trial, start to finish)");
    ns_axis_fit(&c.x, 0, span, 0, 0.01, c.x0, c.x0 + c.w);
    c.y = ns_axis_category(lanes, c.y0, c.y0 + c.h);
    ns_chart_axes(&c, "seconds since the first trial started", NULL, NULL, 0, ylab, lanes);
    for (int i = 0; i < n; i++) {
        const ns_trial_row *t = it[i].t;
        double x0 = ns_axis_px(&c.x, it[i].s - t0), x1 = ns_axis_px(&c.x, it[i].e - t0);
        double y = ns_axis_px(&c.y, it[i].lane);
        int bad = t->state == NS_TRIAL_FAILED || t->state == NS_TRIAL_DIVERGED;
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"18\" fill=\"%s\" "
                "fill-opacity=\"%s\"%s><title>trial %d (", x0, y - 9, x1 - x0 > 0.6 ? x1 - x0 : 0.6,
                stage_color(r, t->stage), t->state == NS_TRIAL_PRUNED ? "0.4" : "0.9",
                bad ? " stroke=\"" BAD_COLOR "\" stroke-width=\"1.5\"" : "", t->number);
        ns_html_text(f, t->stage);
        fprintf(f, ", %s): %s s to ", ns_trial_state_name(t->state), ns_num(num, it[i].s - t0));
        fprintf(f, "%s s</title></rect>\n", ns_num(num2, it[i].e - t0));
    }
    int li = 0;
    for (int s = 0; s < r->v.n_stages; s++)
        ns_chart_legend(&c, li++, ns_color(s), NULL, 's', r->v.stages[s].name);
    ns_chart_legend(&c, li++, "#bbb", NULL, 's', "pruned (pale)");
    ns_chart_legend(&c, li++, BAD_COLOR, NULL, 'x', "failed or diverged (red edge)");
    ns_chart_end(&c);
    fprintf(f, "<p>%d trials on %d lane%s; the lanes were busy <b>%.0f%%</b> of the %s s from the "
            "first start to the last finish (", n, lanes, lanes == 1 ? "" : "s",
            100 * total / (lanes * span), ns_num(num, span));
    for (int l = 0; l < lanes; l++)
        fprintf(f, "%slane %d %.0f%%", l ? ", " : "", l + 1, 100 * busy[l] / span);
    fputs(").</p>\n<p class=\"note\">The study records when each trial started and finished, not which "
          "worker ran it: each trial is drawn in the first lane free when it started, so the "
          "number of lanes is the most trials that ran at once (the pool's width, -j, when it was "
          "full). Gaps are the driver between stages (deciding, preparing the next) or a stage "
          "waiting for its last trials; a resumed trial's bar starts at its first start.</p>\n", f);
    free(it);
    fputs("</section>\n", f);
}
