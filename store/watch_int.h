/* store/watch_int.h — private to the watch hub's two files: watch.c (tokens, key groups, parking,
 * publishing) and watch_hist.c (history: the global ring, the tokens' rings of records, the
 * rebuilt creation events, history scans and snapshots). Store thread only.
 */
#ifndef DISCOVERYD_STORE_WATCH_INT_H
#define DISCOVERYD_STORE_WATCH_INT_H

#include <string.h>

#include "store/kv_map.h"
#include "store/watch.h"
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

/* key is path-below-or-equal base ("/a/b" under "/a"; everything under "/"). */
static inline bool path_under(const char *key, size_t klen, const char *base, size_t blen)
{
    if (blen == 1 && base[0] == '/')
        return true;
    return klen > blen && key[blen] == '/' && memcmp(key, base, blen) == 0;
}

static inline bool ev_removes_dir(const struct kv_event *ev)
{
    return (ev->action == KV_ACT_DELETE || ev->action == KV_ACT_EXPIRE) && ev->has_prev && ev->prev.dir;
}

/* watch.c: tokens by name. */
bool wh_token_of(const char *key, size_t len, const char **name, size_t *nlen); /* the token key lies in */
struct wtoken *wh_token_find(const struct watch_hub *h, const char *name, size_t n);
struct wtoken *wh_token_get(struct watch_hub *h, const char *name, size_t n); /* made if missing; NULL: ENOMEM */
void wh_token_maybe_free(struct watch_hub *h, struct wtoken *t);              /* once it holds nothing */

/* watch_hist.c: the global ring of events. */
int wh_hist_push(struct whist *r, uint32_t max, struct kv_event *ev);
void wh_hist_clear(struct whist *r);
/* watch_hist.c: a token's ring of records. */
const uint8_t *wh_ring_at(const struct wring *r, uint32_t i);
int wh_ring_push_event(struct wring *r, uint32_t max, const struct kv_event *ev, size_t prefix_len);
void wh_ring_clear(struct wring *r);
bool wh_ring_empty(const struct wtoken *t); /* t NULL or nothing recorded, nothing dropped */
/* watch_hist.c: tokens holding only their creation (watch.h, watch_hub_bind). */
const struct kv_node *wh_tree_top(const struct watch_hub *h, const char *name, size_t n);
bool wh_only_creation(const struct watch_hub *h, const struct wtoken *t, const struct kv_node *top);
struct kv_event *wh_creation_from_prev(const struct kv_node *top, const struct kv_event *ev);
void wh_record_creation(struct watch_hub *h, const char *name, size_t n, struct kv_event *ev); /* takes ev */

#endif
