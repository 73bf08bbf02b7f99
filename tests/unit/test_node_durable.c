/* tests/unit/test_node_durable.c — the store thread on a data dir: writes survive a restart of the
 * node (same indexes, values, cluster ID), quorum reads complete while a WAL batch is out, and a
 * second node on the same data dir is refused. Real files in a temp dir; waits are bounded.
 */
#define _GNU_SOURCE /* open_memstream */
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

struct waiter {
    struct node_client c;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

static void post(struct node_client *self, struct node_op *op)
{
    struct waiter *w = (struct waiter *)self;
    pthread_mutex_lock(&w->mu);
    w->done++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Wait (15 s at most) until `want` ops completed; returns how many did. */
static int wait_for(struct waiter *w, int want)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 15;
    pthread_mutex_lock(&w->mu);
    while (w->done < want && pthread_cond_timedwait(&w->cv, &w->mu, &ts) == 0)
        ;
    int d = w->done;
    pthread_mutex_unlock(&w->mu);
    return d;
}

static void remove_dir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static uint64_t snapshot_count; /* 0: the default */

static struct node *start(const char *dir, char *err, size_t errlen)
{
    struct node_config cfg;
    node_config_defaults(&cfg);
    cfg.data_dir = dir;
    cfg.snapshot_count = snapshot_count;
    struct node *n = NULL;
    return node_start(&n, &cfg, err, errlen) == 0 ? n : NULL;
}

static void set_op(struct node_op *op, struct waiter *w, enum node_op_type type, const char *key,
                   const char *val)
{
    memset(op, 0, sizeof(*op));
    op->type = type;
    op->cmd.type = KV_CMD_SET;
    op->cmd.key = key;
    op->cmd.key_len = (uint32_t)strlen(key);
    op->cmd.value = val;
    op->cmd.value_len = val ? (uint32_t)strlen(val) : 0;
    op->client = &w->c;
}

static void release(struct node_op *op)
{
    kv_event_unref(op->event);
    kv_error_clear(&op->err);
}

static void test_writes_survive_a_restart_and_reads_never_stall(void **state)
{
    (void)state;
    char dir[] = "/tmp/dd-node-durable-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char err[512];
    struct node *n = start(dir, err, sizeof(err));
    assert_non_null(n);
    struct waiter w = {.c = {post}, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

    /* writes and quorum reads submitted together: every read completes even though a WAL batch is
     * out when it arrives */
    enum { ROUNDS = 200 };
    static struct node_op ops[ROUNDS][2];
    static char keys[ROUNDS][48];
    for (int i = 0; i < ROUNDS; i++) {
        snprintf(keys[i], sizeof(keys[i]), "/discovery/T/k%03d", i);
        set_op(&ops[i][0], &w, NODE_OP_WRITE, keys[i], "v");
        set_op(&ops[i][1], &w, NODE_OP_QUORUM, keys[i], NULL);
        node_submit(n, &ops[i][0]);
        node_submit(n, &ops[i][1]);
    }
    assert_int_equal(wait_for(&w, 2 * ROUNDS), 2 * ROUNDS);
    for (int i = 0; i < ROUNDS; i++) {
        assert_int_equal(ops[i][0].status, 0);
        assert_int_equal(ops[i][1].status, 0);
        release(&ops[i][0]);
        release(&ops[i][1]);
    }
    /* a quorum read that starts after a write completed sees it */
    for (int i = 0; i < 20; i++) {
        struct node_op wr, rd;
        set_op(&wr, &w, NODE_OP_WRITE, keys[i], "again");
        int before = w.done;
        node_submit(n, &wr);
        assert_int_equal(wait_for(&w, before + 1), before + 1);
        set_op(&rd, &w, NODE_OP_QUORUM, keys[i], NULL);
        node_submit(n, &rd);
        assert_int_equal(wait_for(&w, before + 2), before + 2);
        assert_int_equal(rd.status, 0);
        assert_true(rd.etcd_index >= wr.etcd_index);
        release(&wr);
        release(&rd);
    }
    uint64_t id = node_cluster_id(n);
    node_rdlock(n);
    uint64_t index = kv_index(node_kv(n));
    node_rdunlock(n);
    uint64_t ri, rt;
    node_raft_state(n, &ri, &rt);

    /* a second node on the same data dir is refused, naming the flag and the lock */
    struct node *second = start(dir, err, sizeof(err));
    assert_null(second);
    assert_non_null(strstr(err, "--data-dir"));
    assert_non_null(strstr(err, "in use"));

    node_free(n);
    n = start(dir, err, sizeof(err));
    assert_non_null(n);
    assert_int_equal(node_cluster_id(n), id);
    node_rdlock(n);
    assert_int_equal(kv_index(node_kv(n)), index);
    const struct kv_node *k = kv_lookup(node_kv(n), keys[ROUNDS - 1], strlen(keys[ROUNDS - 1]));
    assert_non_null(k);
    assert_string_equal(kv_node_value(k), "v");
    node_rdunlock(n);
    uint64_t ri2, rt2;
    node_raft_state(n, &ri2, &rt2);
    assert_true(ri2 > ri); /* the log goes on after what it held (a new term's entry) */
    assert_true(rt2 > rt);

    /* and the index keeps counting from where it was */
    struct node_op op;
    set_op(&op, &w, NODE_OP_WRITE, "/discovery/T/after", "x");
    int before = w.done;
    node_submit(n, &op);
    assert_int_equal(wait_for(&w, before + 1), before + 1);
    assert_int_equal(op.status, 0);
    assert_int_equal(op.etcd_index, index + 1);
    release(&op);
    node_free(n);

    remove_dir(dir);
}

static int dump_line(void *arg, const struct kv_image *k)
{
    FILE *f = arg;
    fprintf(f, "%s %d %s %llu %llu %lld %lld\n", k->key, k->dir, k->value ? k->value : "-",
            (unsigned long long)k->created_index, (unsigned long long)k->modified_index,
            (long long)k->created_ms, (long long)k->expire_ms);
    return 0;
}

/* The tree as text, for before/after comparisons (caller frees). */
static char *tree_text(struct node *n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    node_rdlock(n);
    kv_dump(node_kv(n), dump_line, f);
    fprintf(f, "index %llu\n", (unsigned long long)kv_index(node_kv(n)));
    node_rdunlock(n);
    fclose(f);
    return buf;
}

static int count_snapshots(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "ls %s/snap 2>/dev/null | grep -c '\\.snap$'", dir);
    FILE *p = popen(cmd, "r");
    int c = 0;
    if (p && fscanf(p, "%d", &c) != 1)
        c = 0;
    if (p)
        pclose(p);
    return c;
}

static void test_snapshots_are_taken_and_a_restart_starts_from_one(void **state)
{
    (void)state;
    char dir[] = "/tmp/dd-node-snap-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char err[512];
    snapshot_count = 50;
    struct node *n = start(dir, err, sizeof(err));
    assert_non_null(n);
    struct waiter w = {.c = {post}, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    static struct node_op ops[400];
    static char keys[400][48];
    int i = 0;
    /* write until a snapshot file exists (bounded: 400 writes, 8 x 50) */
    for (; i < 400 && (i < 120 || count_snapshots(dir) == 0); i++) {
        snprintf(keys[i], sizeof(keys[i]), "/discovery/S%d/k%03d", i % 9, i);
        set_op(&ops[i], &w, NODE_OP_WRITE, keys[i], i % 2 ? "odd" : "");
        if (i % 5 == 0)
            ops[i].cmd.expire_ms = node_wall_ms() + 3600000; /* a TTL deadline to keep */
        node_submit(n, &ops[i]);
        assert_int_equal(wait_for(&w, i + 1), i + 1);
        assert_int_equal(ops[i].status, 0);
        release(&ops[i]);
    }
    assert_true(count_snapshots(dir) >= 1);
    char *before = tree_text(n);
    uint64_t ri, rt;
    node_raft_state(n, &ri, &rt);
    node_free(n);
    n = start(dir, err, sizeof(err));
    assert_non_null(n);
    char *after = tree_text(n);
    assert_string_equal(before, after);
    uint64_t ri2, rt2;
    node_raft_state(n, &ri2, &rt2);
    assert_true(ri2 > ri);
    node_free(n);
    free(before);
    free(after);
    snapshot_count = 0;
    remove_dir(dir);
}

/* A snapshot rewrites the whole tree, so snapshots of a growing tree come further apart: after one
 * of N nodes the next waits for max(snapshot_count, N/2) entries. Every write adds a node here, so
 * a snapshot at index i held at least i - 2 nodes. */
static void test_snapshots_of_a_bigger_tree_come_further_apart(void **state)
{
    (void)state;
    char dir[] = "/tmp/dd-node-snapgap-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char err[512];
    snapshot_count = 20;
    struct node *n = start(dir, err, sizeof(err));
    assert_non_null(n);
    struct waiter w = {.c = {post}, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    enum { WRITES = 600 };
    uint64_t seen[64];
    size_t n_seen = 0;
    for (int i = 0; i < WRITES; i++) {
        char key[48];
        snprintf(key, sizeof(key), "/discovery/G%d/k%04d", i % 7, i);
        struct node_op op;
        set_op(&op, &w, NODE_OP_WRITE, key, "v");
        node_submit(n, &op);
        assert_int_equal(wait_for(&w, i + 1), i + 1);
        assert_int_equal(op.status, 0);
        release(&op);
        struct node_stats st;
        node_stats(n, &st);
        if (st.snapshot_index && (n_seen == 0 || seen[n_seen - 1] != st.snapshot_index) && n_seen < 64)
            seen[n_seen++] = st.snapshot_index;
    }
    node_free(n);
    assert_true(n_seen >= 3);
    for (size_t k = 1; k < n_seen; k++) {
        uint64_t gap = seen[k] - seen[k - 1];
        assert_true(gap >= 20);
        assert_true(2 * gap + 4 >= seen[k - 1]); /* without the rule: every ~20 entries */
    }
    assert_true(n_seen < 15); /* 600 entries 20 apart would be ~30 snapshots */
    snapshot_count = 0;
    remove_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writes_survive_a_restart_and_reads_never_stall),
        cmocka_unit_test(test_snapshots_are_taken_and_a_restart_starts_from_one),
        cmocka_unit_test(test_snapshots_of_a_bigger_tree_come_further_apart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
