/* store/kv.c — the etcd v2 key tree as a deterministic state machine (see kv.h for the contract).
 *
 * Design:
 * - Every node is one allocation (struct knode: the public kv_node, its key inline after it) plus
 *   one for a file's value. Children are found through ONE global hash table keyed by
 *   (parent pointer, child name), so a lookup costs a hash probe per path component whatever the
 *   directory size (/discovery may hold millions of tokens), and a dir costs no table of its own.
 * - Two binary min-heaps give O(log n) expiry bookkeeping: TTL nodes by expire_ms, and token dirs
 *   (dirs directly under /discovery) by created_ms. A node leaving the tree leaves its heaps at
 *   once, so a SWEEP never meets a stale entry and costs O(expired · log n).
 * - Every command is validated completely, and everything it will need is allocated, before the
 *   first byte of the tree changes: a failed command changes nothing, as etcd's does (its index
 *   moves only on success). The semantics follow etcd v2store (release-3.4) function by function,
 *   including its quirks: SET replaces a file by a new node (new createdIndex), UPDATE of a dir keeps
 *   the dir's own modifiedIndex, CAD has no root check, implicit dirs take the creating index.
 */
#define _GNU_SOURCE /* vasprintf */
#include "store/kv.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/kv_map.h"

#define KV_SWEEP_DEFAULT 1024u

struct knode {
    struct kv_node n;
    struct kv_mapent ent; /* in kv->children, hash of (parent, name) */
    uint32_t ttl_slot;    /* position in kv->ttl + 1; 0 = not there */
    uint32_t tok_slot;    /* position in kv->tok + 1; 0 = not there */
};

#define KN(p) ((struct knode *)(p))

struct kheap {
    struct knode **a;
    uint32_t n, cap;
    bool tok; /* ordered by created_ms (tokens) rather than expire_ms (TTL) */
};

struct kv {
    struct knode *root;
    struct knode *disc; /* /discovery */
    uint64_t index;
    uint64_t nnodes;
    struct kv_map children;
    struct kheap ttl, tok;
};

/* An empty file value shares this, so that "" costs no allocation. */
static const char kv_empty_value[1] = "";

/* ---------------------------------------------------------------- names, codes */

const char *kv_action_name(enum kv_action a)
{
    switch (a) {
    case KV_ACT_GET:
        return "get";
    case KV_ACT_SET:
        return "set";
    case KV_ACT_CREATE:
        return "create";
    case KV_ACT_UPDATE:
        return "update";
    case KV_ACT_DELETE:
        return "delete";
    case KV_ACT_CAS:
        return "compareAndSwap";
    case KV_ACT_CAD:
        return "compareAndDelete";
    case KV_ACT_EXPIRE:
        return "expire";
    }
    return "unknown";
}

const char *kv_err_message(int code)
{
    switch (code) {
    case 100:
        return "Key not found";
    case 101:
        return "Compare failed";
    case 102:
        return "Not a file";
    case 103:
        return "Reached the max number of peers in the cluster";
    case 104:
        return "Not a directory";
    case 105:
        return "Key already exists";
    case 106:
        return "The prefix of given key is a keyword in etcd";
    case 107:
        return "Root is read only";
    case 108:
        return "Directory not empty";
    case 109:
        return "Peer address has existed";
    case 110:
        return "The request requires user authentication";
    case 200:
        return "Value is Required in POST form";
    case 201:
        return "PrevValue is Required in POST form";
    case 202:
        return "The given TTL in POST form is not a number";
    case 203:
        return "The given index in POST form is not a number";
    case 204:
        return "Value or TTL is required in POST form";
    case 205:
        return "The given timeout in POST form is not a number";
    case 206:
        return "Name is required in POST form";
    case 207:
        return "Index or value is required";
    case 208:
        return "Index and value cannot both be specified";
    case 209:
        return "Invalid field";
    case 210:
        return "Invalid POST form";
    case 211:
        return "Value provided on refresh";
    case 212:
        return "A TTL must be provided on refresh";
    case 300:
        return "Raft Internal Error";
    case 301:
        return "During Leader Election";
    case 400:
        return "watcher is cleared due to etcd recovery";
    case 401:
        return "The event in requested index is outdated and cleared";
    case 1001:
        return "Too many members in this token";
    }
    return "Unknown error";
}

int kv_err_http_status(int code)
{
    switch (code) {
    case 100:
        return 404;
    case 102:
    case 108:
        return 403;
    case 101:
    case 105:
        return 412;
    case 110:
        return 401;
    case 300:
    case 301:
        return 500;
    case 1001:
        return 429;
    }
    return 400;
}

void kv_error_clear(struct kv_error *e)
{
    if (!e)
        return;
    free(e->cause);
    e->cause = NULL;
    e->code = 0;
    e->index = 0;
}

static int set_err(struct kv_error *e, int code, uint64_t index, const char *fmt, ...)
{
    if (!e)
        return code;
    free(e->cause);
    e->cause = NULL;
    e->code = code;
    e->index = index;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&e->cause, fmt, ap) < 0)
            e->cause = NULL;
        va_end(ap);
    }
    return code;
}

/* ---------------------------------------------------------------- events */

struct kv_event *kv_event_ref(struct kv_event *ev)
{
    if (ev)
        __atomic_add_fetch(&ev->refs, 1, __ATOMIC_RELAXED);
    return ev;
}

void kv_event_unref(struct kv_event *ev)
{
    if (ev && __atomic_sub_fetch(&ev->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(ev); /* the strings live in the same block */
}

/* Copy a value into an event's block at p, NUL-terminated, and point n at it; returns the next free byte. */
static char *ev_put_value(struct kv_enode *n, char *p, const char *v, uint32_t len)
{
    if (len)
        memcpy(p, v, len);
    p[len] = '\0';
    n->value = p;
    n->value_len = len;
    return p + len + 1;
}

/* One block: the event, the key (shared by node and prevNode: they always name the same key),
 * the node's value and the prevNode's value. */
static struct kv_event *ev_new(enum kv_action action, uint64_t index, const char *key, uint32_t key_len,
                               const char *val, uint32_t val_len, const char *pval, uint32_t pval_len)
{
    size_t sz = sizeof(struct kv_event) + (size_t)key_len + 1 + (val ? (size_t)val_len + 1 : 0) +
                (pval ? (size_t)pval_len + 1 : 0);
    struct kv_event *ev = malloc(sz);
    if (!ev)
        return NULL;
    memset(ev, 0, sizeof(*ev));
    char *p = (char *)(ev + 1);
    memcpy(p, key, key_len);
    p[key_len] = '\0';
    ev->node.key = p;
    ev->prev.key = p;
    p += key_len + 1;
    if (val)
        p = ev_put_value(&ev->node, p, val, val_len);
    if (pval)
        ev_put_value(&ev->prev, p, pval, pval_len);
    ev->action = action;
    ev->index = index;
    ev->refs = 1;
    return ev;
}

/* prevNode as etcd's non-recursive Repr: flags and indexes, value for files, no children. */
static void ev_set_prev(struct kv_event *ev, const struct kv_node *n)
{
    ev->has_prev = true;
    ev->prev.dir = n->dir;
    ev->prev.expire_ms = n->expire_ms;
    ev->prev.modified_index = n->modified_index;
    ev->prev.created_index = n->created_index;
}

/* ---------------------------------------------------------------- heaps */

/* a strictly before b: by time, then created_index, then key, so the order (and with it the
 * order of expire events and their indexes) is the same on every node. */
static bool heap_less(const struct kheap *h, const struct knode *a, const struct knode *b)
{
    int64_t ta = h->tok ? a->n.created_ms : a->n.expire_ms;
    int64_t tb = h->tok ? b->n.created_ms : b->n.expire_ms;
    if (ta != tb)
        return ta < tb;
    if (a->n.created_index != b->n.created_index)
        return a->n.created_index < b->n.created_index;
    return strcmp(a->n.key, b->n.key) < 0;
}

static uint32_t *heap_slot(const struct kheap *h, struct knode *k)
{
    return h->tok ? &k->tok_slot : &k->ttl_slot;
}

static void heap_set(struct kheap *h, uint32_t i, struct knode *k)
{
    h->a[i] = k;
    *heap_slot(h, k) = i + 1;
}

static void heap_up(struct kheap *h, uint32_t i)
{
    struct knode *k = h->a[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!heap_less(h, k, h->a[p]))
            break;
        heap_set(h, i, h->a[p]);
        i = p;
    }
    heap_set(h, i, k);
}

static void heap_down(struct kheap *h, uint32_t i)
{
    struct knode *k = h->a[i];
    for (;;) {
        uint32_t l = 2 * i + 1, best = i;
        struct knode *bk = k;
        if (l < h->n && heap_less(h, h->a[l], bk)) {
            best = l;
            bk = h->a[l];
        }
        if (l + 1 < h->n && heap_less(h, h->a[l + 1], bk)) {
            best = l + 1;
            bk = h->a[l + 1];
        }
        if (best == i)
            break;
        heap_set(h, i, bk);
        i = best;
    }
    heap_set(h, i, k);
}

/* Make room for `more` pushes, so that a command can reserve before it mutates. */
static int heap_reserve(struct kheap *h, uint32_t more)
{
    if (h->n + more <= h->cap)
        return 0;
    uint32_t cap = h->cap ? h->cap : 64;
    while (cap < h->n + more)
        cap *= 2;
    struct knode **a = realloc(h->a, (size_t)cap * sizeof(*a));
    if (!a)
        return -1;
    h->a = a;
    h->cap = cap;
    return 0;
}

static void heap_push(struct kheap *h, struct knode *k)
{
    /* callers reserved */
    h->a[h->n] = k;
    *heap_slot(h, k) = h->n + 1;
    h->n++;
    heap_up(h, h->n - 1);
}

static void heap_remove(struct kheap *h, struct knode *k)
{
    uint32_t *slot = heap_slot(h, k);
    if (!*slot)
        return;
    uint32_t i = *slot - 1;
    *slot = 0;
    h->n--;
    if (i == h->n)
        return;
    heap_set(h, i, h->a[h->n]);
    heap_up(h, i);
    heap_down(h, *heap_slot(h, h->a[i]) - 1);
}

/* After k's time changed (TTL update): restore the order. */
static void heap_fix(struct kheap *h, struct knode *k)
{
    uint32_t i = *heap_slot(h, k) - 1;
    heap_up(h, i);
    heap_down(h, *heap_slot(h, k) - 1);
}

static struct knode *heap_top(const struct kheap *h)
{
    return h->n ? h->a[0] : NULL;
}

/* ---------------------------------------------------------------- tree primitives */

static uint64_t child_hash(const struct knode *parent, const char *name, size_t len)
{
    uint64_t seed = KV_HASH_INIT ^ ((uint64_t)(uintptr_t)parent * 0x9e3779b97f4a7c15ULL);
    return kv_hash_mix(kv_hash_bytes(seed, name, len));
}

static struct knode *find_child(const struct kv *kv, const struct knode *parent, const char *name, size_t len)
{
    uint64_t h = child_hash(parent, name, len);
    for (struct kv_mapent *e = kv_map_chain(&kv->children, h); e; e = e->next) {
        if (e->hash != h)
            continue;
        struct knode *k = (struct knode *)((char *)e - offsetof(struct knode, ent));
        size_t nl = k->n.key_len - (size_t)(k->n.name - k->n.key);
        if (k->n.parent == &parent->n && nl == len && memcmp(k->n.name, name, len) == 0)
            return k;
    }
    return NULL;
}

/* Allocate a detached node for key[0..key_len) whose last component starts at name_off. */
static struct knode *node_alloc(const char *key, uint32_t key_len, uint32_t name_off)
{
    struct knode *k = malloc(sizeof(*k) + (size_t)key_len + 1);
    if (!k)
        return NULL;
    memset(k, 0, sizeof(*k));
    char *kp = (char *)(k + 1);
    memcpy(kp, key, key_len);
    kp[key_len] = '\0';
    k->n.key = kp;
    k->n.key_len = key_len;
    k->n.name = kp + name_off;
    return k;
}

static bool name_hidden(const char *name)
{
    return name[0] == '_';
}

/* Link a fresh node under parent (tail of the creation-ordered list) and index it. Heap room and
 * map buckets exist already (the map only fails when it has no table, and the root's insert made
 * one), so this cannot fail. */
static void node_link(struct kv *kv, struct knode *parent, struct knode *k)
{
    struct kv_node *p = &parent->n, *n = &k->n;
    n->parent = p;
    n->prev_sibling = p->last_child;
    n->next_sibling = NULL;
    if (p->last_child)
        p->last_child->next_sibling = n;
    else
        p->first_child = n;
    p->last_child = n;
    p->nchildren++;
    if (!name_hidden(n->name))
        p->nvisible++;
    k->ent.hash = child_hash(parent, n->name, n->key_len - (uint32_t)(n->name - n->key));
    (void)kv_map_insert(&kv->children, &k->ent);
    if (parent == kv->disc && n->dir)
        heap_push(&kv->tok, k);
    if (n->expire_ms)
        heap_push(&kv->ttl, k);
    kv->nnodes++;
}

static void value_free(char *v)
{
    if (v && v != kv_empty_value)
        free(v);
}

/* Copy a value into a NUL-terminated allocation ("" shares kv_empty_value). NULL on ENOMEM. */
static char *value_dup(const char *v, uint32_t len)
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
static void node_free_one(struct kv *kv, struct knode *k)
{
    struct kv_node *n = &k->n, *p = n->parent;
    if (p) {
        if (n->prev_sibling)
            n->prev_sibling->next_sibling = n->next_sibling;
        else
            p->first_child = n->next_sibling;
        if (n->next_sibling)
            n->next_sibling->prev_sibling = n->prev_sibling;
        else
            p->last_child = n->prev_sibling;
        p->nchildren--;
        if (!name_hidden(n->name))
            p->nvisible--;
        kv_map_remove(&kv->children, &k->ent);
    }
    heap_remove(&kv->ttl, k);
    heap_remove(&kv->tok, k);
    value_free(n->value);
    free(k);
    kv->nnodes--;
}

/* Remove top and its whole subtree; iterative, so a deep path cannot exhaust the stack. */
static void subtree_free(struct kv *kv, struct knode *top)
{
    struct knode *cur = top;
    for (;;) {
        while (cur->n.first_child)
            cur = KN(cur->n.first_child);
        struct knode *parent = KN(cur->n.parent);
        bool last = cur == top;
        node_free_one(kv, cur);
        if (last)
            break;
        cur = parent;
    }
}

/* Result of walking a path from the root. */
struct walk {
    struct knode *node; /* the node named by the whole path, or NULL */
    struct knode *at;   /* when NULL: the deepest existing node on the way */
    bool notdir;        /* when NULL: `at` is a file with a component below it */
    size_t miss_start;  /* when NULL and !notdir: offset of the first missing component */
    size_t miss_end;    /* ... and the offset just past it (cause = key[0..miss_end]) */
};

/* Empty components ("//", a trailing "/") are skipped, as path.Clean would. */
static void walk_path(const struct kv *kv, const char *key, size_t len, struct walk *w)
{
    struct knode *cur = kv->root;
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
        if (!cur->n.dir) {
            w->at = cur;
            w->notdir = true;
            return;
        }
        struct knode *c = find_child(kv, cur, key + pos, end - pos);
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
static int walk_error(const struct kv *kv, const char *key, const struct walk *w, struct kv_error *err)
{
    if (w->notdir)
        return set_err(err, KV_ENOTDIR, kv->index, "%s", w->at->n.key);
    return set_err(err, KV_ENOTFOUND, kv->index, "%.*s", (int)w->miss_end, key);
}

static bool is_root(const char *key, size_t len)
{
    return len == 1 && key[0] == '/';
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
    walk_path(kv, key, key_len, &w);
    return w.node ? &w.node->n : NULL;
}

int kv_get(const struct kv *kv, const char *key, size_t key_len, const struct kv_node **out,
           struct kv_error *err)
{
    struct walk w;
    walk_path(kv, key, key_len, &w);
    if (!w.node)
        return walk_error(kv, key, &w, err);
    *out = &w.node->n;
    return 0;
}

int64_t kv_next_due(const struct kv *kv, int64_t token_ttl_ms)
{
    int64_t due = INT64_MAX;
    struct knode *t = heap_top(&kv->ttl);
    if (t)
        due = t->n.expire_ms;
    if (token_ttl_ms > 0) {
        struct knode *k = heap_top(&kv->tok);
        int64_t d;
        if (k && !__builtin_add_overflow(k->n.created_ms, token_ttl_ms, &d) && d < due)
            due = d;
    }
    return due;
}

/* ---------------------------------------------------------------- lifecycle */

struct kv *kv_new(void)
{
    struct kv *kv = calloc(1, sizeof(*kv));
    if (!kv)
        return NULL;
    kv_map_init(&kv->children);
    kv->tok.tok = true;
    kv->root = node_alloc("/", 1, 1);
    if (!kv->root)
        goto fail;
    kv->root->n.dir = true;
    kv->nnodes = 1;
    struct knode *d = node_alloc(KV_DISCOVERY_DIR, (uint32_t)strlen(KV_DISCOVERY_DIR), 1);
    if (!d)
        goto fail;
    d->n.dir = true;
    d->n.created_index = d->n.modified_index = 1;
    if (kv_map_reserve(&kv->children) != 0) { /* from here on, child inserts cannot fail */
        free(d);
        goto fail;
    }
    node_link(kv, kv->root, d);
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
        subtree_free(kv, kv->root);
    kv_map_free(&kv->children);
    free(kv->ttl.a);
    free(kv->tok.a);
    free(kv);
}

/* ---------------------------------------------------------------- mutations */

static int enomem(struct kv *kv, struct kv_error *err)
{
    return set_err(err, KV_ERAFT, kv->index, "out of memory");
}

static void emit_one(kv_emit_fn emit, void *arg, struct kv_event *ev)
{
    if (emit)
        emit(arg, ev);
    kv_event_unref(ev);
}

/* Fill the event's node from the tree node as it is after the mutation. */
static void ev_set_node(struct kv_event *ev, const struct kv_node *n, uint64_t modified)
{
    ev->node.dir = n->dir;
    ev->node.expire_ms = n->expire_ms;
    ev->node.modified_index = modified;
    ev->node.created_index = n->created_index;
}

/* Value compare as etcd's node.Compare: an empty prevValue or a zero prevIndex is not compared. */
static int compare(struct kv *kv, const struct kv_cmd *c, const struct kv_node *n, struct kv_error *err)
{
    bool vgiven = c->has_prev_value && c->prev_value_len > 0;
    bool vok =
        !vgiven || (n->value_len == c->prev_value_len && memcmp(n->value, c->prev_value, n->value_len) == 0);
    bool iok = c->prev_index == 0 || n->modified_index == c->prev_index;
    if (vok && iok)
        return 0;
    if (!iok && vok)
        return set_err(err, KV_ETESTFAILED, kv->index, "[%" PRIu64 " != %" PRIu64 "]", c->prev_index,
                       n->modified_index);
    if (!vok && iok)
        return set_err(err, KV_ETESTFAILED, kv->index, "[%.*s != %s]", (int)c->prev_value_len, c->prev_value,
                       n->value);
    return set_err(err, KV_ETESTFAILED, kv->index, "[%.*s != %s] [%" PRIu64 " != %" PRIu64 "]",
                   (int)c->prev_value_len, c->prev_value, n->value, c->prev_index, n->modified_index);
}

/* Create the missing tail of a path (implicit dirs, then the node itself) with index idx.
 * w says where the existing part ends. Everything is allocated before anything is linked. */
static int create_path(struct kv *kv, const struct kv_cmd *c, const char *key, size_t len,
                       const struct walk *w, uint64_t idx, struct knode **out)
{
    /* count the missing components */
    uint32_t m = 0;
    for (size_t pos = w->miss_start; pos < len;) {
        size_t end = pos;
        while (end < len && key[end] != '/')
            end++;
        m++;
        pos = end;
        while (pos < len && key[pos] == '/')
            pos++;
    }
    struct knode *stackv[8], **v = m <= 8 ? stackv : malloc((size_t)m * sizeof(*v));
    if (!v)
        return -1;
    char *val = NULL;
    if (!c->dir) {
        val = value_dup(c->value, c->value ? c->value_len : 0);
        if (!val)
            goto fail_v;
    }
    uint32_t i = 0;
    for (size_t pos = w->miss_start; pos < len; i++) {
        size_t end = pos;
        while (end < len && key[end] != '/')
            end++;
        v[i] = node_alloc(key, (uint32_t)end, (uint32_t)pos);
        if (!v[i])
            goto fail_nodes;
        pos = end;
        while (pos < len && key[pos] == '/')
            pos++;
    }
    /* heap room: implicit dirs directly under /discovery are tokens; the node may be both */
    if (heap_reserve(&kv->tok, 2) != 0 || heap_reserve(&kv->ttl, 1) != 0)
        goto fail_nodes;
    struct knode *parent = w->at;
    for (i = 0; i < m; i++) {
        struct knode *k = v[i];
        bool last = i + 1 == m;
        k->n.dir = last ? c->dir : true;
        k->n.created_index = k->n.modified_index = idx;
        k->n.created_ms = c->now_ms;
        if (last) {
            k->n.expire_ms = c->expire_ms;
            if (!c->dir) {
                k->n.value = val;
                k->n.value_len = c->value ? c->value_len : 0;
            }
        }
        node_link(kv, parent, k);
        parent = k;
    }
    *out = parent;
    if (v != stackv)
        free(v);
    return 0;
fail_nodes:
    for (uint32_t j = 0; j < i && j < m; j++)
        free(v[j]);
    value_free(val);
fail_v:
    if (v != stackv)
        free(v);
    return -1;
}

/* The cap on visible children: checked on the first component the command creates, i.e. the new
 * key itself when its parent exists (a registration), or the first implicit dir otherwise. */
static int check_cap(struct kv *kv, const struct kv_cmd *c, const char *key, const struct walk *w,
                     struct kv_error *err)
{
    if (!c->max_children)
        return 0;
    if (name_hidden(key + w->miss_start))
        return 0;
    if (w->at->n.nvisible < c->max_children)
        return 0;
    return set_err(err, KV_ETOOMANYCHILDREN, kv->index, "%s already holds %" PRIu32 " members (the limit)",
                   w->at->n.key, w->at->n.nvisible);
}

/* SET, CREATE and POST: etcd's internalCreate (+ Set's prevNode and refresh). */
static int do_create(struct kv *kv, const struct kv_cmd *c, kv_emit_fn emit, void *arg, struct kv_error *err)
{
    uint64_t idx = kv->index + 1;
    const char *key = c->key;
    size_t len = c->key_len;
    char *ukey = NULL;
    int rc;
    if (c->type == KV_CMD_POST) {
        /* the child is named by the index it will get */
        ukey = malloc(len + 22);
        if (!ukey)
            return enomem(kv, err);
        if (is_root(key, len))
            len = (size_t)sprintf(ukey, "/%020" PRIu64, idx);
        else
            len = (size_t)sprintf(ukey, "%.*s/%020" PRIu64, (int)len, key, idx);
        key = ukey;
    } else if (is_root(key, len)) {
        return set_err(err, KV_EROOTRONLY, kv->index, "/");
    }
    struct walk w;
    walk_path(kv, key, len, &w);
    if (!w.node && w.notdir) {
        rc = walk_error(kv, key, &w, err);
        goto out;
    }
    bool refresh = c->type == KV_CMD_SET && c->refresh;
    if (!w.node && refresh) { /* Set refresh reads the node first */
        rc = walk_error(kv, key, &w, err);
        goto out;
    }
    struct kv_event *ev;
    if (w.node) {
        struct knode *k = w.node;
        if (c->type != KV_CMD_SET) {
            rc = set_err(err, KV_EEXISTS, kv->index, "%.*s", (int)len, key);
            goto out;
        }
        if (k->n.dir) {
            rc = set_err(err, KV_ENOTFILE, kv->index, "%.*s", (int)len, key);
            goto out;
        }
        /* replace a file: etcd removes it and creates a new node (new createdIndex) */
        const char *nv = refresh ? k->n.value : (c->value ? c->value : "");
        uint32_t nvl = refresh ? k->n.value_len : (c->value ? c->value_len : 0);
        bool dir = refresh ? false : c->dir;
        char *val = NULL;
        if (!dir && !(val = value_dup(nv, nvl))) {
            rc = enomem(kv, err);
            goto out;
        }
        ev = ev_new(KV_ACT_SET, idx, key, (uint32_t)len, dir ? NULL : nv, nvl, k->n.value, k->n.value_len);
        if (!ev || heap_reserve(&kv->tok, 1) != 0 || heap_reserve(&kv->ttl, 1) != 0) {
            value_free(val);
            free(ev);
            rc = enomem(kv, err);
            goto out;
        }
        ev_set_prev(ev, &k->n);
        value_free(k->n.value);
        k->n.value = dir ? NULL : val;
        k->n.value_len = dir ? 0 : nvl;
        k->n.dir = dir;
        k->n.created_index = k->n.modified_index = idx;
        k->n.created_ms = c->now_ms;
        int64_t old_exp = k->n.expire_ms;
        k->n.expire_ms = c->expire_ms;
        if (old_exp && c->expire_ms)
            heap_fix(&kv->ttl, k);
        else if (old_exp)
            heap_remove(&kv->ttl, k);
        else if (c->expire_ms)
            heap_push(&kv->ttl, k);
        if (dir && k->n.parent == &kv->disc->n)
            heap_push(&kv->tok, k);
        ev_set_node(ev, &k->n, idx);
        ev->refresh = refresh;
    } else {
        rc = check_cap(kv, c, key, &w, err);
        if (rc)
            goto out;
        struct knode *k;
        ev = ev_new(c->type == KV_CMD_SET ? KV_ACT_SET : KV_ACT_CREATE, idx, key, (uint32_t)len,
                    c->dir ? NULL : (c->value ? c->value : ""), c->value ? c->value_len : 0, NULL, 0);
        if (!ev) {
            rc = enomem(kv, err);
            goto out;
        }
        if (create_path(kv, c, key, len, &w, idx, &k) != 0) {
            free(ev);
            rc = enomem(kv, err);
            goto out;
        }
        ev_set_node(ev, &k->n, idx);
    }
    kv->index = idx;
    free(ukey);
    emit_one(emit, arg, ev);
    return 0;
out:
    free(ukey);
    return rc;
}

/* Read the node a command on an existing key works on: 100/104 as internalGet. */
static struct knode *existing(struct kv *kv, const struct kv_cmd *c, struct kv_error *err, int *rc)
{
    struct walk w;
    walk_path(kv, c->key, c->key_len, &w);
    if (!w.node) {
        *rc = walk_error(kv, c->key, &w, err);
        return NULL;
    }
    return w.node;
}

static void set_ttl(struct kv *kv, struct knode *k, int64_t expire_ms)
{
    int64_t old = k->n.expire_ms;
    k->n.expire_ms = expire_ms;
    if (old && expire_ms)
        heap_fix(&kv->ttl, k);
    else if (old)
        heap_remove(&kv->ttl, k);
    else if (expire_ms)
        heap_push(&kv->ttl, k);
}

/* UPDATE (prevExist=true) and CAS. */
static int do_update(struct kv *kv, const struct kv_cmd *c, kv_emit_fn emit, void *arg, struct kv_error *err)
{
    int rc = 0;
    if (is_root(c->key, c->key_len))
        return set_err(err, KV_EROOTRONLY, kv->index, "/");
    struct knode *k = existing(kv, c, err, &rc);
    if (!k)
        return rc;
    bool cas = c->type == KV_CMD_CAS;
    uint32_t vlen = c->value ? c->value_len : 0;
    if (k->n.dir && (cas || vlen != 0))
        return set_err(err, KV_ENOTFILE, kv->index, "%.*s", (int)c->key_len, c->key);
    if (cas && (rc = compare(kv, c, &k->n, err)) != 0)
        return rc;
    uint64_t idx = kv->index + 1;
    const char *nv = c->refresh ? k->n.value : (c->value ? c->value : "");
    uint32_t nvl = c->refresh ? k->n.value_len : vlen;
    char *val = NULL;
    if (!k->n.dir && !(val = value_dup(nv, nvl)))
        return enomem(kv, err);
    struct kv_event *ev = ev_new(cas ? KV_ACT_CAS : KV_ACT_UPDATE, idx, c->key, c->key_len,
                                 k->n.dir ? NULL : nv, nvl, k->n.value, k->n.value_len);
    if (!ev || heap_reserve(&kv->ttl, 1) != 0) {
        free(ev);
        value_free(val);
        return enomem(kv, err);
    }
    ev_set_prev(ev, &k->n);
    if (!k->n.dir) {
        /* etcd's node.Write: a dir keeps its value (none) and its modifiedIndex */
        value_free(k->n.value);
        k->n.value = val;
        k->n.value_len = nvl;
        k->n.modified_index = idx;
    }
    set_ttl(kv, k, c->expire_ms);
    ev_set_node(ev, &k->n, idx);
    ev->refresh = c->refresh;
    kv->index = idx;
    emit_one(emit, arg, ev);
    return 0;
}

/* DELETE and CAD. */
static int do_delete(struct kv *kv, const struct kv_cmd *c, kv_emit_fn emit, void *arg, struct kv_error *err)
{
    int rc = 0;
    bool cad = c->type == KV_CMD_CAD;
    if (!cad && is_root(c->key, c->key_len))
        return set_err(err, KV_EROOTRONLY, kv->index, "/");
    struct knode *k = existing(kv, c, err, &rc);
    if (!k)
        return rc;
    if (cad) {
        if (k->n.dir)
            return set_err(err, KV_ENOTFILE, kv->index, "%.*s", (int)c->key_len, c->key);
        if ((rc = compare(kv, c, &k->n, err)) != 0)
            return rc;
    } else if (k->n.dir) {
        bool dir = c->dir || c->recursive;
        if (!dir)
            return set_err(err, KV_ENOTFILE, kv->index, "%s", k->n.key);
        if (k->n.nchildren && !c->recursive)
            return set_err(err, KV_EDIRNOTEMPTY, kv->index, "%s", k->n.key);
    }
    uint64_t idx = kv->index + 1;
    struct kv_event *ev = ev_new(cad ? KV_ACT_CAD : KV_ACT_DELETE, idx, c->key, c->key_len, NULL, 0,
                                 k->n.value, k->n.value_len);
    if (!ev)
        return enomem(kv, err);
    ev_set_prev(ev, &k->n);
    ev->node.dir = k->n.dir;
    ev->node.modified_index = idx;
    ev->node.created_index = k->n.created_index;
    subtree_free(kv, k);
    kv->index = idx;
    emit_one(emit, arg, ev);
    return 0;
}

/* Remove k (expired TTL or expired token) with one event. */
static int sweep_one(struct kv *kv, struct knode *k, enum kv_action action, kv_emit_fn emit, void *arg)
{
    uint64_t idx = kv->index + 1;
    struct kv_event *ev = ev_new(action, idx, k->n.key, k->n.key_len, NULL, 0, k->n.value, k->n.value_len);
    if (!ev)
        return -1;
    ev_set_prev(ev, &k->n);
    ev->node.dir = k->n.dir;
    ev->node.modified_index = idx;
    ev->node.created_index = k->n.created_index;
    subtree_free(kv, k);
    kv->index = idx;
    emit_one(emit, arg, ev);
    return 0;
}

static int do_sweep(struct kv *kv, const struct kv_cmd *c, kv_emit_fn emit, void *arg, struct kv_error *err)
{
    uint32_t max = c->sweep_max ? c->sweep_max : KV_SWEEP_DEFAULT, done = 0;
    struct knode *k;
    while (done < max && (k = heap_top(&kv->ttl)) && k->n.expire_ms <= c->now_ms) {
        if (sweep_one(kv, k, KV_ACT_EXPIRE, emit, arg) != 0)
            return done ? 0 : enomem(kv, err);
        done++;
    }
    if (c->token_ttl_ms <= 0)
        return 0;
    while (done < max && (k = heap_top(&kv->tok))) {
        int64_t due;
        if (__builtin_add_overflow(k->n.created_ms, c->token_ttl_ms, &due) || due > c->now_ms)
            break;
        if (sweep_one(kv, k, KV_ACT_DELETE, emit, arg) != 0)
            return done ? 0 : enomem(kv, err);
        done++;
    }
    return 0;
}

int kv_apply(struct kv *kv, const uint8_t *cmd, size_t len, kv_emit_fn emit, void *arg, struct kv_error *err)
{
    struct kv_cmd c;
    if (kv_cmd_decode(cmd, len, &c) != 0)
        return set_err(err, KV_ERAFT, kv->index, "malformed command");
    switch (c.type) {
    case KV_CMD_SET:
    case KV_CMD_CREATE:
    case KV_CMD_POST:
        return do_create(kv, &c, emit, arg, err);
    case KV_CMD_UPDATE:
    case KV_CMD_CAS:
        return do_update(kv, &c, emit, arg, err);
    case KV_CMD_DELETE:
    case KV_CMD_CAD:
        return do_delete(kv, &c, emit, arg, err);
    case KV_CMD_SWEEP:
        return do_sweep(kv, &c, emit, arg, err);
    }
    return set_err(err, KV_ERAFT, kv->index, "malformed command");
}
