/* api/request.c — what a handler asks of a request before acting on it: its decoded form (query
 * and urlencoded body), the client's address key, and the rate-limit decisions. HTTP threads.
 */
#include "api/request.h"

#include <stdio.h>
#include "api/addr.h"
#include "api/reply.h"

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

void api_rate_add_new(struct api_op *op, h2o_req_t *req)
{
    uint8_t key[16];
    if (api_client_key(op->t, req, API_ADDR_V4_HOST, API_ADDR_V6_HOST, key) == 0)
        api_op_rate_add(op, API_RL_NEW_ADDR, key, sizeof(key));
    if (api_client_key(op->t, req, API_ADDR_V4_RANGE, API_ADDR_V6_RANGE, key) == 0)
        api_op_rate_add(op, API_RL_NEW_RANGE, key, sizeof(key));
}

void api_rate_refuse(struct api_op *op, h2o_req_t *req, int refused, uint32_t retry_after)
{
    struct api_thread *t = op->t;
    enum api_rl_class cls = op->rate.q[refused >= 0 && refused < op->rate.n ? refused : 0].cls;
    char line[200];
    switch (cls) {
    case API_RL_NEW_ADDR:
        snprintf(line, sizeof(line), "too many tokens created from this address; retry in %u s", retry_after);
        break;
    case API_RL_NEW_RANGE:
        snprintf(line, sizeof(line), "too many tokens created from this address range; retry in %u s",
                 retry_after);
        break;
    default:
        snprintf(line, sizeof(line), "too many writes to this token; retry in %u s", retry_after);
        break;
    }
    api_header_u64(req, "retry-after", "Retry-After", retry_after);
    if (op->route == API_ROUTE_KEYS) {
        struct kv_token_info tok;
        api_token_lookup(t, op->token, op->token_len, &tok);
        api_send_keys_error(t, req, API_ROUTE_KEYS, API_E_RATE_LIMITED, line, 0, &tok);
    } else {
        api_send_text(t, req, op->route, 429, line);
    }
}

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
