/* service/pgrl_hooks.c — the PostgreSQL limiter as HTTP threads see it (pgrl.h): the api's rate
 * hook (queue the question, or decide locally at once when PostgreSQL is not usable), /health's
 * degraded reason and the /metrics lines. Reads only atomics and what "mu" guards; never blocks
 * beyond that mutex.
 */
#define _GNU_SOURCE
#include "service/pgrl_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double pgrl_latency_bounds[PGRL_NBUCKETS - 1] = {0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                       0.025,   0.05,   0.1,   0.25,   0.5,   1};
const char *const pgrl_err_names[E_KINDS] = {"connect", "query", "timeout", "stalled", "overflow"};

static enum api_rate_answer decide_local(struct pgrl *p, enum api_rl_class cls, const void *key,
                                         size_t key_len, uint32_t *retry_after)
{
    atomic_fetch_add_explicit(&p->decided_local, 1, memory_order_relaxed);
    return rl_take_now(p->local, cls, key, key_len, retry_after) ? API_RATE_ALLOW : API_RATE_DENY;
}

enum api_rate_answer pgrl_api_rate(void *arg, enum api_rl_class cls, const void *key, size_t key_len,
                                   uint32_t *retry_after, struct api_rate_wait *wait)
{
    struct pgrl *p = arg;
    if (wait == NULL || (unsigned)cls >= RL_CLASSES || key_len > PGRL_MAX_KEY || !atomic_load(&p->backend_pg))
        return decide_local(p, cls, key, key_len, retry_after);
    struct pgrl_req *r = malloc(sizeof(*r));
    if (r == NULL)
        return decide_local(p, cls, key, key_len, retry_after);
    r->next = NULL;
    r->wait = wait;
    r->enq_ns = now_ns();
    r->cls = (uint8_t)cls;
    r->len = (uint32_t)key_len;
    memcpy(r->key, key, key_len);
    pthread_mutex_lock(&p->mu);
    if (p->stopping || p->qlen >= PGRL_MAX_QUEUE) {
        bool overflow = !p->stopping;
        pthread_mutex_unlock(&p->mu);
        free(r);
        if (overflow)
            atomic_fetch_add_explicit(&p->errors[E_OVERFLOW], 1, memory_order_relaxed);
        return decide_local(p, cls, key, key_len, retry_after);
    }
    if (p->qtail != NULL)
        p->qtail->next = r;
    else
        p->qhead = r;
    p->qtail = r;
    p->qlen++;
    uv_async_send(&p->wake); /* under mu: the handle is closed only after stopping is seen */
    pthread_mutex_unlock(&p->mu);
    return API_RATE_PENDING;
}

bool pgrl_degraded(void *arg, char *reason, size_t len)
{
    struct pgrl *p = arg;
    if (atomic_load(&p->backend_pg))
        return false;
    pthread_mutex_lock(&p->mu);
    snprintf(reason, len, "rate limits are per process: PostgreSQL is unavailable (%s)",
             p->reason[0] ? p->reason : "not connected yet");
    pthread_mutex_unlock(&p->mu);
    return true;
}

static void wprintf(void (*write)(void *, const char *, size_t), void *wctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void wprintf(void (*write)(void *, const char *, size_t), void *wctx, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0)
        write(wctx, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

void pgrl_metrics(void *arg, void (*write)(void *wctx, const char *s, size_t n), void *wctx)
{
    struct pgrl *p = arg;
    bool pg = atomic_load(&p->backend_pg);
    wprintf(write, wctx,
            "# HELP discoveryd_ratelimit_backend The limiter that decides rate limits now (1) and the other "
            "(0).\n"
            "# TYPE discoveryd_ratelimit_backend gauge\n"
            "discoveryd_ratelimit_backend{backend=\"postgres\"} %d\n"
            "discoveryd_ratelimit_backend{backend=\"local\"} %d\n",
            pg ? 1 : 0, pg ? 0 : 1);
    /* the masked URL as a label: backslash, quote and newline escaped */
    char label[600];
    size_t n = 0;
    for (const char *s = p->masked; *s && n + 3 < sizeof(label); s++) {
        if (*s == '\\' || *s == '"') {
            label[n++] = '\\';
            label[n++] = *s;
        } else if (*s == '\n') {
            label[n++] = '\\';
            label[n++] = 'n';
        } else {
            label[n++] = *s;
        }
    }
    label[n] = '\0';
    wprintf(write, wctx,
            "# HELP discoveryd_ratelimit_postgres_info The PostgreSQL the limiter uses (password masked).\n"
            "# TYPE discoveryd_ratelimit_postgres_info gauge\n"
            "discoveryd_ratelimit_postgres_info{url=\"%s\",pool=\"%u\"} 1\n"
            "# HELP discoveryd_ratelimit_postgres_connections Connections able to take a question now.\n"
            "# TYPE discoveryd_ratelimit_postgres_connections gauge\n"
            "discoveryd_ratelimit_postgres_connections %d\n",
            label, p->cfg.pool, atomic_load(&p->usable));
    wprintf(write, wctx,
            "# HELP discoveryd_ratelimit_query_seconds Time from a question to PostgreSQL's answer.\n"
            "# TYPE discoveryd_ratelimit_query_seconds histogram\n");
    uint64_t cum = 0;
    for (int b = 0; b < PGRL_NBUCKETS; b++) {
        cum += atomic_load(&p->lat_buckets[b]);
        if (b < PGRL_NBUCKETS - 1)
            wprintf(write, wctx, "discoveryd_ratelimit_query_seconds_bucket{le=\"%g\"} %llu\n",
                    pgrl_latency_bounds[b], (unsigned long long)cum);
        else
            wprintf(write, wctx, "discoveryd_ratelimit_query_seconds_bucket{le=\"+Inf\"} %llu\n",
                    (unsigned long long)cum);
    }
    wprintf(write, wctx,
            "discoveryd_ratelimit_query_seconds_sum %.6f\ndiscoveryd_ratelimit_query_seconds_count %llu\n",
            (double)atomic_load(&p->lat_sum_ns) / 1e9, (unsigned long long)atomic_load(&p->lat_count));
    wprintf(write, wctx,
            "# HELP discoveryd_ratelimit_postgres_errors_total PostgreSQL limiter trouble, by kind.\n"
            "# TYPE discoveryd_ratelimit_postgres_errors_total counter\n");
    for (int k = 0; k < E_KINDS; k++)
        wprintf(write, wctx, "discoveryd_ratelimit_postgres_errors_total{kind=\"%s\"} %llu\n",
                pgrl_err_names[k], (unsigned long long)atomic_load(&p->errors[k]));
    wprintf(
        write, wctx,
        "# HELP discoveryd_ratelimit_decisions_total Rate-limit decisions, by the limiter that made them.\n"
        "# TYPE discoveryd_ratelimit_decisions_total counter\n"
        "discoveryd_ratelimit_decisions_total{backend=\"postgres\"} %llu\n"
        "discoveryd_ratelimit_decisions_total{backend=\"local\"} %llu\n",
        (unsigned long long)atomic_load(&p->decided_pg), (unsigned long long)atomic_load(&p->decided_local));
}
