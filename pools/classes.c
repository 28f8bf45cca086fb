/* classes.c - owns the size-class table of the pools: about four classes per
 * doubling, the run each class is carved from, and the waste of each class,
 * plus the lookup tables built from it. */
#include "pools/classes.h"

const char *const pool_names[POOL_COUNT] = {"tiny", "mid", "l25"};

/* Tiny: 64 KiB slabs.  Mid: runs of at least 8 blocks carved from per-thread
 * chunks.  L25: 2 MiB runs up to 256 KiB, one span per block above. */
const pool_class pool_classes[POOL_NCLASS] = {
    /*  size  run_bytes  pool    worst  tail (per mille) */
    {      16,    65536, POOL_TINY,  937,   0},
    {      32,    65536, POOL_TINY,  468,   0},
    {      48,    65536, POOL_TINY,  312,   0},
    {      64,    65536, POOL_TINY,  234,   0},
    {      80,    65536, POOL_TINY,  187,   0},
    {      96,    65536, POOL_TINY,  156,   0},
    {     112,    65536, POOL_TINY,  133,   0},
    {     128,    65536, POOL_TINY,  117,   0},
    {     160,    65536, POOL_TINY,  193,   1},
    {     192,    65536, POOL_TINY,  161,   0},
    {     224,    65536, POOL_TINY,  138,   1},
    {     256,    65536, POOL_TINY,  121,   0},
    {     320,    65536, POOL_TINY,  196,   3},
    {     384,    65536, POOL_TINY,  164,   3},
    {     448,    65536, POOL_TINY,  140,   1},
    {     512,    65536, POOL_TINY,  123,   0},
    {     640,    65536, POOL_TINY,  198,   3},
    {     768,    65536, POOL_TINY,  165,   3},
    {     896,    65536, POOL_TINY,  141,   1},
    {    1024,    65536, POOL_TINY,  124,   0},
    {    1280,    65536, POOL_MID,  199,   3},
    {    1536,    65536, POOL_MID,  166,  15},
    {    1792,    65536, POOL_MID,  142,  15},
    {    2048,    65536, POOL_MID,  124,   0},
    {    2560,    65536, POOL_MID,  199,  23},
    {    3072,    65536, POOL_MID,  166,  15},
    {    3584,    65536, POOL_MID,  142,  15},
    {    4096,    65536, POOL_MID,  124,   0},
    {    5120,    65536, POOL_MID,  199,  62},
    {    6144,    65536, POOL_MID,  166,  62},
    {    7168,    65536, POOL_MID,  142,  15},
    {    8192,    65536, POOL_MID,  124,   0},
    {   10240,   131072, POOL_MID,  199,  62},
    {   12288,   131072, POOL_MID,  166,  62},
    {   14336,   131072, POOL_MID,  142,  15},
    {   16384,   131072, POOL_MID,  124,   0},
    {   20480,   262144, POOL_MID,  199,  62},
    {   24576,   262144, POOL_MID,  166,  62},
    {   28672,   262144, POOL_MID,  142,  15},
    {   32768,   262144, POOL_MID,  124,   0},
    {   40960,   524288, POOL_MID,  199,  62},
    {   49152,   524288, POOL_MID,  166,  62},
    {   57344,   524288, POOL_MID,  142,  15},
    {   65536,   524288, POOL_MID,  124,   0},
    {   81920,  2097152, POOL_L25,  199,  23},
    {   98304,  2097152, POOL_L25,  166,  15},
    {  114688,  2097152, POOL_L25,  142,  15},
    {  131072,  2097152, POOL_L25,  124,   0},
    {  163840,  2097152, POOL_L25,  199,  62},
    {  196608,  2097152, POOL_L25,  166,  62},
    {  229376,  2097152, POOL_L25,  142,  15},
    {  262144,  2097152, POOL_L25,  124,   0},
    {  327680,   327680, POOL_L25,  199,   0},
    {  393216,   393216, POOL_L25,  166,   0},
    {  458752,   458752, POOL_L25,  142,   0},
    {  524288,   524288, POOL_L25,  124,   0},
    {  655360,   655360, POOL_L25,  199,   0},
    {  786432,   786432, POOL_L25,  166,   0},
    {  917504,   917504, POOL_L25,  142,   0},
    { 1048576,  1048576, POOL_L25,  124,   0},
    { 1310720,  1310720, POOL_L25,  199,   0},
    { 1572864,  1572864, POOL_L25,  166,   0},
    { 1835008,  1835008, POOL_L25,  142,   0},
    { 2097152,  2097152, POOL_L25,  124,   0},
};

uint8_t pool_lut_tiny[TINY_MAX / 16 + 1];
uint8_t pool_lut_mid[MID_MAX / 256 + 1];
uint8_t pool_lut_l25[L25_MAX / 16384 + 1];

static void fill(uint8_t *lut, unsigned n, unsigned step, unsigned pool) {
    unsigned c = 0;
    while (pool_classes[c].pool != pool)
        c++;
    for (unsigned i = 0; i < n; i++) {
        size_t want = (size_t)i * step;
        while (pool_classes[c].size < want)
            c++;
        lut[i] = (uint8_t)c;
    }
}

void pool_classes_init(void) {
    fill(pool_lut_tiny, TINY_MAX / 16 + 1, 16, POOL_TINY);
    fill(pool_lut_mid, MID_MAX / 256 + 1, 256, POOL_MID);
    fill(pool_lut_l25, L25_MAX / 16384 + 1, 16384, POOL_L25);
}
