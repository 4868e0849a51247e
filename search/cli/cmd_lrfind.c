/* cmd_lrfind.c — `nnsearch lr-find CONFIG`: the LR range test over several seeds, their
 * suggestions, the bounds handed on, and a plot or JSON. The test itself:
 * search/stages/lrfind.c. */
#include "search/cli/cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search/config/config.h"
#include "search/config/space.h"
#include "search/stages/lrfind.h"
#include "search/stages/pipeline.h"

static int parse_double(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static void jarray(FILE *f, const double *v, int n)
{
    fputc('[', f);
    for (int i = 0; i < n; i++) {
        if (i)
            fputc(',', f);
        if (isfinite(v[i]))
            fprintf(f, "%.9g", v[i]);
        else
            fputs("null", f);
    }
    fputc(']', f);
}

/* `nnsearch lr-find CONFIG`: the LR range test of the config's model and optimizer on its
 * data, with N seeds; a config with search spaces is instantiated at u = 0.5 in every
 * dimension (the middle of each space) so that a search config can be checked as it is. */
int cli_cmd_lrfind(int argc, char **argv)
{
    const char *config = NULL, *csv = NULL;
    int json = 0;
    long seeds = 3, steps = -1;
    double start = NAN, end = NAN;
    ns_lr_rule rule = NS_LR_RULE_DEFAULT;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json"))
            json = 1;
        else if (!strcmp(a, "--seeds") || !strcmp(a, "--start") || !strcmp(a, "--end") ||
                 !strcmp(a, "--steps") || !strcmp(a, "--rule") || !strcmp(a, "--csv")) {
            if (i + 1 >= argc)
                return cli_usage_error("option %s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--seeds")) {
                if (cli_parse_long(v, &seeds) || seeds < 1 || seeds > 100)
                    return cli_usage_error("bad value for --seeds: expected a whole number 1..100, got '%s'", v);
            } else if (!strcmp(a, "--steps")) {
                if (cli_parse_long(v, &steps) || steps < NS_LRFIND_MIN_STEPS || steps > 100000)
                    return cli_usage_error("bad value for --steps: expected a whole number 10..100000, got '%s'", v);
            } else if (!strcmp(a, "--start") || !strcmp(a, "--end")) {
                double x;
                if (parse_double(v, &x) || !(x > 0))
                    return cli_usage_error("bad value for %s: expected a positive number", a);
                *(a[2] == 's' ? &start : &end) = x;
            } else if (!strcmp(a, "--rule")) {
                if (ns_lr_rule_parse(v, &rule))
                    return cli_usage_error("bad value for --rule: '%s'; use valley, steepest or min10", v);
            } else {
                csv = v;
            }
        } else if (cli_argument(a, &config, NULL)) {
            return 2;
        }
    }
    if (!config)
        return cli_usage_error("%s", "lr-find needs a CONFIG file");
    ns_lrfind_spec spec;
    ns_lrfind_spec_default(&spec);
    spec.batch_size = 0; /* the config's */
    if (isfinite(start))
        spec.lr_start = start;
    if (isfinite(end))
        spec.lr_end = end;
    if (steps > 0)
        spec.steps = (int)steps;
    if (!(spec.lr_end > spec.lr_start)) {
        fprintf(stderr, "nnsearch: lr-find: end LR %g must be above the start LR %g (see nnsearch lr-find --help)\n",
                spec.lr_end, spec.lr_start);
        return 2;
    }

    ns_err err = {0};
    ns_config base, c;
    if (ns_config_load(&base, config, &err))
        return cli_report(&err);
    if (ns_pipeline_device_check(&base, &err)) {
        ns_config_free(&base);
        return cli_report(&err);
    }
    double *mid = NULL;
    if (base.space.n > 0 && (mid = malloc((size_t)base.space.n * sizeof *mid)))
        for (int i = 0; i < base.space.n; i++)
            mid[i] = 0.5;
    int rc = base.space.n > 0 && !mid ? ns_err_set(&err, NS_ERUNTIME, "out of memory")
                                      : ns_config_instantiate(&base, mid, &c, &err);
    free(mid);
    ns_config_free(&base);
    if (rc)
        return cli_report(&err);
    ns_prepared p;
    if (ns_prepare_data(&p, &c, &err)) {
        ns_config_free(&c);
        return cli_report(&err);
    }
    int n = (int)seeds;
    ns_lrfind_curve *curves = calloc((size_t)n, sizeof *curves);
    ns_lrfind_suggestion *sug = calloc((size_t)n, sizeof *sug);
    double *picks = calloc((size_t)n, sizeof *picks);
    if (!curves || !sug || !picks) {
        rc = cli_report(&(ns_err){NS_ERUNTIME, "out of memory"});
        goto done;
    }
    for (int k = 0; k < n; k++) {
        if ((rc = ns_lrfind_config(&c, &p, &spec, ns_lrfind_seed(&c, k), &curves[k], &err))) {
            rc = cli_report(&err);
            goto done;
        }
        ns_lrfind_suggest(&curves[k], &sug[k]);
        picks[k] = ns_lrfind_pick(&sug[k], rule);
    }
    double centre, lo, hi, spread;
    ns_lrfind_bounds(picks, n, &centre, &lo, &hi, &spread);
    if (csv && (rc = ns_lrfind_write_csv_seeds(csv, curves, n, &err))) {
        rc = cli_report(&err);
        goto done;
    }
    if (!isfinite(centre)) {
        fprintf(stderr, "nnsearch: lr-find: no seed gave a usable curve (the loss blew up within "
                "%d steps); lower --start or raise --steps\n", curves[0].n);
        rc = 1;
        goto done;
    }
    if (json) {
        printf("{\"config\":");
        cli_jstr(stdout, config);
        printf(",\"optimizer\":\"%s\",\"batch_size\":%d,", ns_opt_kind_name(c.train.opt.kind),
               c.train.batch_size < p.train.n ? c.train.batch_size : (int)p.train.n);
        cli_jnum(stdout, "start", spec.lr_start, 1);
        cli_jnum(stdout, "end", spec.lr_end, 1);
        printf("\"steps\":%d,\"rule\":\"%s\",\"seeds\":[", spec.steps, ns_lr_rule_name(rule));
        for (int k = 0; k < n; k++) {
            printf("%s{\"seed\":%d,\"points\":%d,\"blew_up\":%s,", k ? "," : "", k, curves[k].n,
                   curves[k].blew_up ? "true" : "false");
            cli_jnum(stdout, "steepest", sug[k].steepest, 1);
            cli_jnum(stdout, "valley", sug[k].valley, 1);
            cli_jnum(stdout, "min10", sug[k].min10, 1);
            cli_jnum(stdout, "min_loss_lr", sug[k].min_loss_lr, 1);
            cli_jnum(stdout, "pick", picks[k], 1);
            printf("\"lr\":");
            jarray(stdout, curves[k].lr, curves[k].n);
            printf(",\"loss\":");
            jarray(stdout, curves[k].loss, curves[k].n);
            printf(",\"smoothed\":");
            jarray(stdout, curves[k].smoothed, curves[k].n);
            printf("}");
        }
        printf("],");
        cli_jnum(stdout, "suggestion", centre, 1);
        cli_jnum(stdout, "spread", spread, 1);
        cli_jnum(stdout, "lr_min", lo, 1);
        cli_jnum(stdout, "lr_max", hi, 0);
        printf("}\n");
    } else {
        printf("lr-find %s: %s, batch %d, %d seeds, LR %g to %g in %d steps\n", config,
               ns_opt_kind_name(c.train.opt.kind),
               c.train.batch_size < p.train.n ? c.train.batch_size : (int)p.train.n, n,
               spec.lr_start, spec.lr_end, spec.steps);
        for (int k = 0; k < n; k++)
            printf("seed %d: steepest %.3g  valley %.3g  min10 %.3g  (%d steps%s)\n", k,
                   sug[k].steepest, sug[k].valley, sug[k].min10, curves[k].n,
                   curves[k].blew_up ? ", stopped at the blow-up" : "");
        printf("suggestion: lr %.3g (rule %s, median of %d seeds)\n", centre, ns_lr_rule_name(rule), n);
        printf("spread: %.3gx (largest / smallest pick)\n", spread);
        printf("bounds: %.3g .. %.3g (smallest pick / %g, largest x %g)\n", lo, hi,
               NS_LRFIND_MARGIN, NS_LRFIND_MARGIN);
        ns_lrfind_plot_seeds(stdout, curves, n, centre, lo, hi, 60, 15);
        if (csv)
            printf("curves: %s\n", csv);
    }
    rc = 0;
done:
    for (int k = 0; curves && k < n; k++)
        ns_lrfind_curve_free(&curves[k]);
    free(curves);
    free(sug);
    free(picks);
    ns_prepared_free(&p);
    ns_config_free(&c);
    return rc;
}
