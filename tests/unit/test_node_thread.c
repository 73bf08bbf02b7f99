/* tests/unit/test_node_thread.c — the store thread (store/node.c): writes complete through the
 * client's post() with their event, watches park and fire, time out with NODE_ETIMEOUT, respect
 * the caps, tokens expire through the sweep timer, node_stop completes what is parked, and
 * concurrent submitters and readers work together. Waits are bounded; no duration is asserted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <cmocka.h>

#include "store/node.h"

#define WAIT_MS 15000

struct tclient {
    struct node_client c;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ndone;
};

struct top {
    struct node_op op;
    int done;
};

static void tpost(struct node_client *self, struct node_op *op)
{
    struct tclient *t = (struct tclient *)self;
    pthread_mutex_lock(&t->mu);
    ((struct top *)op)->done++;
    t->ndone++;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void tclient_init(struct tclient *t)
{
    memset(t, 0, sizeof(*t));
    t->c.post = tpost;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
}

static void tclient_destroy(struct tclient *t)
{
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
}

/* Wait until op completed (bounded); returns its done count. */
static int wait_done(struct tclient *t, struct top *o)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&t->mu);
    while (!o->done) {
        if (pthread_cond_timedwait(&t->cv, &t->mu, &ts) != 0)
            break;
    }
    int d = o->done;
    pthread_mutex_unlock(&t->mu);
    return d;
}

static int is_done(struct tclient *t, struct top *o)
{
    pthread_mutex_lock(&t->mu);
    int d = o->done;
    pthread_mutex_unlock(&t->mu);
    return d;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Poll the parked-watch count until it reaches want (bounded). */
static void wait_parked(struct node *n, uint64_t want)
{
    struct node_stats st;
    for (int i = 0; i < WAIT_MS / 5; i++) {
        node_stats(n, &st);
        if (st.parked_watches == want)
            return;
        sleep_ms(5);
    }
    node_stats(n, &st);
    assert_int_equal(st.parked_watches, want);
}

static void op_write(struct top *o, struct tclient *t, enum kv_cmd_type type, const char *key,
                     const char *val)
{
    memset(o, 0, sizeof(*o));
    o->op.type = NODE_OP_WRITE;
    o->op.cmd.type = type;
    o->op.cmd.key = key;
    o->op.cmd.key_len = (uint32_t)strlen(key);
    o->op.cmd.value = val;
    o->op.cmd.value_len = val ? (uint32_t)strlen(val) : 0;
    o->op.client = &t->c;
}

static void op_watch(struct top *o, struct tclient *t, const char *key, bool recursive, uint64_t wait,
                     uint8_t addr)
{
    memset(o, 0, sizeof(*o));
    o->op.type = NODE_OP_WATCH;
    o->op.key = key;
    o->op.key_len = (uint32_t)strlen(key);
    o->op.recursive = recursive;
    o->op.wait_index = wait;
    o->op.client_addr[15] = addr;
    o->op.client = &t->c;
}

static void op_release(struct top *o)
{
    kv_event_unref(o->op.event);
    o->op.event = NULL;
    kv_error_clear(&o->op.err);
}

static struct node *start(struct node_config *cfg)
{
    struct node *n = NULL;
    char eb[128];
    assert_int_equal(node_start(&n, cfg, eb, sizeof(eb)), 0);
    assert_non_null(n);
    return n;
}

static void test_write_completes_through_post_with_event(void **state)
{
    (void)state;
    struct node_config cfg;
    node_config_defaults(&cfg);
    cfg.cluster_id = 0x890ee0b358a883feULL;
    struct node *n = start(&cfg);
    struct tclient t;
    tclient_init(&t);
    assert_int_equal(node_cluster_id(n), 0x890ee0b358a883feULL);
    char reason[64];
    assert_true(node_healthy(n, reason, sizeof(reason)));

    struct top o;
    op_write(&o, &t, KV_CMD_CREATE, "/discovery/T/m1", "m1=http://a:2380");
    node_submit(n, &o.op);
    assert_int_equal(wait_done(&t, &o), 1);
    assert_int_equal(o.op.status, 0);
    assert_non_null(o.op.event);
    assert_int_equal(o.op.event->action, KV_ACT_CREATE);
    assert_string_equal(o.op.event->node.key, "/discovery/T/m1");
    assert_int_equal(o.op.event->node.created_index, 2);
    assert_int_equal(o.op.etcd_index, 2);
    /* the Raft core's position: term 1 holds the bootstrap entry, the lone voter leads from term 2 */
    assert_int_equal(o.op.raft_term, 2);
    assert_true(o.op.raft_index >= 3);
    uint64_t wi = o.op.raft_index;
    assert_true(o.op.cmd.now_ms > 1600000000000LL); /* the node's wall clock */
    op_release(&o);

    /* an error comes back as the kv code with its cause, index unchanged */
    op_write(&o, &t, KV_CMD_CREATE, "/discovery/T/m1", "again");
    node_submit(n, &o.op);
    assert_int_equal(wait_done(&t, &o), 1);
    assert_int_equal(o.op.status, KV_EEXISTS);
    assert_null(o.op.event);
    assert_int_equal(o.op.err.code, KV_EEXISTS);
    assert_string_equal(o.op.err.cause, "/discovery/T/m1");
    assert_int_equal(o.op.etcd_index, 2);
    op_release(&o);

    /* readers see the applied state under the read lock */
    node_rdlock(n);
    const struct kv_node *m = kv_lookup(node_kv(n), "/discovery/T/m1", 15);
    assert_non_null(m);
    assert_string_equal(kv_node_value(m), "m1=http://a:2380");
    node_rdunlock(n);
    uint64_t ri, rt;
    node_raft_state(n, &ri, &rt);
    assert_true(ri >= wi + 1); /* the failed write took a log entry too */
    assert_int_equal(rt, 2);

    struct top q;
    memset(&q, 0, sizeof(q));
    q.op.type = NODE_OP_QUORUM;
    q.op.client = &t.c;
    node_submit(n, &q.op);
    assert_int_equal(wait_done(&t, &q), 1);
    assert_int_equal(q.op.status, 0);
    assert_int_equal(q.op.etcd_index, 2);

    struct node_stats st;
    node_stats(n, &st);
    assert_int_equal(st.tokens, 1);
    assert_int_equal(st.nodes, 4);
    assert_int_equal(st.applied, 2);
    node_free(n);
    tclient_destroy(&t);
}

static void test_random_cluster_id_when_not_configured(void **state)
{
    (void)state;
    struct node_config cfg;
    node_config_defaults(&cfg);
    struct node *a = start(&cfg), *b = start(&cfg);
    assert_true(node_cluster_id(a) != 0);
    assert_true(node_cluster_id(a) != node_cluster_id(b));
    node_free(a);
    node_free(b);
}

static void test_watch_parks_then_fires_on_later_write(void **state)
{
    (void)state;
    struct node_config cfg;
    node_config_defaults(&cfg);
    struct node *n = start(&cfg);
    struct tclient t;
    tclient_init(&t);
    struct top w, o;
    op_write(&o, &t, KV_CMD_SET, "/discovery/T/_config/size", "3");
    node_submit(n, &o.op);
    assert_int_equal(wait_done(&t, &o), 1);
    op_release(&o);

    op_watch(&w, &t, "/discovery/T", true, 3, 1);
    node_submit(n, &w.op);
    wait_parked(n, 1);
    assert_int_equal(is_done(&t, &w), 0);
    /* a hidden write does not wake it */
    op_write(&o, &t, KV_CMD_SET, "/discovery/T/_config/x", "h");
    node_submit(n, &o.op);
    assert_int_equal(wait_done(&t, &o), 1);
    op_release(&o);
    assert_int_equal(is_done(&t, &w), 0);
    op_write(&o, &t, KV_CMD_CREATE, "/discovery/T/m2", "v");
    node_submit(n, &o.op);
    assert_int_equal(wait_done(&t, &o), 1);
    assert_int_equal(wait_done(&t, &w), 1);
    assert_int_equal(w.op.status, 0);
    assert_string_equal(w.op.event->node.key, "/discovery/T/m2");
    assert_int_equal(w.op.event->index, 4);
    assert_int_equal(w.op.etcd_index, 2); /* the index when it was registered */
    op_release(&o);
    op_release(&w);
    wait_parked(n, 0);

    /* from history: at once */
    op_watch(&w, &t, "/discovery/T", true, 3, 1);
    node_submit(n, &w.op);
    assert_int_equal(wait_done(&t, &w), 1);
    assert_int_equal(w.op.status, 0);
    assert_string_equal(w.op.event->node.key, "/discovery/T/_config/x");
    assert_int_equal(w.op.etcd_index, 4);
    op_release(&w);
    node_free(n);
    tclient_destroy(&t);
}

static void test_watch_times_out_with_etimeout(void **state)
{
    (void)state;
    struct node_config cfg;
    node_config_defaults(&cfg);
    cfg.watch_timeout_ms = 50;
    cfg.max_watches_per_client = 1;
    struct node *n = start(&cfg);
    struct tclient t;
    tclient_init(&t);
    struct top w[3];
    for (int i = 0; i < 3; i++) {
        op_watch(&w[i], &t, "/discovery/T", true, 0, (uint8_t)i);
        node_submit(n, &w[i].op);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(wait_done(&t, &w[i]), 1);
        assert_int_equal(w[i].op.status, NODE_ETIMEOUT);
        assert_null(w[i].op.event);
    }
    wait_parked(n, 0);
    /* a timed-out watch gave its client's slot back (cap is 1 here) */
    op_watch(&w[0], &t, "/discovery/T", true, 0, 0);
    node_submit(n, &w[0].op);
    assert_int_equal(wait_done(&t, &w[0]), 1);
    assert_int_equal(w[0].op.status, NODE_ETIMEOUT);
    node_free(n);
    tclient_destroy(&t);
}

static void test_watch_caps_give_too_many_watches(void **state)
{
    (void)state;
    struct node_config cfg;
    node_config_defaults(&cfg);
    cfg.max_watches_per_client = 2;
    cfg.max_watches_total = 3;
    struct node *n = start(&cfg);
    struct tclient t;
    tclient_init(&t);
    struct top w[5];
    op_watch(&w[0], &t, "/discovery/T", true, 0, 7);
    op_watch(&w[1], &t, "/discovery/T/a", false, 0, 7);
    op_watch(&w[2], &t, "/discovery/U", true, 0, 7); /* third from client 7 */
    for (int i = 0; i < 3; i++)
        node_submit(n, &w[i].op);
    assert_int_equal(wait_done(&t, &w[2]), 1);
    assert_int_equal(w[2].op.status, NODE_ETOOMANYWATCHES);
    wait_parked(n, 2);
    op_watch(&w[3], &t, "/discovery/U", true, 0, 8); /* another client: fits the total */
    node_submit(n, &w[3].op);
    wait_parked(n, 3);
    op_watch(&w[4], &t, "/discovery/V", true, 0, 9); /* total cap */
    node_submit(n, &w[4].op);
    assert_int_equal(wait_done(&t, &w[4]), 1);
    assert_int_equal(w[4].op.status, NODE_ETOOMANYWATCHES);
    /* a watch answered from history is never capped */
    struct top o, h;
    op_write(&o, &t, KV_CMD_SET, "/discovery/W/k", "v");
    node_submit(n, &o.op);
    assert_int_equal(wait_done(&t, &o), 1);
    op_release(&o);
    op_watch(&h, &t, "/discovery/W/k", false, 2, 7);
    node_submit(n, &h.op);
    assert_int_equal(wait_done(&t, &h), 1);
    assert_int_equal(h.op.status, 0);
    op_release(&h);
    /* when one of client 7's watches ends, it may park again */
    op_write(&o, &t, KV_CMD_SET, "/discovery/T/a", "v");
    node_submit(n, &o.op);
    assert_int_equal(wait_done(&t, &o), 1);
    assert_int_equal(wait_done(&t, &w[0]), 1);
    assert_int_equal(wait_done(&t, &w[1]), 1);
    op_release(&o);
    op_release(&w[0]);
    op_release(&w[1]);
    wait_parked(n, 1);
    op_watch(&w[2], &t, "/discovery/U", true, 0, 7);
    node_submit(n, &w[2].op);
    wait_parked(n, 2);
    node_free(n);
    assert_int_equal(w[2].op.status, NODE_ETIMEOUT);
    assert_int_equal(w[3].op.status, NODE_ETIMEOUT);
    tclient_destroy(&t);
}

static void test_stop_completes_parked_watches(void **state)
{
    (void)state;
    struct node_config cfg;
    node_config_defaults(&cfg);
    struct node *n = start(&cfg);
    struct tclient t;
    tclient_init(&t);
    struct top w[4];
    for (int i = 0; i < 4; i++) {
        op_watch(&w[i], &t, "/discovery/T", true, 0, (uint8_t)i);
        node_submit(n, &w[i].op);
    }
    wait_parked(n, 4);
    node_free(n);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(w[i].done, 1);
        assert_int_equal(w[i].op.status, NODE_ETIMEOUT);
    }
    tclient_destroy(&t);
}

static void test_token_expires_through_sweep_and_wakes_watchers(void **state)
{
    (void)state;
    struct node_config cfg;
    node_config_defaults(&cfg);
    cfg.token_ttl_ms = 1; /* due at once; the sweep runs at most every second */
    struct node *n = start(&cfg);
    struct tclient t;
    tclient_init(&t);
    struct top o, w;
    op_write(&o, &t, KV_CMD_SET, "/discovery/T/_config/size", "3");
    node_submit(n, &o.op);
    assert_int_equal(wait_done(&t, &o), 1);
    assert_int_equal(o.op.status, 0);
    op_release(&o);
    /* index 3 is the expiry; watching /discovery (global history) also covers a sweep that
     * already ran before the watch arrives */
    op_watch(&w, &t, "/discovery", true, 3, 1);
    node_submit(n, &w.op);
    assert_int_equal(wait_done(&t, &w), 1);
    assert_int_equal(w.op.status, 0);
    assert_int_equal(w.op.event->action, KV_ACT_DELETE);
    assert_string_equal(w.op.event->node.key, "/discovery/T");
    op_release(&w);
    struct node_stats st;
    node_stats(n, &st);
    assert_int_equal(st.expired_tokens, 1);
    assert_int_equal(st.tokens, 0);
    node_free(n);
    tclient_destroy(&t);
}

struct writer_arg {
    struct node *n;
    int id;
    int count;
    uint64_t *created;
};

static void *writer(void *p)
{
    struct writer_arg *a = p;
    struct tclient t;
    tclient_init(&t);
    struct top *o = calloc((size_t)a->count, sizeof(*o));
    char(*keys)[64] = calloc((size_t)a->count, 64);
    for (int i = 0; i < a->count; i++) {
        snprintf(keys[i], 64, "/discovery/T/w%d-%d", a->id, i);
        op_write(&o[i], &t, KV_CMD_CREATE, keys[i], "v");
        node_submit(a->n, &o[i].op);
    }
    for (int i = 0; i < a->count; i++) {
        if (wait_done(&t, &o[i]) == 1 && o[i].op.status == 0)
            a->created[i] = o[i].op.event->node.created_index;
        op_release(&o[i]);
    }
    free(keys);
    free(o);
    tclient_destroy(&t);
    return NULL;
}

static int reader_mismatches;

/* No cmocka asserts off the main thread: count, and let the test assert. */
static void *reader(void *p)
{
    struct node *n = p;
    for (int i = 0; i < 2000; i++) {
        node_rdlock(n);
        const struct kv_node *d = kv_lookup(node_kv(n), "/discovery/T", 12);
        if (d) {
            uint32_t c = 0;
            for (const struct kv_node *x = kv_node_first(d); x; x = x->next_sibling)
                c += !kv_node_hidden(x);
            if (c != kv_node_nvisible(d))
                __atomic_add_fetch(&reader_mismatches, 1, __ATOMIC_RELAXED);
        }
        node_rdunlock(n);
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_concurrent_writers_get_unique_increasing_indexes(void **state)
{
    (void)state;
    struct node_config cfg;
    node_config_defaults(&cfg);
    struct node *n = start(&cfg);
    enum { NW = 4, PER = 300 };
    static uint64_t created[NW * PER];
    memset(created, 0, sizeof(created));
    pthread_t th[NW + 1];
    struct writer_arg args[NW];
    for (int i = 0; i < NW; i++) {
        args[i] = (struct writer_arg){n, i, PER, created + i * PER};
        pthread_create(&th[i], NULL, writer, &args[i]);
    }
    pthread_create(&th[NW], NULL, reader, n);
    for (int i = 0; i <= NW; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(reader_mismatches, 0);
    qsort(created, NW * PER, sizeof(created[0]), cmp_u64);
    for (int i = 0; i < NW * PER; i++)
        assert_int_equal(created[i], (uint64_t)(2 + i)); /* 2..1201, each once */
    node_free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_completes_through_post_with_event),
        cmocka_unit_test(test_random_cluster_id_when_not_configured),
        cmocka_unit_test(test_watch_parks_then_fires_on_later_write),
        cmocka_unit_test(test_watch_times_out_with_etimeout),
        cmocka_unit_test(test_watch_caps_give_too_many_watches),
        cmocka_unit_test(test_stop_completes_parked_watches),
        cmocka_unit_test(test_token_expires_through_sweep_and_wakes_watchers),
        cmocka_unit_test(test_concurrent_writers_get_unique_increasing_indexes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
