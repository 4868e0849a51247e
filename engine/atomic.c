/* atomic.c — see atomic.h. The temporary name is drawn here rather than by mkstemp so the
 * file gets the umask's permissions; O_EXCL makes the name ours. */
#include "engine/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/rng.h"

static int open_temp(const char *path, char *tmp, size_t cap)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    static atomic_ullong counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    for (int attempt = 0; attempt < 100; attempt++) {
        uint64_t x = ns_hash64((uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^
                               (uint64_t)getpid() << 40 ^
                               atomic_fetch_add(&counter, 1) * 0x9E3779B97F4A7C15u);
        char suf[7];
        for (int i = 0; i < 6; i++, x /= 62)
            suf[i] = al[x % 62];
        suf[6] = '\0';
        snprintf(tmp, cap, "%s.tmp.%s", path, suf);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    errno = EEXIST;
    return -1;
}

/* Makes the rename durable; best effort (some file systems refuse fsync on a folder, and
 * the data is safe either way). */
static void sync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

static void atomic_clear(ns_atomic_file *a)
{
    free(a->path);
    free(a->tmp);
    memset(a, 0, sizeof *a);
}

int ns_atomic_check_dest(const char *path, ns_err *err)
{
    struct stat st;
    if (!path[0])
        return ns_err_set(err, NS_EINPUT, "an empty output path; name a file to write");
    if (path[strlen(path) - 1] == '/' || (!stat(path, &st) && !S_ISREG(st.st_mode)))
        return ns_err_set(err, NS_EINPUT, "%s: is %s, not a file; name a file to write (the "
                          "output replaces a file whole, and would replace this)", path,
                          path[strlen(path) - 1] == '/' || S_ISDIR(st.st_mode) ? "a folder"
                          : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)          ? "a device"
                          : S_ISFIFO(st.st_mode)                                ? "a pipe"
                                                                                : "not a regular file");
    return NS_OK;
}

int ns_atomic_check_not_input(const char *dest, const char *const *inputs, int n, ns_err *err)
{
    struct stat d, s;
    if (stat(dest, &d))
        return NS_OK; /* a new file replaces nothing */
    for (int i = 0; i < n; i++)
        if (inputs[i] && !stat(inputs[i], &s) && s.st_dev == d.st_dev && s.st_ino == d.st_ino)
            return ns_err_set(err, NS_EINPUT, "%s: is %s, which this command reads; write the "
                              "output to another file", dest, inputs[i]);
    return NS_OK;
}

int ns_atomic_open(ns_atomic_file *a, const char *path, ns_err *err)
{
    memset(a, 0, sizeof *a);
    /* the rename would put a regular file in place of a device such as /dev/null (as
     * root), or fail on a folder only after all the work */
    int rc = ns_atomic_check_dest(path, err);
    if (rc) {
        errno = EINVAL;
        return rc;
    }
    size_t cap = strlen(path) + 16;
    a->path = strdup(path);
    a->tmp = malloc(cap);
    if (!a->path || !a->tmp) {
        atomic_clear(a);
        return ns_err_set(err, NS_ERUNTIME, "%s: out of memory", path);
    }
    int fd = open_temp(path, a->tmp, cap);
    if (fd < 0) {
        int e = errno;
        atomic_clear(a);
        ns_err_set(err, NS_ERUNTIME, "%s: cannot create a temporary file next to it: %s; "
                   "check that the folder exists and is writable", path, strerror(e));
        errno = e;
        return NS_ERUNTIME;
    }
    if (!(a->f = fdopen(fd, "wb"))) {
        int e = errno;
        close(fd);
        unlink(a->tmp);
        atomic_clear(a);
        ns_err_set(err, NS_ERUNTIME, "%s: cannot write: %s", path, strerror(e));
        errno = e;
        return NS_ERUNTIME;
    }
    return NS_OK;
}

int ns_atomic_commit(ns_atomic_file *a, ns_err *err)
{
    int e = 0;
    const char *step = "write";
    if (ferror(a->f) || fflush(a->f))
        e = errno ? errno : EIO;
    if (!e && fsync(fileno(a->f))) {
        e = errno;
        step = "sync";
    }
    if (fclose(a->f) && !e)
        e = errno;
    a->f = NULL;
    if (!e && rename(a->tmp, a->path)) {
        e = errno;
        step = "rename the temporary file over";
    }
    int rc = NS_OK;
    if (e) {
        unlink(a->tmp);
        rc = ns_err_set(err, NS_ERUNTIME, "%s: cannot %s it: %s; check free space and "
                        "permissions of the folder", a->path, step, strerror(e));
    } else {
        sync_parent(a->path);
    }
    atomic_clear(a);
    errno = e;
    return rc;
}

void ns_atomic_abort(ns_atomic_file *a)
{
    if (a->f)
        fclose(a->f);
    if (a->tmp)
        unlink(a->tmp);
    atomic_clear(a);
}

void ns_atomic_remove_stale(const char *path)
{
    size_t n = strlen(path);
    char *pattern = malloc(n + 8);
    if (!pattern)
        return;
    memcpy(pattern, path, n);
    memcpy(pattern + n, ".tmp.*", 7);
    glob_t g;
    if (glob(pattern, GLOB_NOSORT, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++)
            unlink(g.gl_pathv[i]);
    globfree(&g);
    free(pattern);
}

int ns_mkdir_p(const char *dir, char *failed, size_t cap)
{
    size_t n = strlen(dir);
    if (!n) { /* no folder to make; the loop below starts past the first character */
        if (failed && cap)
            failed[0] = '\0';
        return ENOENT;
    }
    char *p = malloc(n + 1);
    if (!p)
        return ENOMEM;
    memcpy(p, dir, n + 1);
    int e = 0;
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c != '\0')
            continue;
        char saved = *c;
        *c = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            e = errno;
            if (failed && cap)
                snprintf(failed, cap, "%s", p);
            break;
        }
        *c = saved;
        if (saved == '\0')
            break;
    }
    free(p);
    return e;
}
