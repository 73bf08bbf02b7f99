/* store/node_pipe.c — the log driver's pipeline (node_raft.c; store thread, and the WAL thread's
 * completion callback). A ready (raft.h: the pipeline) is written while the core goes on: the store
 * thread proposes, steps and hands the WAL the next batch during this one's fdatasync. A leader's
 * messages go at once (early_send: its appends reach the followers before its own write); anyone
 * else's (append responses, votes) travel with the batch and go when it is durable, as do those of
 * a ready with nothing to write while earlier batches are out (an empty batch: a barrier). The batch
 * owns copies of its entries and messages (the core may truncate its log meanwhile). The WAL
 * completes batches in submission order, so the store thread only counts completions;
 * raft_durable_to() then lets the core commit and hand the entries out to apply, never before they
 * are durable here. A received snapshot is never pipelined. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/raft/raft.h"
#include "store/wal_thread.h"

#include "store/node_raft_int.h"

#define PIPE_MAX 64 /* batches in flight; beyond, a ready waits for its write as before */

struct pbatch {
    struct wal_batch b;
    struct pbatch *next;
    struct raft_hard_state hs;
    uint64_t last_index, last_term; /* 0: no entries */
    struct raft_message *msgs;      /* held until durable (NULL: sent already) */
    size_t n_msgs;
    struct raft_entry es[];         /* then the messages, then the entries' bytes */
};

static void on_pbatch_done(void *arg, int err, const char *msg)
{
    struct node *n = arg; /* WAL thread */
    struct node_raft *d = n->drv;
    pthread_mutex_lock(&d->mu);
    d->pq_done++;
    if (err && !d->pq_err) {
        d->pq_err = err;
        snprintf(d->pq_msg, sizeof(d->pq_msg), "%s", msg && *msg ? msg : strerror(err < 0 ? -err : err));
    }
    if (!d->closing)
        uv_async_send(&d->wal_async);
    pthread_mutex_unlock(&d->mu);
}

/* Can the ready that is out go through the pipeline? Held messages are copied flat, so they may not
 * point anywhere (entries, a snapshot): those readies (rare: a leader's ready with a new term) are
 * written the ordinary way. */
bool node_pipe_fits(const struct node_raft *d)
{
    if (d->rd.snapshot || d->pq_n >= PIPE_MAX)
        return false;
    for (size_t i = 0; !d->rd.early_send && i < d->rd.n_messages; i++)
        if (d->rd.messages[i].type == RAFT_MSG_SNAPSHOT || d->rd.messages[i].n_entries > 0)
            return false;
    return true;
}

/* Hand the ready that is out to the WAL as a pipelined batch (writes=false: nothing to write, a
 * barrier for its messages). -ENOMEM: not submitted (the caller writes it the ordinary way); another
 * error: the WAL is poisoned. */
int node_pipe_submit(struct node *n, bool writes)
{
    struct node_raft *d = n->drv;
    const struct raft_ready *rd = &d->rd;
    size_t ne = writes ? rd->n_entries : 0, nm = rd->early_send ? 0 : rd->n_messages, bytes = 0;
    for (size_t i = 0; i < ne; i++)
        bytes += rd->entries[i].len;
    struct pbatch *p = malloc(sizeof(*p) + ne * sizeof(struct raft_entry) + nm * sizeof(struct raft_message) + bytes);
    if (!p)
        return -ENOMEM;
    memset(p, 0, sizeof(*p));
    p->msgs = nm ? (struct raft_message *)(p->es + ne) : NULL;
    p->n_msgs = nm;
    if (nm)
        memcpy(p->msgs, rd->messages, nm * sizeof(*p->msgs));
    uint8_t *data = (uint8_t *)(p->es + ne) + nm * sizeof(struct raft_message);
    for (size_t i = 0; i < ne; i++) {
        p->es[i] = rd->entries[i];
        p->es[i].data = data;
        if (rd->entries[i].len)
            memcpy(data, rd->entries[i].data, rd->entries[i].len);
        data += rd->entries[i].len;
    }
    p->b.entries = p->es;
    p->b.n_entries = ne;
    if (writes && rd->has_hard_state) {
        p->hs = rd->hard_state;
        p->b.hard_state = &p->hs;
    }
    if (ne) {
        p->last_index = rd->entries[ne - 1].index;
        p->last_term = rd->entries[ne - 1].term;
    }
    p->b.done = on_pbatch_done;
    p->b.arg = n;
    int rv = wal_thread_submit(d->wt, &p->b);
    if (rv != 0) {
        free(p);
        char msg[512];
        if (wal_thread_error(d->wt, msg, sizeof(msg)) == 0)
            snprintf(msg, sizeof(msg), "%s", strerror(-rv));
        node_raft_poison(n, msg);
        return rv;
    }
    if (p->b.hard_state)
        d->hs_disk = rd->hard_state;
    if (d->pq_tail)
        d->pq_tail->next = p;
    else
        d->pq_head = p;
    d->pq_tail = p;
    d->pq_n++;
    return 0;
}

/* count more batches are durable: the messages they held may go (a ready may be out: no raft call). */
void node_pipe_land(struct node *n, size_t count)
{
    struct node_raft *d = n->drv;
    struct pbatch *p = d->pq_head;
    for (size_t i = 0; p && i < d->pq_landed; i++)
        p = p->next;
    for (; p && count > 0; p = p->next, count--) {
        d->pq_landed++;
        if (p->n_msgs) {
            struct raft_ready held = {.messages = p->msgs, .n_messages = p->n_msgs};
            node_peers_send(n, &held);
            p->n_msgs = 0;
        }
    }
}

/* Tell the core which pipelined batches are durable (never while a ready is out). */
void node_pipe_tell(struct node *n)
{
    struct node_raft *d = n->drv;
    while (!d->rd_out && !d->poisoned && d->pq_landed > 0) {
        struct pbatch *p = d->pq_head;
        d->pq_head = p->next;
        if (!d->pq_head)
            d->pq_tail = NULL;
        d->pq_landed--;
        d->pq_n--;
        if (p->last_index)
            raft_durable_to(d->raft, p->last_index, p->last_term);
        free(p);
    }
}

void node_raft_pipe_free(struct node *n)
{
    struct node_raft *d = n->drv;
    struct pbatch *p;
    while ((p = d->pq_head)) {
        d->pq_head = p->next;
        free(p);
    }
    d->pq_tail = NULL;
    d->pq_n = d->pq_landed = 0;
}
