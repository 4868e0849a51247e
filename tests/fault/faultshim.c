/* faultshim.c — an LD_PRELOAD library for scripts/faultwalk: counts the allocations and the
 * writes to regular files a program makes from main() on and fails the Nth of either,
 * allocations with NULL/ENOMEM, writes with ENOSPC (a full disk). It chains to the next
 * definition (libc, or the sanitizer runtime), so it works under ASan as well.
 * Not a test by itself and not part of nnsearch.
 *
 * Environment:
 *   NS_FAULT_ALLOC=N   fail the Nth allocation (malloc, calloc, realloc, aligned_alloc,
 *                      posix_memalign, memalign; strdup and the like come through malloc)
 *   NS_FAULT_WRITE=N   fail the Nth write event on a regular file other than stdin/out/err:
 *                      write, pwrite, writev, fsync, fdatasync, mkdir of a new folder,
 *                      open creating, fopen for writing
 *                      and the stdio calls fwrite, fputs, fputc, putc, fprintf,
 *                      vfprintf, and fflush/fclose with output still buffered (a failing
 *                      fflush/fclose drops that output, as a full disk would)
 *   NS_FAULT_STICKY=1  fail every event of that kind from the Nth on (a disk that stays full)
 *   NS_FAULT_PATH=S    count only the writes to files whose path contains S (e.g. model.nsm,
 *                      which also matches its temporary model.nsm.tmp.XXXXXX): a test can
 *                      aim at one file whatever else the program writes
 *   NS_FAULT_IN=S      count only the events whose call stack passes through a library
 *                      whose file name contains S (e.g. libyaml: its allocations only)
 *   NS_FAULT_LOG=FILE  appends "fault KIND #N CALL at FRAMES" when a fault fires (frames as
 *                      module+offset, for addr2line) and "counts allocs=A writes=W" at exit */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

enum { K_ALLOC, K_WRITE };
static const char *const KIND[2] = {"alloc", "write"};
static atomic_long count[2];
static long fail_at[2]; /* 0: never */
static int sticky;
static const char *path_filter; /* NS_FAULT_PATH or NULL */
static const char *module_filter; /* NS_FAULT_IN or NULL */
static atomic_int armed;
static int log_fd = -1;
static __thread int inside; /* the shim's own calls are not counted */

/* ---- the next definitions ---------------------------------------------------------- */

static void *(*r_malloc)(size_t);
static void *(*r_calloc)(size_t, size_t);
static void *(*r_realloc)(void *, size_t);
static void (*r_free)(void *);
static void *(*r_aligned_alloc)(size_t, size_t);
static void *(*r_memalign)(size_t, size_t);
static int (*r_posix_memalign)(void **, size_t, size_t);
static ssize_t (*r_write)(int, const void *, size_t);
static ssize_t (*r_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*r_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*r_writev)(int, const struct iovec *, int);
static int (*r_fsync)(int);
static int (*r_fdatasync)(int);
static int (*r_mkdir)(const char *, mode_t);
static int (*r_open)(const char *, int, ...);
static int (*r_open64)(const char *, int, ...);
static FILE *(*r_fopen)(const char *, const char *);
static size_t (*r_fwrite)(const void *, size_t, size_t, FILE *);
static int (*r_fputs)(const char *, FILE *);
static int (*r_fputc)(int, FILE *);
static int (*r_putc)(int, FILE *);
static int (*r_vfprintf)(FILE *, const char *, va_list);
static int (*r_fflush)(FILE *);
static int (*r_fclose)(FILE *);
static void (*r__exit)(int);
static int (*r_libc_start_main)(int (*)(int, char **, char **), int, char **, void (*)(void),
                                void (*)(void), void (*)(void), void *);

/* dlsym may allocate before malloc is known: those requests come from a static arena. */
static _Alignas(16) char boot[1 << 16];
static size_t boot_used;
static int resolving;

static void *boot_alloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n > sizeof boot - boot_used)
        return NULL;
    void *p = boot + boot_used;
    boot_used += n;
    return p;
}
static int in_boot(const void *p) { return (const char *)p >= boot && (const char *)p < boot + sizeof boot; }

#define NEXT(name) r_##name = (__typeof__(r_##name))dlsym(RTLD_NEXT, #name)
static void resolve(void)
{
    if (r_malloc || resolving)
        return;
    resolving = 1;
    NEXT(calloc);
    NEXT(realloc);
    NEXT(free);
    NEXT(aligned_alloc);
    NEXT(memalign);
    NEXT(posix_memalign);
    NEXT(write);
    NEXT(pwrite);
    NEXT(pwrite64);
    NEXT(writev);
    NEXT(fsync);
    NEXT(fdatasync);
    NEXT(mkdir);
    NEXT(open);
    NEXT(open64);
    NEXT(fopen);
    NEXT(fwrite);
    NEXT(fputs);
    NEXT(fputc);
    NEXT(putc);
    NEXT(vfprintf);
    NEXT(fflush);
    NEXT(fclose);
    NEXT(_exit);
    r_libc_start_main = (__typeof__(r_libc_start_main))dlsym(RTLD_NEXT, "__libc_start_main");
    NEXT(malloc); /* last: it marks the table complete */
    resolving = 0;
}

/* A wrapper may run before the constructor (the ASan runtime opens its log file while it
 * starts): the next definitions are looked up then. */
#define NEED(name)              \
    do {                        \
        if (!r_##name)          \
            resolve();          \
    } while (0)

/* ---- counting and the log ------------------------------------------------------------ */

static void log_str(const char *s)
{
    if (log_fd >= 0 && r_write)
        (void)!r_write(log_fd, s, strlen(s));
}

static void log_counts(void)
{
    char line[128];
    snprintf(line, sizeof line, "counts allocs=%ld writes=%ld\n", atomic_load(&count[K_ALLOC]),
             atomic_load(&count[K_WRITE]));
    log_str(line);
}

static void note(int k, long n, const char *call)
{
    char line[2048];
    int len = snprintf(line, sizeof line, "fault %s #%ld %s at", KIND[k], n, call);
    void *frames[12];
    int nf = backtrace(frames, 12);
    Dl_info self;
    dladdr((void *)note, &self);
    for (int i = 0; i < nf && len < (int)sizeof line - 200; i++) {
        Dl_info di;
        if (dladdr(frames[i], &di) && di.dli_fname && di.dli_fbase != self.dli_fbase) {
            const char *base = strrchr(di.dli_fname, '/');
            len += snprintf(line + len, sizeof line - len, " %s+0x%lx", base ? base + 1 : di.dli_fname,
                            (unsigned long)((uintptr_t)frames[i] - (uintptr_t)di.dli_fbase));
        }
    }
    snprintf(line + len, sizeof line - len, "\n");
    log_str(line);
}

/* Whether the caller's stack passes through a library named like NS_FAULT_IN. */
static int called_from_module(void)
{
    void *frames[24];
    int nf = backtrace(frames, 24);
    for (int i = 0; i < nf; i++) {
        Dl_info di;
        if (dladdr(frames[i], &di) && di.dli_fname && strstr(di.dli_fname, module_filter))
            return 1;
    }
    return 0;
}

static int should_fail(int k, const char *call)
{
    if (!atomic_load(&armed) || inside)
        return 0;
    if (module_filter) {
        inside = 1;
        int in = called_from_module();
        inside = 0;
        if (!in)
            return 0;
    }
    long n = atomic_fetch_add(&count[k], 1) + 1;
    if (!fail_at[k] || (n != fail_at[k] && !(sticky && n > fail_at[k])))
        return 0;
    inside = 1;
    if (n == fail_at[k])
        note(k, n, call);
    inside = 0;
    return 1;
}

static long env_long(const char *name)
{
    const char *v = getenv(name);
    return v ? strtol(v, NULL, 10) : 0;
}

__attribute__((constructor)) static void shim_init(void)
{
    resolve();
    inside = 1;
    fail_at[K_ALLOC] = env_long("NS_FAULT_ALLOC");
    fail_at[K_WRITE] = env_long("NS_FAULT_WRITE");
    sticky = env_long("NS_FAULT_STICKY") != 0;
    module_filter = getenv("NS_FAULT_IN");
    if (module_filter && !*module_filter)
        module_filter = NULL;
    path_filter = getenv("NS_FAULT_PATH");
    if (path_filter && !*path_filter)
        path_filter = NULL;
    const char *log = getenv("NS_FAULT_LOG");
    if (log && *log)
        log_fd = r_open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    void *f[2];
    backtrace(f, 2); /* loads the unwinder now, not inside a failing malloc */
    inside = 0;
}

__attribute__((destructor)) static void shim_fini(void) { log_counts(); }

/* Counting starts at main: what the loader and library constructors allocate is not the
 * program's to handle. */
static int (*real_main)(int, char **, char **);
static int counted_main(int argc, char **argv, char **envp)
{
    atomic_store(&armed, 1);
    return real_main(argc, argv, envp);
}

int __libc_start_main(int (*main)(int, char **, char **), int argc, char **argv,
                      void (*init)(void), void (*fini)(void), void (*rtld_fini)(void),
                      void *stack_end)
{
    resolve();
    real_main = main;
    return r_libc_start_main(counted_main, argc, argv, init, fini, rtld_fini, stack_end);
}

void _exit(int status)
{
    NEED(_exit);
    log_counts();
    r__exit(status);
    __builtin_unreachable();
}

/* ---- allocations ----------------------------------------------------------------------- */

void *malloc(size_t n)
{
    if (!r_malloc) {
        resolve();
        if (!r_malloc)
            return boot_alloc(n);
    }
    if (should_fail(K_ALLOC, "malloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return r_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    if (!r_malloc) {
        resolve();
        if (!r_malloc)
            return n && size > sizeof boot / n ? NULL : boot_alloc(n * size); /* zeroed */
    }
    if (should_fail(K_ALLOC, "calloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return r_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    if (!r_malloc)
        resolve();
    if (in_boot(p)) { /* move it out of the arena */
        void *q = malloc(n);
        if (q)
            memcpy(q, p, n < (size_t)(boot + sizeof boot - (char *)p) ? n : (size_t)(boot + sizeof boot - (char *)p));
        return q;
    }
    if (n && should_fail(K_ALLOC, "realloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return r_realloc(p, n);
}

void free(void *p)
{
    if (!p || in_boot(p))
        return;
    if (!r_free)
        resolve();
    r_free(p);
}

void *aligned_alloc(size_t a, size_t n)
{
    NEED(aligned_alloc);
    if (should_fail(K_ALLOC, "aligned_alloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return r_aligned_alloc(a, n);
}

void *memalign(size_t a, size_t n)
{
    NEED(memalign);
    if (should_fail(K_ALLOC, "memalign")) {
        errno = ENOMEM;
        return NULL;
    }
    return r_memalign(a, n);
}

int posix_memalign(void **p, size_t a, size_t n)
{
    NEED(posix_memalign);
    if (should_fail(K_ALLOC, "posix_memalign"))
        return ENOMEM;
    return r_posix_memalign(p, a, n);
}

/* ---- writes ---------------------------------------------------------------------------- */

static int path_wanted(const char *path) { return !path_filter || (path && strstr(path, path_filter)); }

static int file_fd(int fd)
{
    struct stat st;
    if (fd <= 2 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    if (!path_filter)
        return 1;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0)
        return 0;
    path[n] = 0;
    return path_wanted(path);
}
static int file_stream(FILE *f) { return f && f != stdout && f != stderr && file_fd(fileno(f)); }
static int buffered(FILE *f) { return f->_IO_write_ptr > f->_IO_write_base; }
static void stream_failed(FILE *f)
{
    f->_flags |= _IO_ERR_SEEN; /* what ferror() reads, as after a real failed write */
    errno = ENOSPC;
}

#define FAIL_FD(fd, call)                                     \
    do {                                                      \
        if (file_fd(fd) && should_fail(K_WRITE, call)) {      \
            errno = ENOSPC;                                   \
            return -1;                                        \
        }                                                     \
    } while (0)

ssize_t write(int fd, const void *b, size_t n)
{
    NEED(write);
    FAIL_FD(fd, "write");
    return r_write(fd, b, n);
}
ssize_t pwrite(int fd, const void *b, size_t n, off_t off)
{
    NEED(pwrite);
    FAIL_FD(fd, "pwrite");
    return r_pwrite(fd, b, n, off);
}
ssize_t pwrite64(int fd, const void *b, size_t n, off_t off)
{
    NEED(pwrite64);
    FAIL_FD(fd, "pwrite64");
    return r_pwrite64(fd, b, n, off);
}
ssize_t writev(int fd, const struct iovec *v, int n)
{
    NEED(writev);
    FAIL_FD(fd, "writev");
    return r_writev(fd, v, n);
}
int fsync(int fd)
{
    NEED(fsync);
    FAIL_FD(fd, "fsync");
    return r_fsync(fd);
}
int fdatasync(int fd)
{
    NEED(fdatasync);
    FAIL_FD(fd, "fdatasync");
    return r_fdatasync(fd);
}

int mkdir(const char *path, mode_t mode)
{
    NEED(mkdir);
    /* a full disk still answers EEXIST for a folder that is there */
    if (access(path, F_OK) != 0 && path_wanted(path) && should_fail(K_WRITE, "mkdir")) {
        errno = ENOSPC;
        return -1;
    }
    return r_mkdir(path, mode);
}

static int open_with(int (*next)(const char *, int, ...), const char *call, const char *path,
                     int flags, va_list ap)
{
    mode_t mode = flags & (O_CREAT | O_TMPFILE) ? va_arg(ap, mode_t) : 0;
    if ((flags & O_CREAT) && path_wanted(path) && should_fail(K_WRITE, call)) {
        errno = ENOSPC;
        return -1;
    }
    return next(path, flags, mode);
}
int open(const char *path, int flags, ...)
{
    NEED(open);
    va_list ap;
    va_start(ap, flags);
    int fd = open_with(r_open, "open", path, flags, ap);
    va_end(ap);
    return fd;
}
int open64(const char *path, int flags, ...)
{
    NEED(open64);
    va_list ap;
    va_start(ap, flags);
    int fd = open_with(r_open64, "open64", path, flags, ap);
    va_end(ap);
    return fd;
}

FILE *fopen(const char *path, const char *mode)
{
    NEED(fopen);
    if (strpbrk(mode, "wa+") && path_wanted(path) && should_fail(K_WRITE, "fopen")) {
        errno = ENOSPC;
        return NULL;
    }
    return r_fopen(path, mode);
}

size_t fwrite(const void *p, size_t size, size_t n, FILE *f)
{
    NEED(fwrite);
    if (size && n && file_stream(f) && should_fail(K_WRITE, "fwrite")) {
        stream_failed(f);
        return 0;
    }
    return r_fwrite(p, size, n, f);
}
int fputs(const char *s, FILE *f)
{
    NEED(fputs);
    if (file_stream(f) && should_fail(K_WRITE, "fputs")) {
        stream_failed(f);
        return EOF;
    }
    return r_fputs(s, f);
}
int fputc(int c, FILE *f)
{
    NEED(fputc);
    if (file_stream(f) && should_fail(K_WRITE, "fputc")) {
        stream_failed(f);
        return EOF;
    }
    return r_fputc(c, f);
}
int putc(int c, FILE *f)
{
    NEED(putc);
    if (file_stream(f) && should_fail(K_WRITE, "putc")) {
        stream_failed(f);
        return EOF;
    }
    return r_putc(c, f);
}
int vfprintf(FILE *f, const char *fmt, va_list ap)
{
    NEED(vfprintf);
    if (file_stream(f) && should_fail(K_WRITE, "vfprintf")) {
        stream_failed(f);
        return -1;
    }
    return r_vfprintf(f, fmt, ap);
}
int fprintf(FILE *f, const char *fmt, ...)
{
    NEED(vfprintf);
    va_list ap;
    va_start(ap, fmt);
    int n;
    if (file_stream(f) && should_fail(K_WRITE, "fprintf")) {
        stream_failed(f);
        n = -1;
    } else {
        n = r_vfprintf(f, fmt, ap);
    }
    va_end(ap);
    return n;
}
int fflush(FILE *f)
{
    NEED(fflush);
    if (f && file_stream(f) && buffered(f) && should_fail(K_WRITE, "fflush")) {
        __fpurge(f);
        stream_failed(f);
        return EOF;
    }
    return r_fflush(f);
}
int fclose(FILE *f)
{
    NEED(fclose);
    if (file_stream(f) && buffered(f) && should_fail(K_WRITE, "fclose")) {
        __fpurge(f);
        r_fclose(f);
        errno = ENOSPC;
        return EOF;
    }
    return r_fclose(f);
}
