/* api/handoff.c — the hand-off of a request to the store thread and back: an api_op carries it,
 * node_submit() sends it, and the node's completion returns through an h2o_multithread queue to the
 * HTTP thread that owns the request (api_thread_init/dispose set that queue up). The trip to the
 * rate limiter takes the same road: a PENDING answer comes back through the same queue (its own
 * receiver), raced by a timeout on the same thread, so no lock is needed.
 */
#include "api/handoff.h"

#include "api/getcache.h"

#include <stdlib.h>

/* A question out to the limiter. op is NULL once the timeout decided without it: the answer is
 * then only freed. Touched by the limiter only through api_rate_answer. */
struct api_rate_wait {
    h2o_multithread_message_t msg;
    h2o_multithread_receiver_t *receiver;
    struct api_op *op;
    enum api_rate_answer answer;
    uint32_t retry_after;
};

static void on_rate_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);

/* node_client.post, called on the store thread: queue the op to its HTTP thread. */
static void client_post(struct node_client *self, struct node_op *op)
{
    struct api_op *aop = op->data;
    struct api_thread_priv *p = aop->t->priv;
    struct api_msg *m = op == &aop->cancel ? &aop->cmsg : &aop->msg;
    m->op = op;
    h2o_multithread_send_message(&p->receiver, &m->msg);
}

/* On the HTTP thread: run each completed op's done(). */
static void on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        struct api_msg *am = H2O_STRUCT_FROM_MEMBER(struct api_msg, msg, m);
        am->op->done(am->op);
    }
}

int api_thread_init(struct api_thread *t, struct api *api, h2o_context_t *ctx)
{
    struct api_thread_priv *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -1;
    t->api = api;
    t->ctx = ctx;
    t->priv = p;
    p->t = t;
    p->queue = h2o_multithread_create_queue(ctx->loop);
    h2o_multithread_register_receiver(p->queue, &p->receiver, on_messages);
    p->client.post = client_post;
    h2o_multithread_register_receiver(p->queue, &p->rate_receiver, on_rate_messages);
    h2o_timeout_init(ctx->loop, &p->rate_timeout, api->cfg.rate_timeout_ms ? api->cfg.rate_timeout_ms : 200);
    p->getcache = api_getcache_new(); /* without it (ENOMEM) reads are rendered every time */
    return 0;
}

void api_thread_dispose(struct api_thread *t)
{
    struct api_thread_priv *p = t->priv;
    if (p == NULL)
        return;
    h2o_multithread_unregister_receiver(p->queue, &p->receiver);
    h2o_multithread_unregister_receiver(p->queue, &p->rate_receiver);
    h2o_timeout_dispose(t->ctx->loop, &p->rate_timeout);
    h2o_multithread_destroy_queue(p->queue);
    api_getcache_free(p->getcache);
    free(p);
    t->priv = NULL;
}

/* The request's pool dropped its reference to the slot: the request is gone. */
static void on_slot_dispose(void *p)
{
    struct api_op **slot = p;
    if (*slot != NULL)
        (*slot)->req = NULL;
}

struct api_op *api_op_new(struct api_thread *t, h2o_req_t *req, enum api_route_kind route, size_t extra)
{
    struct api_op *op = calloc(1, sizeof(*op) + extra);
    if (op == NULL)
        return NULL;
    op->t = t;
    op->req = req;
    op->route = route;
    op->slot = h2o_mem_alloc_shared(&req->pool, sizeof(*op->slot), on_slot_dispose);
    *op->slot = op;
    op->op.client = &((struct api_thread_priv *)t->priv)->client;
    op->op.data = op;
    op->refs = 1;
    return op;
}

void api_op_submit(struct api_op *op)
{
    node_submit(op->t->api->node, &op->op);
}

h2o_req_t *api_op_take_req(struct api_op *op)
{
    h2o_req_t *req = op->req;
    if (req != NULL) {
        *op->slot = NULL;
        op->req = NULL;
    }
    return req;
}

void api_op_free(struct api_op *op)
{
    if (--op->refs > 0)
        return;
    api_op_take_req(op);
    if (op->op.event != NULL)
        kv_event_unref(op->op.event);
    kv_error_clear(&op->op.err);
    free(op);
}

/* ---------------------------------------------------------------- the trip to the limiter */

void api_op_rate_add(struct api_op *op, enum api_rl_class cls, const void *key, size_t len)
{
    struct api_rate_state *rs = &op->rate;
    if (rs->n >= sizeof(rs->q) / sizeof(rs->q[0]))
        return;
    struct api_rate_q *q = &rs->q[rs->n++];
    q->cls = cls;
    q->len = (uint32_t)(len < sizeof(q->key) ? len : sizeof(q->key));
    memcpy(q->key, key, q->len);
}

static void rate_finish(struct api_op *op, int refused, uint32_t retry_after)
{
    if (refused >= 0) {
        if (retry_after == 0)
            retry_after = 1;
        atomic_fetch_add_explicit(&op->t->api->rate_limited, 1, memory_order_relaxed);
    }
    op->rate.cont(op, refused, retry_after);
}

/* The per-process decision of the current bucket (no wait: the limiter must answer now). */
static enum api_rate_answer rate_now(struct api_op *op, uint32_t *retry_after)
{
    const struct api_config *cfg = &op->t->api->cfg;
    const struct api_rate_q *q = &op->rate.q[op->rate.i];
    *retry_after = 0;
    enum api_rate_answer a = cfg->rate(cfg->rate_arg, q->cls, q->key, q->len, retry_after, NULL);
    return a == API_RATE_DENY ? API_RATE_DENY : API_RATE_ALLOW;
}

/* Ask the buckets from the current one on, until a question is left pending or the check is over. */
static void rate_ask(struct api_op *op)
{
    struct api_rate_state *rs = &op->rate;
    const struct api_config *cfg = &op->t->api->cfg;
    while (rs->i < rs->n) {
        const struct api_rate_q *q = &rs->q[rs->i];
        struct api_rate_wait *w = calloc(1, sizeof(*w));
        if (w != NULL) {
            w->receiver = &((struct api_thread_priv *)op->t->priv)->rate_receiver;
            w->op = op;
        }
        uint32_t retry_after = 0;
        enum api_rate_answer a = cfg->rate(cfg->rate_arg, q->cls, q->key, q->len, &retry_after, w);
        if (a == API_RATE_PENDING && w != NULL) {
            rs->wait = w;
            struct api_thread_priv *p = op->t->priv;
            h2o_timeout_link(op->t->ctx->loop, &p->rate_timeout, &rs->timer);
            return;
        }
        free(w);
        if (a != API_RATE_ALLOW && a != API_RATE_DENY)
            a = rate_now(op, &retry_after);
        if (a == API_RATE_DENY) {
            rate_finish(op, rs->i, retry_after);
            return;
        }
        rs->i++;
    }
    rate_finish(op, -1, 0);
}

/* A decided (or UNKNOWN) answer for the current bucket; go on from there. */
static void rate_step(struct api_op *op, enum api_rate_answer a, uint32_t retry_after)
{
    if (a != API_RATE_ALLOW && a != API_RATE_DENY)
        a = rate_now(op, &retry_after);
    if (a == API_RATE_DENY) {
        rate_finish(op, op->rate.i, retry_after);
        return;
    }
    op->rate.i++;
    rate_ask(op);
}

/* The limiter did not answer in time: decide per process, leave the late answer to be freed. */
static void on_rate_timeout(h2o_timeout_entry_t *entry)
{
    struct api_op *op = H2O_STRUCT_FROM_MEMBER(struct api_op, rate.timer, entry);
    op->rate.wait->op = NULL;
    op->rate.wait = NULL;
    rate_step(op, API_RATE_UNKNOWN, 0);
}

void api_op_rate_check(struct api_op *op, api_rate_cont cont)
{
    struct api_rate_state *rs = &op->rate;
    rs->cont = cont;
    rs->i = 0;
    rs->wait = NULL;
    rs->timer.cb = on_rate_timeout;
    if (op->t->api->cfg.rate == NULL || rs->n == 0) {
        rate_finish(op, -1, 0);
        return;
    }
    rate_ask(op);
}

void api_rate_answer(struct api_rate_wait *w, enum api_rate_answer a, uint32_t retry_after)
{
    w->answer = a;
    w->retry_after = retry_after;
    h2o_multithread_send_message(w->receiver, &w->msg);
}

/* On the HTTP thread: the limiter's answers. One that lost the race with the timeout is dropped. */
static void on_rate_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        struct api_rate_wait *w = H2O_STRUCT_FROM_MEMBER(struct api_rate_wait, msg, m);
        struct api_op *op = w->op;
        enum api_rate_answer a = w->answer;
        uint32_t retry_after = w->retry_after;
        free(w);
        if (op == NULL)
            continue;
        h2o_timeout_unlink(&op->rate.timer);
        op->rate.wait = NULL;
        if (a != API_RATE_ALLOW && a != API_RATE_DENY)
            a = API_RATE_UNKNOWN;
        rate_step(op, a, retry_after);
    }
}

/* ---- noticing a client that hangs up during a parked watch ---- */

static void on_cancel_done(struct node_op *nop)
{
    api_op_free(nop->data);
}

void api_op_unwatch_client(struct api_op *op)
{
    if (op->sock == NULL)
        return;
    h2o_socket_read_stop(op->sock);
    op->sock->data = op->sock_data;
    op->sock = NULL;
}

/* The client's socket became readable while its request waits: EOF or an error means it is gone;
 * bytes mean it pipelined a request, which h2o reads after this answer (we stop looking). */
static void on_client_read(h2o_socket_t *sock, const char *err)
{
    struct api_op *op = sock->data;
    api_op_unwatch_client(op);
    if (err == NULL)
        return;
    op->cancel.type = NODE_OP_CANCEL;
    op->cancel.target = &op->op;
    op->cancel.client = op->op.client;
    op->cancel.data = op;
    op->cancel.done = on_cancel_done;
    op->refs++;
    node_submit(op->t->api->node, &op->cancel);
}

void api_op_watch_client(struct api_op *op, h2o_req_t *req)
{
    /* HTTP/2 shares the socket between streams: only HTTP/1 connections are watched */
    if (req->version >= 0x200 || req->conn->callbacks->get_socket == NULL)
        return;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL)
        return;
    /* h2o stopped reading when the request was complete and starts again after the answer; until
     * then its sock->data is ours to borrow */
    op->sock = sock;
    op->sock_data = sock->data;
    sock->data = op;
    h2o_socket_read_start(sock, on_client_read);
}
