/* store/node_loop.c — the store thread's op queue, loop and lifecycle: ops arrive on a
 * mutex-protected queue, are drained in batches on uv_async wake-ups and dispatched to their rooms
 * (writes to the log driver, watches to node_watch.c, quorum reads to the driver).
 *
 * Where this deviates from "the store thread owns everything, no locks": HTTP threads read the
 * tree directly under a pthread rwlock (node_rdlock) instead of sending every GET through the
 * queue. A GET is the hottest request (a member polls the token dir), a thread hop per read would
 * double its latency, and the store thread is the only writer, so readers contend only with the
 * short write-lock windows of the apply seam (one per batch of committed entries, not one per
 * write). The store thread itself reads without the lock: nobody else writes.
 */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "store/node_int.h"
#include "store/node_raft.h"

/* ---------------------------------------------------------------- the loop */

static void shutdown_loop(struct node *n, struct node_op *ops)
{
    node_raft_stop(n);
    while (ops) {
        struct node_op *next = ops->next_;
        node_complete(n, ops, NODE_EUNAVAILABLE);
        ops = next;
    }
    node_watch_close(n);
    node_expiry_close(n);
    uv_close((uv_handle_t *)&n->async, NULL);
}

static void on_async(uv_async_t *a)
{
    struct node *n = a->data;
    pthread_mutex_lock(&n->qmu);
    struct node_op *op = n->qhead;
    n->qhead = n->qtail = NULL;
    bool stopping = n->stopping;
    pthread_mutex_unlock(&n->qmu);
    if (stopping) {
        shutdown_loop(n, op);
        return;
    }
    while (op) {
        if (op->type == NODE_OP_WRITE) {
            struct node_op *stop = op->next_;
            while (stop && stop->type == NODE_OP_WRITE)
                stop = stop->next_;
            node_raft_propose(n, op, stop);
            op = stop;
            continue;
        }
        struct node_op *next = op->next_;
        if (op->type == NODE_OP_WATCH)
            node_watch_start(n, op);
        else if (op->type == NODE_OP_QUORUM)
            node_raft_read(n, op);
        else if (op->type == NODE_OP_HANDOVER)
            node_raft_handover(n, op);
        else if (op->type == NODE_OP_MEMBER)
            node_raft_member(n, op);
        else if (op->type == NODE_OP_CANCEL)
            node_complete(n, op, (node_watch_cancel(n, op->target), NODE_OK));
        else
            node_complete(n, op, NODE_EUNAVAILABLE);
        op = next;
    }
}

static void *thread_main(void *arg)
{
    struct node *n = arg;
    uv_run(&n->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---------------------------------------------------------------- lifecycle */

static void node_destroy(struct node *n)
{
    node_watch_free(n);
    node_raft_free(n);
    watch_hub_free(n->hub);
    kv_free(n->kv);
    pthread_rwlock_destroy(&n->rw);
    pthread_mutex_destroy(&n->qmu);
    pthread_mutex_destroy(&n->mmu);
    free(n);
}

/* Close the handles of a loop whose thread never ran, and run it once so the closes finish. */
static void abandon_loop(struct node *n)
{
    node_raft_stop(n); /* the driver's own handles, if it got that far */
    uv_close((uv_handle_t *)&n->async, NULL);
    node_watch_close(n);
    node_expiry_close(n);
    uv_run(&n->loop, UV_RUN_DEFAULT);
    uv_loop_close(&n->loop);
}

int node_start(struct node **out, const struct node_config *cfg, char *errbuf, size_t errlen)
{
    struct node *n = calloc(1, sizeof(*n));
    if (!n) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    n->cfg = *cfg;
    if (!n->cfg.history_per_token)
        n->cfg.history_per_token = 1000;
    pthread_mutex_init(&n->qmu, NULL);
    pthread_mutex_init(&n->mmu, NULL);
    /* glibc's default rwlock lets a steady stream of readers starve the writer; GET load must
     * not stall registrations, so writers go first. */
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&n->rw, &ra);
    pthread_rwlockattr_destroy(&ra);
    n->health_reason = "the store is starting";
    n->kv = kv_new();
    n->hub = watch_hub_new(n->cfg.history_per_token);
    if (!n->kv || !n->hub) {
        snprintf(errbuf, errlen, "out of memory");
        goto fail;
    }
    watch_hub_bind(n->hub, n->kv);
    n->cluster_id = cfg->cluster_id;
    if (node_draw_id(&n->cluster_id, errbuf, errlen) != 0)
        goto fail;
    int rc = uv_loop_init(&n->loop);
    if (rc != 0) {
        snprintf(errbuf, errlen, "uv_loop_init: %s", uv_strerror(rc));
        goto fail;
    }
    uv_async_init(&n->loop, &n->async, on_async);
    n->async.data = n;
    node_watch_init(n);
    node_expiry_init(n);
    n->after_apply = node_expiry_after_apply;
    if (node_raft_start(n, errbuf, errlen) != 0) {
        abandon_loop(n);
        goto fail;
    }
    rc = pthread_create(&n->thread, NULL, thread_main, n);
    if (rc != 0) {
        snprintf(errbuf, errlen, "pthread_create: %s", strerror(rc));
        abandon_loop(n);
        goto fail;
    }
    *out = n;
    return 0;
fail:
    node_destroy(n);
    return -1;
}

void node_stop(struct node *n)
{
    if (!n || n->stopped)
        return;
    pthread_mutex_lock(&n->qmu);
    n->stopping = true;
    uv_async_send(&n->async);
    pthread_mutex_unlock(&n->qmu);
    pthread_join(n->thread, NULL);
    uv_loop_close(&n->loop);
    n->stopped = true;
}

void node_free(struct node *n)
{
    if (!n)
        return;
    node_stop(n);
    node_destroy(n);
}

void node_submit(struct node *n, struct node_op *op)
{
    op->next_ = NULL;
    op->priv_ = NULL;
    op->deadline_ = 0;
    op->event = NULL;
    op->status = 0;
    memset(&op->err, 0, sizeof(op->err));
    memset(&op->token, 0, sizeof(op->token));
    pthread_mutex_lock(&n->qmu);
    if (n->stopping) {
        pthread_mutex_unlock(&n->qmu);
        node_complete(n, op, NODE_EUNAVAILABLE);
        return;
    }
    if (n->qtail)
        n->qtail->next_ = op;
    else
        n->qhead = op;
    n->qtail = op;
    /* under the lock: the loop closes the handle only after it has seen `stopping` */
    uv_async_send(&n->async);
    pthread_mutex_unlock(&n->qmu);
}

/* ---------------------------------------------------------------- handover */

struct handover_wait {
    struct node_client c;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
};

static void handover_post(struct node_client *self, struct node_op *op)
{
    struct handover_wait *w = (struct handover_wait *)self;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void node_handover(struct node *n, int64_t timeout_ms)
{
    struct handover_wait w = {.c = {handover_post}};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    struct node_op op;
    memset(&op, 0, sizeof(op));
    op.type = NODE_OP_HANDOVER;
    op.wait_index = timeout_ms > 0 ? (uint64_t)timeout_ms : 0;
    op.client = &w.c;
    node_submit(n, &op);
    pthread_mutex_lock(&w.mu);
    while (!w.done) /* the store thread completes it by its own deadline, or at shutdown */
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
}
