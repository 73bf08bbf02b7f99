/* api/keys.c — the v2 keys handler: validates (keys_parse.c), reads applied state under the
 * node's read lock, or hands writes, watches and quorum reads to the store thread and answers
 * them when they come back on this thread. Also the discovery bookkeeping
 * (docs/protocol.md#cluster-full-and-surplus-members): a member registration is capped at
 * size + surplus, and filling a token or going surplus is logged and counted.
 */
#include <stdio.h>

#include "api/addr.h"
#include "api/getcache.h"
#include "api/handlers.h"
#include "api/handoff.h"
#include "api/reply.h"
#include "api/request.h"
#include "store/node_view.h"

/* The keys route's common error path: JSON error with the keys headers. */
static void send_err(struct api_thread *t, h2o_req_t *req, const struct api_route *r, int code,
                     const char *cause, uint64_t index)
{
    struct kv_token_info tok;
    api_token_lookup(t, r->token, r->token_len, &tok);
    api_send_keys_error(t, req, API_ROUTE_KEYS, code, cause, index, &tok);
}

/* The headers of a successful keys answer: etcd's (index, raft index/term, cluster id) and
 * X-Discovery-Size/Full as the store thread saw the token when it decided the result. */
static void success_headers(struct api_op *op, h2o_req_t *req, const struct node_op *nop)
{
    api_etcd_headers(op->t, req, nop->etcd_index, true, nop->raft_index, nop->raft_term);
    api_discovery_headers(req, &nop->token);
}

/* A successful write or watch: the event as etcd renders it, with the success headers. */
static void answer_event(struct api_op *op, h2o_req_t *req, const struct node_op *nop,
                         const struct kv_event *ev, int status, bool no_value)
{
    struct api_buf b = {0};
    api_json_event(&b, ev, node_wall_ms(), no_value);
    success_headers(op, req, nop);
    api_send_buf(op->t, req, API_ROUTE_KEYS, status, "application/json", &b);
}

/* A GET of a key in a token answered from this thread's copy (getcache.h) when the token has not
 * changed since it was rendered: no read lock, no rendering. False when there is no usable copy. */
static bool read_copy(struct api_thread *t, h2o_req_t *req, const char *key, size_t key_len, const char *token,
                      size_t token_len, const struct api_keys_req *k, int64_t now, uint64_t raft_index,
                      uint64_t raft_term)
{
    struct api_getcache *gc = ((struct api_thread_priv *)t->priv)->getcache;
    struct node *node = t->api->node;
    struct node_view v;
    if (gc == NULL || token_len == 0 || !node_view_begin(node, &v))
        return false;
    const struct api_getcache_entry *e = api_getcache_get(gc, key, key_len, k->recursive, k->sorted);
    if (e == NULL || now >= e->until_ms || node_view_stamp(node, token, token_len) != e->stamp ||
        !node_view_end(node, &v))
        return false;
    if (raft_index == 0 && raft_term == 0) { /* the raft position of the state the copy shows */
        raft_index = v.raft_index;
        raft_term = v.raft_term;
    }
    api_discovery_headers(req, &e->tok);
    api_etcd_headers(t, req, v.etcd_index, true, raft_index, raft_term);
    api_send(t, req, API_ROUTE_KEYS, 200, "application/json", e->body, e->body_len);
    return true;
}

/* A read of applied state (plain GET/HEAD, or after a quorum barrier): from this thread's copy if
 * it is still right, else rendered under the read lock (and kept when it lies in the token). */
/* target: the request's path and query when this is a plain GET whose parse may be remembered with
 * the copy (getcache.h), else NULL. */
static void do_read(struct api_thread *t, h2o_req_t *req, const char *key, size_t key_len, const char *token,
                    size_t token_len, const struct api_keys_req *k, uint64_t raft_index, uint64_t raft_term,
                    const h2o_iovec_t *target)
{
    int64_t now = node_wall_ms();
    if (read_copy(t, req, key, key_len, token, token_len, k, now, raft_index, raft_term))
        return;
    struct node *node = t->api->node;
    struct api_buf b = {0};
    struct kv_error err = {0};
    const struct kv_node *n;
    struct api_getcache_entry e = {0};
    bool keep = false;
    node_rdlock(node);
    const struct kv *kv = node_kv(node);
    uint64_t index = kv_index(kv);
    int rc = kv_get(kv, key, key_len, &n, &err);
    if (rc == 0) {
        api_json_get_until(&b, kv, n, k->recursive, k->sorted, now, &e.until_ms);
        /* keep a copy only when the node read lies in the very token the request names (the
         * stamp and X-Discovery-* are that token's) */
        const struct kv_node *d = token_len > 0 ? kv_token_dir(kv, token, token_len) : NULL;
        for (const struct kv_node *x = n; d && x && !keep; x = x->parent)
            keep = x == d;
        if (keep)
            e.stamp = node_view_stamp(node, token, token_len);
    }
    struct kv_token_info tok;
    kv_token_info(kv, token, token_len, &tok);
    if (raft_index == 0 && raft_term == 0) /* the raft position of the state just read */
        node_raft_state(node, &raft_index, &raft_term);
    node_rdunlock(node);
    api_discovery_headers(req, &tok);
    if (rc != 0) {
        api_buf_free(&b);
        api_json_error(&b, rc, api_err_message(rc), err.cause, err.index);
        api_etcd_headers(t, req, err.index, false, 0, 0);
        kv_error_clear(&err);
        api_send_buf(t, req, API_ROUTE_KEYS, api_err_http_status(rc), "application/json", &b);
        return;
    }
    api_etcd_headers(t, req, index, true, raft_index, raft_term);
    struct api_getcache *gc = ((struct api_thread_priv *)t->priv)->getcache;
    if (!keep || gc == NULL || b.oom) {
        api_send_buf(t, req, API_ROUTE_KEYS, 200, "application/json", &b);
        return;
    }
    api_send(t, req, API_ROUTE_KEYS, 200, "application/json", b.p, b.len); /* h2o copies the body */
    e.tok = tok;
    e.body_len = b.len;
    api_getcache_put(gc, key, key_len, k->recursive, k->sorted, &e, b.p);
    if (target != NULL) {
        struct api_getcache_target tg = {.key = key, .key_len = key_len, .token = token, .token_len = token_len,
                                         .recursive = k->recursive, .sorted = k->sorted};
        api_getcache_target_put(gc, target->base, target->len, &tg);
    }
}

bool api_keys_repeat(struct api_thread *t, h2o_req_t *req)
{
    struct api_getcache *gc = ((struct api_thread_priv *)t->priv)->getcache;
    struct api_getcache_target tg;
    if (gc == NULL || req->entity.base != NULL || !api_is_method(req, "GET") ||
        !api_getcache_target_get(gc, req->path.base, req->path.len, &tg))
        return false;
    struct api_keys_req k = {.recursive = tg.recursive, .sorted = tg.sorted};
    return read_copy(t, req, tg.key, tg.key_len, tg.token, tg.token_len, &k, node_wall_ms(), 0, 0);
}

static const char *op_key(const struct api_op *op)
{
    return op->kreq.cmd.key;
}

/* Answer an op that failed in the node (negative status) or in the store (kv error). */
static void answer_failure(struct api_op *op, h2o_req_t *req)
{
    struct api_thread *t = op->t;
    int st = op->op.status;
    if (st > 0) {
        api_send_keys_error(t, req, API_ROUTE_KEYS, st, op->op.err.cause, op->op.err.index, &op->op.token);
        return;
    }
    switch (st) {
    case NODE_ETOOMANYWATCHES:
        api_send_keys_error(t, req, API_ROUTE_KEYS, API_E_TOO_MANY_WATCHES,
                            "too many parked watches; retry later", op->op.etcd_index, &op->op.token);
        break;
    case NODE_EUNAVAILABLE: {
        /* 5xx: the etcd client retries only server errors */
        struct api_buf b = {0};
        char why[640] = "the store cannot commit right now";
        node_healthy(t->api->node, why, sizeof(why));
        api_json_error(&b, KV_ERAFT, kv_err_message(KV_ERAFT), why, op->op.etcd_index);
        api_etcd_headers(t, req, op->op.etcd_index, false, 0, 0);
        api_send_buf(t, req, API_ROUTE_KEYS, 503, "application/json", &b);
        break;
    }
    default: {
        struct api_buf b = {0};
        api_json_error(&b, KV_ERAFT, kv_err_message(KV_ERAFT), "out of memory", op->op.etcd_index);
        api_etcd_headers(t, req, op->op.etcd_index, false, 0, 0);
        api_send_buf(t, req, API_ROUTE_KEYS, 500, "application/json", &b);
        break;
    }
    }
}

/* After a registration applied: it is member number token.members of its token (the store thread
 * counted it when it applied the write), so full and surplus are known without another read. */
static void note_registration(struct api_op *op)
{
    struct api *api = op->t->api;
    const struct kv_event *ev = op->op.event;
    uint32_t rank = op->op.token.members, size = op->op.token.size;
    atomic_fetch_add_explicit(&api->registrations, 1, memory_order_relaxed);
    if (size == 0 || rank == 0)
        return;
    if (rank == size) {
        atomic_fetch_add_explicit(&api->tokens_full, 1, memory_order_relaxed);
        api_log("token %.*s is full: %u of %u members registered (last %s)", (int)op->token_len, op->token,
                rank, size, ev->node.key);
    } else if (rank > size) {
        atomic_fetch_add_explicit(&api->surplus_registrations, 1, memory_order_relaxed);
        api_log("token %.*s: surplus registration %s (member %u, size %u)", (int)op->token_len, op->token,
                ev->node.key, rank, size);
    }
}

/* Bookkeeping of an applied write, done even when its client has gone. */
static void note_write(struct api_op *op)
{
    const struct kv_event *ev = op->op.event;
    if (op->op.status != 0 || ev == NULL)
        return;
    bool new_node = ev->action == KV_ACT_CREATE || (ev->action == KV_ACT_SET && !ev->has_prev);
    if (op->kreq.registration && new_node && !ev->node.dir)
        note_registration(op);
    if (op->creates_token && new_node) {
        atomic_fetch_add_explicit(&op->t->api->tokens_created, 1, memory_order_relaxed);
        api_log("token %.*s created by hand", (int)op->token_len, op->token);
    }
    if (op->kreq.token_dir && (ev->action == KV_ACT_DELETE || ev->action == KV_ACT_CAD))
        api_log("token %.*s deleted by a client", (int)op->token_len, op->token);
}

/* Answer a completed write, watch or quorum read. */
static void answer(struct api_op *op, h2o_req_t *req)
{
    const struct node_op *nop = &op->op;
    const struct kv_event *ev = nop->event;
    if (nop->type == NODE_OP_WATCH &&
        (nop->status == NODE_ETIMEOUT || nop->status == NODE_ECANCELED || (nop->status == 0 && ev == NULL))) {
        /* the long-poll cap: 200 with an empty body makes the client re-poll at once */
        success_headers(op, req, nop);
        api_send(op->t, req, API_ROUTE_KEYS, 200, "application/json", "", 0);
    } else if (nop->status != 0 || (nop->type != NODE_OP_QUORUM && ev == NULL)) {
        answer_failure(op, req);
    } else if (nop->type == NODE_OP_QUORUM) {
        do_read(op->t, req, op_key(op), op->kreq.cmd.key_len, op->token, op->token_len, &op->kreq,
                nop->raft_index, nop->raft_term, NULL);
    } else if (nop->type == NODE_OP_WATCH) {
        answer_event(op, req, nop, ev, 200, false);
    } else {
        bool created = ev->action == KV_ACT_CREATE || (ev->action == KV_ACT_SET && !ev->has_prev);
        answer_event(op, req, nop, ev, created ? 201 : 200, op->kreq.no_value_on_success);
    }
}

/* Every keys op comes back here, on the thread that owns its request. */
static void on_keys_done(struct node_op *nop)
{
    struct api_op *op = nop->data;
    api_op_unwatch_client(op);
    if (nop->type == NODE_OP_WRITE)
        note_write(op);
    h2o_req_t *req = api_op_take_req(op);
    if (req != NULL)
        answer(op, req);
    api_op_free(op);
}

/* Copy what the store thread reads (key, value, prevValue) into the op: the request may go. */
static struct api_op *make_op(struct api_thread *t, h2o_req_t *req, const struct api_route *r,
                              const struct api_keys_req *k)
{
    const struct kv_cmd *c = &k->cmd;
    size_t extra =
        r->key_len + 1 + (c->value ? c->value_len + 1 : 0) + (c->prev_value ? c->prev_value_len + 1 : 0);
    struct api_op *op = api_op_new(t, req, API_ROUTE_KEYS, extra);
    if (op == NULL)
        return NULL;
    op->kreq = *k;
    char *p = op->buf;
    memcpy(p, r->key, r->key_len);
    p[r->key_len] = 0;
    op->kreq.cmd.key = p;
    op->kreq.cmd.key_len = r->key_len;
    p += r->key_len + 1;
    if (c->value != NULL) {
        memcpy(p, c->value, c->value_len);
        p[c->value_len] = 0;
        op->kreq.cmd.value = p;
        p += c->value_len + 1;
    }
    if (c->prev_value != NULL) {
        memcpy(p, c->prev_value, c->prev_value_len);
        p[c->prev_value_len] = 0;
        op->kreq.cmd.prev_value = p;
    }
    memcpy(op->token, r->token, r->token_len);
    op->token[r->token_len] = 0;
    op->token_len = r->token_len;
    return op;
}

/* The write's rate limit decided (now, or later on this thread): submit it or answer 429. */
static void on_write_rate_checked(struct api_op *op, int refused, uint32_t retry_after)
{
    if (!api_rate_settled(op, refused, retry_after))
        api_op_submit(op);
}

static void submit_write(struct api_thread *t, h2o_req_t *req, const struct api_route *r,
                         struct api_keys_req *k)
{
    struct api *api = t->api;
    bool creates_token = false;
    enum api_method m = api_method_of(req->method.base, req->method.len);
    /* decide against the applied state: does the token exist, how big may it grow */
    node_rdlock(api->node);
    const struct kv *kv = node_kv(api->node);
    const struct kv_node *dir = kv_token_dir(kv, r->token, r->token_len);
    /* only a size (or the bare token dir) may bring a token into being; anything else would make
     * size-less tokens that bypass /new's limits. Whether the token exists is the store's to say,
     * in log order (in_token): this member may not have applied a token another one just made. */
    if (dir == NULL && m != API_M_DELETE &&
        (k->config_size || (k->token_dir && k->cmd.dir && m == API_M_PUT)))
        creates_token = true;
    else
        k->cmd.in_token = true;
    node_rdunlock(api->node);
    if (creates_token && api_tokens_at_cap(t, req, API_ROUTE_KEYS))
        return;
    k->cmd.keep_config = true; /* the store refuses changes to an existing _config, in log order */
    if (k->registration) {
        /* the store resolves the token's own size when it applies the write */
        k->cmd.cap_size = api->cfg.max_size;
        k->cmd.cap_surplus = api->cfg.surplus;
    }

    struct api_op *op = make_op(t, req, r, k);
    if (op == NULL) {
        api_send_text(t, req, API_ROUTE_KEYS, 500, "out of memory");
        return;
    }
    op->creates_token = creates_token;
    op->op.type = NODE_OP_WRITE;
    op->op.cmd = op->kreq.cmd;
    op->op.done = on_keys_done;
    if (creates_token)
        api_rate_add_new(op, req);
    else
        api_op_rate_add(op, API_RL_TOKEN_WRITE, op->token, op->token_len);
    api_op_rate_check(op, on_write_rate_checked);
}

/* An op of the given type for a read or watch of the route's key; NULL after answering 500. */
static struct api_op *submit_op(struct api_thread *t, h2o_req_t *req, const struct api_route *r,
                                struct api_keys_req *k, enum node_op_type type)
{
    k->cmd.key = r->key;
    k->cmd.key_len = r->key_len;
    struct api_op *op = make_op(t, req, r, k);
    if (op == NULL) {
        api_send_text(t, req, API_ROUTE_KEYS, 500, "out of memory");
        return NULL;
    }
    op->op.type = type;
    op->op.done = on_keys_done;
    return op;
}

void api_keys_handle(struct api_thread *t, h2o_req_t *req, const struct api_route *r)
{
    const struct api_config *cfg = &t->api->cfg;
    enum api_method m = api_method_of(req->method.base, req->method.len);
    if (m == API_M_OTHER) {
        api_send_405(t, req, API_ROUTE_KEYS, "GET, HEAD, PUT, POST, DELETE");
        return;
    }
    if (req->entity.base != NULL && req->entity.len > cfg->max_body_bytes) {
        char cause[96];
        snprintf(cause, sizeof(cause), "the request body is larger than %u bytes", cfg->max_body_bytes);
        send_err(t, req, r, API_E_BODY_TOO_LARGE, cause, 0);
        return;
    }
    struct api_form form;
    int rc = api_request_form(req, &form);
    if (rc == -2) {
        api_send_text(t, req, API_ROUTE_KEYS, 500, "out of memory");
        return;
    }
    if (rc != 0) {
        send_err(t, req, r, KV_EINVALIDFORM, form.err, 0);
        return;
    }
    struct api_keys_req k;
    struct api_keys_err e;
    if (api_keys_parse(cfg, m, r->key, r->key_len, r->token_len, r->longest, &form, node_wall_ms(), &k, &e) !=
        0) {
        send_err(t, req, r, e.code, e.cause, 0);
        return;
    }
    struct api_op *op = NULL;
    switch (k.kind) {
    case API_KEYS_READ:
        if (!k.quorum) {
            /* a GET the token's HTML page could answer (/<token>, no query) is never remembered */
            bool page = r->short_form && req->query_at == SIZE_MAX;
            do_read(t, req, r->key, r->key_len, r->token, r->token_len, &k, 0, 0,
                    m == API_M_GET && req->entity.base == NULL && !page ? &req->path : NULL);
        } else if ((op = submit_op(t, req, r, &k, NODE_OP_QUORUM)) != NULL) {
            api_op_submit(op);
        }
        break;
    case API_KEYS_WATCH:
        if ((op = submit_op(t, req, r, &k, NODE_OP_WATCH)) != NULL) {
            op->op.key = op->kreq.cmd.key;
            op->op.key_len = op->kreq.cmd.key_len;
            op->op.recursive = k.recursive;
            op->op.wait_index = k.wait_index;
            api_client_key(t, req, API_ADDR_V4_HOST, API_ADDR_V6_HOST, op->op.client_addr);
            api_op_submit(op);
            api_op_watch_client(op, req);
        }
        break;
    case API_KEYS_WRITE:
        submit_write(t, req, r, &k);
        break;
    }
}
