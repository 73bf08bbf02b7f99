/* api/route.c — path → route. Decodes the path once into components, refuses ambiguous paths
 * (anything path cleaning would change, or an encoded '/'), then matches the route table of
 * docs/protocol.md#routes. Pure; see route.h.
 */
#include "api/route.h"

#include <string.h>
#include "api/token.h"
#include "store/kv.h"

#define MAX_COMPONENTS 64

const char *api_route_name(enum api_route_kind k)
{
    static const char *const names[API_ROUTE_COUNT] = {
        [API_ROUTE_NOT_FOUND] = "notfound", [API_ROUTE_BAD_PATH] = "badpath",
        [API_ROUTE_HOME] = "home",          [API_ROUTE_NEW] = "new",
        [API_ROUTE_HEALTH] = "health",      [API_ROUTE_METRICS] = "metrics",
        [API_ROUTE_ROBOTS] = "robots",      [API_ROUTE_STATUS] = "status",
        [API_ROUTE_KEYS] = "keys",          [API_ROUTE_FORBIDDEN] = "forbidden",
        [API_ROUTE_STATIC] = "static",      [API_ROUTE_PAGE] = "page",
        [API_ROUTE_MEMBERS] = "members",
    };
    return (unsigned)k < API_ROUTE_COUNT ? names[k] : "unknown";
}

struct comp {
    const char *s;
    uint32_t len;
};

static bool eq(const struct comp *c, const char *lit)
{
    return c->len == strlen(lit) && memcmp(c->s, lit, c->len) == 0;
}

static int bad(struct api_route *r, const char *reason)
{
    r->kind = API_ROUTE_BAD_PATH;
    r->reason = reason;
    return 0;
}

/* Build "/discovery/<token>[/c...]" from comps[first..n). */
static int keys_route(struct api_route *r, const struct comp *c, size_t first, size_t n, bool short_form,
                      api_alloc_fn alloc, void *actx)
{
    size_t total = sizeof(KV_DISCOVERY_DIR) - 1;
    uint32_t longest = 0;
    for (size_t i = first; i < n; i++) {
        total += 1 + c[i].len;
        if (i > first && c[i].len > longest)
            longest = c[i].len;
    }
    char *key = alloc(actx, total + 1);
    if (key == NULL)
        return -2;
    size_t o = sizeof(KV_DISCOVERY_DIR) - 1;
    memcpy(key, KV_DISCOVERY_DIR, o);
    for (size_t i = first; i < n; i++) {
        key[o++] = '/';
        if (i == first)
            r->token = key + o;
        memcpy(key + o, c[i].s, c[i].len);
        o += c[i].len;
    }
    key[o] = 0;
    r->kind = API_ROUTE_KEYS;
    r->short_form = short_form;
    r->token_len = c[first].len;
    r->key = key;
    r->key_len = (uint32_t)o;
    r->longest = longest;
    return 0;
}

int api_route(struct api_route *r, const char *path, size_t len, api_alloc_fn alloc, void *actx)
{
    memset(r, 0, sizeof(*r));
    if (len == 0 || path[0] != '/')
        return bad(r, "the path must start with '/'");
    if (len == 1) {
        r->kind = API_ROUTE_HOME;
        return 0;
    }
    char *buf = alloc(actx, len);
    if (buf == NULL)
        return -2;
    struct comp c[MAX_COMPONENTS];
    size_t n = 0, o = 0;
    size_t i = 1;
    while (i <= len) {
        size_t end = i;
        while (end < len && path[end] != '/')
            end++;
        size_t clen = end - i;
        if (clen == 0) {
            if (end == len && n > 0)
                break; /* one trailing slash */
            return bad(r, "the path has an empty component (\"//\")");
        }
        for (size_t j = i; j + 2 < end; j++)
            if (path[j] == '%' && path[j + 1] == '2' && (path[j + 2] == 'f' || path[j + 2] == 'F'))
                return bad(r, "the path contains an encoded '/' (%2F)");
        size_t badat;
        long dl = api_pct_decode(path + i, clen, buf + o, false, &badat);
        if (dl < 0)
            return bad(r, "the path has bad percent-encoding");
        if (memchr(buf + o, 0, (size_t)dl) != NULL)
            return bad(r, "the path contains a NUL byte");
        if (!api_utf8_valid(buf + o, (size_t)dl))
            return bad(r, "the path is not valid UTF-8");
        if ((dl == 1 && buf[o] == '.') || (dl == 2 && buf[o] == '.' && buf[o + 1] == '.'))
            return bad(r, "the path contains a '.' or '..' component");
        if (n == MAX_COMPONENTS)
            return bad(r, "the path has too many components");
        c[n].s = buf + o;
        c[n].len = (uint32_t)dl;
        n++;
        o += (size_t)dl;
        i = end + 1;
    }

    if (n == 2 && eq(&c[0], "v2") && eq(&c[1], "keys"))
        goto forbidden;
    if ((n == 2 || n == 3) && eq(&c[0], "v2") && eq(&c[1], "members")) {
        r->kind = API_ROUTE_MEMBERS;
        if (n == 3) {
            r->token = c[2].s;
            r->token_len = c[2].len;
        }
        return 0;
    }
    if (n >= 2 && eq(&c[0], "v2") && eq(&c[1], "keys")) {
        if (n >= 4 && eq(&c[2], "discovery")) {
            /* Inside the served namespace a malformed token is bad input (400), not a path we
             * refuse to serve (403). */
            if (!api_token_name_valid(c[3].s, c[3].len))
                return bad(r, "a token name is 1 to 128 characters of A-Z a-z 0-9 . _ -");
            return keys_route(r, c, 3, n, false, alloc, actx);
        }
        goto forbidden;
    }
    if (api_token_reserved(c[0].s, c[0].len)) {
        if (n == 1 && eq(&c[0], "new"))
            r->kind = API_ROUTE_NEW;
        else if (n == 1 && eq(&c[0], "health"))
            r->kind = API_ROUTE_HEALTH;
        else if (n == 1 && eq(&c[0], "metrics"))
            r->kind = API_ROUTE_METRICS;
        else if (n == 1 && eq(&c[0], "robots.txt"))
            r->kind = API_ROUTE_ROBOTS;
        else if (n == 2 && eq(&c[0], "status") && api_token_name_valid(c[1].s, c[1].len)) {
            r->kind = API_ROUTE_STATUS;
            r->token = c[1].s;
            r->token_len = c[1].len;
        } else if (n == 2 && eq(&c[0], API_STATIC_PREFIX)) {
            r->kind = API_ROUTE_STATIC;
            r->token = c[1].s;
            r->token_len = c[1].len;
        } else
            r->kind = API_ROUTE_NOT_FOUND;
        return 0;
    }
    if (api_token_name_valid(c[0].s, c[0].len))
        return keys_route(r, c, 0, n, true, alloc, actx);
    r->kind = API_ROUTE_NOT_FOUND;
    return 0;

forbidden:
    r->kind = API_ROUTE_FORBIDDEN;
    return 0;
}
