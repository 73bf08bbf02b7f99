/* store/watch.h — per-token event history and parked watchers (etcd v2 watch semantics).
 *
 * Owner: the store thread only; no locking. Pure: no clock, no I/O.
 * History is kept per token (the second path component under /discovery), so traffic on other
 * tokens can never push a token's events out and make a re-poll fail with 401.
 */
#ifndef DISCOVERYD_STORE_WATCH_H
#define DISCOVERYD_STORE_WATCH_H

#include "store/kv.h"

/* A parked watch. Allocated and owned by the caller; linked into the hub while parked. */
struct watcher {
    const char *key;      /* absolute path watched; must stay valid while parked */
    uint32_t key_len;
    bool recursive;       /* also matches descendants (live events on hidden descendants excluded) */
    uint64_t since;       /* fires on the first matching event with index >= since */
    void *cookie;         /* the caller's */
    /* hub-private */
    struct watcher *next, *prev;
    void *bucket;
};

struct watch_hub;
/* history_per_token: events kept per token (>= 1000, docs/protocol.md#watches). NULL on ENOMEM. */
struct watch_hub *watch_hub_new(uint32_t history_per_token);
/* Frees history; parked watchers are simply unlinked (the caller completes them first). */
void watch_hub_free(struct watch_hub *h);

/* Start a watch on key at wait_index (0 = "from current_index+1").
 * Returns:
 *   0  and *ev (a new reference) when history already holds a matching event with index >= since
 *      (history scans do NOT skip hidden descendants, as etcd; they skip refresh events);
 *   1  when nothing matches yet: w->since is set and the caller may watch_park(w);
 *   KV_EEVENTCLEARED with *err filled (cause "the requested history has been cleared [oldest/asked]",
 *      index = current_index) when the token's history has dropped events at or after wait_index. */
int watch_start(struct watch_hub *h, struct watcher *w, uint64_t wait_index, uint64_t current_index,
                struct kv_event **ev, struct kv_error *err);
/* Park w (after watch_start returned 1). 0 or -1 (ENOMEM). */
int watch_park(struct watch_hub *h, struct watcher *w);
/* Unpark w (timeout, shutdown). No-op if it is not parked. */
void watch_cancel(struct watch_hub *h, struct watcher *w);

/* Record an applied event in its token's history and wake every parked watcher it matches:
 * exact key; a watched ancestor with recursive (unless the event's key has a hidden component
 * below the watched key); a watched descendant of a deleted/expired dir. Refresh events wake
 * nobody. Each woken watcher is unparked before fire() is called.
 * When the event deletes or expires the token dir itself, that token's history is dropped after
 * waking (a token's history lives as long as the token). */
typedef void (*watch_fire_fn)(void *arg, struct watcher *w, struct kv_event *ev);
void watch_publish(struct watch_hub *h, struct kv_event *ev, watch_fire_fn fire, void *arg);

/* ---- snapshots: the history rings, so a member re-polling with waitIndex after a restart gets
 * the same answer (an event, or 401) as before it ---- */
struct watch_dump_fns {
    /* a ring: token NULL for the global ring of every event; then n calls of event(), oldest first */
    int (*ring)(void *arg, const char *token, size_t len, uint64_t dropped_max, uint32_t n);
    int (*event)(void *arg, const struct kv_event *ev);
};
/* Walk every non-empty ring (a non-zero return stops it and is returned). Only reads. */
int watch_dump(const struct watch_hub *h, const struct watch_dump_fns *f, void *arg);
/* Into a fresh hub (no watcher parked): append ev (may be NULL) to a ring (token NULL: the global
 * one) and raise its dropped_max. 0, or -1 on ENOMEM or an event out of index order. */
int watch_restore(struct watch_hub *h, const char *token, size_t len, uint64_t dropped_max, struct kv_event *ev);

/* ---- tokens that hold nothing but their creation ----
 * Most tokens see one event between /new and their first registration. With a tree bound, the hub
 * keeps nothing for such a token: the event that created /discovery/<token> is rebuilt from the tree
 * (the created chain of nodes, as the event left them, and the top node's created_action) when a
 * history scan or a dump needs it. For that to stay exact, every command but a SWEEP must be
 * announced with watch_prepare() before kv_apply() runs it (a SWEEP's expiries carry the expired
 * node in their prevNode, which is all the rebuild then needs). Without a bound tree (unit tests of
 * the hub alone) every event is recorded, as before. */
void watch_hub_bind(struct watch_hub *h, const struct kv *kv);
/* Before kv_apply() of a command on key: if key's token holds only its creation event, record that
 * event now, while the tree still shows it. */
void watch_prepare(struct watch_hub *h, const char *key, size_t len);

/* Number of parked watchers. */
uint64_t watch_nparked(const struct watch_hub *h);

#endif
