/* api/json.c — rendering of etcd v2 events, nodes and errors exactly as etcd 3.4 (Go 1.19
 * encoding/json) writes them; see json.h and reference/etcd-3.4-trace/store-json-examples.txt.
 */
#include "api/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "api/form.h"

void api_buf_free(struct api_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static bool reserve(struct api_buf *b, size_t n)
{
    if (b->oom)
        return false;
    if (b->len + n <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void api_buf_put(struct api_buf *b, const void *s, size_t n)
{
    if (n == 0 || !reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

void api_buf_puts(struct api_buf *b, const char *s)
{
    api_buf_put(b, s, strlen(s));
}

void api_buf_printf(struct api_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(b, (size_t)n + 1))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

size_t api_fmt_u64(char out[API_U64_DIGITS], uint64_t v)
{
    char d[API_U64_DIGITS];
    size_t i = sizeof(d);
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    memcpy(out, d + i, sizeof(d) - i);
    return sizeof(d) - i;
}

void api_buf_u64(struct api_buf *b, uint64_t v)
{
    char d[API_U64_DIGITS];
    api_buf_put(b, d, api_fmt_u64(d, v));
}

void api_buf_i64(struct api_buf *b, int64_t v)
{
    if (v < 0) {
        api_buf_put(b, "-", 1);
        api_buf_u64(b, (uint64_t)0 - (uint64_t)v);
        return;
    }
    api_buf_u64(b, (uint64_t)v);
}

void api_json_str(struct api_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    api_buf_put(b, "\"", 1);
    size_t start = 0, i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c < 0x80) {
            if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
                i++;
                continue;
            }
            api_buf_put(b, s + start, i - start);
            switch (c) {
            case '"':
                api_buf_put(b, "\\\"", 2);
                break;
            case '\\':
                api_buf_put(b, "\\\\", 2);
                break;
            case '\n':
                api_buf_put(b, "\\n", 2);
                break;
            case '\r':
                api_buf_put(b, "\\r", 2);
                break;
            case '\t':
                api_buf_put(b, "\\t", 2);
                break;
            default: {
                char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                api_buf_put(b, e, 6);
            }
            }
            start = ++i;
            continue;
        }
        uint32_t cp;
        size_t l = api_utf8_seq(p + i, n - i, &cp);
        if (l == 0) {
            api_buf_put(b, s + start, i - start);
            api_buf_put(b, "\\ufffd", 6);
            start = ++i;
            continue;
        }
        if (cp == 0x2028 || cp == 0x2029) {
            api_buf_put(b, s + start, i - start);
            api_buf_put(b, cp == 0x2028 ? "\\u2028" : "\\u2029", 6);
            i += l;
            start = i;
            continue;
        }
        i += l;
    }
    api_buf_put(b, s + start, n - start);
    api_buf_put(b, "\"", 1);
}

void api_json_time(struct api_buf *b, int64_t unix_ms)
{
    int64_t secs = unix_ms / 1000, ms = unix_ms % 1000;
    if (ms < 0) {
        ms += 1000;
        secs--;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    char out[64];
    size_t o = strftime(out, sizeof(out), "\"%Y-%m-%dT%H:%M:%S", &tm);
    if (ms != 0) {
        int frac = (int)ms, digits = 3;
        while (frac % 10 == 0) {
            frac /= 10;
            digits--;
        }
        o += (size_t)snprintf(out + o, sizeof(out) - o, ".%0*d", digits, frac);
    }
    o += (size_t)snprintf(out + o, sizeof(out) - o, "Z\"");
    api_buf_put(b, out, o);
}

int64_t api_ttl_seconds(int64_t expire_ms, int64_t now_ms)
{
    int64_t rem = expire_ms - now_ms;
    int64_t ttl = rem / 1000;
    if (rem % 1000 > 0)
        ttl++;
    return ttl;
}

/* until (may be NULL): lowered to the first instant after now_ms at which this TTL renders
 * differently (ttl = ceil(rem / 1 s) drops by one when rem reaches the next lower whole second). */
static void expiry(struct api_buf *b, int64_t expire_ms, int64_t now_ms, int64_t *until)
{
    if (expire_ms == 0)
        return;
    api_buf_puts(b, ",\"expiration\":");
    api_json_time(b, expire_ms);
    int64_t ttl = api_ttl_seconds(expire_ms, now_ms);
    if (ttl != 0) {
        api_buf_puts(b, ",\"ttl\":");
        api_buf_i64(b, ttl);
    }
    if (until != NULL) {
        int64_t next = expire_ms - (ttl - 1) * 1000;
        if (next < *until)
            *until = next;
    }
}

static void indexes(struct api_buf *b, uint64_t modified, uint64_t created)
{
    if (modified) {
        api_buf_puts(b, ",\"modifiedIndex\":");
        api_buf_u64(b, modified);
    }
    if (created) {
        api_buf_puts(b, ",\"createdIndex\":");
        api_buf_u64(b, created);
    }
}

static void enode(struct api_buf *b, const struct kv_enode *n, int64_t now_ms)
{
    api_buf_puts(b, "{\"key\":");
    api_json_str(b, n->key, strlen(n->key));
    /* etcd's Value is a *string: present (even "") on files, absent on dirs and deleted nodes */
    if (n->value != NULL && !n->dir) {
        api_buf_puts(b, ",\"value\":");
        api_json_str(b, n->value, n->value_len);
    }
    if (n->dir)
        api_buf_puts(b, ",\"dir\":true");
    expiry(b, n->expire_ms, now_ms, NULL);
    indexes(b, n->modified_index, n->created_index);
    api_buf_puts(b, "}");
}

void api_json_event(struct api_buf *b, const struct kv_event *ev, int64_t now_ms, bool no_value)
{
    api_buf_puts(b, "{\"action\":");
    const char *a = kv_action_name(ev->action);
    api_json_str(b, a, strlen(a));
    if (!no_value) {
        api_buf_puts(b, ",\"node\":");
        enode(b, &ev->node, now_ms);
        if (ev->has_prev) {
            api_buf_puts(b, ",\"prevNode\":");
            enode(b, &ev->prev, now_ms);
        }
    }
    if (ev->refresh)
        api_buf_puts(b, ",\"refresh\":true");
    api_buf_puts(b, "}\n");
}

/* Siblings sort by key as by name: their keys differ only there. */
static int cmp_key(const void *a, const void *b)
{
    const struct kv_node *x = *(const struct kv_node *const *)a, *y = *(const struct kv_node *const *)b;
    return strcmp(x->name, y->name);
}

/* A tree node; list: render its visible children (always at the top of a GET, and at every
 * level when recursive). */
static void tnode(struct api_buf *b, const struct kv *kv, const struct kv_node *n, bool list, bool recursive,
                  bool sorted, int64_t now_ms, int64_t *until)
{
    char kbuf[512];
    size_t klen;
    const char *key = kv_node_key(n, kbuf, sizeof(kbuf), &klen);
    if (key == NULL) {
        b->oom = true;
        return;
    }
    api_buf_puts(b, "{\"key\":");
    api_json_str(b, key, klen);
    if (key != kbuf)
        free((char *)key);
    if (!n->dir) {
        api_buf_puts(b, ",\"value\":");
        api_json_str(b, kv_node_value(n), kv_node_value_len(n));
    }
    if (n->dir)
        api_buf_puts(b, ",\"dir\":true");
    expiry(b, kv_node_expire_ms(kv, n), now_ms, until);
    uint32_t nvisible = kv_node_nvisible(n);
    if (list && nvisible > 0) {
        const struct kv_node *stackv[64];
        const struct kv_node **v = stackv;
        size_t cnt = 0;
        if (sorted && nvisible > sizeof(stackv) / sizeof(stackv[0])) {
            v = malloc(nvisible * sizeof(*v));
            if (v == NULL) {
                b->oom = true;
                return;
            }
        }
        bool first = true;
        api_buf_puts(b, ",\"nodes\":[");
        for (const struct kv_node *c = kv_node_first(n); c != NULL; c = c->next_sibling) {
            if (kv_node_hidden(c))
                continue;
            if (sorted) {
                if (cnt < nvisible)
                    v[cnt++] = c;
                continue;
            }
            if (!first)
                api_buf_puts(b, ",");
            first = false;
            tnode(b, kv, c, recursive, recursive, sorted, now_ms, until);
        }
        if (sorted) {
            qsort(v, cnt, sizeof(*v), cmp_key);
            for (size_t i = 0; i < cnt; i++) {
                if (i)
                    api_buf_puts(b, ",");
                tnode(b, kv, v[i], recursive, recursive, sorted, now_ms, until);
            }
            if (v != stackv)
                free(v);
        }
        api_buf_puts(b, "]");
    }
    indexes(b, n->modified_index, n->created_index);
    api_buf_puts(b, "}");
}

void api_json_get_until(struct api_buf *b, const struct kv *kv, const struct kv_node *n, bool recursive, bool sorted,
                        int64_t now_ms, int64_t *until)
{
    if (until != NULL)
        *until = INT64_MAX;
    api_buf_puts(b, "{\"action\":\"get\",\"node\":");
    tnode(b, kv, n, true, recursive, sorted, now_ms, until);
    api_buf_puts(b, "}\n");
}

void api_json_get(struct api_buf *b, const struct kv *kv, const struct kv_node *n, bool recursive, bool sorted,
                  int64_t now_ms)
{
    api_json_get_until(b, kv, n, recursive, sorted, now_ms, NULL);
}

void api_json_error(struct api_buf *b, int code, const char *message, const char *cause, uint64_t index)
{
    api_buf_puts(b, "{\"errorCode\":");
    api_buf_i64(b, code);
    api_buf_puts(b, ",\"message\":");
    api_json_str(b, message, strlen(message));
    if (cause != NULL && cause[0] != 0) {
        api_buf_puts(b, ",\"cause\":");
        api_json_str(b, cause, strlen(cause));
    }
    api_buf_puts(b, ",\"index\":");
    api_buf_u64(b, index);
    api_buf_puts(b, "}\n");
}
