/* fuzz_util.h — what the libFuzzer targets share: a memory file per execution for loaders
 * that take a path, a scratch folder, and the checksum fix-up that lets mutations reach
 * the parsers behind a CRC. Not part of nnsearch: only tests/fuzz/ uses it. */
#ifndef NS_FUZZ_UTIL_H
#define NS_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"

/* The libFuzzer entry points each target defines (fuzz_*.c) and replay_main.c calls. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes data[0..n) to memory file `slot` (0..3, created once, emptied each call) and
 * returns a path that opens it ("/proc/self/fd/N"); gz != 0 stores it gzip'd. Aborts the
 * fuzzer (not the library) when the kernel refuses, since nothing can be tested then. */
const char *fz_memfile(int slot, const uint8_t *data, size_t n, int gz);

/* A folder made once per process (removed at exit) for files a target needs to exist. */
const char *fz_scratch_dir(void);
/* Writes a file below fz_scratch_dir(): rel may name one subfolder ("data/x.csv"). */
void fz_write_file(const char *rel, const void *data, size_t n, int gz);

/* With NS_FUZZ_VERBOSE set in the environment, prints what the reader answered (to see
 * which seeds get how far); returns rc. */
int fz_report(int rc, const ns_err *err);

/* Little-endian helpers and zlib's CRC-32, for the checksum fix-ups. */
uint32_t fz_get_u32(const uint8_t *p);
uint64_t fz_get_u64(const uint8_t *p);
void fz_put_u32(uint8_t *p, uint32_t v);
void fz_put_u64(uint8_t *p, uint64_t v);
uint32_t fz_crc32(const uint8_t *p, size_t n);

#endif
