/*
 * crc32c.h -- CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum of journal and snapshot records.
 *
 * Table-driven, slice-by-8, portable C (no SSE4.2 instruction): about a byte
 * per cycle, far below the cost of the fdatasync it guards. The tables are
 * built by crc32c_init(), which must run once before any thread computes a
 * checksum (journal_open calls it on the loop thread before the thread pool
 * starts). Check value: crc32c("123456789") == 0xE3069283.
 */
#ifndef LWD_CRC32C_H
#define LWD_CRC32C_H

#include <stddef.h>
#include <stdint.h>

void crc32c_init(void);
/* Extend crc (0 to start) over n bytes. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t n);

#endif /* LWD_CRC32C_H */
