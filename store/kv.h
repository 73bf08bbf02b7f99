/* store/kv.h — the etcd v2 key tree as a deterministic state machine.
 *
 * Owner: the store thread (store/node.c) is the only writer. HTTP threads read the tree
 * concurrently while holding node_rdlock(); nothing here locks by itself.
 * kv_apply() is the only mutator: one serialised command in, zero or more events out.
 * It reads no clock and no randomness: every time it needs arrives inside the command,
 * chosen by the proposer. The same command sequence yields the same tree on every node,
 * which is what lets Raft (store/raft/) drive it later without api/ changing.
 */
#ifndef DISCOVERYD_STORE_KV_H
#define DISCOVERYD_STORE_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "store/kv_cmd.h"

/* The namespace discoveryd serves. Created at index 1 by kv_new(), so the first
 * registration of any token gets createdIndex >= 2 (a client seeing 1 would hang). */
#define KV_DISCOVERY_DIR "/discovery"

enum kv_action {
    KV_ACT_GET,
    KV_ACT_SET,
    KV_ACT_CREATE,
    KV_ACT_UPDATE,
    KV_ACT_DELETE,
    KV_ACT_CAS,    /* "compareAndSwap" */
    KV_ACT_CAD,    /* "compareAndDelete" */
    KV_ACT_EXPIRE,
};
/* The action as etcd writes it on the wire ("compareAndSwap", ...). */
const char *kv_action_name(enum kv_action a);

/* etcd v2 error codes (etcdserver/api/v2error), plus discoveryd's own above 1000. */
enum kv_errcode {
    KV_OK = 0,
    KV_ENOTFOUND = 100,     /* 404 Key not found; cause = first missing path component */
    KV_ETESTFAILED = 101,   /* 412 Compare failed; cause "[a != b]" / "[1 != 2]" / both */
    KV_ENOTFILE = 102,      /* 403 Not a file */
    KV_ENOTDIR = 104,       /* 400 Not a directory */
    KV_EEXISTS = 105,       /* 412 Key already exists */
    KV_EROOTRONLY = 107,    /* 400 Root is read only */
    KV_EDIRNOTEMPTY = 108,  /* 403 Directory not empty */
    KV_EPREVVALUE = 201,    /* 400 PrevValue is Required in POST form */
    KV_ETTLNAN = 202,       /* 400 The given TTL in POST form is not a number */
    KV_EINDEXNAN = 203,     /* 400 The given index in POST form is not a number */
    KV_EINVALIDFIELD = 209, /* 400 Invalid field */
    KV_EINVALIDFORM = 210,  /* 400 Invalid POST form */
    KV_EREFRESHVALUE = 211, /* 400 Value provided on refresh */
    KV_EREFRESHTTL = 212,   /* 400 A TTL must be provided on refresh */
    KV_ERAFT = 300,         /* 500 Raft Internal Error */
    KV_ELEADERELECT = 301,  /* 500 During Leader Election */
    KV_EWATCHERCLEARED = 400,
    KV_EEVENTCLEARED = 401, /* 400 (sic) The event in requested index is outdated and cleared */
    KV_ETOOMANYCHILDREN = 1001, /* discoveryd: token already holds max_children members (429) */
    KV_ECONFIGLOCKED = 1002,    /* discoveryd: a token's _config is immutable once created (403) */
};
/* etcd's message text for a code ("Key not found", ...). */
const char *kv_err_message(int code);

struct kv_error {
    int code;       /* enum kv_errcode; 0 = none */
    uint64_t index; /* the store index when the error happened */
    char *cause;    /* malloc'd, may be NULL; kv_error_clear() frees it */
};
void kv_error_clear(struct kv_error *e);

/* A node of the tree. Read-only outside the tree's files (store/kv_*.c); valid while the reader
 * holds node_rdlock(). One block holds the struct, the node's name (its last path component,
 * NUL-terminated) and, for a file created with a value, that value: a node costs its own bytes and
 * its name, never its full key (an empty token's three nodes used to repeat "/discovery/<token>"
 * three times). The full key is rebuilt from the parents with kv_node_key(); the value, the
 * children and a TTL are read with the accessors below (a dir has no value and a file no children,
 * so they share their room, and an expiry is a record of the tree's, which only nodes with a TTL
 * pay for: kv_node_expire_ms()). Fields ending in '_' are the tree's own. Fields are ordered so
 * that the struct has no holes (a node's size counts a million times: 70 bytes + its name). */
struct kv_node {
    struct kv_node *parent;        /* NULL for the root */
    struct kv_node *next_sibling;  /* children of a dir, in creation order (oldest first) */
    struct kv_node *prev_sibling_; /* the tree's own (the first child's points at the last one) */
    uint64_t created_index;
    uint64_t modified_index;
    int64_t created_ms; /* the proposer's clock when it was created (token creation time) */
    union {
        char *value;           /* a file's NUL-terminated value */
        struct kv_node *first; /* a dir's oldest child */
    } u_;                      /* the tree's own: kv_node_value(), kv_node_first() */
    union {
        uint32_t value_len; /* a file's */
        uint32_t nvisible;  /* a dir's children not hidden */
    } c_;                   /* the tree's own: kv_node_value_len(), kv_node_nvisible() */
    uint32_t tok_slot_; /* the tree's own: position in its token heap + 1; 0 = not there */
    uint16_t name_len;  /* at most KV_NAME_MAX */
    bool dir;
    uint8_t created_action; /* enum kv_action of the event that created it (set or create); the watch
                               hub rebuilds a token's creation event from it (0: unknown, restored) */
    uint8_t alloc_words_;   /* the tree's own: the size class of the node's block (kv_slab.h) */
    uint8_t flags_;         /* the tree's own: KN_TTL, KN_KIDS_INDEXED (kv_int.h) */
    char name[];            /* "" for the root */
};
/* A name starting with '_' is hidden from listings and from live recursive watches. */
static inline bool kv_node_hidden(const struct kv_node *n) { return n->name[0] == '_'; }
/* A file's value (NUL-terminated) and its length; NULL and 0 for a dir. */
static inline const char *kv_node_value(const struct kv_node *n) { return n->dir ? NULL : n->u_.value; }
static inline uint32_t kv_node_value_len(const struct kv_node *n) { return n->dir ? 0 : n->c_.value_len; }
/* A dir's oldest child (walk on with ->next_sibling) and its count of visible children; NULL and 0
 * for a file. Lookup by name is O(1) average (a private index, or a few siblings compared). */
static inline const struct kv_node *kv_node_first(const struct kv_node *n) { return n->dir ? n->u_.first : NULL; }
static inline uint32_t kv_node_nvisible(const struct kv_node *n) { return n->dir ? n->c_.nvisible : 0; }
/* The node's full key ("/discovery/T/6c00...", "/" for the root): in buf when it fits in cap bytes
 * with its NUL, else in a malloc'd block (free it when the result is not buf); its length in *len.
 * NULL on ENOMEM. */
const char *kv_node_key(const struct kv_node *n, char *buf, size_t cap, size_t *len);
/* Its key's length, without building it. */
size_t kv_node_key_len(const struct kv_node *n);

/* A node as an event carries it: a flat, owned copy (no children). */
struct kv_enode {
    char *key;
    char *value;       /* NULL for dirs and for the node of delete/expire/compareAndDelete events */
    int64_t expire_ms; /* 0 = none */
    uint64_t modified_index;
    uint64_t created_index;
    uint32_t value_len;
    bool dir;
};

/* One applied mutation. Immutable once emitted; shared by the watch history, parked watchers and
 * the HTTP thread answering the proposer, so it is reference counted (atomically). */
struct kv_event {
    uint64_t index;        /* the store index this event produced (== node.modified_index) */
    struct kv_enode node;
    struct kv_enode prev;
    enum kv_action action;
    int refs;              /* use kv_event_ref/unref */
    bool has_prev;
    bool refresh;          /* a TTL refresh: notifies no watcher, skipped by history scans */
};
/* One block holding the event, its key (shared by node and prev) and both values (NULL: none);
 * refs = 1, everything else zero for the caller to fill. NULL on ENOMEM. kv_apply and the snapshot
 * loader make events this way. */
struct kv_event *kv_event_new(enum kv_action action, uint64_t index, const char *key, uint32_t key_len,
                              const char *val, uint32_t val_len, const char *pval, uint32_t pval_len);
struct kv_event *kv_event_ref(struct kv_event *ev);
void kv_event_unref(struct kv_event *ev);

/* ---- the state machine ---- */

struct kv;
struct kv *kv_new(void); /* root "/" and the dir "/discovery" at index 1; NULL on ENOMEM */
void kv_free(struct kv *kv);

/* Called for each event kv_apply produces, in index order. The callee may take a reference. */
typedef void (*kv_emit_fn)(void *arg, struct kv_event *ev);

/* Apply one serialised command. Returns 0 and emits its events (exactly one for all but SWEEP,
 * which emits zero or more), or returns the etcd error code, fills *err (index = current index)
 * and changes nothing. A malformed command is KV_ERAFT. Never reads a clock. */
int kv_apply(struct kv *kv, const uint8_t *cmd, size_t len, kv_emit_fn emit, void *arg, struct kv_error *err);

/* The global index: +1 per successful mutation (each expired/deleted node of a SWEEP counts one). */
uint64_t kv_index(const struct kv *kv);

/* Look a node up by absolute path. NULL if missing. */
const struct kv_node *kv_lookup(const struct kv *kv, const char *key, size_t key_len);
/* GET semantics: 0 and *out, or KV_ENOTFOUND with cause = the first missing component
 * ("/discovery/T" for /discovery/T/_config/size when T is missing). */
int kv_get(const struct kv *kv, const char *key, size_t key_len, const struct kv_node **out, struct kv_error *err);

/* ---- discovery tokens: the dirs directly under /discovery ---- */

/* A size as _config/size holds it: decimal digits only, 1..UINT32_MAX. 0, or -1 if malformed. */
int kv_parse_size(const char *s, size_t len, uint32_t *out);
/* The size a dir's own _config/size child holds (kv_parse_size), or 0 when it has none or it is
 * malformed. */
uint32_t kv_dir_size(const struct kv *kv, const struct kv_node *dir);
/* The token dir /discovery/<token>, or NULL (missing, or a file). */
const struct kv_node *kv_token_dir(const struct kv *kv, const char *token, size_t token_len);
/* A token as the api shows it (X-Discovery-Size/Full, /status). */
struct kv_token_info {
    bool exists;        /* the token dir exists */
    uint32_t size;      /* its _config/size; 0 = none or malformed */
    uint32_t members;   /* visible children: registered members, surplus included */
    int64_t created_ms; /* when the token dir was created (the proposer's clock) */
};
void kv_token_info(const struct kv *kv, const char *token, size_t token_len, struct kv_token_info *out);
/* The token a key lies in ("/discovery/T" or below): true and the name, else false. */
bool kv_key_token(const char *key, size_t len, const char **token, size_t *token_len);

/* Earliest Unix ms at which a SWEEP would do something (TTL or token expiry), or INT64_MAX. */
int64_t kv_next_due(const struct kv *kv, int64_t token_ttl_ms);
/* The absolute Unix ms at which n's TTL expires it (0 = permanent). It lives out of the node, so it
 * is read through the tree. */
int64_t kv_node_expire_ms(const struct kv *kv, const struct kv_node *n);

/* ---- snapshots (kv_image.c) ---- */

/* A node as a snapshot carries it. */
struct kv_image {
    const char *key;    /* full path, NUL-terminated */
    const char *value;  /* a file's (NULL: ""); ignored for dirs */
    uint64_t created_index;
    uint64_t modified_index;
    int64_t created_ms; /* the proposer's clock when it was created */
    int64_t expire_ms;  /* 0 = permanent */
    uint32_t key_len;
    uint32_t value_len;
    bool dir;
};
/* Call fn for every node but the root, parents before children, siblings in creation order; a
 * non-zero return stops the walk and is returned (-1 also on ENOMEM). Only reads. */
int kv_dump(const struct kv *kv, int (*fn)(void *arg, const struct kv_image *img), void *arg);
/* Rebuild one node from a kv_dump of another tree, in dump order, into a tree fresh from kv_new().
 * 0, or -1 when img does not follow (parent missing, key twice, bad key) or on ENOMEM. */
int kv_restore_node(struct kv *kv, const struct kv_image *img);
/* The global index of the restored tree. */
void kv_restore_index(struct kv *kv, uint64_t index);

/* Counts for /metrics: live tokens (dirs under /discovery) and nodes in the tree. */
uint64_t kv_ntokens(const struct kv *kv);
uint64_t kv_nnodes(const struct kv *kv);

#endif
