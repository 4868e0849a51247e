/* svg.h — the few drawing pieces the HTML report needs: escaped text, a chart frame with
 * linear or log10 axes, ticks and labels, a legend in the right margin, and colours. Writes
 * SVG elements to a FILE as XHTML-compatible markup (every element closed, attributes
 * quoted). Not a plotting library: each chart of the report places its own marks. */
#ifndef NS_SVG_H
#define NS_SVG_H

#include <stddef.h>
#include <stdio.h>

/* s with & < > " ' escaped and control characters as '?' (text or attribute value); NULL
 * writes nothing. The _n form writes the first n bytes. */
void ns_html_text(FILE *f, const char *s);
void ns_html_text_n(FILE *f, const char *s, size_t n);

/* One axis: data [lo, hi] onto pixels [p0, p1] (p1 < p0 for a y axis), log10 when log. */
typedef struct ns_axis {
    double lo, hi;
    int log;
    double p0, p1;
    int whole;  /* ticks on whole numbers only (epochs, trial numbers) */
} ns_axis;

/* data -> pixel; a non-positive value on a log axis maps below the axis start. */
double ns_axis_px(const ns_axis *a, double v);
/* [lo, hi] (the data's extent; non-finite ends ignored, lo > hi means no data) padded by
 * pad (a share of the span, in log space on a log axis), a single value widened, a log
 * axis with a non-positive lo falling back to linear; whole = 0. */
void ns_axis_fit(ns_axis *a, double lo, double hi, int log, double pad, double p0, double p1);
/* A category axis: n categories at 0..n-1, half a step of room at each end. */
ns_axis ns_axis_category(int n, double p0, double p1);
/* Tick values inside [lo, hi]: steps of 1, 2 or 5 x 10^k (about 6 ticks), on a log axis
 * the powers of ten (every other one beyond 8 decades; 1-2-5 within each decade below 3).
 * Returns the count (at most cap). */
int ns_axis_ticks(const ns_axis *a, double *t, int cap);

/* A chart: an <svg> of width x height px, a title on top, a plot area inside the margins. */
typedef struct ns_chart {
    FILE *f;
    int id;                 /* unique in the document: its clip path is "clip<id>" */
    int width, height;
    double x0, y0, w, h;    /* plot area: left, top, width, height (px) */
    ns_axis x, y;
} ns_chart;

/* Margins: left for the y tick labels and axis title (0: 78 px, room for numbers), right
 * for the legend (0: a narrow one), top for the title, bottom for the x tick labels and axis
 * title. */
void ns_chart_begin(ns_chart *c, FILE *f, int id, int width, int height, int left, int legend_w,
                    const char *title);
/* Grid lines, the frame, ticks with labels and both axis titles (with units). xlabels
 * (NULL: numbers) names the x ticks 0..n-1 of a category axis; same for ylabels. */
void ns_chart_axes(ns_chart *c, const char *xlabel, const char *ylabel, const char *const *xlabels,
                   int nx, const char *const *ylabels, int ny);
/* Opens a group clipped to the plot area (marks that may run outside it); close with
 * ns_chart_unclip. */
void ns_chart_clip(ns_chart *c);
void ns_chart_unclip(ns_chart *c);
/* Legend entry i (0-based, top down) in the right margin: a line (dash: SVG dasharray or
 * NULL), a dot (marker 'o'), a hollow dot ('c'), a cross ('x') or a box ('s'), then label. */
void ns_chart_legend(ns_chart *c, int i, const char *color, const char *dash, char marker,
                     const char *label);
void ns_chart_end(ns_chart *c);

/* A categorical colour (Okabe-Ito, then more), i >= 0, cycling. */
const char *ns_color(int i);
/* The colour at t in [0, 1] of a viridis-like ramp, as "#rrggbb". */
void ns_ramp(double t, char out[8]);

/* A short number for labels: %.4g, with "-" for non-finite. Returns buf. */
const char *ns_num(char buf[32], double v);

#endif
