/* api/request.h — what a handler asks of a request before acting on it: the decoded form, the
 * client's address key (socket peer, or what service/'s client_addr hook says) and the buckets
 * and refusals of the rate limits (the asking itself: handoff.h). HTTP threads; nothing blocks.
 */
#ifndef DISCOVERYD_API_REQUEST_H
#define DISCOVERYD_API_REQUEST_H

#include "api/api_int.h"
#include "api/form.h"
#include "api/handoff.h"
#include "api/json.h"

/* The decoded query string and, for PUT/POST/PATCH with a urlencoded body, the body.
 * 0; -1 with f->err; -2 ENOMEM. */
int api_request_form(h2o_req_t *req, struct api_form *f);

/* The client's address key (IPv6 or IPv4-mapped), masked to prefix4/prefix6 bits. 0 or -1. */
int api_client_key(struct api_thread *t, h2o_req_t *req, unsigned prefix4, unsigned prefix6, uint8_t out[16]);
/* Add /new's two creation buckets of req's client (address, then range) to op's rate check
 * (handoff.h); a client whose address is unknown is not limited. */
void api_rate_add_new(struct api_op *op, h2o_req_t *req);
/* The 429 of a refused rate check: Retry-After and one line naming the limit; JSON with the keys
 * headers on the keys route, else text. */
void api_rate_refuse(struct api_op *op, h2o_req_t *req, int refused, uint32_t retry_after);
/* In a rate-check callback: true when the op is done with (refused: 429 sent; or its request is
 * gone) and freed; false when it was allowed and the caller goes on to submit it. */
bool api_rate_settled(struct api_op *op, int refused, uint32_t retry_after);

/* The --max-tokens cap, asked before a token is created (by /new or by hand on the keys route):
 * false when there is room; true after answering 503 + Retry-After with one line (JSON on the keys
 * route). The count is the applied state's, so creations in flight may pass it by a few. Logged
 * once each way (full, room again) and counted for /metrics. */
bool api_tokens_at_cap(struct api_thread *t, h2o_req_t *req, enum api_route_kind route);

/* RFC 3986 host[:port] as a Host header may carry it: a bracketed IPv6 address, or a name of
 * unreserved characters (letters, digits, "-", ".", "_", "~": a reg-name without its
 * percent-encoding and sub-delims, which no DNS name or IPv4 address needs and which would need
 * escaping wherever the URL is printed), then an optional ":" and port 0-65535. Pure. */
bool api_host_valid(const char *s, size_t n);
/* The base URL of this service as a client should see it: --public-url, else the listener's
 * scheme ("http://", "https://") + the request's Host. Appends it to b and returns 0; -1 with a
 * one-line reason in *why (why may be NULL; nothing appended) when the Host is missing or not a valid
 * host[:port]. The one source of the URL /new prints and the web pages show. */
int api_base_url(struct api_thread *t, h2o_req_t *req, struct api_buf *b, const char **why);

#endif
