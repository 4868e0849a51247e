/* progress.c — the terminal side of a running search (progress.h): the live status line
 * and its clock thread, the plain timestamped lines, the ETA from this run's measured trial
 * times (or the budget left, for a stage that runs until its budget share ends) and the
 * stage summaries. It only prints what the driver's events say; nothing here decides. */
#include "search/cli/progress.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "search/study/json.h"

#define C_BOLD "\033[1m"
#define C_RED "\033[31m"
#define C_GREEN "\033[32m"
#define C_CYAN "\033[36m"
#define C_RESET "\033[0m"


struct ns_term {
    FILE *f;
    int live, color;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t clock;
    int clock_on, stop;
    int drawn;                 /* a live line is on the screen */
    int started;               /* a study event came: there is something to draw */
    ns_progress last;          /* the latest counts (its strings point below or are NULL) */
    char stage[64], stage_kind[32], metric[32];
    double t_event;            /* monotonic time of the last event: the times left are as of then */
    double t0;
    double sum_all, sum_stage; /* this run's finished trials (not LR tests: far shorter) */
    long n_all, n_stage;
    double last_draw;          /* live mode: when the line was last drawn */
};

/* Live mode: trial events redraw the line at most this often (the clock redraws it every
 * second): a terminal over a slow link must not hold up the workers, which report under
 * the store lock. */
#define LIVE_REDRAW_S 0.1

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ns_fmt_duration(char *buf, size_t cap, double s)
{
    if (!isfinite(s) || s < 0) {
        snprintf(buf, cap, "--");
        return;
    }
    long v = lround(s);
    if (v < 60)
        snprintf(buf, cap, "%lds", v);
    else if (v < 3600)
        snprintf(buf, cap, "%ldm%02lds", v / 60, v % 60);
    else
        snprintf(buf, cap, "%ldh%02ldm", v / 3600, (v % 3600) / 60);
}

/* ---- stage summaries ------------------------------------------------------------------ */

typedef struct sbuf {
    char *b;
    size_t cap, len;
} sbuf;

static void add(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(sbuf *s, const char *fmt, ...)
{
    if (s->len + 1 >= s->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->b + s->len, s->cap - s->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        s->len = s->len + (size_t)n < s->cap ? s->len + (size_t)n : s->cap - 1;
}

/* A JSON value [b, e) on the line without quotes, brackets or escapes (names and numbers). */
static void add_bare(sbuf *s, const char *b, const char *e)
{
    for (const char *p = b; p < e && s->len + 1 < s->cap; p++)
        if (*p != '"' && *p != '[' && *p != ']' && *p != '\\' && (unsigned char)*p >= 0x20) {
            s->b[s->len++] = *p;
            if (*p == ',' && s->len + 1 < s->cap) /* "a, b" */
                s->b[s->len++] = ' ';
        }
    s->b[s->len] = 0;
}

static int get_true(const char *d, const char *key)
{
    const char *b, *e;
    return ns_json_get(d, key, &b, &e) && *b == 't';
}

static void sum_lr_range(sbuf *s, const char *d)
{
    static const char *const fams[] = {"sgd", "adaptive"};
    int any = 0;
    for (int i = 0; i < 2; i++) {
        char key[32];
        double lr, lo, hi;
        snprintf(key, sizeof key, "%s_lr", fams[i]);
        if (!ns_json_get_num(d, key, &lr) || !isfinite(lr))
            continue;
        snprintf(key, sizeof key, "%s_lo", fams[i]);
        int have_lo = ns_json_get_num(d, key, &lo);
        snprintf(key, sizeof key, "%s_hi", fams[i]);
        int have_hi = ns_json_get_num(d, key, &hi);
        add(s, "%s%s LR %.3g", any++ ? ", " : "LR range test: ", fams[i], lr);
        if (have_lo && have_hi)
            add(s, " (bounds %.3g..%.3g)", lo, hi);
    }
    if (!any)
        add(s, "LR range test: no usable curve (the config's LRs stay)");
}

static void sum_batch(sbuf *s, const char *d)
{
    double b, ref, ns;
    char scaling[32] = "";
    if (!ns_json_get_num(d, "batch_size", &b)) {
        add(s, "no batch size chosen");
        return;
    }
    add(s, "batch size %.0f", b);
    if (ns_json_get_num(d, "ref_batch", &ref))
        add(s, " (LRs measured at %.0f", ref);
    if (ns_json_get_str(d, "scaling", scaling, sizeof scaling))
        add(s, ", LR scaling %s", scaling);
    add(s, ")");
    if (ns_json_get_num(d, "noise_scale", &ns) && isfinite(ns))
        add(s, "; gradient noise scale %.3g", ns);
}

static void sum_compare(sbuf *s, const char *d)
{
    char leader[64] = "";
    const char *b, *e;
    int sep = get_true(d, "separated");
    if (sep && ns_json_get_str(d, "leader", leader, sizeof leader)) {
        add(s, "%s leads, separated from the rest (Welch p < 0.05)", leader);
        return;
    }
    add(s, "short-list ");
    if (ns_json_get(d, "shortlist", &b, &e))
        add_bare(s, b, e);
    add(s, " (not separated at p < 0.05: searched on as choices)");
}

static void sum_search(sbuf *s, const char *d, const char *metric)
{
    double n, best, v;
    char key[64];
    snprintf(key, sizeof key, "best_%s", metric);
    if (ns_json_get_num(d, "best_trial", &best) && best >= 0 && ns_json_get_num(d, key, &v))
        add(s, "best trial %.0f, %s %.4g", best, metric, v);
    else
        add(s, "no complete trial");
    if (!ns_json_get_num(d, "trials", &n))
        return;
    add(s, "; %.0f trials", n);
    static const char *const states[] = {"complete", "pruned", "diverged", "failed", "not_run"};
    const char *sep = " (";
    for (int i = 0; i < 5; i++)
        if (ns_json_get_num(d, states[i], &v) && v > 0) {
            add(s, "%s%.0f %s", sep, v, i == 4 ? "not run" : states[i]);
            sep = ", ";
        }
    if (*sep == ',')
        add(s, ")");
}

/* The test figures and final model of a select or final decision. */
static void add_test(sbuf *s, const char *d)
{
    double v;
    char fin[16];
    if (ns_json_get_num(d, "test_acc", &v) && isfinite(v))
        add(s, ", test_acc %.4f", v);
    if (ns_json_get_num(d, "test_rmse", &v) && isfinite(v))
        add(s, ", test_rmse %.4g", v);
    if (ns_json_get_str(d, "final", fin, sizeof fin))
        add(s, "; final model: %s", !strcmp(fin, "ensemble") ? "fold ensemble" : "refit on all rows");
}

static void sum_select(sbuf *s, const char *d, const char *metric)
{
    double w, v, se, el, cons;
    char stage[64] = "", reason[160] = "";
    if (!ns_json_get_num(d, "winner", &w)) {
        ns_json_get_str(d, "reason", reason, sizeof reason);
        add(s, "no winner%s%s", reason[0] ? ": " : "", reason);
        return;
    }
    add(s, "winner trial %.0f", w);
    if (ns_json_get_str(d, "stage", stage, sizeof stage))
        add(s, " (stage %s)", stage);
    if (ns_json_get_num(d, metric, &v) && isfinite(v)) {
        add(s, ", %s %.4f", metric, v);
        if (ns_json_get_num(d, "standard_error", &se) && isfinite(se))
            add(s, " +- %.4f", se);
    }
    add_test(s, d);
    if (ns_json_get_num(d, "eligible", &el)) {
        add(s, "; %.0f eligible", el);
        if (ns_json_get_num(d, "considered", &cons))
            add(s, " of %.0f", cons);
    }
}

static void sum_final(sbuf *s, const char *d, const char *metric)
{
    double t, v;
    char state[32] = "";
    if (!ns_json_get_num(d, "trial", &t)) {
        add(s, "nothing trained");
        return;
    }
    ns_json_get_str(d, "state", state, sizeof state);
    add(s, "trained trial %.0f%s%s%s", t, state[0] ? " (" : "", state, state[0] ? ")" : "");
    if (ns_json_get_num(d, "val_metric", &v) && isfinite(v))
        add(s, ", %s %.4f", metric, v);
    add_test(s, d);
}

void ns_stage_summary(const char *kind, const char *d, const char *metric, char *buf, size_t cap)
{
    sbuf s = {buf, cap, 0};
    if (!cap)
        return;
    buf[0] = 0;
    if (!d || !ns_json_valid(d)) {
        add(&s, "no decision");
        return;
    }
    if (!metric)
        metric = "metric";
    if (!kind)
        kind = "";
    if (!strcmp(kind, "lr_range"))
        sum_lr_range(&s, d);
    else if (!strcmp(kind, "batch_sweep"))
        sum_batch(&s, d);
    else if (!strcmp(kind, "compare"))
        sum_compare(&s, d);
    else if (!strcmp(kind, "random") || !strcmp(kind, "bayes"))
        sum_search(&s, d, metric);
    else if (!strcmp(kind, "select"))
        sum_select(&s, d, metric);
    else if (!strcmp(kind, "final"))
        sum_final(&s, d, metric);
    else
        add_bare(&s, d, d + strlen(d));
    /* a long line is cut, not wrapped */
    if (s.len + 1 >= cap && cap > 4)
        memcpy(buf + cap - 4, "...", 4);
}

/* ---- the status text ------------------------------------------------------------------ */

/* The ETA as of now: the budget share left in a stage that runs until it ends, the study
 * budget left while such a stage is still to come, else the trials left times this run's
 * mean trial time (the stage's, else all) over the trials at once, capped by the budget. */
static void eta_text(const ns_term *t, double now, char *buf, size_t cap)
{
    const ns_progress *p = &t->last;
    double since = now - t->t_event;
    char d[32];
    if (p->stage_planned < 0 && isfinite(p->stage_time_left)) {
        ns_fmt_duration(d, sizeof d, fmax(0, p->stage_time_left - since));
        snprintf(buf, cap, "ETA %s (budget share)", d);
        return;
    }
    if (p->open_ended && isfinite(p->budget_left)) {
        ns_fmt_duration(d, sizeof d, fmax(0, p->budget_left - since));
        snprintf(buf, cap, "ETA %s (budget)", d);
        return;
    }
    double mean = t->n_stage ? t->sum_stage / (double)t->n_stage
                  : t->n_all ? t->sum_all / (double)t->n_all : NAN;
    long left = p->total - p->done;
    if (left <= 0) {
        snprintf(buf, cap, "ETA --");
        return;
    }
    if (!isfinite(mean)) {
        snprintf(buf, cap, "ETA --");
        return;
    }
    int par = p->parallel > 0 ? p->parallel : 1;
    double est = (double)left * mean / (double)(left < par ? left : par);
    est = fmax(1, est - since);
    if (isfinite(p->budget_left))
        est = fmin(est, fmax(0, p->budget_left - since));
    ns_fmt_duration(d, sizeof d, est);
    snprintf(buf, cap, "ETA %s", d);
}

/* The status segments: counts, ETA, best so far (with colour: in green). */
static void seg_counts(const ns_term *t, char *buf, size_t cap)
{
    const ns_progress *p = &t->last;
    if ((p->open_ended || p->total <= 0) && p->stage_planned > 0)
        snprintf(buf, cap, "%ld done (%ld/%ld of the stage), %d running", p->done, p->stage_done,
                 p->stage_planned, p->running);
    else if (p->open_ended || p->total <= 0)
        snprintf(buf, cap, "%ld done, %d running", p->done, p->running);
    else
        snprintf(buf, cap, "%ld/%ld done, %d running", p->done, p->total, p->running);
}

static void seg_best(const ns_term *t, int color, char *buf, size_t cap)
{
    const ns_progress *p = &t->last;
    if (p->best_trial >= 0 && isfinite(p->best))
        snprintf(buf, cap, "%sbest %s %.4f (trial %ld)%s", color ? C_GREEN : "", t->metric,
                 p->best, p->best_trial, color ? C_RESET : "");
    else
        snprintf(buf, cap, "best --");
}

/* "6/17 trials, 2 running | ETA 3s | best val_acc 0.9483 (trial 4)" (plain lines) */
static void counts_text(const ns_term *t, double now, char *buf, size_t cap)
{
    char c[128], eta[64], best[128];
    seg_counts(t, c, sizeof c);
    eta_text(t, now, eta, sizeof eta);
    seg_best(t, 0, best, sizeof best);
    snprintf(buf, cap, "%s | %s | %s", c, eta, best);
}

static int term_cols(const ns_term *t)
{
    struct winsize ws;
    if (ioctl(fileno(t->f), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

/* Live mode, under t->mu: the status line rewritten in place, as many of its segments as
 * fit the terminal's width (a wrapped line could not be rewritten by \r). */
static void draw(ns_term *t)
{
    if (!t->live || !t->started)
        return;
    double now = mono_s();
    char head[128], seg[4][128], col[4][160];
    if (t->stage[0])
        snprintf(head, sizeof head, "[%d/%d %s]", t->last.stage_index + 1, t->last.n_stages,
                 t->stage_kind);
    else
        snprintf(head, sizeof head, "[starting]");
    seg_counts(t, seg[0], sizeof seg[0]);
    eta_text(t, now, seg[1], sizeof seg[1]);
    seg_best(t, 0, seg[2], sizeof seg[2]);
    char el[32];
    ns_fmt_duration(el, sizeof el, now - t->t0);
    snprintf(seg[3], sizeof seg[3], "%s elapsed", el);
    for (int k = 0; k < 4; k++)
        memcpy(col[k], seg[k], sizeof seg[k]);
    seg_best(t, t->color, col[2], sizeof col[2]);
    size_t room = (size_t)term_cols(t) - 1, used = strlen(head);
    if (used > room)
        head[room] = 0, used = room;
    fprintf(t->f, "\r\033[K%s%s%s", t->color ? C_BOLD C_CYAN : "", head, t->color ? C_RESET : "");
    const ns_progress *p = &t->last;
    for (int k = 0; k < 4; k++) {
        size_t need = strlen(seg[k]) + (k ? 3 : 1);
        if (used + need > room && k == 2 && p->best_trial >= 0 && isfinite(p->best)) {
            /* the best without the metric's name (the trial lines carry it) */
            snprintf(seg[2], sizeof seg[2], "best %.4f (trial %ld)", p->best, p->best_trial);
            snprintf(col[2], sizeof col[2], "%s%s%s", t->color ? C_GREEN : "", seg[2],
                     t->color ? C_RESET : "");
            need = strlen(seg[2]) + 3;
        }
        if (used + need > room)
            continue; /* the later, shorter segments may still fit */
        fprintf(t->f, "%s%s", k ? " | " : " ", col[k]);
        used += need;
    }
    fflush(t->f);
    t->drawn = 1;
    t->last_draw = now;
}

/* A line of its own: above the live line (which is drawn again), or timestamped. */
static void put(ns_term *t, const char *color, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put(ns_term *t, const char *color, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (t->live) {
        fputs("\r\033[K", t->f);
        if (t->color && color)
            fputs(color, t->f);
        vfprintf(t->f, fmt, ap);
        if (t->color && color)
            fputs(C_RESET, t->f);
        fputc('\n', t->f);
        t->drawn = 0;
        draw(t);
    } else {
        char ts[32];
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
        fprintf(t->f, "%s ", ts);
        vfprintf(t->f, fmt, ap);
        fputc('\n', t->f);
    }
    va_end(ap);
    fflush(t->f);
}

static void *clock_main(void *arg)
{
    ns_term *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&t->cv, &t->mu, &ts);
        if (!t->stop)
            draw(t);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

ns_term *ns_term_alloc(FILE *f)
{
    ns_term *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->f = f;
    t->live = isatty(fileno(f));
    const char *nc = getenv("NO_COLOR");
    const char *term = getenv("TERM");
    t->color = t->live && !(nc && nc[0]) && !(term && !strcmp(term, "dumb"));
    t->t0 = t->t_event = mono_s();
    t->last.best_trial = -1;
    t->last.best = NAN;
    t->last_draw = -INFINITY;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    if (t->live) {
        /* the clock thread takes no signals: they go to the threads that act on them */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        t->clock_on = pthread_create(&t->clock, NULL, clock_main, t) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    return t;
}

void ns_term_end(ns_term *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (t->clock_on) {
        pthread_join(t->clock, NULL);
        t->clock_on = 0;
    }
    if (t->drawn) {
        fputs("\r\033[K", t->f);
        fflush(t->f);
        t->drawn = 0;
    }
    t->started = 0;
}

void ns_term_free(ns_term *t)
{
    if (!t)
        return;
    ns_term_end(t);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
}

/* ---- events ----------------------------------------------------------------------------- */

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static void trial_end(ns_term *t, const ns_progress *p, double now)
{
    int failed = p->state && !strcmp(p->state, "failed");
    int diverged = p->state && !strcmp(p->state, "diverged");
    if (!p->lr_test && !failed && isfinite(p->seconds)) {
        t->sum_all += p->seconds;
        t->n_all++;
        t->sum_stage += p->seconds;
        t->n_stage++;
    }
    char what[768];
    if (failed)
        snprintf(what, sizeof what, "trial %ld failed: %s", p->trial, p->error ? p->error : "?");
    else if (p->lr_test)
        snprintf(what, sizeof what, "trial %ld %s: LR range test (%.1fs)", p->trial, p->state,
                 p->seconds);
    else
        snprintf(what, sizeof what, "trial %ld %s: %s %.4f (%d epochs, %.1fs, %s)", p->trial,
                 p->state, t->metric, p->value, p->epochs, p->seconds,
                 p->health && p->health[0] ? p->health : "ok");
    if (t->live) {
        if (failed || diverged)
            put(t, C_RED, "%s", what);
        else if (now - t->last_draw >= LIVE_REDRAW_S)
            draw(t);
        return;
    }
    /* plain mode (a log): every trial's outcome, one line each */
    char counts[512];
    counts_text(t, now, counts, sizeof counts);
    put(t, NULL, "%s | %s", what, counts);
}

void ns_term_event(void *term, const ns_progress *p)
{
    ns_term *t = term;
    double now = mono_s();
    pthread_mutex_lock(&t->mu);
    t->last = *p;
    t->t_event = now;
    if (p->stage_kind) {
        if (strcmp(t->stage, p->stage ? p->stage : ""))
            t->sum_stage = 0, t->n_stage = 0;
        copy_str(t->stage, sizeof t->stage, p->stage);
        copy_str(t->stage_kind, sizeof t->stage_kind, p->stage_kind);
    }
    if (p->metric)
        copy_str(t->metric, sizeof t->metric, p->metric);
    /* the strings of the event die with the call */
    t->last.text = t->last.stage = t->last.stage_kind = t->last.metric = t->last.state = NULL;
    t->last.health = t->last.error = t->last.decision = NULL;
    switch (p->kind) {
    case NS_PROGRESS_NOTE:
        put(t, NULL, "%s", p->text ? p->text : "");
        break;
    case NS_PROGRESS_STUDY:
        t->started = 1;
        put(t, C_BOLD, "nnsearch: %s", p->text ? p->text : "");
        break;
    case NS_PROGRESS_STAGE_BEGIN: {
        char left[32];
        if (p->stage_planned == 0) {
            put(t, C_BOLD, "stage %d/%d %s: deciding", p->stage_index + 1, p->n_stages,
                t->stage_kind);
        } else if (p->stage_planned > 0) {
            put(t, C_BOLD, "stage %d/%d %s: %ld trial%s", p->stage_index + 1, p->n_stages,
                t->stage_kind, p->stage_planned, p->stage_planned == 1 ? "" : "s");
        } else {
            ns_fmt_duration(left, sizeof left, p->stage_time_left);
            put(t, C_BOLD, "stage %d/%d %s: trials until its budget share ends (%s)",
                p->stage_index + 1, p->n_stages, t->stage_kind, left);
        }
        break;
    }
    case NS_PROGRESS_TRIAL_START:
        if (now - t->last_draw >= LIVE_REDRAW_S)
            draw(t);
        break;
    case NS_PROGRESS_TRIAL_END:
        trial_end(t, p, now);
        break;
    case NS_PROGRESS_STAGE_END: {
        char sum[600];
        ns_stage_summary(t->stage_kind, p->decision, t->metric, sum, sizeof sum);
        put(t, C_BOLD, "stage %s done: %s", t->stage, sum);
        char advice[640];
        if (p->decision && ns_json_get_str(p->decision, "advice", advice, sizeof advice))
            put(t, NULL, "stage %s advice: %s", t->stage, advice);
        break;
    }
    }
    pthread_mutex_unlock(&t->mu);
}
