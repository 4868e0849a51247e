/* config_export.c — writing a config's values back: one value as YAML or JSON
 * (ns_config_write_value) and a whole trial's config as YAML (ns_config_export_yaml).
 * Not a reader: parsing and checks are in config.c and config_search.c. */
#include "search/config/config_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- writing values back: export and JSON ------------------------------------------------ */

/* The shortest decimal that reads back to the same double (or float) bit for bit. */
static void put_real(FILE *f, double v, int is_float)
{
    char b[40];
    for (int p = is_float ? 6 : 15; p <= 17; p++) {
        snprintf(b, sizeof b, "%.*g", p, v);
        double r = strtod(b, NULL);
        if (is_float ? (float)r == (float)v : r == v)
            break;
    }
    fputs(b, f);
}

/* A double-quoted string; the escapes used are common to JSON and YAML. */
static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void put_name(FILE *f, const enum_name *names, int v, int json)
{
    const char *n = "?";
    for (const enum_name *e = names; e->name; e++)
        if (e->value == v)
            n = e->name;
    fprintf(f, json ? "\"%s\"" : "%s", n);
}

void ns_config_write_value(FILE *f, const ns_config *c, int key, int json)
{
    if (key < 0 || key >= (int)N_KEYS) {
        fputs(json ? "null" : "~", f);
        return;
    }
    const key_def *k = &cfg_keys[key];
    const void *v = field((void *)c, k->off);
    const char *sep = json ? "," : ", ";
    switch (k->type) {
    case KT_BOOL: fputs(*(const int *)v ? "true" : "false", f); break;
    case KT_INT: fprintf(f, "%d", *(const int *)v); break;
    case KT_LONG: fprintf(f, "%ld", *(const long *)v); break;
    case KT_U64: fprintf(f, "%llu", (unsigned long long)*(const uint64_t *)v); break;
    case KT_DOUBLE:
    case KT_DURATION: put_real(f, *(const double *)v, 0); break;
    case KT_FLOAT: put_real(f, *(const float *)v, 1); break;
    case KT_PATH:
    case KT_NAME:
        if (*(char *const *)v)
            put_string(f, *(char *const *)v);
        else
            fputs(json ? "null" : "~", f);
        break;
    case KT_ENUM: put_name(f, k->names, *(const int *)v, json); break;
    case KT_INTS: {
        int n = *(const int *)field((void *)c, k->count_off);
        fputc('[', f);
        for (int i = 0; i < n; i++)
            fprintf(f, "%s%d", i ? sep : "", ((const int *)v)[i]);
        fputc(']', f);
        break;
    }
    case KT_FLOATS: {
        int n = *(const int *)field((void *)c, k->count_off);
        fputc('[', f);
        for (int i = 0; i < n; i++) {
            fputs(i ? sep : "", f);
            put_real(f, ((const float *)v)[i], 1);
        }
        fputc(']', f);
        break;
    }
    case KT_WEIGHTS: {
        int mode = *(const int *)v;
        if (mode != NS_CW_LIST) {
            put_name(f, k->names, mode, json);
            break;
        }
        const float *w = *(float *const *)field((void *)c, k->list_off);
        int n = *(const int *)field((void *)c, k->count_off);
        fputc('[', f);
        for (int i = 0; i < n; i++) {
            fputs(i ? sep : "", f);
            put_real(f, w[i], 1);
        }
        fputc(']', f);
        break;
    }
    case KT_STAGES: /* the search: section and stage options are not training keys */
    case KT_RESAMPLING:
    case KT_ENUMS: fputs(json ? "null" : "~", f); break;
    }
}

/* An absolute form of path: realpath when it resolves, else the current folder + path. */
static char *absolute(const char *path)
{
    if (path[0] == '/')
        return strdup(path);
    char *r = realpath(path, NULL);
    if (r)
        return r;
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        return strdup(path);
    size_t n = strlen(cwd) + strlen(path) + 2;
    if ((r = malloc(n)))
        snprintf(r, n, "%s/%s", cwd, path);
    return r;
}

/* Whether export writes key k of c: the budget in use, the given files, and hidden as a
 * list or as depth x width (whichever the config used). */
static int exported(const ns_config *c, const key_def *k)
{
    if (!strcmp(k->section, "search"))
        return 0;
    if (k->type == KT_PATH)
        return *(char *const *)field((void *)c, k->off) != NULL;
    if (!strcmp(k->section, "train")) {
        if (!strcmp(k->key, "epochs"))
            return c->train.budget == NS_BUDGET_EPOCHS;
        if (!strcmp(k->key, "steps"))
            return c->train.budget == NS_BUDGET_STEPS;
        if (!strcmp(k->key, "seconds"))
            return c->train.budget == NS_BUDGET_SECONDS;
    }
    if (!strcmp(k->section, "model")) {
        if (!strcmp(k->key, "ensemble") || !strcmp(k->key, "ensemble_seed"))
            return c->ensemble > 0;
        if (!strcmp(k->key, "decision_offsets"))
            return c->n_decision_offsets > 0;
        if (!strcmp(k->key, "hidden"))
            return c->width <= 0;
        if (!strcmp(k->key, "depth") || !strcmp(k->key, "width"))
            return c->width > 0;
    }
    return 1;
}

int ns_config_export_yaml(const ns_config *c, FILE *f, const char *header_comment, ns_err *err)
{
    const char *name = c->path ? c->path : "<config>";
    if (c->space.n)
        return ns_err_set(err, NS_EINPUT, "%s: %s is still a search space; export a trial's config (ns_config_instantiate) instead",
                          name, c->space.dims[0].name);
    for (const char *p = header_comment; p && *p;) {
        const char *nl = strchr(p, '\n');
        int n = nl ? (int)(nl - p) : (int)strlen(p);
        fprintf(f, "#%s%.*s\n", n ? " " : "", n, p);
        p += n + (nl != NULL);
    }
    for (size_t s = 0; s < N_SECTIONS; s++) {
        if (!strcmp(cfg_sections[s], "search"))
            continue;
        fprintf(f, "%s%s:\n", s || header_comment ? "\n" : "", cfg_sections[s]);
        for (size_t i = 0; i < N_KEYS; i++) {
            const key_def *k = &cfg_keys[i];
            if (strcmp(k->section, cfg_sections[s]) || !exported(c, k))
                continue;
            fprintf(f, "  %s: ", k->key);
            if (k->type == KT_PATH) {
                char *a = absolute(*(char *const *)field((void *)c, k->off));
                if (!a)
                    return ns_err_set(err, NS_ERUNTIME, "%s: out of memory exporting the config", name);
                put_string(f, a);
                free(a);
            } else {
                ns_config_write_value(f, c, (int)i, 0);
            }
            fputc('\n', f);
        }
    }
    if (fflush(f) || ferror(f))
        return ns_err_set(err, NS_ERUNTIME, "%s: cannot write the exported config: %s", name,
                          strerror(errno));
    return NS_OK;
}
