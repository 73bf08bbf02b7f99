/* tests/unit/test_node_transport_members.c — the peer transport's membership parts: peers added and
 * removed at run time (a removed peer's frames are foreign, its slot is reused), the JOIN exchange
 * (answered on the asking connection with our cluster ID, the asker's member ID and the table; an
 * unknown URL gets ID 0; a second JOIN or an oversized one closes the connection), and the REMOVED
 * notice a member whose removal committed gets when it still sends. Two transports on one uv loop
 * over loopback; waits are bounded; no time asserted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "store/le.h"
#include "store/transport.h"

#define WAIT_MS 10000
#define CLUSTER 0xC1C1u

struct tn {
    struct transport *t;
    uint64_t id;
    char dir[64];
    int n_msgs, n_removed;
    uint64_t removed_from;
};

static uv_loop_t loop;
static uv_timer_t tick;

static void tick_cb(uv_timer_t *t) {}

static void on_message(void *arg, const struct raft_message *m, const char *snap_path)
{
    ((struct tn *)arg)->n_msgs++;
}

static uint64_t on_join(void *arg, const char *url, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    if (len != strlen("http://10.0.0.9:2380") || memcmp(url, "http://10.0.0.9:2380", len) != 0)
        return 0;
    memcpy(out, "table", 5);
    *out_len = 5;
    return 42;
}

static void on_removed(void *arg, uint64_t from)
{
    struct tn *n = arg;
    n->n_removed++;
    n->removed_from = from;
}

static bool run_until(bool (*cond)(void *), void *arg)
{
    uint64_t end = uv_hrtime() + (uint64_t)WAIT_MS * 1000000u;
    while (!cond(arg) && uv_hrtime() < end)
        uv_run(&loop, UV_RUN_ONCE);
    return cond(arg);
}

static void start(struct tn *n, uint64_t id)
{
    memset(n, 0, sizeof(*n));
    n->id = id;
    snprintf(n->dir, sizeof(n->dir), "/tmp/dd-trmembers-XXXXXX");
    assert_non_null(mkdtemp(n->dir));
    struct transport_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.loop = &loop;
    cfg.self_id = id;
    cfg.cluster_id = CLUSTER;
    strcpy(cfg.listen_host, "127.0.0.1");
    char recv[128];
    snprintf(recv, sizeof(recv), "%s/recv", n->dir);
    cfg.snap_recv_dir = recv;
    cfg.h = (struct transport_handlers){.message = on_message, .join = on_join, .removed = on_removed, .arg = n};
    char err[256] = "";
    if (transport_start(&n->t, &cfg, err, sizeof(err)) != 0)
        fail_msg("transport_start: %s", err);
}

static void stop(struct tn *n)
{
    transport_stop(n->t);
    for (int i = 0; i < 5; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    transport_free(n->t);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", n->dir);
    assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, tick_cb, 5, 5);
    return 0;
}

static int teardown(void **state)
{
    uv_close((uv_handle_t *)&tick, NULL);
    uint64_t end = uv_hrtime() + 2000000000u;
    while (uv_loop_alive(&loop) && uv_hrtime() < end)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&loop), 0);
    return 0;
}

static void add(struct tn *n, const struct tn *peer)
{
    struct transport_peer p;
    memset(&p, 0, sizeof(p));
    p.id = peer->id;
    strcpy(p.host, "127.0.0.1");
    p.port = transport_port(peer->t);
    assert_int_equal(transport_add_peer(n->t, &p), 0);
}

struct link {
    struct tn *a;
    uint64_t to;
};

static bool connected(void *arg)
{
    struct link *l = arg;
    return transport_connected(l->a->t, l->to);
}

static void send_one(struct tn *a, uint64_t to)
{
    struct raft_message m = {.type = RAFT_MSG_HEARTBEAT, .from = a->id, .to = to, .term = 1};
    assert_int_equal(transport_send(a->t, &m), 0);
}

static bool got_msgs(void *arg)
{
    return ((struct tn *)arg)->n_msgs > 0;
}

static bool got_removed(void *arg)
{
    return ((struct tn *)arg)->n_removed > 0;
}

static bool foreign(void *arg)
{
    struct transport_stats st;
    transport_stats(((struct tn *)arg)->t, &st);
    return st.dropped_foreign > 0;
}

static void test_peers_come_and_go_at_run_time(void **state)
{
    struct tn a, b;
    start(&a, 1);
    start(&b, 2);
    add(&a, &b);
    add(&b, &a);
    struct transport_peer dup = {.id = 2, .host = "127.0.0.1", .port = 1};
    assert_int_equal(transport_add_peer(a.t, &dup), -EEXIST);
    struct transport_peer self = {.id = 1, .host = "127.0.0.1", .port = 1};
    assert_int_equal(transport_add_peer(a.t, &self), -EINVAL);
    struct link l = {&a, 2};
    assert_true(run_until(connected, &l));
    send_one(&a, 2);
    assert_true(run_until(got_msgs, &b));
    /* removed: nothing goes to it, and what it sends is foreign */
    transport_remove_peer(a.t, 2);
    struct raft_message m = {.type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 2, .term = 1};
    assert_int_equal(transport_send(a.t, &m), -ENOENT);
    assert_false(transport_connected(a.t, 2));
    struct transport_stats st;
    transport_stats(a.t, &st);
    assert_int_equal(st.n_peers, 0);
    struct link lb = {&b, 1};
    assert_true(run_until(connected, &lb));
    send_one(&b, 1);
    assert_true(run_until(foreign, &a));
    assert_int_equal(a.n_msgs, 0);
    assert_int_equal(b.n_removed, 0); /* its removal is not committed: nobody tells it */
    /* added again (a slot is reused once the old one drained): reached again */
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    add(&a, &b);
    b.n_msgs = 0;
    assert_true(run_until(connected, &l));
    send_one(&a, 2);
    assert_true(run_until(got_msgs, &b));
    transport_stats(a.t, &st);
    assert_int_equal(st.n_peers, 1);
    stop(&a);
    stop(&b);
}

static void test_a_member_whose_removal_committed_is_told(void **state)
{
    struct tn a, b;
    start(&a, 1);
    start(&b, 2);
    add(&a, &b);
    add(&b, &a);
    struct link lb = {&b, 1};
    assert_true(run_until(connected, &lb));
    transport_remove_peer(a.t, 2);
    transport_peer_gone(a.t, 2);
    send_one(&b, 1);
    assert_true(run_until(got_removed, &b));
    assert_int_equal(b.removed_from, 1);
    assert_int_equal(a.n_msgs, 0);
    stop(&a);
    stop(&b);
}

static int raw_connect(uint16_t port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return s;
}

static void raw_join(int s, const char *url, size_t n)
{
    uint8_t f[30 + 1024];
    memset(f, 0, 30);
    le_put32(f, (uint32_t)(26 + n));
    f[4] = 1;
    f[5] = 8;
    memset(f + 30, 'u', n);
    memcpy(f + 30, url, strlen(url) < n ? strlen(url) : n);
    assert_int_equal(send(s, f, 30 + n, MSG_NOSIGNAL), (ssize_t)(30 + n));
}

struct reader {
    int s;
    uint8_t buf[256];
    size_t got;
    bool eof;
};

static bool read_some(void *arg)
{
    struct reader *r = arg;
    ssize_t k = recv(r->s, r->buf + r->got, sizeof(r->buf) - r->got, MSG_DONTWAIT);
    if (k > 0)
        r->got += (size_t)k;
    else if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
        r->eof = true;
    return r->eof || r->got >= 35;
}

static bool read_header(void *arg)
{
    struct reader *r = arg;
    read_some(r);
    return r->eof || r->got >= 30;
}

static bool closed(void *arg)
{
    struct reader *r = arg;
    read_some(r);
    return r->eof;
}

static void test_join_is_answered_on_the_asking_connection(void **state)
{
    struct tn a;
    start(&a, 7);
    /* a known peer URL: JOINED with our cluster, its ID and the table */
    struct reader r = {.s = raw_connect(transport_port(a.t))};
    raw_join(r.s, "http://10.0.0.9:2380", strlen("http://10.0.0.9:2380"));
    assert_true(run_until(read_some, &r));
    assert_int_equal(r.got, 35);
    assert_int_equal(le_get32(r.buf), 26 + 5);
    assert_int_equal(r.buf[5], 9);
    assert_int_equal(le_get64(r.buf + 6), CLUSTER);
    assert_int_equal(le_get64(r.buf + 14), 7);
    assert_int_equal(le_get64(r.buf + 22), 42);
    assert_memory_equal(r.buf + 30, "table", 5);
    /* nothing else is taken on that connection: another JOIN closes it */
    raw_join(r.s, "http://10.0.0.9:2380", strlen("http://10.0.0.9:2380"));
    r.got = 0;
    assert_true(run_until(closed, &r));
    close(r.s);
    /* an unknown URL: ID 0, no table */
    struct reader u = {.s = raw_connect(transport_port(a.t))};
    raw_join(u.s, "http://10.0.0.8:2380", strlen("http://10.0.0.8:2380"));
    assert_true(run_until(read_header, &u));
    assert_int_equal(u.got, 30);
    assert_int_equal(le_get32(u.buf), 26);
    assert_int_equal(le_get64(u.buf + 22), 0);
    close(u.s);
    /* an oversized JOIN closes the connection unanswered */
    struct reader big = {.s = raw_connect(transport_port(a.t))};
    raw_join(big.s, "http://x:1", 600);
    assert_true(run_until(closed, &big));
    assert_int_equal(big.got, 0);
    close(big.s);
    struct transport_stats st;
    transport_stats(a.t, &st);
    assert_int_equal(st.received, 0); /* JOINs are not members' frames */
    stop(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_peers_come_and_go_at_run_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_member_whose_removal_committed_is_told, setup, teardown),
        cmocka_unit_test_setup_teardown(test_join_is_answered_on_the_asking_connection, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
