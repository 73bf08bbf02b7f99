/* tests/support/wal_util.h — helpers shared by the WAL tests and fuzz driver: a log callback that
 * keeps the lines, entries whose payload is derived from (index, term) so a replay can be checked
 * byte for byte, and a WAL config on a fake or real file system.
 */
#ifndef DISCOVERYD_TESTS_WAL_UTIL_H
#define DISCOVERYD_TESTS_WAL_UTIL_H

#include <stdbool.h>
#include "store/wal.h"

struct logcap {
    int n;
    char last[1024];
    char all[8192];
};
void logcap_fn(void *arg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ENTRY_DATA_MAX 64
/* e->data points to buf (ENTRY_DATA_MAX bytes). */
void wal_test_entry(struct raft_entry *e, uint8_t *buf, uint64_t index, uint64_t term);
bool wal_test_entry_ok(const struct raft_entry *e);

#endif
