/* jsonbuf.c — the JSON text writer of jsonbuf.h. */
#include "engine/jsonbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void ns_jbuf_put(ns_jbuf *j, const char *s, size_t n)
{
    if (j->len + n < j->cap)
        memcpy(j->buf + j->len, s, n);
    j->len += n;
}

void ns_jbuf_putf(ns_jbuf *j, const char *fmt, ...)
{
    char tmp[256];
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof tmp) { /* rare (long names): format again straight into place */
        if (j->len + (size_t)n < j->cap)
            vsnprintf(j->buf + j->len, j->cap - j->len, fmt, again);
        j->len += (size_t)n;
    } else if (n > 0) {
        ns_jbuf_put(j, tmp, (size_t)n);
    }
    va_end(again);
}

/* The length of the well-formed UTF-8 sequence at p (at most n bytes), or 0: overlong
 * forms, surrogates and code points above U+10FFFF are not well formed. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    size_t len = *p >= 0xF0 && *p <= 0xF4 ? 4 : *p >= 0xE0 ? 3 : *p >= 0xC2 && *p <= 0xDF ? 2 : 0;
    if (*p >= 0xF5 || !len || len > n)
        return 0;
    for (size_t k = 1; k < len; k++)
        if ((p[k] & 0xC0) != 0x80)
            return 0;
    if ((*p == 0xE0 && p[1] < 0xA0) || (*p == 0xED && p[1] > 0x9F) || (*p == 0xF0 && p[1] < 0x90) ||
        (*p == 0xF4 && p[1] > 0x8F))
        return 0;
    return len;
}

void ns_jbuf_str(ns_jbuf *j, const char *s, size_t max)
{
    ns_jbuf_put(j, "\"", 1);
    for (size_t i = 0; i < max && s[i]; i++) {
        const unsigned char *p = (const unsigned char *)s + i;
        switch (*p) {
        case '"': ns_jbuf_put(j, "\\\"", 2); break;
        case '\\': ns_jbuf_put(j, "\\\\", 2); break;
        case '\n': ns_jbuf_put(j, "\\n", 2); break;
        case '\r': ns_jbuf_put(j, "\\r", 2); break;
        case '\t': ns_jbuf_put(j, "\\t", 2); break;
        case '\b': ns_jbuf_put(j, "\\b", 2); break;
        case '\f': ns_jbuf_put(j, "\\f", 2); break;
        default:
            if (*p < 0x20) {
                ns_jbuf_putf(j, "\\u%04x", *p);
            } else if (*p < 0x80) {
                ns_jbuf_put(j, (const char *)p, 1);
            } else { /* JSON is UTF-8: a byte that is not (a Latin-1 header) becomes U+FFFD */
                size_t len = utf8_seq(p, strnlen((const char *)p, max - i));
                if (len) {
                    ns_jbuf_put(j, (const char *)p, len);
                    i += len - 1;
                } else {
                    ns_jbuf_put(j, "\\ufffd", 6);
                }
            }
        }
    }
    ns_jbuf_put(j, "\"", 1);
}

void ns_jbuf_num(ns_jbuf *j, double x)
{
    if (isfinite(x))
        ns_jbuf_putf(j, "%.6g", x);
    else
        ns_jbuf_put(j, "null", 4);
}

size_t ns_jbuf_finish(ns_jbuf *j)
{
    if (j->cap > 0)
        j->buf[j->len < j->cap ? j->len : 0] = '\0';
    return j->len;
}
