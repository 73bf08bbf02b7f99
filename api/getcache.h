/* api/getcache.h — one HTTP thread's copies of GET answers it rendered (body and the token facts
 * of X-Discovery-*), so that a repeated read of a token's key is answered without node_rdlock()
 * and without rendering: the token dir every member polls while its cluster forms.
 *
 * Contract:
 * - Owned by one HTTP thread (api_thread_priv.getcache); no locks, no sharing. Bounded: at most
 *   API_GETCACHE_SLOTS copies and API_GETCACHE_BYTES bytes of bodies per thread; a body larger
 *   than API_GETCACHE_MAX_BODY is not kept.
 * - A copy is keyed by (key, recursive, sorted) and stamped with the token's stamp
 *   (store/node_view.h) read under the same node_rdlock() it was rendered under, and with the
 *   instant its TTLs would render differently (api_json_get_until). It is served only while
 *   node_view_stamp() still returns that stamp inside one node_view_begin/end and the wall clock
 *   is before that instant: the apply seam changes the stamp whenever the token changes, so a copy
 *   can never outlive a write, a delete or an expiry of anything it shows. The per-response headers
 *   (X-Etcd-Index, X-Raft-*) are not kept: they come from the view at the time of each answer.
 */
#ifndef DISCOVERYD_API_GETCACHE_H
#define DISCOVERYD_API_GETCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "store/kv.h"

#define API_GETCACHE_SLOTS 256
#define API_GETCACHE_BYTES (2u << 20)
#define API_GETCACHE_MAX_BODY (64u << 10)

struct api_getcache;

/* A copy as it was rendered. */
struct api_getcache_entry {
    uint64_t stamp;            /* the token's stamp when rendered */
    int64_t until_ms;          /* valid while the wall clock is before this */
    struct kv_token_info tok;  /* X-Discovery-Size/Full as rendered */
    const char *body;          /* the JSON, owned by the cache */
    size_t body_len;
};

struct api_getcache *api_getcache_new(void); /* NULL on ENOMEM (the thread then reads uncached) */
void api_getcache_free(struct api_getcache *c);

/* The copy of (key, recursive, sorted), or NULL. Whether it is still right is the caller's to
 * check (stamp, until_ms); it stays valid until the next api_getcache_put on this thread. */
const struct api_getcache_entry *api_getcache_get(struct api_getcache *c, const char *key, size_t key_len,
                                                  bool recursive, bool sorted);
/* Keep body (malloc'd, ownership passes to the cache, which frees it whether or not it keeps it)
 * as the copy of (key, recursive, sorted), replacing any other copy in its slot. */
void api_getcache_put(struct api_getcache *c, const char *key, size_t key_len, bool recursive, bool sorted,
                      const struct api_getcache_entry *e, char *body);

/* What a GET's target (its path and query, byte for byte as received) routed and parsed to, when
 * that was a plain read whose answer was kept: a repeat of the same target then skips routing and
 * form parsing and goes straight to the copy. A target's meaning never changes (it depends on the
 * bytes and the configuration only), so these are never stale; the copy they lead to is checked as
 * always. The caller records only targets that route to nothing else (never the token's HTML page). */
struct api_getcache_target {
    const char *key; /* the store key (NUL-terminated) */
    size_t key_len;
    const char *token; /* the token's name */
    size_t token_len;
    bool recursive, sorted;
};

/* The parse of target, or false; valid until the next api_getcache_target_put on this thread. */
bool api_getcache_target_get(struct api_getcache *c, const char *target, size_t len,
                             struct api_getcache_target *out);
/* Record tg as the parse of target (copied), replacing any other in its slot. */
void api_getcache_target_put(struct api_getcache *c, const char *target, size_t len,
                             const struct api_getcache_target *tg);

#endif
