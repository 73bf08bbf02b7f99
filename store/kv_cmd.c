/* store/kv_cmd.c — the binary codec of kv commands (what Raft will replicate and the WAL store).
 *
 * Format, version 1, all integers little-endian and fixed width:
 *   u8 version(=1) u8 type u8 flags(bit0 dir, bit1 recursive, bit2 refresh, bit3 has_prev_value,
 *   bit4 keep_config, bit5 in_token: added later; readers before them refuse such an entry rather than
 *   misapply it)
 *   i64 now_ms  i64 expire_ms  u64 prev_index  u32 cap_size  u32 cap_surplus  i64 token_ttl_ms  u32 sweep_max
 *   u32 key_len key[key_len]  u32 value_len value[value_len]  u32 prev_value_len prev_value[...]
 * and nothing after. The decoder trusts nothing: every length is checked against what is left,
 * unknown versions/types/flag bits and trailing bytes are refused, and keys must be clean
 * absolute paths (the tree relies on that), so a corrupt log entry is an error, never a crash.
 * (Version 1 gained cap_surplus before any log was ever written to disk, so no reader of the older
 * shape exists.)
 */
#include "store/kv_cmd.h"
#include "store/le.h"

#include <stdlib.h>
#include <string.h>

#define KV_CMD_VERSION 1
#define KV_CMD_FIXED 47u /* bytes before the first string */

enum {
    F_DIR = 1,
    F_RECURSIVE = 2,
    F_REFRESH = 4,
    F_HAS_PREV_VALUE = 8,
    F_KEEP_CONFIG = 16,
    F_IN_TOKEN = 32,
    F_ALL = 63,
};

size_t kv_cmd_encoded_len(const struct kv_cmd *c)
{
    return KV_CMD_FIXED + 12u + (size_t)c->key_len + (c->value ? (size_t)c->value_len : 0) +
           (c->has_prev_value && c->prev_value ? (size_t)c->prev_value_len : 0);
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
    le_put32(p, v);
    return p + 4;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
    le_put64(p, v);
    return p + 8;
}

static uint8_t *put_str(uint8_t *p, const char *s, uint32_t n)
{
    p = put_u32(p, n);
    if (n)
        memcpy(p, s, n);
    return p + n;
}

size_t kv_cmd_encode_to(const struct kv_cmd *c, uint8_t *buf, size_t cap)
{
    size_t need = kv_cmd_encoded_len(c);
    if (cap < need)
        return need;
    uint8_t *p = buf;
    *p++ = KV_CMD_VERSION;
    *p++ = (uint8_t)c->type;
    *p++ = (uint8_t)((c->dir ? F_DIR : 0) | (c->recursive ? F_RECURSIVE : 0) | (c->refresh ? F_REFRESH : 0) |
                     (c->has_prev_value ? F_HAS_PREV_VALUE : 0) | (c->keep_config ? F_KEEP_CONFIG : 0) |
                     (c->in_token ? F_IN_TOKEN : 0));
    p = put_u64(p, (uint64_t)c->now_ms);
    p = put_u64(p, (uint64_t)c->expire_ms);
    p = put_u64(p, c->prev_index);
    p = put_u32(p, c->cap_size);
    p = put_u32(p, c->cap_surplus);
    p = put_u64(p, (uint64_t)c->token_ttl_ms);
    p = put_u32(p, c->sweep_max);
    p = put_str(p, c->key, c->key_len);
    p = put_str(p, c->value, c->value ? c->value_len : 0);
    p = put_str(p, c->prev_value, c->has_prev_value && c->prev_value ? c->prev_value_len : 0);
    return (size_t)(p - buf);
}

int kv_cmd_encode(const struct kv_cmd *c, uint8_t **out, size_t *out_len)
{
    size_t n = kv_cmd_encoded_len(c);
    uint8_t *b = malloc(n);
    if (!b)
        return -1;
    *out_len = kv_cmd_encode_to(c, b, n);
    *out = b;
    return 0;
}

/* Read one length-prefixed string at *off; -1 if it runs past len. */
static int get_str(const uint8_t *buf, size_t len, size_t *off, const char **s, uint32_t *n)
{
    if (len - *off < 4)
        return -1;
    uint32_t l = le_get32(buf + *off);
    *off += 4;
    if (len - *off < l)
        return -1;
    *s = (const char *)buf + *off;
    *n = l;
    *off += l;
    return 0;
}

/* A clean absolute path: "/" or "/a/b" with no empty, "." or ".." component, none longer than
 * KV_NAME_MAX, and no NUL. */
static bool key_is_clean(const char *k, uint32_t n)
{
    if (n == 0 || k[0] != '/')
        return false;
    if (n == 1)
        return true;
    if (k[n - 1] == '/')
        return false;
    uint32_t start = 1;
    for (uint32_t i = 1; i <= n; i++) {
        if (i < n && k[i] == '\0')
            return false;
        if (i == n || k[i] == '/') {
            uint32_t cl = i - start;
            if (cl == 0 || cl > KV_NAME_MAX)
                return false;
            if (cl == 1 && k[start] == '.')
                return false;
            if (cl == 2 && k[start] == '.' && k[start + 1] == '.')
                return false;
            start = i + 1;
        }
    }
    return true;
}

int kv_cmd_peek_type(const uint8_t *buf, size_t len)
{
    return buf && len >= 2 && buf[0] == KV_CMD_VERSION ? buf[1] : 0;
}

int kv_cmd_decode(const uint8_t *buf, size_t len, struct kv_cmd *c)
{
    if (!buf || len < KV_CMD_FIXED)
        return -1;
    if (buf[0] != KV_CMD_VERSION)
        return -1;
    uint8_t type = buf[1], flags = buf[2];
    if (type < KV_CMD_SET || type > KV_CMD_SWEEP)
        return -1;
    if (flags & ~F_ALL)
        return -1;
    struct kv_cmd d;
    memset(&d, 0, sizeof(d));
    d.type = (enum kv_cmd_type)type;
    d.dir = flags & F_DIR;
    d.recursive = flags & F_RECURSIVE;
    d.refresh = flags & F_REFRESH;
    d.has_prev_value = flags & F_HAS_PREV_VALUE;
    d.keep_config = flags & F_KEEP_CONFIG;
    d.in_token = flags & F_IN_TOKEN;
    d.now_ms = (int64_t)le_get64(buf + 3);
    d.expire_ms = (int64_t)le_get64(buf + 11);
    d.prev_index = le_get64(buf + 19);
    d.cap_size = le_get32(buf + 27);
    d.cap_surplus = le_get32(buf + 31);
    d.token_ttl_ms = (int64_t)le_get64(buf + 35);
    d.sweep_max = le_get32(buf + 43);
    size_t off = KV_CMD_FIXED;
    if (get_str(buf, len, &off, &d.key, &d.key_len) != 0 ||
        get_str(buf, len, &off, &d.value, &d.value_len) != 0 ||
        get_str(buf, len, &off, &d.prev_value, &d.prev_value_len) != 0)
        return -1;
    if (off != len)
        return -1;
    if (d.expire_ms < 0 || d.token_ttl_ms < 0)
        return -1;
    if (!d.has_prev_value && d.prev_value_len != 0)
        return -1;
    if (d.type != KV_CMD_SWEEP && !key_is_clean(d.key, d.key_len))
        return -1;
    *c = d;
    return 0;
}
