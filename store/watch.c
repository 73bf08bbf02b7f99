/* store/watch.c — per-token event history and parked watchers (etcd v2 watch semantics).
 *
 * Layout: a token (the component after /discovery/) owns a ring of its last history_per_token
 * events, grown on demand (most tokens see a handful of events, so a million tokens must not cost
 * a million full rings; a ring of one holds its record in place of the array), and the key groups
 * of its parked watchers. A token's ring holds compact records (watch_rec.h), not references to
 * the events, and turns one back into its kv_event only when a history scan answers with it. Key groups (one per watched
 * path, holding every watcher parked on it) are also indexed by full path in one hash table, so
 * publishing an event looks up the groups of its key and of each ancestor inside the token: the
 * cost is O(depth + woken), independent of how many watchers the other tokens hold. Watches on
 * paths outside any token ("/", "/discovery", "/foo") are rare; they live in one global list that
 * every event checks, and they read history from a global ring of every event.
 * Matching follows etcd v2store (watcher_hub.go, event_history.go), except that a deleted dir wakes
 * watchers under it by path ("/a/b" under "/a"), where etcd's history scan uses a byte prefix.
 */
#define _GNU_SOURCE /* asprintf */
#include "store/watch.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/kv_map.h"
#include "store/list.h"
#include "store/watch_rec.h"

#define TOKEN_PREFIX KV_DISCOVERY_DIR "/"
#define TOKEN_PREFIX_LEN (sizeof(TOKEN_PREFIX) - 1)

struct whist {
    struct kv_event **a;
    uint32_t cap, head, n;
    uint64_t dropped_max; /* index of the newest event the ring has dropped; 0 = none */
};

/* A token's ring of compact records; with cap == 1 the one record sits in `one`. */
struct wring {
    union {
        uint8_t **a;
        uint8_t *one;
    };
    uint64_t dropped_max; /* index of the newest event the ring has dropped; 0 = none */
    uint32_t cap, head, n;
};

struct kgroup;

struct wtoken {
    struct kv_mapent ent; /* in hub->tokens */
    struct wring hist;
    struct kgroup *groups; /* key groups with parked watchers inside this token */
    uint32_t name_len;
    char name[];
};

struct kgroup {
    struct kv_mapent ent; /* in hub->keys */
    struct wtoken *tok;   /* NULL: a key outside any token (hub->global_groups) */
    struct kgroup *next, *prev;
    struct watcher *head;
    uint32_t key_len;
    char key[];
};

struct watch_hub {
    uint32_t hist_cap;
    struct kv_map tokens;
    struct kv_map keys;
    struct whist global;
    struct kgroup *global_groups;
    uint64_t nparked;
    const struct kv *kv; /* watch_hub_bind: tokens holding only their creation keep no ring */
};

/* ---------------------------------------------------------------- history rings */

static int hist_push(struct whist *r, uint32_t max, struct kv_event *ev)
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

static void hist_clear(struct whist *r)
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

static const uint8_t *ring_at(const struct wring *r, uint32_t i)
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
                    a[i] = (uint8_t *)ring_at(r, i);
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

static void ring_clear(struct wring *r)
{
    for (uint32_t i = 0; i < r->n; i++)
        free(*ring_slot(r, i));
    if (r->cap > 1)
        free(r->a);
    memset(r, 0, sizeof(*r));
}

/* Append ev as a record (its key begins with the token's prefix_len bytes). 0, or -1 on ENOMEM. */
static int ring_push_event(struct wring *r, uint32_t max, const struct kv_event *ev, size_t prefix_len)
{
    uint8_t *rec = wrec_encode(ev, prefix_len);
    return rec ? ring_push(r, max, rec) : -1;
}

/* key is path-below-or-equal base ("/a/b" under "/a"; everything under "/"). */
static bool path_under(const char *key, size_t klen, const char *base, size_t blen)
{
    if (blen == 1 && base[0] == '/')
        return true;
    return klen > blen && key[blen] == '/' && memcmp(key, base, blen) == 0;
}

/* etcd's isHidden: a component starting with '_' in the event key below the watched key. */
static bool hidden_below(const char *wkey, size_t wlen, const char *ekey)
{
    const char *s = ekey + wlen;
    return s[0] == '_' || strstr(s, "/_") != NULL;
}

/* key names base itself or a path under it. */
static bool at_or_under(const char *key, size_t klen, const char *base, size_t blen)
{
    return (klen == blen && memcmp(key, base, blen) == 0) || path_under(key, klen, base, blen);
}

static bool ev_removes_dir(const struct kv_event *ev)
{
    return (ev->action == KV_ACT_DELETE || ev->action == KV_ACT_EXPIRE) && ev->has_prev && ev->prev.dir;
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

/* The live match (watcherHub.notify + watcher.notify). */
static bool live_match(const struct watcher *w, const struct kv_event *ev, size_t elen)
{
    if (ev->index < w->since)
        return false;
    const char *ekey = ev->node.key;
    if (elen == w->key_len && memcmp(ekey, w->key, elen) == 0)
        return true;
    if (path_under(ekey, elen, w->key, w->key_len))
        return w->recursive && !hidden_below(w->key, w->key_len, ekey);
    if (ev_removes_dir(ev) && path_under(w->key, w->key_len, ekey, elen))
        return true;
    return false;
}

/* ---------------------------------------------------------------- lookups */

static bool token_of(const char *key, size_t len, const char **name, size_t *nlen)
{
    if (len <= TOKEN_PREFIX_LEN || memcmp(key, TOKEN_PREFIX, TOKEN_PREFIX_LEN) != 0)
        return false;
    const char *s = key + TOKEN_PREFIX_LEN;
    const char *e = memchr(s, '/', len - TOKEN_PREFIX_LEN);
    size_t n = e ? (size_t)(e - s) : len - TOKEN_PREFIX_LEN;
    if (n == 0)
        return false;
    *name = s;
    *nlen = n;
    return true;
}

/* Seeded by the hub's address: token names and watched keys come from clients, and a seed they
 * cannot know keeps them from aiming many names at one bucket. */
static uint64_t str_hash(const struct watch_hub *h, const char *s, size_t n)
{
    return hash_of(hash_salt(HASH_INIT, (uint64_t)(uintptr_t)h), s, n);
}

static struct wtoken *token_find(const struct watch_hub *h, const char *name, size_t n)
{
    uint64_t hash = str_hash(h, name, n);
    for (struct kv_mapent *e = kv_map_chain(&h->tokens, hash); e; e = e->next) {
        struct wtoken *t = (struct wtoken *)e;
        if (e->hash == hash && t->name_len == n && memcmp(t->name, name, n) == 0)
            return t;
    }
    return NULL;
}

static struct wtoken *token_get(struct watch_hub *h, const char *name, size_t n)
{
    struct wtoken *t = token_find(h, name, n);
    if (t)
        return t;
    t = calloc(1, sizeof(*t) + n + 1);
    if (!t)
        return NULL;
    memcpy(t->name, name, n);
    t->name_len = (uint32_t)n;
    t->ent.hash = str_hash(h, name, n);
    if (kv_map_insert(&h->tokens, &t->ent) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

static void token_maybe_free(struct watch_hub *h, struct wtoken *t)
{
    if (t->groups || t->hist.n)
        return;
    kv_map_remove(&h->tokens, &t->ent);
    ring_clear(&t->hist);
    free(t);
}

static struct kgroup *group_find(const struct watch_hub *h, const char *key, size_t n)
{
    uint64_t hash = str_hash(h, key, n);
    for (struct kv_mapent *e = kv_map_chain(&h->keys, hash); e; e = e->next) {
        struct kgroup *g = (struct kgroup *)e;
        if (e->hash == hash && g->key_len == n && memcmp(g->key, key, n) == 0)
            return g;
    }
    return NULL;
}

static void group_unlink_free(struct watch_hub *h, struct kgroup *g)
{
    kv_map_remove(&h->keys, &g->ent);
    if (g->tok)
        LIST_UNLINK(g->tok->groups, g, prev, next);
    else
        LIST_UNLINK(h->global_groups, g, prev, next);
    free(g);
}

/* ---------------------------------------------------------------- tokens that hold only their creation */

static bool ring_empty(const struct wtoken *t)
{
    return !t || (t->hist.n == 0 && t->hist.dropped_max == 0);
}

/* The bound tree's /discovery/<name> (a dir or a file), or NULL. */
static const struct kv_node *tree_top(const struct watch_hub *h, const char *name, size_t n)
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
static bool only_creation(const struct watch_hub *h, const struct wtoken *t, const struct kv_node *top)
{
    return h->kv && top && ring_empty(t);
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
static struct kv_event *creation_from_tree(const struct kv_node *top)
{
    uint64_t c = top->created_index;
    const struct kv_node *l = top;
    if (top->created_action != KV_ACT_SET && top->created_action != KV_ACT_CREATE)
        return NULL;
    while (l->first_child) {
        if (l->nchildren != 1)
            return NULL;
        l = l->first_child;
        if (l->created_index != c)
            return NULL;
    }
    if (l->modified_index != c)
        return NULL;
    return creation_event((enum kv_action)top->created_action, c, l->key, l->key_len, l->dir, l->value,
                          l->value_len, l->expire_ms);
}

/* The same from the first later event, when that is an expiry or deletion of the created node
 * itself (a SWEEP's, which is not announced): its prevNode is that node as the creation left it. */
static struct kv_event *creation_from_prev(const struct kv_node *top, const struct kv_event *ev)
{
    uint64_t c = top->created_index;
    if (!ev->has_prev || ev->prev.created_index != c || ev->prev.modified_index != c ||
        (top->created_action != KV_ACT_SET && top->created_action != KV_ACT_CREATE))
        return NULL;
    return creation_event((enum kv_action)top->created_action, c, ev->node.key, strlen(ev->node.key),
                          ev->prev.dir, ev->prev.value, ev->prev.value_len, ev->prev.expire_ms);
}

/* Record a rebuilt creation event in the token's ring (made if missing). */
static void record_creation(struct watch_hub *h, const char *name, size_t n, struct kv_event *ev)
{
    struct wtoken *t = ev ? token_get(h, name, n) : NULL;
    if (t)
        (void)ring_push_event(&t->hist, h->hist_cap, ev, TOKEN_PREFIX_LEN + n);
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
    if (!h->kv || !token_of(key, len, &name, &n))
        return;
    const struct kv_node *top = tree_top(h, name, n);
    if (only_creation(h, token_find(h, name, n), top))
        record_creation(h, name, n, creation_from_tree(top));
}

/* ---------------------------------------------------------------- API */

struct watch_hub *watch_hub_new(uint32_t history_per_token)
{
    struct watch_hub *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->hist_cap = history_per_token ? history_per_token : 1000;
    kv_map_init(&h->tokens);
    kv_map_init(&h->keys);
    return h;
}

static void group_list_free(struct kgroup *g)
{
    while (g) {
        struct kgroup *next = g->next;
        for (struct watcher *w = g->head; w;) {
            struct watcher *wn = w->next;
            w->next = w->prev = NULL;
            w->bucket = NULL;
            w = wn;
        }
        free(g);
        g = next;
    }
}

void watch_hub_free(struct watch_hub *h)
{
    if (!h)
        return;
    if (h->tokens.buckets) {
        for (size_t i = 0; i <= h->tokens.mask; i++) {
            struct kv_mapent *e = h->tokens.buckets[i];
            while (e) {
                struct kv_mapent *next = e->next;
                struct wtoken *t = (struct wtoken *)e;
                group_list_free(t->groups);
                ring_clear(&t->hist);
                free(t);
                e = next;
            }
        }
    }
    group_list_free(h->global_groups);
    hist_clear(&h->global);
    kv_map_free(&h->tokens);
    kv_map_free(&h->keys);
    free(h);
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
    if (token_of(w->key, w->key_len, &name, &nlen)) {
        t = token_find(h, name, nlen);
        const struct kv_node *top = h->kv && ring_empty(t) ? tree_top(h, name, nlen) : NULL;
        if (only_creation(h, t, top)) {
            /* the token's one event, rebuilt from the tree */
            struct kv_event *c = top->created_index >= since ? creation_from_tree(top) : NULL;
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
        oldest = n ? wrec_index(ring_at(&t->hist, 0)) : 0;
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
        if ((t ? wrec_index(ring_at(&t->hist, mid)) : hist_at(r, mid)->index) < since)
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
        wrec_decode(ring_at(&t->hist, i), &v);
        int m = rec_match(t, &v, w->key, w->key_len, w->recursive);
        if (m == 1 && (*ev = rec_event(t, &v)) != NULL)
            return 0;
        if (m != 0)
            return history_oom(err, current_index);
    }
    return 1;
}

int watch_park(struct watch_hub *h, struct watcher *w)
{
    struct kgroup *g = group_find(h, w->key, w->key_len);
    if (!g) {
        const char *name;
        size_t nlen;
        struct wtoken *t = NULL;
        if (token_of(w->key, w->key_len, &name, &nlen) && !(t = token_get(h, name, nlen)))
            return -1;
        g = calloc(1, sizeof(*g) + w->key_len + 1);
        if (!g) {
            if (t)
                token_maybe_free(h, t);
            return -1;
        }
        memcpy(g->key, w->key, w->key_len);
        g->key_len = w->key_len;
        g->tok = t;
        g->ent.hash = str_hash(h, w->key, w->key_len);
        if (kv_map_insert(&h->keys, &g->ent) != 0) {
            free(g);
            if (t)
                token_maybe_free(h, t);
            return -1;
        }
        struct kgroup **list = t ? &t->groups : &h->global_groups;
        LIST_PREPEND(*list, g, prev, next);
    }
    LIST_PREPEND(g->head, w, prev, next);
    w->bucket = g;
    h->nparked++;
    return 0;
}

/* Unlink w from its group; free the group (and its token when idle) once empty unless told not to
 * (publish frees groups itself after it finishes walking them). */
static void unpark(struct watch_hub *h, struct watcher *w, bool free_empty)
{
    struct kgroup *g = w->bucket;
    LIST_UNLINK(g->head, w, prev, next);
    w->bucket = NULL;
    h->nparked--;
    if (free_empty && !g->head) {
        struct wtoken *t = g->tok;
        group_unlink_free(h, g);
        if (t)
            token_maybe_free(h, t);
    }
}

void watch_cancel(struct watch_hub *h, struct watcher *w)
{
    if (!w || !w->bucket)
        return;
    unpark(h, w, true);
}

/* Move every watcher of g that ev wakes onto the fired chain; all = skip the key test (the
 * caller knows g's key is under a removed dir). Frees g when it empties. */
static void collect(struct watch_hub *h, struct kgroup *g, const struct kv_event *ev, size_t elen, bool all,
                    struct watcher **fired)
{
    for (struct watcher *w = g->head; w;) {
        struct watcher *next = w->next;
        if (all ? ev->index >= w->since : live_match(w, ev, elen)) {
            unpark(h, w, false);
            w->next = *fired;
            *fired = w;
        }
        w = next;
    }
    if (!g->head)
        group_unlink_free(h, g);
}

/* Every group of t whose key is under the removed dir key. */
static void collect_under(struct watch_hub *h, struct wtoken *t, const struct kv_event *ev, size_t elen,
                          struct watcher **fired)
{
    for (struct kgroup *g = t->groups; g;) {
        struct kgroup *next = g->next;
        if (path_under(g->key, g->key_len, ev->node.key, elen))
            collect(h, g, ev, elen, true, fired);
        g = next;
    }
}

void watch_publish(struct watch_hub *h, struct kv_event *ev, watch_fire_fn fire, void *arg)
{
    const char *key = ev->node.key;
    size_t elen = strlen(key);
    const char *name;
    size_t nlen;
    struct wtoken *t = NULL;
    bool in_token = token_of(key, elen, &name, &nlen), record = in_token;
    (void)hist_push(&h->global, h->hist_cap, ev);
    if (in_token && h->kv) {
        const struct kv_node *top = tree_top(h, name, nlen);
        if (only_creation(h, token_find(h, name, nlen), top)) {
            if (top->created_index == ev->index && !ev->has_prev)
                record = false; /* the creation itself: the tree shows it */
            else if (top->created_index < ev->index)
                record_creation(h, name, nlen, creation_from_prev(top, ev)); /* a SWEEP's first change */
        }
    }
    /* a creation watch_prepare() recorded ahead of its publication is not recorded twice */
    if (in_token && (t = token_get(h, name, nlen)) && record &&
        !(t->hist.n && wrec_index(ring_at(&t->hist, t->hist.n - 1)) >= ev->index))
        (void)ring_push_event(&t->hist, h->hist_cap, ev, TOKEN_PREFIX_LEN + nlen);

    struct watcher *fired = NULL;
    if (!ev->refresh) {
        /* watches outside any token: few, checked one by one */
        for (struct kgroup *g = h->global_groups; g;) {
            struct kgroup *next = g->next;
            collect(h, g, ev, elen, false, &fired);
            g = next;
        }
        if (t) {
            /* the key itself and its ancestors inside the token, by hash */
            size_t tok_end = TOKEN_PREFIX_LEN + nlen;
            for (size_t end = tok_end; end <= elen; end++) {
                if (end < elen && key[end] != '/')
                    continue;
                struct kgroup *g = group_find(h, key, end);
                if (g)
                    collect(h, g, ev, elen, false, &fired);
            }
            if (ev_removes_dir(ev))
                collect_under(h, t, ev, elen, &fired);
        } else if (ev_removes_dir(ev) && at_or_under(TOKEN_PREFIX, TOKEN_PREFIX_LEN - 1, key, elen)) {
            /* "/" or "/discovery" removed: every token's watchers are under it */
            for (size_t i = 0; h->tokens.buckets && i <= h->tokens.mask; i++)
                for (struct kv_mapent *e = h->tokens.buckets[i]; e; e = e->next)
                    collect_under(h, (struct wtoken *)e, ev, elen, &fired);
        }
    }

    /* a token's history lives as long as the token */
    bool removal = ev->action == KV_ACT_DELETE || ev->action == KV_ACT_EXPIRE || ev->action == KV_ACT_CAD;
    if (removal && t && elen == TOKEN_PREFIX_LEN + nlen) {
        ring_clear(&t->hist);
        token_maybe_free(h, t);
    } else if (removal && !in_token && ev_removes_dir(ev) &&
               at_or_under(TOKEN_PREFIX, TOKEN_PREFIX_LEN - 1, key, elen)) {
        for (size_t i = 0; h->tokens.buckets && i <= h->tokens.mask; i++) {
            struct kv_mapent *e = h->tokens.buckets[i];
            while (e) {
                struct kv_mapent *next = e->next;
                struct wtoken *tt = (struct wtoken *)e;
                ring_clear(&tt->hist);
                token_maybe_free(h, tt);
                e = next;
            }
        }
    } else if (t) {
        token_maybe_free(h, t);
    }

    while (fired) {
        struct watcher *w = fired;
        fired = w->next;
        w->next = NULL;
        fire(arg, w, ev);
    }
}

uint64_t watch_nparked(const struct watch_hub *h)
{
    return h->nparked;
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
        wrec_decode(ring_at(&t->hist, i), &v);
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
    for (const struct kv_node *top = disc ? disc->first_child : NULL; rv == 0 && top; top = top->next_sibling) {
        size_t n = top->key_len - TOKEN_PREFIX_LEN;
        if (!ring_empty(token_find(h, top->name, n)))
            continue;
        struct kv_event *c = creation_from_tree(top);
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
        if (ev && hist_push(r, h->hist_cap, ev) != 0)
            return -1;
        if (dropped_max > r->dropped_max)
            r->dropped_max = dropped_max;
        return 0;
    }
    struct wtoken *t = len ? token_get(h, token, len) : NULL;
    if (!t)
        return -1;
    struct wring *r = &t->hist;
    if (ev) {
        const char *name;
        size_t nlen;
        size_t klen = strlen(ev->node.key);
        /* the event must lie in this token (its record keeps only the key below the token) */
        if (!token_of(ev->node.key, klen, &name, &nlen) || nlen != len || memcmp(name, token, len) != 0)
            goto bad;
        if (r->n && wrec_index(ring_at(r, r->n - 1)) >= ev->index)
            goto bad; /* a ring holds increasing indexes */
        if (ring_push_event(r, h->hist_cap, ev, TOKEN_PREFIX_LEN + len) != 0)
            goto bad;
    }
    if (dropped_max > r->dropped_max)
        r->dropped_max = dropped_max;
    return 0;
bad:
    token_maybe_free(h, t);
    return -1;
}
