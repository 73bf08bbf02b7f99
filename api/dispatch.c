/* api/dispatch.c — api_handle(): route a request (route.h) and hand it to its handler. The top of
 * the api: it calls the handlers, nothing calls back into it. HTTP threads.
 */
#include <stdio.h>

#include "api/handlers.h"
#include "api/reply.h"
#include "api/web.h"

int api_handle(struct api_thread *t, h2o_req_t *req)
{
    if (api_keys_repeat(t, req))
        return 0;
    struct api_route r;
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    if (api_route(&r, req->path.base, plen, api_pool_alloc, &req->pool) != 0) {
        api_send_text(t, req, API_ROUTE_NOT_FOUND, 500, "out of memory");
        return 0;
    }
    switch (r.kind) {
    case API_ROUTE_BAD_PATH: {
        char line[160];
        snprintf(line, sizeof(line), "bad path: %s", r.reason);
        api_send_text(t, req, r.kind, 400, line);
        break;
    }
    case API_ROUTE_NOT_FOUND:
        api_send_text(t, req, r.kind, 404, "404 page not found");
        break;
    case API_ROUTE_FORBIDDEN:
        api_send_keys_error(t, req, API_ROUTE_FORBIDDEN, API_E_FORBIDDEN,
                            "only /v2/keys/discovery/{token} is served", 0, NULL);
        break;
    case API_ROUTE_HOME:
        if (!api_web_home(t, req))
            api_home_handle(t, req);
        break;
    case API_ROUTE_STATIC:
        api_web_static(t, req, &r);
        break;
    case API_ROUTE_NEW:
        api_new_handle(t, req);
        break;
    case API_ROUTE_HEALTH:
        api_health_handle(t, req);
        break;
    case API_ROUTE_METRICS:
        api_metrics_handle(t, req);
        break;
    case API_ROUTE_ROBOTS:
        api_robots_handle(t, req);
        break;
    case API_ROUTE_STATUS:
        api_status_handle(t, req, &r);
        break;
    case API_ROUTE_MEMBERS:
        api_members_handle(t, req, &r);
        break;
    case API_ROUTE_KEYS:
        if (!api_web_token_page(t, req, &r))
            api_keys_handle(t, req, &r);
        break;
    default:
        api_send_text(t, req, API_ROUTE_NOT_FOUND, 404, "404 page not found");
        break;
    }
    return 0;
}
