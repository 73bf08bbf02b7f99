/* store/watch.c — parked watchers and publishing (etcd v2 watch semantics); the history they read
 * is watch_hist.c's (shared state in watch_int.h).
 *
 * Layout: a token (the component after /discovery/) owns a ring of its last history_per_token
 * events (watch_hist.c) and the key groups of its parked watchers. Key groups (one per watched
 * path, holding every watcher parked on it) are also indexed by full path in one hash table, so
 * publishing an event looks up the groups of its key and of each ancestor inside the token: the
 * cost is O(depth + woken), independent of how many watchers the other tokens hold. Watches on
 * paths outside any token ("/", "/discovery", "/foo") are rare; they live in one global list that
 * every event checks, and they read history from a global ring of every event.
 * Matching follows etcd v2store (watcher_hub.go, event_history.go), except that a deleted dir wakes
 * watchers under it by path ("/a/b" under "/a"), where etcd's history scan uses a byte prefix.
 */
#include <stdlib.h>
#include <string.h>

#include "store/list.h"
#include "store/watch_int.h"

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

bool wh_token_of(const char *key, size_t len, const char **name, size_t *nlen)
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

struct wtoken *wh_token_find(const struct watch_hub *h, const char *name, size_t n)
{
    uint64_t hash = str_hash(h, name, n);
    for (struct kv_mapent *e = kv_map_chain(&h->tokens, hash); e; e = e->next) {
        struct wtoken *t = (struct wtoken *)e;
        if (e->hash == hash && t->name_len == n && memcmp(t->name, name, n) == 0)
            return t;
    }
    return NULL;
}

struct wtoken *wh_token_get(struct watch_hub *h, const char *name, size_t n)
{
    struct wtoken *t = wh_token_find(h, name, n);
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

void wh_token_maybe_free(struct watch_hub *h, struct wtoken *t)
{
    if (t->groups || t->hist.n)
        return;
    kv_map_remove(&h->tokens, &t->ent);
    wh_ring_clear(&t->hist);
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
                wh_ring_clear(&t->hist);
                free(t);
                e = next;
            }
        }
    }
    group_list_free(h->global_groups);
    wh_hist_clear(&h->global);
    kv_map_free(&h->tokens);
    kv_map_free(&h->keys);
    free(h);
}

int watch_park(struct watch_hub *h, struct watcher *w)
{
    struct kgroup *g = group_find(h, w->key, w->key_len);
    if (!g) {
        const char *name;
        size_t nlen;
        struct wtoken *t = NULL;
        if (wh_token_of(w->key, w->key_len, &name, &nlen) && !(t = wh_token_get(h, name, nlen)))
            return -1;
        g = calloc(1, sizeof(*g) + w->key_len + 1);
        if (!g) {
            if (t)
                wh_token_maybe_free(h, t);
            return -1;
        }
        memcpy(g->key, w->key, w->key_len);
        g->key_len = w->key_len;
        g->tok = t;
        g->ent.hash = str_hash(h, w->key, w->key_len);
        if (kv_map_insert(&h->keys, &g->ent) != 0) {
            free(g);
            if (t)
                wh_token_maybe_free(h, t);
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
            wh_token_maybe_free(h, t);
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
    bool in_token = wh_token_of(key, elen, &name, &nlen), record = in_token;
    (void)wh_hist_push(&h->global, h->hist_cap, ev);
    if (in_token && h->kv) {
        const struct kv_node *top = wh_tree_top(h, name, nlen);
        if (wh_only_creation(h, wh_token_find(h, name, nlen), top)) {
            if (top->created_index == ev->index && !ev->has_prev)
                record = false; /* the creation itself: the tree shows it */
            else if (top->created_index < ev->index)
                wh_record_creation(h, name, nlen, wh_creation_from_prev(top, ev)); /* a SWEEP's first change */
        }
    }
    /* a creation watch_prepare() recorded ahead of its publication is not recorded twice */
    if (in_token && (t = wh_token_get(h, name, nlen)) && record &&
        !(t->hist.n && wrec_index(wh_ring_at(&t->hist, t->hist.n - 1)) >= ev->index))
        (void)wh_ring_push_event(&t->hist, h->hist_cap, ev, TOKEN_PREFIX_LEN + nlen);

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
        wh_ring_clear(&t->hist);
        wh_token_maybe_free(h, t);
    } else if (removal && !in_token && ev_removes_dir(ev) &&
               at_or_under(TOKEN_PREFIX, TOKEN_PREFIX_LEN - 1, key, elen)) {
        for (size_t i = 0; h->tokens.buckets && i <= h->tokens.mask; i++) {
            struct kv_mapent *e = h->tokens.buckets[i];
            while (e) {
                struct kv_mapent *next = e->next;
                struct wtoken *tt = (struct wtoken *)e;
                wh_ring_clear(&tt->hist);
                wh_token_maybe_free(h, tt);
                e = next;
            }
        }
    } else if (t) {
        wh_token_maybe_free(h, t);
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

