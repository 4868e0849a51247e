/* sysmem.c — the memory this process may use (sysmem.h): physical RAM and the rlimits,
 * read fresh on each call (a user may lower ulimit between runs, never during one). */
#include "engine/sysmem.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Bytes the process maps now, from /proc/self/statm: field 1 is the whole address space
 * (what RLIMIT_AS counts), field 6 data and stack (what RLIMIT_DATA counts); 0 when
 * unknown. */
static uint64_t mapped_now(int field)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long v[7] = {0};
    if (!f)
        return 0;
    int got = fscanf(f, "%llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
                     &v[5], &v[6]);
    fclose(f);
    long ps = sysconf(_SC_PAGESIZE);
    if (got < field || ps <= 0)
        return 0;
    return (uint64_t)v[field - 1] * (uint64_t)ps;
}

/* The memory limit of this process's cgroup (v2 memory.max, else v1
 * memory.limit_in_bytes), UINT64_MAX when there is none or it cannot be read: in a
 * container it, not the host's RAM that sysconf reports, is what the process may use. */
static uint64_t cgroup_limit(void)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    char line[1024], path[1200];
    uint64_t best = UINT64_MAX;
    if (!f)
        return best;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        const char *rel = NULL, *file = NULL, *root = NULL;
        if (!strncmp(line, "0::", 3))
            rel = line + 3, root = "/sys/fs/cgroup", file = "memory.max";
        else if ((rel = strstr(line, ":memory:")) != NULL)
            rel += 8, root = "/sys/fs/cgroup/memory", file = "memory.limit_in_bytes";
        else
            continue;
        snprintf(path, sizeof path, "%s%s/%s", root, strcmp(rel, "/") ? rel : "", file);
        FILE *g = fopen(path, "r");
        unsigned long long v;
        if (g && fscanf(g, "%llu", &v) == 1 && v > 0 && v < best) /* "max": no limit */
            best = v;
        if (g)
            fclose(g);
    }
    fclose(f);
    return best;
}

uint64_t ns_sysmem_limit(const char **what)
{
    uint64_t best = UINT64_MAX;
    *what = "no known limit";
    long pages = sysconf(_SC_PHYS_PAGES), ps = sysconf(_SC_PAGESIZE);
    if (pages > 0 && ps > 0) {
        best = (uint64_t)pages * (uint64_t)ps;
        *what = "physical RAM";
    }
    uint64_t cg = cgroup_limit();
    if (cg < best) {
        best = cg;
        *what = "the cgroup's memory limit";
    }
    static const struct {
        int res, field;
        const char *name;
    } lims[] = {{RLIMIT_AS, 1, "ulimit -v, the address-space limit, less what is mapped"},
                {RLIMIT_DATA, 6, "ulimit -d, the data-segment limit, less what is mapped"}};
    for (size_t i = 0; i < sizeof lims / sizeof lims[0]; i++) {
        struct rlimit rl;
        if (getrlimit(lims[i].res, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
            continue;
        /* what is mapped already (code, libraries, the data set) counts against the limit */
        uint64_t used = mapped_now(lims[i].field);
        uint64_t left = (uint64_t)rl.rlim_cur > used ? (uint64_t)rl.rlim_cur - used : 0;
        if (left < best) {
            best = left;
            *what = lims[i].name;
        }
    }
    return best;
}

const char *ns_sysmem_human(uint64_t bytes, char *buf, size_t cap)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 6)
        v /= 1024.0, u++;
    if (u == 0)
        snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, cap, "%.1f %s", v, unit[u]);
    return buf;
}
