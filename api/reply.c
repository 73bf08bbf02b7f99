/* api/reply.c — every response leaves through here: status line, headers (etcd's X-Etcd-* and X-Raft-*,
 * discoveryd's X-Discovery-*), bodies from the request pool or a rendered buffer, and the
 * per-route, per-status counters /metrics shows. HTTP threads.
 */
#include "api/reply.h"

#include <stdio.h>
#include <sys/time.h>

static const char *reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
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
    case 409:
        return "Conflict";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Request Entity Too Large";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

/* The request's duration, from h2o's time its head began to arrive to now, into its route's
 * histogram (a request without that time, as the in-process fuzzer makes, is not timed). */
static void observe(struct api *api, enum api_route_kind route, h2o_req_t *req)
{
    const struct timeval *b = &req->timestamps.request_begin_at;
    if (b->tv_sec == 0 || (unsigned)route >= API_ROUTE_COUNT)
        return;
    struct timeval now;
    gettimeofday(&now, NULL);
    int64_t us = (int64_t)(now.tv_sec - b->tv_sec) * 1000000 + (now.tv_usec - b->tv_usec);
    if (us < 0)
        us = 0;
    size_t i = 0;
    while (i < API_LAT_BUCKETS && (double)us > api_lat_bounds[i] * 1e6)
        i++;
    atomic_fetch_add_explicit(&api->lat[route][i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&api->lat_sum_us[route], (uint64_t)us, memory_order_relaxed);
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
    observe(t->api, route, req);
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
    /* h2o_send_inline copies the body into the request's pool */
    api_send(t, req, route, status, content_type, b->p != NULL ? b->p : "", b->len);
    api_buf_free(b);
}

void api_send_405(struct api_thread *t, h2o_req_t *req, enum api_route_kind route, const char *allow)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, "Allow", allow, strlen(allow));
    api_send_text(t, req, route, 405, "Method Not Allowed");
}

void api_header(h2o_req_t *req, const h2o_token_t *name, const char *value, size_t len)
{
    char *v = h2o_mem_alloc_pool(&req->pool, len);
    memcpy(v, value, len);
    h2o_add_header(&req->pool, &req->res.headers, name, NULL, v, len);
}

void api_header_u64(h2o_req_t *req, const h2o_token_t *name, uint64_t v)
{
    char d[API_U64_DIGITS];
    api_header(req, name, d, api_fmt_u64(d, v));
}

static const h2o_token_t H_CLUSTER_ID = API_HEADER_NAME("X-Etcd-Cluster-Id"), H_INDEX = API_HEADER_NAME("X-Etcd-Index"),
                         H_RAFT_INDEX = API_HEADER_NAME("X-Raft-Index"), H_RAFT_TERM = API_HEADER_NAME("X-Raft-Term"),
                         H_SIZE = API_HEADER_NAME("X-Discovery-Size"), H_FULL = API_HEADER_NAME("X-Discovery-Full");

void api_etcd_headers(struct api_thread *t, h2o_req_t *req, uint64_t etcd_index, bool raft,
                      uint64_t raft_index, uint64_t raft_term)
{
    static const char hex[] = "0123456789abcdef";
    char id[16]; /* %016x */
    uint64_t cid = node_cluster_id(t->api->node);
    for (int i = 15; i >= 0; i--, cid >>= 4)
        id[i] = hex[cid & 15];
    api_header(req, &H_CLUSTER_ID, id, sizeof(id));
    api_header_u64(req, &H_INDEX, etcd_index);
    if (raft) {
        if (raft_index == 0 && raft_term == 0)
            node_raft_state(t->api->node, &raft_index, &raft_term);
        api_header_u64(req, &H_RAFT_INDEX, raft_index);
        api_header_u64(req, &H_RAFT_TERM, raft_term);
    }
}

void api_token_lookup(struct api_thread *t, const char *token, size_t token_len, struct kv_token_info *out)
{
    node_rdlock(t->api->node);
    kv_token_info(node_kv(t->api->node), token, token_len, out);
    node_rdunlock(t->api->node);
}

void api_discovery_headers(h2o_req_t *req, const struct kv_token_info *tok)
{
    if (tok == NULL || !tok->exists || tok->size == 0)
        return;
    api_header_u64(req, &H_SIZE, tok->size);
    bool full = tok->members >= tok->size;
    api_header(req, &H_FULL, full ? "true" : "false", full ? 4 : 5);
}

void api_send_keys_error(struct api_thread *t, h2o_req_t *req, enum api_route_kind route, int code,
                         const char *cause, uint64_t index, const struct kv_token_info *tok)
{
    struct api_buf b = {0};
    api_json_error(&b, code, api_err_message(code), cause, index);
    api_etcd_headers(t, req, index, false, 0, 0);
    api_discovery_headers(req, tok);
    api_send_buf(t, req, route, api_err_http_status(code), "application/json", &b);
}
