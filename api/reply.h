/* api/reply.h — responses: every answer the api sends goes through these (HTTP threads, on the
 * thread that owns the request). They count each answer by route and status for /metrics.
 */
#ifndef DISCOVERYD_API_REPLY_H
#define DISCOVERYD_API_REPLY_H

#include "api/api_int.h"
#include "api/json.h"
#include "api/keys.h"

/* Send a complete response: status, Content-Type, Content-Length and body (none for HEAD). */
void api_send(struct api_thread *t, h2o_req_t *req, enum api_route_kind route, int status,
              const char *content_type, const char *body, size_t len);
/* Send a rendered buffer (copied into the request pool, then freed); a buffer that ran out of
 * memory while rendering becomes a 500 instead. */
void api_send_buf(struct api_thread *t, h2o_req_t *req, enum api_route_kind route, int status,
                  const char *content_type, struct api_buf *b);
/* One-line text/plain answer (the line gets its "\n"). */
void api_send_text(struct api_thread *t, h2o_req_t *req, enum api_route_kind route, int status,
                   const char *line);
void api_send_405(struct api_thread *t, h2o_req_t *req, enum api_route_kind route, const char *allow);
/* A response header's name as a static h2o token, spelled as it goes on the wire (the server speaks
 * HTTP/1 only, where h2o writes a name as given), so adding it copies nothing but the value:
 *   static const h2o_token_t H_LINK = API_HEADER_NAME("Link");  */
#define API_HEADER_NAME(s) {.buf = {(char *)(s), sizeof(s) - 1}}
/* Add a header (the value is copied into the request's pool). */
void api_header(h2o_req_t *req, const h2o_token_t *name, const char *value, size_t len);
void api_header_u64(h2o_req_t *req, const h2o_token_t *name, uint64_t v);

/* X-Etcd-Index, X-Etcd-Cluster-Id, and (raft) X-Raft-Index/Term: the given values, or with both 0
 * the node's last applied entry now. */
void api_etcd_headers(struct api_thread *t, h2o_req_t *req, uint64_t etcd_index, bool raft,
                      uint64_t raft_index, uint64_t raft_term);
/* X-Discovery-Size/Full from a token's facts; nothing when tok is NULL or the size is unknown. */
void api_discovery_headers(h2o_req_t *req, const struct kv_token_info *tok);
/* A token's facts from the applied state now (takes node_rdlock; do not hold it). */
void api_token_lookup(struct api_thread *t, const char *token, size_t token_len, struct kv_token_info *out);
/* Send an etcd-shaped JSON error (no X-Raft-*), with X-Discovery-* from tok (may be NULL). */
void api_send_keys_error(struct api_thread *t, h2o_req_t *req, enum api_route_kind route, int code,
                         const char *cause, uint64_t index, const struct kv_token_info *tok);

#endif
