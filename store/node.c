/* store/node.c — the store thread: a libuv loop that owns the kv tree and the watch hub, applies
 * writes, parks watches, expires tokens, and hands every op back through its client's post().
 *
 * Where this deviates from "the store thread owns everything, no locks": HTTP threads read the
 * tree directly under a pthread rwlock (node_rdlock) instead of sending every GET through the
 * queue. A GET is the hottest request (a member polls the token dir), a thread hop per read would
 * double its latency, and the store thread is the only writer, so readers contend only with the
 * short write-lock windows around kv_apply (one per batch of queued writes, not one per write).
 * The store thread itself reads without the lock: nobody else writes.
 *
 * Ops arrive on a mutex-protected queue and are drained in batches on uv_async wake-ups. Parked
 * watches all share one timeout, so their deadlines come in registration order: a FIFO list
 * with O(1) removal and a single uv timer armed for its head replaces a timer per watch.
 */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np */
#include "store/node.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <uv.h>

#include "store/kv_map.h"
#include "store/watch.h"

#define SWEEP_MIN_MS 1000
#define SWEEP_MAX_MS 60000
#define SWEEP_BATCH 1024

struct nclient {
    struct kv_mapent ent;
    uint8_t addr[16];
    uint32_t count;
};

struct nwatch {
    struct watcher w; /* first: fire() gets &w */
    struct node_op *op;
    struct node *node;
    uint64_t deadline; /* uv_now() ms */
    struct nwatch *dnext, *dprev;
    struct nclient *client;
};

struct node {
    struct node_config cfg;
    pthread_t thread;
    uv_loop_t loop;
    uv_async_t async;
    uv_timer_t wtimer;
    uv_timer_t stimer;
    pthread_mutex_t qmu;
    struct node_op *qhead, *qtail;
    bool stopping; /* under qmu */
    bool stopped;  /* node_stop finished: the thread is joined (owner thread only) */
    pthread_rwlock_t rw;
    struct kv *kv;
    struct watch_hub *hub;
    struct nwatch *dhead, *dtail;
    struct kv_map clients;
    uint64_t cluster_id;
    uint8_t *ebuf;
    size_t ecap;
    int64_t sweep_at; /* wall ms the sweep timer is armed for */
    /* read by other threads: __atomic */
    uint64_t raft_index;
    int running;
    uint64_t st_parked, st_applied, st_expired;
};

void node_config_defaults(struct node_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->history_per_token = 1000;
    cfg->watch_timeout_ms = 60000;
    cfg->max_watches_total = 65536;
    cfg->max_watches_per_client = 1024;
    cfg->token_ttl_ms = 168LL * 3600 * 1000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void complete(struct node *n, struct node_op *op, int status)
{
    op->status = status;
    op->raft_index = n ? __atomic_load_n(&n->raft_index, __ATOMIC_RELAXED) : 0;
    op->raft_term = 1;
    op->client->post(op->client, op);
}

/* ---------------------------------------------------------------- per-client watch counts */

static uint64_t addr_hash(const uint8_t *a)
{
    return kv_hash_mix(kv_hash_bytes(KV_HASH_INIT, a, 16));
}

static struct nclient *client_find(struct node *n, const uint8_t *addr)
{
    uint64_t h = addr_hash(addr);
    for (struct kv_mapent *e = kv_map_chain(&n->clients, h); e; e = e->next) {
        struct nclient *c = (struct nclient *)e;
        if (e->hash == h && memcmp(c->addr, addr, 16) == 0)
            return c;
    }
    return NULL;
}

static void client_release(struct node *n, struct nclient *c)
{
    if (c && --c->count == 0) {
        kv_map_remove(&n->clients, &c->ent);
        free(c);
    }
}

/* ---------------------------------------------------------------- parked watches */

static void deadline_unlink(struct node *n, struct nwatch *nw)
{
    if (nw->dprev)
        nw->dprev->dnext = nw->dnext;
    else
        n->dhead = nw->dnext;
    if (nw->dnext)
        nw->dnext->dprev = nw->dprev;
    else
        n->dtail = nw->dprev;
    nw->dnext = nw->dprev = NULL;
}

/* Leave the node's books (deadline list, client count, stats); the hub has unparked it already
 * or the caller cancels it. */
static void nwatch_finish(struct node *n, struct nwatch *nw, int status, struct kv_event *ev)
{
    deadline_unlink(n, nw);
    client_release(n, nw->client);
    __atomic_store_n(&n->st_parked, watch_nparked(n->hub), __ATOMIC_RELAXED);
    struct node_op *op = nw->op;
    op->priv_ = NULL;
    if (ev)
        op->event = kv_event_ref(ev);
    free(nw);
    complete(n, op, status);
}

static void on_fire(void *arg, struct watcher *w, struct kv_event *ev)
{
    nwatch_finish(arg, (struct nwatch *)w, NODE_OK, ev);
}

static void arm_wtimer(struct node *n);

static void on_wtimer(uv_timer_t *t)
{
    struct node *n = t->data;
    uint64_t now = uv_now(&n->loop);
    while (n->dhead && n->dhead->deadline <= now) {
        struct nwatch *nw = n->dhead;
        watch_cancel(n->hub, &nw->w);
        nwatch_finish(n, nw, NODE_ETIMEOUT, NULL);
    }
    arm_wtimer(n);
}

static void arm_wtimer(struct node *n)
{
    if (!n->dhead)
        return;
    uint64_t now = uv_now(&n->loop);
    uint64_t d = n->dhead->deadline > now ? n->dhead->deadline - now : 0;
    uv_timer_start(&n->wtimer, on_wtimer, d, 0);
}

static void do_watch(struct node *n, struct node_op *op)
{
    struct nwatch *nw = calloc(1, sizeof(*nw));
    if (!nw) {
        complete(n, op, NODE_ENOMEM);
        return;
    }
    nw->op = op;
    nw->node = n;
    nw->w.key = op->key;
    nw->w.key_len = op->key_len;
    nw->w.recursive = op->recursive;
    nw->w.cookie = op;
    uint64_t cur = kv_index(n->kv);
    op->etcd_index = cur;
    struct kv_event *ev = NULL;
    int rc = watch_start(n->hub, &nw->w, op->wait_index, cur, &ev, &op->err);
    if (rc != 1) {
        free(nw);
        op->event = ev; /* the reference watch_start gave us */
        complete(n, op, rc);
        return;
    }
    if (n->cfg.max_watches_total && watch_nparked(n->hub) >= n->cfg.max_watches_total) {
        free(nw);
        complete(n, op, NODE_ETOOMANYWATCHES);
        return;
    }
    struct nclient *c = client_find(n, op->client_addr);
    if (n->cfg.max_watches_per_client && c && c->count >= n->cfg.max_watches_per_client) {
        free(nw);
        complete(n, op, NODE_ETOOMANYWATCHES);
        return;
    }
    if (!c) {
        c = calloc(1, sizeof(*c));
        if (!c) {
            free(nw);
            complete(n, op, NODE_ENOMEM);
            return;
        }
        memcpy(c->addr, op->client_addr, 16);
        c->ent.hash = addr_hash(c->addr);
        if (kv_map_insert(&n->clients, &c->ent) != 0) {
            free(c);
            free(nw);
            complete(n, op, NODE_ENOMEM);
            return;
        }
    }
    if (watch_park(n->hub, &nw->w) != 0) {
        c->count++;
        client_release(n, c);
        free(nw);
        complete(n, op, NODE_ENOMEM);
        return;
    }
    c->count++;
    nw->client = c;
    op->priv_ = nw;
    int64_t tmo = n->cfg.watch_timeout_ms > 0 ? n->cfg.watch_timeout_ms : 60000;
    nw->deadline = uv_now(&n->loop) + (uint64_t)tmo;
    nw->dprev = n->dtail;
    if (n->dtail)
        n->dtail->dnext = nw;
    else
        n->dhead = nw;
    n->dtail = nw;
    if (n->dhead == nw)
        arm_wtimer(n);
    __atomic_store_n(&n->st_parked, watch_nparked(n->hub), __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------- writes */

static void maybe_rearm_sweep(struct node *n);

static void on_write_event(void *arg, struct kv_event *ev)
{
    struct node_op *op = arg;
    if (!op->event)
        op->event = kv_event_ref(ev);
}

/* Encode a command into the node's reused buffer. NULL on ENOMEM. */
static const uint8_t *encode(struct node *n, const struct kv_cmd *c, size_t *len)
{
    size_t need = kv_cmd_encoded_len(c);
    if (need > n->ecap) {
        size_t cap = n->ecap ? n->ecap : 256;
        while (cap < need)
            cap *= 2;
        uint8_t *b = realloc(n->ebuf, cap);
        if (!b)
            return NULL;
        n->ebuf = b;
        n->ecap = cap;
    }
    *len = kv_cmd_encode_to(c, n->ebuf, n->ecap);
    return n->ebuf;
}

/* Apply a run of consecutive WRITE ops [first, stop) under one write lock, then publish their
 * events and complete them in order. */
static void do_writes(struct node *n, struct node_op *first, struct node_op *stop)
{
    int64_t now = wall_ms();
    pthread_rwlock_wrlock(&n->rw);
    for (struct node_op *op = first; op != stop; op = op->next_) {
        op->cmd.now_ms = now;
        op->event = NULL;
        memset(&op->err, 0, sizeof(op->err));
        size_t len;
        const uint8_t *buf = encode(n, &op->cmd, &len);
        if (!buf) {
            op->status = NODE_ENOMEM;
        } else {
            op->status = kv_apply(n->kv, buf, len, on_write_event, op, &op->err);
            __atomic_add_fetch(&n->raft_index, 1, __ATOMIC_RELAXED);
            __atomic_add_fetch(&n->st_applied, 1, __ATOMIC_RELAXED);
        }
        op->etcd_index = kv_index(n->kv);
    }
    pthread_rwlock_unlock(&n->rw);
    for (struct node_op *op = first; op != stop;) {
        struct node_op *next = op->next_;
        if (op->event)
            watch_publish(n->hub, op->event, on_fire, n);
        complete(n, op, op->status);
        op = next;
    }
    maybe_rearm_sweep(n);
}

/* ---------------------------------------------------------------- token expiry */

struct sweep_events {
    struct kv_event **v;
    size_t n, cap;
};

static void on_sweep_event(void *arg, struct kv_event *ev)
{
    struct sweep_events *s = arg;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct kv_event **v = realloc(s->v, cap * sizeof(*v));
        if (!v)
            return; /* the tree changed anyway; only the watchers of this event miss it */
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = kv_event_ref(ev);
}

static void on_stimer(uv_timer_t *t);

/* Delay until the next sweep: the next due time, but at most every second, at least every 60 s. */
static int64_t sweep_delay(struct node *n, int64_t now)
{
    int64_t due = kv_next_due(n->kv, n->cfg.token_ttl_ms);
    int64_t d = due == INT64_MAX ? SWEEP_MAX_MS : due - now;
    if (d < SWEEP_MIN_MS)
        d = SWEEP_MIN_MS;
    if (d > SWEEP_MAX_MS)
        d = SWEEP_MAX_MS;
    return d;
}

static void rearm_sweep(struct node *n, int64_t now)
{
    int64_t d = sweep_delay(n, now);
    n->sweep_at = now + d;
    uv_timer_start(&n->stimer, on_stimer, (uint64_t)d, 0);
}

/* After writes: a new TTL or token may be due before the armed sweep. Only ever pulls the sweep
 * earlier, so a steady stream of writes cannot keep postponing it. */
static void maybe_rearm_sweep(struct node *n)
{
    int64_t now = wall_ms();
    if (now + sweep_delay(n, now) < n->sweep_at)
        rearm_sweep(n, now);
}

static void on_stimer(uv_timer_t *t)
{
    struct node *n = t->data;
    int64_t now = wall_ms();
    if (kv_next_due(n->kv, n->cfg.token_ttl_ms) <= now) {
        struct kv_cmd c;
        memset(&c, 0, sizeof(c));
        c.type = KV_CMD_SWEEP;
        c.now_ms = now;
        c.key = "";
        c.token_ttl_ms = n->cfg.token_ttl_ms > 0 ? n->cfg.token_ttl_ms : 0;
        c.sweep_max = SWEEP_BATCH;
        size_t len;
        const uint8_t *buf = encode(n, &c, &len);
        if (buf) {
            struct sweep_events s = {0};
            struct kv_error err = {0};
            pthread_rwlock_wrlock(&n->rw);
            (void)kv_apply(n->kv, buf, len, on_sweep_event, &s, &err);
            __atomic_add_fetch(&n->raft_index, 1, __ATOMIC_RELAXED);
            __atomic_add_fetch(&n->st_applied, 1, __ATOMIC_RELAXED);
            pthread_rwlock_unlock(&n->rw);
            kv_error_clear(&err);
            for (size_t i = 0; i < s.n; i++) {
                if (s.v[i]->action == KV_ACT_DELETE)
                    __atomic_add_fetch(&n->st_expired, 1, __ATOMIC_RELAXED);
                watch_publish(n->hub, s.v[i], on_fire, n);
                kv_event_unref(s.v[i]);
            }
            free(s.v);
        }
    }
    rearm_sweep(n, now);
}

/* ---------------------------------------------------------------- the loop */

static void shutdown_loop(struct node *n, struct node_op *ops)
{
    while (ops) {
        struct node_op *next = ops->next_;
        complete(n, ops, NODE_EUNAVAILABLE);
        ops = next;
    }
    while (n->dhead) {
        struct nwatch *nw = n->dhead;
        watch_cancel(n->hub, &nw->w);
        nwatch_finish(n, nw, NODE_ETIMEOUT, NULL);
    }
    __atomic_store_n(&n->running, 0, __ATOMIC_RELEASE);
    uv_close((uv_handle_t *)&n->async, NULL);
    uv_close((uv_handle_t *)&n->wtimer, NULL);
    uv_close((uv_handle_t *)&n->stimer, NULL);
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
            do_writes(n, op, stop);
            op = stop;
            continue;
        }
        struct node_op *next = op->next_;
        if (op->type == NODE_OP_WATCH) {
            do_watch(n, op);
        } else if (op->type == NODE_OP_QUORUM) {
            /* a single member: everything applied is committed */
            op->etcd_index = kv_index(n->kv);
            complete(n, op, NODE_OK);
        } else {
            complete(n, op, NODE_EUNAVAILABLE);
        }
        op = next;
    }
}

static void *thread_main(void *arg)
{
    struct node *n = arg;
    uv_run(&n->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void node_destroy(struct node *n)
{
    if (n->clients.buckets) {
        for (size_t i = 0; i <= n->clients.mask; i++) {
            struct kv_mapent *e = n->clients.buckets[i];
            while (e) {
                struct kv_mapent *next = e->next;
                free(e);
                e = next;
            }
        }
    }
    kv_map_free(&n->clients);
    watch_hub_free(n->hub);
    kv_free(n->kv);
    free(n->ebuf);
    pthread_rwlock_destroy(&n->rw);
    pthread_mutex_destroy(&n->qmu);
    free(n);
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
    /* glibc's default rwlock lets a steady stream of readers starve the writer; GET load must
     * not stall registrations, so writers go first. */
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&n->rw, &ra);
    pthread_rwlockattr_destroy(&ra);
    kv_map_init(&n->clients);
    n->kv = kv_new();
    n->hub = watch_hub_new(n->cfg.history_per_token);
    if (!n->kv || !n->hub) {
        snprintf(errbuf, errlen, "out of memory");
        node_destroy(n);
        return -1;
    }
    n->cluster_id = cfg->cluster_id;
    while (!n->cluster_id) {
        if (getrandom(&n->cluster_id, sizeof(n->cluster_id), 0) != (ssize_t)sizeof(n->cluster_id) &&
            errno != EINTR) {
            snprintf(errbuf, errlen, "getrandom: %s", strerror(errno));
            node_free(n);
            return -1;
        }
    }
    n->raft_index = kv_index(n->kv);
    int rc = uv_loop_init(&n->loop);
    if (rc != 0) {
        snprintf(errbuf, errlen, "uv_loop_init: %s", uv_strerror(rc));
        node_destroy(n);
        return -1;
    }
    uv_async_init(&n->loop, &n->async, on_async);
    uv_timer_init(&n->loop, &n->wtimer);
    uv_timer_init(&n->loop, &n->stimer);
    n->async.data = n->wtimer.data = n->stimer.data = n;
    rearm_sweep(n, wall_ms());
    n->running = 1;
    rc = pthread_create(&n->thread, NULL, thread_main, n);
    if (rc != 0) {
        snprintf(errbuf, errlen, "pthread_create: %s", strerror(rc));
        uv_close((uv_handle_t *)&n->async, NULL);
        uv_close((uv_handle_t *)&n->wtimer, NULL);
        uv_close((uv_handle_t *)&n->stimer, NULL);
        uv_run(&n->loop, UV_RUN_DEFAULT);
        uv_loop_close(&n->loop);
        node_destroy(n);
        return -1;
    }
    *out = n;
    return 0;
}

void node_stop(struct node *n)
{
    if (!n)
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
    if (!n->stopped)
        node_stop(n);
    node_destroy(n);
}

void node_submit(struct node *n, struct node_op *op)
{
    op->next_ = NULL;
    op->priv_ = NULL;
    op->event = NULL;
    op->status = 0;
    memset(&op->err, 0, sizeof(op->err));
    pthread_mutex_lock(&n->qmu);
    if (n->stopping) {
        pthread_mutex_unlock(&n->qmu);
        complete(n, op, NODE_EUNAVAILABLE);
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

void node_rdlock(struct node *n)
{
    pthread_rwlock_rdlock(&n->rw);
}

void node_rdunlock(struct node *n)
{
    pthread_rwlock_unlock(&n->rw);
}

const struct kv *node_kv(struct node *n)
{
    return n->kv;
}

void node_raft_state(struct node *n, uint64_t *index, uint64_t *term)
{
    if (index)
        *index = __atomic_load_n(&n->raft_index, __ATOMIC_RELAXED);
    if (term)
        *term = 1;
}

uint64_t node_cluster_id(struct node *n)
{
    return n->cluster_id;
}

bool node_healthy(struct node *n, char *reason, size_t len)
{
    if (__atomic_load_n(&n->running, __ATOMIC_ACQUIRE))
        return true;
    if (reason && len)
        snprintf(reason, len, "store thread is not running");
    return false;
}

void node_stats(struct node *n, struct node_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->parked_watches = __atomic_load_n(&n->st_parked, __ATOMIC_RELAXED);
    st->applied = __atomic_load_n(&n->st_applied, __ATOMIC_RELAXED);
    st->expired_tokens = __atomic_load_n(&n->st_expired, __ATOMIC_RELAXED);
    pthread_rwlock_rdlock(&n->rw);
    st->tokens = kv_ntokens(n->kv);
    st->nodes = kv_nnodes(n->kv);
    pthread_rwlock_unlock(&n->rw);
}
