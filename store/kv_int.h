/* store/kv_int.h — private to the tree (kv.c, kv_tree.c, kv_heap.c, kv_apply.c, kv_image.c): the
 * tree's structs and the primitives the mutations are built from. Nothing outside those files
 * includes it; the contract for everyone else is kv.h. Store thread for writes, any reader thread
 * under node_rdlock() for the read-only parts.
 */
#ifndef DISCOVERYD_STORE_KV_INT_H
#define DISCOVERYD_STORE_KV_INT_H

#include "store/kv.h"
#include "store/kv_index.h"
#include "store/kv_slab.h"

#define KV_SWEEP_DEFAULT 1024u

/* kv_node.flags_ */
#define KN_TTL 1u          /* it has a TTL record (kv_heap.c) */
#define KN_KIDS_INDEXED 2u /* a dir whose children are in kv->children (it had more than KV_KIDS_LINEAR) */

/* A dir's children are found by comparing names along its sibling list while it has at most this
 * many, and through the child index once it has had more: most dirs hold a handful (a token's
 * _config and members, _config's size), and an index slot costs each of those ~16 bytes. */
#define KV_KIDS_LINEAR 8u

struct kttl; /* kv_heap.c: a node's TTL */

struct kheap {
    void **a; /* token dirs (struct kv_node) or TTLs (struct kttl) */
    size_t n, cap;
    bool tok; /* token dirs by created_ms (slot in tok_slot_) rather than TTLs by expire_ms */
};

struct kv {
    struct kv_node *root;
    struct kv_node *disc; /* /discovery */
    uint64_t index;
    uint64_t nnodes;
    struct kv_index children; /* the children of KN_KIDS_INDEXED dirs, by (parent, name) */
    struct kv_slab slab;      /* where the nodes live */
    struct kheap ttl, tok;
    struct kv_index ttls;   /* every TTL record, by its node */
    struct kttl *ttl_spare; /* kv_expiry_reserve's: the next TTL's record */
};

/* Result of walking a path from the root. */
struct walk {
    struct kv_node *node; /* the node named by the whole path, or NULL */
    struct kv_node *at;   /* when NULL: the deepest existing node on the way */
    bool notdir;          /* when NULL: `at` is a file with a component below it */
    size_t miss_start;    /* when NULL and !notdir: offset of the first missing component */
    size_t miss_end;      /* ... and the offset just past it (cause = key[0..miss_end]) */
};

static inline bool kv_name_hidden(const char *name)
{
    return name[0] == '_';
}

static inline bool kv_is_root(const char *key, size_t len)
{
    return len == 1 && key[0] == '/';
}

/* kv.c: fill *e (if non-NULL) and return code; the cause is printf-formatted (NULL: none). */
int kv_set_err(struct kv_error *e, int code, uint64_t index, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* kv_heap.c: the token heap (dirs right under /discovery, by created_ms) and the TTLs (by
 * expire_ms). Reserve before a command mutates (room for `tokens` token pushes and one new TTL), so
 * that nothing after can fail half-way. */
int kv_expiry_reserve(struct kv *kv, uint32_t tokens);
void kv_token_push(struct kv *kv, struct kv_node *k); /* k's created_ms is set */
/* Give k a new expiry (0 = none); room was reserved when k had none. */
void kv_set_expiry(struct kv *kv, struct kv_node *k, int64_t expire_ms);
void kv_expiry_forget(struct kv *kv, struct kv_node *k);             /* k leaves the tree: out of both */
struct kv_node *kv_ttl_top(const struct kv *kv, int64_t *expire_ms); /* the next TTL due, or NULL */
struct kv_node *kv_token_top(const struct kv *kv);                   /* the oldest token, or NULL */
uint64_t kv_ttl_hash(const void *item);                              /* kv->ttls' hash */

/* kv.c: one block holding a zeroed struct of head bytes, then key (NUL-terminated) at *keyp, then
 * tail more bytes; NULL on ENOMEM. Events carry their key this way. */
void *kv_alloc_keyed(size_t head, size_t tail, const char *key, uint32_t key_len, char **keyp);

/* kv.c: events. */
void kv_ev_set_prev(const struct kv *kv, struct kv_event *ev, const struct kv_node *n);

/* kv_tree.c: tree primitives. */
/* A detached node named name[0..name_len); value (NULL: none, a dir) is copied inline. NULL on ENOMEM. */
struct kv_node *kv_node_alloc(struct kv *kv, const char *name, uint32_t name_len, const char *value,
                              uint32_t value_len);
/* Give back a node from kv_node_alloc that was never linked. */
void kv_node_discard(struct kv *kv, struct kv_node *k);
/* Room in the child index for `more` kv_node_link calls (and a dir's move into it). 0, or -1 on ENOMEM. */
int kv_node_reserve(struct kv *kv, uint32_t more);
/* Link k under parent (appended), with its expiry (0: none); a dir right under /discovery joins the
 * token heap by its created_ms. Room was reserved. */
void kv_node_link(struct kv *kv, struct kv_node *parent, struct kv_node *k, int64_t expire_ms);
/* Compare two nodes' full keys as strcmp would. */
int kv_node_keycmp(const struct kv_node *a, const struct kv_node *b);
/* Free k's value unless it is the inline copy or the shared "" (the node keeps the pointer). */
void kv_node_value_free(struct kv_node *k);
void kv_value_free(char *v); /* a value from kv_value_dup not yet given to a node */
char *kv_value_dup(const char *v, uint32_t len);
void kv_subtree_free(struct kv *kv, struct kv_node *top);
void kv_walk_path(const struct kv *kv, const char *key, size_t len, struct walk *w);
int kv_walk_error(const struct kv *kv, const char *key, const struct walk *w, struct kv_error *err);

#endif
