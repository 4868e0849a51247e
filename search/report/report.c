/* report.c — the HTML report of report.h: reads the study once (one snapshot), then writes
 * the document: the answer first (report_answer.c), the six mistakes, the stages' evidence,
 * the trials. Also the small readers of stored JSON the views share. It decides nothing:
 * every number it shows is one the driver stored, or a plain summary of them that the page
 * says how it got. */
#include "search/report/report.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/atomic.h"
#include "engine/train/health.h"
#include "search/config/config.h"
#include "search/report/report_impl.h"
#include "search/study/json.h"

#ifndef NS_VERSION
#define NS_VERSION "unknown"
#endif

/* ---- stored JSON ---------------------------------------------------------------------- */

const char *ns_rj_doc(const char *t)
{
    return t && ns_json_valid(t) ? ns_json_skip_ws(t) : NULL;
}

int ns_rj_get(const char *obj, const char *key, const char **b, const char **e)
{
    return obj && ns_json_get(obj, key, b, e);
}

int ns_rj_num(const char *obj, const char *key, double *v)
{
    const char *b, *e;
    char *end;
    if (!ns_rj_get(obj, key, &b, &e) || (*b != '-' && (*b < '0' || *b > '9')))
        return 0;
    *v = strtod(b, &end);
    return end == e;
}

/* The body [b, e) of a JSON string, unescaped, to out (at most cap - 1 bytes); -1 when it
 * does not fit. A \u escape becomes '?': stored strings are ASCII text. */
static int unescape(const char *b, const char *e, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = b; p < e; p++) {
        char c = *p;
        if (c == '\\' && p + 1 < e) {
            c = *++p;
            if (c == 'u') {
                p += 4;
                c = '?';
            } else if (c == 'n' || c == 't' || c == 'r' || c == 'b' || c == 'f') {
                c = ' ';
            }
        }
        if (out) {
            if (n + 1 >= cap)
                return -1;
            out[n] = c;
        }
        n++;
    }
    if (out)
        out[n] = '\0';
    return (int)n;
}

int ns_rj_str(const char *obj, const char *key, char *out, size_t cap)
{
    const char *b, *e;
    if (!ns_rj_get(obj, key, &b, &e) || b[-1] != '"')
        return 0;
    return unescape(b, e, out, cap) >= 0;
}

void ns_rj_put(FILE *f, const char *obj, const char *key, const char *missing)
{
    const char *b, *e;
    if (!ns_rj_get(obj, key, &b, &e)) {
        ns_html_text(f, missing);
        return;
    }
    if (b[-1] != '"') {
        ns_html_text_n(f, b, (size_t)(e - b));
        return;
    }
    int n = unescape(b, e, NULL, 0);
    char *s = malloc((size_t)n + 1);
    if (s && unescape(b, e, s, (size_t)n + 1) >= 0)
        ns_html_text(f, s);
    free(s);
}

const char *ns_rj_first(const char *arr)
{
    if (!arr || *arr != '[')
        return NULL;
    const char *p = ns_json_skip_ws(arr + 1);
    return *p == ']' ? NULL : p;
}

const char *ns_rj_next(const char *p)
{
    p = ns_json_skip_ws(ns_json_value_end(p));
    return *p == ',' ? ns_json_skip_ws(p + 1) : NULL;
}

int ns_rj_nums(const char *obj, const char *key, double *out, int cap)
{
    const char *b, *e;
    if (!ns_rj_get(obj, key, &b, &e) || *b != '[')
        return -1;
    int n = 0;
    for (const char *p = ns_rj_first(b); p; p = ns_rj_next(p), n++) {
        char *end;
        double v = !strncmp(p, "null", 4) ? NAN : strtod(p, &end);
        if (n < cap)
            out[n] = v;
    }
    return n;
}

/* ---- shared bits ---------------------------------------------------------------------- */

const char *ns_rep_stage_kind(const char *name)
{
    const char *c = name ? strchr(name, ':') : NULL;
    return c ? c + 1 : name ? name : "";
}

int ns_rep_stage_index(const ns_report *r, const char *name)
{
    for (int i = 0; i < r->v.n_stages; i++)
        if (!strcmp(r->v.stages[i].name, name))
            return i;
    return -1;
}

const char *ns_rep_metric_label(const char *metric)
{
    if (!strcmp(metric, "val_acc"))
        return "validation accuracy (share of rows)";
    if (!strcmp(metric, "val_balanced_acc"))
        return "validation balanced accuracy (mean recall)";
    if (!strcmp(metric, "val_macro_f1"))
        return "validation macro-F1 (0 to 1)";
    if (!strcmp(metric, "val_loss"))
        return "validation loss (per row)";
    if (!strcmp(metric, "val_rmse"))
        return "validation RMSE (target units)";
    return metric;
}

void ns_rep_none(ns_report *r, const char *text)
{
    fputs("<p class=\"none\">", r->f);
    ns_html_text(r->f, text);
    fputs("</p>\n", r->f);
}

void ns_rep_section(ns_report *r, const char *id, const char *title)
{
    fprintf(r->f, "<section id=\"%s\">\n<h2>", id);
    ns_html_text(r->f, title);
    fputs("</h2>\n", r->f);
}

void ns_rep_trial_title(ns_report *r, const ns_trial_row *t)
{
    char num[32];
    fprintf(r->f, "<title>trial %d (", t->number);
    ns_html_text(r->f, t->stage);
    fprintf(r->f, ", %s): ", ns_trial_state_name(t->state));
    ns_html_text(r->f, r->v.study.metric);
    fprintf(r->f, " %s</title>", ns_num(num, t->val_metric));
}

/* "trial 12 (2:bayes, complete)" as HTML. */
static void put_trial_ref(FILE *f, const ns_trial_row *t)
{
    fprintf(f, "trial %d (", t->number);
    ns_html_text(f, t->stage);
    fprintf(f, ", %s)", ns_trial_state_name(t->state));
}

static void put_time(FILE *f, double unix_s)
{
    char buf[40];
    time_t t = (time_t)unix_s;
    struct tm tm;
    if (isfinite(unix_s) && gmtime_r(&t, &tm) && strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm))
        fputs(buf, f);
    else
        fputs("-", f);
}

/* ---- the stages ----------------------------------------------------------------------- */

static void view_stages(ns_report *r)
{
    FILE *f = r->f;
    ns_rep_section(r, "stages", "Stages");
    if (!r->v.n_stages) {
        ns_rep_none(r, "no stage has started yet");
        fputs("</section>\n", f);
        return;
    }
    fputs("<table><tr><th>stage</th><th>state</th><th>trials</th><th>started</th><th>seconds</th>"
          "<th>decision</th></tr>\n", f);
    for (int i = 0; i < r->v.n_stages; i++) {
        const ns_stage_row *s = &r->v.stages[i];
        int n = 0;
        for (int j = 0; j < r->v.n_trials; j++)
            n += !strcmp(r->v.trials[j].stage, s->name);
        char num[32];
        fputs("<tr><td>", f);
        ns_html_text(f, s->name);
        fprintf(f, "</td><td>%s</td><td class=\"n\">%d</td><td>", ns_stage_state_name(s->state), n);
        put_time(f, s->started);
        fprintf(f, "</td><td class=\"n\">%s</td><td class=\"dec\">",
                ns_num(num, s->finished - s->started));
        /* the decision as key=value (long arrays are in the views below) */
        const char *d = ns_rj_doc(s->decision);
        if (d && *d == '{') {
            const char *p = ns_json_skip_ws(d + 1);
            while (*p == '"') {
                const char *kend = ns_json_string_end(p);
                const char *v = ns_json_skip_ws(ns_json_skip_ws(kend) + 1);
                const char *vend = ns_json_value_end(v);
                if (*v != '[' && *v != '{') {
                    ns_html_text_n(f, p + 1, (size_t)(kend - p - 2));
                    fputc('=', f);
                    ns_html_text_n(f, *v == '"' ? v + 1 : v, (size_t)(vend - v - (*v == '"' ? 2 : 0)));
                    fputc(' ', f);
                }
                p = ns_json_skip_ws(vend);
                if (*p != ',')
                    break;
                p = ns_json_skip_ws(p + 1);
            }
        } else {
            fputs("-", f);
        }
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n</section>\n", f);
}

/* ---- the six mistakes ----------------------------------------------------------------- */

static const char *const mistake_title[7] = {
    "", "the model does not converge", "unstable training, loss swings",
    "good on train, bad on test", "training too slow", "fails on new data", "hard to deploy"};
static const char *const mistake_answer[7] = {
    "",
    "LR range test; imbalance detection and class-weighted loss; capacity in the search space; early stopping",
    "batch-size sweep; optimizer x schedule comparison; gradient-norm monitoring; oscillation and divergence detectors",
    "train/validation/test shift check; capacity search; generalisation-gap rule in selection",
    "data loaded once and shared by all trials; throughput recorded per trial",
    "preprocessing stored in the model file and reapplied by predict; drift check at predict time",
    "export of the winning config; train for production; the smaller model wins near-ties"};

typedef struct code_count {
    char code[32];
    int mistake;
    int n;
    const ns_trial_row **trials;   /* (n) */
    const char **findings;         /* (n) each trial's finding object */
} code_count;

static int code_cmp(const void *pa, const void *pb)
{
    const code_count *a = pa, *b = pb;
    return a->mistake != b->mistake ? a->mistake - b->mistake : strcmp(a->code, b->code);
}

static void put_finding_li(FILE *f, const char *p)
{
    fputs("<li><b>", f);
    ns_rj_put(f, p, "code", "?");
    double m;
    if (ns_rj_num(p, "mistake", &m))
        fprintf(f, "</b> (mistake %.0f): ", m);
    else
        fputs("</b>: ", f);
    ns_rj_put(f, p, "message", "");
    fputs(" <i>(fix: ", f);
    ns_rj_put(f, p, "fix", "");
    fputs(")</i></li>\n", f);
}

static void view_mistakes(ns_report *r)
{
    FILE *f = r->f;
    ns_rep_section(r, "mistakes", "The six mistakes");
    fputs("<p>Every trial's training is checked by detectors (divergence, oscillation, loss "
          "spikes, overfitting, generalisation gap, non-convergence, budget, gradients) and the "
          "data once (imbalance, shift, duplicates, non-finite and constant features). Each "
          "finding names the mistake it is and a fix. Findings marked <span class=\"rej\">rejects"
          "</span> keep a trial from being chosen while a trial without one exists.</p>\n", f);
    code_count cc[32];
    int ncc = 0, judged = 0;
    for (int i = 0; i < r->v.n_trials; i++) {
        const ns_trial_row *t = &r->v.trials[i];
        const char *h = ns_rj_doc(t->health);
        judged += h != NULL;
        for (const char *p = ns_rj_first(h); p; p = ns_rj_next(p)) {
            char code[32];
            double m = 0;
            if (!ns_rj_str(p, "code", code, sizeof code))
                continue;
            ns_rj_num(p, "mistake", &m);
            int k = 0;
            while (k < ncc && strcmp(cc[k].code, code))
                k++;
            if (k == ncc) {
                if (ncc == 32)
                    continue;
                memset(&cc[k], 0, sizeof cc[k]);
                snprintf(cc[k].code, sizeof cc[k].code, "%s", code);
                cc[k].mistake = (int)m;
                cc[k].trials = malloc((size_t)r->v.n_trials * sizeof *cc[k].trials);
                cc[k].findings = malloc((size_t)r->v.n_trials * sizeof *cc[k].findings);
                if (!cc[k].trials || !cc[k].findings) {
                    free(cc[k].trials);
                    free(cc[k].findings);
                    continue;
                }
                ncc++;
            }
            cc[k].trials[cc[k].n] = t;
            cc[k].findings[cc[k].n++] = p;
        }
    }
    qsort(cc, (size_t)ncc, sizeof *cc, code_cmp);
    const char *dc = ns_rj_doc(r->v.study.data_checks), *dfind = NULL, *b, *e;
    if (dc && ns_rj_get(dc, "findings", &b, &e))
        dfind = b;

    fputs("<table><tr><th>#</th><th>mistake</th><th>what nnsearch does</th><th>found in this "
          "study</th></tr>\n", f);
    for (int m = 1; m <= 6; m++) {
        fprintf(f, "<tr><td class=\"n\">%d</td><td>%s</td><td class=\"dim\">%s</td><td>", m,
                mistake_title[m], mistake_answer[m]);
        int any = 0;
        for (int k = 0; k < ncc; k++)
            if (cc[k].mistake == m) {
                fprintf(f, "%s<a href=\"#f-%d\">", any++ ? "; " : "", k);
                ns_html_text(f, cc[k].code);
                fprintf(f, "</a>: %d trial%s", cc[k].n, cc[k].n == 1 ? "" : "s");
            }
        for (const char *p = ns_rj_first(dfind); p; p = ns_rj_next(p)) {
            double dm = 0;
            if (ns_rj_num(p, "mistake", &dm) && (int)dm == m) {
                fputs(any++ ? "; data: " : "data: ", f);
                ns_rj_put(f, p, "code", "?");
            }
        }
        fputs(any ? "</td></tr>\n" : "<span class=\"ok\">nothing</span></td></tr>\n", f);
    }
    fputs("</table>\n", f);

    fputs("<h3>Findings per trial</h3>\n", f);
    if (!ncc)
        fprintf(f, "<p class=\"none\">No trial has a finding (%d trials judged).</p>\n", judged);
    for (int k = 0; k < ncc; k++) {
        int rejects = (ns_health_code_bit(cc[k].code) & NS_SELECT_REJECT) != 0;
        fprintf(f, "<details id=\"f-%d\"><summary><b>", k);
        ns_html_text(f, cc[k].code);
        fprintf(f, "</b> &#8212; mistake %d (%s) &#8212; %d trial%s %s</summary>\n<p>fix: ", cc[k].mistake,
                cc[k].mistake >= 1 && cc[k].mistake <= 6 ? mistake_title[cc[k].mistake] : "?",
                cc[k].n, cc[k].n == 1 ? "" : "s",
                rejects ? "<span class=\"rej\">rejects</span>" : "<span class=\"warn\">warns</span>");
        ns_rj_put(f, cc[k].findings[0], "fix", "");
        fputs("</p>\n<ul class=\"list\">\n", f);
        for (int i = 0; i < cc[k].n && i < NS_REPORT_LIST_MAX; i++) {
            fputs("<li>", f);
            put_trial_ref(f, cc[k].trials[i]);
            fputs(": ", f);
            ns_rj_put(f, cc[k].findings[i], "message", "");
            fputs("</li>\n", f);
        }
        if (cc[k].n > NS_REPORT_LIST_MAX)
            fprintf(f, "<li>... and %d more (nnsearch status DIR --json lists them all)</li>\n",
                    cc[k].n - NS_REPORT_LIST_MAX);
        fputs("</ul></details>\n", f);
        free(cc[k].trials);
        free(cc[k].findings);
    }

    fputs("<h3>Data checks</h3>\n", f);
    if (!dc) {
        ns_rep_none(r, "the data were not checked (a study made by an older nnsearch)");
    } else {
        double ntr = 0, nv = 0, nte = 0, d = 0, ratio = NAN;
        ns_rj_num(dc, "n_train", &ntr);
        ns_rj_num(dc, "n_val", &nv);
        ns_rj_num(dc, "n_test", &nte);
        ns_rj_num(dc, "d", &d);
        char num[32];
        fprintf(f, "<p>%.0f training, %.0f validation and %.0f test rows, %.0f features", ntr, nv,
                nte, d);
        if (ns_rj_get(dc, "classes", &b, &e) && *b == '{' && ns_rj_num(b, "ratio", &ratio))
            fprintf(f, "; largest / smallest class %s", ns_num(num, ratio));
        fputs(".</p>\n", f);
        if (ns_rj_get(dc, "pairs", &b, &e)) {
            fputs("<table class=\"small\"><tr><th>part vs train</th><th>rows</th><th>features "
                  "shifted</th><th>label distance (TV)</th><th>rows equal to a training row</th>"
                  "<th>largest |SMD|</th></tr>\n", f);
            for (const char *p = ns_rj_first(b); p; p = ns_rj_next(p)) {
                fputs("<tr><td>", f);
                ns_rj_put(f, p, "part", "?");
                fputs("</td><td class=\"n\">", f);
                ns_rj_put(f, p, "n", "-");
                fputs("</td><td class=\"n\">", f);
                ns_rj_put(f, p, "shifted", "-");
                fputs(" of ", f);
                ns_rj_put(f, p, "compared", "-");
                fputs("</td><td class=\"n\">", f);
                ns_rj_put(f, p, "label_tv", "-");
                fputs("</td><td class=\"n\">", f);
                ns_rj_put(f, p, "duplicates", "-");
                fputs("</td><td>", f);
                const char *wb, *we;
                if (ns_rj_get(p, "worst", &wb, &we) && ns_rj_first(wb)) {
                    const char *w0 = ns_rj_first(wb);
                    ns_rj_put(f, w0, "name", "?");
                    fputs(" ", f);
                    double smd;
                    if (ns_rj_num(w0, "smd", &smd))
                        fputs(ns_num(num, smd), f);
                }
                fputs("</td></tr>\n", f);
            }
            fputs("</table>\n", f);
        }
        if (ns_rj_first(dfind)) {
            fputs("<ul>\n", f);
            for (const char *p = ns_rj_first(dfind); p; p = ns_rj_next(p))
                put_finding_li(f, p);
            fputs("</ul>\n", f);
        } else {
            fputs("<p class=\"ok\">Checks passed: imbalance, shift, non-finite, constant features, "
                  "duplicates.</p>\n", f);
        }
    }
    fputs("</section>\n", f);
}

/* ---- all trials ----------------------------------------------------------------------- */

static void view_table(ns_report *r)
{
    FILE *f = r->f;
    ns_rep_section(r, "trials", "All trials");
    if (!r->v.n_trials) {
        ns_rep_none(r, "no trial yet");
        fputs("</section>\n", f);
        return;
    }
    fputs("<p class=\"filter\">Best first. Show <select id=\"fstate\" onchange=\"filt()\">"
          "<option value=\"\">every state</option>", f);
    for (int s = 0; s <= NS_TRIAL_INTERRUPTED; s++)
        fprintf(f, "<option value=\"%s\">%s</option>", ns_trial_state_name((ns_trial_state)s),
                ns_trial_state_name((ns_trial_state)s));
    fputs("</select> containing <input id=\"fq\" type=\"text\" size=\"24\" oninput=\"filt()\"/>"
          " <span id=\"fcount\"></span></p>\n", f);
    fputs("<table id=\"trialtab\"><thead><tr><th>trial</th><th>stage</th><th>state</th><th>", f);
    ns_html_text(f, r->v.study.metric);
    fputs("</th><th>epochs</th><th>seconds</th><th>health</th><th>params</th></tr></thead><tbody>\n", f);
    for (int i = 0; i < r->v.n_trials; i++) {
        const ns_trial_row *t = r->ranked[i];
        char num[32], hc[256];
        ns_health_flags_text(t->health_flags, hc, sizeof hc);
        fprintf(f, "<tr data-state=\"%s\"%s><td class=\"n\">%d</td><td>",
                ns_trial_state_name(t->state), t == r->best ? " class=\"win\"" : "", t->number);
        ns_html_text(f, t->stage);
        fprintf(f, "</td><td>%s</td><td class=\"n\">%s</td><td class=\"n\">%d</td>",
                ns_trial_state_name(t->state), ns_num(num, t->val_metric), t->epochs);
        fprintf(f, "<td class=\"n\">%s</td><td>%s</td><td class=\"p\">", ns_num(num, t->seconds), hc);
        const char *p = ns_rj_doc(t->params);
        if (p && *p == '{') {
            for (const char *q = ns_json_skip_ws(p + 1); *q == '"';) {
                const char *kend = ns_json_string_end(q);
                const char *v = ns_json_skip_ws(ns_json_skip_ws(kend) + 1);
                const char *vend = ns_json_value_end(v);
                ns_html_text_n(f, q + 1, (size_t)(kend - q - 2));
                fputc('=', f);
                if (*v == '"')
                    ns_html_text_n(f, v + 1, (size_t)(vend - v - 2));
                else if (*v == '-' || (*v >= '0' && *v <= '9'))
                    fputs(ns_num(num, strtod(v, NULL)), f);
                else
                    ns_html_text_n(f, v, (size_t)(vend - v));
                fputc(' ', f);
                q = ns_json_skip_ws(vend);
                if (*q != ',')
                    break;
                q = ns_json_skip_ws(q + 1);
            }
        }
        if (t->state == NS_TRIAL_FAILED && t->error) {
            fputs("<br/>error: ", f);
            ns_html_text(f, t->error);
        }
        fputs("</td></tr>\n", f);
    }
    fputs("</tbody></table>\n</section>\n", f);
}

/* ---- the document --------------------------------------------------------------------- */

static const char css[] =
    "body{font:15px/1.45 'DejaVu Sans',Arial,sans-serif;color:#1d1d1f;margin:0 auto;"
    "max-width:1200px;padding:0 24px 48px;background:#fff}\n"
    "h1{font-size:26px;margin:20px 0 4px}h2{font-size:21px;margin:34px 0 8px;padding-top:8px;"
    "border-top:2px solid #d8dde3}h3{font-size:16px;margin:18px 0 6px}\n"
    "nav{position:sticky;top:0;background:#f4f6f8;padding:6px 10px;border-bottom:1px solid #d8dde3;"
    "font-size:14px;z-index:1}nav a{margin-right:14px;color:#0b5cad;text-decoration:none}\n"
    ".meta{color:#555;font-size:14px}.big{font-size:18px}.note,.dim{color:#555;font-size:13.5px}\n"
    ".none{color:#777;font-style:italic}.ok{color:#1a7f37}.rej{color:#fff;background:#c62828;"
    "padding:0 5px;border-radius:3px;font-size:12px}.warn{color:#fff;background:#b07d00;"
    "padding:0 5px;border-radius:3px;font-size:12px}\n"
    "table{border-collapse:collapse;margin:8px 0;font-size:13.5px}td,th{border:1px solid #d8dde3;"
    "padding:3px 7px;vertical-align:top;text-align:left}th{background:#f4f6f8}td.n{text-align:right;"
    "font-variant-numeric:tabular-nums}td.p,td.dec{font-size:12.5px;word-break:break-word;max-width:560px}\n"
    "tr.win td{background:#fff6d6}table.small{font-size:13.5px}\n"
    "pre{background:#f6f8fa;border:1px solid #d8dde3;padding:10px;overflow:auto;font-size:13px;"
    "max-height:420px}\n"
    "details{margin:4px 0}summary{cursor:pointer}ul.list{max-height:300px;overflow:auto;"
    "font-size:13.5px}\n"
    "svg.chart{display:block;margin:10px 0;font-family:'DejaVu Sans',Arial,sans-serif}\n"
    ".ctitle{font-size:15px;font-weight:bold;fill:#1d1d1f}.alabel{font-size:13px;fill:#333}\n"
    ".ticks text{font-size:12px;fill:#444}.legend{font-size:12.5px;fill:#222}\n"
    ".grid line{stroke:#e6e9ed;stroke-width:1}.frame{fill:none;stroke:#9aa4ae;stroke-width:1}\n"
    ".lbl{font-size:12px;fill:#222;paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}.axisname{font-size:12.5px;font-weight:bold;fill:#222}\n"
    "#jserr{color:#c62828;font-weight:bold}.row{display:flex;flex-wrap:wrap;gap:0 12px}\n"
    ".bar{display:inline-block;height:10px;background:#0072b2;vertical-align:middle}\n";

/* Inside CDATA: the file is XML as well as HTML (xmllint checks it). */
static const char script[] =
    "window.onerror=function(m){document.documentElement.setAttribute('data-js-error',String(m));"
    "var e=document.getElementById('jserr');if(e){e.textContent='script error: '+m;}};\n"
    "function filt(){var s=document.getElementById('fstate').value,"
    "q=document.getElementById('fq').value.toLowerCase(),"
    "rows=document.querySelectorAll('#trialtab tbody tr'),n=0;"
    "for(var i=0;i<rows.length;i++){var r=rows[i],ok=(!s||r.getAttribute('data-state')===s)&&"
    "(!q||r.textContent.toLowerCase().indexOf(q)>=0);r.style.display=ok?'':'none';if(ok){n++;}}"
    "document.getElementById('fcount').textContent=n+' of '+rows.length+' trials';}\n"
    "document.addEventListener('DOMContentLoaded',function(){if(document.getElementById('fstate')){filt();}"
    "document.documentElement.setAttribute('data-js-ok','1');});\n";

static void document(ns_report *r)
{
    FILE *f = r->f;
    const ns_study_row *st = &r->v.study;
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n<title>nnsearch "
          "report: ", f);
    ns_html_text(f, st->name);
    fprintf(f, "</title>\n<style>\n%s</style>\n<script>//<![CDATA[\n%s//]]></script>\n</head>\n"
            "<body>\n<h1>nnsearch report: ", css, script);
    ns_html_text(f, st->name);
    fputs("</h1>\n<p class=\"meta\">Study folder ", f);
    ns_html_text(f, r->shown);
    fputs("; metric ", f);
    ns_html_text(f, st->metric);
    fprintf(f, " (%s is better); seed %llu; config hash ", st->higher_is_better ? "higher" : "lower",
            (unsigned long long)st->seed);
    ns_html_text(f, st->config_hash);
    fputs("; created ", f);
    put_time(f, st->created);
    fputs(" by nnsearch ", f);
    ns_html_text(f, st->version);
    fputs("; this report by nnsearch " NS_VERSION " at ", f);
    put_time(f, (double)time(NULL));
    int count[NS_TRIAL_INTERRUPTED + 1] = {0};
    for (int i = 0; i < r->v.n_trials; i++)
        if ((int)r->v.trials[i].state >= 0 && r->v.trials[i].state <= NS_TRIAL_INTERRUPTED)
            count[r->v.trials[i].state]++;
    fprintf(f, ". %d trials", r->v.n_trials);
    const char *sep = " (";
    for (int s = 0; s <= NS_TRIAL_INTERRUPTED; s++)
        if (count[s]) {
            fprintf(f, "%s%d %s", sep, count[s], ns_trial_state_name((ns_trial_state)s));
            sep = ", ";
        }
    fputs(*sep == ',' ? ").</p>\n" : ".</p>\n", f);
    fputs("<p id=\"jserr\"></p>\n<nav><a href=\"#answer\">answer</a><a href=\"#mistakes\">six "
          "mistakes</a><a href=\"#lr\">LR range</a><a href=\"#batch\">batch size</a><a "
          "href=\"#compare\">optimizer x schedule</a><a href=\"#history\">history</a><a "
          "href=\"#curves\">learning curves</a><a href=\"#params\">parameters</a><a "
          "href=\"#timeline\">timeline</a><a href=\"#stages\">stages</a><a href=\"#trials\">all "
          "trials</a></nav>\n", f);
    ns_rep_view_answer(r);
    view_mistakes(r);
    ns_rep_view_lr_range(r);
    ns_rep_view_batch_sweep(r);
    ns_rep_view_compare(r);
    ns_rep_view_history(r);
    ns_rep_view_curves(r);
    ns_rep_view_params(r);
    ns_rep_view_timeline(r);
    view_stages(r);
    view_table(r);
    fputs("<p class=\"meta\">Made by <code>nnsearch report</code> from the study database alone; "
          "the formats are in docs/study-format.md.</p>\n</body>\n</html>\n", f);
}

/* ---- reading -------------------------------------------------------------------------- */

static void report_free(ns_report *r)
{
    for (int i = 0; i < r->n_curves; i++)
        free(r->curve[i]);
    free((void *)r->ranked);
    ns_space_free(&r->space);
    ns_study_view_free(&r->v);
}

/* The study, the epochs of the trials whose curves are drawn, the config's search space. */
static int report_load(ns_report *r, const char *dir, ns_err *err)
{
    ns_store *s;
    int rc = ns_study_open_readonly(dir, &s, err);
    if (rc != NS_OK)
        return rc;
    if ((rc = ns_store_begin(s, err)) == NS_OK && (rc = ns_study_view_read(s, &r->v, err)) == NS_OK) {
        if (!(r->ranked = ns_study_view_rank(&r->v)))
            rc = ns_err_set(err, NS_ERUNTIME, "%s: out of memory", dir);
    }
    if (rc == NS_OK) {
        r->best = ns_study_view_best(&r->v, r->ranked);
        for (int i = r->v.n_stages - 1; i >= 0 && !r->decider; i--) {
            const char *k = ns_rep_stage_kind(r->v.stages[i].name);
            if (r->v.stages[i].state == NS_STAGE_COMPLETE && (!strcmp(k, "select") || !strcmp(k, "final")))
                r->decider = &r->v.stages[i];
        }
        /* learning curves: the five best trials that ran epochs, and the winner */
        for (int i = 0; i < r->v.n_trials && r->n_curves < NS_REPORT_CURVES - 1; i++) {
            const ns_trial_row *t = r->ranked[i];
            if (ns_trial_rank_class(t) < 2 && t != r->best)
                r->curve_trial[r->n_curves++] = t;
        }
        if (r->best)
            r->curve_trial[r->n_curves++] = r->best;
        for (int i = 0; i < r->n_curves && rc == NS_OK; i++)
            rc = ns_store_epochs(s, r->curve_trial[i]->number, &r->curve[i], &r->curve_len[i], err);
        r->t0 = NAN;
        for (int i = 0; i < r->v.n_trials; i++)
            if (isfinite(r->v.trials[i].started) && !(r->v.trials[i].started >= r->t0))
                r->t0 = r->v.trials[i].started;
    }
    ns_store_rollback(s);
    ns_store_close(s);
    if (rc == NS_OK && r->v.study.config) {
        /* the space tells which parameters were searched and on which scale; a config that
         * no longer parses (paths moved) only costs the parallel coordinates their scales */
        ns_config c;
        ns_err cerr;
        if (ns_config_parse(&c, "study.db:config", r->v.study.config, strlen(r->v.study.config),
                            &cerr) == NS_OK) {
            if (ns_space_copy(&r->space, &c.space) != NS_OK)
                memset(&r->space, 0, sizeof r->space);
            ns_config_free(&c);
        }
    }
    return rc;
}

int ns_report_build(const char *dir, FILE *f, ns_err *err)
{
    ns_report r;
    memset(&r, 0, sizeof r);
    size_t n = strlen(dir);
    char *d = strdup(dir);
    if (!d)
        return ns_err_set(err, NS_ERUNTIME, "%s: out of memory", dir);
    while (n > 1 && d[n - 1] == '/')
        d[--n] = '\0';
    r.dir = d;
    char *abs = realpath(d, NULL);
    r.shown = abs ? abs : d;
    r.f = f;
    int rc = report_load(&r, d, err);
    if (rc == NS_OK) {
        document(&r);
        if (ferror(f))
            rc = ns_err_set(err, NS_ERUNTIME, "%s: writing the report failed", d);
    }
    report_free(&r);
    free(abs);
    free(d);
    return rc;
}

int ns_report_write(const char *dir, const char *out_path, ns_err *err)
{
    char *def = NULL, *buf = NULL;
    size_t len = 0;
    if (!out_path) {
        size_t n = strlen(dir) + sizeof "/" NS_REPORT_FILE;
        if (!(def = malloc(n)))
            return ns_err_set(err, NS_ERUNTIME, "%s: out of memory", dir);
        snprintf(def, n, "%s/%s", dir, NS_REPORT_FILE);
        out_path = def;
    }
    /* built in memory first: a study that cannot be read leaves the old report in place */
    FILE *mem = open_memstream(&buf, &len);
    int rc = mem ? ns_report_build(dir, mem, err) : ns_err_set(err, NS_ERUNTIME, "out of memory");
    if (mem && fclose(mem) != 0 && rc == NS_OK)
        rc = ns_err_set(err, NS_ERUNTIME, "%s: out of memory", dir);
    if (rc == NS_OK) {
        ns_atomic_file a;
        char in[4][4200];
        const char *names[] = {"study.db", "study.db-wal", "study.db-shm", "config.source"}, *inp[4];
        for (int k = 0; k < 4; k++) {
            snprintf(in[k], sizeof in[k], "%s/%s", dir, names[k]);
            inp[k] = in[k];
        }
        if (ns_atomic_check_dest(out_path, err) || ns_atomic_check_not_input(out_path, inp, 4, err)) {
            rc = NS_EINPUT; /* a folder, a device, or the study itself: its own reason */
        } else if (ns_atomic_open(&a, out_path, NULL) != NS_OK) {
            rc = ns_err_set(err, NS_EINPUT, "%s: cannot write the report: %s; check that the "
                            "folder exists and is writable", out_path, strerror(errno));
        } else {
            fwrite(buf, 1, len, a.f);
            if (ns_atomic_commit(&a, NULL) != NS_OK) /* a short write shows in the stream */
                rc = ns_err_set(err, NS_EINPUT, "%s: cannot write the report: %s; check the free "
                                "space", out_path, strerror(errno));
        }
    }
    free(buf);
    free(def);
    return rc;
}
