/* service/pgrl_int.h — private to the PostgreSQL limiter: its state, shared by pgrl.c (the limiter
 * thread: connections, queue, backend state) and pgrl_hooks.c (what HTTP threads call: the rate
 * hook, /health, /metrics). Fields marked atomic or "under mu" are read by HTTP threads; the rest
 * belong to the limiter thread.
 */
#ifndef DISCOVERYD_SERVICE_PGRL_INT_H
#define DISCOVERYD_SERVICE_PGRL_INT_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <uv.h>

#include "service/pgrl.h"

#define PGRL_MAX_POOL 64
#define PGRL_MAX_QUEUE 10000
#define PGRL_MAX_KEY 128 /* the longest bucket subject the api asks about (a token name) */
#define PGRL_BACKOFF_MIN_MS 100
#define PGRL_BACKOFF_MAX_MS 5000
#define PGRL_TICK_MS 20
#define PGRL_NBUCKETS 13 /* latency histogram: 12 bounds + Inf */

extern const double pgrl_latency_bounds[PGRL_NBUCKETS - 1]; /* seconds */

enum err_kind { E_CONNECT, E_QUERY, E_TIMEOUT, E_STALL, E_OVERFLOW, E_KINDS };
extern const char *const pgrl_err_names[E_KINDS];

enum conn_state { C_DOWN, C_CONNECTING, C_SETUP, C_IDLE, C_BUSY };
enum setup_step { S_SCHEMA, S_PREP_TAKE, S_PREP_SWEEP, S_DONE };

struct pgrl_req {
    struct pgrl_req *next;
    struct api_rate_wait *wait;
    uint64_t enq_ns;
    uint8_t cls;
    uint32_t len;
    uint8_t key[PGRL_MAX_KEY];
};

struct conn {
    struct pgrl *p;
    int idx;
    PGconn *pg;
    uv_poll_t *poll; /* heap: closed asynchronously */
    int poll_fd;
    int poll_events;
    enum conn_state st;
    enum setup_step step;
    struct pgrl_req *req; /* BUSY with a take */
    int sweep_cls;        /* BUSY with a sweep of this class, else -1 */
    uint64_t since_ns;    /* the statement (or connect) started */
    bool slow;
    bool result_ok; /* the statement's results so far */
    bool allowed;
    uint32_t retry_after;
    long affected;
    char err[256];
    uint32_t backoff_ms;
    uv_timer_t retry;
};

struct pgrl {
    struct pgrl_config cfg;
    char *conninfo;
    char masked[512];
    struct rl *local;
    uint32_t stall_ms, connect_ms;

    /* the question queue: HTTP threads push, the limiter thread pops */
    pthread_mutex_t mu;
    pthread_cond_t cond; /* start-up: first attempts finished */
    struct pgrl_req *qhead, *qtail;
    size_t qlen;
    bool stopping, stopped;
    int attempts_done; /* connections that reached IDLE or failed once (start-up wait) */
    char reason[256];  /* why the backend is local (under mu) */

    _Atomic int usable; /* connections IDLE, or BUSY but not slow */
    _Atomic bool backend_pg;
    _Atomic uint64_t errors[E_KINDS];
    _Atomic uint64_t lat_buckets[PGRL_NBUCKETS];
    _Atomic uint64_t lat_count, lat_sum_ns;
    _Atomic uint64_t decided_pg, decided_local;

    /* limiter thread only */
    pthread_t thread;
    bool thread_started;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t tick;
    bool announced; /* the first backend line was logged */
    uint64_t next_sweep_ns;
    int sweep_next_cls; /* classes left in this sweep round, RL_CLASSES when none */
    struct conn conns[PGRL_MAX_POOL];
};
static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
