/* json.h — reading the JSON text the study stores (decisions, results, params, findings):
 * RFC 8259 validation, the extent of a value, and a top-level key's value. Spans into the
 * caller's text, no allocation, no document model. Writing is engine/jsonbuf.h. */
#ifndef NS_JSON_H
#define NS_JSON_H

#include <stddef.h>

/* Nesting deeper than this is treated as invalid (stored JSON is shallow; recursion stays
 * bounded whatever a hand-edited study holds). */
#define NS_JSON_MAX_DEPTH 64

/* p past spaces, tabs and line ends. */
const char *ns_json_skip_ws(const char *p);
/* Just past the string that starts at p ('"'); NULL when it is not one. */
const char *ns_json_string_end(const char *p);
/* Just past the value that starts at p (no leading space); NULL when there is none. */
const char *ns_json_value_end(const char *p);
/* t holds exactly one JSON value (surrounding space allowed); 0 for NULL. */
int ns_json_valid(const char *t);

/* In the object at obj (valid JSON), the value of top-level key: [*b, *e), a string
 * without its quotes (escapes left as they are). 0 when obj is not an object or the key is
 * absent. */
int ns_json_get(const char *obj, const char *key, const char **b, const char **e);
/* The number of key in the JSON object text json (checked valid first); 0 when json is not
 * valid, the key is absent, or its value is not a number (null included). */
int ns_json_get_num(const char *json, const char *key, double *v);
/* The string of key (as ns_json_get, at most cap - 1 bytes, NUL-terminated); 0 when json is
 * not valid, the key is absent, its value is not a string or does not fit. */
int ns_json_get_str(const char *json, const char *key, char *out, size_t cap);

/* The numbers of key's array (e.g. "folds":[0.91,0.88,null]) into out[0..cap): null as NaN.
 * Returns how many the array holds (more than cap are counted, not stored); -1 when json
 * is not valid, the key is absent or its value is not an array of numbers and nulls. */
int ns_json_get_nums(const char *json, const char *key, double *out, int cap);

#endif
