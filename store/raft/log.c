/* store/raft/log.c — the in-memory Raft log: a contiguous array of entries after an offset.
 *
 * Everything before `offset` lives in the snapshot; `offset_term` remembers the term of entry
 * `offset` so an append right after it can still be matched (Raft §5.3 consistency check).
 */
#include <stdlib.h>
#include "store/raft/internal.h"

void raft_log_init(struct raft_log *l, const struct raft_alloc *a)
{
    memset(l, 0, sizeof(*l));
    l->a = a;
}

void raft_entry_free_data(const struct raft_alloc *a, struct raft_entry *e)
{
    if (e->data != NULL)
        a->free(a->ctx, e->data);
    e->data = NULL;
}

void raft_log_free(struct raft_log *l)
{
    for (size_t i = 0; i < l->n; i++)
        raft_entry_free_data(l->a, &l->entries[i]);
    if (l->entries != NULL)
        l->a->free(l->a->ctx, l->entries);
    l->entries = NULL;
    l->n = l->cap = 0;
}

uint64_t raft_log_last_index(const struct raft_log *l)
{
    return l->offset + l->n;
}

uint64_t raft_log_last_term(const struct raft_log *l)
{
    return l->n > 0 ? l->entries[l->n - 1].term : l->offset_term;
}

uint64_t raft_log_term(const struct raft_log *l, uint64_t idx)
{
    if (idx == l->offset)
        return l->offset_term;
    if (idx < l->offset || idx > l->offset + l->n)
        return 0;
    return l->entries[idx - l->offset - 1].term;
}

struct raft_entry *raft_log_get(const struct raft_log *l, uint64_t idx)
{
    if (idx <= l->offset || idx > l->offset + l->n)
        return NULL;
    return &l->entries[idx - l->offset - 1];
}

int raft_log_reserve(struct raft_log *l, size_t n)
{
    if (l->n + n <= l->cap)
        return 0;
    size_t cap = l->cap ? l->cap : 16;
    while (cap < l->n + n)
        cap *= 2;
    void *p = l->a->realloc(l->a->ctx, l->entries, cap * sizeof(*l->entries));
    if (p == NULL)
        return RAFT_ENOMEM;
    l->entries = p;
    l->cap = cap;
    return 0;
}

int raft_log_append(struct raft_log *l, const struct raft_entry *es, size_t n)
{
    if (n == 0)
        return 0;
    assert(es[0].index == raft_log_last_index(l) + 1);
    int rv = raft_log_reserve(l, n);
    if (rv != 0)
        return rv;
    /* Copy every payload first so a failed allocation leaves the log untouched. */
    size_t i;
    for (i = 0; i < n; i++) {
        struct raft_entry *dst = &l->entries[l->n + i];
        *dst = es[i];
        dst->data = NULL;
        if (es[i].len > 0) {
            dst->data = l->a->malloc(l->a->ctx, es[i].len);
            if (dst->data == NULL)
                goto fail;
            memcpy(dst->data, es[i].data, es[i].len);
        }
        assert(i == 0 || es[i].index == es[i - 1].index + 1);
        assert(es[i].term >= (i == 0 ? raft_log_last_term(l) : es[i - 1].term));
    }
    l->n += n;
    return 0;
fail:
    while (i-- > 0)
        raft_entry_free_data(l->a, &l->entries[l->n + i]);
    return RAFT_ENOMEM;
}

void raft_log_truncate(struct raft_log *l, uint64_t from)
{
    assert(from > l->offset);
    while (raft_log_last_index(l) >= from) {
        raft_entry_free_data(l->a, &l->entries[l->n - 1]);
        l->n--;
    }
    if (l->stable >= from)
        l->stable = from - 1;
    if (l->handed >= from)
        l->handed = from - 1;
}

void raft_log_compact(struct raft_log *l, uint64_t upto)
{
    if (upto <= l->offset)
        return;
    assert(upto <= raft_log_last_index(l));
    size_t k = (size_t)(upto - l->offset);
    uint64_t term = l->entries[k - 1].term;
    for (size_t i = 0; i < k; i++)
        raft_entry_free_data(l->a, &l->entries[i]);
    memmove(l->entries, l->entries + k, (l->n - k) * sizeof(*l->entries));
    l->n -= k;
    l->offset = upto;
    l->offset_term = term;
}

void raft_log_restart(struct raft_log *l, uint64_t index, uint64_t term)
{
    for (size_t i = 0; i < l->n; i++)
        raft_entry_free_data(l->a, &l->entries[i]);
    l->n = 0;
    l->offset = index;
    l->offset_term = term;
    l->stable = index;
    l->handed = index;
}

bool raft_log_up_to_date(const struct raft_log *l, uint64_t idx, uint64_t term)
{
    uint64_t lt = raft_log_last_term(l);
    return term > lt || (term == lt && idx >= raft_log_last_index(l));
}
