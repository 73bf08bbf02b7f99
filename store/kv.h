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
};
/* etcd's message text for a code ("Key not found", ...). */
const char *kv_err_message(int code);
/* The HTTP status etcd answers with for a code (404, 412, 403, 400, 500; 429 for 1001). */
int kv_err_http_status(int code);

struct kv_error {
    int code;       /* enum kv_errcode; 0 = none */
    uint64_t index; /* the store index when the error happened */
    char *cause;    /* malloc'd, may be NULL; kv_error_clear() frees it */
};
void kv_error_clear(struct kv_error *e);

/* A node of the tree. Read-only outside kv.c; valid while the reader holds node_rdlock(). */
struct kv_node {
    char *key;              /* full path, NUL-terminated: "/discovery/T/6c00..." ("/" for the root) */
    uint32_t key_len;
    const char *name;       /* the last component, points into key */
    struct kv_node *parent; /* NULL for the root */
    bool dir;
    char *value;            /* NUL-terminated copy; NULL for dirs */
    uint32_t value_len;
    uint64_t created_index;
    uint64_t modified_index;
    int64_t expire_ms;      /* absolute Unix ms at which a TTL expires it; 0 = permanent */
    int64_t created_ms;     /* the proposer's clock when it was created (token creation time) */
    /* children of a dir, in creation order (oldest first); lookup by name is O(1) average
     * through a private index. nchildren counts all; nvisible those not hidden. */
    struct kv_node *first_child, *last_child, *next_sibling, *prev_sibling;
    uint32_t nchildren, nvisible;
    void *priv;             /* kv.c's private per-node data (child index, heap slot, ...) */
};
/* A name starting with '_' is hidden from listings and from live recursive watches. */
static inline bool kv_node_hidden(const struct kv_node *n) { return n->name[0] == '_'; }

/* A node as an event carries it: a flat, owned copy (no children). */
struct kv_enode {
    char *key;
    char *value;       /* NULL for dirs and for the node of delete/expire/compareAndDelete events */
    uint32_t value_len;
    bool dir;
    int64_t expire_ms; /* 0 = none */
    uint64_t modified_index;
    uint64_t created_index;
};

/* One applied mutation. Immutable once emitted; shared by the watch history, parked watchers and
 * the HTTP thread answering the proposer, so it is reference counted (atomically). */
struct kv_event {
    enum kv_action action;
    uint64_t index;        /* the store index this event produced (== node.modified_index) */
    struct kv_enode node;
    bool has_prev;
    struct kv_enode prev;
    bool refresh;          /* a TTL refresh: notifies no watcher, skipped by history scans */
    int refs;              /* use kv_event_ref/unref */
};
struct kv_event *kv_event_ref(struct kv_event *ev);
void kv_event_unref(struct kv_event *ev);

/* ---- commands ---- */

enum kv_cmd_type {
    KV_CMD_SET = 1,  /* PUT plain: create or replace a file; dir=true makes a dir. As etcd's Set: an existing dir is
                        never replaced (102, with or without dir=true); a replaced file becomes a new node, so
                        createdIndex moves too (etcd v2 api.md shows the same) */
    KV_CMD_CREATE,   /* PUT prevExist=false: 105 if the key exists */
    KV_CMD_UPDATE,   /* PUT prevExist=true without prevValue/prevIndex: 100 if missing */
    KV_CMD_CAS,      /* PUT with prevValue and/or prevIndex (prevExist absent or true) */
    KV_CMD_DELETE,   /* DELETE [dir] [recursive] */
    KV_CMD_CAD,      /* DELETE with prevValue and/or prevIndex (files only) */
    KV_CMD_POST,     /* POST: create child "%020llu" of index+1 under key (a dir, made if missing) */
    KV_CMD_SWEEP,    /* expire TTL nodes with expire_ms <= now_ms ("expire" events), then delete token
                        dirs directly under /discovery created at or before now_ms - token_ttl_ms
                        (recursive "delete" events), at most sweep_max events in all */
};

struct kv_cmd {
    enum kv_cmd_type type;
    int64_t now_ms;           /* proposer's clock (Unix ms): created_ms of new nodes, sweep time */
    const char *key;          /* absolute, clean path ("/discovery/T/x"); not NUL-terminated */
    uint32_t key_len;
    const char *value;        /* may be NULL (== "") */
    uint32_t value_len;
    bool dir;                 /* SET/CREATE/UPDATE/CAS/POST: the node is a dir; DELETE: dir=true */
    bool recursive;           /* DELETE: recursive (implies dir) */
    bool refresh;             /* SET/UPDATE/CAS: TTL refresh only (value unchanged, no watcher woken) */
    int64_t expire_ms;        /* absolute expiry (now_ms + ttl*1000), 0 = permanent (also removes a TTL) */
    bool has_prev_value;
    const char *prev_value;
    uint32_t prev_value_len;
    uint64_t prev_index;      /* 0 = not given */
    uint32_t max_children;    /* SET/CREATE/POST of a new child: KV_ETOOMANYCHILDREN if its parent already
                                 has this many visible children (0 = no cap). Checked here so that racing
                                 registrations are decided in log order. */
    int64_t token_ttl_ms;     /* SWEEP: token lifetime (0 = tokens never expire) */
    uint32_t sweep_max;       /* SWEEP: bound on events per command (0 = 1024) */
};

/* Serialise a command: versioned, length-checked binary. *out is malloc'd. 0 or -1 (ENOMEM). */
int kv_cmd_encode(const struct kv_cmd *c, uint8_t **out, size_t *out_len);
/* Parse bytes from kv_cmd_encode(). The string pointers of *c point into buf.
 * Returns 0, or -1 for anything malformed (bad version, truncation, lengths past the end, bad type). */
int kv_cmd_decode(const uint8_t *buf, size_t len, struct kv_cmd *c);
/* Allocation-free variant for a reused buffer: writes the encoding into buf when it fits in cap and
 * returns its length; returns the needed length (> cap) and writes nothing when it does not. */
size_t kv_cmd_encoded_len(const struct kv_cmd *c);
size_t kv_cmd_encode_to(const struct kv_cmd *c, uint8_t *buf, size_t cap);

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

/* Earliest Unix ms at which a SWEEP would do something (TTL or token expiry), or INT64_MAX. */
int64_t kv_next_due(const struct kv *kv, int64_t token_ttl_ms);

/* Counts for /metrics: live tokens (dirs under /discovery) and nodes in the tree. */
uint64_t kv_ntokens(const struct kv *kv);
uint64_t kv_nnodes(const struct kv *kv);

#endif
