/* api/json.h — etcd v2 JSON, byte for byte as Go's encoding/json writes it (pure).
 *
 * Compact output, Go struct field order, omitempty rules of etcd's NodeExtern, json.Encoder
 * string escaping (\u003c \u003e \u0026, U+2028/2029, \u00XX controls except \n \r \t,
 * invalid UTF-8 → \ufffd) and its trailing "\n". Callers hold node_rdlock() while rendering
 * tree nodes.
 */
#ifndef DISCOVERYD_API_JSON_H
#define DISCOVERYD_API_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "store/kv.h"

/* A growable malloc'd byte buffer; after an allocation failure it stays failed (oom) and
 * ignores further writes, so renderers need not check every call. */
struct api_buf {
    char *p;
    size_t len, cap;
    bool oom;
};
void api_buf_free(struct api_buf *b);
void api_buf_put(struct api_buf *b, const void *s, size_t n);
void api_buf_puts(struct api_buf *b, const char *s);
void api_buf_printf(struct api_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A number in decimal, as %llu / %lld would write it (without printf's cost on the GET path);
 * api_fmt_u64 writes it into out (no NUL) and returns its length. */
#define API_U64_DIGITS 20
size_t api_fmt_u64(char out[API_U64_DIGITS], uint64_t v);
void api_buf_u64(struct api_buf *b, uint64_t v);
void api_buf_i64(struct api_buf *b, int64_t v);

/* A JSON string (quotes included). */
void api_json_str(struct api_buf *b, const char *s, size_t n);
/* RFC3339Nano in UTC with trailing fractional zeros trimmed, quoted ("2026-11-20T23:14:31.5Z"). */
void api_json_time(struct api_buf *b, int64_t unix_ms);
/* etcd's TTL: seconds remaining, rounded up (0 when expired exactly; may be negative). */
int64_t api_ttl_seconds(int64_t expire_ms, int64_t now_ms);

/* {"action":…,"node":{…},"prevNode":{…}}\n for an applied or watched event. no_value drops
 * node and prevNode (etcd's noValueOnSuccess). */
void api_json_event(struct api_buf *b, const struct kv_event *ev, int64_t now_ms, bool no_value);
/* {"action":"get","node":{…}}\n for a GET of n: a dir lists its visible children (their own
 * children only when recursive), in creation order or sorted by key. */
void api_json_get(struct api_buf *b, const struct kv *kv, const struct kv_node *n, bool recursive, bool sorted,
                  int64_t now_ms);
/* The same, and *until = the first Unix ms after now_ms at which the same tree would render
 * differently because a TTL's remaining seconds changed (INT64_MAX when no node rendered has a TTL):
 * how long a copy of these bytes stays right if the tree does not change. */
void api_json_get_until(struct api_buf *b, const struct kv *kv, const struct kv_node *n, bool recursive, bool sorted,
                        int64_t now_ms, int64_t *until);
/* {"errorCode":N,"message":"…","cause":"…","index":I}\n; cause omitted when NULL or empty. */
void api_json_error(struct api_buf *b, int code, const char *message, const char *cause, uint64_t index);

#endif
