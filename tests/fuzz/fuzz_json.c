/* fuzz_json.c — libFuzzer target for the study's JSON reader (search/study/json.h): the
 * input, NUL-terminated, through ns_json_valid and, when valid, ns_json_get, _get_num,
 * _get_str and _get_nums with the keys the stages read and the input's own first key.
 * Not a check of JSON semantics beyond "no crash, answers within the text". */
#include <stdlib.h>
#include <string.h>

#include "search/study/json.h"
#include "tests/fuzz/fuzz_util.h"

static const char *const KEYS[] = {"folds", "val_loss", "val_se", "batch", "pick", "scaling",
                                   "leader", "shortlist", "separated", "trial", "winner", "lr",
                                   "best_epoch", "a", ""};

static void probe(const char *t, size_t n, const char *key)
{
    const char *b, *e;
    if (ns_json_get(t, key, &b, &e) && !(b >= t && e >= b && e <= t + n))
        abort(); /* a span outside the text */
    double v, nums[8];
    (void)ns_json_get_num(t, key, &v);
    char s[16];
    if (ns_json_get_str(t, key, s, sizeof s) && strlen(s) >= sizeof s)
        abort();
    int k = ns_json_get_nums(t, key, nums, 8);
    if (k < -1)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *t = malloc(size + 1);
    if (!t)
        return 0;
    memcpy(t, data, size);
    t[size] = 0;
    size_t n = strlen(t);
    const char *e = ns_json_value_end(ns_json_skip_ws(t));
    if (e && (e < t || e > t + n))
        abort();
    if (ns_json_valid(t)) {
        for (size_t i = 0; i < sizeof KEYS / sizeof *KEYS; i++)
            probe(t, n, KEYS[i]);
        /* The first key of an object, whatever it is (escapes kept as written). */
        const char *p = ns_json_skip_ws(t);
        if (*p == '{' && *(p = ns_json_skip_ws(p + 1)) == '"') {
            const char *q = ns_json_string_end(p);
            if (q && q - p - 2 < 256) {
                char key[256];
                memcpy(key, p + 1, (size_t)(q - p - 2));
                key[q - p - 2] = 0;
                probe(t, n, key);
            }
        }
    } else {
        double v;
        if (ns_json_get_num(t, "a", &v) || ns_json_get_nums(t, "a", &v, 1) != -1)
            abort(); /* the readers must refuse what the validator refuses */
    }
    free(t);
    return 0;
}
