/* test_report.c — the HTML report's pieces without a browser: escaping, axes and ticks
 * (linear, log, whole numbers, categories), the colour ramp; and the report of a study built
 * by hand with the store API: every section present, text from the study escaped (a study
 * name with markup, a finding that is not JSON), the default path and the errors. The
 * rendering itself is checked end to end by tests/e2e_report.sh (xmllint, chromium). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "search/report/report.h"
#include "search/report/svg.h"
#include "search/study/store.h"
#include "tests/testutil.h"

static char *capture(void (*fn)(FILE *, const char *), const char *arg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert(f);
    fn(f, arg);
    fclose(f);
    return buf;
}

Test(svg, escapes_markup_and_control_characters)
{
    char *s = capture(ns_html_text, "<a href=\"x\">&'\x01</a>");
    cr_assert_str_eq(s, "&lt;a href=&quot;x&quot;&gt;&amp;&#39;?&lt;/a&gt;");
    free(s);
    s = capture(ns_html_text, NULL);
    cr_assert_str_eq(s, "");
    free(s);
}

Test(svg, linear_ticks_are_round_and_inside)
{
    ns_axis a;
    ns_axis_fit(&a, 0, 1, 0, 0, 0, 100);
    double t[64];
    int n = ns_axis_ticks(&a, t, 64);
    cr_assert_eq(n, 6, "ticks of [0, 1]: %d", n);
    for (int i = 0; i < n; i++)
        cr_assert_float_eq(t[i], 0.2 * i, 1e-12);
    cr_assert_float_eq(ns_axis_px(&a, 0.5), 50, 1e-9);
    /* whole numbers: epochs 1..3 get 1, 2, 3 and no 1.5 */
    ns_axis_fit(&a, 1, 3, 0, 0.02, 0, 100);
    a.whole = 1;
    n = ns_axis_ticks(&a, t, 64);
    cr_assert_eq(n, 3);
    for (int i = 0; i < n; i++)
        cr_assert_eq(t[i], i + 1);
}

Test(svg, log_ticks_are_powers_of_ten)
{
    ns_axis a;
    ns_axis_fit(&a, 1e-7, 10, 1, 0, 0, 800);
    cr_assert(a.log);
    double t[64];
    int n = ns_axis_ticks(&a, t, 64);
    cr_assert_eq(n, 9);
    for (int i = 0; i < n; i++)
        cr_assert_float_eq(t[i], pow(10, i - 7), 1e-20 + 1e-12 * pow(10, i - 7));
    cr_assert_float_eq(ns_axis_px(&a, 1e-3), 400, 1e-6);
    /* under 3 decades: 1, 2, 5 in each */
    ns_axis_fit(&a, 0.01, 1, 1, 0, 0, 100);
    n = ns_axis_ticks(&a, t, 64);
    cr_assert_eq(n, 7, "%d", n);
    cr_assert_float_eq(t[1], 0.02, 1e-15);
    /* a non-positive end: linear instead of log */
    ns_axis_fit(&a, 0, 1, 1, 0, 0, 100);
    cr_assert_eq(a.log, 0);
}

Test(svg, category_axis_and_colours)
{
    ns_axis a = ns_axis_category(4, 0, 400);
    cr_assert_float_eq(ns_axis_px(&a, 0), 50, 1e-9);
    cr_assert_float_eq(ns_axis_px(&a, 3), 350, 1e-9);
    char c[8];
    ns_ramp(0, c);
    cr_assert_str_eq(c, "#440154");
    ns_ramp(1, c);
    cr_assert_str_eq(c, "#fde725");
    ns_ramp(NAN, c);
    cr_assert_str_eq(c, "#440154");
    cr_assert_str_eq(ns_color(0), ns_color(10));
}

/* ---- the report of a hand-built study ------------------------------------------------- */

#define HOSTILE "<script>alert(1)</script>&"

static char *build_study(void)
{
    char *root = tu_temp_dir();
    cr_assert(root);
    size_t n = strlen(root) + 16;
    char *dir = malloc(n);
    snprintf(dir, n, "%s/study", root);
    free(root);
    ns_err err = {0};
    ns_store *s = NULL;
    cr_assert_eq(ns_store_open(&s, dir, 1, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_study_init(s, HOSTILE, "not: [a config", "abc", 1, "val_acc", 1, 0, &err),
                 NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_stage_set(s, "1:random", 0, NS_STAGE_COMPLETE,
                                    "{\"trials\":3,\"best_trial\":1}", &err), NS_OK, "%s", err.msg);
    const char *health[3] = {"[]",
                             "[{\"code\":\"overfitting\",\"mistake\":3,\"message\":\"" HOSTILE
                             "\",\"fix\":\"early stopping\"}]",
                             "not json"};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(ns_store_trial_insert(s, i, "1:random", "{\"train.lr\":0.01}", 7, &err), NS_OK);
        cr_assert_eq(ns_store_trial_start(s, i, &err), NS_OK);
        ns_trial_result r = {.seconds = 1, .epochs = 2, .val_metric = 0.5 + 0.1 * i,
                             .result = "{\"val_loss\":0.5,\"val_acc\":0.6}", .health = health[i],
                             .health_flags = i == 1 ? 8 : 0,
                             .error = NULL};
        cr_assert_eq(ns_store_trial_finish(s, i, i == 2 ? NS_TRIAL_FAILED : NS_TRIAL_COMPLETE, &r, &err),
                     NS_OK, "%s", err.msg);
        ns_epoch_record e = {.epoch = 1, .train_loss = 1, .val_loss = 1.1, .n_groups = 0};
        cr_assert_eq(ns_store_epoch_add(s, i, &e, &err), NS_OK);
        e.epoch = 2;
        e.train_loss = 0.8;
        e.val_loss = 0.9;
        cr_assert_eq(ns_store_epoch_add(s, i, &e, &err), NS_OK);
    }
    ns_store_close(s);
    return dir;
}

Test(report, every_section_and_the_study_text_escaped)
{
    char *dir = build_study();
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ns_err err = {0};
    cr_assert_eq(ns_report_build(dir, f, &err), NS_OK, "%s", err.msg);
    fclose(f);
    static const char *const ids[] = {"answer", "mistakes", "lr", "batch", "compare", "history",
                                      "curves", "params", "timeline", "stages", "trials"};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        char want[64];
        snprintf(want, sizeof want, "<section id=\"%s\">", ids[i]);
        cr_assert(strstr(buf, want), "no %s", want);
    }
    cr_assert_null(strstr(buf, "<script>alert"), "study text reached the page unescaped");
    cr_assert(strstr(buf, "&lt;script&gt;alert(1)&lt;/script&gt;&amp;"));
    /* trial 1 (0.6, overfitting) lost to trial 0 (0.5, healthy): selection's order */
    cr_assert(strstr(buf, "Winner: <b>trial 0</b>"), "%.400s", strstr(buf, "Winner") ? strstr(buf, "Winner") : buf);
    cr_assert(strstr(buf, "No lr_range stage ran"));
    cr_assert(strstr(buf, "(or could not be read back)"), "the config that does not parse");
    cr_assert_null(strstr(buf, "http://"));
    cr_assert_null(strstr(buf, "https://"));
    free(buf);
    free(dir);
}

Test(report, written_atomically_to_the_default_path)
{
    char *dir = build_study();
    ns_err err = {0};
    cr_assert_eq(ns_report_write(dir, NULL, &err), NS_OK, "%s", err.msg);
    char path[4096];
    snprintf(path, sizeof path, "%s/" NS_REPORT_FILE, dir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_gt(st.st_size, 1000);
    /* a folder in the way: an error that names the path, the folder untouched */
    snprintf(path, sizeof path, "%s/in-the-way", dir);
    cr_assert_eq(mkdir(path, 0777), 0);
    cr_assert_eq(ns_report_write(dir, path, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "in-the-way"), "%s", err.msg);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    free(dir);
}

Test(report, no_study_is_an_input_error)
{
    char *root = tu_temp_dir();
    ns_err err = {0};
    cr_assert_eq(ns_report_write(root, NULL, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "no study here"), "%s", err.msg);
    char path[4096];
    snprintf(path, sizeof path, "%s/" NS_REPORT_FILE, root);
    cr_assert_neq(access(path, F_OK), 0, "nothing is written for a folder without a study");
    free(root);
}
