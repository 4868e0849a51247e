/* config_impl.h — internal to search/config*.c, not a public header (users include config.h):
 * the key table's types, the parse state and the helpers that config.c (table, parsing,
 * rules), config_search.c (spaces, search section) and config_export.c (writing) share. */
#ifndef NS_CONFIG_IMPL_H
#define NS_CONFIG_IMPL_H

#include "search/config/config.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <yaml.h>

/* ---- the table of keys -------------------------------------------------------------- */

typedef enum key_type {
    KT_BOOL,    /* int 0/1 */
    KT_INT,     /* int */
    KT_LONG,    /* long */
    KT_U64,     /* uint64_t */
    KT_DOUBLE,  /* double */
    KT_FLOAT,   /* float */
    KT_PATH,    /* char *, resolved against the config's folder, must be readable */
    KT_NAME,    /* char * */
    KT_ENUM,    /* int, from names */
    KT_INTS,    /* int[max_items] at off with the count at count_off; one int or a list */
    KT_WEIGHTS, /* int mode from names at off, or a list of numbers: float * at list_off,
                   count at count_off, mode NS_CW_LIST */
    KT_STAGES,  /* search.stages: a list of mappings into ns_search_cfg at off */
    KT_ENUMS,   /* int[max_items] at off with the count at count_off; one name from names or
                   a list of them (stage options) */
    KT_RESAMPLING, /* search.resampling: auto, holdout, cv or {cv: K, repeats: R} into
                   ns_search_cfg at off */
    KT_DURATION, /* double seconds: a number, or a number with s, m or h ("90s", "5m") */
    KT_FLOATS,  /* float[max_items] at off with the count at count_off; a list of numbers */
} key_type;

enum {
    MIN_OPEN = 1, /* the lower bound is exclusive */
    MAX_OPEN = 2, /* the upper bound is exclusive */
    REQUIRED = 4,
    SEARCH = 8,   /* the key may be a search space (docs/config.md, "Searching") */
    AUTO_ZERO = 16, /* KT_INT: the word auto is accepted too, stored as 0 */
};

typedef struct enum_name {
    const char *name;
    int value;
} enum_name;

typedef struct key_def {
    const char *section;
    const char *key;
    key_type type;
    size_t off;             /* offsetof(ns_config, field) */
    double min, max;        /* numbers and list items; +-INFINITY when unbounded */
    unsigned flags;
    const char *def;        /* default as config text; NULL: none, or set from other keys */
    const enum_name *names; /* KT_ENUM, KT_WEIGHTS: NULL-terminated */
    size_t count_off;       /* KT_INTS, KT_WEIGHTS, KT_FLOATS */
    size_t list_off;        /* KT_WEIGHTS */
    int max_items;          /* KT_INTS, KT_FLOATS: capacity; KT_WEIGHTS: largest list */
} key_def;

#define INF INFINITY

/* The table of keys and its sections (config.c, which checks these counts). */
#define N_KEYS 94
#define N_SECTIONS 5
extern const key_def cfg_keys[];
extern const char *const cfg_sections[];

/* ---- parse state and messages -------------------------------------------------------- */

typedef struct ctx {
    const char *name; /* the config's name in messages */
    ns_config *c;
    ns_err *err;
    yaml_document_t *doc;
    int trial;        /* setting a trial's values (ns_config_instantiate), not reading a file */
    unsigned char given[N_KEYS];
    unsigned char searched[N_KEYS];
    yaml_mark_t kmark[N_KEYS], vmark[N_KEYS];
    unsigned char sec_given[N_SECTIONS];
    yaml_mark_t sec_mark[N_SECTIONS];
    const char *label; /* names the key in messages instead of "section.key" (stage keys) */
    char kbuf[64];
} ctx;

/* ---- shared by the config's files (defined in config.c) ---------------------------- */

__attribute__((format(printf, 3, 4))) int cfg_fail(ctx *x, yaml_mark_t m, const char *fmt, ...);
const char *cfg_kname(ctx *x, const key_def *k);
int cfg_oom(ctx *x);
int cfg_is_null(const yaml_node_t *n);

/* ---- values and suggestions (defined in config_value.c) ---------------------------- */

int cfg_closeness(const char *word, const char *cand);
/* The key of section nearest to word (synonyms included), or NULL. */
const char *cfg_suggest_key(const char *section, const char *word);
/* section's keys, comma-separated, into buf. */
void cfg_list_keys(char *buf, size_t n, const char *section);
const char *cfg_expected(const key_def *k);
int cfg_decimal_chars(const char *s);
int cfg_to_number(const key_def *k, const char *s, double *out, uint64_t *u64, char *why, size_t n);
int cfg_to_bool(const char *s, int *b);
/* Sets scalar key k of the struct at base (a config, or a stage for stage keys) from
 * text s; m locates s for messages. */
int cfg_set_scalar(ctx *x, void *base, const key_def *k, const char *s, yaml_mark_t m);
int cfg_set_value(ctx *x, void *base, const key_def *k, yaml_node_t *v);

/* ---- defined in config.c ------------------------------------------------------------ */

/* Refuses text nested deeper than NS_CONFIG_MAX_DEPTH or with more than NS_CONFIG_MAX_NODES
 * nodes, located; NS_OK also on a syntax error (the document load reports it). */
int cfg_bound_cost(ctx *x, const char *text, size_t len);
int cfg_key_index(const char *section, const char *key);
void cfg_dependent_defaults(ctx *x);

/* ---- defined in config_rules.c ------------------------------------------------------ */

/* The rules between values a search may set; checked for the file and for every trial. */
int cfg_check_values(ctx *x);
/* Every rule of a file (cfg_check_values, and those of fixed keys), then search:'s. */
int cfg_check_rules(ctx *x);
/* Resolves the data files against the config's folder; each must be a readable file. */
int cfg_check_files(ctx *x);

/* ---- defined in config_search.c, called by config.c's walk and rules --------------- */

int cfg_parse_space(ctx *x, int i, yaml_node_t *m);
int cfg_parse_stages(ctx *x, const key_def *k, yaml_node_t *v);
/* search.resampling (a name or a mapping) into the ns_search_cfg at k->off. */
int cfg_parse_resampling(ctx *x, const key_def *k, yaml_node_t *v);
int cfg_check_search(ctx *x);

/* ---- small accessors ---------------------------------------------------------------- */

static inline void *field(void *base, size_t off) { return (char *)base + off; }

static inline const char *node_kind(const yaml_node_t *n)
{
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    return "a value";
}

static inline const char *scalar(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

static inline yaml_mark_t vmark(ctx *x, const char *section, const char *key)
{
    return x->vmark[cfg_key_index(section, key)];
}

static inline int given(ctx *x, const char *section, const char *key)
{
    return x->given[cfg_key_index(section, key)];
}

#endif
