/* replay_main.c — main() for the fuzz targets built without libFuzzer: runs
 * LLVMFuzzerTestOneInput once on each file named, or on each file in each folder named,
 * so the seed corpora and every regression input are replayed by ctest (and under the
 * sanitizers by scripts/sanitize). `--make-seeds DIR` writes the seeds a target makes
 * itself. Not a fuzzer: it mutates nothing. */
#include "tests/fuzz/fuzz_util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: cannot open\n", path);
        return 1;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            uint8_t *b = realloc(buf, cap *= 2);
            if (!b)
                free(buf);
            buf = b;
        }
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "replay: %s: out of memory\n", path);
        return 1;
    }
    /* A copy of exactly n bytes, as libFuzzer hands over: reading past it is caught. */
    uint8_t *exact = malloc(n ? n : 1);
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Targets whose seeds must come from the code itself (e.g. checkpoints) define this. */
int fz_make_seeds(const char *dir) __attribute__((weak));

int main(int argc, char **argv)
{
    int files = 0, bad = 0;
    if (argc == 3 && !strcmp(argv[1], "--make-seeds")) {
        if (!fz_make_seeds) {
            fprintf(stderr, "replay: this target has no seed maker\n");
            return 2;
        }
        return fz_make_seeds(argv[2]) ? 1 : 0;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: no such file or folder\n", argv[i]);
            bad++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            bad += replay_file(argv[i]);
            files++;
            continue;
        }
        struct dirent **names;
        int k = scandir(argv[i], &names, NULL, NULL);
        if (k < 0) {
            bad++;
            continue;
        }
        qsort(names, (size_t)k, sizeof *names, by_name);
        for (int j = 0; j < k; j++) {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", argv[i], names[j]->d_name);
            if (names[j]->d_name[0] != '.' && stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
                bad += replay_file(p);
                files++;
            }
            free(names[j]);
        }
        free(names);
    }
    printf("replay: %d inputs, %d unreadable\n", files, bad);
    return bad ? 1 : 0;
}
