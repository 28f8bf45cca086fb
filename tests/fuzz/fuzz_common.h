/* fuzz_common.h - owns what both libFuzzer harnesses share: the failure
 * macros (one line naming the harness and source line, then a trap that
 * libFuzzer reports), the input reader, and the 64-bit mixer their
 * patterns derive from.  Define FUZZ_NAME before including it. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FAIL(...)                                                              \
    do {                                                                       \
        fprintf(stderr, FUZZ_NAME ": line %d: ", __LINE__);                    \
        fprintf(stderr, __VA_ARGS__);                                          \
        fputc('\n', stderr);                                                   \
        __builtin_trap();                                                      \
    } while (0)
#define REQUIRE(c, ...)                                                        \
    do {                                                                       \
        if (!(c))                                                              \
            FAIL(__VA_ARGS__);                                                 \
    } while (0)

/* The input, read front to back; past its end every byte reads as 0. */
typedef struct { const uint8_t *d; size_t n, i; } reader;

static inline uint8_t rd8(reader *r) { return r->i < r->n ? r->d[r->i++] : 0; }
static inline uint32_t rd16(reader *r) { return rd8(r) | (uint32_t)rd8(r) << 8; }
static inline uint32_t rd32(reader *r) { return rd16(r) | rd16(r) << 16; }

/* splitmix64's finaliser: pattern words from addresses and seeds. */
static inline uint64_t mix(uint64_t x) {
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 32);
}

#endif
