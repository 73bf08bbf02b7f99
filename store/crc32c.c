/* store/crc32c.c — table-driven CRC-32C, slicing-by-8: eight bytes per step through eight 256-entry
 * tables, then byte at a time for the tail. The tables are computed from the reflected polynomial
 * 0x82F63B78 once, on first use (table k, entry i = the CRC of byte i followed by k zero bytes).
 * Portable C, no CPU feature detection; ~1-2 GB/s, far above what one fdatasync'd WAL needs.
 */
#include <pthread.h>

#include "store/crc32c.h"

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void make_tables(void)
{
    for (unsigned i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int b = 0; b < 8; b++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
        table[0][i] = c;
    }
    for (unsigned i = 0; i < 256; i++)
        for (unsigned k = 1; k < 8; k++)
            table[k][i] = (table[k - 1][i] >> 8) ^ table[0][table[k - 1][i] & 0xff];
}

uint32_t crc32c_update(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&table_once, make_tables);
    const uint8_t *p = data;
    uint32_t c = ~crc;
    while (len >= 8) {
        /* Little-endian load of the first word, whatever the host's byte order. */
        uint32_t lo =
            c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        c = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
            table[4][lo >> 24] ^ table[3][p[4]] ^ table[2][p[5]] ^ table[1][p[6]] ^ table[0][p[7]];
        p += 8;
        len -= 8;
    }
    while (len-- > 0)
        c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}

uint32_t crc32c_table_entry(unsigned k, unsigned i)
{
    pthread_once(&table_once, make_tables);
    return table[k & 7][i & 0xff];
}
