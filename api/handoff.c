/* api/handoff.c — the hand-off of a request to the store thread and back: an api_op carries it,
 * node_submit() sends it, and the node's completion returns through an h2o_multithread queue to the
 * HTTP thread that owns the request (api_thread_init/dispose set that queue up).
 */
#include "api/handoff.h"

#include <stdlib.h>

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
    return 0;
}

void api_thread_dispose(struct api_thread *t)
{
    struct api_thread_priv *p = t->priv;
    if (p == NULL)
        return;
    h2o_multithread_unregister_receiver(p->queue, &p->receiver);
    h2o_multithread_destroy_queue(p->queue);
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
