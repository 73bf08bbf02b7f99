/* store/wal_format.c — what the WAL's writer and reader share: the config defaults, segment file
 * names and paths, and the framing of one record (layout in store/wal.h). Pure; any thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "store/crc32c.h"
#include "store/wal_internal.h"

void wal_config_defaults(struct wal_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->segment_size = WAL_SEGMENT_SIZE_DEFAULT;
}

void wal_seg_name(char *out, size_t cap, uint64_t seq, uint64_t first)
{
    snprintf(out, cap, "%016" PRIx64 "-%016" PRIx64 ".wal", seq, first);
}

int wal_path(const struct wal *w, char *out, size_t cap, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", w->dir, name);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

void wal_record_frame(uint8_t *buf, uint8_t type, const uint8_t *payload, uint32_t plen)
{
    le_put32(buf, 1 + plen);
    buf[WAL_REC_FRAME] = type;
    if (plen > 0 && payload != buf + WAL_REC_FRAME + 1)
        memmove(buf + WAL_REC_FRAME + 1, payload, plen);
    le_put32(buf + 4, crc32c_update(crc32c(buf, 4), buf + WAL_REC_FRAME, 1 + plen));
}
