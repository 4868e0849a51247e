/* fuzz_config.c — libFuzzer target for the config parser (ns_config_parse). The input is
 * the YAML text of "<scratch>/fuzz.yaml", next to a data/ folder holding the files the
 * example configs name (small CSV and IDX files), so a mutated config can get past the
 * file checks. A config that parses is then instantiated at the centre of its search
 * space, exported as YAML and parsed again: export must write what the parser reads. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search/config/config.h"
#include "tests/fuzz/fuzz_util.h"

static char name[512];

static void setup(void)
{
    static const char csv[] = "f1,f2,label\n1,2,amber\n3,4,jade\n5,6,amber\n7,8,jade\n";
    static const uint8_t idx_img[] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 1, 2, 3, 4};
    static const uint8_t idx_lab[] = {0, 0, 8, 1, 0, 0, 0, 2, 0, 1};
    const char *csvs[] = {"data/quickstart.csv", "data/quickstart-test.csv", "data/tiny.csv",
                          "data/train.csv", "data/test.csv"};
    for (size_t i = 0; i < sizeof csvs / sizeof *csvs; i++)
        fz_write_file(csvs[i], csv, sizeof csv - 1, 0);
    fz_write_file("data/train-images.gz", idx_img, sizeof idx_img, 1);
    fz_write_file("data/train-labels.gz", idx_lab, sizeof idx_lab, 1);
    fz_write_file("data/test-images", idx_img, sizeof idx_img, 0);
    fz_write_file("data/test-labels", idx_lab, sizeof idx_lab, 0);
    snprintf(name, sizeof name, "%s/fuzz.yaml", fz_scratch_dir());
}

/* Export of a fixed config, parsed back: a failure there is the writer's bug. */
static void round_trip(const ns_config *fixed)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return;
    ns_err err;
    int rc = ns_config_export_yaml(fixed, f, "fuzz", &err);
    fclose(f);
    if (rc == NS_OK) {
        ns_config back;
        if (ns_config_parse(&back, name, text, len, &err) != NS_OK) {
            fprintf(stderr, "exported config does not parse: %s\n---\n%s---\n", err.msg, text);
            abort();
        }
        ns_config_free(&back);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!name[0])
        setup();
    ns_config c;
    ns_err err;
    if (fz_report(ns_config_parse(&c, name, (const char *)data, size, &err), &err) != NS_OK)
        return 0;
    if (c.space.n == 0) {
        round_trip(&c);
    } else {
        double *u = malloc((size_t)c.space.n * sizeof *u);
        for (int i = 0; u && i < c.space.n; i++)
            u[i] = 0.5;
        ns_config fixed;
        if (u && ns_config_instantiate(&c, u, &fixed, &err) == NS_OK) {
            round_trip(&fixed);
            ns_config_free(&fixed);
        }
        free(u);
    }
    ns_config_free(&c);
    return 0;
}
