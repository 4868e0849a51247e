/* svg.c — chart frames, axes and colours of svg.h. It draws what it is told in pixel
 * coordinates it computes from the axes; it reads no study and decides nothing. */
#include "search/report/svg.h"

#include <math.h>
#include <string.h>

void ns_html_text_n(FILE *f, const char *s, size_t n)
{
    for (size_t i = 0; s && i < n && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default:
            /* XML 1.0 forbids most control characters even as references */
            fputc((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f ? '?' : c, f);
        }
    }
}

void ns_html_text(FILE *f, const char *s)
{
    if (s)
        ns_html_text_n(f, s, strlen(s));
}

const char *ns_num(char buf[32], double v)
{
    if (!isfinite(v))
        snprintf(buf, 32, "-");
    else
        snprintf(buf, 32, "%.4g", v);
    return buf;
}

/* ---- axes ----------------------------------------------------------------------------- */

static double tr(const ns_axis *a, double v)
{
    return a->log ? log10(v) : v;
}

double ns_axis_px(const ns_axis *a, double v)
{
    if (a->log && !(v > 0))
        return a->p0 + (a->p0 < a->p1 ? -6 : 6);
    double l = tr(a, a->lo), h = tr(a, a->hi);
    return a->p0 + (tr(a, v) - l) / (h - l) * (a->p1 - a->p0);
}

void ns_axis_fit(ns_axis *a, double lo, double hi, int log, double pad, double p0, double p1)
{
    a->p0 = p0;
    a->p1 = p1;
    a->whole = 0;
    if (!(lo <= hi) || !isfinite(lo) || !isfinite(hi)) {
        lo = log ? 1 : 0;
        hi = log ? 10 : 1;
    }
    a->log = log && lo > 0;
    double l = a->log ? log10(lo) : lo, h = a->log ? log10(hi) : hi;
    if (h - l < 1e-12 * (fabs(l) + fabs(h)) || h == l) {
        double w = a->log ? 0.5 : (l == 0 ? 1 : 0.1 * fabs(l));
        l -= w;
        h += w;
    } else {
        double s = (h - l) * pad;
        l -= s;
        h += s;
    }
    a->lo = a->log ? pow(10, l) : l;
    a->hi = a->log ? pow(10, h) : h;
}

ns_axis ns_axis_category(int n, double p0, double p1)
{
    return (ns_axis){.lo = -0.5, .hi = n - 0.5, .log = 0, .p0 = p0, .p1 = p1, .whole = 1};
}

int ns_axis_ticks(const ns_axis *a, double *t, int cap)
{
    int n = 0;
    if (a->log) {
        double l = log10(a->lo), h = log10(a->hi);
        int k0 = (int)ceil(l - 1e-9), k1 = (int)floor(h + 1e-9);
        if (h - l < 3) { /* few decades: 1, 2, 5 within each */
            static const double m[] = {1, 2, 5};
            for (int k = (int)floor(l); k <= (int)ceil(h) && n < cap; k++)
                for (int j = 0; j < 3 && n < cap; j++) {
                    double v = m[j] * pow(10, k);
                    if (v >= a->lo * (1 - 1e-9) && v <= a->hi * (1 + 1e-9))
                        t[n++] = v;
                }
            if (n >= 2)
                return n;
            n = 0; /* under one 1-2-5 step: linear ticks on the log axis */
            ns_axis lin = *a;
            lin.log = 0;
            return ns_axis_ticks(&lin, t, cap);
        }
        int every = k1 - k0 > 8 ? 2 : 1;
        for (int k = k0; k <= k1 && n < cap; k += every)
            t[n++] = pow(10, k);
        return n;
    }
    double span = a->hi - a->lo;
    if (!(span > 0))
        return 0;
    double raw = span / 6, p = pow(10, floor(log10(raw))), step;
    double r = raw / p;
    step = (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * p;
    if (a->whole && step < 1)
        step = 1;
    for (double k = ceil(a->lo / step - 1e-9); k * step <= a->hi + 1e-9 * step && n < cap; k++) {
        double v = k * step;
        t[n++] = fabs(v) < 1e-12 * step ? 0 : v;
    }
    return n;
}

/* ---- charts --------------------------------------------------------------------------- */

void ns_chart_begin(ns_chart *c, FILE *f, int id, int width, int height, int left, int legend_w,
                    const char *title)
{
    memset(c, 0, sizeof *c);
    c->f = f;
    c->id = id;
    c->width = width;
    c->height = height;
    c->x0 = left > 0 ? left : 78;
    c->y0 = 36;
    c->w = width - c->x0 - (legend_w > 0 ? legend_w : 20);
    c->h = height - c->y0 - 52;
    fprintf(f, "<svg class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
            "aria-label=\"", width, height, width, height);
    ns_html_text(f, title);
    fprintf(f, "\">\n<defs><clipPath id=\"clip%d\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
            "height=\"%.1f\"/></clipPath></defs>\n", id, c->x0, c->y0, c->w, c->h);
    fprintf(f, "<text class=\"ctitle\" x=\"%.1f\" y=\"22\">", c->x0);
    ns_html_text(f, title);
    fputs("</text>\n", f);
}

static void tick_label(FILE *f, const ns_axis *a, double v)
{
    char buf[32];
    if (a->log && v > 0 && fabs(log10(v) - round(log10(v))) < 1e-9 && (v < 1e-3 || v >= 1e4))
        snprintf(buf, sizeof buf, "1e%d", (int)round(log10(v)));
    else if (fabs(v) >= 1e6) /* throughputs: 7M reads better than 7e+06 */
        snprintf(buf, sizeof buf, "%gM", v / 1e6);
    else if (fabs(v) >= 1e4)
        snprintf(buf, sizeof buf, "%gk", v / 1e3);
    else
        snprintf(buf, sizeof buf, "%g", v);
    ns_html_text(f, buf);
}

void ns_chart_axes(ns_chart *c, const char *xlabel, const char *ylabel, const char *const *xlabels,
                   int nx, const char *const *ylabels, int ny)
{
    FILE *f = c->f;
    double t[64];
    int n;
    double xb = c->y0 + c->h, xr = c->x0 + c->w;
    fputs("<g class=\"grid\">", f);
    if (xlabels) {
        for (int i = 0; i < nx; i++)
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>",
                    ns_axis_px(&c->x, i), c->y0, ns_axis_px(&c->x, i), xb);
    } else {
        n = ns_axis_ticks(&c->x, t, 64);
        for (int i = 0; i < n; i++)
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>",
                    ns_axis_px(&c->x, t[i]), c->y0, ns_axis_px(&c->x, t[i]), xb);
    }
    if (!ylabels) {
        n = ns_axis_ticks(&c->y, t, 64);
        for (int i = 0; i < n; i++)
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", c->x0,
                    ns_axis_px(&c->y, t[i]), xr, ns_axis_px(&c->y, t[i]));
    }
    fputs("</g>\n", f);
    fprintf(f, "<rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>\n",
            c->x0, c->y0, c->w, c->h);
    fputs("<g class=\"ticks\">", f);
    if (xlabels) {
        for (int i = 0; i < nx; i++) {
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", ns_axis_px(&c->x, i),
                    xb + 17);
            ns_html_text(f, xlabels[i]);
            fputs("</text>", f);
        }
    } else {
        n = ns_axis_ticks(&c->x, t, 64);
        for (int i = 0; i < n; i++) {
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", ns_axis_px(&c->x, t[i]),
                    xb + 17);
            tick_label(f, &c->x, t[i]);
            fputs("</text>", f);
        }
    }
    if (ylabels) {
        for (int i = 0; i < ny; i++) {
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", c->x0 - 6,
                    ns_axis_px(&c->y, i) + 4);
            ns_html_text(f, ylabels[i]);
            fputs("</text>", f);
        }
    } else {
        n = ns_axis_ticks(&c->y, t, 64);
        for (int i = 0; i < n; i++) {
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", c->x0 - 6,
                    ns_axis_px(&c->y, t[i]) + 4);
            tick_label(f, &c->y, t[i]);
            fputs("</text>", f);
        }
    }
    fputs("</g>\n", f);
    fprintf(f, "<text class=\"alabel\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
            c->x0 + c->w / 2, xb + 40);
    ns_html_text(f, xlabel);
    fputs("</text>\n", f);
    if (ylabel) {
        fprintf(f, "<text class=\"alabel\" transform=\"translate(16,%.1f) rotate(-90)\" "
                "text-anchor=\"middle\">", c->y0 + c->h / 2);
        ns_html_text(f, ylabel);
        fputs("</text>\n", f);
    }
}

void ns_chart_clip(ns_chart *c)
{
    fprintf(c->f, "<g clip-path=\"url(#clip%d)\">\n", c->id);
}

void ns_chart_unclip(ns_chart *c)
{
    fputs("</g>\n", c->f);
}

void ns_chart_legend(ns_chart *c, int i, const char *color, const char *dash, char marker,
                     const char *label)
{
    FILE *f = c->f;
    double x = c->x0 + c->w + 16, y = c->y0 + 8 + 19 * i;
    switch (marker) {
    case 'o':
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>", x + 11, y, color);
        break;
    case 'c':
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"none\" stroke=\"%s\" "
                "stroke-width=\"1.5\"/>", x + 11, y, color);
        break;
    case 'x':
        fprintf(f, "<path d=\"M%.1f %.1fl8 8m0 -8l-8 8\" stroke=\"%s\" stroke-width=\"2\"/>", x + 7,
                y - 4, color);
        break;
    case 's':
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"18\" height=\"10\" fill=\"%s\"/>", x + 2,
                y - 5, color);
        break;
    default:
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                "stroke-width=\"2\"%s%s%s/>", x, y, x + 22, y, color, dash ? " stroke-dasharray=\"" : "",
                dash ? dash : "", dash ? "\"" : "");
    }
    fprintf(f, "<text class=\"legend\" x=\"%.1f\" y=\"%.1f\">", x + 28, y + 4);
    ns_html_text(f, label);
    fputs("</text>\n", f);
}

void ns_chart_end(ns_chart *c)
{
    fputs("</svg>\n", c->f);
}

/* ---- colours -------------------------------------------------------------------------- */

const char *ns_color(int i)
{
    static const char *const pal[] = {"#0072b2", "#e69f00", "#009e73", "#cc79a7", "#d55e00",
                                      "#56b4e9", "#8c6d31", "#000000", "#7f7f7f", "#b8a000"};
    return pal[(i < 0 ? 0 : i) % (int)(sizeof pal / sizeof *pal)];
}

void ns_ramp(double t, char out[8])
{
    static const double stops[][3] = {{68, 1, 84},   {59, 82, 139},  {33, 145, 140},
                                      {94, 201, 98}, {253, 231, 37}};
    if (!isfinite(t))
        t = 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double s = t * 4;
    int k = s >= 4 ? 3 : (int)s;
    double u = s - k;
    int rgb[3];
    for (int j = 0; j < 3; j++)
        rgb[j] = (int)lround(stops[k][j] + u * (stops[k + 1][j] - stops[k][j]));
    snprintf(out, 8, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}
