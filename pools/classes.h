/* classes.h - the size classes of the Tiny, Mid and L25 pools (defined in
 * classes.c): one literal table, and the size-to-class lookup. */
#ifndef POOL_CLASSES_H
#define POOL_CLASSES_H

#include <stddef.h>
#include <stdint.h>

enum pool_id { POOL_TINY, POOL_MID, POOL_L25, POOL_COUNT };

#define POOL_NCLASS 64
#define TINY_MAX 1024u
#define MID_MAX 65536u
#define L25_MAX (2u << 20)

typedef struct pool_class {
    uint32_t size;        /* block size */
    uint32_t run_bytes;   /* slab (Tiny), run (Mid, L25) or span (large L25) */
    uint8_t pool;
    uint16_t worst_waste; /* per mille: (size - previous size - 1) / size */
    uint16_t tail_waste;  /* per mille of the run left over after the blocks */
} pool_class;

extern const pool_class pool_classes[POOL_NCLASS];
extern const char *const pool_names[POOL_COUNT];

/* Lookup tables: Tiny by 16 B steps, Mid by 256 B steps, L25 by 16 KiB. */
extern const uint8_t pool_lut_tiny[TINY_MAX / 16 + 1];
extern const uint8_t pool_lut_mid[MID_MAX / 256 + 1];
extern const uint8_t pool_lut_l25[L25_MAX / 16384 + 1];

/* Class of a size in 1..L25_MAX (size 0 is served as 1). */
static inline unsigned pool_class_of(size_t n) {
    if (n <= TINY_MAX)
        return pool_lut_tiny[(n + 15) >> 4];
    if (n <= MID_MAX)
        return pool_lut_mid[(n + 255) >> 8];
    return pool_lut_l25[(n + 16383) >> 14];
}

#endif
