/* store/watch_hist.c — the watch hub's history (watch.h; shared state in watch_int.h): the global
 * ring of every event, each token's ring of compact records (watch_rec.h; a ring of one keeps its
 * record in place of an array), the creation event of a token that holds nothing else, rebuilt
 * from the bound tree instead of kept, history scans (watch_start) and snapshots (watch_dump,
 * watch_restore). Store thread only (a forked snapshot writer may run watch_dump).
 */
#define _GNU_SOURCE /* asprintf */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/watch_int.h"

/* ---------------------------------------------------------------- history rings */

int wh_hist_push(struct whist *r, uint32_t max, struct kv_event *ev)
{
    if (r->n == r->cap && r->cap < max) {
        uint32_t cap = r->cap ? r->cap * 2 : 4;
        if (cap > max)
            cap = max;
        struct kv_event **a = malloc((size_t)cap * sizeof(*a));
        if (a) {
            for (uint32_t i = 0; i < r->n; i++)
                a[i] = r->a[(r->head + i) % r->cap];
            free(r->a);
            r->a = a;
            r->cap = cap;
            r->head = 0;
        } else if (r->cap == 0) {
            return -1;
        }
    }
    if (r->n < r->cap) {
        r->a[(r->head + r->n) % r->cap] = kv_event_ref(ev);
        r->n++;
        return 0;
    }
    /* full: drop the oldest */
    struct kv_event *old = r->a[r->head];
    r->dropped_max = old->index;
    kv_event_unref(old);
    r->a[r->head] = kv_event_ref(ev);
    r->head = (r->head + 1) % r->cap;
    return 0;
}

void wh_hist_clear(struct whist *r)
{
    for (uint32_t i = 0; i < r->n; i++)
        kv_event_unref(r->a[(r->head + i) % r->cap]);
    free(r->a);
    memset(r, 0, sizeof(*r));
}

static struct kv_event *hist_at(const struct whist *r, uint32_t i)
{
    return r->a[(r->head + i) % r->cap];
}

/* ---------------------------------------------------------------- a token's ring of records */

static uint8_t **ring_slot(struct wring *r, uint32_t i)
{
    return r->cap == 1 ? &r->one : &r->a[(r->head + i) % r->cap];
}

const uint8_t *wh_ring_at(const struct wring *r, uint32_t i)
{
    return r->cap == 1 ? r->one : r->a[(r->head + i) % r->cap];
}

/* Append rec (the ring takes it); the oldest is dropped when the ring holds max. -1 on ENOMEM
 * (rec is then freed). */
static int ring_push(struct wring *r, uint32_t max, uint8_t *rec)
{
    if (r->n == r->cap && r->cap < max) {
        uint32_t cap = r->cap == 0 ? 1 : r->cap == 1 ? 4 : r->cap * 2;
        if (cap > max)
            cap = max;
        if (cap == 1) {
            r->cap = 1;
        } else {
            uint8_t **a = malloc((size_t)cap * sizeof(*a));
            if (a) {
                for (uint32_t i = 0; i < r->n; i++)
                    a[i] = (uint8_t *)wh_ring_at(r, i);
                if (r->cap > 1)
                    free(r->a);
                r->a = a;
                r->cap = cap;
                r->head = 0;
            } else if (r->cap == 0) {
                free(rec);
                return -1;
            }
        }
    }
    if (r->n < r->cap) {
        *ring_slot(r, r->n) = rec;
        r->n++;
        return 0;
    }
    /* full: drop the oldest */
    uint8_t **old = ring_slot(r, 0);
    r->dropped_max = wrec_index(*old);
    free(*old);
    *old = rec;
    if (r->cap > 1)
        r->head = (r->head + 1) % r->cap;
    return 0;
}

void wh_ring_clear(struct wring *r)
{
    for (uint32_t i = 0; i < r->n; i++)
        free(*ring_slot(r, i));
    if (r->cap > 1)
        free(r->a);
    memset(r, 0, sizeof(*r));
}

/* Append ev as a record (its key begins with the token's prefix_len bytes). 0, or -1 on ENOMEM. */
int wh_ring_push_event(struct wring *r, uint32_t max, const struct kv_event *ev, size_t prefix_len)
{
    uint8_t *rec = wrec_encode(ev, prefix_len);
    return rec ? ring_push(r, max, rec) : -1;
}

static bool removes_dir(enum kv_action action, bool has_prev, bool prev_dir)
{
    return (action == KV_ACT_DELETE || action == KV_ACT_EXPIRE) && has_prev && prev_dir;
}

/* The history scan's match (EventHistory.scan): no hidden filter, refreshes skipped. The event's
 * key is ekey[0..elen) (node and prevNode name the same key). */
static bool scan_match(bool refresh, bool removes, const char *ekey, size_t elen, const char *key, size_t klen,
                       bool recursive)
{
    if (refresh)
        return false;
    if (elen == klen && memcmp(ekey, key, klen) == 0)
        return true;
    if (recursive && path_under(ekey, elen, key, klen))
        return true;
    if (removes && path_under(key, klen, ekey, elen))
        return true;
    return false;
}

static bool hist_match(const struct kv_event *ev, const char *key, size_t klen, bool recursive)
{
    return scan_match(ev->refresh, ev_removes_dir(ev), ev->node.key, strlen(ev->node.key), key, klen, recursive);
}

/* A token's record's key, "/discovery/<token>" + its suffix, in buf (cap bytes) or, when longer,
 * a malloc'd block the caller frees (NULL on ENOMEM); its length in *len. */
static char *rec_key(const struct wtoken *t, const struct wrec_view *v, char *buf, size_t cap, size_t *len)
{
    size_t n = TOKEN_PREFIX_LEN + t->name_len + v->suffix_len;
    char *k = n <= cap ? buf : malloc(n);
    if (!k)
        return NULL;
    memcpy(k, TOKEN_PREFIX, TOKEN_PREFIX_LEN);
    memcpy(k + TOKEN_PREFIX_LEN, t->name, t->name_len);
    if (v->suffix_len)
        memcpy(k + TOKEN_PREFIX_LEN + t->name_len, v->suffix, v->suffix_len);
    *len = n;
    return k;
}

/* hist_match for a token's record. -1 on ENOMEM. */
static int rec_match(const struct wtoken *t, const struct wrec_view *v, const char *key, size_t klen,
                     bool recursive)
{
    if (v->refresh)
        return 0;
    char buf[512];
    size_t elen;
    char *ekey = rec_key(t, v, buf, sizeof(buf), &elen);
    if (!ekey)
        return -1;
    bool m = scan_match(false, removes_dir(v->action, v->has_prev, v->prev.dir), ekey, elen, key, klen, recursive);
    if (ekey != buf)
        free(ekey);
    return m;
}

/* The kv_event a token's record was made from (refs = 1), or NULL on ENOMEM. */
static struct kv_event *rec_event(const struct wtoken *t, const struct wrec_view *v)
{
    char buf[512];
    size_t plen = TOKEN_PREFIX_LEN + t->name_len;
    char *prefix = plen <= sizeof(buf) ? buf : malloc(plen);
    if (!prefix)
        return NULL;
    memcpy(prefix, TOKEN_PREFIX, TOKEN_PREFIX_LEN);
    memcpy(prefix + TOKEN_PREFIX_LEN, t->name, t->name_len);
    struct kv_event *ev = wrec_event(v, prefix, plen);
    if (prefix != buf)
        free(prefix);
    return ev;
}

/* ---------------------------------------------------------------- tokens that hold only their creation */

bool wh_ring_empty(const struct wtoken *t)
{
    return !t || (t->hist.n == 0 && t->hist.dropped_max == 0);
}

/* The bound tree's /discovery/<name> (a dir or a file), or NULL. */
const struct kv_node *wh_tree_top(const struct watch_hub *h, const char *name, size_t n)
{
    if (!h->kv)
        return NULL;
    char buf[512], *key = TOKEN_PREFIX_LEN + n <= sizeof(buf) ? buf : malloc(TOKEN_PREFIX_LEN + n);
    if (!key)
        return NULL;
    memcpy(key, TOKEN_PREFIX, TOKEN_PREFIX_LEN);
    memcpy(key + TOKEN_PREFIX_LEN, name, n);
    const struct kv_node *top = kv_lookup(h->kv, key, TOKEN_PREFIX_LEN + n);
    if (key != buf)
        free(key);
    return top;
}

/* The token whose top node is top holds only its creation (nothing recorded since): true. */
bool wh_only_creation(const struct watch_hub *h, const struct wtoken *t, const struct kv_node *top)
{
    return h->kv && top && wh_ring_empty(t);
}

/* An event as kv_apply made it for a creation: node fields of n, index c, no prevNode. */
static struct kv_event *creation_event(enum kv_action action, uint64_t c, const char *key, size_t klen, bool dir,
                                       const char *value, uint32_t value_len, int64_t expire_ms)
{
    struct kv_event *ev =
        kv_event_new(action, c, key, (uint32_t)klen, dir ? NULL : (value ? value : ""), value_len, NULL, 0);
    if (!ev)
        return NULL;
    ev->node.dir = dir;
    ev->node.expire_ms = expire_ms;
    ev->node.created_index = ev->node.modified_index = c;
    return ev;
}

/* Rebuild the creation event of a token holding only it, from the tree: the command made a chain
 * of nodes from top down, every one at index c, and nothing has touched them since (anything would
 * have been an event of the token). NULL when the tree does not show that (or on ENOMEM). */
static struct kv_event *creation_from_tree(const struct kv *kv, const struct kv_node *top)
{
    uint64_t c = top->created_index;
    const struct kv_node *l = top;
    if (top->created_action != KV_ACT_SET && top->created_action != KV_ACT_CREATE)
        return NULL;
    while (kv_node_first(l)) {
        l = kv_node_first(l);
        if (l->next_sibling || l->created_index != c)
            return NULL;
    }
    if (l->modified_index != c)
        return NULL;
    char buf[512];
    size_t klen;
    const char *key = kv_node_key(l, buf, sizeof(buf), &klen);
    if (!key)
        return NULL;
    struct kv_event *ev = creation_event((enum kv_action)top->created_action, c, key, klen, l->dir,
                                         kv_node_value(l), kv_node_value_len(l), kv_node_expire_ms(kv, l));
    if (key != buf)
        free((char *)key);
    return ev;
}

/* The same from the first later event, when that is an expiry or deletion of the created node
 * itself (a SWEEP's, which is not announced): its prevNode is that node as the creation left it. */
struct kv_event *wh_creation_from_prev(const struct kv_node *top, const struct kv_event *ev)
{
    uint64_t c = top->created_index;
    if (!ev->has_prev || ev->prev.created_index != c || ev->prev.modified_index != c ||
        (top->created_action != KV_ACT_SET && top->created_action != KV_ACT_CREATE))
        return NULL;
    return creation_event((enum kv_action)top->created_action, c, ev->node.key, strlen(ev->node.key),
                          ev->prev.dir, ev->prev.value, ev->prev.value_len, ev->prev.expire_ms);
}

/* Record a rebuilt creation event in the token's ring (made if missing). */
void wh_record_creation(struct watch_hub *h, const char *name, size_t n, struct kv_event *ev)
{
    struct wtoken *t = ev ? wh_token_get(h, name, n) : NULL;
    if (t)
        (void)wh_ring_push_event(&t->hist, h->hist_cap, ev, TOKEN_PREFIX_LEN + n);
    kv_event_unref(ev);
}

void watch_hub_bind(struct watch_hub *h, const struct kv *kv)
{
    h->kv = kv;
}

void watch_prepare(struct watch_hub *h, const char *key, size_t len)
{
    const char *name;
    size_t n;
    if (!h->kv || !wh_token_of(key, len, &name, &n))
        return;
    const struct kv_node *top = wh_tree_top(h, name, n);
    if (wh_only_creation(h, wh_token_find(h, name, n), top))
        wh_record_creation(h, name, n, creation_from_tree(h->kv, top));
}

/* A history scan that ran out of memory: KV_ERAFT, as the tree answers ENOMEM. */
static int history_oom(struct kv_error *err, uint64_t index)
{
    if (err) {
        free(err->cause);
        err->code = KV_ERAFT;
        err->index = index;
        err->cause = strdup("out of memory");
    }
    return KV_ERAFT;
}

int watch_start(struct watch_hub *h, struct watcher *w, uint64_t wait_index, uint64_t current_index,
                struct kv_event **ev, struct kv_error *err)
{
    uint64_t since = wait_index ? wait_index : current_index + 1;
    w->since = since;
    w->next = w->prev = NULL;
    w->bucket = NULL;
    if (since > current_index)
        return 1;
    const char *name;
    size_t nlen;
    const struct whist *r = &h->global;
    const struct wtoken *t = NULL;
    uint64_t dropped_max, oldest;
    uint32_t n;
    if (wh_token_of(w->key, w->key_len, &name, &nlen)) {
        t = wh_token_find(h, name, nlen);
        const struct kv_node *top = h->kv && wh_ring_empty(t) ? wh_tree_top(h, name, nlen) : NULL;
        if (wh_only_creation(h, t, top)) {
            /* the token's one event, rebuilt from the tree */
            struct kv_event *c = top->created_index >= since ? creation_from_tree(h->kv, top) : NULL;
            if (c && hist_match(c, w->key, w->key_len, w->recursive)) {
                *ev = c;
                return 0;
            }
            kv_event_unref(c);
            return 1;
        }
        if (!t)
            return 1;
        dropped_max = t->hist.dropped_max;
        n = t->hist.n;
        oldest = n ? wrec_index(wh_ring_at(&t->hist, 0)) : 0;
    } else {
        dropped_max = r->dropped_max;
        n = r->n;
        oldest = n ? hist_at(r, 0)->index : 0;
    }
    if (dropped_max && dropped_max >= since) {
        if (err) {
            free(err->cause);
            err->code = KV_EEVENTCLEARED;
            err->index = current_index;
            if (!n)
                oldest = dropped_max + 1;
            if (asprintf(&err->cause, "the requested history has been cleared [%" PRIu64 "/%" PRIu64 "]",
                         oldest, since) < 0)
                err->cause = NULL;
        }
        return KV_EEVENTCLEARED;
    }
    /* first event with index >= since (indexes increase along the ring) */
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if ((t ? wrec_index(wh_ring_at(&t->hist, mid)) : hist_at(r, mid)->index) < since)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (uint32_t i = lo; i < n; i++) {
        if (!t) {
            struct kv_event *e = hist_at(r, i);
            if (hist_match(e, w->key, w->key_len, w->recursive)) {
                *ev = kv_event_ref(e);
                return 0;
            }
            continue;
        }
        struct wrec_view v;
        wrec_decode(wh_ring_at(&t->hist, i), &v);
        int m = rec_match(t, &v, w->key, w->key_len, w->recursive);
        if (m == 1 && (*ev = rec_event(t, &v)) != NULL)
            return 0;
        if (m != 0)
            return history_oom(err, current_index);
    }
    return 1;
}

/* ---------------------------------------------------------------- snapshots */

static int dump_ring(const struct whist *r, const struct watch_dump_fns *f, void *arg)
{
    int rv = f->ring(arg, NULL, 0, r->dropped_max, r->n);
    for (uint32_t i = 0; rv == 0 && i < r->n; i++)
        rv = f->event(arg, hist_at(r, i));
    return rv;
}

/* A token's ring, each record made an event again for the writer (-1 on ENOMEM). */
static int dump_token(const struct wtoken *t, const struct watch_dump_fns *f, void *arg)
{
    int rv = f->ring(arg, t->name, t->name_len, t->hist.dropped_max, t->hist.n);
    for (uint32_t i = 0; rv == 0 && i < t->hist.n; i++) {
        struct wrec_view v;
        wrec_decode(wh_ring_at(&t->hist, i), &v);
        struct kv_event *ev = rec_event(t, &v);
        if (!ev)
            return -1;
        rv = f->event(arg, ev);
        kv_event_unref(ev);
    }
    return rv;
}

int watch_dump(const struct watch_hub *h, const struct watch_dump_fns *f, void *arg)
{
    int rv = dump_ring(&h->global, f, arg);
    for (size_t i = 0; rv == 0 && h->tokens.buckets && i <= h->tokens.mask; i++)
        for (struct kv_mapent *e = h->tokens.buckets[i]; rv == 0 && e; e = e->next) {
            const struct wtoken *t = (const struct wtoken *)e;
            if (t->hist.n)
                rv = dump_token(t, f, arg);
        }
    /* tokens holding only their creation: a ring of that one event, as if it had been kept */
    const struct kv_node *disc = h->kv ? kv_lookup(h->kv, KV_DISCOVERY_DIR, TOKEN_PREFIX_LEN - 1) : NULL;
    for (const struct kv_node *top = disc ? kv_node_first(disc) : NULL; rv == 0 && top; top = top->next_sibling) {
        size_t n = top->name_len;
        if (!wh_ring_empty(wh_token_find(h, top->name, n)))
            continue;
        struct kv_event *c = creation_from_tree(h->kv, top);
        if (!c)
            continue; /* not rebuildable: the token has no history (as when it was restored without one) */
        rv = f->ring(arg, top->name, n, 0, 1);
        if (rv == 0)
            rv = f->event(arg, c);
        kv_event_unref(c);
    }
    return rv;
}

int watch_restore(struct watch_hub *h, const char *token, size_t len, uint64_t dropped_max, struct kv_event *ev)
{
    if (!token) {
        struct whist *r = &h->global;
        if (ev && (r->n ? hist_at(r, r->n - 1)->index >= ev->index : false))
            return -1; /* a ring holds increasing indexes */
        if (ev && wh_hist_push(r, h->hist_cap, ev) != 0)
            return -1;
        if (dropped_max > r->dropped_max)
            r->dropped_max = dropped_max;
        return 0;
    }
    struct wtoken *t = len ? wh_token_get(h, token, len) : NULL;
    if (!t)
        return -1;
    struct wring *r = &t->hist;
    if (ev) {
        const char *name;
        size_t nlen;
        size_t klen = strlen(ev->node.key);
        /* the event must lie in this token (its record keeps only the key below the token) */
        if (!wh_token_of(ev->node.key, klen, &name, &nlen) || nlen != len || memcmp(name, token, len) != 0)
            goto bad;
        if (r->n && wrec_index(wh_ring_at(r, r->n - 1)) >= ev->index)
            goto bad; /* a ring holds increasing indexes */
        if (wh_ring_push_event(r, h->hist_cap, ev, TOKEN_PREFIX_LEN + len) != 0)
            goto bad;
    }
    if (dropped_max > r->dropped_max)
        r->dropped_max = dropped_max;
    return 0;
bad:
    wh_token_maybe_free(h, t);
    return -1;
}
