/* remote.c — a study across MPI ranks (mpirun, srun): rank 0 runs the driver as with -j,
 * and each slot of its pool hands its trial to a thread of a worker rank instead of
 * training it; the worker sends back every epoch record (rank 0 stores it and answers
 * with the pruning verdict, exactly as record_epoch does under -j), its checkpoints (so
 * that the study folder on rank 0 alone can be resumed) and the result. Every decision
 * stays on rank 0 and reads the store only. Not the MPI calls themselves
 * (search/dist/mpi.c), nor what a trial is (driver.c). */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/atomic.h"
#include "search/dist/mpi.h"
#include "search/stages/driver_impl.h"

/* The protocol. Records and results travel as the structs' bytes, so both ends must be
 * the same build: the version line (NS_VERSION and the layouts) is compared at start. */
#define PROTOCOL 1
enum { TAG_SETUP = 1, TAG_HELLO = 2, TAG_SLOT = 16 };
enum { M_SETUP = 1, M_HELLO, M_START, M_TRIAL, M_EPOCH, M_VERDICT, M_CKPT, M_RESULT, M_QUIT };

static void version_line(char *out, size_t cap, int worker)
{
    /* NNSEARCH_TEST_VERSION: a test's stand-in for a worker of another version
     * (tests/e2e_mpi.sh); read by workers only */
    const char *t = worker ? getenv("NNSEARCH_TEST_VERSION") : NULL;
    snprintf(out, cap, "nnsearch %s protocol %d (records %zu, results %zu bytes)", t ? t : NS_VERSION,
             PROTOCOL, sizeof(ns_epoch_record), sizeof(ns_run_result));
}

/* ---- messages: a growing byte buffer, and a reader that fails instead of overrunning -- */

typedef struct msg {
    unsigned char *p;
    size_t len, cap;
    int oom;
} msg;

static void put(msg *m, const void *v, size_t n)
{
    if (m->oom)
        return;
    if (m->len + n > m->cap) {
        size_t cap = m->cap ? m->cap : 256;
        while (cap < m->len + n)
            cap *= 2;
        unsigned char *p = realloc(m->p, cap);
        if (!p) {
            m->oom = 1;
            return;
        }
        m->p = p;
        m->cap = cap;
    }
    if (n)
        memcpy(m->p + m->len, v, n);
    m->len += n;
}
static void put_i64(msg *m, int64_t v) { put(m, &v, sizeof v); }
static void put_f64(msg *m, double v) { put(m, &v, sizeof v); }
static void put_blob(msg *m, const void *v, size_t n)
{
    put_i64(m, (int64_t)n);
    put(m, v, n);
}
static void put_str(msg *m, const char *s) { put_blob(m, s, strlen(s) + 1); }

typedef struct rd {
    const unsigned char *p;
    size_t len, at;
    int bad;
} rd;

static void get(rd *r, void *v, size_t n)
{
    if (r->bad || r->len - r->at < n) {
        r->bad = 1;
        memset(v, 0, n);
        return;
    }
    memcpy(v, r->p + r->at, n);
    r->at += n;
}
static int64_t get_i64(rd *r)
{
    int64_t v;
    get(r, &v, sizeof v);
    return v;
}
static double get_f64(rd *r)
{
    double v;
    get(r, &v, sizeof v);
    return v;
}
/* A pointer into the message (valid while it lives) and its length. */
static const void *get_blob(rd *r, size_t *n)
{
    int64_t k = get_i64(r);
    if (r->bad || k < 0 || (uint64_t)k > r->len - r->at) {
        r->bad = 1;
        *n = 0;
        return "";
    }
    const void *v = r->p + r->at;
    r->at += (size_t)k;
    *n = (size_t)k;
    return v;
}
/* A NUL-terminated string blob; "" when bad. */
static const char *get_str(rd *r)
{
    size_t n;
    const char *s = get_blob(r, &n);
    if (r->bad || n == 0 || s[n - 1]) {
        r->bad = 1;
        return "";
    }
    return s;
}

static int send_msg(int to, int tag, msg *m, ns_err *err)
{
    int rc = m->oom ? ns_err_set(err, NS_ERUNTIME, "out of memory building a message for rank %d", to)
                    : ns_dist_send(to, tag, m->p, m->len, err);
    free(m->p);
    memset(m, 0, sizeof *m);
    return rc;
}

/* Receives the next message from `from` on `tag` into *r (its bytes: free(r->p) after)
 * and its kind, unless *cancel (may be NULL) is set while it waits. */
static int recv_msg(int from, int tag, const atomic_int *cancel, rd *r, int *kind, ns_err *err)
{
    void *buf = NULL;
    size_t len = 0;
    int rc = ns_dist_recv(from, tag, cancel, &buf, &len, err);
    if (rc)
        return rc;
    *r = (rd){.p = buf, .len = len};
    *kind = (int)get_i64(r);
    return NS_OK;
}

static int bad_msg(ns_err *err, int from, const char *what)
{
    return ns_err_set(err, NS_ERUNTIME, "MPI: a malformed %s message from rank %d (a rank of "
                      "another nnsearch build?)", what, from);
}

/* A file's bytes (caller frees); *n 0 and NULL when it does not exist. */
static int read_file(const char *path, unsigned char **out, size_t *n, ns_err *err)
{
    *out = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? NS_OK : ns_err_set(err, NS_ERUNTIME, "%s: %s", path, strerror(errno));
    unsigned char *p = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 65536;
            unsigned char *q = realloc(p, cap);
            if (!q) {
                free(p);
                fclose(f);
                return ns_err_set(err, NS_ERUNTIME, "out of memory reading %s", path);
            }
            p = q;
        }
        size_t got = fread(p + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(p);
        return ns_err_set(err, NS_ERUNTIME, "%s: cannot read", path);
    }
    *out = p;
    *n = len;
    return NS_OK;
}

/* Writes n bytes to path atomically (a kill leaves the old file or the new one). */
static int write_file(const char *path, const void *p, size_t n, ns_err *err)
{
    ns_atomic_file f;
    int rc = ns_atomic_open(&f, path, err);
    if (rc)
        return rc;
    if (n && fwrite(p, 1, n, f.f) != n) {
        int e = errno;
        ns_atomic_abort(&f);
        return ns_err_set(err, NS_ERUNTIME, "%s: cannot write: %s", path, strerror(e));
    }
    return ns_atomic_commit(&f, err);
}

/* FNV-1a 64 continued over more bytes. */
static uint64_t fnv_more(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t hash_part(uint64_t h, const ns_dataset *d)
{
    int64_t dims[3] = {d->n, d->d, d->n_classes};
    h = fnv_more(h, dims, sizeof dims);
    if (d->n > 0 && d->x)
        h = fnv_more(h, d->x, (size_t)d->n * (size_t)d->d * sizeof *d->x);
    if (d->n > 0 && d->y)
        h = fnv_more(h, d->y, (size_t)d->n * sizeof *d->y);
    if (d->n > 0 && d->t)
        h = fnv_more(h, d->t, (size_t)d->n * sizeof *d->t);
    return h;
}

/* The prepared data as every trial sees them (split and standardised): equal on two ranks
 * when they read the same files the same way. */
static uint64_t data_hash(const ns_prepared *p)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    h = hash_part(h, &p->train);
    h = hash_part(h, &p->val);
    return hash_part(h, &p->test);
}

/* ---- rank 0 ------------------------------------------------------------------------------ */

/* Workers: 0 wait for a study (SETUP), 1 run `slots` trials each, 2 released. */
static int phase, slots_per_worker;
static atomic_long trials_sent, trials_back;
static double t_first = -1, t_last = -1;

int ns_remote_start(ns_search *s, ns_err *err)
{
    const int N = s->opts->ranks, P = s->opts->parallel;
    char version[160], abs[4096];
    version_line(version, sizeof version, 0);
    if (!realpath(s->opts->config_path, abs))
        return ns_err_set(err, NS_ERUNTIME, "%s: %s", s->opts->config_path, strerror(errno));
    const uint64_t hash = data_hash(&s->data);
    int rc = NS_OK;
    for (int w = 1; w < N && !rc; w++) {
        msg m = {0};
        put_i64(&m, M_SETUP);
        put_str(&m, version);
        put_i64(&m, P);
        put_i64(&m, s->metric);
        put_i64(&m, s->higher);
        put_str(&m, abs);
        put_blob(&m, s->base.text, strlen(s->base.text));
        rc = send_msg(w, TAG_SETUP, &m, err);
    }
    /* every worker answers, refused or not, before any is told to go on */
    ns_err why = {0};
    for (int w = 1; w < N && !rc; w++) {
        rd r;
        int kind;
        if ((rc = recv_msg(w, TAG_HELLO, NULL, &r, &kind, err)))
            break;
        const char *wv = get_str(&r);
        const char *host = get_str(&r);
        int ok = (int)get_i64(&r);
        uint64_t wh = (uint64_t)get_i64(&r);
        const char *wmsg = get_str(&r);
        if (why.code) {
            /* the first refusal is the one reported */
        } else if (r.bad || kind != M_HELLO) {
            ns_err_set(&why, NS_EINPUT, "rank %d: refused: it does not speak this nnsearch's protocol "
                       "(another nnsearch version?); run the same nnsearch build on every host", w);
        } else if (strcmp(wv, version)) {
            ns_err_set(&why, NS_EINPUT, "rank %d on %s: refused: it runs %s, rank 0 runs %s; install "
                       "the same nnsearch build on every host", w, host, wv, version);
        } else if (!ok) {
            ns_err_set(&why, NS_EINPUT, "rank %d on %s: refused: %s (every host needs the data files "
                       "at the same paths as rank 0; docs/config.md, \"Running under MPI\")", w, host, wmsg);
        } else if (wh != hash) {
            ns_err_set(&why, NS_EINPUT, "rank %d on %s: refused: its data differ from rank 0's (the "
                       "files at the config's data paths are not the same on both hosts); copy the "
                       "same files to every host", w, host);
        }
        free((void *)r.p);
    }
    if (rc)
        return rc;
    for (int w = 1; w < N && !rc; w++) {
        msg m = {0};
        put_i64(&m, M_START);
        put_i64(&m, why.code ? 0 : 1);
        rc = send_msg(w, TAG_SETUP, &m, err);
    }
    if (rc)
        return rc;
    if (why.code) {
        phase = 2; /* told to quit */
        if (err)
            *err = why;
        return why.code;
    }
    phase = 1;
    slots_per_worker = P;
    return NS_OK;
}

int ns_remote_trial(ns_search *s, int slot, long n, const char *cfg_path, const char *ckpt,
                    const char *model, int use_cv, int race, ns_epoch_fn fn, void *user,
                    ns_cv_result *cv, ns_run_result *res, int *trc, ns_err *terr, ns_err *err)
{
    const int w = 1 + slot / slots_per_worker, tag = TAG_SLOT + slot % slots_per_worker;
    unsigned char *text = NULL, *ck = NULL;
    size_t text_n = 0, ck_n = 0;
    int rc;
    if ((rc = read_file(cfg_path, &text, &text_n, err)))
        return rc;
    if (!text) {
        return ns_err_set(err, NS_ERUNTIME, "%s: missing", cfg_path);
    }
    if (!use_cv && (rc = read_file(ckpt, &ck, &ck_n, err))) {
        free(text);
        return rc;
    }
    msg m = {0};
    put_i64(&m, M_TRIAL);
    put_i64(&m, n);
    put_i64(&m, use_cv);
    put_i64(&m, race);
    const int nr = use_cv && s->race_ref ? s->folds.n : 0;
    put_i64(&m, nr);
    for (int i = 0; i < nr; i++)
        put_f64(&m, s->race_ref[i]);
    put_str(&m, cfg_path);
    put_blob(&m, text, text_n);
    put_blob(&m, ck, ck_n);
    free(text);
    free(ck);
#pragma omp critical(ns_remote_clock)
    if (t_first < 0)
        t_first = ns_now_s();
    if ((rc = send_msg(w, tag, &m, err)))
        return rc;
    atomic_fetch_add(&trials_sent, 1);
    for (;;) {
        rd r;
        int kind;
        if ((rc = recv_msg(w, tag, NULL, &r, &kind, err)))
            return rc;
        if (kind == M_EPOCH) {
            ns_epoch_record rec;
            get(&r, &rec, sizeof rec);
            free((void *)r.p);
            if (r.bad)
                return bad_msg(err, w, "epoch");
            int verdict = fn(user, &rec);
            msg v = {0};
            put_i64(&v, M_VERDICT);
            put_i64(&v, verdict);
            put_i64(&v, ns_stop_requested(s->opts->stop));
            if ((rc = send_msg(w, tag, &v, err)))
                return rc;
        } else if (kind == M_CKPT) {
            size_t k;
            const void *p = get_blob(&r, &k);
            rc = r.bad ? bad_msg(err, w, "checkpoint") : write_file(ckpt, p, k, err);
            free((void *)r.p);
            if (rc)
                return rc;
        } else if (kind == M_RESULT) {
            atomic_fetch_add(&trials_back, 1);
            *trc = (int)get_i64(&r);
            get(&r, terr, sizeof *terr);
            terr->msg[sizeof terr->msg - 1] = 0;
            get(&r, res, sizeof *res); /* its predictions follow below */
            memset(cv, 0, sizeof *cv);
            cv->n_folds = (int)get_i64(&r);
            cv->done = (int)get_i64(&r);
            cv->raced = (int)get_i64(&r);
            cv->n_curve = (int)get_i64(&r);
            cv->mean = get_f64(&r);
            cv->se = get_f64(&r);
            if (!r.bad && (cv->n_folds < 0 || cv->n_folds > 100000 || cv->n_curve < 0 ||
                           cv->n_curve > 10000000 || cv->done < 0 || cv->done > cv->n_folds))
                r.bad = 1;
            if (!r.bad && cv->n_folds > 0) {
                cv->metric = malloc((size_t)cv->n_folds * sizeof *cv->metric);
                cv->best_epoch = malloc((size_t)cv->n_folds * sizeof *cv->best_epoch);
                if (!cv->metric || !cv->best_epoch)
                    rc = ns_err_set(err, NS_ERUNTIME, "out of memory");
                else {
                    get(&r, cv->metric, (size_t)cv->n_folds * sizeof *cv->metric);
                    get(&r, cv->best_epoch, (size_t)cv->n_folds * sizeof *cv->best_epoch);
                }
            }
            if (!rc && !r.bad && cv->n_curve > 0) {
                if (!(cv->curve = malloc((size_t)cv->n_curve * sizeof *cv->curve)))
                    rc = ns_err_set(err, NS_ERUNTIME, "out of memory");
                else
                    get(&r, cv->curve, (size_t)cv->n_curve * sizeof *cv->curve);
            }
            /* the held-out rows' predicted classes (cross-validation's or the split's) */
            int64_t np = get_i64(&r);
            if (!r.bad && (np < 0 || np > INT32_MAX))
                r.bad = 1;
            if (!rc && !r.bad && np > 0) {
                if (!(cv->pred = malloc((size_t)np * sizeof *cv->pred)))
                    rc = ns_err_set(err, NS_ERUNTIME, "out of memory");
                else {
                    get(&r, cv->pred, (size_t)np * sizeof *cv->pred);
                    cv->n_pred = (long)np;
                }
            }
            size_t k1 = 0, k2 = 0;
            const void *ckp = get_blob(&r, &k1);
            const void *mod = get_blob(&r, &k2);
            if (!rc && r.bad)
                rc = bad_msg(err, w, "result");
            /* an interrupted trial continues from this checkpoint; a finished one leaves
             * its model for select's test score and export */
            if (!rc && k1)
                rc = write_file(ckpt, ckp, k1, err);
            if (!rc && k2)
                rc = write_file(model, mod, k2, err);
            free((void *)r.p);
            if (rc)
                ns_cv_result_free(cv);
#pragma omp critical(ns_remote_clock)
            t_last = ns_now_s();
            return rc;
        } else {
            free((void *)r.p);
            return bad_msg(err, w, "trial");
        }
    }
}


void ns_search_workers_release(int ranks)
{
    if (phase == 2 || ranks < 2)
        return;
    ns_err err = {0};
    int rc = NS_OK;
    for (int w = 1; w < ranks && !rc; w++)
        for (int k = 0; k < (phase == 0 ? 1 : slots_per_worker) && !rc; k++) {
            msg m = {0};
            put_i64(&m, M_QUIT);
            rc = send_msg(w, phase == 0 ? TAG_SETUP : TAG_SLOT + k, &m, &err);
        }
    if (rc)
        fprintf(stderr, "nnsearch: warning: %s\n", err.msg);
    phase = 2;
    if (getenv("NNSEARCH_MPI_STATS")) {
        long n = atomic_load(&trials_sent);
        double secs = t_first >= 0 && t_last > t_first ? t_last - t_first : NAN;
        unsigned long long out = ns_dist_bytes_sent(), in = ns_dist_bytes_received();
        fprintf(stderr, "mpi: %ld trials through rank 0 to %d worker rank(s) in %.3f s: %.1f per s; "
                "rank 0 sent %llu and received %llu bytes: %.0f per trial\n", n, ranks - 1, secs,
                n / secs, out, in, n > 0 ? (double)(out + in) / (double)n : NAN);
    }
}

int ns_search_trials_in_flight(void)
{
    return (int)(atomic_load(&trials_sent) - atomic_load(&trials_back));
}

/* ---- workers ------------------------------------------------------------------------------ */

/* Set when one slot of this worker fails: the others stop waiting, and the worker ends
 * with the error (main then ends the job: rank 0 waits for that trial). */
static atomic_int worker_cancel;

/* One trial's transport on a worker: its slot's tag and its checkpoint file, whose last
 * version sent is known by (inode, time, size): each rewrite is a rename, a new inode. */
typedef struct wtrial {
    int tag;
    const char *ckpt;
    int have;
    ino_t ino;
    struct timespec mtime;
    off_t size;
    ns_stop_flag *stop;
    int failed;
    ns_err err;
} wtrial;

/* Whether the checkpoint file changed since the last call (and remembers it). */
static int ckpt_changed(wtrial *t)
{
    struct stat sb;
    if (stat(t->ckpt, &sb))
        return 0;
    if (t->have && sb.st_ino == t->ino && sb.st_size == t->size &&
        sb.st_mtim.tv_sec == t->mtime.tv_sec && sb.st_mtim.tv_nsec == t->mtime.tv_nsec)
        return 0;
    t->have = 1;
    t->ino = sb.st_ino;
    t->size = sb.st_size;
    t->mtime = sb.st_mtim;
    return 1;
}

/* Sends the checkpoint to rank 0, which keeps it in the study folder. */
static int send_ckpt(wtrial *t)
{
    unsigned char *p = NULL;
    size_t n = 0;
    int rc = read_file(t->ckpt, &p, &n, &t->err);
    if (rc || !p)
        return rc;
    msg m = {0};
    put_i64(&m, M_CKPT);
    put_blob(&m, p, n);
    free(p);
    return send_msg(0, t->tag, &m, &t->err);
}

/* The epoch callback on a worker: the record goes to rank 0, which stores it and answers
 * whether the trial is pruned (and whether the study is stopping); then the checkpoint, if
 * the trainer rewrote it since (it writes after this call returns, so what goes now is an
 * earlier epoch's: rank 0's store stays ahead of its checkpoint, as under -j). */
static int worker_epoch(void *user, const ns_epoch_record *rec)
{
    wtrial *t = user;
    if (t->failed)
        return 1;
    msg m = {0};
    put_i64(&m, M_EPOCH);
    put(&m, rec, sizeof *rec);
    rd r = {0};
    int kind = 0, rc = send_msg(0, t->tag, &m, &t->err);
    if (!rc)
        rc = recv_msg(0, t->tag, &worker_cancel, &r, &kind, &t->err);
    if (rc) {
        t->failed = 1;
        return 1;
    }
    int prune = (int)get_i64(&r), stop = (int)get_i64(&r), bad = r.bad || kind != M_VERDICT;
    free((void *)r.p);
    if (bad) {
        bad_msg(&t->err, 0, "verdict");
        t->failed = 1;
        return 1;
    }
    if (stop) /* rank 0 is stopping: checkpoint now, as a signal would */
        atomic_store(t->stop, 1);
    if (ckpt_changed(t) && send_ckpt(t)) {
        t->failed = 1;
        return 1;
    }
    return prune;
}

/* Runs the trial in message r on worker w (its files under scratch) and sends the result. */
static int worker_trial(ns_search *w, ns_stop_flag *stop, int tag, rd *r, const char *scratch,
                        ns_err *err)
{
    long n = (long)get_i64(r);
    int use_cv = (int)get_i64(r), race = (int)get_i64(r), nr = (int)get_i64(r);
    if (r->bad || nr < 0 || nr > w->folds.n)
        return bad_msg(err, 0, "trial");
    double *race_ref = NULL;
    if (nr > 0) {
        if (!(race_ref = malloc((size_t)nr * sizeof *race_ref)))
            return ns_err_set(err, NS_ERUNTIME, "out of memory");
        for (int i = 0; i < nr; i++)
            race_ref[i] = get_f64(r);
    }
    const char *name = get_str(r);
    size_t text_n = 0, ck_n = 0;
    const char *text = get_blob(r, &text_n);
    const void *ck = get_blob(r, &ck_n);
    if (r->bad) {
        free(race_ref);
        return bad_msg(err, 0, "trial");
    }
    char dir[4200], ckpt[4300], model[4300];
    snprintf(dir, sizeof dir, "%s/%ld", scratch, n);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint", dir);
    snprintf(model, sizeof model, "%s/model.nsm", dir);
    int rc = NS_OK;
    if (mkdir(dir, 0777) && errno != EEXIST)
        rc = ns_err_set(err, NS_ERUNTIME, "%s: cannot create: %s", dir, strerror(errno));
    unlink(ckpt);
    unlink(model);
    if (!rc && ck_n)
        rc = write_file(ckpt, ck, ck_n, err);
    if (rc) {
        free(race_ref);
        return rc;
    }
    wtrial t = {.tag = tag, .ckpt = ckpt, .stop = stop};
    ckpt_changed(&t); /* the one rank 0 sent is not sent back */
    ns_config tc;
    ns_err terr = {0};
    ns_run_result res = {0};
    ns_cv_result cv = {0};
    /* a holdout trial's validation predictions go back with its result (select's estimate) */
    const ns_dataset *v = &w->data.val;
    int32_t *pred = NULL;
    if (!use_cv && v->n && v->y && v->task == NS_TASK_CLASSIFY &&
        !(pred = malloc((size_t)v->n * sizeof *pred))) {
        free(race_ref);
        return ns_err_set(err, NS_ERUNTIME, "out of memory");
    }
    int trc = ns_config_parse(&tc, name, text, text_n, &terr);
    if (!trc) {
        if (use_cv) {
            ns_search local = *w; /* the round's incumbent for racing, for this trial only */
            local.race_ref = race_ref;
            trc = ns_cv_run(&local, &local.folds, &tc, race, &cv, &res, &terr);
        } else {
            ns_run_out out = {.checkpoint = ckpt, .model = model, .val_pred = pred};
            trc = ns_run_training(&tc, &w->data, worker_epoch, &t, &out, stop, &res, &terr);
        }
        ns_config_free(&tc);
    }
    free(race_ref);
    if (t.failed) {
        free(pred);
        ns_cv_result_free(&cv);
        if (err)
            *err = t.err;
        return t.err.code ? t.err.code : NS_ERUNTIME;
    }
    unsigned char *ckb = NULL, *modb = NULL;
    size_t ckb_n = 0, modb_n = 0;
    if (!use_cv && res.interrupted)
        rc = read_file(ckpt, &ckb, &ckb_n, err);
    if (!rc && !trc && !res.interrupted)
        rc = read_file(model, &modb, &modb_n, err);
    if (!rc) {
        msg m = {0};
        put_i64(&m, M_RESULT);
        put_i64(&m, trc);
        put(&m, &terr, sizeof terr);
        put(&m, &res, sizeof res);
        put_i64(&m, cv.n_folds);
        put_i64(&m, cv.done);
        put_i64(&m, cv.raced);
        put_i64(&m, cv.n_curve);
        put_f64(&m, cv.mean);
        put_f64(&m, cv.se);
        if (cv.n_folds > 0) {
            put(&m, cv.metric, (size_t)cv.n_folds * sizeof *cv.metric);
            put(&m, cv.best_epoch, (size_t)cv.n_folds * sizeof *cv.best_epoch);
        }
        if (cv.n_curve > 0)
            put(&m, cv.curve, (size_t)cv.n_curve * sizeof *cv.curve);
        const int32_t *pp = use_cv ? cv.pred : pred;
        const long np = use_cv ? cv.n_pred : pred && !trc && !res.interrupted ? v->n : 0;
        put_i64(&m, np);
        if (np > 0)
            put(&m, pp, (size_t)np * sizeof *pp);
        put_blob(&m, ckb, ckb_n);
        put_blob(&m, modb, modb_n);
        rc = send_msg(0, tag, &m, err);
    }
    free(ckb);
    free(modb);
    free(pred);
    ns_cv_result_free(&cv);
    unlink(ckpt);
    unlink(model);
    rmdir(dir);
    return rc;
}

int ns_search_worker(int rank, ns_stop_flag *stop, ns_err *err)
{
    char host[256], version[160];
    ns_dist_host(host, sizeof host);
    version_line(version, sizeof version, 1);
    rd r;
    int kind, rc = recv_msg(0, TAG_SETUP, NULL, &r, &kind, err);
    if (rc)
        return rc;
    if (kind == M_QUIT) { /* rank 0 ran no study (another command, or it failed first) */
        free((void *)r.p);
        return NS_OK;
    }
    (void)get_str(&r); /* rank 0's version: rank 0 compares */
    int P = (int)get_i64(&r);
    ns_search_opts o = {.parallel = P, .quiet = 1, .stop = stop};
    ns_search w;
    memset(&w, 0, sizeof w);
    w.opts = &o;
    w.metric = (ns_metric)get_i64(&r);
    w.higher = (int)get_i64(&r);
    const char *name = get_str(&r);
    size_t text_n = 0;
    const char *text = get_blob(&r, &text_n);
    o.config_path = name;
    ns_err why = {0};
    int ok = 0, loaded = 0;
    if (r.bad || kind != M_SETUP || P < 1 || P > 4096)
        ns_err_set(&why, NS_EINPUT, "it cannot read rank 0's study (another nnsearch version?)");
    else if (!ns_config_parse(&w.base, name, text, text_n, &why)) {
        loaded = 1;
        ok = !ns_search_prepare_worker(&w, &why);
    }
    msg m = {0};
    put_i64(&m, M_HELLO);
    put_str(&m, version);
    put_str(&m, host);
    put_i64(&m, ok);
    put_i64(&m, ok ? (int64_t)data_hash(&w.data) : 0);
    put_str(&m, why.msg);
    free((void *)r.p);
    if ((rc = send_msg(0, TAG_HELLO, &m, err)) || (rc = recv_msg(0, TAG_SETUP, NULL, &r, &kind, err))) {
        if (loaded)
            ns_search_free(&w);
        return rc;
    }
    int go = kind == M_START && get_i64(&r) == 1 && !r.bad;
    free((void *)r.p);
    if (!go || !ok) { /* refused: rank 0 says why */
        if (loaded)
            ns_search_free(&w);
        return NS_OK;
    }
    /* each trial's checkpoint and model pass through this folder on the way to rank 0 */
    char scratch[4096];
    const char *tmp = getenv("TMPDIR");
    snprintf(scratch, sizeof scratch, "%s/nnsearch-rank%d-%ld", tmp && *tmp ? tmp : "/tmp", rank,
             (long)getpid());
    if (mkdir(scratch, 0700) && errno != EEXIST) {
        rc = ns_err_set(err, NS_ERUNTIME, "rank %d on %s: %s: cannot create: %s", rank, host, scratch,
                        strerror(errno));
        ns_search_free(&w);
        return rc;
    }
    int failed = 0;
    ns_err first = {0};
#pragma omp parallel num_threads(P)
    {
        const int tag = TAG_SLOT + omp_get_thread_num();
        for (;;) {
            rd q = {0};
            int kd = 0;
            ns_err e = {0};
            int trc = recv_msg(0, tag, &worker_cancel, &q, &kd, &e);
            if (!trc && kd == M_QUIT) {
                free((void *)q.p);
                break;
            }
            if (!trc)
                trc = kd == M_TRIAL ? worker_trial(&w, stop, tag, &q, scratch, &e) : bad_msg(&e, 0, "trial");
            free((void *)q.p);
            if (trc) {
                atomic_store(&worker_cancel, 1);
#pragma omp critical(ns_worker_fail)
                if (!failed) {
                    failed = trc;
                    first = e;
                }
                break;
            }
        }
    }
    rmdir(scratch);
    ns_search_free(&w);
    if (failed)
        return ns_err_set(err, failed, "rank %d on %s: %s", rank, host, first.msg);
    return NS_OK;
}
