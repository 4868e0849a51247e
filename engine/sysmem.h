/* sysmem.h — how much memory this process may use, for refusing a run before it allocates
 * what the machine cannot hold. Not an allocator and not a measure of free memory: free
 * memory changes from one moment to the next, and a trial's fate must not. */
#ifndef NS_SYSMEM_H
#define NS_SYSMEM_H

#include <stddef.h>
#include <stdint.h>

/* The most this process may allocate: the smallest of the physical RAM (sysconf), its
 * cgroup's memory limit (a container's) and the address-space and data-segment limits
 * (RLIMIT_AS, RLIMIT_DATA) when they are set, the latter less what the process already
 * maps. *what names the binding one ("physical
 * RAM", "ulimit -v, the address-space limit, less what is mapped", or the same of -d).
 * UINT64_MAX with *what "no known limit" when none can be read. */
uint64_t ns_sysmem_limit(const char **what);

/* Writes bytes as "12.3 GiB" (B, KiB, MiB, GiB, TiB, PiB) into buf; returns buf. */
const char *ns_sysmem_human(uint64_t bytes, char *buf, size_t cap);

#endif
