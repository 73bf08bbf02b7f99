/* store/kv_apply.c — the tree's mutations: kv_apply() decodes one command and runs etcd v2store's
 * Set/Create/Update/CompareAndSwap/Delete/CompareAndDelete, or a SWEEP of due TTLs and tokens.
 * Every command is validated, and everything it needs allocated, before the first byte of the
 * tree changes, so a failed command changes nothing. Store thread only (under the write lock).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/kv_int.h"

static int enomem(struct kv *kv, struct kv_error *err)
{
    return kv_set_err(err, KV_ERAFT, kv->index, "out of memory");
}

static void emit_one(kv_emit_fn emit, void *arg, struct kv_event *ev)
{
    if (emit)
        emit(arg, ev);
    kv_event_unref(ev);
}

/* Fill the event's node from the tree node as it is after the mutation. */
static void ev_set_node(const struct kv *kv, struct kv_event *ev, const struct kv_node *n, uint64_t modified)
{
    ev->node.dir = n->dir;
    ev->node.expire_ms = kv_node_expire_ms(kv, n);
    ev->node.modified_index = modified;
    ev->node.created_index = n->created_index;
}

/* Value compare as etcd's node.Compare: an empty prevValue or a zero prevIndex is not compared. */
static int compare(struct kv *kv, const struct kv_cmd *c, const struct kv_node *n, struct kv_error *err)
{
    bool vgiven = c->has_prev_value && c->prev_value_len > 0;
    const char *nv = kv_node_value(n);
    uint32_t nvl = kv_node_value_len(n);
    bool vok = !vgiven || (nvl == c->prev_value_len && memcmp(nv, c->prev_value, nvl) == 0);
    bool iok = c->prev_index == 0 || n->modified_index == c->prev_index;
    if (vok && iok)
        return 0;
    if (!iok && vok)
        return kv_set_err(err, KV_ETESTFAILED, kv->index, "[%" PRIu64 " != %" PRIu64 "]", c->prev_index,
                          n->modified_index);
    if (!vok && iok)
        return kv_set_err(err, KV_ETESTFAILED, kv->index, "[%.*s != %s]", (int)c->prev_value_len,
                          c->prev_value, nv);
    return kv_set_err(err, KV_ETESTFAILED, kv->index, "[%.*s != %s] [%" PRIu64 " != %" PRIu64 "]",
                      (int)c->prev_value_len, c->prev_value, nv, c->prev_index, n->modified_index);
}

/* Create the missing tail of a path (implicit dirs, then the node itself) with index idx.
 * w says where the existing part ends. Everything is allocated before anything is linked. */
static int create_path(struct kv *kv, const struct kv_cmd *c, const char *key, size_t len,
                       const struct walk *w, uint64_t idx, struct kv_node **out)
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
    struct kv_node *stackv[8], **v = m <= 8 ? stackv : malloc((size_t)m * sizeof(*v));
    if (!v)
        return -1;
    uint32_t i = 0;
    for (size_t pos = w->miss_start; pos < len; i++) {
        size_t end = pos;
        while (end < len && key[end] != '/')
            end++;
        bool last = i + 1 == m;
        const char *val = last && !c->dir ? (c->value ? c->value : "") : NULL;
        v[i] = kv_node_alloc(kv, key + pos, (uint32_t)(end - pos), val, c->value ? c->value_len : 0);
        if (!v[i])
            goto fail_nodes;
        pos = end;
        while (pos < len && key[pos] == '/')
            pos++;
    }
    /* heap room: implicit dirs directly under /discovery are tokens; the node may be both */
    if (kv_expiry_reserve(kv, 2) != 0 || kv_node_reserve(kv, m) != 0)
        goto fail_nodes;
    struct kv_node *parent = w->at;
    for (i = 0; i < m; i++) {
        struct kv_node *k = v[i];
        bool last = i + 1 == m;
        k->created_action = (uint8_t)(c->type == KV_CMD_SET ? KV_ACT_SET : KV_ACT_CREATE);
        k->created_index = k->modified_index = idx;
        k->created_ms = c->now_ms;
        kv_node_link(kv, parent, k, last ? c->expire_ms : 0);
        parent = k;
    }
    *out = parent;
    if (v != stackv)
        free(v);
    return 0;
fail_nodes:
    for (uint32_t j = 0; j < i && j < m; j++)
        kv_node_discard(kv, v[j]);
    if (v != stackv)
        free(v);
    return -1;
}

/* The cap on visible children: checked on the first component the command creates, i.e. the new
 * key itself when its parent exists (a registration), or the first implicit dir otherwise. */
static int check_cap(struct kv *kv, const struct kv_cmd *c, const char *key, const struct walk *w,
                     struct kv_error *err)
{
    if (!c->cap_size)
        return 0;
    if (kv_name_hidden(key + w->miss_start))
        return 0;
    uint32_t size = kv_dir_size(kv, w->at);
    uint64_t cap = (uint64_t)(size ? size : c->cap_size) + c->cap_surplus;
    uint32_t nvisible = kv_node_nvisible(w->at);
    if (nvisible < cap)
        return 0;
    char buf[512];
    size_t len;
    const char *at = kv_node_key(w->at, buf, sizeof(buf), &len);
    if (!at)
        return enomem(kv, err);
    int rc = kv_set_err(err, KV_ETOOMANYCHILDREN, kv->index,
                        "%s already holds %" PRIu32 " members (the limit)", at, nvisible);
    if (at != buf)
        free((char *)at);
    return rc;
}

/* keep_config (kv_cmd.h): 0, or KV_ECONFIGLOCKED when the command would change or remove a
 * token's size after it is stored: a write to _config/size other than the same value again, or a
 * change to the _config dir itself (delete, TTL). Other keys under _config, a POST into it and a
 * CREATE (105 as ever) are left to the usual rules. */
static int check_config(struct kv *kv, const struct kv_cmd *c, struct kv_error *err)
{
    static const char disc[] = "/discovery/", cfg[] = "/_config", size[] = "/_config/size";
    const size_t dl = sizeof(disc) - 1, cl = sizeof(cfg) - 1, sl = sizeof(size) - 1;
    if (!c->keep_config || c->type == KV_CMD_CREATE || c->key_len <= dl || memcmp(c->key, disc, dl) != 0)
        return 0;
    const char *tok = c->key + dl, *end = c->key + c->key_len;
    const char *slash = memchr(tok, '/', (size_t)(end - tok));
    if (slash == NULL)
        return 0; /* the token dir itself */
    size_t rest = (size_t)(end - slash);
    bool at_size = rest == sl && memcmp(slash, size, sl) == 0;
    bool at_dir = rest == cl && memcmp(slash, cfg, cl) == 0;
    if (!at_size && !(at_dir && c->type != KV_CMD_POST))
        return 0;
    char path[512];
    int n = snprintf(path, sizeof(path), "%.*s/size", (int)(slash + cl - c->key), c->key);
    if (n <= 0 || (size_t)n >= sizeof(path))
        return 0; /* longer than any token path the api lets through */
    struct walk w;
    kv_walk_path(kv, path, (size_t)n, &w);
    if (w.node == NULL || w.node->dir)
        return 0; /* no size yet: the write may create the token */
    if (at_size && c->type == KV_CMD_SET && !c->dir && !c->refresh &&
        c->expire_ms == kv_node_expire_ms(kv, w.node) &&
        (c->value ? c->value_len : 0) == w.node->c_.value_len &&
        memcmp(c->value ? c->value : "", w.node->u_.value, w.node->c_.value_len) == 0)
        return 0; /* the same size again: a retried creation */
    return kv_set_err(err, KV_ECONFIGLOCKED, kv->index, "%s is set once, when the token is created", path);
}

/* in_token (kv_cmd.h): 0, or KV_ENOTFOUND naming the token dir the key lies in when it is missing. */
static int check_token(struct kv *kv, const struct kv_cmd *c, struct kv_error *err)
{
    const char *tok;
    size_t tl;
    if (!c->in_token || !kv_key_token(c->key, c->key_len, &tok, &tl) || kv_token_dir(kv, tok, tl))
        return 0;
    return kv_set_err(err, KV_ENOTFOUND, kv->index, KV_DISCOVERY_DIR "/%.*s", (int)tl, tok);
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
        if (kv_is_root(key, len))
            len = (size_t)sprintf(ukey, "/%020" PRIu64, idx);
        else
            len = (size_t)sprintf(ukey, "%.*s/%020" PRIu64, (int)len, key, idx);
        key = ukey;
    } else if (kv_is_root(key, len)) {
        return kv_set_err(err, KV_EROOTRONLY, kv->index, "/");
    }
    struct walk w;
    kv_walk_path(kv, key, len, &w);
    if (!w.node && w.notdir) {
        rc = kv_walk_error(kv, key, &w, err);
        goto out;
    }
    bool refresh = c->type == KV_CMD_SET && c->refresh;
    if (!w.node && refresh) { /* Set refresh reads the node first */
        rc = kv_walk_error(kv, key, &w, err);
        goto out;
    }
    struct kv_event *ev;
    if (w.node) {
        struct kv_node *k = w.node;
        if (c->type != KV_CMD_SET) {
            rc = kv_set_err(err, KV_EEXISTS, kv->index, "%.*s", (int)len, key);
            goto out;
        }
        if (k->dir) {
            rc = kv_set_err(err, KV_ENOTFILE, kv->index, "%.*s", (int)len, key);
            goto out;
        }
        /* replace a file: etcd removes it and creates a new node (new createdIndex) */
        const char *nv = refresh ? k->u_.value : (c->value ? c->value : "");
        uint32_t nvl = refresh ? k->c_.value_len : (c->value ? c->value_len : 0);
        bool dir = refresh ? false : c->dir;
        char *val = NULL;
        if (!dir && !(val = kv_value_dup(nv, nvl))) {
            rc = enomem(kv, err);
            goto out;
        }
        ev = kv_event_new(KV_ACT_SET, idx, key, (uint32_t)len, dir ? NULL : nv, nvl, k->u_.value,
                          k->c_.value_len);
        if (!ev || kv_expiry_reserve(kv, 1) != 0) {
            kv_value_free(val);
            free(ev);
            rc = enomem(kv, err);
            goto out;
        }
        kv_ev_set_prev(kv, ev, k);
        kv_node_value_free(k);
        if (dir) {
            k->dir = true;
            k->u_.first = NULL;
            k->c_.nvisible = 0;
        } else {
            k->u_.value = val;
            k->c_.value_len = nvl;
        }
        k->created_action = KV_ACT_SET;
        k->created_index = k->modified_index = idx;
        k->created_ms = c->now_ms;
        kv_set_expiry(kv, k, c->expire_ms);
        if (dir && k->parent == kv->disc)
            kv_token_push(kv, k);
        ev_set_node(kv, ev, k, idx);
        ev->refresh = refresh;
    } else {
        rc = check_cap(kv, c, key, &w, err);
        if (rc)
            goto out;
        struct kv_node *k;
        ev = kv_event_new(c->type == KV_CMD_SET ? KV_ACT_SET : KV_ACT_CREATE, idx, key, (uint32_t)len,
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
        ev_set_node(kv, ev, k, idx);
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
static struct kv_node *existing(struct kv *kv, const struct kv_cmd *c, struct kv_error *err, int *rc)
{
    struct walk w;
    kv_walk_path(kv, c->key, c->key_len, &w);
    if (!w.node) {
        *rc = kv_walk_error(kv, c->key, &w, err);
        return NULL;
    }
    return w.node;
}

/* UPDATE (prevExist=true) and CAS. */
static int do_update(struct kv *kv, const struct kv_cmd *c, kv_emit_fn emit, void *arg, struct kv_error *err)
{
    int rc = 0;
    if (kv_is_root(c->key, c->key_len))
        return kv_set_err(err, KV_EROOTRONLY, kv->index, "/");
    struct kv_node *k = existing(kv, c, err, &rc);
    if (!k)
        return rc;
    bool cas = c->type == KV_CMD_CAS;
    uint32_t vlen = c->value ? c->value_len : 0;
    if (k->dir && (cas || vlen != 0))
        return kv_set_err(err, KV_ENOTFILE, kv->index, "%.*s", (int)c->key_len, c->key);
    if (cas && (rc = compare(kv, c, k, err)) != 0)
        return rc;
    uint64_t idx = kv->index + 1;
    const char *nv = c->refresh ? kv_node_value(k) : (c->value ? c->value : "");
    uint32_t nvl = c->refresh ? kv_node_value_len(k) : vlen;
    char *val = NULL;
    if (!k->dir && !(val = kv_value_dup(nv, nvl)))
        return enomem(kv, err);
    struct kv_event *ev = kv_event_new(cas ? KV_ACT_CAS : KV_ACT_UPDATE, idx, c->key, c->key_len,
                                       k->dir ? NULL : nv, nvl, kv_node_value(k), kv_node_value_len(k));
    if (!ev || kv_expiry_reserve(kv, 0) != 0) {
        free(ev);
        kv_value_free(val);
        return enomem(kv, err);
    }
    kv_ev_set_prev(kv, ev, k);
    if (!k->dir) {
        /* etcd's node.Write: a dir keeps its value (none) and its modifiedIndex */
        kv_node_value_free(k);
        k->u_.value = val;
        k->c_.value_len = nvl;
        k->modified_index = idx;
    }
    kv_set_expiry(kv, k, c->expire_ms);
    ev_set_node(kv, ev, k, idx);
    ev->refresh = c->refresh;
    kv->index = idx;
    emit_one(emit, arg, ev);
    return 0;
}

/* Remove k and its subtree with one event named key (the key as the command spelled it; NULL: k's
 * own). 0, or -1 on ENOMEM with nothing changed. */
static int remove_node(struct kv *kv, struct kv_node *k, enum kv_action action, const char *key,
                       uint32_t key_len, kv_emit_fn emit, void *arg)
{
    uint64_t idx = kv->index + 1;
    char buf[512];
    size_t own_len;
    const char *own = key ? key : kv_node_key(k, buf, sizeof(buf), &own_len);
    if (!own)
        return -1;
    struct kv_event *ev = kv_event_new(action, idx, own, key ? key_len : (uint32_t)own_len, NULL, 0,
                                       kv_node_value(k), kv_node_value_len(k));
    if (own != key && own != buf)
        free((char *)own);
    if (!ev)
        return -1;
    kv_ev_set_prev(kv, ev, k);
    ev->node.dir = k->dir;
    ev->node.modified_index = idx;
    ev->node.created_index = k->created_index;
    kv_subtree_free(kv, k);
    kv->index = idx;
    emit_one(emit, arg, ev);
    return 0;
}

/* DELETE and CAD. */
static int do_delete(struct kv *kv, const struct kv_cmd *c, kv_emit_fn emit, void *arg, struct kv_error *err)
{
    int rc = 0;
    bool cad = c->type == KV_CMD_CAD;
    if (!cad && kv_is_root(c->key, c->key_len))
        return kv_set_err(err, KV_EROOTRONLY, kv->index, "/");
    struct kv_node *k = existing(kv, c, err, &rc);
    if (!k)
        return rc;
    if (cad) {
        if (k->dir)
            return kv_set_err(err, KV_ENOTFILE, kv->index, "%.*s", (int)c->key_len, c->key);
        if ((rc = compare(kv, c, k, err)) != 0)
            return rc;
    } else if (k->dir && (!(c->dir || c->recursive) || (k->u_.first && !c->recursive))) {
        char buf[512];
        size_t len;
        const char *key = kv_node_key(k, buf, sizeof(buf), &len);
        if (!key)
            return enomem(kv, err);
        rc = kv_set_err(err, !(c->dir || c->recursive) ? KV_ENOTFILE : KV_EDIRNOTEMPTY, kv->index, "%s", key);
        if (key != buf)
            free((char *)key);
        return rc;
    }
    if (remove_node(kv, k, cad ? KV_ACT_CAD : KV_ACT_DELETE, c->key, c->key_len, emit, arg) != 0)
        return enomem(kv, err);
    return 0;
}

static int do_sweep(struct kv *kv, const struct kv_cmd *c, kv_emit_fn emit, void *arg, struct kv_error *err)
{
    uint32_t max = c->sweep_max ? c->sweep_max : KV_SWEEP_DEFAULT, done = 0;
    struct kv_node *k;
    int64_t t;
    while (done < max && (k = kv_ttl_top(kv, &t)) && t <= c->now_ms) {
        if (remove_node(kv, k, KV_ACT_EXPIRE, NULL, 0, emit, arg) != 0)
            return done ? 0 : enomem(kv, err);
        done++;
    }
    if (c->token_ttl_ms <= 0)
        return 0;
    while (done < max && (k = kv_token_top(kv))) {
        int64_t due;
        if (__builtin_add_overflow(k->created_ms, c->token_ttl_ms, &due) || due > c->now_ms)
            break;
        if (remove_node(kv, k, KV_ACT_DELETE, NULL, 0, emit, arg) != 0)
            return done ? 0 : enomem(kv, err);
        done++;
    }
    return 0;
}

int kv_apply(struct kv *kv, const uint8_t *cmd, size_t len, kv_emit_fn emit, void *arg, struct kv_error *err)
{
    struct kv_cmd c;
    if (kv_cmd_decode(cmd, len, &c) != 0)
        return kv_set_err(err, KV_ERAFT, kv->index, "malformed command");
    int rc = c.type != KV_CMD_SWEEP ? check_token(kv, &c, err) : 0;
    if (rc == 0 && c.type != KV_CMD_SWEEP)
        rc = check_config(kv, &c, err);
    if (rc != 0)
        return rc;
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
    return kv_set_err(err, KV_ERAFT, kv->index, "malformed command");
}
