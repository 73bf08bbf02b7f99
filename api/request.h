/* api/request.h — what a handler asks of a request before acting on it: the decoded form, the
 * client's address key (socket peer, or what service/'s client_addr hook says) and the rate-limit
 * decisions (cfg.rate). HTTP threads; nothing here blocks.
 */
#ifndef DISCOVERYD_API_REQUEST_H
#define DISCOVERYD_API_REQUEST_H

#include "api/api_int.h"
#include "api/form.h"

/* The decoded query string and, for PUT/POST/PATCH with a urlencoded body, the body.
 * 0; -1 with f->err; -2 ENOMEM. */
int api_request_form(h2o_req_t *req, struct api_form *f);

/* The client's address key (IPv6 or IPv4-mapped), masked to prefix4/prefix6 bits. 0 or -1. */
int api_client_key(struct api_thread *t, h2o_req_t *req, unsigned prefix4, unsigned prefix6, uint8_t out[16]);
/* Ask cfg.rate; true when allowed (or no limiter), else *retry_after. */
bool api_rate_allow(struct api_thread *t, enum api_rl_class cls, const void *key, size_t len,
                    uint32_t *retry_after);
/* /new's two creation buckets (address, then range). 0 allowed; else 429 already sent (JSON with
 * the keys headers when json, else one line of text). */
int api_rate_new(struct api_thread *t, h2o_req_t *req, enum api_route_kind route, bool json,
                 const char *token, size_t token_len);

#endif
