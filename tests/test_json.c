/* test_json.c — the reader of stored JSON (search/study/json.h): validity, a top-level key's
 * value and nothing deeper, numbers and strings, and refusals. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "engine/jsonbuf.h"
#include "search/study/json.h"

Test(json, validity)
{
    cr_assert(ns_json_valid(" {\"a\": [1, 2.5e-3, -0], \"b\": {\"c\": null}, \"d\": \"x\\\"y\"} "));
    cr_assert(ns_json_valid("[]"));
    cr_assert(!ns_json_valid(NULL));
    cr_assert(!ns_json_valid("{\"a\": 01}"), "leading zero");
    cr_assert(!ns_json_valid("{\"a\": 1,}"), "trailing comma");
    cr_assert(!ns_json_valid("{\"a\": 1} x"), "text after the value");
    cr_assert(!ns_json_valid("{\"a\": nan}"));
    char deep[200] = "";
    for (int i = 0; i < 70; i++)
        strcat(deep, "[");
    for (int i = 0; i < 70; i++)
        strcat(deep, "]");
    cr_assert(!ns_json_valid(deep), "nesting beyond NS_JSON_MAX_DEPTH");
}

Test(json, top_level_keys_only)
{
    /* a select decision: "trial" exists only inside "others" */
    const char *d = "{\"winner\":16,\"others\":[{\"trial\":17,\"why\":\"a \\\"b\\\"\"}],\"x\":null}";
    double v = 0;
    cr_assert(ns_json_get_num(d, "winner", &v));
    cr_assert_eq(v, 16);
    cr_assert(!ns_json_get_num(d, "trial", &v), "a nested key is not the object's");
    cr_assert(!ns_json_get_num(d, "x", &v), "null is no number");
    cr_assert(!ns_json_get_num(d, "others", &v));
    cr_assert(!ns_json_get_num("{\"winner\":16", "winner", &v), "invalid text");
    const char *b, *e;
    cr_assert(ns_json_get(d, "others", &b, &e));
    cr_assert_eq(*b, '[');
    cr_assert_eq(e[-1], ']');
}

Test(json, strings)
{
    const char *d = "{\"leader\":\"adam/cosine\",\"n\":3}";
    char out[16];
    cr_assert(ns_json_get_str(d, "leader", out, sizeof out));
    cr_assert_str_eq(out, "adam/cosine");
    cr_assert(!ns_json_get_str(d, "leader", out, 5), "does not fit");
    cr_assert(!ns_json_get_str(d, "n", out, sizeof out), "a number is no string");
    cr_assert(!ns_json_get_str("[1]", "n", out, sizeof out), "not an object");
}

/* The writer's side (engine/jsonbuf.h): sizing first, then writing, with a formatted piece
 * longer than its internal buffer; a buffer too small keeps the count and writes "". */
Test(json, writer_sizes_then_writes)
{
    char name[301];
    memset(name, 'n', 300);
    name[300] = 0;
    ns_jbuf j = {NULL, 0, 0};
    ns_jbuf_putf(&j, "{\"name\":\"%s\",\"k\":%d}", name, 7);
    size_t need = j.len;
    cr_assert_eq(need, strlen("{\"name\":\"\",\"k\":7}") + 300);
    char buf[400];
    j = (ns_jbuf){buf, sizeof buf, 0};
    ns_jbuf_putf(&j, "{\"name\":\"%s\",\"k\":%d}", name, 7);
    cr_assert_eq(ns_jbuf_finish(&j), need);
    cr_assert(ns_json_valid(buf), "%s", buf);
    double v;
    cr_assert(ns_json_get_num(buf, "k", &v) && v == 7);
    char small[100];
    j = (ns_jbuf){small, sizeof small, 0};
    ns_jbuf_putf(&j, "{\"name\":\"%s\"}", name);
    cr_assert_eq(ns_jbuf_finish(&j), need - 6);
    cr_assert_str_eq(small, "");
}

Test(json, number_arrays)
{
    double v[4];
    const char *t = "{\"folds\":[0.5, -1e-3,null ,2],\"n\":[],\"s\":[\"a\"]}";
    cr_assert_eq(ns_json_get_nums(t, "folds", v, 4), 4);
    cr_assert(v[0] == 0.5 && v[1] == -1e-3 && isnan(v[2]) && v[3] == 2);
    cr_assert_eq(ns_json_get_nums(t, "folds", v, 2), 4, "counted past cap");
    cr_assert_eq(ns_json_get_nums(t, "n", v, 4), 0);
    cr_assert_eq(ns_json_get_nums(t, "s", v, 4), -1, "strings are not numbers");
    cr_assert_eq(ns_json_get_nums(t, "missing", v, 4), -1);
    cr_assert_eq(ns_json_get_nums("{\"folds\":[1,", "folds", v, 4), -1, "invalid JSON");
}

Test(json, writer_strings_are_utf8)
{
    /* a Latin-1 header byte, a cut-off sequence, an overlong '/', a surrogate, then valid
     * two-, three- and four-byte characters: JSON text is UTF-8, so each byte of the first
     * four that starts no well-formed character becomes U+FFFD, and the rest are copied */
    const char *in = "a\xff" "b\xc3" "\xc0\xaf" "\xed\xa0\x80" "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    char buf[128];
    ns_jbuf j = {buf, sizeof buf, 0};
    ns_jbuf_str(&j, in, 64);
    ns_jbuf_finish(&j);
    cr_assert_str_eq(buf, "\"a\\ufffdb\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    /* a character cut by max is not copied in part */
    j = (ns_jbuf){buf, sizeof buf, 0};
    ns_jbuf_str(&j, "x\xe2\x82\xac", 3);
    ns_jbuf_finish(&j);
    cr_assert_str_eq(buf, "\"x\\ufffd\\ufffd\"");
}
