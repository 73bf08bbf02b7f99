/* api/web.c — serving the web pages: Accept negotiation, the security and caching headers, the
 * embedded assets (/static/<file>, ETag and 304), the template renderer with HTML escaping, the
 * home page and /new's redirect for browsers. The token page itself is in web_token.c.
 */
#include "api/web.h"

#include <stdio.h>
#include <strings.h>
#include <time.h>
#include "api/reply.h"
#include "api/request.h"
#include "api/token.h"

static const h2o_token_t H_CSP = API_HEADER_NAME("Content-Security-Policy");
static const h2o_token_t H_NOSNIFF = API_HEADER_NAME("X-Content-Type-Options");
static const h2o_token_t H_FRAME_OPTIONS = API_HEADER_NAME("X-Frame-Options");
static const h2o_token_t H_REFERRER_POLICY = API_HEADER_NAME("Referrer-Policy");
static const h2o_token_t H_CACHE_CONTROL = API_HEADER_NAME("Cache-Control");
static const h2o_token_t H_VARY = API_HEADER_NAME("Vary");
static const h2o_token_t H_ETAG = API_HEADER_NAME("ETag");
static const h2o_token_t H_LOCATION = API_HEADER_NAME("Location");

/* Nothing inline, nothing from elsewhere: scripts, styles, images and fetches from this origin. */
#define WEB_CSP                                                                                              \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "          \
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

/* ---- pure helpers ---- */

bool api_web_accepts_html(const char *accept, size_t len)
{
    static const char want[] = "text/html";
    const size_t n = sizeof(want) - 1;
    size_t i = 0;
    while (i < len) {
        /* one media range: skip blanks, compare the type up to ';' ',' or blank */
        while (i < len && (accept[i] == ' ' || accept[i] == '\t' || accept[i] == ','))
            i++;
        size_t start = i;
        while (i < len && accept[i] != ',' && accept[i] != ';' && accept[i] != ' ' && accept[i] != '\t')
            i++;
        if (i - start == n && strncasecmp(accept + start, want, n) == 0)
            return true;
        while (i < len && accept[i] != ',')
            i++;
    }
    return false;
}

void api_html_escape(struct api_buf *b, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep;
        switch (s[i]) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            continue;
        }
        api_buf_put(b, s + run, i - run);
        api_buf_puts(b, rep);
        run = i + 1;
    }
    api_buf_put(b, s + run, n - run);
}

bool api_web_etag_match(const char *inm, size_t len, const char *etag)
{
    size_t el = strlen(etag);
    size_t i = 0;
    while (i < len) {
        while (i < len && (inm[i] == ' ' || inm[i] == '\t' || inm[i] == ','))
            i++;
        size_t start = i;
        while (i < len && inm[i] != ',' && inm[i] != ' ' && inm[i] != '\t')
            i++;
        const char *tag = inm + start;
        size_t tl = i - start;
        if (tl == 1 && tag[0] == '*')
            return true;
        if (tl >= 2 && tag[0] == 'W' && tag[1] == '/') { /* weak comparison for If-None-Match */
            tag += 2;
            tl -= 2;
        }
        if (tl == el && memcmp(tag, etag, el) == 0)
            return true;
    }
    return false;
}

const struct web_file *api_web_file(const char *name, size_t len)
{
    for (size_t i = 0; i < web_files_count; i++)
        if (strlen(web_files[i].name) == len && memcmp(web_files[i].name, name, len) == 0)
            return &web_files[i];
    return NULL;
}

/* The ETag without its quotes. */
static void etag_hex(const struct web_file *f, const char **s, size_t *n)
{
    *s = f->etag + 1;
    *n = strlen(f->etag) - 2;
}

void api_web_asset_url(struct api_buf *b, const struct web_file *f)
{
    const char *h;
    size_t hn;
    etag_hex(f, &h, &hn);
    api_buf_puts(b, "/" API_STATIC_PREFIX "/");
    api_buf_puts(b, f->name);
    api_buf_puts(b, "?v=");
    api_buf_put(b, h, hn);
}

/* The first c c ("{{" or "}}") in s[0..n), or NULL. */
static const char *find_pair(const char *s, size_t n, char c)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == c && s[i + 1] == c)
            return s + i;
    return NULL;
}

int api_web_render(struct api_buf *b, const char *tpl, size_t len, api_web_fill_fn fill, void *arg,
                   const char **bad)
{
    static const char asset[] = "asset:";
    size_t i = 0;
    *bad = NULL;
    while (i < len) {
        const char *open = find_pair(tpl + i, len - i, '{');
        if (open == NULL) {
            api_buf_put(b, tpl + i, len - i);
            break;
        }
        size_t o = (size_t)(open - tpl);
        api_buf_put(b, tpl + i, o - i);
        const char *close = find_pair(tpl + o + 2, len - o - 2, '}');
        if (close == NULL) {
            *bad = tpl + o;
            return -1;
        }
        const char *name = tpl + o + 2;
        size_t nl = (size_t)(close - name);
        if (nl > sizeof(asset) - 1 && memcmp(name, asset, sizeof(asset) - 1) == 0) {
            const struct web_file *f = api_web_file(name + sizeof(asset) - 1, nl - (sizeof(asset) - 1));
            if (f == NULL) {
                *bad = name;
                return -1;
            }
            api_web_asset_url(b, f);
        } else if (!fill(arg, b, name, nl)) {
            *bad = name;
            return -1;
        }
        i = (size_t)(close - tpl) + 2;
    }
    return 0;
}

static void time_fmt(struct api_buf *b, int64_t unix_ms, const char *fmt)
{
    time_t t = (time_t)(unix_ms >= 0 ? unix_ms / 1000 : (unix_ms - 999) / 1000);
    struct tm tm;
    char out[64];
    gmtime_r(&t, &tm);
    size_t n = strftime(out, sizeof(out), fmt, &tm);
    api_buf_put(b, out, n);
}

void api_web_time_text(struct api_buf *b, int64_t unix_ms)
{
    time_fmt(b, unix_ms, "%Y-%m-%d %H:%M:%S UTC");
}

void api_web_time_attr(struct api_buf *b, int64_t unix_ms)
{
    time_fmt(b, unix_ms, "%Y-%m-%dT%H:%M:%SZ");
}

/* ---- requests ---- */

bool api_web_wants_html(h2o_req_t *req)
{
    ssize_t i = -1;
    while ((i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, i)) >= 0) {
        h2o_iovec_t v = req->headers.entries[i].value;
        if (api_web_accepts_html(v.base, v.len))
            return true;
    }
    return false;
}

static bool get_or_head(h2o_req_t *req)
{
    return api_is_method(req, "GET") || api_is_method(req, "HEAD");
}

void api_web_headers(h2o_req_t *req, const char *cache)
{
    api_header(req, &H_CSP, WEB_CSP, sizeof(WEB_CSP) - 1);
    api_header(req, &H_NOSNIFF, "nosniff", 7);
    api_header(req, &H_FRAME_OPTIONS, "DENY", 4);
    api_header(req, &H_REFERRER_POLICY, "no-referrer", 11);
    api_header(req, &H_CACHE_CONTROL, cache, strlen(cache));
}

void api_web_send_page(struct api_thread *t, h2o_req_t *req, enum api_route_kind route, int status,
                       const char *file, const char *cache, api_web_fill_fn fill, void *arg)
{
    struct api_buf base = {0};
    const char *why = NULL;
    int bad_host = api_base_url(t, req, &base, &why); /* the pages show it: refuse a bad Host first */
    api_buf_free(&base);
    if (bad_host != 0) {
        api_send_text(t, req, route, 400, why);
        return;
    }
    const struct web_file *f = api_web_file(file, strlen(file));
    struct api_buf b = {0};
    const char *bad = NULL;
    if (f == NULL || api_web_render(&b, (const char *)f->data, f->len, fill, arg, &bad) != 0) {
        api_log("web: template %s: unknown placeholder near \"%.24s\"", file, bad ? bad : "(missing file)");
        api_buf_free(&b);
        api_send_text(t, req, route, 500, "internal error: a page template is broken");
        return;
    }
    api_web_headers(req, cache);
    api_header(req, &H_VARY, "Accept", 6);
    api_send_buf(t, req, route, status, "text/html; charset=utf-8", &b);
}

/* ---- / ---- */

struct home_ctx {
    struct api_thread *t;
    h2o_req_t *req;
};

static bool is(const char *name, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(name, lit, len) == 0;
}

static bool home_fill(void *arg, struct api_buf *b, const char *name, size_t len)
{
    struct home_ctx *c = arg;
    if (is(name, len, "base")) {
        struct api_buf base = {0};
        (void)api_base_url(c->t, c->req, &base, NULL); /* checked by api_web_send_page */
        api_html_escape(b, base.p, base.len);
        b->oom |= base.oom;
        api_buf_free(&base);
    } else if (is(name, len, "max_size")) {
        api_buf_printf(b, "%u", c->t->api->cfg.max_size);
    } else if (is(name, len, "default_size")) {
        api_buf_printf(b, "%u", 3 <= c->t->api->cfg.max_size ? 3 : c->t->api->cfg.max_size);
    } else {
        return false;
    }
    return true;
}

bool api_web_home(struct api_thread *t, h2o_req_t *req)
{
    if (!get_or_head(req) || !api_web_wants_html(req))
        return false;
    struct home_ctx c = {t, req};
    api_web_send_page(t, req, API_ROUTE_HOME, 200, "index.html", "no-cache", home_fill, &c);
    return true;
}

/* ---- /static/<file> ---- */

/* The query's v= equals the asset's ETag: the URL names this exact content. */
static bool versioned(h2o_req_t *req, const struct web_file *f)
{
    if (req->query_at == SIZE_MAX)
        return false;
    const char *q = req->path.base + req->query_at + 1;
    size_t qn = req->path.len - req->query_at - 1;
    const char *h;
    size_t hn;
    etag_hex(f, &h, &hn);
    return qn == 2 + hn && memcmp(q, "v=", 2) == 0 && memcmp(q + 2, h, hn) == 0;
}

void api_web_static(struct api_thread *t, h2o_req_t *req, const struct api_route *r)
{
    const struct web_file *f = api_web_file(r->token, r->token_len);
    if (f == NULL || (f->len >= 5 && strcmp(f->name + strlen(f->name) - 5, ".html") == 0)) {
        api_send_text(t, req, API_ROUTE_STATIC, 404, "404 page not found");
        return;
    }
    if (!get_or_head(req)) {
        api_send_405(t, req, API_ROUTE_STATIC, "GET, HEAD");
        return;
    }
    api_web_headers(req, versioned(req, f) ? "public, max-age=31536000, immutable" : "no-cache");
    api_header(req, &H_ETAG, f->etag, strlen(f->etag));
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_IF_NONE_MATCH, -1);
    if (i >= 0 &&
        api_web_etag_match(req->headers.entries[i].value.base, req->headers.entries[i].value.len, f->etag)) {
        api_send(t, req, API_ROUTE_STATIC, 304, NULL, "", 0);
        return;
    }
    api_send(t, req, API_ROUTE_STATIC, 200, f->type, (const char *)f->data, f->len);
}

/* ---- /new from the form ---- */

void api_web_new_redirect(struct api_thread *t, h2o_req_t *req, const char *token, size_t token_len)
{
    char loc[API_TOKEN_MAX_LEN + 2];
    int n = snprintf(loc, sizeof(loc), "/%.*s", (int)token_len, token);
    api_header(req, &H_LOCATION, loc, (size_t)n);
    api_web_headers(req, "no-store");
    char line[API_TOKEN_MAX_LEN + 16];
    snprintf(line, sizeof(line), "See %s", loc);
    api_send_text(t, req, API_ROUTE_NEW, 303, line);
}
