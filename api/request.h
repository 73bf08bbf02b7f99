/* api/request.h — what a handler asks of a request before acting on it: the decoded form, the
 * client's address key (socket peer, or what service/'s client_addr hook says) and the buckets
 * and refusals of the rate limits (the asking itself: handoff.h). HTTP threads; nothing blocks.
 */
#ifndef DISCOVERYD_API_REQUEST_H
#define DISCOVERYD_API_REQUEST_H

#include "api/api_int.h"
#include "api/form.h"
#include "api/handoff.h"

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

#endif
