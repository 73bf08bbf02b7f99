/* api/api_int.h — private to api/: the process-wide api state every route reads (configuration,
 * the node, the counters /metrics shows) and the small helpers api.c implements. Each part of the
 * api has its own header beside this one: reply.h (responses), request.h (forms, client address,
 * rate limits), handoff.h (the trip to the store thread), handlers.h (the routes).
 * Error convention of api/ (and service/): functions return 0 or -1 (-2 where ENOMEM must be told
 * apart), with a one-line reason in an errbuf or the struct they fill; HTTP answers carry the etcd
 * error code (> 0) or the api's own (API_E_*, >= 1100).
 */
#ifndef DISCOVERYD_API_API_INT_H
#define DISCOVERYD_API_API_INT_H

#include <stdatomic.h>
#include <string.h>
#include "api/api.h"
#include "api/route.h"

/* Upper bounds (seconds) of the request-duration histogram's buckets (+Inf is implied). A parked
 * watch lasts up to --watch-timeout, hence the long tail. */
#define API_LAT_BUCKETS 13
extern const double api_lat_bounds[API_LAT_BUCKETS];

/* Status codes /metrics counts individually; anything else is counted as "other". */
#define API_NCODES 13
extern const int api_metric_codes[API_NCODES - 1];

struct api {
    struct api_config cfg; /* public_url points at our own copy */
    struct node *node;
    /* counters (atomic: every HTTP thread adds) */
    _Atomic uint64_t requests[API_ROUTE_COUNT][API_NCODES];
    _Atomic uint64_t tokens_created, registrations, surplus_registrations, tokens_full, rate_limited;
    _Atomic uint64_t tokens_refused_cap; /* creations refused by --max-tokens */
    /* request durations per route, head read to answer sent: per-bucket (not cumulative) counts,
     * the last one +Inf, and the sum in microseconds */
    _Atomic uint64_t lat[API_ROUTE_COUNT][API_LAT_BUCKETS + 1];
    _Atomic uint64_t lat_sum_us[API_ROUTE_COUNT];
    atomic_bool at_cap;                  /* the last creation attempt found the store full (logged once) */
};

/* Request pool allocator for form.h / route.h. */
void *api_pool_alloc(void *pool, size_t sz);

static inline bool api_is_method(h2o_req_t *req, const char *m)
{
    size_t n = strlen(m);
    return req->method.len == n && memcmp(req->method.base, m, n) == 0;
}

#endif
