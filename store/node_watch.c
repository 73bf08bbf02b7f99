/* store/node_watch.c — parked watches on the store thread: the per-client and total caps, the
 * deadline list and its one timer, firing from the hub, and completing them at shutdown.
 *
 * All parked watches share one timeout, so their deadlines come in registration order: a FIFO
 * list with O(1) removal and a single uv timer armed for its head replaces a timer per watch.
 */
#include <stdlib.h>
#include <string.h>

#include "store/list.h"
#include "store/node_int.h"

static uint64_t addr_hash(const uint8_t *a)
{
    return hash_of(HASH_INIT, a, 16);
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

/* The client's counter, created at 0 if missing; NULL on ENOMEM. */
static struct nclient *client_get(struct node *n, const uint8_t *addr)
{
    struct nclient *c = client_find(n, addr);
    if (c)
        return c;
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    memcpy(c->addr, addr, 16);
    c->ent.hash = addr_hash(c->addr);
    if (kv_map_insert(&n->clients, &c->ent) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

static void client_release(struct node *n, struct nclient *c)
{
    if (c && c->count == 0) {
        kv_map_remove(&n->clients, &c->ent);
        free(c);
    }
}

static void count_parked(struct node *n)
{
    __atomic_store_n(&n->st_parked, watch_nparked(n->hub), __ATOMIC_RELAXED);
}

/* Leave the node's books (deadline list, client count, stats) and complete the op; the hub has
 * unparked it already or the caller cancelled it. */
static void nwatch_finish(struct node *n, struct nwatch *nw, int status, struct kv_event *ev)
{
    LIST_UNLINK_T(n->dhead, n->dtail, nw, dprev, dnext);
    nw->client->count--;
    client_release(n, nw->client);
    count_parked(n);
    struct node_op *op = nw->op;
    op->priv_ = NULL;
    if (ev)
        op->event = kv_event_ref(ev);
    free(nw);
    node_fill_token(n, op, op->key, op->key_len);
    node_complete(n, op, status);
}

void node_watch_fire(void *arg, struct watcher *w, struct kv_event *ev)
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

/* Complete a watch that did not park: an answer from history, an error, or a refusal. */
static void answer_now(struct node *n, struct node_op *op, int status)
{
    node_fill_token(n, op, op->key, op->key_len);
    node_complete(n, op, status);
}

void node_watch_start(struct node *n, struct node_op *op)
{
    struct nwatch *nw = calloc(1, sizeof(*nw));
    if (!nw) {
        answer_now(n, op, NODE_ENOMEM);
        return;
    }
    nw->op = op;
    nw->w.key = op->key;
    nw->w.key_len = op->key_len;
    nw->w.recursive = op->recursive;
    nw->w.cookie = op;
    uint64_t cur = kv_index(n->kv);
    op->etcd_index = cur;
    struct kv_event *ev = NULL;
    int rc = watch_start(n->hub, &nw->w, op->wait_index, cur, &ev, &op->err);
    int status = NODE_OK;
    struct nclient *c = NULL;
    if (rc != 1) {
        op->event = ev; /* the reference watch_start gave us */
        status = rc;
    } else if (n->cfg.max_watches_total && watch_nparked(n->hub) >= n->cfg.max_watches_total) {
        status = NODE_ETOOMANYWATCHES;
    } else if (!(c = client_get(n, op->client_addr))) {
        status = NODE_ENOMEM;
    } else if (n->cfg.max_watches_per_client && c->count >= n->cfg.max_watches_per_client) {
        status = NODE_ETOOMANYWATCHES;
    } else if (watch_park(n->hub, &nw->w) != 0) {
        client_release(n, c);
        status = NODE_ENOMEM;
    } else {
        c->count++;
        nw->client = c;
        op->priv_ = nw;
        int64_t tmo = n->cfg.watch_timeout_ms > 0 ? n->cfg.watch_timeout_ms : 60000;
        nw->deadline = uv_now(&n->loop) + (uint64_t)tmo;
        LIST_APPEND_T(n->dhead, n->dtail, nw, dprev, dnext);
        if (n->dhead == nw)
            arm_wtimer(n);
        count_parked(n);
        return;
    }
    free(nw);
    answer_now(n, op, status);
}

void node_watch_cancel(struct node *n, struct node_op *target)
{
    struct nwatch *nw = target->type == NODE_OP_WATCH ? target->priv_ : NULL;
    if (!nw)
        return; /* answered already, or never parked */
    watch_cancel(n->hub, &nw->w);
    nwatch_finish(n, nw, NODE_ECANCELED, NULL);
}

void node_watch_init(struct node *n)
{
    kv_map_init(&n->clients);
    uv_timer_init(&n->loop, &n->wtimer);
    n->wtimer.data = n;
}

void node_watch_reset(struct node *n)
{
    while (n->dhead) {
        struct nwatch *nw = n->dhead;
        watch_cancel(n->hub, &nw->w);
        nwatch_finish(n, nw, NODE_ETIMEOUT, NULL);
    }
}

void node_watch_close(struct node *n)
{
    node_watch_reset(n);
    uv_close((uv_handle_t *)&n->wtimer, NULL);
}

void node_watch_free(struct node *n)
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
}
