/* api/api_int.h — private to api/: the process-wide api state, the per-thread state, the op
 * that carries a request to the store thread and back, and the response helpers every route
 * handler uses. HTTP threads only, except where a comment says otherwise.
 */
#ifndef DISCOVERYD_API_API_INT_H
#define DISCOVERYD_API_API_INT_H

#include <stdatomic.h>
#include <string.h>
#include "api/api.h"
#include "api/json.h"
#include "api/keys.h"
#include "api/route.h"
#include "api/token.h"

/* Status codes /metrics counts individually; anything else is counted as "other". */
#define API_NCODES 13
extern const int api_metric_codes[API_NCODES - 1];

struct api {
    struct api_config cfg; /* public_url points at our own copy */
    struct node *node;
    /* counters (atomic: every HTTP thread adds) */
    _Atomic uint64_t requests[API_ROUTE_COUNT][API_NCODES];
    _Atomic uint64_t tokens_created, registrations, surplus_registrations, tokens_full, rate_limited;
};

struct api_thread_priv {
    struct api_thread *t;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    struct node_client client;
};

/* A request waiting for the store thread. malloc'd (a request's pool may vanish first, e.g. an
 * HTTP/2 stream reset): the pool holds a slot pointing here, whose disposal clears req. */
struct api_op {
    h2o_multithread_message_t msg;
    struct node_op op;
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
/* Release the op: event and error references, the slot, the memory. */
void api_op_free(struct api_op *op);
/* Detach the op from its request before answering it (the request may be freed after). */
h2o_req_t *api_op_take_req(struct api_op *op);

/* Request pool allocator for form.h / route.h. */
void *api_pool_alloc(void *pool, size_t sz);

int64_t api_now_ms(void);

/* Send a complete response: status, Content-Type, Content-Length and body (none for HEAD). */
void api_send(struct api_thread *t, h2o_req_t *req, enum api_route_kind route, int status,
              const char *content_type, const char *body, size_t len);
/* Send a rendered buffer (copied into the request pool, then freed); a buffer that ran out of
 * memory while rendering becomes a 500 instead. */
void api_send_buf(struct api_thread *t, h2o_req_t *req, enum api_route_kind route, int status,
                  const char *content_type, struct api_buf *b);
/* One-line text/plain answer (the line gets its "\n"). */
void api_send_text(struct api_thread *t, h2o_req_t *req, enum api_route_kind route, int status,
                   const char *line);
void api_send_405(struct api_thread *t, h2o_req_t *req, enum api_route_kind route, const char *allow);
/* Add a header (name lowercase, orig the canonical spelling; value copied into the pool). */
void api_header(h2o_req_t *req, const char *name, const char *orig, const char *value, size_t len);
void api_header_u64(h2o_req_t *req, const char *name, const char *orig, uint64_t v);

/* X-Etcd-Index, X-Etcd-Cluster-Id, and (raft) X-Raft-Index/Term. */
void api_etcd_headers(struct api_thread *t, h2o_req_t *req, uint64_t etcd_index, bool raft,
                      uint64_t raft_index, uint64_t raft_term);
/* X-Discovery-Size/Full for a token; caller holds node_rdlock(). Nothing if the size is unknown. */
void api_discovery_headers(struct api_thread *t, h2o_req_t *req, const char *token, size_t token_len);
/* The size stored in /discovery/<token>/_config/size (caller holds node_rdlock()); 0 if none. */
uint32_t api_token_size(const struct kv *kv, const char *token, size_t token_len);
/* The token dir node or NULL (caller holds node_rdlock()). */
const struct kv_node *api_token_dir(const struct kv *kv, const char *token, size_t token_len);
/* Send an etcd-shaped JSON error with the keys headers (no X-Raft-*). */
void api_send_keys_error(struct api_thread *t, h2o_req_t *req, int code, const char *cause, uint64_t index,
                         const char *token, size_t token_len);

/* The client's address key (IPv6 or IPv4-mapped), masked to prefix4/prefix6 bits. 0 or -1. */
int api_client_key(struct api_thread *t, h2o_req_t *req, unsigned prefix4, unsigned prefix6, uint8_t out[16]);
/* Ask cfg.rate; true when allowed (or no limiter), else *retry_after. */
bool api_rate_allow(struct api_thread *t, enum api_rl_class cls, const void *key, size_t len,
                    uint32_t *retry_after);
/* /new's two creation buckets (address, then range). 0 allowed; else 429 already sent. */
int api_rate_new(struct api_thread *t, h2o_req_t *req, enum api_route_kind route, bool json,
                 const char *token, size_t token_len);

/* The decoded query string and, for PUT/POST/PATCH with a urlencoded body, the body.
 * 0; -1 with f->err; -2 ENOMEM. */
int api_request_form(h2o_req_t *req, struct api_form *f);

/* Route handlers. */
void api_keys_handle(struct api_thread *t, h2o_req_t *req, const struct api_route *r);
void api_new_handle(struct api_thread *t, h2o_req_t *req);
void api_status_handle(struct api_thread *t, h2o_req_t *req, const struct api_route *r);
void api_health_handle(struct api_thread *t, h2o_req_t *req);
void api_metrics_handle(struct api_thread *t, h2o_req_t *req);
void api_robots_handle(struct api_thread *t, h2o_req_t *req);
void api_home_handle(struct api_thread *t, h2o_req_t *req);

static inline bool api_is_method(h2o_req_t *req, const char *m)
{
    size_t n = strlen(m);
    return req->method.len == n && memcmp(req->method.base, m, n) == 0;
}

#endif
