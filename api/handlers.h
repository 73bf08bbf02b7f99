/* api/handlers.h — the route handlers dispatch.c calls, one per route kind (HTTP threads). Each
 * answers its request, now or after a trip to the store thread.
 */
#ifndef DISCOVERYD_API_HANDLERS_H
#define DISCOVERYD_API_HANDLERS_H

#include "api/api_int.h"

void api_keys_handle(struct api_thread *t, h2o_req_t *req, const struct api_route *r);   /* keys.c */
/* A GET whose exact target was parsed before, answered from the thread's copy if it is still right
 * (getcache.h); false: route and parse it as usual. keys.c */
bool api_keys_repeat(struct api_thread *t, h2o_req_t *req);
void api_new_handle(struct api_thread *t, h2o_req_t *req);                               /* new.c */
void api_status_handle(struct api_thread *t, h2o_req_t *req, const struct api_route *r); /* status.c */
void api_health_handle(struct api_thread *t, h2o_req_t *req);                            /* misc.c */
void api_metrics_handle(struct api_thread *t, h2o_req_t *req);
void api_robots_handle(struct api_thread *t, h2o_req_t *req);
void api_home_handle(struct api_thread *t, h2o_req_t *req);
void api_members_handle(struct api_thread *t, h2o_req_t *req, const struct api_route *r); /* members.c */

#endif
