/*
 * crc32c.h -- CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum of journal and snapshot records.
 *
 * SSE4.2's crc32 instruction where the CPU has it, else table-driven
 * slice-by-8 in portable C (about a byte per cycle); the same values either
 * way. Recovery and snapshots checksum every byte of the state, so the
 * instruction's several-fold rate shows there. crc32c_init() builds the
 * tables and picks the path; it must run once before any thread computes a
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
/* 1 if crc32c() uses the CPU's instruction (after crc32c_init). */
int crc32c_hardware(void);

#endif /* LWD_CRC32C_H */
