/* api/handoff.h — a request's trip to the store thread and back. A handler allocates an api_op,
 * fills op.op (node.h) and submits it; the store thread completes it and the completion is queued
 * back to the HTTP thread that owns the request, where op.op.done runs. The request may vanish
 * meanwhile (client gone, HTTP/2 reset): then op->req is NULL and done only cleans up.
 * HTTP threads, except client_post (store thread), which only queues.
 */
#ifndef DISCOVERYD_API_HANDOFF_H
#define DISCOVERYD_API_HANDOFF_H

#include "api/api_int.h"
#include "api/keys.h"
#include "api/token.h"

/* The per-thread part of the hand-off, in api_thread.priv. */
struct api_thread_priv {
    struct api_thread *t;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    struct node_client client;
};

/* A completion on its way back to the HTTP thread. */
struct api_msg {
    h2o_multithread_message_t msg;
    struct node_op *op;
};

/* A request waiting for the store thread. malloc'd (a request's pool may vanish first): the pool
 * holds a slot pointing here, whose disposal clears req. Freed when its last pending completion
 * (the op, and the cancel if one was sent) has run. */
struct api_op {
    struct api_msg msg, cmsg;
    struct node_op op;
    struct node_op cancel; /* NODE_OP_CANCEL of op, sent when the client hangs up during a watch */
    int refs;
    h2o_socket_t *sock;    /* HTTP/1 watch: the client's socket, watched for a hang-up */
    void *sock_data;       /* h2o's own sock->data, put back before answering */
    struct api_thread *t;
    h2o_req_t *req;       /* NULL once the request is gone: just clean up */
    struct api_op **slot; /* in req's pool; valid while req != NULL */
    enum api_route_kind route;
    struct api_keys_req kreq;
    char token[API_TOKEN_MAX_LEN + 1];
    uint32_t token_len;
    bool creates_token; /* a keys write that creates a token by hand */
    char *answer;       /* /new: the body to send on success */
    size_t answer_len;
    char buf[]; /* copies of key, value, prev_value, /new's answer */
};

/* Allocate an op with extra bytes of buf, bound to req (NULL on ENOMEM). */
struct api_op *api_op_new(struct api_thread *t, h2o_req_t *req, enum api_route_kind route, size_t extra);
/* Submit op->op to the node; completion comes back through the thread's queue to op->op.done. */
void api_op_submit(struct api_op *op);
/* Release the op: event and error references, the slot, the memory (once no completion is due). */
void api_op_free(struct api_op *op);
/* A parked watch on HTTP/1: notice when its client hangs up (h2o 2.2.5 does not while a request is
 * in progress) and cancel the watch at once, so its slot is free for the client's next try. */
void api_op_watch_client(struct api_op *op, h2o_req_t *req);
/* Stop that before answering (done() calls it). */
void api_op_unwatch_client(struct api_op *op);
/* Detach the op from its request before answering it (the request may be freed after). */
h2o_req_t *api_op_take_req(struct api_op *op);

#endif
