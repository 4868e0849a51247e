/* report_stages.c — the views of the stages that decide one thing each from their evidence:
 * the LR range test, the batch-size sweep and the optimizer x schedule comparison. Each
 * draws what the stage stored (its trials' results and its decision); none recomputes a
 * decision. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "search/report/report_impl.h"

static const char *const dashes[] = {NULL, "7 4", "2 3", "9 3 2 3", "4 2"};

/* ---- LR range test -------------------------------------------------------------------- */

typedef struct lr_curve {
    const ns_trial_row *t;
    char family[16], optimizer[24];
    double pick;
    double *lr, *loss;  /* (n) */
    int n, seed;        /* seed: its rank within the family, from 0 */
} lr_curve;

static int family_index(const char *fam)
{
    return strcmp(fam, "sgd") ? 1 : 0;
}

/* The loss of the curve at lr (the nearest recorded step in log LR). */
static double loss_at(const lr_curve *c, double lr)
{
    int best = -1;
    double d = INFINITY;
    for (int i = 0; i < c->n; i++)
        if (c->lr[i] > 0 && fabs(log(c->lr[i] / lr)) < d) {
            d = fabs(log(c->lr[i] / lr));
            best = i;
        }
    return best >= 0 ? c->loss[best] : NAN;
}

static void lr_stage(ns_report *r, const ns_stage_row *st)
{
    FILE *f = r->f;
    char num[32], num2[32], label[160];
    lr_curve *cv = calloc((size_t)(r->v.n_trials ? r->v.n_trials : 1), sizeof *cv);
    int n = 0, seeds[2] = {0, 0};
    if (!cv)
        return;
    for (int i = 0; i < r->v.n_trials; i++) {
        const ns_trial_row *t = &r->v.trials[i];
        const char *res = ns_rj_doc(t->result);
        int m;
        if (strcmp(t->stage, st->name) || !res || (m = ns_rj_nums(res, "lr", NULL, 0)) < 2)
            continue;
        lr_curve *c = &cv[n];
        c->lr = malloc((size_t)m * sizeof *c->lr);
        c->loss = malloc((size_t)m * sizeof *c->loss);
        if (!c->lr || !c->loss) {
            free(c->lr);
            free(c->loss);
            continue;
        }
        ns_rj_nums(res, "lr", c->lr, m);
        c->n = ns_rj_nums(res, "smoothed", c->loss, m);
        if (c->n > m)
            c->n = m;
        c->t = t;
        if (!ns_rj_str(res, "family", c->family, sizeof c->family))
            snprintf(c->family, sizeof c->family, "?");
        if (!ns_rj_str(res, "optimizer", c->optimizer, sizeof c->optimizer))
            snprintf(c->optimizer, sizeof c->optimizer, "?");
        c->pick = NAN;
        ns_rj_num(res, "pick", &c->pick);
        c->seed = seeds[family_index(c->family)]++;
        n++;
    }
    const char *dec = ns_rj_doc(st->decision);
    fputs("<h3>", f);
    ns_html_text(f, st->name);
    fputs("</h3>\n", f);
    if (!n) {
        ns_rep_none(r, st->state == NS_STAGE_COMPLETE ? "no sweep recorded a curve"
                                                   : "no sweep has finished yet");
        free(cv);
        return;
    }
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int k = 0; k < n; k++) {
        double head = -INFINITY;
        for (int i = 0; i < cv[k].n; i++) {
            if (cv[k].lr[i] > 0) {
                xlo = fmin(xlo, cv[k].lr[i]);
                xhi = fmax(xhi, cv[k].lr[i]);
            }
            if (isfinite(cv[k].loss[i])) {
                ylo = fmin(ylo, cv[k].loss[i]);
                if (i <= cv[k].n / 2)
                    head = fmax(head, cv[k].loss[i]);
            }
        }
        /* the loss blows up at the end of a sweep: show the curve up to a little above
         * its level over the first half, where the choice is made */
        yhi = fmax(yhi, head);
    }
    if (yhi > ylo)
        yhi += 0.25 * (yhi - ylo);
    ns_chart c;
    snprintf(label, sizeof label, "Smoothed training loss against the learning rate, %d sweep%s",
             n, n == 1 ? "" : "s");
    ns_chart_begin(&c, f, r->next_id++, 1120, 440, 0, 300, label);
    ns_axis_fit(&c.x, xlo, xhi, 1, 0.02, c.x0, c.x0 + c.w);
    ns_axis_fit(&c.y, ylo, yhi, 0, 0.04, c.y0 + c.h, c.y0);
    ns_chart_axes(&c, "learning rate (log scale)", "training loss, smoothed (per row)", NULL, 0,
                  NULL, 0);
    ns_chart_clip(&c);
    static const char *const fams[2] = {"sgd", "adaptive"};
    for (int fi = 0; fi < 2 && dec; fi++) { /* bounds, then the suggestion */
        char key[32];
        double lo, hi, lr;
        snprintf(key, sizeof key, "%s_lo", fams[fi]);
        if (ns_rj_num(dec, key, &lo)) {
            snprintf(key, sizeof key, "%s_hi", fams[fi]);
            if (ns_rj_num(dec, key, &hi))
                fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" "
                        "fill-opacity=\"0.10\"/>\n", ns_axis_px(&c.x, lo), c.y0,
                        ns_axis_px(&c.x, hi) - ns_axis_px(&c.x, lo), c.h, ns_color(fi));
        }
        snprintf(key, sizeof key, "%s_lr", fams[fi]);
        if (ns_rj_num(dec, key, &lr))
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                    "stroke-width=\"2\" stroke-dasharray=\"8 4\"/>\n", ns_axis_px(&c.x, lr), c.y0,
                    ns_axis_px(&c.x, lr), c.y0 + c.h, ns_color(fi));
    }
    for (int k = 0; k < n; k++) {
        const lr_curve *q = &cv[k];
        const char *dash = dashes[q->seed % 5];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\"%s%s%s points=\"",
                ns_color(family_index(q->family)), dash ? " stroke-dasharray=\"" : "",
                dash ? dash : "", dash ? "\"" : "");
        for (int i = 0; i < q->n; i++)
            if (q->lr[i] > 0 && isfinite(q->loss[i]))
                fprintf(f, "%.1f,%.1f ", ns_axis_px(&c.x, q->lr[i]), ns_axis_px(&c.y, q->loss[i]));
        fprintf(f, "\"><title>trial %d: ", q->t->number);
        ns_html_text(f, q->family);
        fputs(", ", f);
        ns_html_text(f, q->optimizer);
        fputs("</title></polyline>\n", f);
        double pl = loss_at(q, q->pick);
        if (q->pick > 0 && isfinite(pl))
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\" stroke=\"#fff\"><title>"
                    "trial %d pick: LR %s</title></circle>\n", ns_axis_px(&c.x, q->pick),
                    ns_axis_px(&c.y, pl), ns_color(family_index(q->family)), q->t->number,
                    ns_num(num, q->pick));
    }
    ns_chart_unclip(&c);
    int li = 0, max_li = (int)((c.h - 8) / 19);
    for (int k = 0; k < n && li < max_li - 4; k++) {
        snprintf(label, sizeof label, "%s (%s), seed %d: trial %d", cv[k].family, cv[k].optimizer,
                 cv[k].seed + 1, cv[k].t->number);
        ns_chart_legend(&c, li++, ns_color(family_index(cv[k].family)), dashes[cv[k].seed % 5], 0,
                        label);
    }
    ns_chart_legend(&c, li++, "#555", NULL, 'o', "each sweep's pick (the rule)");
    for (int fi = 0; fi < 2 && dec; fi++) {
        char key[32];
        double lr;
        snprintf(key, sizeof key, "%s_lr", fams[fi]);
        if (!ns_rj_num(dec, key, &lr))
            continue;
        snprintf(label, sizeof label, "%s: handed on %s", fams[fi], ns_num(num, lr));
        ns_chart_legend(&c, li++, ns_color(fi), "8 4", 0, label);
        snprintf(label, sizeof label, "%s: bounds (shaded)", fams[fi]);
        ns_chart_legend(&c, li++, ns_color(fi), NULL, 's', label);
    }
    ns_chart_end(&c);

    char rule[16] = "?";
    ns_rj_str(dec, "rule", rule, sizeof rule);
    fputs("<table class=\"small\"><tr><th>family</th><th>swept at batch</th><th>picks (rule ", f);
    ns_html_text(f, rule);
    fputs(")</th><th>LR handed on (median pick)</th><th>bounds (smallest / 3, largest x 3)</th>"
          "<th>spread (largest / smallest)</th></tr>\n", f);
    for (int fi = 0; fi < 2 && dec; fi++) {
        char key[32];
        double lr = NAN, lo = NAN, hi = NAN, spread = NAN, batch = NAN, picks[64];
        snprintf(key, sizeof key, "%s_lr", fams[fi]);
        int has = ns_rj_num(dec, key, &lr);
        snprintf(key, sizeof key, "%s_picks", fams[fi]);
        int np = ns_rj_nums(dec, key, picks, 64);
        if (!has && np < 0)
            continue;
        snprintf(key, sizeof key, "%s_lo", fams[fi]);
        ns_rj_num(dec, key, &lo);
        snprintf(key, sizeof key, "%s_hi", fams[fi]);
        ns_rj_num(dec, key, &hi);
        snprintf(key, sizeof key, "%s_spread", fams[fi]);
        ns_rj_num(dec, key, &spread);
        snprintf(key, sizeof key, "%s_batch", fams[fi]);
        ns_rj_num(dec, key, &batch);
        fprintf(f, "<tr><td>%s</td><td class=\"n\">%s</td><td>", fams[fi], ns_num(num, batch));
        for (int i = 0; i < np && i < 64; i++)
            fprintf(f, "%s%s", i ? ", " : "", ns_num(num, picks[i]));
        fprintf(f, "</td><td class=\"n\">%s</td>", has ? ns_num(num, lr) : "none (no sweep gave a pick)");
        fprintf(f, "<td class=\"n\">%s", ns_num(num, lo));
        fprintf(f, " to %s</td><td class=\"n\">%s</td></tr>\n", ns_num(num2, hi), ns_num(num, spread));
    }
    fputs("</table>\n", f);
    if (!dec)
        ns_rep_none(r, "the stage has not decided yet");
    for (int k = 0; k < n; k++) {
        free(cv[k].lr);
        free(cv[k].loss);
    }
    free(cv);
}

void ns_rep_view_lr_range(ns_report *r)
{
    ns_rep_section(r, "lr", "LR range test");
    int any = 0;
    for (int i = 0; i < r->v.n_stages; i++)
        if (!strcmp(ns_rep_stage_kind(r->v.stages[i].name), "lr_range")) {
            if (!any++)
                fputs("<p>Each sweep trains from a tiny LR to a huge one, one step each, recording "
                      "the smoothed loss; the rule picks an LR from the curve (valley: the middle "
                      "of the steepest long descent). The stage hands on the median pick per "
                      "optimizer family, with bounds for the later stages.</p>\n", r->f);
            lr_stage(r, &r->v.stages[i]);
        }
    if (!any)
        ns_rep_none(r, "No lr_range stage ran in this study: learning rates came from the config or "
                    "its search space.");
    fputs("</section>\n", r->f);
}

/* ---- batch-size sweep ----------------------------------------------------------------- */

typedef struct bs_size {
    double batch, val_loss, sps;
    int trial, stable;
} bs_size;

static int bs_cmp(const void *pa, const void *pb)
{
    const bs_size *a = pa, *b = pb;
    return (a->batch > b->batch) - (a->batch < b->batch);
}

static void batch_stage(ns_report *r, const ns_stage_row *st)
{
    FILE *f = r->f;
    char num[32], label[160];
    const char *dec = ns_rj_doc(st->decision), *b, *e;
    fputs("<h3>", f);
    ns_html_text(f, st->name);
    fputs("</h3>\n", f);
    if (!dec || !ns_rj_get(dec, "sizes", &b, &e) || !ns_rj_first(b)) {
        ns_rep_none(r, "the stage has not decided yet");
        return;
    }
    bs_size sz[64];
    int n = 0;
    for (const char *p = ns_rj_first(b); p && n < 64; p = ns_rj_next(p)) {
        double t = -1;
        sz[n].batch = sz[n].val_loss = sz[n].sps = NAN;
        ns_rj_num(p, "batch", &sz[n].batch);
        ns_rj_num(p, "val_loss", &sz[n].val_loss);
        ns_rj_num(p, "samples_per_s", &sz[n].sps);
        ns_rj_num(p, "trial", &t);
        sz[n].trial = (int)t;
        const char *sb, *se;
        sz[n].stable = ns_rj_get(p, "stable", &sb, &se) && !strncmp(sb, "true", 4);
        if (isfinite(sz[n].batch))
            n++;
    }
    qsort(sz, (size_t)n, sizeof *sz, bs_cmp);
    double chosen = 0, tol = NAN, noise = NAN, ref = NAN, best = INFINITY;
    char scaling[16] = "?";
    ns_rj_num(dec, "batch_size", &chosen);
    ns_rj_num(dec, "tolerance", &tol);
    ns_rj_num(dec, "noise_scale", &noise);
    ns_rj_num(dec, "ref_batch", &ref);
    ns_rj_str(dec, "scaling", scaling, sizeof scaling);
    const char *labels[64];
    char lbuf[64][16];
    double lmin = INFINITY, lmax = -INFINITY, smax = 0;
    for (int i = 0; i < n; i++) {
        snprintf(lbuf[i], sizeof lbuf[i], "%.0f", sz[i].batch);
        labels[i] = lbuf[i];
        if (isfinite(sz[i].val_loss)) {
            lmin = fmin(lmin, sz[i].val_loss);
            lmax = fmax(lmax, sz[i].val_loss);
            if (sz[i].stable)
                best = fmin(best, sz[i].val_loss);
        }
        if (isfinite(sz[i].sps))
            smax = fmax(smax, sz[i].sps);
    }
    if (isfinite(best) && isfinite(tol))
        lmax = fmax(lmax, best * (1 + tol));
    /* the noise scale between the sizes, in log batch (the sizes are usually doubled) */
    double npos = NAN;
    for (int i = 0; i + 1 < n && noise > 0; i++)
        if (noise >= sz[i].batch && noise <= sz[i + 1].batch)
            npos = i + log(noise / sz[i].batch) / log(sz[i + 1].batch / sz[i].batch);

    fputs("<div class=\"row\">\n", f);
    ns_chart c;
    ns_chart_begin(&c, f, r->next_id++, 560, 360, 0, 170, "Validation loss per batch size");
    c.x = ns_axis_category(n, c.x0, c.x0 + c.w);
    ns_axis_fit(&c.y, lmin, lmax, 0, 0.08, c.y0 + c.h, c.y0);
    ns_chart_axes(&c, "batch size (rows per step)", "validation loss (per row)", labels, n, NULL, 0);
    if (isfinite(best) && isfinite(tol)) {
        double y = ns_axis_px(&c.y, best * (1 + tol));
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#b07d00\" "
                "stroke-dasharray=\"6 4\" stroke-width=\"1.5\"/>\n", c.x0, y, c.x0 + c.w, y);
    }
    if (isfinite(npos))
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#009e73\" "
                "stroke-dasharray=\"2 3\" stroke-width=\"2\"/>\n", ns_axis_px(&c.x, npos), c.y0,
                ns_axis_px(&c.x, npos), c.y0 + c.h);
    fputs("<polyline fill=\"none\" stroke=\"#0072b2\" stroke-width=\"1.5\" points=\"", f);
    for (int i = 0; i < n; i++)
        if (isfinite(sz[i].val_loss))
            fprintf(f, "%.1f,%.1f ", ns_axis_px(&c.x, i), ns_axis_px(&c.y, sz[i].val_loss));
    fputs("\"/>\n", f);
    for (int i = 0; i < n; i++) {
        if (!isfinite(sz[i].val_loss))
            continue;
        double x = ns_axis_px(&c.x, i), y = ns_axis_px(&c.y, sz[i].val_loss);
        if (sz[i].stable)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"#0072b2\">", x, y);
        else
            fprintf(f, "<path d=\"M%.1f %.1fl10 10m0 -10l-10 10\" stroke=\"#c62828\" "
                    "stroke-width=\"2.5\">", x - 5, y - 5);
        fprintf(f, "<title>batch %.0f, trial %d: val loss %s</title>%s\n", sz[i].batch, sz[i].trial,
                ns_num(num, sz[i].val_loss), sz[i].stable ? "</circle>" : "</path>");
        if (sz[i].batch == chosen)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"10\" fill=\"none\" stroke=\"#d55e00\" "
                    "stroke-width=\"2.5\"/>\n", x, y);
    }
    int li = 0;
    ns_chart_legend(&c, li++, "#0072b2", NULL, 'o', "stable size");
    ns_chart_legend(&c, li++, "#c62828", NULL, 'x', "unstable size");
    ns_chart_legend(&c, li++, "#d55e00", NULL, 'c', "chosen");
    if (isfinite(best) && isfinite(tol)) {
        snprintf(label, sizeof label, "best + %.0f%%", 100 * tol);
        ns_chart_legend(&c, li++, "#b07d00", "6 4", 0, label);
    }
    if (isfinite(npos)) {
        snprintf(label, sizeof label, "noise scale %s", ns_num(num, noise));
        ns_chart_legend(&c, li++, "#009e73", "2 3", 0, label);
    }
    ns_chart_end(&c);

    ns_chart_begin(&c, f, r->next_id++, 560, 360, 0, 20, "Training throughput per batch size");
    c.x = ns_axis_category(n, c.x0, c.x0 + c.w);
    ns_axis_fit(&c.y, 0, smax > 0 ? smax : 1, 0, 0.06, c.y0 + c.h, c.y0);
    c.y.lo = 0;
    ns_chart_axes(&c, "batch size (rows per step)", "samples per second", labels, n, NULL, 0);
    double bw = c.w / (n ? n : 1) * 0.5;
    for (int i = 0; i < n; i++) {
        if (!isfinite(sz[i].sps))
            continue;
        double x = ns_axis_px(&c.x, i), y = ns_axis_px(&c.y, sz[i].sps);
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>"
                "batch %.0f: %s samples/s</title></rect>\n", x - bw / 2, y, bw, c.y0 + c.h - y,
                sz[i].batch == chosen ? "#d55e00" : "#56b4e9", sz[i].batch, ns_num(num, sz[i].sps));
    }
    ns_chart_end(&c);
    fputs("</div>\n", f);

    fputs("<p>Chosen batch size: <b>", f);
    if (chosen > 0)
        fprintf(f, "%.0f</b>, the largest stable size within %s%% of the best validation loss. ",
                chosen, ns_num(num, 100 * tol));
    else
        fputs("none</b>: no size was stable. ", f);
    fprintf(f, "Every size trained on the same number of samples, its LR rescaled from batch %s "
            "(scaling <code>", ns_num(num, ref));
    ns_html_text(f, scaling);
    fputs("</code>: linear for SGD, square root for the adaptive optimizers under auto). ", f);
    if (isfinite(noise))
        fprintf(f, "The gradient noise scale B<sub>simple</sub> at the initial weights is <b>%s</b> "
                "rows: batches well above it buy little per extra sample%s.", ns_num(num, noise),
                isfinite(npos) ? "" : " (it lies outside the sizes tried)");
    else
        fputs("The gradient noise scale could not be estimated (not positive, or one size).", f);
    fputs(" Throughput is evidence only: it differs between runs and machines.</p>\n", f);
}

void ns_rep_view_batch_sweep(ns_report *r)
{
    ns_rep_section(r, "batch", "Batch-size sweep");
    int any = 0;
    for (int i = 0; i < r->v.n_stages; i++)
        if (!strcmp(ns_rep_stage_kind(r->v.stages[i].name), "batch_sweep")) {
            any = 1;
            batch_stage(r, &r->v.stages[i]);
        }
    if (!any)
        ns_rep_none(r, "No batch_sweep stage ran in this study: the batch size came from the config "
                    "or its search space.");
    fputs("</section>\n", r->f);
}

/* ---- optimizer x schedule ------------------------------------------------------------- */

static void compare_stage(ns_report *r, const ns_stage_row *st)
{
    FILE *f = r->f;
    char num[32], num2[32];
    const char *dec = ns_rj_doc(st->decision), *b, *e, *sb, *se;
    fputs("<h3>", f);
    ns_html_text(f, st->name);
    fputs("</h3>\n", f);
    if (!dec || !ns_rj_get(dec, "pairs", &b, &e) || !ns_rj_first(b)) {
        ns_rep_none(r, "the stage has not decided yet");
        return;
    }
    const char *pairs[64];
    char names[64][48];
    const char *ynames[64];
    int n = 0;
    double lo = INFINITY, hi = -INFINITY;
    for (const char *p = ns_rj_first(b); p && n < 64; p = ns_rj_next(p)) {
        double m, ci[2];
        pairs[n] = p;
        if (!ns_rj_str(p, "pair", names[n], sizeof names[n]))
            snprintf(names[n], sizeof names[n], "?");
        ynames[n] = names[n];
        if (ns_rj_num(p, "mean_val_loss", &m) && isfinite(m)) {
            lo = fmin(lo, m);
            hi = fmax(hi, m);
        }
        if (ns_rj_nums(p, "ci95", ci, 2) == 2)
            for (int k = 0; k < 2; k++)
                if (isfinite(ci[k])) {
                    lo = fmin(lo, ci[k]);
                    hi = fmax(hi, ci[k]);
                }
        n++;
    }
    int shortlisted[64] = {0};
    if (ns_rj_get(dec, "shortlist", &sb, &se))
        for (const char *q = ns_rj_first(sb); q; q = ns_rj_next(q))
            for (int i = 0; i < n; i++)
                if (!strncmp(q + 1, names[i], strlen(names[i])) && q[1 + strlen(names[i])] == '"')
                    shortlisted[i] = 1;
    ns_chart c;
    ns_chart_begin(&c, f, r->next_id++, 1120, 110 + 30 * n, 170, 220,
                   "Mean final validation loss per optimizer/schedule pair, with 95% intervals");
    ns_axis_fit(&c.x, lo, hi, 0, 0.05, c.x0, c.x0 + c.w);
    c.y = ns_axis_category(n, c.y0, c.y0 + c.h);
    ns_chart_axes(&c, "validation loss after the stage's epochs (per row, mean over seeds)", NULL, NULL,
                  0, ynames, n);
    for (int i = 0; i < n; i++) {
        double m = NAN, ci[2] = {NAN, NAN}, pv = NAN;
        const char *xb, *xe;
        int excluded = ns_rj_get(pairs[i], "excluded", &xb, &xe) && strncmp(xb, "null", 4);
        ns_rj_num(pairs[i], "mean_val_loss", &m);
        ns_rj_num(pairs[i], "p_vs_leader", &pv);
        ns_rj_nums(pairs[i], "ci95", ci, 2);
        const char *col = excluded ? "#9aa4ae" : i == 0 ? "#d55e00" : shortlisted[i] ? "#0072b2" : "#56b4e9";
        double y = ns_axis_px(&c.y, i);
        if (isfinite(ci[0]) && isfinite(ci[1]))
            fprintf(f, "<path d=\"M%.1f %.1fv10m0 -5H%.1fm0 -5v10\" stroke=\"%s\" stroke-width=\"2\" "
                    "fill=\"none\"/>\n", ns_axis_px(&c.x, ci[0]), y - 5, ns_axis_px(&c.x, ci[1]), col);
        if (isfinite(m)) {
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"6\" fill=\"%s\"><title>", ns_axis_px(&c.x, m),
                    y, excluded ? "#fff" : col);
            ns_html_text(f, names[i]);
            fprintf(f, ": mean %s, 95%% CI %s", ns_num(num, m), ns_num(num2, ci[0]));
            fprintf(f, " to %s, p %s</title></circle>\n", ns_num(num, ci[1]), ns_num(num2, pv));
            if (excluded)
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"6\" fill=\"none\" stroke=\"%s\" "
                        "stroke-width=\"2\"/>\n", ns_axis_px(&c.x, m), y, col);
        }
    }
    int li = 0;
    ns_chart_legend(&c, li++, "#d55e00", NULL, 'o', "leader");
    ns_chart_legend(&c, li++, "#0072b2", NULL, 'o', "short-listed");
    ns_chart_legend(&c, li++, "#56b4e9", NULL, 'o', "ranked");
    ns_chart_legend(&c, li++, "#9aa4ae", NULL, 'c', "excluded");
    ns_chart_legend(&c, li++, "#333", NULL, 0, "95% interval (t)");
    ns_chart_end(&c);

    double seeds = NAN;
    ns_rj_num(dec, "seeds", &seeds);
    fputs("<table class=\"small\"><tr><th>rank</th><th>pair</th><th>seeds with a loss</th><th>mean "
          "validation loss</th><th>95% interval</th><th>p vs leader (Welch)</th><th>excluded: why</th>"
          "</tr>\n", f);
    for (int i = 0, rank = 1; i < n; i++) {
        double m = NAN, ci[2] = {NAN, NAN}, pv = NAN, k = NAN;
        const char *xb, *xe;
        int excluded = ns_rj_get(pairs[i], "excluded", &xb, &xe) && strncmp(xb, "null", 4);
        ns_rj_num(pairs[i], "mean_val_loss", &m);
        ns_rj_num(pairs[i], "p_vs_leader", &pv);
        ns_rj_num(pairs[i], "n", &k);
        ns_rj_nums(pairs[i], "ci95", ci, 2);
        if (excluded)
            fputs("<tr><td>-</td><td>", f);
        else
            fprintf(f, "<tr><td class=\"n\">%d</td><td>", rank++);
        ns_html_text(f, names[i]);
        fprintf(f, "%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td>",
                shortlisted[i] ? " <b>(short list)</b>" : "", ns_num(num, k), ns_num(num2, m));
        fprintf(f, "<td class=\"n\">%s", ns_num(num, ci[0]));
        fprintf(f, " to %s</td><td class=\"n\">%s</td><td>", ns_num(num, ci[1]), ns_num(num2, pv));
        if (excluded)
            ns_rj_put(f, pairs[i], "excluded", "");
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
    fprintf(f, "<p class=\"note\">Each pair trained with %s seeds; the mean is of the final "
            "validation loss, the interval Student's t over the seeds, p Welch's two-sided t-test "
            "against the leader (small p: the leader is better beyond chance). A pair with a "
            "failed, diverged or unstable seed is excluded whatever its mean.</p>\n",
            ns_num(num, seeds));
}

void ns_rep_view_compare(ns_report *r)
{
    ns_rep_section(r, "compare", "Optimizer x schedule comparison");
    int any = 0;
    for (int i = 0; i < r->v.n_stages; i++)
        if (!strcmp(ns_rep_stage_kind(r->v.stages[i].name), "compare")) {
            any = 1;
            compare_stage(r, &r->v.stages[i]);
        }
    if (!any)
        ns_rep_none(r, "No compare stage ran in this study: the optimizer and schedule came from the "
                    "config or its search space.");
    fputs("</section>\n", r->f);
}
