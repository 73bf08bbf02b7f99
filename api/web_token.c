/* api/web_token.c — the token page: a snapshot of the token (size, members in createdIndex order
 * with their role and registration time, full or not, expiry) rendered into web/token.html on the
 * server, HTML-escaped, so it reads without JavaScript; web/app.js then keeps it live through the
 * token's own v2 watch and /status.
 */
#include "api/web.h"

#include <stdio.h>
#include <stdlib.h>
#include "api/reply.h"
#include "api/request.h"
#include "api/token.h"

struct token_ctx {
    struct api_thread *t;
    h2o_req_t *req;
    const char *token;
    size_t token_len;
    bool found;
    uint32_t size;
    size_t count; /* visible members */
    int64_t created_ms;
    struct api_buf rows; /* pre-rendered, escaped <tr>s */
};

static int by_created(const void *a, const void *b)
{
    const struct kv_node *x = *(const struct kv_node *const *)a, *y = *(const struct kv_node *const *)b;
    return x->created_index < y->created_index ? -1 : x->created_index > y->created_index;
}

static void cell(struct api_buf *b, const char *label)
{
    api_buf_printf(b, "<td data-label=\"%s\">", label);
}

/* One member row; value is "name=url[,name=url]" as etcd registers it. */
static void member_row(struct api_buf *b, size_t pos, const struct kv_node *m, bool member)
{
    const char *v = kv_node_value(m) ? kv_node_value(m) : "";
    size_t n = kv_node_value_len(m);
    const char *eq = memchr(v, '=', n);
    api_buf_printf(b, "<tr class=\"%s\">", member ? "member" : "surplus");
    cell(b, "#");
    api_buf_printf(b, "%zu</td>", pos);
    cell(b, "Name");
    if (eq != NULL && eq > v)
        api_html_escape(b, v, (size_t)(eq - v));
    else
        api_buf_puts(b, "<span class=\"muted\">(none)</span>");
    api_buf_puts(b, "</td>");
    cell(b, "Member ID");
    api_buf_puts(b, "<code>");
    api_html_escape(b, m->name, m->name_len);
    api_buf_puts(b, "</code></td>");
    cell(b, "Peer URLs");
    for (size_t i = 0; i < n;) {
        size_t end = i;
        while (end < n && v[end] != ',')
            end++;
        const char *pe = memchr(v + i, '=', end - i);
        if (pe != NULL) {
            api_buf_puts(b, "<span class=\"peer\">");
            api_html_escape(b, pe + 1, (size_t)(v + end - pe - 1));
            api_buf_puts(b, "</span>");
        }
        i = end + 1;
    }
    api_buf_puts(b, "</td>");
    cell(b, "createdIndex");
    api_buf_printf(b, "%llu</td>", (unsigned long long)m->created_index);
    cell(b, "Role");
    api_buf_printf(b, "<span class=\"role role-%s\">%s</span></td>", member ? "member" : "surplus",
                   member ? "member" : "surplus");
    cell(b, "Registered");
    api_buf_puts(b, "<time datetime=\"");
    api_web_time_attr(b, m->created_ms);
    api_buf_puts(b, "\">");
    api_web_time_text(b, m->created_ms);
    api_buf_puts(b, "</time></td></tr>");
}

/* Take the snapshot; caller holds node_rdlock(). */
static void snapshot(struct token_ctx *c)
{
    const struct kv *kv = node_kv(c->t->api->node);
    const struct kv_node *d = kv_token_dir(kv, c->token, c->token_len);
    if (d == NULL)
        return;
    struct kv_token_info info;
    kv_token_info(kv, c->token, c->token_len, &info);
    c->found = true;
    c->size = info.size;
    c->created_ms = d->created_ms;
    uint32_t nvisible = kv_node_nvisible(d);
    const struct kv_node **v = calloc(nvisible ? nvisible : 1, sizeof(*v));
    if (v == NULL) {
        c->rows.oom = true;
        return;
    }
    for (const struct kv_node *m = kv_node_first(d); m != NULL && c->count < nvisible; m = m->next_sibling)
        if (!kv_node_hidden(m) && !m->dir)
            v[c->count++] = m;
    qsort(v, c->count, sizeof(*v), by_created);
    for (size_t i = 0; i < c->count; i++)
        member_row(&c->rows, i + 1, v[i], i < c->size);
    free(v);
}

static const char *state_of(const struct token_ctx *c)
{
    if (!c->found)
        return "notfound";
    return c->size > 0 && c->count >= c->size ? "full" : "waiting";
}

/* The same sentences as app.js's stateText(). */
static void state_text(struct api_buf *b, const struct token_ctx *c)
{
    if (!c->found) {
        api_buf_puts(b, "No token by this name exists: it was never created, it expired, or it was deleted.");
    } else if (c->size > 0 && c->count >= c->size) {
        api_buf_printf(b, "Full: %u of %u members registered.", c->size, c->size);
        if (c->count > c->size)
            api_buf_printf(b, " %zu surplus (they run as proxies or exit).", c->count - c->size);
    } else {
        api_buf_printf(b, "Waiting for members: %zu of %u registered.", c->count, c->size);
    }
}

static bool is(const char *name, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(name, lit, len) == 0;
}

static bool token_fill(void *arg, struct api_buf *b, const char *name, size_t len)
{
    struct token_ctx *c = arg;
    if (is(name, len, "token")) {
        api_html_escape(b, c->token, c->token_len);
    } else if (is(name, len, "url") || is(name, len, "base")) {
        struct api_buf u = {0};
        (void)api_base_url(c->t, c->req, &u, NULL); /* checked by api_web_send_page */
        if (is(name, len, "url")) {
            api_buf_puts(&u, "/");
            api_buf_put(&u, c->token, c->token_len);
        }
        api_html_escape(b, u.p, u.len);
        b->oom |= u.oom;
        api_buf_free(&u);
    } else if (is(name, len, "state")) {
        api_buf_puts(b, state_of(c));
    } else if (is(name, len, "state_text")) {
        state_text(b, c);
    } else if (is(name, len, "size")) {
        if (c->found)
            api_buf_printf(b, "%u", c->size);
        else
            api_buf_puts(b, "–");
    } else if (is(name, len, "count")) {
        if (c->found)
            api_buf_printf(b, "%zu", c->count);
        else
            api_buf_puts(b, "–");
    } else if (is(name, len, "created") || is(name, len, "expires")) {
        int64_t ttl = c->t->api->cfg.token_ttl_ms;
        bool exp = is(name, len, "expires");
        if (!c->found || (exp && ttl <= 0)) {
            api_buf_puts(b, exp && c->found ? "never" : "–");
        } else {
            int64_t ms = c->created_ms + (exp ? ttl : 0);
            api_buf_puts(b, "<time datetime=\"");
            api_web_time_attr(b, ms);
            api_buf_puts(b, "\">");
            api_web_time_text(b, ms);
            api_buf_puts(b, "</time>");
        }
    } else if (is(name, len, "members")) {
        api_buf_put(b, c->rows.p, c->rows.len);
        b->oom |= c->rows.oom;
    } else if (is(name, len, "empty_hidden")) {
        if (c->count > 0)
            api_buf_puts(b, "hidden");
    } else {
        return false;
    }
    return true;
}

bool api_web_token_page(struct api_thread *t, h2o_req_t *req, const struct api_route *r)
{
    if (!api_is_method(req, "GET") && !api_is_method(req, "HEAD"))
        return false;
    if (r->kind != API_ROUTE_KEYS || !r->short_form ||
        r->key_len != sizeof(KV_DISCOVERY_DIR) + r->token_len || req->query_at != SIZE_MAX)
        return false; /* a member key, a query (a watch, recursive=...) or the private form: JSON */
    if (!api_web_wants_html(req))
        return false;
    struct token_ctx c = {.t = t, .req = req, .token = r->token, .token_len = r->token_len};
    node_rdlock(t->api->node);
    snapshot(&c);
    node_rdunlock(t->api->node);
    api_web_send_page(t, req, API_ROUTE_PAGE, c.found ? 200 : 404, "token.html", "no-store", token_fill, &c);
    api_buf_free(&c.rows);
    return true;
}
