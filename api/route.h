/* api/route.h — request path → route (pure).
 *
 * The path is percent-decoded component by component; a path with "." or "..", an empty
 * component ("//"), an encoded '/' (%2F), a NUL, bad percent-encoding or non-UTF-8 is refused
 * as a whole (400) before any route is chosen. One trailing '/' is accepted and ignored, as
 * etcd's path.Clean does for keys.
 */
#ifndef DISCOVERYD_API_ROUTE_H
#define DISCOVERYD_API_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "api/form.h"

enum api_route_kind {
    API_ROUTE_NOT_FOUND = 0, /* 404 text/plain */
    API_ROUTE_BAD_PATH,      /* 400 text/plain, reason set */
    API_ROUTE_HOME,          /* / */
    API_ROUTE_NEW,           /* /new */
    API_ROUTE_HEALTH,        /* /health */
    API_ROUTE_METRICS,       /* /metrics */
    API_ROUTE_ROBOTS,        /* /robots.txt */
    API_ROUTE_STATUS,        /* /status/<token> (token set) */
    API_ROUTE_KEYS,          /* /<token>[/rest] or /v2/keys/discovery/<token>[/rest] (token, key set) */
    API_ROUTE_FORBIDDEN,     /* /v2/keys/<anything else>: 403 JSON */
    API_ROUTE_STATIC,        /* /static/<file>: a web asset (token = the file name) */
    API_ROUTE_PAGE,          /* never routed: a KEYS GET answered with the token page (metrics label) */
    API_ROUTE_MEMBERS,       /* /v2/members[/<id>] (token = the id, if any) */
    API_ROUTE_COUNT
};
/* Short name for logs and /metrics labels ("keys", "new", ...). */
const char *api_route_name(enum api_route_kind k);

struct api_route {
    enum api_route_kind kind;
    bool short_form;   /* KEYS: reached through /<token> */
    const char *token; /* STATUS, KEYS: decoded token name (points into key for KEYS); STATIC: file */
    uint32_t token_len;
    const char *key; /* KEYS: the store key "/discovery/<token>[/rest]", decoded, NUL-terminated */
    uint32_t key_len;
    uint32_t longest;   /* KEYS: longest component below the token (for the key-size cap) */
    const char *reason; /* BAD_PATH: one line, no newline */
};

/* Route path[0..len) (the request path without the query). 0, or -2 on ENOMEM. */
int api_route(struct api_route *r, const char *path, size_t len, api_alloc_fn alloc, void *actx);

#endif
