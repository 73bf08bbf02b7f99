/* api/api.c — the api's process and thread state, dispatch of every request to its route
 * handler, the op hand-off to the store thread and back (an h2o_multithread queue per HTTP
 * thread), and the response helpers shared by the handlers.
 */
#include "api/api_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "api/addr.h"
#include "api/web.h"

static void log_stderr(const char *fmt, ...)
{
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s api: ", ts);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void (*api_log)(const char *fmt, ...) = log_stderr;

const int api_metric_codes[API_NCODES - 1] = {200, 201, 400, 403, 404, 405, 412, 413, 429, 500, 503, 0};

void api_config_defaults(struct api_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_size = 15;
    cfg->surplus = 16;
    cfg->max_value_bytes = 4096;
    cfg->max_key_bytes = 255;
    cfg->max_body_bytes = 65536;
    cfg->token_ttl_ms = 168LL * 3600 * 1000;
}

int api_new(struct api **out, const struct api_config *cfg, struct node *node)
{
    struct api *api = calloc(1, sizeof(*api));
    if (api == NULL)
        return -1;
    api->cfg = *cfg;
    if (cfg->public_url != NULL) {
        /* the printed URL is base + "/" + token: drop trailing slashes once, here */
        size_t n = strlen(cfg->public_url);
        while (n > 0 && cfg->public_url[n - 1] == '/')
            n--;
        char *p = strndup(cfg->public_url, n);
        if (p == NULL) {
            free(api);
            return -1;
        }
        api->cfg.public_url = p;
    }
    api->node = node;
    *out = api;
    return 0;
}

void api_free(struct api *api)
{
    if (api == NULL)
        return;
    free((char *)api->cfg.public_url);
    free(api);
}

/* ---- the hop back from the store thread ---- */

/* node_client.post, called on the store thread: queue the op to its HTTP thread. */
static void client_post(struct node_client *self, struct node_op *op)
{
    struct api_op *aop = op->data;
    struct api_thread_priv *p = aop->t->priv;
    h2o_multithread_send_message(&p->receiver, &aop->msg);
}

/* On the HTTP thread: run each completed op's done(). */
static void on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        struct api_op *aop = H2O_STRUCT_FROM_MEMBER(struct api_op, msg, m);
        aop->op.done(&aop->op);
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
    api_op_take_req(op);
    if (op->op.event != NULL)
        kv_event_unref(op->op.event);
    kv_error_clear(&op->op.err);
    free(op);
}

void *api_pool_alloc(void *pool, size_t sz)
{
    return h2o_mem_alloc_pool((h2o_mem_pool_t *)pool, sz);
}

int64_t api_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- responses ---- */

static const char *reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Request Entity Too Large";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

static void count(struct api *api, enum api_route_kind route, int status)
{
    size_t i = 0;
    while (i < API_NCODES - 1 && api_metric_codes[i] != status && api_metric_codes[i] != 0)
        i++;
    if (i < API_NCODES - 1 && api_metric_codes[i] == 0)
        i = API_NCODES - 1; /* other */
    if ((unsigned)route < API_ROUTE_COUNT)
        atomic_fetch_add_explicit(&api->requests[route][i], 1, memory_order_relaxed);
}

void api_send(struct api_thread *t, h2o_req_t *req, enum api_route_kind route, int status,
              const char *content_type, const char *body, size_t len)
{
    count(t->api, route, status);
    req->res.status = status;
    req->res.reason = reason_of(status);
    if (content_type != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, "Content-Type", content_type,
                       strlen(content_type));
    /* h2o 2.2.5 keeps a connection alive after a non-200 answer only with a known length */
    req->res.content_length = len;
    h2o_send_inline(req, body, len);
}

void api_send_text(struct api_thread *t, h2o_req_t *req, enum api_route_kind route, int status,
                   const char *line)
{
    size_t n = strlen(line);
    char *body = h2o_mem_alloc_pool(&req->pool, n + 1);
    memcpy(body, line, n);
    body[n] = '\n';
    api_send(t, req, route, status, "text/plain; charset=utf-8", body, n + 1);
}

void api_send_buf(struct api_thread *t, h2o_req_t *req, enum api_route_kind route, int status,
                  const char *content_type, struct api_buf *b)
{
    if (b->oom) {
        api_buf_free(b);
        api_send_text(t, req, route, 500, "out of memory");
        return;
    }
    char *body = h2o_mem_alloc_pool(&req->pool, b->len ? b->len : 1);
    memcpy(body, b->p, b->len);
    size_t len = b->len;
    api_buf_free(b);
    api_send(t, req, route, status, content_type, body, len);
}

void api_send_405(struct api_thread *t, h2o_req_t *req, enum api_route_kind route, const char *allow)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, "Allow", allow, strlen(allow));
    api_send_text(t, req, route, 405, "Method Not Allowed");
}

void api_header(h2o_req_t *req, const char *name, const char *orig, const char *value, size_t len)
{
    char *v = h2o_mem_alloc_pool(&req->pool, len);
    memcpy(v, value, len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, orig, v, len);
}

void api_header_u64(h2o_req_t *req, const char *name, const char *orig, uint64_t v)
{
    char s[24];
    int n = snprintf(s, sizeof(s), "%" PRIu64, v);
    api_header(req, name, orig, s, (size_t)n);
}

void api_etcd_headers(struct api_thread *t, h2o_req_t *req, uint64_t etcd_index, bool raft,
                      uint64_t raft_index, uint64_t raft_term)
{
    char id[24];
    int n = snprintf(id, sizeof(id), "%016" PRIx64, node_cluster_id(t->api->node));
    api_header(req, "x-etcd-cluster-id", "X-Etcd-Cluster-Id", id, (size_t)n);
    api_header_u64(req, "x-etcd-index", "X-Etcd-Index", etcd_index);
    if (raft) {
        if (raft_index == 0 && raft_term == 0)
            node_raft_state(t->api->node, &raft_index, &raft_term);
        api_header_u64(req, "x-raft-index", "X-Raft-Index", raft_index);
        api_header_u64(req, "x-raft-term", "X-Raft-Term", raft_term);
    }
}

const struct kv_node *api_token_dir(const struct kv *kv, const char *token, size_t token_len)
{
    char key[sizeof(KV_DISCOVERY_DIR) + API_TOKEN_MAX_LEN + 1];
    if (token_len > API_TOKEN_MAX_LEN)
        return NULL;
    int n = snprintf(key, sizeof(key), KV_DISCOVERY_DIR "/%.*s", (int)token_len, token);
    const struct kv_node *d = kv_lookup(kv, key, (size_t)n);
    return d != NULL && d->dir ? d : NULL;
}

uint32_t api_token_size(const struct kv *kv, const char *token, size_t token_len)
{
    char key[sizeof(KV_DISCOVERY_DIR) + API_TOKEN_MAX_LEN + 16];
    if (token_len > API_TOKEN_MAX_LEN)
        return 0;
    int n = snprintf(key, sizeof(key), KV_DISCOVERY_DIR "/%.*s/_config/size", (int)token_len, token);
    const struct kv_node *s = kv_lookup(kv, key, (size_t)n);
    uint32_t size;
    if (s == NULL || s->dir || s->value == NULL ||
        api_parse_size(s->value, s->value_len, UINT32_MAX, &size) != 0)
        return 0;
    return size;
}

void api_discovery_headers(struct api_thread *t, h2o_req_t *req, const char *token, size_t token_len)
{
    const struct kv *kv = node_kv(t->api->node);
    const struct kv_node *d = api_token_dir(kv, token, token_len);
    uint32_t size = api_token_size(kv, token, token_len);
    if (d == NULL || size == 0)
        return;
    api_header_u64(req, "x-discovery-size", "X-Discovery-Size", size);
    bool full = d->nvisible >= size;
    api_header(req, "x-discovery-full", "X-Discovery-Full", full ? "true" : "false", full ? 4 : 5);
}

void api_send_keys_error(struct api_thread *t, h2o_req_t *req, int code, const char *cause, uint64_t index,
                         const char *token, size_t token_len)
{
    struct api_buf b = {0};
    api_json_error(&b, code, api_err_message(code), cause, index);
    api_etcd_headers(t, req, index, false, 0, 0);
    if (token != NULL) {
        node_rdlock(t->api->node);
        api_discovery_headers(t, req, token, token_len);
        node_rdunlock(t->api->node);
    }
    api_send_buf(t, req, token != NULL ? API_ROUTE_KEYS : API_ROUTE_FORBIDDEN, api_err_http_status(code),
                 "application/json", &b);
}

/* ---- client addresses and rate limits ---- */

int api_client_key(struct api_thread *t, h2o_req_t *req, unsigned prefix4, unsigned prefix6, uint8_t out[16])
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    const struct api_config *cfg = &t->api->cfg;
    if (cfg->client_addr != NULL) {
        if (cfg->client_addr(cfg->client_addr_arg, req, &ss, &len) != 0)
            len = 0;
    } else if (req->conn->callbacks->get_peername != NULL) {
        len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    } else {
        len = 0;
    }
    return api_addr_key((struct sockaddr *)&ss, len, prefix4, prefix6, out);
}

bool api_rate_allow(struct api_thread *t, enum api_rl_class cls, const void *key, size_t len,
                    uint32_t *retry_after)
{
    const struct api_config *cfg = &t->api->cfg;
    *retry_after = 0;
    if (cfg->rate == NULL)
        return true;
    if (cfg->rate(cfg->rate_arg, cls, key, len, retry_after))
        return true;
    if (*retry_after == 0)
        *retry_after = 1;
    atomic_fetch_add_explicit(&t->api->rate_limited, 1, memory_order_relaxed);
    return false;
}

int api_rate_new(struct api_thread *t, h2o_req_t *req, enum api_route_kind route, bool json,
                 const char *token, size_t token_len)
{
    uint8_t key[16];
    uint32_t retry;
    const char *what = NULL;
    if (api_client_key(t, req, API_ADDR_V4_HOST, API_ADDR_V6_HOST, key) == 0 &&
        !api_rate_allow(t, API_RL_NEW_ADDR, key, sizeof(key), &retry))
        what = "address";
    else if (api_client_key(t, req, API_ADDR_V4_RANGE, API_ADDR_V6_RANGE, key) == 0 &&
             !api_rate_allow(t, API_RL_NEW_RANGE, key, sizeof(key), &retry))
        what = "address range";
    if (what == NULL)
        return 0;
    char line[160];
    snprintf(line, sizeof(line), "too many tokens created from this %s; retry in %u s", what, retry);
    api_header_u64(req, "retry-after", "Retry-After", retry);
    if (json)
        api_send_keys_error(t, req, API_E_RATE_LIMITED, line, 0, token, token_len);
    else
        api_send_text(t, req, route, 429, line);
    return -1;
}

/* ---- forms ---- */

static bool is_urlencoded(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i < 0)
        return false;
    h2o_iovec_t v = req->headers.entries[i].value;
    static const char want[] = "application/x-www-form-urlencoded";
    size_t n = sizeof(want) - 1;
    size_t end = 0;
    while (end < v.len && v.base[end] != ';' && v.base[end] != ' ' && v.base[end] != '\t')
        end++;
    return end == n && strncasecmp(v.base, want, n) == 0;
}

int api_request_form(h2o_req_t *req, struct api_form *f)
{
    const char *q = NULL;
    size_t qlen = 0;
    if (req->query_at != SIZE_MAX) {
        q = req->path.base + req->query_at + 1;
        qlen = req->path.len - req->query_at - 1;
    }
    const char *body = NULL;
    size_t blen = 0;
    /* as Go's ParseForm: only PUT, POST and PATCH bodies, and only urlencoded ones */
    if (req->entity.base != NULL &&
        (api_is_method(req, "PUT") || api_is_method(req, "POST") || api_is_method(req, "PATCH")) &&
        is_urlencoded(req)) {
        body = req->entity.base;
        blen = req->entity.len;
    }
    return api_form_parse(f, q, qlen, body, blen, api_pool_alloc, &req->pool);
}

/* ---- dispatch ---- */

int api_handle(struct api_thread *t, h2o_req_t *req)
{
    struct api_route r;
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    if (api_route(&r, req->path.base, plen, api_pool_alloc, &req->pool) != 0) {
        api_send_text(t, req, API_ROUTE_NOT_FOUND, 500, "out of memory");
        return 0;
    }
    switch (r.kind) {
    case API_ROUTE_BAD_PATH: {
        char line[160];
        snprintf(line, sizeof(line), "bad path: %s", r.reason);
        api_send_text(t, req, r.kind, 400, line);
        break;
    }
    case API_ROUTE_NOT_FOUND:
        api_send_text(t, req, r.kind, 404, "404 page not found");
        break;
    case API_ROUTE_FORBIDDEN:
        api_send_keys_error(t, req, API_E_FORBIDDEN, "only /v2/keys/discovery/{token} is served", 0, NULL, 0);
        break;
    case API_ROUTE_HOME:
        if (!api_web_home(t, req))
            api_home_handle(t, req);
        break;
    case API_ROUTE_STATIC:
        api_web_static(t, req, &r);
        break;
    case API_ROUTE_NEW:
        api_new_handle(t, req);
        break;
    case API_ROUTE_HEALTH:
        api_health_handle(t, req);
        break;
    case API_ROUTE_METRICS:
        api_metrics_handle(t, req);
        break;
    case API_ROUTE_ROBOTS:
        api_robots_handle(t, req);
        break;
    case API_ROUTE_STATUS:
        api_status_handle(t, req, &r);
        break;
    case API_ROUTE_KEYS:
        if (!api_web_token_page(t, req, &r))
            api_keys_handle(t, req, &r);
        break;
    default:
        api_send_text(t, req, API_ROUTE_NOT_FOUND, 404, "404 page not found");
        break;
    }
    return 0;
}
