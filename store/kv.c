/* store/kv.c — the vocabulary of the tree's contract (kv.h): etcd's action names and error
 * messages, kv_error, and the reference-counted events kv_apply emits. It calls nothing else in the
 * store, so every other kv file may build on it. Any thread. (HTTP statuses are the api's business.)
 */
#define _GNU_SOURCE /* vasprintf */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/kv_int.h"

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
    case 1002:
        return "The token's _config is immutable";
    }
    return "Unknown error";
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

int kv_set_err(struct kv_error *e, int code, uint64_t index, const char *fmt, ...)
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

void *kv_alloc_keyed(size_t head, size_t tail, const char *key, uint32_t key_len, char **keyp)
{
    char *b = malloc(head + (size_t)key_len + 1 + tail);
    if (!b)
        return NULL;
    memset(b, 0, head);
    char *k = b + head;
    memcpy(k, key, key_len);
    k[key_len] = '\0';
    *keyp = k;
    return b;
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
struct kv_event *kv_event_new(enum kv_action action, uint64_t index, const char *key, uint32_t key_len,
                              const char *val, uint32_t val_len, const char *pval, uint32_t pval_len)
{
    char *p;
    struct kv_event *ev = kv_alloc_keyed(
        sizeof(*ev), (val ? (size_t)val_len + 1 : 0) + (pval ? (size_t)pval_len + 1 : 0), key, key_len, &p);
    if (!ev)
        return NULL;
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
void kv_ev_set_prev(const struct kv *kv, struct kv_event *ev, const struct kv_node *n)
{
    ev->has_prev = true;
    ev->prev.dir = n->dir;
    ev->prev.expire_ms = kv_node_expire_ms(kv, n);
    ev->prev.modified_index = n->modified_index;
    ev->prev.created_index = n->created_index;
}
