/* jsonbuf.h — a small writer of JSON text into a caller's buffer with snprintf's contract:
 * it always counts the whole length and writes only what fits, so a caller can ask for the
 * size first (buf NULL, cap 0) and write second. Not a parser and not a document model. */
#ifndef NS_JSONBUF_H
#define NS_JSONBUF_H

#include <stddef.h>

typedef struct ns_jbuf {
    char *buf;      /* may be NULL when cap is 0 */
    size_t cap, len; /* len counts everything put, written or not */
} ns_jbuf;

/* Appends n bytes of s (written while they fit, counted always). */
void ns_jbuf_put(ns_jbuf *j, const char *s, size_t n);
/* Appends printf-formatted text. */
void ns_jbuf_putf(ns_jbuf *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s (read up to its NUL or max bytes; SIZE_MAX: to its NUL) as a JSON string: quote, backslash and control
 * characters escaped, other bytes as they are. */
void ns_jbuf_str(ns_jbuf *j, const char *s, size_t max);
/* Appends x with %.6g, or null when it is not finite (JSON has no NaN or inf). */
void ns_jbuf_num(ns_jbuf *j, double x);
/* NUL-terminates: after the text when it fit, else an empty string (cap > 0). Returns len. */
size_t ns_jbuf_finish(ns_jbuf *j);

#endif
