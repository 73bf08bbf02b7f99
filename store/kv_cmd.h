/* store/kv_cmd.h — the commands of the v2 tree state machine and their binary codec.
 *
 * A command is what Raft replicates and the WAL stores: the proposer (store thread) encodes it,
 * every member decodes and applies it with kv_apply (kv.h). This header depends on nothing else in
 * the store, so the log and its tests can use the codec without the tree.
 */
#ifndef DISCOVERYD_STORE_KV_CMD_H
#define DISCOVERYD_STORE_KV_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* The longest key component a command may name, in bytes (the api allows at most --max-key, 4096;
 * the tree keeps a name's length in 16 bits). */
#define KV_NAME_MAX 65535u

struct kv_cmd {
    enum kv_cmd_type type;
    int64_t now_ms;           /* proposer's clock (Unix ms): created_ms of new nodes, sweep time */
    const char *key;          /* absolute, clean path ("/discovery/T/x", components of at most
                                 KV_NAME_MAX bytes); not NUL-terminated */
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
    uint32_t cap_size;        /* SET/CREATE/POST of a new visible child (a member registration): the
                                 parent holds at most size + cap_surplus visible children, where size is
                                 the parent's own _config/size when it holds a valid size (kv_parse_size)
                                 and cap_size otherwise; else KV_ETOOMANYCHILDREN. 0 = no cap. Resolved
                                 from the tree at apply time, so racing registrations are decided in log
                                 order on every member, never from a proposer's stale view. */
    uint32_t cap_surplus;
    bool keep_config;         /* writes: a token's size is immutable once its _config/size exists: a
                                 write to _config/size (but the same value and expiry again, or a
                                 CREATE: 105 as usual) or a change to the _config dir itself (delete,
                                 TTL) is then KV_ECONFIGLOCKED. Other keys under _config, and deleting
                                 the whole token dir, are left alone. Decided from the tree at apply
                                 time, in log order, like cap_size. */
    bool in_token;            /* writes: the key's token dir must exist already, else KV_ENOTFOUND naming
                                 it; decided from the tree at apply time, so a member that has not yet
                                 applied a new token forwards the write instead of refusing it */
    int64_t token_ttl_ms;     /* SWEEP: token lifetime (0 = tokens never expire) */
    uint32_t sweep_max;       /* SWEEP: bound on events per command (0 = 1024) */
};

/* Serialise a command: versioned, length-checked binary. *out is malloc'd. 0 or -1 (ENOMEM). */
int kv_cmd_encode(const struct kv_cmd *c, uint8_t **out, size_t *out_len);
/* Parse bytes from kv_cmd_encode(). The string pointers of *c point into buf.
 * Returns 0, or -1 for anything malformed (bad version, truncation, lengths past the end, bad type). */
int kv_cmd_decode(const uint8_t *buf, size_t len, struct kv_cmd *c);
/* The type of an encoded command without decoding it (0 if it is not even that long or of an
 * unknown version); kv_apply still validates everything. */
int kv_cmd_peek_type(const uint8_t *buf, size_t len);
/* Allocation-free variant for a reused buffer: writes the encoding into buf when it fits in cap and
 * returns its length; returns the needed length (> cap) and writes nothing when it does not. */
size_t kv_cmd_encoded_len(const struct kv_cmd *c);
size_t kv_cmd_encode_to(const struct kv_cmd *c, uint8_t *buf, size_t cap);

#endif
