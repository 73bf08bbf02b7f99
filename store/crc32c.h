/* store/crc32c.h — CRC-32C (Castagnoli), the one checksum of discoveryd's on-disk formats (WAL
 * records, snapshots). Pure functions, any thread.
 *
 * crc32c("123456789", 9) == 0xE3069283. Chained use: crc32c_update(crc32c_update(0, a), b) equals
 * crc32c of a followed by b (the pre/post inversion is done inside).
 */
#ifndef DISCOVERYD_STORE_CRC32C_H
#define DISCOVERYD_STORE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) over len bytes of data. */
uint32_t crc32c_update(uint32_t crc, const void *data, size_t len);

static inline uint32_t crc32c(const void *data, size_t len)
{
    return crc32c_update(0, data, len);
}

/* The tables (computed on first use), exposed for the test that checks them against a bit-by-bit
 * reference. */
uint32_t crc32c_table_entry(unsigned k, unsigned i);

#endif
