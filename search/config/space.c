/* space.c — search-space dimensions and the unit-cube map (see space.h for the formulas).
 * It knows no keys: values reach a config only through config.c's parser, and their JSON
 * through config.c's formatter. */
#include "search/config/space.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search/config/config.h"

const char *ns_dim_kind_name(ns_dim_kind k)
{
    switch (k) {
    case NS_DIM_UNIFORM: return "uniform";
    case NS_DIM_LOG_UNIFORM: return "log_uniform";
    case NS_DIM_INT: return "int";
    case NS_DIM_INT_LOG: return "int_log";
    case NS_DIM_CHOICE: return "choice";
    }
    return "?";
}

static void free_choices(char **c, int n)
{
    for (int i = 0; c && i < n; i++)
        free(c[i]);
    free(c);
}

int ns_space_add(ns_space *sp, ns_dim *d)
{
    ns_dim *more = realloc(sp->dims, (size_t)(sp->n + 1) * sizeof *more);
    if (!more)
        return NS_ERUNTIME;
    sp->dims = more;
    sp->dims[sp->n++] = *d;
    d->choices = NULL;
    d->n_choices = 0;
    return NS_OK;
}

int ns_space_add_choice(ns_space *sp, const char *name, int key, const char *const *choices, int n)
{
    ns_dim d;
    memset(&d, 0, sizeof d);
    snprintf(d.name, sizeof d.name, "%s", name);
    d.key = key;
    d.kind = NS_DIM_CHOICE;
    d.hi = n - 1;
    if (!(d.choices = calloc((size_t)n, sizeof *d.choices)))
        return NS_ERUNTIME;
    d.n_choices = n;
    for (int i = 0; i < n; i++)
        if (!(d.choices[i] = strdup(choices[i]))) {
            free_choices(d.choices, n);
            return NS_ERUNTIME;
        }
    if (ns_space_add(sp, &d)) {
        free_choices(d.choices, n);
        return NS_ERUNTIME;
    }
    return NS_OK;
}

void ns_space_free(ns_space *sp)
{
    if (!sp)
        return;
    for (int i = 0; i < sp->n; i++)
        free_choices(sp->dims[i].choices, sp->dims[i].n_choices);
    free(sp->dims);
    sp->dims = NULL;
    sp->n = 0;
}

int ns_space_copy(ns_space *dst, const ns_space *src)
{
    ns_space t = {0};
    if (!src->n) {
        *dst = t;
        return NS_OK;
    }
    if (!(t.dims = calloc((size_t)src->n, sizeof *t.dims)))
        goto fail;
    for (int i = 0; i < src->n; i++) {
        const ns_dim *s = &src->dims[i];
        t.dims[i] = *s;
        t.dims[i].choices = NULL;
        t.dims[i].n_choices = 0;
        t.n = i + 1;
        if (!s->n_choices)
            continue;
        if (!(t.dims[i].choices = calloc((size_t)s->n_choices, sizeof(char *))))
            goto fail;
        t.dims[i].n_choices = s->n_choices;
        for (int j = 0; j < s->n_choices; j++)
            if (!(t.dims[i].choices[j] = strdup(s->choices[j])))
                goto fail;
    }
    *dst = t;
    return NS_OK;
fail:
    ns_space_free(&t);
    memset(dst, 0, sizeof *dst);
    return NS_ERUNTIME;
}

int ns_space_find(const ns_space *sp, const char *name)
{
    for (int i = 0; i < sp->n; i++)
        if (!strcmp(sp->dims[i].name, name))
            return i;
    return -1;
}

int ns_space_sample(const ns_space *sp, ns_rng *rng, double *u, int n)
{
    if (n < sp->n)
        return -1;
    for (int i = 0; i < sp->n; i++)
        u[i] = ns_rng_uniform(rng);
    return sp->n;
}

static double clamp(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

double ns_dim_value(const ns_dim *d, double u)
{
    u = isnan(u) ? 0 : clamp(u, 0, 1);
    double x;
    switch (d->kind) {
    case NS_DIM_UNIFORM:
    case NS_DIM_LOG_UNIFORM:
        if (u == 0 || u == 1) /* the ends exactly: exp(log(lo)) need not be lo */
            return u == 0 ? d->lo : d->hi;
        x = d->kind == NS_DIM_UNIFORM ? d->lo + u * (d->hi - d->lo)
                                      : exp(log(d->lo) + u * (log(d->hi) - log(d->lo)));
        break;
    case NS_DIM_INT: x = round(d->lo - 0.5 + u * (d->hi - d->lo + 1)); break;
    case NS_DIM_INT_LOG: {
        double a = log(d->lo - 0.5), b = log(d->hi + 0.5);
        x = round(exp(a + u * (b - a)));
        break;
    }
    case NS_DIM_CHOICE: x = floor(u * d->n_choices); return clamp(x, 0, d->n_choices - 1);
    default: x = d->lo;
    }
    return clamp(x, d->lo, d->hi);
}

double ns_dim_unit(const ns_dim *d, double v)
{
    double u;
    switch (d->kind) {
    case NS_DIM_UNIFORM: u = (v - d->lo) / (d->hi - d->lo); break;
    case NS_DIM_LOG_UNIFORM: u = (log(v) - log(d->lo)) / (log(d->hi) - log(d->lo)); break;
    case NS_DIM_INT: u = (round(v) - d->lo + 0.5) / (d->hi - d->lo + 1); break;
    case NS_DIM_INT_LOG: {
        /* the middle of k's share on the log scale: log(k) lies strictly inside it */
        double a = log(d->lo - 0.5), b = log(d->hi + 0.5), k = clamp(round(v), d->lo, d->hi);
        u = (0.5 * (log(k - 0.5) + log(k + 0.5)) - a) / (b - a);
        break;
    }
    case NS_DIM_CHOICE: u = (round(v) + 0.5) / d->n_choices; break;
    default: u = 0;
    }
    return isnan(u) ? 0 : clamp(u, 0, 1);
}

const char *ns_dim_text(const ns_dim *d, double u, char buf[64])
{
    double x = ns_dim_value(d, u);
    switch (d->kind) {
    case NS_DIM_CHOICE: return d->choices[(int)x];
    case NS_DIM_INT:
    case NS_DIM_INT_LOG: snprintf(buf, 64, "%.0f", x); return buf;
    default: snprintf(buf, 64, "%.17g", x); return buf;
    }
}

char *ns_space_params_json(const ns_space *sp, const struct ns_config *fixed)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    fputc('{', f);
    for (int i = 0; i < sp->n; i++) {
        /* names are section.key: letters, digits and '_' only, no escaping needed */
        fprintf(f, "%s\"%s\":", i ? "," : "", sp->dims[i].name);
        ns_config_write_value(f, fixed, sp->dims[i].key, 1);
    }
    fputc('}', f);
    int bad = ferror(f);
    if (fclose(f) || bad) {
        free(buf);
        return NULL;
    }
    return buf;
}
