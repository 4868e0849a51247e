/* fuzz_util.c — memory files, the scratch folder and byte helpers of fuzz_util.h. */
#define _GNU_SOURCE
#include "tests/fuzz/fuzz_util.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static int slots[4] = {-1, -1, -1, -1};
static char slot_path[4][64];

static void die(const char *what)
{
    fprintf(stderr, "fuzz harness: %s: %s\n", what, strerror(errno));
    abort(); /* the harness itself, never library code */
}

/* gzip of data[0..n) into a malloc'd buffer (*out, *out_n). */
static void gzip_buf(const uint8_t *data, size_t n, uint8_t **out, size_t *out_n)
{
    z_stream z = {0};
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        die("deflateInit2");
    size_t cap = deflateBound(&z, (uLong)n) + 32;
    *out = malloc(cap);
    if (!*out)
        die("malloc");
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)n;
    z.next_out = *out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        die("deflate");
    *out_n = cap - z.avail_out;
    deflateEnd(&z);
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
    for (off_t off = 0; n;) {
        ssize_t w = pwrite(fd, p, n, off);
        if (w <= 0)
            die("pwrite");
        p += w;
        n -= (size_t)w;
        off += w;
    }
}

const char *fz_memfile(int slot, const uint8_t *data, size_t n, int gz)
{
    if (slots[slot] < 0) {
        slots[slot] = memfd_create("nnsearch-fuzz", MFD_CLOEXEC);
        if (slots[slot] < 0)
            die("memfd_create");
        snprintf(slot_path[slot], sizeof slot_path[slot], "/proc/self/fd/%d", slots[slot]);
    }
    if (ftruncate(slots[slot], 0) != 0)
        die("ftruncate");
    if (gz) {
        uint8_t *z;
        size_t zn;
        gzip_buf(data, n, &z, &zn);
        write_all(slots[slot], z, zn);
        free(z);
    } else {
        write_all(slots[slot], data, n);
    }
    return slot_path[slot];
}

static char scratch[256];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static void scratch_remove(void) { nftw(scratch, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

const char *fz_scratch_dir(void)
{
    if (!scratch[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(scratch, sizeof scratch, "%s/nnsearch-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(scratch))
            die("mkdtemp");
        atexit(scratch_remove);
    }
    return scratch;
}

void fz_write_file(const char *rel, const void *data, size_t n, int gz)
{
    char path[512];
    const char *slash = strchr(rel, '/');
    if (slash) {
        snprintf(path, sizeof path, "%s/%.*s", fz_scratch_dir(), (int)(slash - rel), rel);
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            die("mkdir");
    }
    snprintf(path, sizeof path, "%s/%s", fz_scratch_dir(), rel);
    FILE *f = fopen(path, "wb");
    if (!f)
        die(path);
    if (gz) {
        uint8_t *z;
        size_t zn;
        gzip_buf(data, n, &z, &zn);
        fwrite(z, 1, zn, f);
        free(z);
    } else {
        fwrite(data, 1, n, f);
    }
    if (fclose(f) != 0)
        die(path);
}

int fz_report(int rc, const ns_err *err)
{
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("NS_FUZZ_VERBOSE") != NULL;
    if (verbose)
        fprintf(stderr, "  -> %s\n", rc ? err->msg : "accepted");
    return rc;
}

uint32_t fz_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
uint64_t fz_get_u64(const uint8_t *p) { return fz_get_u32(p) | (uint64_t)fz_get_u32(p + 4) << 32; }
void fz_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
void fz_put_u64(uint8_t *p, uint64_t v)
{
    fz_put_u32(p, (uint32_t)v);
    fz_put_u32(p + 4, (uint32_t)(v >> 32));
}
uint32_t fz_crc32(const uint8_t *p, size_t n) { return (uint32_t)crc32(0L, p, (uInt)n); }
