/* json.c — the JSON reader of json.h. */
#include "search/study/json.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *ns_json_skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* Just past the JSON string that starts at p ('"'); NULL when it is not one. */
const char *ns_json_string_end(const char *p)
{
    for (p++; *p != '"'; p++) {
        if ((unsigned char)*p < 0x20) /* also the end of the text */
            return NULL;
        if (*p != '\\')
            continue;
        p++;
        if (*p == 'u') {
            for (int i = 1; i <= 4; i++)
                if (!isxdigit((unsigned char)p[i]))
                    return NULL;
            p += 4;
        } else if (*p == '\0' || !strchr("\"\\/bfnrt", *p)) {
            return NULL;
        }
    }
    return p + 1;
}

static const char *digits_end(const char *p)
{
    if (!isdigit((unsigned char)*p))
        return NULL;
    while (isdigit((unsigned char)*p))
        p++;
    return p;
}

/* Just past the number at p (RFC 8259 grammar); NULL when it is not one. */
static const char *number_end(const char *p)
{
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (!(p = digits_end(p)))
        return NULL;
    if (*p == '.' && !(p = digits_end(p + 1)))
        return NULL;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(p = digits_end(p)))
            return NULL;
    }
    return p;
}

/* Just past the JSON value at p (no leading space); NULL when there is none. */
static const char *value_end(const char *p, int depth)
{
    if (depth > NS_JSON_MAX_DEPTH)
        return NULL;
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = ns_json_skip_ws(p + 1);
        if (*p == close)
            return p + 1;
        for (;;) {
            if (close == '}') {
                if (*p != '"' || !(p = ns_json_string_end(p)))
                    return NULL;
                p = ns_json_skip_ws(p);
                if (*p++ != ':')
                    return NULL;
                p = ns_json_skip_ws(p);
            }
            if (!(p = value_end(p, depth + 1)))
                return NULL;
            p = ns_json_skip_ws(p);
            if (*p == close)
                return p + 1;
            if (*p++ != ',')
                return NULL;
            p = ns_json_skip_ws(p);
        }
    }
    if (*p == '"')
        return ns_json_string_end(p);
    static const char *const lits[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++)
        if (strncmp(p, lits[i], strlen(lits[i])) == 0)
            return p + strlen(lits[i]);
    return number_end(p);
}

/* t holds exactly one JSON value (surrounding space allowed). */
int ns_json_valid(const char *t)
{
    const char *e = t ? value_end(ns_json_skip_ws(t), 0) : NULL;
    return e && *ns_json_skip_ws(e) == '\0';
}


/* In the JSON object at obj (valid JSON), the value of key: [*vb, *ve) without a string's
 * quotes; 0 when the key is absent. */
int ns_json_get(const char *obj, const char *key, const char **vb, const char **ve)
{
    const char *p = ns_json_skip_ws(obj);
    if (*p != '{')
        return 0;
    p = ns_json_skip_ws(p + 1);
    size_t kl = strlen(key);
    while (*p == '"') {
        const char *kend = ns_json_string_end(p);
        const char *v = ns_json_skip_ws(ns_json_skip_ws(kend) + 1);
        const char *vend = value_end(v, 0);
        if ((size_t)(kend - p - 2) == kl && !strncmp(p + 1, key, kl)) {
            *vb = *v == '"' ? v + 1 : v;
            *ve = *v == '"' ? vend - 1 : vend;
            return 1;
        }
        p = ns_json_skip_ws(vend);
        if (*p != ',')
            break;
        p = ns_json_skip_ws(p + 1);
    }
    return 0;
}


const char *ns_json_value_end(const char *p) { return value_end(p, 0); }

int ns_json_get_num(const char *json, const char *key, double *v)
{
    const char *b, *e;
    if (!ns_json_valid(json) || !ns_json_get(json, key, &b, &e) || b == e ||
        !(*b == '-' || (*b >= '0' && *b <= '9')))
        return 0;
    *v = strtod(b, NULL);
    return 1;
}

int ns_json_get_str(const char *json, const char *key, char *out, size_t cap)
{
    const char *b, *e;
    if (!ns_json_valid(json) || !ns_json_get(json, key, &b, &e) || b == json || b[-1] != '"' ||
        (size_t)(e - b) >= cap)
        return 0;
    memcpy(out, b, (size_t)(e - b));
    out[e - b] = 0;
    return 1;
}

int ns_json_get_nums(const char *json, const char *key, double *out, int cap)
{
    const char *b, *e;
    if (!ns_json_valid(json) || !ns_json_get(json, key, &b, &e) || *b != '[')
        return -1;
    const char *p = ns_json_skip_ws(b + 1);
    int n = 0;
    while (*p != ']') {
        double v;
        if (!strncmp(p, "null", 4)) {
            v = NAN;
            p += 4;
        } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
            char *end;
            v = strtod(p, &end);
            p = end;
        } else {
            return -1;
        }
        if (n < cap)
            out[n] = v;
        n++;
        p = ns_json_skip_ws(p);
        if (*p == ',')
            p = ns_json_skip_ws(p + 1);
        else if (*p != ']')
            return -1;
    }
    return n;
}
