/* store/watch_rec.h — an event of a token's history in compact form, private to store/watch.c.
 *
 * A token's ring used to hold a reference to each kv_event (a ~200-byte block with the full key
 * twice-pointed and both nodes' fields); with a million tokens that was most of what an empty
 * token cost. A record keeps the same facts in a few varints plus the key below the token
 * ("/_config/size") and the values, and is turned back into an identical kv_event only when a
 * watch's history scan hits it or a snapshot writes it. Store thread only; pure.
 */
#ifndef DISCOVERYD_STORE_WATCH_REC_H
#define DISCOVERYD_STORE_WATCH_REC_H

#include "store/kv.h"

/* One node of a decoded record; value NULL = none (dirs, deleted nodes). */
struct wrec_node {
    uint64_t created_index, modified_index;
    int64_t expire_ms;
    const char *value;
    uint32_t value_len;
    bool dir;
};

/* A decoded record; pointers point into the record. */
struct wrec_view {
    uint64_t index;
    enum kv_action action;
    bool refresh, has_prev;
    struct wrec_node node, prev; /* prev only when has_prev */
    const char *suffix;          /* the event's key after its first prefix_len bytes */
    uint32_t suffix_len;
};

/* ev as a malloc'd record; its key must be at least prefix_len bytes long (the part a ring's token
 * implies, "/discovery/<token>"). NULL on ENOMEM. Free with free(). */
uint8_t *wrec_encode(const struct kv_event *ev, size_t prefix_len);
void wrec_decode(const uint8_t *rec, struct wrec_view *v);
uint64_t wrec_index(const uint8_t *rec);
/* The kv_event the record was made from (refs = 1), its key prefix + suffix. NULL on ENOMEM. */
struct kv_event *wrec_event(const struct wrec_view *v, const char *prefix, size_t prefix_len);

#endif
