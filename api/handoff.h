/* api/handoff.h — a request's trip to the store thread and back. A handler allocates an api_op,
 * fills op.op (node.h) and submits it; the store thread completes it and the completion is queued
 * back to the HTTP thread that owns the request, where op.op.done runs. The request may vanish
 * meanwhile (client gone, HTTP/2 reset): then op->req is NULL and done only cleans up.
 * HTTP threads, except client_post (store thread), which only queues.
 */
#ifndef DISCOVERYD_API_HANDOFF_H
#define DISCOVERYD_API_HANDOFF_H

#include <stddef.h>

#include "api/api_int.h"
#include "api/keys.h"
#include "api/token.h"

/* The per-thread part of the hand-off, in api_thread.priv. */
struct api_thread_priv {
    struct api_thread *t;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    struct node_client client;
    h2o_multithread_receiver_t rate_receiver; /* limiter answers (request.c) */
    h2o_timeout_t rate_timeout;               /* cfg.rate_timeout_ms */
    struct api_getcache *getcache;            /* this thread's copies of GET answers (getcache.h; NULL: none) */
};

/* One bucket a request must pass (request.h). */
struct api_rate_q {
    enum api_rl_class cls;
    uint32_t len;
    uint8_t key[API_TOKEN_MAX_LEN];
};

struct api_op;
/* Runs on the op's thread when its rate check is over: refused is -1 when every bucket allowed,
 * else the index of the bucket that refused, with its retry_after (>= 1). */
typedef void (*api_rate_cont)(struct api_op *op, int refused, uint32_t retry_after);

/* An op's rate check in progress (request.c). */
struct api_rate_state {
    struct api_rate_q q[2];
    uint8_t n, i;               /* buckets, the one being asked */
    struct api_rate_wait *wait; /* the question out, NULL when none */
    h2o_timeout_entry_t timer;  /* rate_timeout for wait */
    api_rate_cont cont;
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
    struct api_rate_state rate;
    _Alignas(max_align_t) char buf[]; /* copies of key, value, prev_value, /new's answer; a MEMBER
                                         op's struct node_member first */
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

/* Add a bucket to op's rate check (at most two; asked in the order added). */
void api_op_rate_add(struct api_op *op, enum api_rl_class cls, const void *key, size_t len);
/* Ask cfg.rate about each bucket in turn until one refuses; then cont runs, at once or later on
 * this thread. A PENDING question waits at most cfg.rate_timeout_ms (an h2o timeout on this
 * thread), then the limiter decides again with wait == NULL (per process). A refused request
 * consumes nothing from the buckets after the refusing one. No limiter: cont(op, -1, 0) at once. */
void api_op_rate_check(struct api_op *op, api_rate_cont cont);

#endif
