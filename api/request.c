/* api/request.c — what a handler asks of a request before acting on it: its decoded form (query
 * and urlencoded body), the client's address key, and the rate-limit decisions. HTTP threads.
 */
#include "api/request.h"

#include <arpa/inet.h>
#include <stdio.h>
#include "api/addr.h"
#include "api/reply.h"

static const h2o_token_t H_RETRY_AFTER = API_HEADER_NAME("Retry-After");

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

bool api_rate_settled(struct api_op *op, int refused, uint32_t retry_after)
{
    if (refused < 0 && op->req != NULL)
        return false;
    h2o_req_t *req = api_op_take_req(op);
    if (req != NULL)
        api_rate_refuse(op, req, refused, retry_after);
    api_op_free(op);
    return true;
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
    api_header_u64(req, &H_RETRY_AFTER, retry_after);
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

static bool unreserved(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

bool api_host_valid(const char *s, size_t n)
{
    size_t i = 0;
    if (n == 0 || n > 255)
        return false;
    if (s[0] == '[') {
        char ip[64];
        while (i < n && s[i] != ']') {
            char c = s[i];
            bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
            if (i > 0 && !hex && c != ':' && c != '.')
                return false; /* inet_pton would stop at a NUL and accept what came before */
            i++;
        }
        if (i == n || i - 1 >= sizeof(ip) || i < 3)
            return false;
        memcpy(ip, s + 1, i - 1);
        ip[i - 1] = '\0';
        struct in6_addr a;
        if (inet_pton(AF_INET6, ip, &a) != 1)
            return false;
        i++;
    } else {
        while (i < n && unreserved(s[i]))
            i++;
        if (i == 0)
            return false;
    }
    if (i == n)
        return true;
    if (s[i] != ':' || n - i - 1 < 1 || n - i - 1 > 5)
        return false;
    unsigned port = 0;
    for (i++; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        port = port * 10 + (unsigned)(s[i] - '0');
    }
    return port <= 65535;
}

int api_base_url(struct api_thread *t, h2o_req_t *req, struct api_buf *b, const char **why)
{
    if (t->api->cfg.public_url != NULL) {
        api_buf_puts(b, t->api->cfg.public_url);
        return 0;
    }
    /* without a Host, h2o 2.2.5 fills in its host configuration's name ("default:65535") */
    bool missing = req->authority.len == 0 ||
                   (req->hostconf != NULL && req->authority.base == req->hostconf->authority.hostport.base);
    if (missing) {
        if (why != NULL)
            *why = "a Host header is required";
        return -1;
    }
    if (!api_host_valid(req->authority.base, req->authority.len)) {
        if (why != NULL)
            *why =
                "bad Host header: want host[:port] (a DNS name, an IPv4 address or a bracketed IPv6 address)";
        return -1;
    }
    bool tls = req->input.scheme == &H2O_URL_SCHEME_HTTPS;
    api_buf_puts(b, tls ? "https://" : "http://");
    api_buf_put(b, req->authority.base, req->authority.len);
    return 0;
}

/* Seconds a client is asked to wait when the store is full: tokens leave by expiry. */
#define TOKENS_FULL_RETRY_S 60

bool api_tokens_at_cap(struct api_thread *t, h2o_req_t *req, enum api_route_kind route)
{
    struct api *api = t->api;
    uint64_t max = api->cfg.max_tokens;
    if (max == 0)
        return false;
    node_rdlock(api->node);
    uint64_t live = kv_ntokens(node_kv(api->node));
    node_rdunlock(api->node);
    if (live < max) {
        if (atomic_exchange(&api->at_cap, false))
            api_log("live tokens below --max-tokens (%llu of %llu): creating tokens again",
                    (unsigned long long)live, (unsigned long long)max);
        return false;
    }
    atomic_fetch_add_explicit(&api->tokens_refused_cap, 1, memory_order_relaxed);
    if (!atomic_exchange(&api->at_cap, true))
        api_log("live tokens reached --max-tokens (%llu): token creation answers 503 until expiry makes room",
                (unsigned long long)max);
    char line[160];
    snprintf(line, sizeof(line), "this service holds its maximum of %llu tokens; retry in %d s",
             (unsigned long long)max, TOKENS_FULL_RETRY_S);
    api_header_u64(req, &H_RETRY_AFTER, TOKENS_FULL_RETRY_S);
    if (route == API_ROUTE_KEYS)
        api_send_keys_error(t, req, route, API_E_TOKENS_FULL, line, 0, NULL);
    else
        api_send_text(t, req, route, 503, line);
    return true;
}
