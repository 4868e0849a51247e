/* lrfind.c — the LR range test of a config (lrfind.h): model building through the
 * pipeline, the CSV files and the text plot. The sweep and the suggestions are the
 * engine's (engine/train/lrfind.c). */
#include "search/stages/lrfind.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/atomic.h"
#include "engine/rng.h"

int ns_lrfind_config(const ns_config *c, const ns_prepared *p, const ns_lrfind_spec *spec,
                     uint64_t seed, ns_lrfind_curve *out, ns_err *err)
{
    memset(out, 0, sizeof *out);
    if (c->space.n > 0)
        return ns_err_set(err, NS_EINPUT, "%s: %s is a search space; lr-find needs a fixed config",
                          c->path, c->space.dims[0].name);
    ns_lrfind_spec s = *spec;
    if (s.batch_size == 0)
        s.batch_size = c->train.batch_size;
    if (s.batch_size < 1)
        return ns_err_set(err, NS_EINPUT, "lr-find: batch size %d must be >= 1", s.batch_size);
    if (s.batch_size > p->train.n) /* the model needs no room for rows that never come */
        s.batch_size = (int)p->train.n;
    ns_backend *be = ns_backend_open((ns_device)c->device, c->threads > 0 ? c->threads : 1,
                                     (ns_precision)c->precision, err);
    if (!be)
        return err ? err->code : NS_ERUNTIME;
    int rc;
    ns_mlp *m = ns_pipeline_model_alloc(c, p, be, s.batch_size > 0 ? s.batch_size : 1, seed, err);
    if (!m)
        rc = err ? err->code : NS_ERUNTIME;
    else
        rc = ns_lrfind_run(&s, be, &m->net, &c->train.opt, &p->train,
                           ns_seed_derive(seed, 0x7472616e, 0), out, err);
    ns_mlp_free(m);
    ns_backend_free(be);
    return rc;
}

uint64_t ns_lrfind_seed(const ns_config *c, int i)
{
    return ns_seed_derive(c->train.seed, 0x6c726669, (uint64_t)i);
}

static int write_curves(const char *path, const ns_lrfind_curve *c, int n, int with_seed,
                        ns_err *err)
{
    ns_atomic_file af;
    int rc = ns_atomic_open(&af, path, err);
    if (rc)
        return rc;
    fputs(with_seed ? "seed,step,lr,loss,smoothed\n" : "step,lr,loss,smoothed\n", af.f);
    for (int k = 0; k < n; k++)
        for (int i = 0; i < c[k].n; i++) {
            if (with_seed)
                fprintf(af.f, "%d,", k);
            fprintf(af.f, "%d,%.17g,%.17g,%.17g\n", i, c[k].lr[i], c[k].loss[i], c[k].smoothed[i]);
        }
    return ns_atomic_commit(&af, err); /* a short write shows in the stream's error flag */
}

int ns_lrfind_write_csv(const char *path, const ns_lrfind_curve *c, ns_err *err)
{
    return write_curves(path, c, 1, 0, err);
}

int ns_lrfind_write_csv_seeds(const char *path, const ns_lrfind_curve *c, int n, ns_err *err)
{
    return write_curves(path, c, n, 1, err);
}

void ns_lrfind_plot(FILE *f, const ns_lrfind_curve *c, double mark_lr, const char *mark_name,
                    int width, int height)
{
    if (c->n < 2) {
        fprintf(f, "(no curve: %d points)\n", c->n);
        return;
    }
    int W = width < 20 ? 20 : width > 200 ? 200 : width;
    int H = height < 5 ? 5 : height > 100 ? 100 : height;
    double x0 = log10(c->lr[0]), x1 = log10(c->lr[c->n - 1]);
    double ymin = INFINITY, ymax = -INFINITY;
    for (int i = 0; i < c->n; i++) {
        ymin = fmin(ymin, c->smoothed[i]);
        ymax = fmax(ymax, c->smoothed[i]);
    }
    double cap = ymin + 1.5 * (c->smoothed[0] - ymin);
    if (cap > ymin && cap < ymax)
        ymax = cap;
    if (!(ymax > ymin))
        ymax = ymin + 1;
    char *grid = malloc((size_t)W * H);
    if (!grid)
        return;
    memset(grid, ' ', (size_t)W * H);
    int mark_col = -1;
    if (isfinite(mark_lr) && mark_lr > 0 && x1 > x0) {
        mark_col = (int)lround((log10(mark_lr) - x0) / (x1 - x0) * (W - 1));
        if (mark_col < 0 || mark_col >= W)
            mark_col = -1;
        for (int r = 0; mark_col >= 0 && r < H; r++)
            grid[(size_t)r * W + mark_col] = '|';
    }
    for (int i = 0; i < c->n; i++) {
        int col = x1 > x0 ? (int)lround((log10(c->lr[i]) - x0) / (x1 - x0) * (W - 1)) : 0;
        double y = c->smoothed[i];
        int row = (int)lround((ymax - y) / (ymax - ymin) * (H - 1));
        char ch = '*';
        if (row < 0) {
            row = 0;
            ch = '^';
        }
        if (row > H - 1)
            row = H - 1;
        grid[(size_t)row * W + col] = ch;
    }
    if (mark_col >= 0)
        fprintf(f, "smoothed loss against LR (log scale); | marks %s %.3g\n",
                mark_name ? mark_name : "LR", mark_lr);
    else
        fprintf(f, "smoothed loss against LR (log scale)\n");
    for (int r = 0; r < H; r++) {
        if (r == 0 || r == H - 1)
            fprintf(f, "%9.4g |", r == 0 ? ymax : ymin);
        else
            fprintf(f, "%9s |", "");
        fwrite(grid + (size_t)r * W, 1, (size_t)W, f);
        fputc('\n', f);
    }
    fprintf(f, "%9s +", "");
    for (int i = 0; i < W; i++)
        fputc('-', f);
    fputc('\n', f);
    /* LR labels at both ends and in the middle */
    char left[32], mid[32], right[32];
    snprintf(left, sizeof left, "%.0e", c->lr[0]);
    snprintf(mid, sizeof mid, "%.0e", pow(10.0, 0.5 * (x0 + x1)));
    snprintf(right, sizeof right, "%.0e", c->lr[c->n - 1]);
    int lm = (int)strlen(mid), lr = (int)strlen(right);
    int pm = W / 2 - lm / 2, pr = W - lr;
    char *axis = malloc((size_t)W + 1);
    if (axis) {
        memset(axis, ' ', (size_t)W);
        axis[W] = 0;
        memcpy(axis, left, strlen(left) < (size_t)W ? strlen(left) : (size_t)W);
        if (pm > (int)strlen(left) && pm + lm < pr)
            memcpy(axis + pm, mid, (size_t)lm);
        if (pr > 0)
            memcpy(axis + pr, right, (size_t)lr);
        fprintf(f, "%9s  %s\n", "", axis);
        free(axis);
    }
    free(grid);
}

/* The glyph of seed k: its digit, then letters. */
static char seed_glyph(int k)
{
    return k < 10 ? (char)('0' + k) : k < 36 ? (char)('a' + k - 10) : '+';
}

void ns_lrfind_plot_seeds(FILE *f, const ns_lrfind_curve *c, int n, double suggestion,
                          double lo, double hi, int width, int height)
{
    int W = width < 20 ? 20 : width > 200 ? 200 : width;
    int H = height < 5 ? 5 : height > 100 ? 100 : height;
    double x0 = INFINITY, x1 = -INFINITY, ymin = INFINITY, ymax = -INFINITY, first = -INFINITY;
    int points = 0;
    for (int k = 0; k < n; k++) {
        if (c[k].n < 1)
            continue;
        x0 = fmin(x0, log10(c[k].lr[0]));
        x1 = fmax(x1, log10(c[k].lr[c[k].n - 1]));
        first = fmax(first, c[k].smoothed[0]);
        for (int i = 0; i < c[k].n; i++)
            if (isfinite(c[k].smoothed[i])) {
                ymin = fmin(ymin, c[k].smoothed[i]);
                ymax = fmax(ymax, c[k].smoothed[i]);
                points++;
            }
    }
    if (points < 2 || !(x1 > x0)) {
        fprintf(f, "(no curve to plot: %d points)\n", points);
        return;
    }
    double cap = ymin + 1.5 * (first - ymin);
    if (cap > ymin && cap < ymax)
        ymax = cap;
    if (!(ymax > ymin))
        ymax = ymin + 1;
    char *grid = malloc((size_t)W * H);
    char *axis = malloc((size_t)W + 1);
    if (!grid || !axis) {
        free(grid);
        free(axis);
        return;
    }
    memset(grid, ' ', (size_t)W * H);
#define COL_OF(lr) ((int)lround((log10(lr) - x0) / (x1 - x0) * (W - 1)))
    double marks[3] = {lo, hi, suggestion};
    const char glyph[3] = {':', ':', '|'};
    int shown[3] = {0, 0, 0};
    for (int m = 0; m < 3; m++) {
        if (!isfinite(marks[m]) || !(marks[m] > 0))
            continue;
        int col = COL_OF(marks[m]);
        if (col < 0 || col >= W)
            continue;
        shown[m] = 1;
        for (int r = 0; r < H; r++)
            grid[(size_t)r * W + col] = glyph[m];
    }
    for (int k = 0; k < n; k++)
        for (int i = 0; i < c[k].n; i++) {
            double y = c[k].smoothed[i];
            if (!isfinite(y))
                continue;
            int col = COL_OF(c[k].lr[i]);
            int row = (int)lround((ymax - y) / (ymax - ymin) * (H - 1));
            char ch = seed_glyph(k);
            if (row < 0) {
                row = 0;
                ch = '^';
            }
            if (row > H - 1)
                row = H - 1;
            char *cell = &grid[(size_t)row * W + col];
            /* another seed's point in the cell: '*' (a mark or this seed's own: overwrite) */
            *cell = (*cell != ' ' && *cell != ':' && *cell != '|' && *cell != ch && ch != '^') ? '*' : ch;
        }
#undef COL_OF
    /* title and legend */
    fprintf(f, "smoothed training loss against learning rate, %d seed%s:", n, n == 1 ? "" : "s");
    for (int k = 0; k < n && k < 36; k++)
        fprintf(f, " %c", seed_glyph(k));
    fprintf(f, "%s\n", n > 1 ? " (* several)" : "");
    if (shown[2] || shown[0] || shown[1]) {
        fprintf(f, "%11s", "");
        if (shown[2])
            fprintf(f, "| suggestion %.3g", suggestion);
        if (shown[0] || shown[1])
            fprintf(f, "%s: bounds %.3g .. %.3g", shown[2] ? "   " : "", lo, hi);
        fputc('\n', f);
    }
    fprintf(f, "%9s\n", "loss");
    for (int r = 0; r < H; r++) {
        double y = ymax - (ymax - ymin) * r / (H - 1);
        if (r == 0 || r == H - 1 || r == (H - 1) / 2)
            fprintf(f, "%9.4g +", y);
        else
            fprintf(f, "%9s |", "");
        fwrite(grid + (size_t)r * W, 1, (size_t)W, f);
        fputc('\n', f);
    }
    /* the LR axis: a tick '+' and a label at each power of ten (every second or more when
     * the labels would touch) */
    int decades = (int)floor(x1) - (int)ceil(x0) + 1;
    int step = 1;
    while (decades / step > W / 8)
        step++;
    memset(axis, '-', (size_t)W);
    axis[W] = 0;
    char labels[256];
    memset(labels, ' ', sizeof labels);
    int right = -1;
    for (int e = (int)ceil(x0); e <= (int)floor(x1); e++) {
        if ((e - (int)ceil(x0)) % step)
            continue;
        int col = (int)lround((e - x0) / (x1 - x0) * (W - 1));
        if (col < 0 || col >= W)
            continue;
        if (col > 0) /* column 0 is the corner's */
            axis[col] = '+';
        char t[16];
        int len = snprintf(t, sizeof t, "1e%+03d", e);
        int at = col - len / 2;
        if (at < 0)
            at = 0;
        if ((right >= 0 && at <= right + 1) || at + len > (int)sizeof labels - 1)
            continue;
        memcpy(labels + at, t, (size_t)len);
        right = at + len - 1;
    }
    labels[right + 1 > 0 ? right + 1 : 0] = 0;
    fprintf(f, "%9s +%s\n", "", axis);
    fprintf(f, "%9s  %s\n", "", labels);
    fprintf(f, "%9s  %*s\n", "", W / 2 + 13, "learning rate (log scale)");
    free(grid);
    free(axis);
}
