/*
 * crc32c.c -- slice-by-8 CRC-32C (see crc32c.h).
 *
 * T[0] is the classic byte-at-a-time table; T[k][b] is the CRC of byte b
 * followed by k zero bytes, so eight table lookups consume eight input bytes
 * per iteration. Input is read byte by byte into the 64-bit word, so the
 * code makes no assumption about alignment or byte order.
 */
#include "crc32c.h"

#define CRC32C_POLY 0x82F63B78u

static uint32_t T[8][256];
static int ready;

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
    ready = 1;
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    crc = ~crc;
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
    return ~crc;
}
