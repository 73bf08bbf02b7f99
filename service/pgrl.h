/* service/pgrl.h — rate limits shared by every node through PostgreSQL (--postgres), with the
 * per-process limiter (ratelimit.h) as the fallback while PostgreSQL is down, slow or refusing.
 *
 * Owns one limiter thread running its own libuv loop and a pool of libpq connections used only
 * through the asynchronous API (PQconnectStart/Poll, PQsendQueryPrepared, PQconsumeInput,
 * PQisBusy; each PQsocket watched with uv_poll). HTTP threads call pgrl_api_rate (the api's
 * rate hook): it queues the question and wakes the limiter thread (uv_async), or, when no
 * connection is usable, decides at once through the local limiter; answers go back through
 * api_rate_answer (the HTTP thread's own h2o queue). Nothing here blocks an HTTP thread.
 * The buckets: one table, one row per (kind, subject), taken by one INSERT … ON CONFLICT DO
 * UPDATE … RETURNING that refills by the database's clock (clamped when it goes backwards);
 * stale rows are deleted in bounded batches. svc creates it before the HTTP threads start,
 * stops it (pgrl_stop: every question answered) before the node stops, frees it last.
 */
#ifndef DISCOVERYD_SERVICE_PGRL_H
#define DISCOVERYD_SERVICE_PGRL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "api/api.h"
#include "service/ratelimit.h"

/* The statements (also run by the tests against a real PostgreSQL). */
#define PGRL_SCHEMA_VERSION 1
extern const char pgrl_sql_schema[]; /* simple-query string; its last result is the schema version */
extern const char
    pgrl_sql_take[]; /* $1 kind int2, $2 subject bytea, $3 rate, $4 burst -> allowed, retry_after */
extern const char pgrl_sql_sweep[]; /* $1 kind, $2 seconds to refill from empty, $3 batch -> rows deleted */

struct pgrl_config {
    const char *conninfo; /* --postgres */
    uint32_t pool;        /* --postgres-pool */
    uint32_t timeout_ms;  /* --postgres-timeout */
    struct rl_rule rules[RL_CLASSES];
    uint32_t sweep_interval_ms; /* 0: 60 s */
    uint32_t sweep_batch;       /* 0: 1000 rows per statement */
};

struct pgrl;

/* Check the connection string, start the limiter thread and wait (at most a few seconds) for the
 * first connection attempts, so the start-up log says which limiter is in use. PostgreSQL being
 * unreachable is not an error (the local limiter decides until it answers). 0, or -1 with a
 * one-line reason naming --postgres in err (the string itself is never echoed). */
int pgrl_new(struct pgrl **out, const struct pgrl_config *cfg, struct rl *local, char *err, size_t errlen);
/* Answer every question still out (UNKNOWN: the api decides locally), close the connections and
 * join the thread. After it, pgrl_api_rate decides locally. */
void pgrl_stop(struct pgrl *p);
void pgrl_free(struct pgrl *p);

/* api_config hooks; arg is the struct pgrl. */
enum api_rate_answer pgrl_api_rate(void *arg, enum api_rl_class cls, const void *key, size_t key_len,
                                   uint32_t *retry_after, struct api_rate_wait *wait);
bool pgrl_degraded(void *arg, char *reason, size_t len);
void pgrl_metrics(void *arg, void (*write)(void *wctx, const char *s, size_t n), void *wctx);

/* The connection string with any password replaced by "****" (URI user:password@, password=
 * parameters, key=value password=...). Always terminates out. */
void pgrl_mask_conninfo(const char *in, char *out, size_t outlen);

#endif
