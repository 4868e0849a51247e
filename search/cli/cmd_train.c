/* cmd_train.c — `nnsearch train CONFIG`: one fixed config trained to a model file (or a
 * fold ensemble, model.ensemble), its epochs as progress lines or JSON, and its health
 * judged at the end. Not the search (main.c) and not the training itself (pipeline.c). */
#include "search/cli/cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/atomic.h"
#include "engine/train/health.h"
#include "search/config/config.h"
#include "search/stages/pipeline.h"

typedef struct train_out {
    int json, quiet;
    long total_epochs;
    ns_task task;
    ns_epoch_record *recs; /* this run's epochs, for the health check */
    int n_recs, cap_recs;
    int recs_lost;         /* out of memory: the health check is skipped */
} train_out;

static void keep_record(train_out *o, const ns_epoch_record *r)
{
    if (o->recs_lost)
        return;
    if (o->n_recs == o->cap_recs) {
        int nc = o->cap_recs ? 2 * o->cap_recs : 64;
        ns_epoch_record *nv = realloc(o->recs, (size_t)nc * sizeof *nv);
        if (!nv) {
            o->recs_lost = 1;
            return;
        }
        o->recs = nv;
        o->cap_recs = nc;
    }
    o->recs[o->n_recs++] = *r;
}

static int print_epoch(void *user, const ns_epoch_record *r)
{
    train_out *o = user;
    keep_record(o, r);
    if (o->json) {
        printf("{\"epoch\":%d,\"step\":%ld,", r->epoch, r->step);
        cli_jnum(stdout, "train_loss", r->train_loss, 1);
        cli_jnum(stdout, "val_loss", r->val_loss, 1);
        if (o->task == NS_TASK_CLASSIFY)
            cli_jnum(stdout, "val_acc", r->val_acc, 1);
        else
            cli_jnum(stdout, "val_rmse", r->val_rmse, 1);
        cli_jnum(stdout, "lr", r->lr, 1);
        cli_jnum(stdout, "grad_norm", r->grad_norm, 1);
        printf("\"layer_grad_norm\":[");
        for (int g = 0; g < r->n_groups; g++) {
            if (isfinite(r->group_grad_norm[g]))
                printf("%s%.6g", g ? "," : "", r->group_grad_norm[g]);
            else
                printf("%snull", g ? "," : "");
        }
        printf("],");
        cli_jnum(stdout, "seconds", r->seconds, 1);
        cli_jnum(stdout, "samples_per_s", r->samples_per_s, 0);
        printf("}\n");
        fflush(stdout);
    }
    if (!o->quiet) {
        char metric[64] = "";
        if (o->task == NS_TASK_CLASSIFY && isfinite(r->val_acc))
            snprintf(metric, sizeof metric, "  val_acc %.4f", r->val_acc);
        else if (isfinite(r->val_rmse))
            snprintf(metric, sizeof metric, "  val_rmse %.4g", r->val_rmse);
        char total[32] = "";
        if (o->total_epochs > 0)
            snprintf(total, sizeof total, "/%ld", o->total_epochs);
        fprintf(stderr, "epoch %d%s  train_loss %.4f  val_loss %.4f%s  lr %.3g  %.0f samples/s  %.1fs\n",
                r->epoch, total, r->train_loss, r->val_loss, metric, r->lr, r->samples_per_s, r->seconds);
    }
    return 0;
}

/* results/<config file name without extension>/model.nsm */
static char *default_model_path(const char *config)
{
    const char *base = strrchr(config, '/');
    base = base ? base + 1 : config;
    /* the last extension only: my.cfg.yaml trains into results/my.cfg, not results/my */
    const char *dot = strrchr(base, '.');
    size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    char *dir = malloc(len + 16), *path = malloc(len + 32);
    if (!dir || !path) {
        free(dir);
        free(path);
        return NULL;
    }
    snprintf(dir, len + 16, "results/%.*s", (int)len, base);
    (void)ns_mkdir_p(dir, NULL, 0); /* a failure shows when the model is written */
    snprintf(path, len + 32, "%s/model.nsm", dir);
    free(dir);
    return path;
}

/* `train` runs fixed configs only; a search config is refused with where its spaces are. */
static int check_fixed(const ns_config *c)
{
    if (c->space.n > 0) {
        const ns_dim *d = &c->space.dims[0];
        fprintf(stderr, "nnsearch: %s:%d:%d: %s is a search space; `train` needs fixed values "
                "(run the search with `nnsearch %s`, or train a trial's exported config)\n",
                c->path, d->line, d->column, d->name, c->path);
        return 2;
    }
    return 0;
}


/* The final line's validation and test figures, each followed by a comma (NaN: null). */
static void json_scores(const ns_run_result *r, int classify)
{
    cli_jnum(stdout, "val_loss", r->val_loss, 1);
    if (classify) {
        cli_jnum(stdout, "val_acc", r->val_acc, 1);
        cli_jnum(stdout, "val_balanced_acc", r->val_bacc, 1);
        cli_jnum(stdout, "val_macro_f1", r->val_f1, 1);
    } else {
        cli_jnum(stdout, "val_rmse", r->val_rmse, 1);
    }
    cli_jnum(stdout, "test_loss", r->test_loss, 1);
    if (classify) {
        cli_jnum(stdout, "test_acc", r->test_acc, 1);
        cli_jnum(stdout, "test_balanced_acc", r->test_bacc, 1);
        cli_jnum(stdout, "test_macro_f1", r->test_f1, 1);
    } else {
        cli_jnum(stdout, "test_rmse", r->test_rmse, 1);
    }
}

static void print_member(void *user, int member, int n)
{
    train_out *o = user;
    if (!o->quiet)
        fprintf(stderr, "nnsearch: member %d of %d: trained on the rows outside fold %d, validated "
                "on it\n", member + 1, n, member + 1);
    if (o->json)
        printf("{\"member\":%d,\"members\":%d}\n", member, n);
}

/* `nnsearch train` of a fold ensemble (model.ensemble): every member, then one file. */
static int train_ensemble(const ns_config *c, const char *config, const char *model_path,
                          train_out *o)
{
    ns_err err = {0};
    o->task = c->data.task;
    o->total_epochs = c->train.budget == NS_BUDGET_EPOCHS ? c->train.epochs : 0;
    if (!o->quiet)
        fprintf(stderr, "nnsearch: %s: an ensemble of %d members, one per stratified fold of the "
                "training rows (model.ensemble)\n", config, c->ensemble);
    ns_run_result res = {0};
    cli_install_signals();
    int rc = ns_run_ensemble(c, print_epoch, print_member, o, model_path, &cli_stop, &res,
                             NULL, &err);
    free(o->recs);
    if (rc)
        return cli_report(&err);
    if (res.interrupted) {
        fprintf(stderr, "nnsearch: interrupted; no model written (the same command trains the "
                "ensemble again)\n");
        return 130;
    }
    int classify = c->data.task == NS_TASK_CLASSIFY;
    if (o->json) {
        printf("{\"final\":true,\"members\":%d,\"epochs\":%d,\"best_epoch\":%d,\"diverged\":%s,",
               c->ensemble, res.epochs, res.best_epoch, res.diverged ? "true" : "false");
        json_scores(&res, classify);
        printf("\"model\":");
        cli_jstr(stdout, model_path);
        printf("}\n");
    } else {
        printf("ensemble of %d members; epochs %d (median best %d)%s\n", c->ensemble, res.epochs,
               res.best_epoch, res.diverged ? ", a member DIVERGED" : "");
        if (classify) {
            printf("val (mean over members, each on its fold): loss %.4f  acc %.4f  balanced_acc %.4f  "
                   "macro_f1 %.4f\n", res.val_loss, res.val_acc, res.val_bacc, res.val_f1);
            if (isfinite(res.test_acc))
                printf("test (averaged probabilities): loss %.4f  acc %.4f  balanced_acc %.4f  "
                       "macro_f1 %.4f\n", res.test_loss, res.test_acc, res.test_bacc, res.test_f1);
        } else {
            printf("val (mean over members, each on its fold): loss %.4f  rmse %.4g\n", res.val_loss,
                   res.val_rmse);
            if (isfinite(res.test_rmse))
                printf("test (averaged prediction): rmse %.4g\n", res.test_rmse);
        }
        printf("health: judged per member by a study's cross-validation, not here\n");
        printf("model %s\n", model_path);
    }
    return 0;
}

int cli_cmd_train(int argc, char **argv)
{
    const char *config = NULL, *out = NULL, *ckpt = NULL;
    train_out o = {0};
    long seed = -1, threads = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json"))
            o.json = 1;
        else if (!strcmp(a, "--quiet"))
            o.quiet = 1;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--checkpoint") ||
                 !strcmp(a, "--seed") || !strcmp(a, "--threads")) {
            if (i + 1 >= argc)
                return cli_usage_error("option %s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "-o") || !strcmp(a, "--output"))
                out = v;
            else if (!strcmp(a, "--checkpoint"))
                ckpt = v;
            else if (!strcmp(a, "--seed") && (cli_parse_long(v, &seed) || seed < 0))
                return cli_usage_error("bad value for --seed: expected a whole number >= 0, got '%s'", v);
            else if (!strcmp(a, "--threads") && (cli_parse_long(v, &threads) || threads < 1 || threads > 4096))
                return cli_usage_error("bad value for --threads: expected a whole number 1..4096 "
                                       "(as train.threads), got '%s'", v);
        } else if (cli_argument(a, &config, NULL)) {
            return 2;
        }
    }
    if (!config)
        return cli_usage_error("%s", "train needs a CONFIG file");

    ns_err err = {0};
    ns_config c;
    int rc_train;
    if (ns_config_load(&c, config, &err))
        return cli_report(&err);
    if (ns_pipeline_device_check(&c, &err)) {
        ns_config_free(&c);
        return cli_report(&err);
    }
    int bad = check_fixed(&c);
    if (bad) {
        ns_config_free(&c);
        return bad;
    }
    if (seed >= 0)
        c.train.seed = (uint64_t)seed;
    if (threads > 0)
        c.threads = (int)threads;
    /* outputs that cannot be written are refused before the training, not after it */
    const char *inputs[] = {config, c.data.train, c.data.train_labels, c.data.test, c.data.test_labels};
    if ((out && (ns_atomic_check_dest(out, &err) || ns_atomic_check_not_input(out, inputs, 5, &err))) ||
        (ckpt && (ns_atomic_check_dest(ckpt, &err) || ns_atomic_check_not_input(ckpt, inputs, 5, &err)))) {
        ns_config_free(&c);
        return cli_report(&err);
    }
    if (c.ensemble) {
        if (ckpt) {
            ns_config_free(&c);
            return cli_usage_error("%s", "--checkpoint keeps one model's training state; an ensemble "
                               "(model.ensemble) trains its members again when interrupted: drop "
                               "--checkpoint");
        }
        char *model_path = out ? strdup(out) : default_model_path(config);
        rc_train = train_ensemble(&c, config, model_path, &o);
        free(model_path);
        ns_config_free(&c);
        return rc_train;
    }
    ns_prepared p;
    /* the memory check before the first progress line: a refusal is then the only line */
    if (ns_prepare_data(&p, &c, &err) || ns_pipeline_memory_check(&c, &p, 0, &err)) {
        ns_prepared_free(&p);
        ns_config_free(&c);
        return cli_report(&err);
    }
    char *model_path = out ? strdup(out) : default_model_path(config);
    o.task = p.task;
    o.total_epochs = c.train.budget == NS_BUDGET_EPOCHS ? c.train.epochs : 0;
    if (!o.quiet)
        fprintf(stderr, "nnsearch: %s: %ld training, %ld validation, %ld test rows, %d features\n",
                config, p.train.n, p.val.n, p.test.n, p.train.d);
    ns_data_report dr;
    if (!ns_pipeline_data_check(&c, &p, &dr, &err)) {
        for (int i = 0; i < dr.n_findings && !o.quiet; i++)
            fprintf(stderr, "nnsearch: data: %s (mistake %d): %s; %s\n", dr.findings[i].code,
                    dr.findings[i].mistake, dr.findings[i].message, dr.findings[i].fix);
        ns_data_report_free(&dr);
    }
    ns_run_result res = {0};
    cli_install_signals();
    int rc = ns_run_training(&c, &p, print_epoch, &o,
                             &(ns_run_out){.checkpoint = ckpt, .model = model_path}, &cli_stop,
                             &res, &err);
    if (rc) {
        rc = cli_report(&err);
    } else if (res.interrupted) {
        if (ckpt)
            fprintf(stderr, "nnsearch: interrupted after %d epochs and a part; the same command "
                    "continues from %s\n", res.epochs, ckpt);
        else
            fprintf(stderr, "nnsearch: interrupted after %d epochs; no model written (pass "
                    "--checkpoint FILE to be able to continue an interrupted run)\n", res.epochs);
        rc = 130;
    } else {
        /* a run continued from a checkpoint is judged on the epochs of this run only */
        ns_finding f[NS_HEALTH_MAX_FINDINGS];
        int nf = 0;
        if (!o.recs_lost) {
            ns_health_spec hs = c.health;
            hs.baseline_loss = ns_pipeline_baseline_loss(&c, &p);
            ns_pipeline_health_noise(&hs, &p);
            nf = ns_health_check(&hs, o.recs, o.n_recs, res.best_epoch, f, NS_HEALTH_MAX_FINDINGS);
        }
        if (o.json) {
            printf("{\"final\":true,\"epochs\":%d,\"best_epoch\":%d,\"stopped_early\":%s,\"diverged\":%s,",
                   res.epochs, res.best_epoch, res.stopped_early ? "true" : "false",
                   res.diverged ? "true" : "false");
            json_scores(&res, p.task == NS_TASK_CLASSIFY);
            printf("\"health\":");
            int len = o.recs_lost ? -1 : ns_findings_json(f, nf, NULL, 0);
            char *hj = len >= 0 ? malloc((size_t)len + 1) : NULL;
            if (hj && ns_findings_json(f, nf, hj, (size_t)len + 1) == len)
                fputs(hj, stdout);
            else
                fputs("null", stdout);
            free(hj);
            printf(",\"model\":");
            cli_jstr(stdout, model_path ? model_path : "");
            printf("}\n");
        } else {
            printf("epochs %d (best %d)%s%s\n", res.epochs, res.best_epoch,
                   res.stopped_early && !res.diverged ? ", stopped early" : "",
                   res.diverged ? ", DIVERGED (training stopped)" : "");
            if (p.task == NS_TASK_CLASSIFY) {
                printf("val_loss %.4f  val_acc %.4f  balanced_acc %.4f  macro_f1 %.4f\n",
                       res.val_loss, res.val_acc, res.val_bacc, res.val_f1);
                if (p.test.n)
                    printf("test_loss %.4f  test_acc %.4f  balanced_acc %.4f  macro_f1 %.4f\n",
                           res.test_loss, res.test_acc, res.test_bacc, res.test_f1);
            } else {
                printf("val_loss %.4f  val_rmse %.4g\n", res.val_loss, res.val_rmse);
                if (p.test.n)
                    printf("test_loss %.4f  test_rmse %.4g\n", res.test_loss, res.test_rmse);
            }
            if (o.recs_lost)
                printf("health: not checked (out of memory)\n");
            else if (!nf)
                printf("health: ok (no detector fired)\n");
            for (int i = 0; i < nf; i++)
                printf("health: %s (mistake %d): %s; fix: %s\n", f[i].code, f[i].mistake,
                       f[i].message, f[i].fix);
            printf("model %s\n", model_path);
        }
    }
    free(o.recs);
    free(model_path);
    ns_prepared_free(&p);
    ns_config_free(&c);
    return rc;
}
