/* api/misc.c — the small routes: /health (can this node commit? is it degraded?), /metrics (Prometheus text),
 * /robots.txt (keep crawlers off tokens) and / (a pointer to /new until the home page lands).
 */
#include <stdio.h>

#include "api/handlers.h"
#include "api/reply.h"

void api_health_handle(struct api_thread *t, h2o_req_t *req)
{
    if (!api_is_method(req, "GET") && !api_is_method(req, "HEAD")) {
        api_send_405(t, req, API_ROUTE_HEALTH, "GET, HEAD");
        return;
    }
    char reason[640] = "";
    struct api_buf b = {0};
    int status = 200;
    const struct api_config *cfg = &t->api->cfg;
    if (node_healthy(t->api->node, reason, sizeof(reason))) {
        reason[0] = '\0';
        if (cfg->degraded != NULL && cfg->degraded(cfg->degraded_arg, reason, sizeof(reason))) {
            /* still 200: the node serves; the reason says what is missing */
            api_buf_puts(&b, "{\"health\":\"true\",\"degraded\":\"true\",\"reason\":");
            api_json_str(&b, reason, strnlen(reason, sizeof(reason)));
            api_buf_puts(&b, "}\n");
        } else {
            api_buf_puts(&b, "{\"health\":\"true\"}\n");
        }
    } else {
        status = 503;
        api_buf_puts(&b, "{\"health\":\"false\",\"reason\":");
        api_json_str(&b, reason, strnlen(reason, sizeof(reason)));
        api_buf_puts(&b, "}\n");
    }
    api_send_buf(t, req, API_ROUTE_HEALTH, status, "application/json", &b);
}

static void metrics_write(void *wctx, const char *s, size_t n)
{
    api_buf_put(wctx, s, n);
}

static void counter(struct api_buf *b, const char *name, const char *help, uint64_t v, const char *type)
{
    api_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
                   (unsigned long long)v);
}

/* One family with a sample per peer, labelled by its member ID (%x, as /v2/members writes it). */
static void per_peer(struct api_buf *b, const struct node_stats *st, const char *name, const char *help,
                     const char *type, uint64_t (*get)(const struct node_peer_stats *))
{
    if (st->n_peers == 0)
        return;
    api_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (size_t i = 0; i < st->n_peers; i++)
        api_buf_printf(b, "%s{peer=\"%llx\"} %llu\n", name, (unsigned long long)st->peers[i].id,
                       (unsigned long long)get(&st->peers[i]));
}

static uint64_t peer_sent(const struct node_peer_stats *p)
{
    return p->frames_sent;
}

static uint64_t peer_dropped(const struct node_peer_stats *p)
{
    return p->frames_dropped;
}

static uint64_t peer_snapshots(const struct node_peer_stats *p)
{
    return p->snapshots_sent;
}

static uint64_t peer_queued(const struct node_peer_stats *p)
{
    return p->queued_bytes;
}

static uint64_t peer_connected(const struct node_peer_stats *p)
{
    return p->connected;
}

void api_metrics_handle(struct api_thread *t, h2o_req_t *req)
{
    if (!api_is_method(req, "GET") && !api_is_method(req, "HEAD")) {
        api_send_405(t, req, API_ROUTE_METRICS, "GET, HEAD");
        return;
    }
    struct api *api = t->api;
    struct api_buf b = {0};
    api_buf_puts(&b,
                 "# HELP discoveryd_http_requests_total HTTP requests answered, by route and status code.\n"
                 "# TYPE discoveryd_http_requests_total counter\n");
    for (int r = 0; r < API_ROUTE_COUNT; r++) {
        for (int c = 0; c < API_NCODES; c++) {
            uint64_t v = atomic_load_explicit(&api->requests[r][c], memory_order_relaxed);
            if (v == 0)
                continue;
            char code[8];
            if (c < API_NCODES - 1 && api_metric_codes[c] != 0)
                snprintf(code, sizeof(code), "%d", api_metric_codes[c]);
            else
                snprintf(code, sizeof(code), "other");
            api_buf_printf(&b, "discoveryd_http_requests_total{route=\"%s\",code=\"%s\"} %llu\n",
                           api_route_name((enum api_route_kind)r), code, (unsigned long long)v);
        }
    }
    api_buf_puts(&b, "# HELP discoveryd_http_request_duration_seconds Time from a request's head to its answer, "
                     "by route (a parked watch counts until it is answered).\n"
                     "# TYPE discoveryd_http_request_duration_seconds histogram\n");
    for (int r = 0; r < API_ROUTE_COUNT; r++) {
        uint64_t cum = 0, n[API_LAT_BUCKETS + 1];
        for (int i = 0; i <= API_LAT_BUCKETS; i++)
            cum += n[i] = atomic_load_explicit(&api->lat[r][i], memory_order_relaxed);
        if (cum == 0)
            continue;
        const char *name = api_route_name((enum api_route_kind)r);
        cum = 0;
        for (int i = 0; i < API_LAT_BUCKETS; i++) {
            cum += n[i];
            api_buf_printf(&b, "discoveryd_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                           name, api_lat_bounds[i], (unsigned long long)cum);
        }
        cum += n[API_LAT_BUCKETS];
        api_buf_printf(&b, "discoveryd_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", name,
                       (unsigned long long)cum);
        api_buf_printf(&b, "discoveryd_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", name,
                       (double)atomic_load_explicit(&api->lat_sum_us[r], memory_order_relaxed) / 1e6);
        api_buf_printf(&b, "discoveryd_http_request_duration_seconds_count{route=\"%s\"} %llu\n", name,
                       (unsigned long long)cum);
    }
    struct node_stats st = {0};
    node_stats(api->node, &st);
    counter(&b, "discoveryd_tokens_created_total", "Tokens created (by /new or by hand).",
            atomic_load(&api->tokens_created), "counter");
    counter(&b, "discoveryd_registrations_total", "Member registrations accepted.",
            atomic_load(&api->registrations), "counter");
    counter(&b, "discoveryd_tokens_full_total", "Tokens that reached their size.",
            atomic_load(&api->tokens_full), "counter");
    counter(&b, "discoveryd_surplus_registrations_total", "Registrations beyond a token's size.",
            atomic_load(&api->surplus_registrations), "counter");
    counter(&b, "discoveryd_rate_limited_total", "Requests refused by a rate limit.",
            atomic_load(&api->rate_limited), "counter");
    counter(&b, "discoveryd_parked_watches", "Watches waiting for an event.", st.parked_watches, "gauge");
    counter(&b, "discoveryd_tokens_live", "Tokens in the store.", st.tokens, "gauge");
    counter(&b, "discoveryd_tokens_max", "The --max-tokens cap on live tokens (0: none).", api->cfg.max_tokens,
            "gauge");
    counter(&b, "discoveryd_tokens_refused_total", "Token creations refused with 503 because --max-tokens were live.",
            atomic_load(&api->tokens_refused_cap), "counter");
    counter(&b, "discoveryd_store_nodes", "Nodes in the key tree.", st.nodes, "gauge");
    counter(&b, "discoveryd_store_applied_total", "Commands applied to the store.", st.applied, "counter");
    counter(&b, "discoveryd_tokens_expired_total", "Tokens deleted by expiry.", st.expired_tokens, "counter");
    counter(&b, "discoveryd_expiry_sweeps_total", "Expiry sweeps proposed (each removes a bounded batch).",
            st.sweeps, "counter");
    counter(&b, "discoveryd_expiry_sweeps_chained_total",
            "Expiry sweeps proposed right after the previous one because more was already due.", st.sweeps_chained,
            "counter");
    counter(&b, "discoveryd_wal_fsyncs_total", "fdatasync/fsync calls of the write-ahead log.", st.wal_fsyncs,
            "counter");
    counter(&b, "discoveryd_wal_commits_total", "Group commits (write + fdatasync rounds) of the write-ahead log.",
            st.wal_rounds, "counter");
    counter(&b, "discoveryd_wal_written_bytes_total", "Record bytes written to the write-ahead log.", st.wal_bytes,
            "counter");
    counter(&b, "discoveryd_snapshots_total", "Snapshots made durable since start.", st.snapshots, "counter");
    counter(&b, "discoveryd_snapshot_index", "Log index of the latest durable snapshot.", st.snapshot_index,
            "gauge");
    counter(&b, "discoveryd_is_leader", "1 if this member leads the cluster.", st.is_leader, "gauge");
    counter(&b, "discoveryd_raft_term", "The Raft term this member is in.", st.term, "gauge");
    counter(&b, "discoveryd_raft_commit_index", "The last committed log index this member knows.",
            st.commit_index, "gauge");
    counter(&b, "discoveryd_raft_applied_index", "The last log index applied to the store here.",
            st.applied_index, "gauge");
    counter(&b, "discoveryd_leader_changes_total", "Times the known leader changed since start.",
            st.leader_changes, "counter");
    counter(&b, "discoveryd_proposals_committed_total",
            "Writes submitted to this member whose log entry committed (whatever the store answered).",
            st.proposals_committed, "counter");
    counter(&b, "discoveryd_proposals_failed_total",
            "Writes submitted to this member answered 5xx (no leader, leadership lost, wait passed).",
            st.proposals_failed, "counter");
    if (st.n_peers > 0) {
        counter(&b, "discoveryd_peer_frames_received_total", "Frames from peers delivered to this member.",
                st.peer_frames_received, "counter");
        counter(&b, "discoveryd_peer_frames_foreign_total",
                "Frames from peers dropped: another cluster ID, an unknown member, or not addressed to us.",
                st.peer_frames_foreign, "counter");
    }
    per_peer(&b, &st, "discoveryd_peer_frames_sent_total", "Frames written to the connection to a peer.",
             "counter", peer_sent);
    per_peer(&b, &st, "discoveryd_peer_frames_dropped_total",
             "Frames to a peer dropped: its send queue was full or the write failed (Raft retries).", "counter",
             peer_dropped);
    per_peer(&b, &st, "discoveryd_peer_snapshots_sent_total", "Snapshot streams sent whole to a peer.", "counter",
             peer_snapshots);
    per_peer(&b, &st, "discoveryd_peer_queued_bytes", "Bytes waiting in the send queue to a peer.", "gauge",
             peer_queued);
    per_peer(&b, &st, "discoveryd_peer_connected", "1 if this member's connection to a peer is up.", "gauge",
             peer_connected);
    if (api->cfg.metrics_extra != NULL)
        api->cfg.metrics_extra(api->cfg.metrics_extra_arg, metrics_write, &b);
    api_send_buf(t, req, API_ROUTE_METRICS, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
}

void api_robots_handle(struct api_thread *t, h2o_req_t *req)
{
    if (!api_is_method(req, "GET") && !api_is_method(req, "HEAD")) {
        api_send_405(t, req, API_ROUTE_ROBOTS, "GET, HEAD");
        return;
    }
    static const char body[] = "User-agent: *\nDisallow: /\n";
    api_send(t, req, API_ROUTE_ROBOTS, 200, "text/plain; charset=utf-8", body, sizeof(body) - 1);
}

void api_home_handle(struct api_thread *t, h2o_req_t *req)
{
    if (!api_is_method(req, "GET") && !api_is_method(req, "HEAD")) {
        api_send_405(t, req, API_ROUTE_HOME, "GET, HEAD");
        return;
    }
    api_send_text(t, req, API_ROUTE_HOME, 200,
                  "discoveryd: an etcd discovery service. Create a token with: curl -w \"\\n\" 'http://<this "
                  "host>/new?size=3'");
}
