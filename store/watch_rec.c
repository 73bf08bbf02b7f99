/* store/watch_rec.c — compact history records (watch_rec.h): an action byte, a flags byte, the
 * index as a varint, every other index as a zigzag varint of its distance from it (0 or a few
 * bytes), expiries as zigzag varints, then the key's suffix and the values with varint lengths.
 */
#include "store/watch_rec.h"

#include <stdlib.h>
#include <string.h>

enum {
    F_REFRESH = 1,
    F_PREV = 2,
    F_NDIR = 4,
    F_NVAL = 8,
    F_PDIR = 16,
    F_PVAL = 32,
};

/* Writes when p is not NULL; returns the bytes it takes either way. */
static size_t put_uv(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    do {
        uint8_t b = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (p)
            p[n] = (uint8_t)(b | (v ? 0x80 : 0));
        n++;
    } while (v);
    return n;
}

static uint64_t zig(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t zag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static uint64_t get_uv(const uint8_t **pp)
{
    const uint8_t *p = *pp;
    uint64_t v = 0;
    unsigned shift = 0;
    for (;;) {
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
        shift += 7;
    }
    *pp = p;
    return v;
}

static size_t put_bytes(uint8_t *p, const char *s, uint32_t len)
{
    size_t n = put_uv(p, len);
    if (p && len)
        memcpy(p + n, s, len);
    return n + len;
}

static size_t put_node(uint8_t *p, const struct kv_enode *e, uint64_t index, bool value)
{
    size_t n = 0;
    n += put_uv(p ? p + n : NULL, zig((int64_t)(index - e->modified_index)));
    n += put_uv(p ? p + n : NULL, zig((int64_t)(index - e->created_index)));
    n += put_uv(p ? p + n : NULL, zig(e->expire_ms));
    if (value)
        n += put_bytes(p ? p + n : NULL, e->value, e->value_len);
    return n;
}

/* The whole record into p (NULL: only count). */
static size_t put_rec(uint8_t *p, const struct kv_event *ev, size_t prefix_len)
{
    uint8_t flags = (uint8_t)((ev->refresh ? F_REFRESH : 0) | (ev->has_prev ? F_PREV : 0) |
                              (ev->node.dir ? F_NDIR : 0) | (ev->node.value ? F_NVAL : 0) |
                              (ev->has_prev && ev->prev.dir ? F_PDIR : 0) |
                              (ev->has_prev && ev->prev.value ? F_PVAL : 0));
    size_t n = 2;
    if (p) {
        p[0] = (uint8_t)ev->action;
        p[1] = flags;
    }
    n += put_uv(p ? p + n : NULL, ev->index);
    n += put_node(p ? p + n : NULL, &ev->node, ev->index, ev->node.value != NULL);
    size_t klen = strlen(ev->node.key);
    n += put_bytes(p ? p + n : NULL, ev->node.key + prefix_len, (uint32_t)(klen - prefix_len));
    if (ev->has_prev)
        n += put_node(p ? p + n : NULL, &ev->prev, ev->index, ev->prev.value != NULL);
    return n;
}

uint8_t *wrec_encode(const struct kv_event *ev, size_t prefix_len)
{
    uint8_t *rec = malloc(put_rec(NULL, ev, prefix_len));
    if (rec)
        put_rec(rec, ev, prefix_len);
    return rec;
}

static void get_node(const uint8_t **pp, struct wrec_node *n, uint64_t index, bool value)
{
    n->modified_index = index - (uint64_t)zag(get_uv(pp));
    n->created_index = index - (uint64_t)zag(get_uv(pp));
    n->expire_ms = zag(get_uv(pp));
    n->value = NULL;
    n->value_len = 0;
    if (value) {
        n->value_len = (uint32_t)get_uv(pp);
        n->value = (const char *)*pp;
        *pp += n->value_len;
    }
}

void wrec_decode(const uint8_t *rec, struct wrec_view *v)
{
    uint8_t flags = rec[1];
    const uint8_t *p = rec + 2;
    memset(v, 0, sizeof(*v));
    v->action = (enum kv_action)rec[0];
    v->refresh = flags & F_REFRESH;
    v->has_prev = flags & F_PREV;
    v->index = get_uv(&p);
    get_node(&p, &v->node, v->index, flags & F_NVAL);
    v->node.dir = flags & F_NDIR;
    v->suffix_len = (uint32_t)get_uv(&p);
    v->suffix = (const char *)p;
    p += v->suffix_len;
    if (v->has_prev) {
        get_node(&p, &v->prev, v->index, flags & F_PVAL);
        v->prev.dir = flags & F_PDIR;
    }
}

uint64_t wrec_index(const uint8_t *rec)
{
    const uint8_t *p = rec + 2;
    return get_uv(&p);
}

static void set_enode(struct kv_enode *e, const struct wrec_node *n)
{
    e->dir = n->dir;
    e->expire_ms = n->expire_ms;
    e->modified_index = n->modified_index;
    e->created_index = n->created_index;
}

struct kv_event *wrec_event(const struct wrec_view *v, const char *prefix, size_t prefix_len)
{
    size_t klen = prefix_len + v->suffix_len;
    char stackk[256], *key = klen <= sizeof(stackk) ? stackk : malloc(klen);
    if (!key)
        return NULL;
    memcpy(key, prefix, prefix_len);
    if (v->suffix_len)
        memcpy(key + prefix_len, v->suffix, v->suffix_len);
    struct kv_event *ev = kv_event_new(v->action, v->index, key, (uint32_t)klen, v->node.value, v->node.value_len,
                                       v->has_prev ? v->prev.value : NULL, v->prev.value_len);
    if (key != stackk)
        free(key);
    if (!ev)
        return NULL;
    set_enode(&ev->node, &v->node);
    if (v->has_prev) {
        ev->has_prev = true;
        set_enode(&ev->prev, &v->prev);
    }
    ev->refresh = v->refresh;
    return ev;
}
