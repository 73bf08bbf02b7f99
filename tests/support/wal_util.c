/* tests/support/wal_util.c — see wal_util.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "tests/support/wal_util.h"

void logcap_fn(void *arg, const char *fmt, ...)
{
    struct logcap *l = arg;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->last, sizeof(l->last), fmt, ap);
    va_end(ap);
    l->n++;
    size_t used = strlen(l->all);
    snprintf(l->all + used, sizeof(l->all) - used, "%s\n", l->last);
}

static uint32_t data_len(uint64_t index, uint64_t term)
{
    return (uint32_t)((index * 7 + term * 3) % ENTRY_DATA_MAX);
}

static uint8_t data_byte(uint64_t index, uint64_t term, uint32_t i)
{
    return (uint8_t)(index * 31 + term * 17 + i * 13 + 1);
}

void wal_test_entry(struct raft_entry *e, uint8_t *buf, uint64_t index, uint64_t term)
{
    e->index = index;
    e->term = term;
    e->type = index % 5 == 0 ? RAFT_ENTRY_NOOP : RAFT_ENTRY_NORMAL;
    e->len = data_len(index, term);
    for (uint32_t i = 0; i < e->len; i++)
        buf[i] = data_byte(index, term, i);
    e->data = e->len ? buf : NULL;
}

bool wal_test_entry_ok(const struct raft_entry *e)
{
    if (e->len != data_len(e->index, e->term))
        return false;
    if (e->type != (e->index % 5 == 0 ? RAFT_ENTRY_NOOP : RAFT_ENTRY_NORMAL))
        return false;
    for (uint32_t i = 0; i < e->len; i++)
        if (e->data[i] != data_byte(e->index, e->term, i))
            return false;
    return true;
}
