/* store/kv_int.h — private to the tree (kv.c, kv_tree.c, kv_heap.c, kv_apply.c): the node and
 * tree structs and the primitives the mutations are built from. Nothing outside those files
 * includes it; the contract for everyone else is kv.h. Store thread for writes, any reader thread
 * under node_rdlock() for the read-only parts.
 */
#ifndef DISCOVERYD_STORE_KV_INT_H
#define DISCOVERYD_STORE_KV_INT_H

#include "store/kv.h"
#include "store/kv_index.h"
#include "store/kv_slab.h"

#define KV_SWEEP_DEFAULT 1024u

/* One allocation: this struct, then the key (NUL-terminated), then, for a file created with a value,
 * that value (NUL-terminated; n.value points there until a write replaces it with its own block).
 * The child index holds a pointer to it and nothing inside it. */
struct knode {
    struct kv_node n;
    uint32_t ttl_slot; /* position in kv->ttl + 1; 0 = not there */
    uint32_t tok_slot; /* position in kv->tok + 1; 0 = not there */
};

#define KN(p) ((struct knode *)(p))

struct kheap {
    struct knode **a;
    size_t n, cap;
    bool tok; /* ordered by created_ms (tokens) rather than expire_ms (TTL) */
};

struct kv {
    struct knode *root;
    struct knode *disc; /* /discovery */
    uint64_t index;
    uint64_t nnodes;
    struct kv_index children; /* every node but the root, by (parent, name) */
    struct kv_slab slab;      /* where the nodes live */
    struct kheap ttl, tok;
};

/* Result of walking a path from the root. */
struct walk {
    struct knode *node; /* the node named by the whole path, or NULL */
    struct knode *at;   /* when NULL: the deepest existing node on the way */
    bool notdir;        /* when NULL: `at` is a file with a component below it */
    size_t miss_start;  /* when NULL and !notdir: offset of the first missing component */
    size_t miss_end;    /* ... and the offset just past it (cause = key[0..miss_end]) */
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

/* kv_heap.c: the TTL heap (by expire_ms) and the token heap (by created_ms). Reserve before a
 * command mutates, so that pushes cannot fail half-way. */
int kv_heap_reserve(struct kheap *h, uint32_t more);
void kv_heap_push(struct kheap *h, struct knode *k);
void kv_heap_remove(struct kheap *h, struct knode *k); /* no-op when k is not in h */
void kv_heap_fix(struct kheap *h, struct knode *k);    /* after k's time changed */
struct knode *kv_heap_top(const struct kheap *h);
/* Give k a new expiry (0 = none) and keep the TTL heap in step; room was reserved. */
void kv_set_expiry(struct kv *kv, struct knode *k, int64_t expire_ms);

/* kv.c: one block holding a zeroed struct of head bytes, then key (NUL-terminated) at *keyp, then
 * tail more bytes; NULL on ENOMEM. Events carry their key this way (nodes: kv_node_alloc). */
void *kv_alloc_keyed(size_t head, size_t tail, const char *key, uint32_t key_len, char **keyp);

/* kv.c: events. */
void kv_ev_set_prev(struct kv_event *ev, const struct kv_node *n);

/* kv_tree.c: tree primitives. */
/* A detached node for key[0..key_len) whose last component starts at name_off; value (NULL: none,
 * a dir) is copied inline. NULL on ENOMEM. */
struct knode *kv_node_alloc(struct kv *kv, const char *key, uint32_t key_len, uint32_t name_off,
                            const char *value, uint32_t value_len);
/* Give back a node from kv_node_alloc that was never linked. */
void kv_node_discard(struct kv *kv, struct knode *k);
/* Room in the child index for `more` kv_node_link calls. 0, or -1 on ENOMEM. */
int kv_node_reserve(struct kv *kv, uint32_t more);
void kv_node_link(struct kv *kv, struct knode *parent, struct knode *k);
/* Free k's value unless it is the inline copy or the shared "" (the node keeps the pointer). */
void kv_node_value_free(struct knode *k);
void kv_value_free(char *v); /* a value from kv_value_dup not yet given to a node */
char *kv_value_dup(const char *v, uint32_t len);
void kv_subtree_free(struct kv *kv, struct knode *top);
void kv_walk_path(const struct kv *kv, const char *key, size_t len, struct walk *w);
int kv_walk_error(const struct kv *kv, const char *key, const struct walk *w, struct kv_error *err);

#endif
