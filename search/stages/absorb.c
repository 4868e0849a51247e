/* absorb.c — what later stages take from a completed stage's decision (freshly made, or
 * read back on resume): the range test's LRs and bounds, the batch size and its LR
 * scaling, the comparison's leader (or its short-list as searched choices), the final or
 * selected trial. Only stored decision text goes in, so a resumed study takes in the same.
 * Not the decisions themselves: stages.c and select.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "search/stages/driver_impl.h"
#include "search/study/json.h"

/* Narrows a searched train.lr to the bounds the range test found: those of the compare
 * leader's family when the optimizer is settled (rescaled to the chosen batch size), else
 * their hull over the families, so later random or bayes points spend no trials far off. */
static void narrow_lr(ns_search *s)
{
    const ns_decisions *dc = &s->dec;
    int k = ns_space_find(&s->base.space, "train.lr");
    if (k < 0)
        return;
    ns_dim *d = &s->base.space.dims[k];
    double lo = INFINITY, hi = 0;
    int settled = dc->have_pair && ns_space_find(&s->base.space, "train.optimizer") < 0;
    for (int f = 0; f < NS_N_FAMILIES; f++)
        if (dc->have_lr[f] && (!settled || f == ns_lr_family(dc->opt))) {
            double scale = dc->batch > 0 && dc->batch_ref > 0
                               ? ns_lr_scale(dc->scaling, settled ? dc->opt : f == NS_FAM_SGD ? NS_OPT_SGD : NS_OPT_ADAM,
                                          dc->batch, dc->batch_ref)
                               : 1.0;
            lo = fmin(lo, dc->lr_lo[f] * scale);
            hi = fmax(hi, dc->lr_hi[f] * scale);
        }
    if (!(hi > lo) || (d->kind != NS_DIM_LOG_UNIFORM && d->kind != NS_DIM_UNIFORM))
        return;
    d->lo = lo;
    d->hi = hi;
}

static void absorb_lr_range(ns_search *s, const char *decision)
{
    ns_decisions *d = &s->dec;
    double v;
    for (int f = 0; f < NS_N_FAMILIES; f++) {
        char key[32];
        snprintf(key, sizeof key, "%s_lr", ns_lr_family_name(f));
        if (!ns_json_get_num(decision, key, &d->lr[f]) || !(d->lr[f] > 0))
            continue;
        d->have_lr[f] = 1;
        snprintf(key, sizeof key, "%s_lo", ns_lr_family_name(f));
        ns_json_get_num(decision, key, &d->lr_lo[f]);
        snprintf(key, sizeof key, "%s_hi", ns_lr_family_name(f));
        ns_json_get_num(decision, key, &d->lr_hi[f]);
        snprintf(key, sizeof key, "%s_batch", ns_lr_family_name(f));
        if (ns_json_get_num(decision, key, &v) && v > 0)
            d->batch_ref = (int)v;
    }
    narrow_lr(s);
}

static void absorb_batch(ns_search *s, const char *decision)
{
    ns_decisions *d = &s->dec;
    char txt[64];
    double v;
    if (ns_json_get_num(decision, "batch_size", &v) && v > 0)
        d->batch = (int)v;
    if (ns_json_get_num(decision, "ref_batch", &v) && v > 0 && d->batch_ref == 0)
        d->batch_ref = (int)v;
    if (ns_json_get_str(decision, "scaling", txt, sizeof txt))
        d->scaling = !strcmp(txt, "linear") ? NS_SCALE_LINEAR
                     : !strcmp(txt, "sqrt") ? NS_SCALE_SQRT
                     : !strcmp(txt, "none") ? NS_SCALE_NONE : NS_SCALE_AUTO;
    narrow_lr(s);
}

/* "adam/cosine" into its optimizer and schedule; 0 when it names neither. */
static int parse_pair(const char *txt, int *opt, int *sched)
{
    const char *slash = strchr(txt, '/');
    *opt = *sched = -1;
    if (!slash)
        return 0;
    for (int o = NS_OPT_SGD; o <= NS_OPT_RMSPROP; o++)
        if ((size_t)(slash - txt) == strlen(ns_opt_kind_name((ns_opt_kind)o)) &&
            !strncmp(txt, ns_opt_kind_name((ns_opt_kind)o), (size_t)(slash - txt)))
            *opt = o;
    for (int k = NS_SCHED_CONSTANT; k <= NS_SCHED_PLATEAU; k++)
        if (!strcmp(slash + 1, ns_sched_kind_name((ns_sched_kind)k)))
            *sched = k;
    return *opt >= 0 && *sched >= 0;
}

/* Adds key as a searched choice among the distinct names[0..n) when there are two or more
 * and the space does not search it already. Best effort: out of memory, later stages
 * keep the leader's value. */
static void search_choice(ns_search *s, const char *key, const char *const *names, int n)
{
    const char *uniq[NS_MAX_PAIRS * NS_MAX_PAIRS];
    int m = 0;
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int k = 0; k < m; k++)
            seen |= !strcmp(uniq[k], names[i]);
        if (!seen)
            uniq[m++] = names[i];
    }
    if (m >= 2 && ns_space_find(&s->base.space, key) < 0)
        ns_space_add_choice(&s->base.space, key, ns_config_key_find(key), uniq, m);
}

static void absorb_compare(ns_search *s, const char *decision)
{
    ns_decisions *d = &s->dec;
    char txt[64];
    int opt, sched;
    if (ns_json_get_str(decision, "leader", txt, sizeof txt) && parse_pair(txt, &opt, &sched)) {
        d->opt = opt;
        d->sched = sched;
        d->have_pair = 1;
    }
    /* a leader the comparison could not tell from the others: the short-list's optimizers
     * and schedules become searched choices for the random and bayes stages after it (an
     * optimizer of another LR family only when train.lr is searched, since otherwise the
     * leader's family's LR would be used for it) */
    const char *b, *e;
    if (d->have_pair && ns_json_valid(decision) && ns_json_get(decision, "separated", &b, &e) &&
        !strncmp(b, "false", 5) && ns_json_get(decision, "shortlist", &b, &e) && *b == '[') {
        const char *opts[NS_MAX_PAIRS * NS_MAX_PAIRS], *scheds[NS_MAX_PAIRS * NS_MAX_PAIRS];
        int n = 0, lr_searched = ns_space_find(&s->base.space, "train.lr") >= 0;
        for (const char *p = ns_json_skip_ws(b + 1); *p == '"' && n < NS_MAX_PAIRS * NS_MAX_PAIRS;) {
            const char *q = ns_json_string_end(p);
            if (!q || (size_t)(q - p - 2) >= sizeof txt)
                break;
            memcpy(txt, p + 1, (size_t)(q - p - 2));
            txt[q - p - 2] = 0;
            if (parse_pair(txt, &opt, &sched) && (lr_searched || ns_lr_family(opt) == ns_lr_family(d->opt))) {
                opts[n] = ns_opt_kind_name((ns_opt_kind)opt);
                scheds[n++] = ns_sched_kind_name((ns_sched_kind)sched);
            }
            p = ns_json_skip_ws(q);
            p = *p == ',' ? ns_json_skip_ws(p + 1) : p;
        }
        search_choice(s, "train.optimizer", opts, n);
        search_choice(s, "train.schedule", scheds, n);
    }
    narrow_lr(s);
}

static void absorb_final(ns_search *s, const char *decision)
{
    double v;
    if (ns_json_get_num(decision, "trial", &v))
        s->dec.final_trial = (long)v;
}

static void absorb_select(ns_search *s, const char *decision)
{
    double v;
    if (ns_json_get_num(decision, "winner", &v))
        s->dec.final_trial = (long)v;
}

void ns_stage_absorb(ns_search *s, const ns_stage_cfg *st, const char *decision)
{
    switch (st->kind) {
    case NS_STAGE_LR_RANGE: absorb_lr_range(s, decision); break;
    case NS_STAGE_BATCH: absorb_batch(s, decision); break;
    case NS_STAGE_COMPARE: absorb_compare(s, decision); break;
    case NS_STAGE_FINAL: absorb_final(s, decision); break;
    case NS_STAGE_SELECT: absorb_select(s, decision); break;
    case NS_STAGE_RANDOM:
    case NS_STAGE_BAYES: break; /* later stages take nothing from a summary */
    }
}
