/* stop.h — the stop request: one flag that a SIGINT/SIGTERM handler sets and every
 * trainer thread polls (the driver's pool, the CLI's train). Not the signal handling
 * itself: that is main()'s. */
#ifndef NS_STOP_H
#define NS_STOP_H

#include <stdatomic.h>

/* A lock-free atomic int: the one type that both a signal handler (C11 7.14.1.1) and
 * other threads (a volatile int or sig_atomic_t read by an OpenMP worker while the handler
 * writes it on the main thread is a data race, C11 5.1.2.4) may touch. */
typedef atomic_int ns_stop_flag;
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the stop flag must be lock-free to be set in a signal handler");

/* Whether stop (NULL: never) has been raised. Relaxed: the flag publishes no other data. */
static inline int ns_stop_requested(const ns_stop_flag *stop)
{
    return stop && atomic_load_explicit(stop, memory_order_relaxed);
}

#endif
