/* service/svc.c — start-up and graceful shutdown of the whole process.
 *
 * Start: the data dir, then the listeners (a bind error stops the start before anything else
 * runs), the node, the rate limiter, the api and the HTTP threads.
 * Stop: threads stop accepting and stop handing requests to the api (acknowledged), node_stop
 * completes pending ops and parked watches, threads deliver those answers and close, then
 * everything is freed in reverse order.
 */
#include "service/svc.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "service/cluster.h"
#include "service/log.h"
#include "service/pgrl.h"
#include "service/procmetrics.h"
#include "service/ratelimit.h"
#include "service/server.h"
#include "service/xff.h"
#include "store/node.h"

/* How long a stopping thread waits for clients to take their last responses. */
#define SVC_DRAIN_GRACE_MS 10000

struct svc {
    const struct svc_config *cfg;
    struct svc_server *srv;
    struct node *node;
    struct rl *rl;
    struct pgrl *pgrl; /* NULL without --postgres */
    struct svc_xff xff;
    struct api *api;
    struct node_cluster cluster; /* n == 0: one member */
    bool serving; /* HTTP threads were started (some may have failed) */
};

static void svc_free(struct svc *s)
{
    if (s->serving) {
        /* A leader hands over first, while it still serves, so a rolling restart costs no
         * election (writes arriving meanwhile are forwarded to the new leader). */
        node_handover(s->node, 3000);
        /* Order matters: no thread may call into the api (and so the node) once node_stop
         * began, and the threads must still run while node_stop's completions are delivered. */
        svc_server_stop_accepting(s->srv);
        /* every question out to PostgreSQL is answered (the threads decide those locally)
         * while the threads still run and before the node stops */
        pgrl_stop(s->pgrl);
        node_stop(s->node);
        size_t abandoned = svc_server_drain(s->srv, SVC_DRAIN_GRACE_MS);
        if (abandoned > 0)
            svc_log(SVC_LOG_WARN, "%zu connection(s) abandoned at shutdown", abandoned);
    }
    svc_server_free(s->srv);
    /* Only now: the completions node_stop posted were rendered on the HTTP threads, from the node. */
    node_free(s->node);
    api_free(s->api);
    pgrl_free(s->pgrl);
    rl_free(s->rl);
    free(s);
}

/* /metrics without --postgres: the same backend gauge, always local. */
static void local_metrics(void *arg, void (*write)(void *wctx, const char *s, size_t n), void *wctx)
{
    (void)arg;
    static const char m[] = "# HELP discoveryd_ratelimit_backend The limiter that decides rate limits now "
                            "(1) and the other (0).\n"
                            "# TYPE discoveryd_ratelimit_backend gauge\n"
                            "discoveryd_ratelimit_backend{backend=\"postgres\"} 0\n"
                            "discoveryd_ratelimit_backend{backend=\"local\"} 1\n";
    write(wctx, m, sizeof(m) - 1);
}

/* Everything service/ adds to /metrics: the process's own lines, then the rate limiter's. */
static void svc_metrics(void *arg, void (*write)(void *wctx, const char *s, size_t n), void *wctx)
{
    struct svc *s = arg;
    svc_process_metrics(write, wctx);
    if (s->pgrl != NULL)
        pgrl_metrics(s->pgrl, write, wctx);
    else
        local_metrics(NULL, write, wctx);
}

int svc_start(struct svc **out, const struct svc_config *cfg, char *err, size_t errlen)
{
    struct svc *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    s->cfg = cfg;
    svc_log_set_level(cfg->log_level);
    api_log = svc_api_log;

    if (svc_cluster_from_config(cfg, &s->cluster, err, errlen) != 0)
        goto fail;
    if (svc_config_prepare_data_dir(cfg, err, errlen) != 0)
        goto fail;
    if (svc_server_new(&s->srv, cfg, err, errlen) != 0)
        goto fail;
    if (s->cluster.n > 0 && !s->cluster.cert)
        svc_log(SVC_LOG_WARN, "peer traffic is unauthenticated (no --peer-cert-file): keep the peer port "
                              "on a network only the members reach");

    /* every field from the flags (their defaults live in config.c); a one-member cluster's ID
     * comes from its data dir, a cluster's from its members */
    const struct node_config nc = {
        .history_per_token = cfg->history,
        .watch_timeout_ms = cfg->watch_timeout_ms,
        .max_watches_total = cfg->max_watches,
        .max_watches_per_client = cfg->max_watches_per_client,
        .token_ttl_ms = cfg->token_ttl_ms,
        .data_dir = cfg->data_dir,
        .snapshot_count = cfg->snapshot_count,
        .cluster = &s->cluster,
    };
    char nerr[512] = "";
    if (node_start(&s->node, &nc, nerr, sizeof(nerr)) != 0) {
        s->node = NULL;
        snprintf(err, errlen, "cannot start the store: %.480s", nerr);
        goto fail;
    }

    struct rl_config rc = {.max_buckets = 0};
    rc.rules[API_RL_NEW_ADDR] = (struct rl_rule){cfg->new_rate, cfg->new_burst};
    rc.rules[API_RL_NEW_RANGE] = (struct rl_rule){cfg->new_range_rate, cfg->new_range_burst};
    rc.rules[API_RL_TOKEN_WRITE] = (struct rl_rule){cfg->token_write_rate, cfg->token_write_burst};
    if (rl_new(&s->rl, &rc) != 0) {
        s->rl = NULL;
        snprintf(err, errlen, "out of memory (rate limiter)");
        goto fail;
    }
    if (cfg->postgres != NULL) {
        struct pgrl_config pc = {
            .conninfo = cfg->postgres,
            .pool = cfg->postgres_pool,
            .timeout_ms = (uint32_t)cfg->postgres_timeout_ms,
        };
        memcpy(pc.rules, rc.rules, sizeof(pc.rules));
        if (pgrl_new(&s->pgrl, &pc, s->rl, err, errlen) != 0) {
            s->pgrl = NULL;
            goto fail;
        }
    } else {
        svc_log(SVC_LOG_INFO, "rate limits are per process (no --postgres)");
    }

    struct api_config ac;
    api_config_defaults(&ac);
    ac.public_url = cfg->public_url[0] ? cfg->public_url : NULL;
    ac.max_size = cfg->max_size;
    ac.max_tokens = cfg->max_tokens;
    ac.surplus = cfg->surplus;
    ac.max_value_bytes = cfg->max_value;
    ac.max_key_bytes = cfg->max_key;
    ac.max_body_bytes = cfg->max_body;
    ac.token_ttl_ms = cfg->token_ttl_ms;
    if (s->pgrl != NULL) {
        ac.rate = pgrl_api_rate;
        ac.rate_arg = s->pgrl;
        ac.rate_timeout_ms = (uint32_t)cfg->postgres_timeout_ms;
        ac.degraded = pgrl_degraded;
        ac.degraded_arg = s->pgrl;
    } else {
        ac.rate = rl_api_rate;
        ac.rate_arg = s->rl;
    }
    ac.metrics_extra = svc_metrics;
    ac.metrics_extra_arg = s;
    if (cfg->n_trusted > 0) {
        s->xff = (struct svc_xff){cfg->trusted, cfg->n_trusted};
        ac.client_addr = xff_client_addr;
        ac.client_addr_arg = &s->xff;
        svc_log(SVC_LOG_INFO,
                "X-Forwarded-For is believed from %zu trusted proxy network(s) (--trusted-proxy)",
                cfg->n_trusted);
    }
    if (api_new(&s->api, &ac, s->node) != 0) {
        s->api = NULL;
        snprintf(err, errlen, "out of memory (api)");
        goto fail;
    }

    s->serving = true;
    char terr[256] = "";
    if (svc_server_start(s->srv, s->api, terr, sizeof(terr)) != 0) {
        snprintf(err, errlen, "cannot start HTTP threads: %s", terr);
        goto fail;
    }
    svc_log(SVC_LOG_INFO, "discoveryd %s listening on %s; data dir %s; %u HTTP thread(s)%s", SVC_VERSION,
            svc_server_addresses(s->srv), cfg->data_dir, cfg->threads, cfg->tls_cert ? "; TLS" : "");
    *out = s;
    return 0;

fail:
    svc_log(SVC_LOG_ERROR, "%s", err);
    if (s != NULL)
        svc_free(s);
    return -1;
}

const char *svc_addresses(const struct svc *s)
{
    return svc_server_addresses(s->srv);
}

void svc_stop(struct svc *s)
{
    svc_free(s);
    svc_log(SVC_LOG_INFO, "stopped");
}

int svc_run(const struct svc_config *cfg)
{
    char err[512];
    sigset_t stop_set;
    struct svc *s;
    int sig = 0;

    signal(SIGPIPE, SIG_IGN); /* a client that hangs up must not kill the process */
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);

    if (svc_start(&s, cfg, err, sizeof(err)) != 0)
        return 1;
    while (sigwait(&stop_set, &sig) != 0)
        ;
    svc_log(SVC_LOG_INFO, "received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    svc_stop(s);
    return 0;
}
