/* store/node_apply.c — the apply seam: the one place where committed log entries change the
 * store. It is the only caller of kv_apply() and watch_publish() and the only writer of the applied
 * index/term and the applied counters, and the only one to change the stamps readers check their
 * copies against (node_view.h); the log driver (node_raft.c) hands it committed entries in
 * log order, whoever proposed them. Store thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "store/node_int.h"
#include "store/vec.h"

/* Events of one batch, in index order, each holding a reference. */
struct evlist {
    struct kv_event **v;
    size_t n, cap;
    bool lost; /* ENOMEM: some event was not recorded (its watchers miss it; the tree changed anyway) */
};

struct apply_ctx {
    struct node *n;
    struct evlist *evs;
    struct node_op *op; /* NULL: nobody waits here for this entry */
    bool sweep;
    uint64_t expired;
};

static void on_event(void *arg, struct kv_event *ev)
{
    struct apply_ctx *a = arg;
    struct evlist *l = a->evs;
    /* every change kv_apply makes comes out as an event naming its key (prevNode: the same key) */
    node_view_touch(a->n, ev->node.key, strlen(ev->node.key));
    if (a->op && !a->op->event)
        a->op->event = kv_event_ref(ev);
    if (a->sweep && ev->action == KV_ACT_DELETE)
        a->expired++;
    if (vec_reserve((void **)&l->v, &l->cap, l->n + 1, sizeof(*l->v), 64) != 0) {
        l->lost = true;
        return;
    }
    l->v[l->n++] = kv_event_ref(ev);
}

void node_apply(struct node *n, const struct node_entry *e, size_t count)
{
    struct evlist evs = {0};
    uint64_t expired = 0;
    pthread_rwlock_wrlock(&n->rw);
    node_view_write_begin(n);
    for (size_t i = 0; i < count; i++) {
        struct node_op *op = e[i].op;
        if (!e[i].data) { /* the log's own entry: moves the raft position only */
            __atomic_store_n(&n->applied_term, e[i].term, __ATOMIC_RELAXED);
            __atomic_store_n(&n->applied_index, e[i].index, __ATOMIC_RELAXED);
            continue;
        }
        struct kv_error scratch = {0};
        struct apply_ctx a = {n, &evs, op, false, 0};
        a.sweep = kv_cmd_peek_type(e[i].data, e[i].len) == KV_CMD_SWEEP;
        struct kv_cmd cmd;
        if (!a.sweep && kv_cmd_decode(e[i].data, e[i].len, &cmd) == 0)
            watch_prepare(n->hub, cmd.key, cmd.key_len); /* a token holding only its creation keeps it */
        int rc = kv_apply(n->kv, e[i].data, e[i].len, on_event, &a, op ? &op->err : &scratch);
        kv_error_clear(&scratch);
        expired += a.expired;
        __atomic_store_n(&n->applied_term, e[i].term, __ATOMIC_RELAXED);
        __atomic_store_n(&n->applied_index, e[i].index, __ATOMIC_RELAXED);
        __atomic_add_fetch(&n->st_applied, 1, __ATOMIC_RELAXED);
        if (op) {
            op->status = rc;
            op->etcd_index = kv_index(n->kv);
            node_fill_token(n, op, op->cmd.key, op->cmd.key_len);
        }
    }
    node_view_write_end(n);
    pthread_rwlock_unlock(&n->rw);
    __atomic_add_fetch(&n->st_expired, expired, __ATOMIC_RELAXED);
    for (size_t i = 0; i < evs.n; i++) {
        watch_publish(n->hub, evs.v[i], node_watch_fire, n);
        kv_event_unref(evs.v[i]);
    }
    free(evs.v);
    for (size_t i = 0; i < count; i++)
        if (e[i].op)
            node_complete(n, e[i].op, e[i].op->status);
    if (n->after_apply)
        n->after_apply(n);
}

void node_apply_restore(struct node *n, uint64_t index, uint64_t term)
{
    /* the tree was replaced wholesale (start-up, or a leader's snapshot): no copy survives */
    pthread_rwlock_wrlock(&n->rw);
    node_view_write_begin(n);
    node_view_touch_all(n);
    __atomic_store_n(&n->applied_term, term, __ATOMIC_RELAXED);
    __atomic_store_n(&n->applied_index, index, __ATOMIC_RELAXED);
    node_view_write_end(n);
    pthread_rwlock_unlock(&n->rw);
}
