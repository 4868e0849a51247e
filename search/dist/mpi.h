/* mpi.h — the transport under a study that spans processes and hosts (mpirun, srun): MPI's
 * start and end, and whole byte messages between two ranks. It knows nothing of trials
 * (search/stages/remote.c speaks the study's protocol over it). Built without MPI, every
 * call but ns_dist_compiled and ns_dist_launched reports that MPI is not compiled in. */
#ifndef NS_DIST_MPI_H
#define NS_DIST_MPI_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"

/* 1 when this build has MPI (CMake option NS_MPI found it), else 0. */
int ns_dist_compiled(void);
/* The MPI library's name and version in one line ("Open MPI v4.1.4, ..."), or "none". */
void ns_dist_library(char *out, size_t cap);
/* Whether a launcher (mpirun, srun) started this process: its rank is in the environment
 * (OMPI_COMM_WORLD_RANK, PMIX_RANK or PMI_RANK). A plain `nnsearch` never starts MPI. */
int ns_dist_launched(void);

/* MPI_Init_thread asking for MPI_THREAD_MULTIPLE (the pool's threads each talk to their
 * own worker): *rank and *size of MPI_COMM_WORLD. NS_ERUNTIME when MPI fails or gives less
 * than MPI_THREAD_MULTIPLE. */
int ns_dist_init(int *rank, int *size, ns_err *err);
/* MPI_Finalize, once, after ns_dist_init succeeded; nothing otherwise. */
void ns_dist_finalize(void);
/* MPI_Abort: ends every rank of the job with code (a rank that cannot go on, while others
 * wait for it); nothing when MPI is not running. Only main() calls it. */
void ns_dist_abort(int code);
/* This host's name as MPI knows it (for messages). */
void ns_dist_host(char *out, size_t cap);

/* Sends len bytes of buf to rank `to` with `tag` (blocking until buf may be reused). */
int ns_dist_send(int to, int tag, const void *buf, size_t len, ns_err *err);
/* Waits for the next message from rank `from` with `tag` and returns it whole in *buf
 * (caller frees; never NULL on success) and *len. Waiting polls with growing pauses
 * (mpi.c: never more than NS_DIST_MAX_PAUSE_US, nor than NS_DIST_LATENCY_SHARE of the
 * time waited) instead of spinning: an idle rank leaves its core to
 * the ranks that train. One thread at a time may wait on a (from, tag) pair. A set *cancel
 * (may be NULL) ends the wait with NS_ERUNTIME: another thread gave up. */
int ns_dist_recv(int from, int tag, const atomic_int *cancel, void **buf, size_t *len,
                 ns_err *err);
#define NS_DIST_MAX_PAUSE_US 20000
#define NS_DIST_LATENCY_SHARE 0.05

/* Bytes this process sent and received since ns_dist_init (the payloads). */
uint64_t ns_dist_bytes_sent(void);
uint64_t ns_dist_bytes_received(void);

#endif
