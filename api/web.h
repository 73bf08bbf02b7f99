/* api/web.h — the web pages of SPEC §1 for browsers: the home page (/), the live token page
 * (/<token>) and their assets (/static/<file>), all built from web/ (embedded at build time).
 *
 * Private to api/; the dispatcher (api.c) and /new (new.c) call in. A request gets HTML only
 * when its Accept header names text/html, so curl (Accept: * / *) keeps the plain answers byte
 * for byte. Every answer from here carries a strict Content-Security-Policy, nosniff and
 * caching headers; every client-supplied value is HTML-escaped. HTTP threads only, except the
 * pure helpers at the end (any thread).
 */
#ifndef DISCOVERYD_API_WEB_H
#define DISCOVERYD_API_WEB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <h2o.h>
#include "api/api.h"
#include "api/json.h"
#include "api/route.h"
#include "web/web_files.h"

/* Does the request accept text/html (any Accept header naming it)? */
bool api_web_wants_html(h2o_req_t *req);

/* /: the home page for a browser's GET/HEAD. false (nothing sent) when req is not for it. */
bool api_web_home(struct api_thread *t, h2o_req_t *req);
/* /<token> (short form, no sub-key, no query): the token page for a browser's GET/HEAD (404
 * with the page's "not found" state when no such token exists). false (nothing sent) when req
 * is not for it: then it is a v2 keys request like any other. */
bool api_web_token_page(struct api_thread *t, h2o_req_t *req, const struct api_route *r);
/* /static/<file>: an embedded asset with ETag / If-None-Match (304) and Cache-Control. */
void api_web_static(struct api_thread *t, h2o_req_t *req, const struct api_route *r);
/* /new's success answer to a browser (the form without JavaScript): 303 to /<token>. */
void api_web_new_redirect(struct api_thread *t, h2o_req_t *req, const char *token, size_t token_len);

/* ---- pure helpers (exposed for the unit tests) ---- */

/* An Accept header value that names text/html (case-insensitive, parameters ignored). */
bool api_web_accepts_html(const char *accept, size_t len);
/* s[0..n) with & < > " ' as character references: safe in text and in quoted attributes. */
void api_html_escape(struct api_buf *b, const char *s, size_t n);
/* An If-None-Match value that matches etag ("*", or a list holding it, weak or strong). */
bool api_web_etag_match(const char *inm, size_t len, const char *etag);
/* The embedded file named name[0..len), or NULL. */
const struct web_file *api_web_file(const char *name, size_t len);
/* "/static/<name>?v=<etag hex>" into b (the URL a page links an asset by). */
void api_web_asset_url(struct api_buf *b, const struct web_file *f);

/* Templates: text with {{name}} placeholders. fill() writes the value of name[0..len) into b
 * (escaping it itself) and returns false for a name it does not know. {{asset:<file>}} is
 * handled here (api_web_asset_url). 0, or -1 with *bad set to the unknown placeholder. */
typedef bool (*api_web_fill_fn)(void *arg, struct api_buf *b, const char *name, size_t len);
int api_web_render(struct api_buf *b, const char *tpl, size_t len, api_web_fill_fn fill, void *arg,
                   const char **bad);
/* "2026-11-30 23:59:01 UTC" for the text and "2026-11-30T23:59:01Z" for datetime=. */
void api_web_time_text(struct api_buf *b, int64_t unix_ms);
void api_web_time_attr(struct api_buf *b, int64_t unix_ms);

/* ---- shared by web.c and web_token.c ---- */

/* Security and caching headers of every web answer; cache is the Cache-Control value. */
void api_web_headers(h2o_req_t *req, const char *cache);
/* Render the embedded template file and send it as HTML with status (500 on a template bug; 400
 * when the Host header the page would show is not valid: request.h api_base_url). */
void api_web_send_page(struct api_thread *t, h2o_req_t *req, enum api_route_kind route, int status,
                       const char *file, const char *cache, api_web_fill_fn fill, void *arg);

#endif
