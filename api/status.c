/* api/status.c — /status/<token>: a token's facts as JSON (size, full, creation and expiry times,
 * members in createdIndex order with their role), for people and scripts; the rules are in
 * docs/protocol.md#cluster-full-and-surplus-members.
 */
#include <stdio.h>
#include <stdlib.h>

#include "api/handlers.h"
#include "api/reply.h"
#include "api/token.h"

static const h2o_token_t H_LINK = API_HEADER_NAME("Link");

static int by_created(const void *a, const void *b)
{
    const struct kv_node *x = *(const struct kv_node *const *)a, *y = *(const struct kv_node *const *)b;
    return x->created_index < y->created_index ? -1 : x->created_index > y->created_index;
}

/* "name=url[,name=url]" → "name":"…","peerURLs":[…] (the name of the first pair). */
static void member_fields(struct api_buf *b, const char *v, size_t n)
{
    const char *eq = v ? memchr(v, '=', n) : NULL;
    api_buf_puts(b, ",\"name\":");
    api_json_str(b, v, eq ? (size_t)(eq - v) : 0);
    api_buf_puts(b, ",\"peerURLs\":[");
    bool first = true;
    size_t i = 0;
    while (v != NULL && i < n) {
        size_t end = i;
        while (end < n && v[end] != ',')
            end++;
        const char *pe = memchr(v + i, '=', end - i);
        if (pe != NULL) {
            if (!first)
                api_buf_puts(b, ",");
            first = false;
            api_json_str(b, pe + 1, (size_t)(v + end - pe - 1));
        }
        i = end + 1;
    }
    api_buf_puts(b, "]");
}

void api_status_handle(struct api_thread *t, h2o_req_t *req, const struct api_route *r)
{
    if (!api_is_method(req, "GET") && !api_is_method(req, "HEAD")) {
        api_send_405(t, req, API_ROUTE_STATUS, "GET, HEAD");
        return;
    }
    struct node *node = t->api->node;
    struct api_buf b = {0};
    int status = 200;
    node_rdlock(node);
    const struct kv *kv = node_kv(node);
    const struct kv_node *d = kv_token_dir(kv, r->token, r->token_len);
    struct kv_token_info tok;
    kv_token_info(kv, r->token, r->token_len, &tok);
    if (d == NULL) {
        char cause[sizeof(KV_DISCOVERY_DIR) + API_TOKEN_MAX_LEN + 2];
        snprintf(cause, sizeof(cause), KV_DISCOVERY_DIR "/%.*s", (int)r->token_len, r->token);
        api_json_error(&b, KV_ENOTFOUND, kv_err_message(KV_ENOTFOUND), cause, kv_index(kv));
        status = 404;
    } else {
        uint32_t size = tok.size;
        uint32_t nvisible = kv_node_nvisible(d);
        const struct kv_node **v = calloc(nvisible ? nvisible : 1, sizeof(*v));
        size_t cnt = 0;
        if (v == NULL) {
            b.oom = true;
        } else {
            for (const struct kv_node *c = kv_node_first(d); c != NULL && cnt < nvisible; c = c->next_sibling)
                if (!kv_node_hidden(c) && !c->dir)
                    v[cnt++] = c;
            qsort(v, cnt, sizeof(*v), by_created);
        }
        api_buf_puts(&b, "{\"token\":");
        api_json_str(&b, r->token, r->token_len);
        api_buf_printf(&b, ",\"size\":%u,\"full\":%s,\"created\":", size,
                       size > 0 && cnt >= size ? "true" : "false");
        api_json_time(&b, d->created_ms);
        api_buf_puts(&b, ",\"expires\":");
        if (t->api->cfg.token_ttl_ms > 0)
            api_json_time(&b, d->created_ms + t->api->cfg.token_ttl_ms);
        else
            api_buf_puts(&b, "null");
        api_buf_puts(&b, ",\"members\":[");
        for (size_t i = 0; i < cnt; i++) {
            if (i)
                api_buf_puts(&b, ",");
            api_buf_puts(&b, "{\"id\":");
            api_json_str(&b, v[i]->name, v[i]->name_len);
            member_fields(&b, kv_node_value(v[i]), kv_node_value_len(v[i]));
            api_buf_printf(&b, ",\"createdIndex\":%llu,\"role\":\"%s\",\"registered\":",
                           (unsigned long long)v[i]->created_index, i < size ? "member" : "surplus");
            api_json_time(&b, v[i]->created_ms);
            api_buf_puts(&b, "}");
        }
        api_buf_puts(&b, "]}\n");
        free(v);
    }
    node_rdunlock(node);
    api_discovery_headers(req, &tok);
    /* the token page (web_token.c) shows the same facts to people */
    char link[API_TOKEN_MAX_LEN + 48];
    int ln = snprintf(link, sizeof(link), "</%.*s>; rel=\"alternate\"; type=\"text/html\"", (int)r->token_len,
                      r->token);
    api_header(req, &H_LINK, link, (size_t)ln);
    api_send_buf(t, req, API_ROUTE_STATUS, status, "application/json", &b);
}
