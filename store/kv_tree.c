/* store/kv_tree.c — the etcd v2 key tree: nodes, the child index, path walks, reads, tokens and
 * the tree's lifecycle (kv.h is the contract; the mutations are in kv_apply.c).
 *
 * Design:
 * - Every node is one allocation (the public kv_node, its name and its first value inline after
 *   it); only a value written later gets a block of its own. A key is rebuilt from the parents.
 * - A dir's children are found by comparing names along its sibling list while it has had at most
 *   KV_KIDS_LINEAR of them (most dirs: a token, its _config), and through ONE global
 *   open-addressing index (kv_index.h) keyed by (parent pointer, child name) once it has had more,
 *   so a lookup costs at most a few compares or a hash probe per path component whatever the
 *   directory size (/discovery may hold millions of tokens), a dir costs no table of its own, and
 *   only a child of a big dir pays an index slot.
 * - Two binary min-heaps give O(log n) expiry bookkeeping: TTL nodes by expire_ms, and token dirs
 *   (dirs directly under /discovery) by created_ms. A node leaving the tree leaves its heaps at
 *   once, so a SWEEP never meets a stale entry and costs O(expired · log n).
 * - Every command is validated completely, and everything it will need is allocated, before the
 *   first byte of the tree changes: a failed command changes nothing, as etcd's does (its index
 *   moves only on success). The semantics follow etcd v2store (release-3.4) function by function,
 *   including its quirks: SET replaces a file by a new node (new createdIndex), UPDATE of a dir keeps
 *   the dir's own modifiedIndex, CAD has no root check, implicit dirs take the creating index.
 */
#include "store/kv_int.h"
#include "store/hash.h"
#include "store/list.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An empty file value shares this, so that "" costs no allocation. */
static const char kv_empty_value[1] = "";

/* ---------------------------------------------------------------- tree primitives */

static uint64_t child_hash(const struct kv_node *parent, const char *name, size_t len)
{
    return hash_of(hash_salt(HASH_INIT, (uint64_t)(uintptr_t)parent), name, len);
}

/* The index's hash of a linked node (kv_index.h recomputes it when it grows or shifts). */
static uint64_t knode_hash(const void *item)
{
    const struct kv_node *k = item;
    return child_hash(k->parent, k->name, k->name_len);
}

static struct kv_node *find_child(const struct kv *kv, const struct kv_node *parent, const char *name,
                                  size_t len)
{
    if (!(parent->flags_ & KN_KIDS_INDEXED)) {
        for (struct kv_node *c = parent->u_.first; c; c = c->next_sibling)
            if (c->name_len == len && memcmp(c->name, name, len) == 0)
                return c;
        return NULL;
    }
    const struct kv_index *ix = &kv->children;
    uint64_t h = child_hash(parent, name, len);
    for (size_t i = kv_index_start(ix, h); ix->slots[i]; i = kv_index_next(ix, i)) {
        if (!kv_index_maybe(ix, i, h))
            continue;
        struct kv_node *k = kv_index_item(ix, i);
        if (k->parent == parent && k->name_len == len && memcmp(k->name, name, len) == 0)
            return k;
    }
    return NULL;
}

size_t kv_node_key_len(const struct kv_node *n)
{
    size_t len = 0;
    for (; n->parent; n = n->parent)
        len += 1 + n->name_len;
    return len ? len : 1;
}

const char *kv_node_key(const struct kv_node *n, char *buf, size_t cap, size_t *len)
{
    size_t l = kv_node_key_len(n);
    char *k = l < cap ? buf : malloc(l + 1);
    if (!k)
        return NULL;
    k[0] = '/';
    k[l] = '\0';
    for (size_t end = l; n->parent; n = n->parent) {
        end -= n->name_len;
        memcpy(k + end, n->name, n->name_len);
        k[--end] = '/';
    }
    *len = l;
    return k;
}

/* The byte at offset i of n's key (len its key's length; i < len). O(depth). */
static char key_byte(const struct kv_node *n, size_t len, size_t i)
{
    size_t end = len; /* n's name ends here */
    for (; n->parent; n = n->parent) {
        size_t start = end - n->name_len;
        if (i >= start)
            return n->name[i - start];
        if (i == start - 1)
            return '/';
        end = start - 1;
    }
    return '/';
}

/* Without building either key: a heap compares keys only when two entries tie on time and
 * createdIndex, which is rare, and it must not fail for want of memory. */
int kv_node_keycmp(const struct kv_node *a, const struct kv_node *b)
{
    size_t la = kv_node_key_len(a), lb = kv_node_key_len(b);
    for (size_t i = 0; i < la && i < lb; i++) {
        unsigned char x = (unsigned char)key_byte(a, la, i), y = (unsigned char)key_byte(b, lb, i);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return la < lb ? -1 : la > lb;
}

/* The inline value's place: just after the name's NUL. A node made without a value (a dir) has
 * nothing of its own there (the next node's block may start there), but a value is only ever
 * that inline copy, the shared "" or a malloc'd block, and no malloc'd block starts at an address
 * inside a node's page or block, so the test is exact. */
static const char *inline_value(const struct kv_node *k)
{
    return k->name + k->name_len + 1;
}

_Static_assert(offsetof(struct kv_node, name) == 70, "a node's fixed part counts a million times over");

struct kv_node *kv_node_alloc(struct kv *kv, const char *name, uint32_t name_len, const char *value,
                              uint32_t value_len)
{
    size_t head = offsetof(struct kv_node, name);
    size_t size = head + (size_t)name_len + 1 + (value ? (size_t)value_len + 1 : 0);
    uint8_t words;
    struct kv_node *k = kv_slab_alloc(&kv->slab, size, &words);
    if (!k)
        return NULL;
    memset(k, 0, head);
    k->alloc_words_ = words;
    memcpy(k->name, name, name_len);
    k->name[name_len] = '\0';
    k->name_len = (uint16_t)name_len; /* <= KV_NAME_MAX: kv_cmd_decode and kv_restore_node check */
    if (value) {
        char *v = k->name + name_len + 1;
        if (value_len)
            memcpy(v, value, value_len);
        v[value_len] = '\0';
        k->u_.value = v;
        k->c_.value_len = value_len;
    } else {
        k->dir = true;
    }
    return k;
}

void kv_node_discard(struct kv *kv, struct kv_node *k)
{
    if (k)
        kv_slab_release(&kv->slab, k, k->alloc_words_);
}

int kv_node_reserve(struct kv *kv, uint32_t more)
{
    return kv_index_reserve(&kv->children, (size_t)more + KV_KIDS_LINEAR + 1);
}

void kv_node_value_free(struct kv_node *k)
{
    if (!k->dir && k->u_.value != inline_value(k))
        kv_value_free(k->u_.value);
}

/* Link a fresh node under parent (tail of the creation-ordered list) and index it. Heap room and
 * index room were reserved, so this cannot fail. */
void kv_node_link(struct kv *kv, struct kv_node *parent, struct kv_node *k, int64_t expire_ms)
{
    k->parent = parent;
    LIST_APPEND_R(parent->u_.first, k, prev_sibling_, next_sibling);
    if (!kv_name_hidden(k->name))
        parent->c_.nvisible++;
    if (parent->flags_ & KN_KIDS_INDEXED) {
        kv_index_insert(&kv->children, k, knode_hash(k));
    } else {
        uint32_t n = 0;
        for (struct kv_node *c = parent->u_.first; c && n <= KV_KIDS_LINEAR; c = c->next_sibling)
            n++;
        if (n > KV_KIDS_LINEAR) { /* for good: the index never shrinks either */
            for (struct kv_node *c = parent->u_.first; c; c = c->next_sibling)
                kv_index_insert(&kv->children, c, knode_hash(c));
            parent->flags_ |= KN_KIDS_INDEXED;
        }
    }
    if (parent == kv->disc && k->dir)
        kv_token_push(kv, k);
    if (expire_ms)
        kv_set_expiry(kv, k, expire_ms);
    kv->nnodes++;
}

void kv_value_free(char *v)
{
    if (v && v != kv_empty_value)
        free(v);
}

/* Copy a value into a NUL-terminated allocation ("" shares kv_empty_value). NULL on ENOMEM. */
char *kv_value_dup(const char *v, uint32_t len)
{
    if (len == 0)
        return (char *)kv_empty_value;
    char *c = malloc((size_t)len + 1);
    if (!c)
        return NULL;
    memcpy(c, v, len);
    c[len] = '\0';
    return c;
}

/* Unlink one childless node from its parent, its indexes and heaps, and free it. */
static void node_free_one(struct kv *kv, struct kv_node *k)
{
    struct kv_node *p = k->parent;
    if (p) {
        if (p->flags_ & KN_KIDS_INDEXED)
            kv_index_remove(&kv->children, k, knode_hash(k));
        LIST_UNLINK_R(p->u_.first, k, prev_sibling_, next_sibling);
        if (!kv_name_hidden(k->name))
            p->c_.nvisible--;
    }
    kv_expiry_forget(kv, k);
    kv_node_value_free(k);
    kv_node_discard(kv, k);
    kv->nnodes--;
}

/* Remove top and its whole subtree; iterative, so a deep path cannot exhaust the stack. */
void kv_subtree_free(struct kv *kv, struct kv_node *top)
{
    struct kv_node *cur = top;
    for (;;) {
        while (cur->dir && cur->u_.first)
            cur = cur->u_.first;
        struct kv_node *parent = cur->parent;
        bool last = cur == top;
        node_free_one(kv, cur);
        if (last)
            break;
        cur = parent;
    }
}

/* Empty components ("//", a trailing "/") are skipped, as path.Clean would. */
void kv_walk_path(const struct kv *kv, const char *key, size_t len, struct walk *w)
{
    struct kv_node *cur = kv->root;
    size_t pos = 0;
    memset(w, 0, sizeof(*w));
    for (;;) {
        while (pos < len && key[pos] == '/')
            pos++;
        if (pos >= len) {
            w->node = cur;
            return;
        }
        size_t end = pos;
        while (end < len && key[end] != '/')
            end++;
        if (!cur->dir) {
            w->at = cur;
            w->notdir = true;
            return;
        }
        struct kv_node *c = find_child(kv, cur, key + pos, end - pos);
        if (!c) {
            w->at = cur;
            w->miss_start = pos;
            w->miss_end = end;
            return;
        }
        cur = c;
        pos = end;
    }
}

/* etcd's internalGet errors: 104 naming the file in the way, or 100 naming the first missing
 * component. */
int kv_walk_error(const struct kv *kv, const char *key, const struct walk *w, struct kv_error *err)
{
    if (!w->notdir)
        return kv_set_err(err, KV_ENOTFOUND, kv->index, "%.*s", (int)w->miss_end, key);
    char buf[512];
    size_t len;
    const char *at = kv_node_key(w->at, buf, sizeof(buf), &len);
    int rc = kv_set_err(err, KV_ENOTDIR, kv->index, "%s", at ? at : "");
    if (at != buf)
        free((char *)at);
    return rc;
}

/* ---------------------------------------------------------------- public reads */

uint64_t kv_index(const struct kv *kv)
{
    return kv->index;
}

uint64_t kv_ntokens(const struct kv *kv)
{
    return kv->tok.n;
}

uint64_t kv_nnodes(const struct kv *kv)
{
    return kv->nnodes;
}

const struct kv_node *kv_lookup(const struct kv *kv, const char *key, size_t key_len)
{
    struct walk w;
    kv_walk_path(kv, key, key_len, &w);
    return w.node;
}

int kv_get(const struct kv *kv, const char *key, size_t key_len, const struct kv_node **out,
           struct kv_error *err)
{
    struct walk w;
    kv_walk_path(kv, key, key_len, &w);
    if (!w.node)
        return kv_walk_error(kv, key, &w, err);
    *out = w.node;
    return 0;
}

int64_t kv_next_due(const struct kv *kv, int64_t token_ttl_ms)
{
    int64_t due = INT64_MAX;
    int64_t t;
    if (kv_ttl_top(kv, &t))
        due = t;
    if (token_ttl_ms > 0) {
        const struct kv_node *k = kv_token_top(kv);
        int64_t d;
        if (k && !__builtin_add_overflow(k->created_ms, token_ttl_ms, &d) && d < due)
            due = d;
    }
    return due;
}

int kv_parse_size(const char *s, size_t len, uint32_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 10)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v < 1 || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

uint32_t kv_dir_size(const struct kv *kv, const struct kv_node *dir)
{
    static const char cfg[] = "_config", size[] = "size";
    if (!dir || !dir->dir)
        return 0;
    const struct kv_node *c = find_child(kv, dir, cfg, sizeof(cfg) - 1);
    const struct kv_node *s = c && c->dir ? find_child(kv, c, size, sizeof(size) - 1) : NULL;
    uint32_t v;
    if (!s || s->dir || kv_parse_size(s->u_.value, s->c_.value_len, &v) != 0)
        return 0;
    return v;
}

const struct kv_node *kv_token_dir(const struct kv *kv, const char *token, size_t token_len)
{
    if (token_len == 0)
        return NULL;
    const struct kv_node *d = find_child(kv, kv->disc, token, token_len);
    return d && d->dir ? d : NULL;
}

void kv_token_info(const struct kv *kv, const char *token, size_t token_len, struct kv_token_info *out)
{
    const struct kv_node *d = kv_token_dir(kv, token, token_len);
    memset(out, 0, sizeof(*out));
    if (!d)
        return;
    out->exists = true;
    out->size = kv_dir_size(kv, d);
    out->members = d->c_.nvisible;
    out->created_ms = d->created_ms;
}

bool kv_key_token(const char *key, size_t len, const char **token, size_t *token_len)
{
    static const char pfx[] = KV_DISCOVERY_DIR "/";
    const size_t n = sizeof(pfx) - 1;
    if (len <= n || memcmp(key, pfx, n) != 0)
        return false;
    size_t end = n;
    while (end < len && key[end] != '/')
        end++;
    *token = key + n;
    *token_len = end - n;
    return end > n;
}

/* ---------------------------------------------------------------- lifecycle */

struct kv *kv_new(void)
{
    struct kv *kv = calloc(1, sizeof(*kv));
    if (!kv)
        return NULL;
    kv_index_init(&kv->children, knode_hash);
    kv_index_init(&kv->ttls, kv_ttl_hash);
    kv_slab_init(&kv->slab);
    kv->tok.tok = true;
    kv->root = kv_node_alloc(kv, "", 0, NULL, 0);
    if (!kv->root)
        goto fail;
    kv->nnodes = 1;
    struct kv_node *d =
        kv_node_alloc(kv, KV_DISCOVERY_DIR + 1, (uint32_t)strlen(KV_DISCOVERY_DIR) - 1, NULL, 0);
    if (!d)
        goto fail;
    d->created_index = d->modified_index = 1;
    if (kv_node_reserve(kv, 1) != 0) {
        kv_node_discard(kv, d);
        goto fail;
    }
    kv_node_link(kv, kv->root, d, 0);
    kv->disc = d;
    kv->index = 1;
    return kv;
fail:
    kv_free(kv);
    return NULL;
}

void kv_free(struct kv *kv)
{
    if (!kv)
        return;
    if (kv->root)
        kv_subtree_free(kv, kv->root);
    kv_index_free(&kv->children);
    kv_index_free(&kv->ttls);
    free(kv->ttl_spare);
    kv_slab_free_all(&kv->slab);
    free(kv->ttl.a);
    free(kv->tok.a);
    free(kv);
}
