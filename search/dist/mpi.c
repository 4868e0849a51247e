/* mpi.c — the MPI transport (search/dist/mpi.h): start, end, and whole byte messages
 * between two ranks with polled, pausing receives. Not the study's protocol:
 * search/stages/remote.c. Without NS_HAVE_MPI the same calls report that MPI is not
 * compiled in, so that nothing above needs an #ifdef. */
#include "search/dist/mpi.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef NS_HAVE_MPI
#include <mpi.h>
#endif

int ns_dist_launched(void)
{
    return getenv("OMPI_COMM_WORLD_RANK") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

#ifdef NS_HAVE_MPI

static int started, finalized;
static atomic_uint_fast64_t bytes_out, bytes_in;

int ns_dist_compiled(void) { return 1; }

void ns_dist_library(char *out, size_t cap)
{
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (MPI_Get_library_version(v, &len) != MPI_SUCCESS)
        snprintf(v, sizeof v, "MPI (version unknown)");
    v[strcspn(v, "\n")] = 0;
    snprintf(out, cap, "%s", v);
}

/* MPI's own words for an error code. */
static int mpi_fail(ns_err *err, int code, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, msg, &len) != MPI_SUCCESS)
        snprintf(msg, sizeof msg, "error %d", code);
    return ns_err_set(err, NS_ERUNTIME, "MPI: %s: %s", what, msg);
}

int ns_dist_init(int *rank, int *size, ns_err *err)
{
    int provided = 0, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided);
    if (rc != MPI_SUCCESS)
        return ns_err_set(err, NS_ERUNTIME, "MPI: cannot start (MPI_Init_thread failed)");
    started = 1;
    /* errors come back as codes: a library never aborts the job on its own */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (provided < MPI_THREAD_MULTIPLE)
        return ns_err_set(err, NS_ERUNTIME, "MPI: this MPI library gives threads level %d, not "
                          "MPI_THREAD_MULTIPLE; nnsearch needs an MPI built with thread support "
                          "(Debian's OpenMPI has it)", provided);
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    return NS_OK;
}

void ns_dist_finalize(void)
{
    if (started && !finalized) {
        finalized = 1;
        MPI_Finalize();
    }
}

void ns_dist_abort(int code)
{
    if (started && !finalized)
        MPI_Abort(MPI_COMM_WORLD, code);
}

void ns_dist_host(char *out, size_t cap)
{
    char name[MPI_MAX_PROCESSOR_NAME];
    int len = 0;
    if (MPI_Get_processor_name(name, &len) != MPI_SUCCESS)
        snprintf(name, sizeof name, "?");
    snprintf(out, cap, "%s", name);
}

int ns_dist_send(int to, int tag, const void *buf, size_t len, ns_err *err)
{
    if (len > (size_t)0x7fffffff)
        return ns_err_set(err, NS_ERUNTIME, "MPI: a message of %zu bytes to rank %d is over 2 GiB",
                          len, to);
    int rc = MPI_Send(buf, (int)len, MPI_BYTE, to, tag, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS)
        return mpi_fail(err, rc, "send");
    atomic_fetch_add(&bytes_out, len);
    return NS_OK;
}

int ns_dist_recv(int from, int tag, const atomic_int *cancel, void **buf, size_t *len,
                 ns_err *err)
{
    MPI_Status st;
    int flag = 0, rc, polls = 0;
    long pause_ns = 20000, waited_ns = 0;
    /* A reply to a message just sent comes within microseconds: a short spin first; then
     * pauses that double up to 1 ms, and on a long wait (a trial training for seconds) up
     * to NS_DIST_LATENCY_SHARE of the time waited so far (at most NS_DIST_MAX_PAUSE_US):
     * a worker waiting for its next trial, or one of rank 0's many threads waiting for a
     * long trial, costs its host next to nothing (a blocking MPI_Recv spins a core), and
     * the wake-up comes at most that share of the wait late. */
    for (;;) {
        if ((rc = MPI_Iprobe(from, tag, MPI_COMM_WORLD, &flag, &st)) != MPI_SUCCESS)
            return mpi_fail(err, rc, "probe");
        if (flag)
            break;
        if (cancel && atomic_load(cancel))
            return ns_err_set(err, NS_ERUNTIME, "MPI: the wait for rank %d was given up", from);
        if (++polls < 64)
            continue;
        struct timespec ts = {0, pause_ns};
        nanosleep(&ts, NULL);
        waited_ns += pause_ns;
        long cap = (long)(waited_ns * NS_DIST_LATENCY_SHARE);
        if (cap < 1000000L)
            cap = 1000000L;
        if (cap > NS_DIST_MAX_PAUSE_US * 1000L)
            cap = NS_DIST_MAX_PAUSE_US * 1000L;
        pause_ns = pause_ns * 2 < cap ? pause_ns * 2 : cap;
    }
    int count = 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    unsigned char *p = malloc(count > 0 ? (size_t)count : 1);
    if (!p)
        return ns_err_set(err, NS_ERUNTIME, "out of memory receiving %d bytes from rank %d", count, from);
    if ((rc = MPI_Recv(p, count, MPI_BYTE, from, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE)) != MPI_SUCCESS) {
        free(p);
        return mpi_fail(err, rc, "receive");
    }
    atomic_fetch_add(&bytes_in, (uint_fast64_t)count);
    *buf = p;
    *len = (size_t)count;
    return NS_OK;
}

uint64_t ns_dist_bytes_sent(void) { return atomic_load(&bytes_out); }
uint64_t ns_dist_bytes_received(void) { return atomic_load(&bytes_in); }

#else /* no MPI in this build */

static int none(ns_err *err)
{
    return ns_err_set(err, NS_ERUNTIME, "this nnsearch was built without MPI (see nnsearch --version); "
                      "install OpenMPI (libopenmpi-dev) and rebuild to run under mpirun or srun");
}

int ns_dist_compiled(void) { return 0; }
void ns_dist_library(char *out, size_t cap) { snprintf(out, cap, "none"); }
int ns_dist_init(int *rank, int *size, ns_err *err)
{
    *rank = 0;
    *size = 1;
    return none(err);
}
void ns_dist_finalize(void) {}
void ns_dist_abort(int code) { (void)code; }
void ns_dist_host(char *out, size_t cap) { snprintf(out, cap, "?"); }
int ns_dist_send(int to, int tag, const void *buf, size_t len, ns_err *err)
{
    (void)to, (void)tag, (void)buf, (void)len;
    return none(err);
}
int ns_dist_recv(int from, int tag, const atomic_int *cancel, void **buf, size_t *len,
                 ns_err *err)
{
    (void)from, (void)tag, (void)cancel;
    *buf = NULL;
    *len = 0;
    return none(err);
}
uint64_t ns_dist_bytes_sent(void) { return 0; }
uint64_t ns_dist_bytes_received(void) { return 0; }

#endif
