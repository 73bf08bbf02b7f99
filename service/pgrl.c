/* service/pgrl.c — the PostgreSQL limiter's thread: a libuv loop driving a pool of asynchronous
 * libpq connections, the question queue the HTTP threads fill, the fallback state, the sweep of
 * stale buckets and the counters /metrics shows (pgrl_hooks.c reads them); its start and stop.
 *
 * A connection: DOWN -> CONNECTING (PQconnectPoll) -> SETUP (schema, version check, prepared
 * statements) -> IDLE <-> BUSY (one statement in flight). Any failure closes it and retries after
 * a backoff (100 ms doubling to 5 s, with jitter). A statement in flight longer than the api's
 * timeout makes its connection "slow"; one silent for stall_ms is closed.
 * The backend is PostgreSQL while at least one connection is usable and none is slow; the change
 * either way is logged once, and questions queued when it goes away are answered UNKNOWN at once.
 */
#include "service/pgrl_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/log.h"

/* ---------------------------------------------------------------- answers and the backend state */

static void observe_latency(struct pgrl *p, uint64_t ns)
{
    double s = (double)ns / 1e9;
    int b = 0;
    while (b < PGRL_NBUCKETS - 1 && s > pgrl_latency_bounds[b])
        b++;
    atomic_fetch_add_explicit(&p->lat_buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->lat_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->lat_sum_ns, ns, memory_order_relaxed);
}

static void answer(struct pgrl *p, struct pgrl_req *r, enum api_rate_answer a, uint32_t retry_after)
{
    if (a != API_RATE_UNKNOWN) {
        uint64_t ns = now_ns() - r->enq_ns;
        observe_latency(p, ns);
        atomic_fetch_add_explicit(&p->decided_pg, 1, memory_order_relaxed);
        if (ns > (uint64_t)p->cfg.timeout_ms * 1000000ull)
            atomic_fetch_add_explicit(&p->errors[E_TIMEOUT], 1, memory_order_relaxed);
    }
    api_rate_answer(r->wait, a, retry_after);
    free(r);
}

/* Take the whole queue (under mu). */
static struct pgrl_req *queue_take_all(struct pgrl *p)
{
    pthread_mutex_lock(&p->mu);
    struct pgrl_req *all = p->qhead;
    p->qhead = p->qtail = NULL;
    p->qlen = 0;
    pthread_mutex_unlock(&p->mu);
    return all;
}

static void answer_all_unknown(struct pgrl *p, struct pgrl_req *r)
{
    while (r != NULL) {
        struct pgrl_req *n = r->next;
        answer(p, r, API_RATE_UNKNOWN, 0);
        r = n;
    }
}

/* Recount usable connections; log a change of backend once, with why. */
static void update_backend(struct pgrl *p, const char *why)
{
    int usable = 0;
    bool slow = false;
    for (uint32_t i = 0; i < p->cfg.pool; i++) {
        const struct conn *c = &p->conns[i];
        if (c->st == C_IDLE || (c->st == C_BUSY && !c->slow))
            usable++;
        slow |= c->st == C_BUSY && c->slow;
    }
    /* one statement past the timeout: the database is stuck or swamped for everyone; decide
     * locally (at once, not after a timeout each) until it answers or its connection is closed */
    if (slow)
        usable = 0;
    atomic_store(&p->usable, usable);
    bool pg = usable > 0;
    bool was = atomic_load(&p->backend_pg);
    if (pg == was && p->announced)
        return;
    if (!pg && !p->announced && why == NULL)
        return; /* nothing known yet */
    atomic_store(&p->backend_pg, pg);
    if (pg) {
        pthread_mutex_lock(&p->mu);
        p->reason[0] = '\0';
        pthread_mutex_unlock(&p->mu);
        svc_log(SVC_LOG_INFO, "%s: rate limits are shared through PostgreSQL %s",
                p->announced ? "recovered" : "started", p->masked);
    } else {
        pthread_mutex_lock(&p->mu);
        snprintf(p->reason, sizeof(p->reason), "%s", why ? why : "no usable connection");
        pthread_mutex_unlock(&p->mu);
        svc_log(SVC_LOG_WARN, "rate limits fall back to per process: PostgreSQL %s: %s", p->masked,
                why ? why : "no usable connection");
        answer_all_unknown(p, queue_take_all(p));
    }
    p->announced = true;
}

/* ---------------------------------------------------------------- connections */

static void conn_start(struct conn *c);
static void conn_dispatch(struct pgrl *p);
static void on_poll(uv_poll_t *h, int status, int events);
static void on_retry(uv_timer_t *t);

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void conn_unwatch(struct conn *c)
{
    if (c->poll != NULL) {
        uv_poll_stop(c->poll);
        uv_close((uv_handle_t *)c->poll, free_handle);
        c->poll = NULL;
    }
    c->poll_fd = -1;
    c->poll_events = 0;
}

/* Watch the connection's socket for events (UV_READABLE | UV_WRITABLE). */
static int conn_watch(struct conn *c, int events)
{
    int fd = PQsocket(c->pg);
    if (fd < 0)
        return -1;
    if (c->poll != NULL && c->poll_fd != fd)
        conn_unwatch(c); /* libpq moved on to another address: another socket */
    if (c->poll == NULL) {
        c->poll = malloc(sizeof(*c->poll));
        if (c->poll == NULL || uv_poll_init(&c->p->loop, c->poll, fd) != 0) {
            free(c->poll);
            c->poll = NULL;
            return -1;
        }
        c->poll->data = c;
        c->poll_fd = fd;
        c->poll_events = 0;
    }
    if (c->poll_events != events) {
        if (uv_poll_start(c->poll, events, on_poll) != 0)
            return -1;
        c->poll_events = events;
    }
    return 0;
}

/* Close the connection after a failure, answer its question, schedule the reconnect. */
static void conn_fail(struct conn *c, enum err_kind kind, const char *fmt, const char *detail)
{
    struct pgrl *p = c->p;
    char why[256];
    snprintf(why, sizeof(why), fmt, detail ? detail : "");
    /* one line of it: libpq's messages end with a newline and may have several */
    why[strcspn(why, "\n")] = '\0';
    atomic_fetch_add_explicit(&p->errors[kind], 1, memory_order_relaxed);
    svc_log(SVC_LOG_DEBUG, "postgres connection %d: %s", c->idx, why);
    conn_unwatch(c);
    if (c->pg != NULL) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    struct pgrl_req *r = c->req;
    c->req = NULL;
    c->sweep_cls = -1;
    bool was_setup = c->st == C_CONNECTING || c->st == C_SETUP;
    c->st = C_DOWN;
    c->slow = false;
    if (r != NULL)
        answer(p, r, API_RATE_UNKNOWN, 0);
    if (was_setup) {
        pthread_mutex_lock(&p->mu);
        p->attempts_done++;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mu);
    }
    update_backend(p, why);
    if (p->stopping)
        return;
    uint32_t b = c->backoff_ms ? c->backoff_ms : PGRL_BACKOFF_MIN_MS;
    uint32_t jitter = (uint32_t)rand() % (b / 2 + 1);
    c->backoff_ms = b * 2 > PGRL_BACKOFF_MAX_MS ? PGRL_BACKOFF_MAX_MS : b * 2;
    uv_timer_start(&c->retry, on_retry, b * 3 / 4 + jitter, 0);
}

static void on_retry(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (!c->p->stopping)
        conn_start(c);
}

/* Send out what libpq buffered; watch for readable (and writable while output remains). */
static int conn_flush_watch(struct conn *c)
{
    int f = PQflush(c->pg);
    if (f < 0)
        return -1;
    return conn_watch(c, UV_READABLE | (f == 1 ? UV_WRITABLE : 0));
}

static void conn_send_setup(struct conn *c)
{
    int ok = 0;
    c->result_ok = true;
    c->err[0] = '\0';
    c->affected = -1;
    switch (c->step) {
    case S_SCHEMA:
        ok = PQsendQuery(c->pg, pgrl_sql_schema);
        break;
    case S_PREP_TAKE:
        ok = PQsendPrepare(c->pg, "dd_take", pgrl_sql_take, 0, NULL);
        break;
    case S_PREP_SWEEP:
        ok = PQsendPrepare(c->pg, "dd_sweep", pgrl_sql_sweep, 0, NULL);
        break;
    case S_DONE:
        break;
    }
    if (!ok || conn_flush_watch(c) != 0)
        conn_fail(c, E_CONNECT, "setup: %s", PQerrorMessage(c->pg));
}

static void ignore_notice(void *arg, const char *message) {}

static void conn_start(struct conn *c)
{
    struct pgrl *p = c->p;
    c->pg = PQconnectStart(p->conninfo);
    c->st = C_CONNECTING;
    c->since_ns = now_ns();
    if (c->pg == NULL) {
        conn_fail(c, E_CONNECT, "out of memory%s", "");
        return;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_fail(c, E_CONNECT, "%s", PQerrorMessage(c->pg));
        return;
    }
    PQsetnonblocking(c->pg, 1);
    PQsetNoticeProcessor(c->pg, ignore_notice, NULL); /* the server's notices are not our log */
    if (conn_watch(c, UV_WRITABLE) != 0)
        conn_fail(c, E_CONNECT, "cannot watch the socket%s", "");
}

static void conn_connect_poll(struct conn *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        if (conn_watch(c, UV_READABLE) != 0)
            conn_fail(c, E_CONNECT, "cannot watch the socket%s", "");
        break;
    case PGRES_POLLING_WRITING:
        if (conn_watch(c, UV_WRITABLE) != 0)
            conn_fail(c, E_CONNECT, "cannot watch the socket%s", "");
        break;
    case PGRES_POLLING_FAILED:
        conn_fail(c, E_CONNECT, "%s", PQerrorMessage(c->pg));
        break;
    case PGRES_POLLING_OK:
        PQsetnonblocking(c->pg, 1);
        c->st = C_SETUP;
        c->step = S_SCHEMA;
        c->since_ns = now_ns();
        conn_send_setup(c);
        break;
    default:
        break;
    }
}

/* One result of the statement in flight. */
static void conn_result(struct conn *c, PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        if (c->result_ok)
            snprintf(c->err, sizeof(c->err), "%s", PQresultErrorMessage(res));
        c->result_ok = false;
        return;
    }
    if (c->st == C_SETUP && c->step == S_SCHEMA && st == PGRES_TUPLES_OK && PQfnumber(res, "version") == 0) {
        int v = PQntuples(res) == 1 ? atoi(PQgetvalue(res, 0, 0)) : -1;
        if (v != PGRL_SCHEMA_VERSION) {
            snprintf(c->err, sizeof(c->err),
                     "table discoveryd_schema says version %d, this discoveryd knows %d", v,
                     PGRL_SCHEMA_VERSION);
            c->result_ok = false;
        }
    } else if (c->st == C_BUSY && c->req != NULL && st == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        const char *a = PQgetvalue(res, 0, 0);
        c->allowed = a[0] == 't';
        long long ra = atoll(PQgetvalue(res, 0, 1));
        c->retry_after = ra < 1 ? 1 : ra > 86400 ? 86400 : (uint32_t)ra;
    } else if (c->st == C_BUSY && c->sweep_cls >= 0 && st == PGRES_COMMAND_OK) {
        c->affected = atol(PQcmdTuples(res));
    }
}

/* The statement in flight is complete (PQgetResult said NULL). */
static void conn_done(struct conn *c)
{
    struct pgrl *p = c->p;
    if (c->st == C_SETUP) {
        if (!c->result_ok) {
            conn_fail(c, E_CONNECT, "setup: %s", c->err);
            return;
        }
        if (++c->step < S_DONE) {
            conn_send_setup(c);
            return;
        }
        c->st = C_IDLE;
        c->backoff_ms = 0;
        pthread_mutex_lock(&p->mu);
        p->attempts_done++;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mu);
        update_backend(p, NULL);
        conn_dispatch(p);
        return;
    }
    /* BUSY */
    struct pgrl_req *r = c->req;
    int sweep = c->sweep_cls;
    c->req = NULL;
    c->sweep_cls = -1;
    bool was_slow = c->slow;
    c->st = C_IDLE;
    c->slow = false;
    if (!c->result_ok) {
        atomic_fetch_add_explicit(&p->errors[E_QUERY], 1, memory_order_relaxed);
        svc_log(SVC_LOG_DEBUG, "postgres connection %d: %.*s", c->idx, (int)strcspn(c->err, "\n"), c->err);
        if (r != NULL)
            answer(p, r, API_RATE_UNKNOWN, 0);
    } else if (r != NULL) {
        answer(p, r, c->allowed ? API_RATE_ALLOW : API_RATE_DENY, c->retry_after);
    } else if (sweep >= 0 && c->affected >= (long)p->cfg.sweep_batch) {
        p->sweep_next_cls = sweep; /* a full batch: more may be stale, go again */
    }
    if (was_slow || !atomic_load(&p->backend_pg))
        update_backend(p, NULL);
    conn_dispatch(p);
}

static void conn_readable(struct conn *c)
{
    if (!PQconsumeInput(c->pg)) {
        conn_fail(c, c->st == C_SETUP ? E_CONNECT : E_QUERY, "%s", PQerrorMessage(c->pg));
        return;
    }
    while (!PQisBusy(c->pg)) {
        PGresult *res = PQgetResult(c->pg);
        if (res == NULL) {
            conn_done(c);
            return;
        }
        conn_result(c, res);
        PQclear(res);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct conn *c = h->data;
    if (c->pg == NULL)
        return;
    if (c->st == C_CONNECTING) {
        conn_connect_poll(c);
        return;
    }
    if (status < 0) {
        conn_fail(c, E_QUERY, "socket: %s", uv_strerror(status));
        return;
    }
    if (events & UV_WRITABLE) {
        if (conn_flush_watch(c) != 0) {
            conn_fail(c, E_QUERY, "%s", PQerrorMessage(c->pg));
            return;
        }
    }
    if (events & UV_READABLE)
        conn_readable(c);
}

/* ---------------------------------------------------------------- dispatch */

static bool conn_send_take(struct conn *c, struct pgrl_req *r)
{
    const struct rl_rule *rule = &c->p->cfg.rules[r->cls];
    char kind[16], rate[40], burst[40];
    snprintf(kind, sizeof(kind), "%u", (unsigned)r->cls);
    snprintf(rate, sizeof(rate), "%.17g", rule->rate);
    snprintf(burst, sizeof(burst), "%.17g", rule->burst);
    const char *values[4] = {kind, (const char *)r->key, rate, burst};
    int lengths[4] = {0, (int)r->len, 0, 0};
    int formats[4] = {0, 1, 0, 0};
    return PQsendQueryPrepared(c->pg, "dd_take", 4, values, lengths, formats, 0) == 1;
}

static bool conn_send_sweep(struct conn *c, int cls)
{
    const struct rl_rule *rule = &c->p->cfg.rules[cls];
    char kind[16], secs[40], batch[16];
    snprintf(kind, sizeof(kind), "%d", cls);
    snprintf(secs, sizeof(secs), "%.17g", rule->burst / rule->rate);
    snprintf(batch, sizeof(batch), "%u", c->p->cfg.sweep_batch);
    const char *values[3] = {kind, secs, batch};
    return PQsendQueryPrepared(c->pg, "dd_sweep", 3, values, NULL, NULL, 0) == 1;
}

/* Give idle connections work: questions first, then a sweep step. */
static void conn_dispatch(struct pgrl *p)
{
    for (uint32_t i = 0; i < p->cfg.pool; i++) {
        struct conn *c = &p->conns[i];
        if (c->st != C_IDLE)
            continue;
        pthread_mutex_lock(&p->mu);
        struct pgrl_req *r = p->qhead;
        if (r != NULL) {
            p->qhead = r->next;
            if (p->qhead == NULL)
                p->qtail = NULL;
            p->qlen--;
        }
        pthread_mutex_unlock(&p->mu);
        int sweep = -1;
        if (r == NULL) {
            if (p->sweep_next_cls >= RL_CLASSES)
                return;
            sweep = p->sweep_next_cls++;
        }
        c->st = C_BUSY;
        c->req = r;
        c->sweep_cls = sweep;
        c->result_ok = true;
        c->err[0] = '\0';
        c->affected = -1;
        c->since_ns = now_ns();
        bool ok = r != NULL ? conn_send_take(c, r) : conn_send_sweep(c, sweep);
        if (!ok || conn_flush_watch(c) != 0)
            conn_fail(c, E_QUERY, "%s", PQerrorMessage(c->pg));
    }
}

/* ---------------------------------------------------------------- the thread */

static void close_all(struct pgrl *p)
{
    for (uint32_t i = 0; i < p->cfg.pool; i++) {
        struct conn *c = &p->conns[i];
        uv_timer_stop(&c->retry);
        uv_close((uv_handle_t *)&c->retry, NULL);
        conn_unwatch(c);
        if (c->pg != NULL) {
            PQfinish(c->pg);
            c->pg = NULL;
        }
        if (c->req != NULL) {
            answer(p, c->req, API_RATE_UNKNOWN, 0);
            c->req = NULL;
        }
        c->st = C_DOWN;
    }
    atomic_store(&p->usable, 0);
    atomic_store(&p->backend_pg, false);
    uv_timer_stop(&p->tick);
    uv_close((uv_handle_t *)&p->tick, NULL);
    uv_close((uv_handle_t *)&p->wake, NULL);
}

static void on_wake(uv_async_t *h)
{
    struct pgrl *p = h->data;
    pthread_mutex_lock(&p->mu);
    bool stop = p->stopping;
    pthread_mutex_unlock(&p->mu);
    if (stop) {
        close_all(p);
        answer_all_unknown(p, queue_take_all(p));
        return;
    }
    if (!atomic_load(&p->backend_pg))
        answer_all_unknown(p, queue_take_all(p));
    else
        conn_dispatch(p);
}

/* Slow and stalled statements, connects that hang, and the sweep schedule. */
static void on_tick(uv_timer_t *t)
{
    struct pgrl *p = t->data;
    uint64_t now = now_ns();
    bool changed = false;
    for (uint32_t i = 0; i < p->cfg.pool; i++) {
        struct conn *c = &p->conns[i];
        uint64_t age_ms = (now - c->since_ns) / 1000000;
        if ((c->st == C_CONNECTING || c->st == C_SETUP) && age_ms > p->connect_ms) {
            conn_fail(c, E_CONNECT, "no answer to the connection attempt within %s",
                      c->st == C_SETUP ? "the limit (setup)" : "the limit");
        } else if (c->st == C_BUSY && age_ms > p->stall_ms) {
            char why[64];
            snprintf(why, sizeof(why), "%llu ms", (unsigned long long)age_ms);
            conn_fail(c, E_STALL, "no answer to a statement for %s", why);
        } else if (c->st == C_BUSY && !c->slow && age_ms > p->cfg.timeout_ms) {
            c->slow = true;
            changed = true;
        }
    }
    if (changed) {
        char why[96];
        snprintf(why, sizeof(why), "no answer within --postgres-timeout (%u ms)", p->cfg.timeout_ms);
        update_backend(p, why);
    }
    if (now >= p->next_sweep_ns) {
        p->next_sweep_ns = now + (uint64_t)p->cfg.sweep_interval_ms * 1000000ull;
        p->sweep_next_cls = 0;
    }
    conn_dispatch(p);
}

static void *thread_main(void *arg)
{
    struct pgrl *p = arg;
    for (uint32_t i = 0; i < p->cfg.pool; i++)
        conn_start(&p->conns[i]);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---------------------------------------------------------------- life */

int pgrl_new(struct pgrl **out, const struct pgrl_config *cfg, struct rl *local, char *err, size_t errlen)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(cfg->conninfo, &perr);
    if (opts == NULL) {
        PQfreemem(perr);
        snprintf(err, errlen,
                 "--postgres: not a libpq connection string or URI (see the libpq documentation; "
                 "the value is not repeated here as it may hold a password)");
        return -1;
    }
    PQconninfoFree(opts);
    struct pgrl *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->conninfo = strdup(cfg->conninfo)) == NULL) {
        free(p);
        snprintf(err, errlen, "out of memory (rate limiter)");
        return -1;
    }
    p->cfg = *cfg;
    p->cfg.conninfo = NULL;
    if (p->cfg.pool < 1)
        p->cfg.pool = 1;
    if (p->cfg.pool > PGRL_MAX_POOL)
        p->cfg.pool = PGRL_MAX_POOL;
    if (p->cfg.timeout_ms == 0)
        p->cfg.timeout_ms = 200;
    if (p->cfg.sweep_interval_ms == 0)
        p->cfg.sweep_interval_ms = 60000;
    if (p->cfg.sweep_batch == 0)
        p->cfg.sweep_batch = 1000;
    p->stall_ms = p->cfg.timeout_ms * 10 < 2000 ? 2000 : p->cfg.timeout_ms * 10;
    p->connect_ms = p->stall_ms;
    p->local = local;
    p->sweep_next_cls = RL_CLASSES;
    p->next_sweep_ns = now_ns() + 1000000000ull; /* first sweep soon after start */
    pgrl_mask_conninfo(cfg->conninfo, p->masked, sizeof(p->masked));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cond, NULL);
    uv_loop_init(&p->loop);
    uv_async_init(&p->loop, &p->wake, on_wake);
    p->wake.data = p;
    uv_timer_init(&p->loop, &p->tick);
    p->tick.data = p;
    uv_timer_start(&p->tick, on_tick, PGRL_TICK_MS, PGRL_TICK_MS);
    for (uint32_t i = 0; i < p->cfg.pool; i++) {
        struct conn *c = &p->conns[i];
        c->p = p;
        c->idx = (int)i;
        c->poll_fd = -1;
        c->sweep_cls = -1;
        uv_timer_init(&p->loop, &c->retry);
        c->retry.data = c;
    }
    if (pthread_create(&p->thread, NULL, thread_main, p) != 0) {
        snprintf(err, errlen, "cannot start the rate limiter thread");
        pthread_mutex_lock(&p->mu);
        p->stopping = true;
        pthread_mutex_unlock(&p->mu);
        close_all(p);
        uv_run(&p->loop, UV_RUN_DEFAULT);
        pgrl_free(p);
        return -1;
    }
    p->thread_started = true;
    svc_log(SVC_LOG_INFO, "rate limits: PostgreSQL %s (pool %u, timeout %u ms)", p->masked, p->cfg.pool,
            p->cfg.timeout_ms);
    /* wait for the first attempts so the log says which limiter serves from the first request */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 3;
    pthread_mutex_lock(&p->mu);
    while (p->attempts_done < 1 && !atomic_load(&p->backend_pg))
        if (pthread_cond_timedwait(&p->cond, &p->mu, &until) != 0)
            break;
    pthread_mutex_unlock(&p->mu);
    *out = p;
    return 0;
}

void pgrl_stop(struct pgrl *p)
{
    if (p == NULL || p->stopped)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    uv_async_send(&p->wake);
    pthread_mutex_unlock(&p->mu);
    if (p->thread_started)
        pthread_join(p->thread, NULL);
    p->stopped = true;
}

void pgrl_free(struct pgrl *p)
{
    if (p == NULL)
        return;
    pgrl_stop(p);
    uv_loop_close(&p->loop);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mu);
    free(p->conninfo);
    free(p);
}
