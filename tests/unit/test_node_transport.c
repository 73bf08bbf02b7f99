/* tests/unit/test_node_transport.c — the peer transport (store/transport.c): two or three transports
 * on one uv loop over loopback. Raft messages arrive intact and in order, peers that start late or
 * restart are reached, the queue bound drops and counts, foreign and malformed frames are refused,
 * snapshots stream whole or not at all, forwarding round-trips. Waits are bounded; no time asserted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "store/crc32c.h"
#include "store/transport.h"
#include "store/transport_int.h" /* one test reaches into a peer's backoff */

#define WAIT_MS 10000
#define CLUSTER 0xC1C1u

/* ---- fixture ---- */

struct rec {
    uint8_t type;
    uint64_t from, index, term;
    uint32_t n_entries;
    uint8_t *blob; /* entries' data concatenated */
    size_t blob_len;
};

struct tnode {
    struct transport *t;
    uint64_t id;
    char dir[64];
    struct rec msgs[512];
    int n_msgs;
    int n_snaps;
    char snap_path[512];
    struct raft_snapshot_meta snap_meta;
    uint64_t snap_len;
    int n_fwd, n_fwded;
    uint64_t fwd_from, fwd_req, fwded_req, fwded_index, fwded_term;
    int fwded_status;
    char fwd_cmd[64];
    bool answer_forwards;
};

static uv_loop_t loop;
static uv_timer_t tick;
/* Transports still running, destroyed by teardown when a failed assertion skipped node_destroy. */
static struct tnode *live[8];

static void node_destroy(struct tnode *n);

static void on_message(void *arg, const struct raft_message *m, const char *snap_path)
{
    struct tnode *n = arg;
    if (snap_path != NULL) {
        n->n_snaps++;
        snprintf(n->snap_path, sizeof(n->snap_path), "%s", snap_path);
        n->snap_meta = m->snapshot.meta;
        n->snap_len = m->snapshot.len;
        return;
    }
    assert_true(n->n_msgs < 512);
    struct rec *r = &n->msgs[n->n_msgs++];
    r->type = m->type;
    r->from = m->from;
    r->index = m->index;
    r->term = m->term;
    r->n_entries = m->n_entries;
    r->blob_len = 0;
    for (uint32_t i = 0; i < m->n_entries; i++)
        r->blob_len += m->entries[i].len;
    r->blob = malloc(r->blob_len + 1);
    size_t off = 0;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        assert_int_equal(m->entries[i].index, m->index + 1 + i);
        if (m->entries[i].len > 0)
            memcpy(r->blob + off, m->entries[i].data, m->entries[i].len);
        off += m->entries[i].len;
    }
}

static void on_forward(void *arg, uint64_t from, uint64_t req, const uint8_t *cmd, size_t len)
{
    struct tnode *n = arg;
    n->n_fwd++;
    n->fwd_from = from;
    n->fwd_req = req;
    snprintf(n->fwd_cmd, sizeof(n->fwd_cmd), "%.*s", (int)len, (const char *)cmd);
    if (n->answer_forwards)
        transport_forwarded(n->t, from, req, 1000 + req, 7, req == 2 ? -3 : 0);
}

static void on_forwarded(void *arg, uint64_t req, uint64_t index, uint64_t term, int status)
{
    struct tnode *n = arg;
    n->n_fwded++;
    n->fwded_req = req;
    n->fwded_index = index;
    n->fwded_term = term;
    n->fwded_status = status;
}

static void tick_cb(uv_timer_t *t) {}

static int setup(void **state)
{
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, tick_cb, 5, 5); /* so uv_run(ONCE) never blocks long */
    return 0;
}

static int teardown(void **state)
{
    for (int i = 0; i < 8; i++)
        if (live[i] != NULL)
            node_destroy(live[i]); /* its temp dir goes too */
    uv_close((uv_handle_t *)&tick, NULL);
    uint64_t end = uv_hrtime() + 2000000000u; /* bounded: a leftover handle fails, never hangs */
    while (uv_loop_alive(&loop) && uv_hrtime() < end)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&loop), 0); /* every handle the transports opened was closed */
    return 0;
}

/* Run the loop until cond(arg) or WAIT_MS passed; returns cond's last value. */
static bool run_until(bool (*cond)(void *), void *arg)
{
    uint64_t end = uv_hrtime() + (uint64_t)WAIT_MS * 1000000u;
    while (!cond(arg) && uv_hrtime() < end)
        uv_run(&loop, UV_RUN_ONCE);
    return cond(arg);
}

/* Run the loop for about ms (for "nothing happens" checks; no timing is asserted). */
static void run_for(unsigned ms)
{
    uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;
    while (uv_hrtime() < end)
        uv_run(&loop, UV_RUN_ONCE);
}

/* A free loopback port: bind port 0, read it, close. */
static uint16_t free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    return ntohs(a.sin_port);
}

struct peerspec {
    uint64_t id;
    uint16_t port;
};

static void node_init(struct tnode *n, uint64_t id)
{
    memset(n, 0, sizeof(*n));
    n->id = id;
    snprintf(n->dir, sizeof(n->dir), "/tmp/dd-transport-XXXXXX");
    assert_non_null(mkdtemp(n->dir));
}

static const char *peer_host = "127.0.0.1"; /* how peers are named in the next config */
/* With TLS: the files <tls_dir>/<tls_name>.pem, .key and <tls_dir>/<tls_ca>.pem (see mint_certs). */
static const char *tls_dir, *tls_name, *tls_ca;

static void node_start_cfg(struct tnode *n, uint64_t cluster, uint16_t port, const struct peerspec *peers,
                           size_t np, size_t queue_bytes)
{
    struct transport_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    char cert[256], key[256], ca[256];
    if (tls_name != NULL) {
        snprintf(cert, sizeof(cert), "%s/%s.pem", tls_dir, tls_name);
        snprintf(key, sizeof(key), "%s/%s.key", tls_dir, tls_name);
        snprintf(ca, sizeof(ca), "%s/%s.pem", tls_dir, tls_ca);
        cfg.cert_file = cert;
        cfg.key_file = key;
        cfg.ca_file = ca;
    }
    cfg.loop = &loop;
    cfg.self_id = n->id;
    cfg.cluster_id = cluster;
    strcpy(cfg.listen_host, "127.0.0.1");
    cfg.listen_port = port;
    for (size_t i = 0; i < np; i++) {
        cfg.peers[i].id = peers[i].id;
        strcpy(cfg.peers[i].host, peer_host);
        cfg.peers[i].port = peers[i].port;
    }
    cfg.n_peers = np;
    cfg.queue_bytes = queue_bytes;
    char recv[128];
    snprintf(recv, sizeof(recv), "%s/recv", n->dir);
    cfg.snap_recv_dir = recv;
    cfg.h = (struct transport_handlers){.message = on_message, .forward = on_forward, .forwarded = on_forwarded, .arg = n};
    char err[256] = "";
    int rv = transport_start(&n->t, &cfg, err, sizeof(err));
    if (rv != 0)
        fail_msg("transport_start: %s", err);
    for (int i = 0; i < 8; i++)
        if (live[i] == NULL) {
            live[i] = n;
            break;
        }
}

static void node_start(struct tnode *n, uint16_t port, const struct peerspec *peers, size_t np)
{
    node_start_cfg(n, CLUSTER, port, peers, np, 0);
}

static void node_stop(struct tnode *n)
{
    if (n->t == NULL)
        return;
    for (int i = 0; i < 8; i++)
        if (live[i] == n)
            live[i] = NULL;
    transport_stop(n->t);
    for (int i = 0; i < 5; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    transport_free(n->t);
    n->t = NULL;
}

static int count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int k = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name), s = strlen(suffix);
        if (e->d_name[0] != '.' && l >= s && strcmp(e->d_name + l - s, suffix) == 0)
            k++;
    }
    closedir(d);
    return k;
}

static void node_destroy(struct tnode *n)
{
    node_stop(n);
    for (int i = 0; i < n->n_msgs; i++)
        free(n->msgs[i].blob);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", n->dir);
    assert_int_equal(system(cmd), 0);
}

static struct transport_peer_stats peer_stats(struct tnode *n, uint64_t id)
{
    struct transport_stats st;
    transport_stats(n->t, &st);
    for (size_t i = 0; i < st.n_peers; i++)
        if (st.peers[i].id == id)
            return st.peers[i];
    fail_msg("no peer %llx", (unsigned long long)id);
    return st.peers[0];
}

/* An APPEND from..to whose k entries carry recognisable bytes derived from seq. */
static void make_append(struct raft_message *m, struct raft_entry *es, uint8_t (*bufs)[300], uint64_t from,
                        uint64_t to, uint64_t seq, uint32_t k)
{
    memset(m, 0, sizeof(*m));
    m->type = RAFT_MSG_APPEND;
    m->from = from;
    m->to = to;
    m->term = 3;
    m->index = seq * 10;
    m->log_term = 3;
    m->n_entries = k;
    m->entries = es;
    for (uint32_t i = 0; i < k; i++) {
        uint32_t len = (uint32_t)((seq * 7 + i * 13) % 300);
        for (uint32_t j = 0; j < len; j++)
            bufs[i][j] = (uint8_t)(seq + i + j);
        es[i] = (struct raft_entry){.term = 3,
                                    .index = m->index + 1 + i,
                                    .type = RAFT_ENTRY_NORMAL,
                                    .len = len,
                                    .data = len ? bufs[i] : NULL};
    }
}

static void check_append(const struct rec *r, uint64_t from, uint64_t seq, uint32_t k)
{
    assert_int_equal(r->type, RAFT_MSG_APPEND);
    assert_int_equal(r->from, from);
    assert_int_equal(r->index, seq * 10);
    assert_int_equal(r->n_entries, k);
    size_t off = 0;
    for (uint32_t i = 0; i < k; i++) {
        uint32_t len = (uint32_t)((seq * 7 + i * 13) % 300);
        for (uint32_t j = 0; j < len; j++)
            assert_int_equal(r->blob[off + j], (uint8_t)(seq + i + j));
        off += len;
    }
    assert_int_equal(off, r->blob_len);
}

static int send_append(struct tnode *a, uint64_t to, uint64_t seq, uint32_t k)
{
    struct raft_message m;
    struct raft_entry es[4];
    static uint8_t bufs[4][300];
    make_append(&m, es, bufs, a->id, to, seq, k);
    return transport_send(a->t, &m);
}

struct want {
    struct tnode *n;
    int k;
};
static bool has_msgs(void *arg)
{
    struct want *w = arg;
    return w->n->n_msgs >= w->k;
}
static bool connected(void *arg)
{
    struct tnode **pair = arg;
    return peer_stats(pair[0], pair[1]->id).connected;
}

/* ---- tests ---- */

static void test_raft_messages_with_entries_arrive_intact_and_in_order(void **state)
{
    struct tnode a, b;
    node_init(&a, 1);
    node_init(&b, 2);
    uint16_t pa = free_port(), pb = free_port();
    node_start(&b, pb, (struct peerspec[]){{1, pa}}, 1);
    node_start(&a, pa, (struct peerspec[]){{2, transport_port(b.t)}}, 1);
    assert_int_equal(transport_port(b.t), pb);
    for (uint64_t s = 1; s <= 200; s++)
        assert_int_equal(send_append(&a, 2, s, (uint32_t)(s % 4)), 0);
    struct want w = {&b, 200};
    assert_true(run_until(has_msgs, &w));
    for (int i = 0; i < 200; i++)
        check_append(&b.msgs[i], 1, (uint64_t)i + 1, (uint32_t)((i + 1) % 4));
    assert_int_equal(peer_stats(&a, 2).sent, 200);
    assert_int_equal(peer_stats(&a, 2).dropped, 0);
    /* a message without entries, and one the other way */
    struct raft_message v = {.type = RAFT_MSG_VOTE_RESP, .from = 2, .to = 1, .term = 9, .reject = true};
    assert_int_equal(transport_send(b.t, &v), 0);
    w = (struct want){&a, 1};
    assert_true(run_until(has_msgs, &w));
    assert_int_equal(a.msgs[0].type, RAFT_MSG_VOTE_RESP);
    assert_int_equal(a.msgs[0].term, 9);
    assert_int_equal(transport_send(a.t, &(struct raft_message){.type = RAFT_MSG_VOTE, .from = 1, .to = 77}),
                     -ENOENT);
    node_destroy(&a);
    node_destroy(&b);
}

static void test_peer_that_starts_later_is_reached(void **state)
{
    struct tnode a, b;
    node_init(&a, 1);
    node_init(&b, 2);
    uint16_t pa = free_port(), pb = free_port();
    node_start(&a, pa, (struct peerspec[]){{2, pb}}, 1);
    assert_int_equal(send_append(&a, 2, 1, 2), 0); /* queued while b is not there */
    run_for(300);                                  /* a few refused connects and backoffs */
    assert_false(peer_stats(&a, 2).connected);
    node_start(&b, pb, (struct peerspec[]){{1, pa}}, 1);
    struct want w = {&b, 1};
    assert_true(run_until(has_msgs, &w));
    check_append(&b.msgs[0], 1, 1, 2);
    node_destroy(&a);
    node_destroy(&b);
}

/* A member that connects to us is up: our own connection to it is made at once, not when its
 * backoff timer fires. The backoff is set to ten minutes so only that rule can connect a in time. */
static void test_peer_that_connects_to_us_is_reached_without_waiting_for_the_backoff(void **state)
{
    struct tnode a, b;
    node_init(&a, 1);
    node_init(&b, 2);
    uint16_t pa = free_port(), pb = free_port();
    node_start(&a, pa, (struct peerspec[]){{2, pb}}, 1);
    struct tr_peer *p = tr_peer_find(a.t, 2);
    assert_non_null(p);
    p->backoff_ms = 600000;
    struct tnode *pair[2] = {&a, &b};
    run_for(200); /* refused: the next attempt is ten minutes away */
    assert_false(connected(pair));
    node_start(&b, pb, (struct peerspec[]){{1, pa}}, 1);
    assert_int_equal(send_append(&b, 1, 1, 2), 0); /* b's frame binds its connection to a */
    struct want w = {&a, 1};
    assert_true(run_until(has_msgs, &w));
    assert_true(run_until(connected, pair));
    node_destroy(&a);
    node_destroy(&b);
}

static void test_peer_named_by_host_name_is_resolved_and_reached(void **state)
{
    struct tnode a, b;
    node_init(&a, 1);
    node_init(&b, 2);
    node_start(&b, 0, (struct peerspec[]){{1, free_port()}}, 1);
    peer_host = "localhost"; /* from /etc/hosts; may list ::1 first: attempts go round the addresses */
    node_start(&a, 0, (struct peerspec[]){{2, transport_port(b.t)}}, 1);
    peer_host = "127.0.0.1";
    assert_int_equal(send_append(&a, 2, 3, 2), 0);
    struct want w = {&b, 1};
    assert_true(run_until(has_msgs, &w));
    check_append(&b.msgs[0], 1, 3, 2);
    node_destroy(&a);
    node_destroy(&b);
}

static void test_stop_and_free_while_a_name_is_resolving(void **state)
{
    struct tnode a;
    node_init(&a, 1);
    peer_host = "localhost";
    node_start(&a, 0, (struct peerspec[]){{2, free_port()}}, 1);
    peer_host = "127.0.0.1";
    /* the resolver request is in flight: free must leave it a transport to return to (ASan) */
    struct transport *t = a.t;
    for (int i = 0; i < 8; i++)
        if (live[i] == &a)
            live[i] = NULL;
    a.t = NULL;
    transport_stop(t);
    transport_free(t);
    node_destroy(&a); /* teardown runs the loop until the request returned */
}

struct resend {
    struct tnode *a, *b;
    uint64_t seq;
    int want;
};
/* Keep sending (nothing is promised across reconnects) until b has want messages. */
static bool resend_until(void *arg)
{
    struct resend *r = arg;
    if (r->b->n_msgs >= r->want)
        return true;
    send_append(r->a, r->b->id, ++r->seq, 1);
    run_for(10);
    return r->b->n_msgs >= r->want;
}

static void test_peer_that_goes_away_and_comes_back_is_reached_again(void **state)
{
    struct tnode a, b;
    node_init(&a, 1);
    node_init(&b, 2);
    uint16_t pa = free_port(), pb = free_port();
    node_start(&b, pb, (struct peerspec[]){{1, pa}}, 1);
    node_start(&a, pa, (struct peerspec[]){{2, pb}}, 1);
    struct resend r = {&a, &b, 0, 1};
    assert_true(run_until(resend_until, &r));
    node_stop(&b); /* b goes away: a notices and backs off */
    struct tnode *pair[2] = {&a, &b};
    run_for(200);
    assert_false(connected(pair));
    int before = b.n_msgs;
    node_start(&b, pb, (struct peerspec[]){{1, pa}}, 1);
    r.want = before + 3;
    assert_true(run_until(resend_until, &r));
    assert_true(connected(pair));
    node_destroy(&a);
    node_destroy(&b);
}

static void test_queue_bound_drops_and_counts_while_peer_is_down(void **state)
{
    struct tnode a;
    node_init(&a, 1);
    node_start_cfg(&a, CLUSTER, 0, (struct peerspec[]){{2, free_port()}}, 1, 64 * 1024);
    int ok = 0, dropped = 0;
    for (uint64_t s = 1; s <= 2000; s++) {
        int rv = send_append(&a, 2, s, 3);
        if (rv == 0)
            ok++;
        else {
            assert_int_equal(rv, -ENOBUFS);
            dropped++;
        }
        if (s % 100 == 0)
            uv_run(&loop, UV_RUN_NOWAIT);
    }
    struct transport_peer_stats st = peer_stats(&a, 2);
    assert_true(ok > 0);
    assert_true(dropped > 1000);
    assert_int_equal(st.dropped, (uint64_t)dropped);
    assert_true(st.queued_bytes <= 64 * 1024);
    assert_true(st.queued_bytes > 32 * 1024);
    assert_int_equal(st.sent, 0);
    node_destroy(&a);
}

static bool foreign_count(void *arg)
{
    struct want *w = arg;
    struct transport_stats st;
    transport_stats(w->n->t, &st);
    return st.dropped_foreign >= (uint64_t)w->k;
}

static void test_foreign_cluster_unknown_member_and_wrong_recipient_are_dropped_and_counted(void **state)
{
    struct tnode b, c, d, e;
    node_init(&b, 2);
    node_init(&c, 1);
    node_init(&d, 9);
    node_init(&e, 1);
    node_start(&b, 0, (struct peerspec[]){{1, free_port()}}, 1);
    uint16_t pb = transport_port(b.t);
    node_start_cfg(&c, 0xBAD, 0, (struct peerspec[]){{2, pb}}, 1, 0); /* another cluster */
    node_start(&d, 0, (struct peerspec[]){{2, pb}}, 1);               /* a member b does not know */
    node_start(&e, 0, (struct peerspec[]){{5, pb}}, 1);               /* right cluster, wrong "to" */
    assert_int_equal(send_append(&c, 2, 1, 1), 0);
    assert_int_equal(send_append(&d, 2, 1, 1), 0);
    assert_int_equal(send_append(&e, 5, 1, 1), 0);
    struct want w = {&b, 3};
    assert_true(run_until(foreign_count, &w));
    run_for(50);
    struct transport_stats st;
    transport_stats(b.t, &st);
    assert_int_equal(st.dropped_foreign, 3);
    assert_int_equal(st.received, 0);
    assert_int_equal(b.n_msgs, 0);
    node_destroy(&c);
    node_destroy(&d);
    node_destroy(&e);
    node_destroy(&b);
}

/* ---- raw frames on a plain socket ---- */

static int raw_connect(uint16_t port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof(a)), 0);
    return s;
}

static size_t raw_frame(uint8_t *out, uint8_t version, uint8_t kind, uint64_t cluster, uint64_t from,
                        uint64_t to, const void *payload, size_t n)
{
    uint32_t len = (uint32_t)(26 + n);
    for (int i = 0; i < 4; i++)
        out[i] = (uint8_t)(len >> (8 * i));
    out[4] = version;
    out[5] = kind;
    for (int i = 0; i < 8; i++) {
        out[6 + i] = (uint8_t)(cluster >> (8 * i));
        out[14 + i] = (uint8_t)(from >> (8 * i));
        out[22 + i] = (uint8_t)(to >> (8 * i));
    }
    if (n > 0)
        memcpy(out + 30, payload, n);
    return 30 + n;
}

static void raw_send(int s, const void *p, size_t n)
{
    assert_int_equal(send(s, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* True once the transport closed our socket (EOF or reset). */
static bool raw_closed(void *arg)
{
    int s = *(int *)arg;
    char c;
    ssize_t r = recv(s, &c, 1, MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static void expect_closed(const void *bytes, size_t n, uint16_t port)
{
    int s = raw_connect(port);
    raw_send(s, bytes, n);
    assert_true(run_until(raw_closed, &s));
    close(s);
}

static void test_malformed_frames_close_the_connection_and_nothing_else(void **state)
{
    struct tnode a, b;
    node_init(&a, 1);
    node_init(&b, 2);
    uint16_t pa = free_port();
    node_start(&b, 0, (struct peerspec[]){{1, pa}}, 1);
    uint16_t pb = transport_port(b.t);
    uint8_t f[256];
    /* length over the 16 MiB cap, and under the header size */
    expect_closed("\xff\xff\xff\xff", 4, pb);
    expect_closed("\x03\x00\x00\x00\x01\x01\x00", 7, pb);
    /* wrong version, unknown kind */
    expect_closed(f, raw_frame(f, 2, 1, CLUSTER, 1, 2, "x", 1), pb);
    expect_closed(f, raw_frame(f, 1, 9, CLUSTER, 1, 2, "x", 1), pb);
    /* a RAFT frame whose payload is garbage; a truncated FORWARDED; SNAP_DATA without a SNAP */
    expect_closed(f, raw_frame(f, 1, 1, CLUSTER, 1, 2, "garbage-garbage", 15), pb);
    expect_closed(f, raw_frame(f, 1, 3, CLUSTER, 1, 2, "12345678", 8), pb);
    expect_closed(f, raw_frame(f, 1, 5, CLUSTER, 1, 2, "data", 4), pb);
    /* a RAFT message whose inner "from" differs from the frame's */
    struct raft_message m = {.type = RAFT_MSG_HEARTBEAT, .from = 3, .to = 2, .term = 1};
    uint8_t enc[128];
    size_t el;
    assert_int_equal(raft_msg_encode(&m, enc, sizeof(enc), &el), 0);
    expect_closed(f, raw_frame(f, 1, 1, CLUSTER, 1, 2, enc, el), pb);
    /* a foreign frame is dropped but does not close: a good frame after it on the same socket
     * arrives */
    int s = raw_connect(pb);
    raw_send(s, f, raw_frame(f, 1, 1, 0xBAD, 1, 2, enc, el));
    /* an empty foreign frame, then one with a 1 MiB payload: skipped, not stored, the stream in step */
    size_t big = 1u << 20;
    uint8_t *junk = calloc(1, 30 + big);
    raw_send(s, junk, raw_frame(junk, 1, 5, CLUSTER, 77, 2, NULL, 0));
    junk[0] = 0, junk[1] = 0, junk[2] = 0x10, junk[3] = 0; /* length: 26 + 1 MiB - 26 */
    memset(junk + 30, 0xEE, big - 26);
    raw_send(s, junk, 4 + big);
    free(junk);
    m.from = 1;
    assert_int_equal(raft_msg_encode(&m, enc, sizeof(enc), &el), 0);
    raw_send(s, f, raw_frame(f, 1, 1, CLUSTER, 1, 2, enc, el));
    struct want w = {&b, 1};
    assert_true(run_until(has_msgs, &w));
    assert_int_equal(b.msgs[0].type, RAFT_MSG_HEARTBEAT);
    assert_false(raw_closed(&s));
    struct transport_stats st;
    transport_stats(b.t, &st);
    assert_int_equal(st.dropped_foreign, 3);
    close(s);
    assert_int_equal(b.n_msgs, 1);
    /* b still serves a real peer */
    node_start(&a, pa, (struct peerspec[]){{2, pb}}, 1);
    assert_int_equal(send_append(&a, 2, 5, 3), 0);
    w.k = 2;
    assert_true(run_until(has_msgs, &w));
    check_append(&b.msgs[1], 1, 5, 3);
    node_destroy(&a);
    node_destroy(&b);
}

struct socks {
    int fd[80];
    int n, want_closed;
};
static bool n_closed(void *arg)
{
    struct socks *s = arg;
    int k = 0;
    for (int i = 0; i < s->n; i++)
        k += raw_closed(&s->fd[i]);
    return k >= s->want_closed;
}

static void test_accepted_connections_are_capped(void **state)
{
    struct tnode b;
    node_init(&b, 2);
    node_start(&b, 0, (struct peerspec[]){{1, free_port()}}, 1);
    struct socks s = {.n = 4 * TRANSPORT_MAX_PEERS + 6, .want_closed = 6};
    for (int i = 0; i < s.n; i++)
        s.fd[i] = raw_connect(transport_port(b.t));
    assert_true(run_until(n_closed, &s));
    run_for(50);
    int k = 0;
    for (int i = 0; i < s.n; i++) {
        k += raw_closed(&s.fd[i]);
        close(s.fd[i]);
    }
    assert_int_equal(k, 6);
    node_destroy(&b);
}

/* ---- snapshots ---- */

static bool snap_arrived(void *arg)
{
    return ((struct tnode *)arg)->n_snaps > 0;
}

static void test_snapshot_file_streams_in_chunks_and_arrives_identical(void **state)
{
    struct tnode a, b;
    node_init(&a, 1);
    node_init(&b, 2);
    uint16_t pa = free_port(), pb = free_port();
    node_start(&b, pb, (struct peerspec[]){{1, pa}}, 1);
    node_start(&a, pa, (struct peerspec[]){{2, pb}}, 1);
    size_t size = 5u * 1024 * 1024 + 12345;
    uint8_t *data = malloc(size);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < size; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        data[i] = (uint8_t)x;
    }
    char path[128];
    snprintf(path, sizeof(path), "%s/snap.img", a.dir);
    FILE *fp = fopen(path, "wb");
    assert_int_equal(fwrite(data, 1, size, fp), size);
    fclose(fp);
    struct raft_message m = {.type = RAFT_MSG_SNAPSHOT, .from = 1, .to = 2, .term = 4};
    m.snapshot.meta =
        (struct raft_snapshot_meta){.index = 500, .term = 4, .conf = {.n = 3, .ids = {1, 2, 3}}};
    struct tnode *pair[2] = {&a, &b};
    assert_true(run_until(connected, pair));
    assert_int_equal(transport_send_snapshot(a.t, &m, path), 0);
    assert_int_equal(transport_send_snapshot(a.t, &m, path), -EBUSY);
    assert_true(run_until(snap_arrived, &b));
    assert_int_equal(b.n_snaps, 1);
    assert_int_equal(b.snap_meta.index, 500);
    assert_int_equal(b.snap_meta.term, 4);
    assert_int_equal(b.snap_meta.conf.n, 3);
    assert_int_equal(b.snap_meta.conf.ids[2], 3);
    assert_int_equal(b.snap_len, size);
    /* byte-identical */
    uint8_t *got = malloc(size + 1);
    fp = fopen(b.snap_path, "rb");
    assert_non_null(fp);
    assert_int_equal(fread(got, 1, size + 1, fp), size);
    fclose(fp);
    assert_memory_equal(got, data, size);
    free(got);
    /* it came as several chunk frames: SNAP + 6 chunks + SNAP_END */
    struct transport_stats st;
    transport_stats(b.t, &st);
    assert_int_equal(st.received, 1 + 6 + 1);
    char recv[128];
    snprintf(recv, sizeof(recv), "%s/recv", b.dir);
    assert_int_equal(count_files(recv, ".tmp"), 0);
    assert_int_equal(count_files(recv, ".snap"), 1);
    assert_int_equal(peer_stats(&a, 2).snapshots_sent, 1);
    /* a second stream may start once the first one ended */
    struct want w = {&b, 0};
    (void)w;
    assert_int_equal(transport_send_snapshot(a.t, &m, path), 0);
    b.n_snaps = 0;
    assert_true(run_until(snap_arrived, &b));
    assert_int_equal(count_files(recv, ".snap"), 2);
    free(data);
    node_destroy(&a);
    node_destroy(&b);
}

struct recvdir {
    const char *dir;
    const char *suffix;
    int want;
};
static bool files_are(void *arg)
{
    struct recvdir *r = arg;
    return count_files(r->dir, r->suffix) == r->want;
}
static bool received_at_least(void *arg)
{
    struct want *w = arg;
    struct transport_stats st;
    transport_stats(w->n->t, &st);
    return st.received >= (uint64_t)w->k;
}

static void test_broken_snapshot_stream_delivers_nothing_and_leaves_no_temp_file(void **state)
{
    struct tnode b;
    node_init(&b, 2);
    node_start(&b, 0, (struct peerspec[]){{1, free_port()}}, 1);
    uint16_t pb = transport_port(b.t);
    char recv[128];
    snprintf(recv, sizeof(recv), "%s/recv", b.dir);
    struct raft_message m = {.type = RAFT_MSG_SNAPSHOT, .from = 1, .to = 2, .term = 4};
    m.snapshot.meta = (struct raft_snapshot_meta){.index = 9, .term = 4, .conf = {.n = 1, .ids = {1}}};
    uint8_t enc[256], f[4096], chunk[1000];
    size_t el;
    assert_int_equal(raft_msg_encode(&m, enc, sizeof(enc), &el), 0);
    memset(chunk, 0xAB, sizeof(chunk));

    /* 1: the connection is lost mid-stream */
    int s = raw_connect(pb);
    raw_send(s, f, raw_frame(f, 1, 4, CLUSTER, 1, 2, enc, el));
    raw_send(s, f, raw_frame(f, 1, 5, CLUSTER, 1, 2, chunk, sizeof(chunk)));
    struct want w = {&b, 2};
    assert_true(run_until(received_at_least, &w));
    assert_int_equal(count_files(recv, ".tmp"), 1); /* the stream was being received */
    close(s);
    struct recvdir rd = {recv, ".tmp", 0};
    assert_true(run_until(files_are, &rd));

    /* 2: the end frame's CRC does not match */
    s = raw_connect(pb);
    raw_send(s, f, raw_frame(f, 1, 4, CLUSTER, 1, 2, enc, el));
    raw_send(s, f, raw_frame(f, 1, 5, CLUSTER, 1, 2, chunk, sizeof(chunk)));
    uint32_t bad = crc32c(chunk, sizeof(chunk)) ^ 1;
    uint8_t crc[4] = {(uint8_t)bad, (uint8_t)(bad >> 8), (uint8_t)(bad >> 16), (uint8_t)(bad >> 24)};
    raw_send(s, f, raw_frame(f, 1, 6, CLUSTER, 1, 2, crc, 4));
    w.k = 5;
    assert_true(run_until(received_at_least, &w));
    assert_int_equal(count_files(recv, ".tmp"), 0);
    assert_int_equal(count_files(recv, ".snap"), 0);
    assert_int_equal(b.n_snaps, 0);

    /* 3: the same connection then carries a good stream, which arrives */
    raw_send(s, f, raw_frame(f, 1, 4, CLUSTER, 1, 2, enc, el));
    raw_send(s, f, raw_frame(f, 1, 5, CLUSTER, 1, 2, chunk, sizeof(chunk)));
    uint32_t good = crc32c(chunk, sizeof(chunk));
    uint8_t crc2[4] = {(uint8_t)good, (uint8_t)(good >> 8), (uint8_t)(good >> 16), (uint8_t)(good >> 24)};
    raw_send(s, f, raw_frame(f, 1, 6, CLUSTER, 1, 2, crc2, 4));
    assert_true(run_until(snap_arrived, &b));
    assert_int_equal(b.snap_len, sizeof(chunk));
    assert_int_equal(count_files(recv, ".snap"), 1);
    close(s);
    node_destroy(&b);
}

static void test_snapshot_needs_a_connected_peer_and_a_readable_file(void **state)
{
    struct tnode a;
    node_init(&a, 1);
    node_start(&a, 0, (struct peerspec[]){{2, free_port()}}, 1);
    struct raft_message m = {.type = RAFT_MSG_SNAPSHOT, .from = 1, .to = 2, .term = 4};
    assert_int_equal(transport_send_snapshot(a.t, &m, "/nonexistent"), -ENOTCONN);
    m.to = 3;
    assert_int_equal(transport_send_snapshot(a.t, &m, "/nonexistent"), -ENOENT);
    node_destroy(&a);
}

/* ---- forwarding ---- */

static bool forwarded_n(void *arg)
{
    struct want *w = arg;
    return w->n->n_fwded >= w->k;
}

static void test_forward_and_forwarded_round_trip(void **state)
{
    struct tnode a, b;
    node_init(&a, 1);
    node_init(&b, 2);
    uint16_t pa = free_port(), pb = free_port();
    node_start(&b, pb, (struct peerspec[]){{1, pa}}, 1);
    node_start(&a, pa, (struct peerspec[]){{2, pb}}, 1);
    b.answer_forwards = true;
    assert_int_equal(transport_forward(a.t, 2, 1, (const uint8_t *)"put /a", 6), 0);
    struct want w = {&a, 1};
    assert_true(run_until(forwarded_n, &w));
    assert_int_equal(b.n_fwd, 1);
    assert_int_equal(b.fwd_from, 1);
    assert_int_equal(b.fwd_req, 1);
    assert_string_equal(b.fwd_cmd, "put /a");
    assert_int_equal(a.fwded_req, 1);
    assert_int_equal(a.fwded_index, 1001);
    assert_int_equal(a.fwded_term, 7);
    assert_int_equal(a.fwded_status, 0);
    /* a negative status travels as such; an empty command is allowed */
    assert_int_equal(transport_forward(a.t, 2, 2, NULL, 0), 0);
    w.k = 2;
    assert_true(run_until(forwarded_n, &w));
    assert_int_equal(a.fwded_req, 2);
    assert_int_equal(a.fwded_status, -3);
    assert_string_equal(b.fwd_cmd, "");
    assert_int_equal(transport_forward(a.t, 9, 1, NULL, 0), -ENOENT);
    node_destroy(&a);
    node_destroy(&b);
}

static void test_start_refuses_bad_config_with_a_reason(void **state)
{
    struct transport_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.loop = &loop;
    cfg.self_id = 1;
    cfg.cluster_id = CLUSTER;
    strcpy(cfg.listen_host, "127.0.0.1");
    cfg.snap_recv_dir = "/tmp";
    cfg.h.message = on_message;
    struct transport *t = (struct transport *)1;
    char err[256] = "";
    strcpy(cfg.listen_host, "peer.example");
    assert_int_equal(transport_start(&t, &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "peer.example"));
    strcpy(cfg.listen_host, "127.0.0.1");
    cfg.n_peers = 2;
    cfg.peers[0] = (struct transport_peer){.id = 2, .host = "127.0.0.1", .port = 1};
    cfg.peers[1] = (struct transport_peer){.id = 2, .host = "127.0.0.1", .port = 2};
    assert_int_equal(transport_start(&t, &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "twice"));
    /* a port already taken */
    struct tnode b;
    node_init(&b, 2);
    node_start(&b, 0, NULL, 0);
    cfg.n_peers = 0;
    cfg.listen_port = transport_port(b.t);
    assert_int_equal(transport_start(&t, &cfg, err, sizeof(err)), -1);
    assert_null(t);
    assert_non_null(strstr(err, "cannot listen"));
    node_destroy(&b);
}

/* ---- mutual TLS ---- */

/* A CA ("ca") with two members' certificates ("n1", "n2"), and a rogue CA ("rogue") with one
 * ("r1"), minted with the openssl tool into dir. */
static void mint_certs(const char *dir)
{
    char cmd[4096];
    snprintf(
        cmd, sizeof(cmd),
        "( set -e; cd '%s'; "
        "for ca in ca rogue; do openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        "-keyout $ca.key -out $ca.pem -days 2 -subj /CN=$ca; done; "
        "for n in n1:ca n2:ca r1:rogue; do name=${n%%:*}; ca=${n#*:}; "
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $name.key -out $name.csr "
        "-subj /CN=$name; "
        "openssl x509 -req -in $name.csr -CA $ca.pem -CAkey $ca.key -CAcreateserial -out $name.pem -days 2; "
        "done ) >/dev/null 2>&1",
        dir);
    assert_int_equal(system(cmd), 0);
}

static char certdir[64];

static int setup_tls(void **state)
{
    snprintf(certdir, sizeof(certdir), "/tmp/dd-transport-certs-XXXXXX");
    assert_non_null(mkdtemp(certdir));
    mint_certs(certdir);
    tls_dir = certdir;
    return setup(state);
}

static int teardown_tls(void **state)
{
    tls_name = tls_ca = tls_dir = NULL;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", certdir);
    assert_int_equal(system(cmd), 0);
    return teardown(state);
}

static void test_tls_peers_exchange_messages_forwards_and_snapshots(void **state)
{
    struct tnode a, b;
    node_init(&a, 1);
    node_init(&b, 2);
    uint16_t pa = free_port(), pb = free_port();
    tls_ca = "ca";
    tls_name = "n2";
    node_start(&b, pb, (struct peerspec[]){{1, pa}}, 1);
    tls_name = "n1";
    node_start(&a, pa, (struct peerspec[]){{2, pb}}, 1);
    for (uint64_t s = 1; s <= 50; s++)
        assert_int_equal(send_append(&a, 2, s, 3), 0);
    struct want w = {&b, 50};
    assert_true(run_until(has_msgs, &w));
    for (int i = 0; i < 50; i++)
        check_append(&b.msgs[i], 1, (uint64_t)i + 1, 3);
    b.answer_forwards = true;
    assert_int_equal(transport_forward(a.t, 2, 5, (const uint8_t *)"cmd", 3), 0);
    w = (struct want){&a, 1};
    assert_true(run_until(forwarded_n, &w));
    assert_int_equal(a.fwded_index, 1005);
    /* a snapshot of a bit more than two chunks */
    size_t size = 2u * 1024 * 1024 + 77;
    uint8_t *data = malloc(size);
    for (size_t i = 0; i < size; i++)
        data[i] = (uint8_t)(i * 31 + (i >> 11));
    char path[128];
    snprintf(path, sizeof(path), "%s/snap.img", a.dir);
    FILE *fp = fopen(path, "wb");
    assert_int_equal(fwrite(data, 1, size, fp), size);
    fclose(fp);
    struct raft_message m = {.type = RAFT_MSG_SNAPSHOT, .from = 1, .to = 2, .term = 4};
    m.snapshot.meta = (struct raft_snapshot_meta){.index = 70, .term = 4, .conf = {.n = 2, .ids = {1, 2}}};
    assert_int_equal(transport_send_snapshot(a.t, &m, path), 0);
    assert_true(run_until(snap_arrived, &b));
    uint8_t *got = malloc(size + 1);
    fp = fopen(b.snap_path, "rb");
    assert_non_null(fp);
    assert_int_equal(fread(got, 1, size + 1, fp), size);
    fclose(fp);
    assert_memory_equal(got, data, size);
    free(got);
    free(data);
    node_destroy(&a);
    node_destroy(&b);
}

struct spam {
    struct tnode *from;
    uint64_t to, seq;
    unsigned rounds;
};
/* Send one message every few ms for a bounded number of rounds; never "done" early. */
static bool spam_rounds(void *arg)
{
    struct spam *s = arg;
    if (s->rounds == 0)
        return true;
    s->rounds--;
    send_append(s->from, s->to, ++s->seq, 1);
    run_for(5);
    return false;
}

static void test_tls_refuses_a_peer_without_a_certificate_from_the_ca(void **state)
{
    struct tnode b, r, p;
    node_init(&b, 2);
    node_init(&r, 1);
    node_init(&p, 1);
    tls_ca = "ca";
    tls_name = "n2";
    node_start(&b, 0, (struct peerspec[]){{1, free_port()}}, 1);
    uint16_t pb = transport_port(b.t);
    /* r trusts b's CA but presents a certificate from another one */
    tls_name = "r1";
    node_start(&r, 0, (struct peerspec[]){{2, pb}}, 1);
    struct spam s = {&r, 2, 0, 60};
    run_until(spam_rounds, &s);
    /* p speaks plaintext */
    tls_name = NULL;
    node_start(&p, 0, (struct peerspec[]){{2, pb}}, 1);
    s = (struct spam){&p, 2, 0, 60};
    run_until(spam_rounds, &s);
    struct transport_stats st;
    transport_stats(b.t, &st);
    assert_int_equal(st.received, 0);
    assert_int_equal(b.n_msgs, 0);
    node_destroy(&r);
    node_destroy(&p);
    /* the same listener still serves a member with a good certificate */
    struct tnode a;
    node_init(&a, 1);
    tls_name = "n1";
    node_start(&a, 0, (struct peerspec[]){{2, pb}}, 1);
    assert_int_equal(send_append(&a, 2, 1, 1), 0);
    struct want w = {&b, 1};
    assert_true(run_until(has_msgs, &w));
    node_destroy(&a);
    node_destroy(&b);
}

static void test_tls_config_errors_name_the_file(void **state)
{
    struct transport_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.loop = &loop;
    cfg.self_id = 1;
    strcpy(cfg.listen_host, "127.0.0.1");
    cfg.snap_recv_dir = "/tmp";
    cfg.h.message = on_message;
    char cert[128], key[128], ca[128], err[256] = "";
    snprintf(cert, sizeof(cert), "%s/n1.pem", certdir);
    snprintf(key, sizeof(key), "%s/n2.key", certdir); /* not n1's key */
    snprintf(ca, sizeof(ca), "%s/ca.pem", certdir);
    struct transport *t;
    cfg.cert_file = cert;
    cfg.key_file = key;
    assert_int_equal(transport_start(&t, &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "all three"));
    cfg.ca_file = ca;
    assert_int_equal(transport_start(&t, &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, key));
    cfg.cert_file = "/nonexistent/cert.pem";
    assert_int_equal(transport_start(&t, &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/cert.pem"));
    cfg.cert_file = cert;
    snprintf(key, sizeof(key), "%s/n1.key", certdir);
    cfg.ca_file = "/nonexistent/ca.pem";
    assert_int_equal(transport_start(&t, &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/ca.pem"));
    cfg.ca_file = ca;
    assert_int_equal(transport_start(&t, &cfg, err, sizeof(err)), 0);
    transport_stop(t);
    uv_run(&loop, UV_RUN_NOWAIT);
    transport_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_raft_messages_with_entries_arrive_intact_and_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_peer_that_starts_later_is_reached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_that_connects_to_us_is_reached_without_waiting_for_the_backoff,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_named_by_host_name_is_resolved_and_reached, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stop_and_free_while_a_name_is_resolving, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_that_goes_away_and_comes_back_is_reached_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_queue_bound_drops_and_counts_while_peer_is_down, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_foreign_cluster_unknown_member_and_wrong_recipient_are_dropped_and_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_frames_close_the_connection_and_nothing_else, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_accepted_connections_are_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_file_streams_in_chunks_and_arrives_identical, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_broken_snapshot_stream_delivers_nothing_and_leaves_no_temp_file,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_needs_a_connected_peer_and_a_readable_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_forward_and_forwarded_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_refuses_bad_config_with_a_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_peers_exchange_messages_forwards_and_snapshots, setup_tls,
                                        teardown_tls),
        cmocka_unit_test_setup_teardown(test_tls_refuses_a_peer_without_a_certificate_from_the_ca, setup_tls,
                                        teardown_tls),
        cmocka_unit_test_setup_teardown(test_tls_config_errors_name_the_file, setup_tls, teardown_tls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
