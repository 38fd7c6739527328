/*
 * crc32c.c -- CRC-32C (see crc32c.h): SSE4.2's crc32 instruction where the
 * CPU has it (x86-64, checked once by crc32c_init), else slice-by-8.
 *
 * T[0] is the classic byte-at-a-time table; T[k][b] is the CRC of byte b
 * followed by k zero bytes, so eight table lookups consume eight input bytes
 * per iteration. Input is read byte by byte into the 64-bit word, so the
 * code makes no assumption about alignment or byte order. Both paths give
 * the same value for every input (tests/unit/test_crc32c.c runs both).
 */
#include "crc32c.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define CRC32C_HW 1
#endif

#define CRC32C_POLY 0x82F63B78u

static uint32_t T[8][256];
static int ready, hw;

void crc32c_init(void)
{
    if (ready)
        return;
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        T[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; b++)
        for (int k = 1; k < 8; k++)
            T[k][b] = (T[k - 1][b] >> 8) ^ T[0][T[k - 1][b] & 0xff];
#ifdef CRC32C_HW
    __builtin_cpu_init();
    hw = __builtin_cpu_supports("sse4.2") != 0;
#endif
    ready = 1;
}

int crc32c_hardware(void) { return hw; }

/* Slice-by-8 on the inverted crc. */
static uint32_t crc32c_sw(uint32_t crc, const unsigned char *p, size_t n)
{
    while (n >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24);
        crc = T[7][lo & 0xff] ^ T[6][(lo >> 8) & 0xff] ^ T[5][(lo >> 16) & 0xff] ^
              T[4][lo >> 24] ^ T[3][p[4]] ^ T[2][p[5]] ^ T[1][p[6]] ^ T[0][p[7]];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = (crc >> 8) ^ T[0][(crc ^ *p++) & 0xff];
    return crc;
}

#ifdef CRC32C_HW
/* SSE4.2's crc32 instruction computes exactly this CRC (the same reflected
 * polynomial; 8 bytes a step, read little-endian, which is x86's order).
 * One dependent stream: about 8 bytes per 3 cycles, several times
 * slice-by-8's rate, and simple enough to be obviously right. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const unsigned char *p,
                                                            size_t n)
{
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
        p += 8;
        n -= 8;
    }
    while (n--)
        c = _mm_crc32_u8((uint32_t)c, *p++);
    return (uint32_t)c;
}
#endif

uint32_t crc32c(uint32_t crc, const void *buf, size_t n)
{
#ifdef CRC32C_HW
    if (hw)
        return ~crc32c_hw(~crc, buf, n);
#endif
    return ~crc32c_sw(~crc, buf, n);
}
