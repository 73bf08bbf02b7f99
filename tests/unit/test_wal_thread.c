/* tests/unit/test_wal_thread.c — the group-commit thread: concurrent submitters share fsyncs, a
 * round takes everything queued, a failed fsync or write poisons the WAL (the round's batches and
 * every later submit fail, with the file and the error named), an invalid batch fails alone.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>
#include <cmocka.h>
#include "store/wal_thread.h"
#include "tests/support/fake_fs.h"
#include "tests/support/wal_util.h"

/* ---- a batch that records its completion ---- */

struct done {
    pthread_mutex_t mu;
    int calls, err;
    char msg[512];
};
static void on_done(void *arg, int err, const char *msg)
{
    struct done *d = arg;
    pthread_mutex_lock(&d->mu);
    d->calls++;
    d->err = err;
    snprintf(d->msg, sizeof(d->msg), "%s", msg);
    pthread_mutex_unlock(&d->mu);
}

struct item {
    struct wal_batch b;
    struct raft_entry e;
    uint8_t buf[ENTRY_DATA_MAX];
    struct done d;
};
static void item_init(struct item *it, uint64_t index)
{
    memset(it, 0, sizeof(*it));
    pthread_mutex_init(&it->d.mu, NULL);
    wal_test_entry(&it->e, it->buf, index, 1);
    it->b.entries = &it->e;
    it->b.n_entries = 1;
    it->b.done = on_done;
    it->b.arg = &it->d;
}

/* ---- a gate that holds the first fdatasync until released ---- */

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool armed, entered, open;
};
static void gate_hook(void *arg)
{
    struct gate *g = arg;
    pthread_mutex_lock(&g->mu);
    if (g->armed) {
        g->armed = false;
        g->entered = true;
        pthread_cond_broadcast(&g->cv);
        while (!g->open)
            pthread_cond_wait(&g->cv, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
}
static void gate_wait_entered(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    while (!g->entered)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}
static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

struct fakefx {
    struct fake_fs *fs;
    struct wal_config cfg;
    struct wal *w;
    struct wal_thread *t;
    struct gate g;
};

static void fake_start(struct fakefx *f)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->g.mu, NULL);
    pthread_cond_init(&f->g.cv, NULL);
    f->fs = fake_fs_new(3);
    wal_config_defaults(&f->cfg);
    f->cfg.dir = "/wal";
    f->cfg.segment_size = 1 << 16;
    f->cfg.io = fake_fs_io(f->fs);
    struct wal_replay r;
    char err[512];
    assert_int_equal(wal_open(&f->w, &f->cfg, &r, err, sizeof(err)), 0);
    wal_replay_free(&r);
    fake_fs_sync_hook(f->fs, gate_hook, &f->g);
    assert_int_equal(wal_thread_start(&f->t, f->w), 0);
}

static void fake_stop(struct fakefx *f)
{
    wal_thread_stop(f->t);
    wal_close(f->w);
    fake_fs_free(f->fs);
}

static void test_group_commit_syncs_everything_queued_once(void **state)
{
    struct fakefx f;
    fake_start(&f);
    struct wal_stats before;
    wal_stats(f.w, &before);
    enum { N = 12 };
    struct item *items = calloc(N, sizeof(*items));
    for (int i = 0; i < N; i++)
        item_init(&items[i], (uint64_t)i + 1);
    f.g.armed = true;
    assert_int_equal(wal_thread_submit(f.t, &items[0].b), 0);
    gate_wait_entered(&f.g); /* round 1 is inside its fdatasync */
    for (int i = 1; i < N; i++)
        assert_int_equal(wal_thread_submit(f.t, &items[i].b), 0);
    gate_open(&f.g);
    wal_thread_stop(f.t);
    f.t = NULL;
    for (int i = 0; i < N; i++) {
        assert_int_equal(items[i].d.calls, 1);
        assert_int_equal(items[i].d.err, 0);
    }
    struct wal_stats after;
    wal_stats(f.w, &after);
    assert_int_equal(after.syncs - before.syncs, 2);   /* two rounds ... */
    assert_int_equal(after.fsyncs - before.fsyncs, 2); /* ... one fdatasync each, for 12 batches */
    wal_close(f.w);
    f.w = NULL;
    struct wal_replay r;
    char err[512];
    assert_int_equal(wal_open(&f.w, &f.cfg, &r, err, sizeof(err)), 0);
    assert_int_equal(r.n_entries, N);
    wal_replay_free(&r);
    fake_stop(&f);
    free(items);
}

static void test_failed_fsync_poisons_the_wal_and_later_submits_fail(void **state)
{
    struct fakefx f;
    fake_start(&f);
    struct item ok, a, b, late;
    item_init(&ok, 1);
    item_init(&a, 2);
    item_init(&b, 3);
    item_init(&late, 4);
    assert_int_equal(wal_thread_submit(f.t, &ok.b), 0);
    /* Wait for it, then make the next fdatasync fail while b queues behind a. */
    while (1) {
        pthread_mutex_lock(&ok.d.mu);
        int c = ok.d.calls;
        pthread_mutex_unlock(&ok.d.mu);
        if (c)
            break;
        usleep(1000);
    }
    assert_int_equal(ok.d.err, 0);
    fake_fs_fail_sync(f.fs, 1, EIO);
    f.g.armed = true;
    assert_int_equal(wal_thread_submit(f.t, &a.b), 0);
    gate_wait_entered(&f.g);
    assert_int_equal(wal_thread_submit(f.t, &b.b), 0);
    gate_open(&f.g);
    wal_thread_stop(f.t); /* drains: a's round fails, b's round finds the WAL poisoned */
    f.t = NULL;
    assert_int_equal(a.d.calls, 1);
    assert_int_equal(a.d.err, -EIO);
    assert_non_null(strstr(a.d.msg, "/wal/0000000000000001-0000000000000001.wal: fdatasync failed"));
    assert_non_null(strstr(a.d.msg, "Input/output error"));
    assert_int_equal(b.d.calls, 1);
    assert_int_equal(b.d.err, -EIO);
    /* A new thread on the poisoned WAL refuses at once, without calling back; nothing is retried. */
    uint64_t syncs = fake_fs_syncs(f.fs);
    assert_int_equal(wal_thread_start(&f.t, f.w), 0);
    assert_int_equal(wal_thread_submit(f.t, &late.b), -EIO);
    char msg[512];
    assert_int_equal(wal_thread_error(f.t, msg, sizeof(msg)), -EIO);
    assert_non_null(strstr(msg, "fdatasync failed"));
    wal_thread_stop(f.t);
    f.t = NULL;
    assert_int_equal(late.d.calls, 0);
    assert_int_equal(fake_fs_syncs(f.fs), syncs);
    wal_close(f.w);
    f.w = NULL;
    /* After a power cut only the acknowledged entry is there. */
    fake_fs_power_cut(f.fs);
    struct wal_replay r;
    char err[512];
    assert_int_equal(wal_open(&f.w, &f.cfg, &r, err, sizeof(err)), 0);
    assert_int_equal(r.n_entries, 1);
    wal_replay_free(&r);
    fake_stop(&f);
}

static void test_submit_after_poison_in_the_same_thread_fails_at_once(void **state)
{
    struct fakefx f;
    fake_start(&f);
    fake_fs_fail_write(f.fs, 1, ENOSPC);
    struct item a, b;
    item_init(&a, 1);
    item_init(&b, 2);
    assert_int_equal(wal_thread_submit(f.t, &a.b), 0);
    char msg[512];
    while (wal_thread_error(f.t, msg, sizeof(msg)) == 0)
        usleep(1000);
    assert_int_equal(wal_thread_submit(f.t, &b.b), -ENOSPC);
    assert_non_null(strstr(msg, "write of"));
    assert_non_null(strstr(msg, "No space left on device"));
    fake_stop(&f);
    assert_int_equal(a.d.calls, 1);
    assert_int_equal(a.d.err, -ENOSPC);
    assert_int_equal(b.d.calls, 0);
}

static void test_invalid_batch_fails_alone(void **state)
{
    struct fakefx f;
    fake_start(&f);
    struct item a, gap, c;
    item_init(&a, 1);
    item_init(&gap, 5);
    item_init(&c, 2);
    f.g.armed = true;
    struct item first;
    item_init(&first, 1);
    first.b.n_entries = 0; /* a hard-state-only batch to hold the gate */
    struct raft_hard_state hs = {.term = 1, .vote = 1};
    first.b.hard_state = &hs;
    assert_int_equal(wal_thread_submit(f.t, &first.b), 0);
    gate_wait_entered(&f.g);
    assert_int_equal(wal_thread_submit(f.t, &a.b), 0);
    assert_int_equal(wal_thread_submit(f.t, &gap.b), 0);
    assert_int_equal(wal_thread_submit(f.t, &c.b), 0);
    gate_open(&f.g);
    fake_stop(&f);
    assert_int_equal(first.d.err, 0);
    assert_int_equal(a.d.err, 0);
    assert_int_equal(gap.d.err, -EINVAL);
    assert_string_equal(gap.d.msg, "the batch does not follow the log");
    assert_int_equal(c.d.err, 0);
}

/* ---- many submitters on the real file system ---- */

#define THREADS 8
#define PER_THREAD 150

struct shared {
    pthread_mutex_t mu; /* orders index assignment with submission: the log is one sequence */
    uint64_t next;
    struct wal_thread *t;
    int failures;
};
struct worker {
    struct shared *sh;
    struct item items[PER_THREAD];
};
static void *submitter(void *arg)
{
    struct worker *wk = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        pthread_mutex_lock(&wk->sh->mu);
        item_init(&wk->items[i], wk->sh->next++);
        if (wal_thread_submit(wk->sh->t, &wk->items[i].b) != 0)
            wk->sh->failures++;
        pthread_mutex_unlock(&wk->sh->mu);
    }
    return NULL;
}

static void test_concurrent_submitters_share_fsyncs_on_a_real_disk(void **state)
{
    char root[] = "/tmp/dd-walthr-XXXXXX", dir[64];
    assert_non_null(mkdtemp(root));
    snprintf(dir, sizeof(dir), "%s/wal", root);
    struct wal_config cfg;
    wal_config_defaults(&cfg);
    cfg.dir = dir;
    cfg.segment_size = 64 << 10;
    struct wal *w;
    struct wal_replay r;
    char err[512];
    assert_int_equal(wal_open(&w, &cfg, &r, err, sizeof(err)), 0);
    wal_replay_free(&r);
    struct shared sh = {.next = 1};
    pthread_mutex_init(&sh.mu, NULL);
    assert_int_equal(wal_thread_start(&sh.t, w), 0);
    struct worker *wk = calloc(THREADS, sizeof(*wk));
    pthread_t tids[THREADS];
    for (int i = 0; i < THREADS; i++) {
        wk[i].sh = &sh;
        pthread_create(&tids[i], NULL, submitter, &wk[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(tids[i], NULL);
    wal_thread_stop(sh.t); /* drains */
    struct wal_stats ws;
    wal_stats(w, &ws);
    assert_int_equal(sh.failures, 0);
    for (int i = 0; i < THREADS; i++)
        for (int j = 0; j < PER_THREAD; j++) {
            assert_int_equal(wk[i].items[j].d.calls, 1);
            assert_int_equal(wk[i].items[j].d.err, 0);
        }
    printf("%d batches, %llu rounds, %llu fsyncs (segment roll-overs included), %llu bytes\n",
           THREADS * PER_THREAD, (unsigned long long)ws.syncs, (unsigned long long)ws.fsyncs,
           (unsigned long long)ws.bytes);
    assert_true(ws.syncs < THREADS * PER_THREAD);
    assert_true(ws.fsyncs < THREADS * PER_THREAD);
    wal_close(w);
    assert_int_equal(wal_open(&w, &cfg, &r, err, sizeof(err)), 0);
    assert_int_equal(r.n_entries, THREADS * PER_THREAD);
    for (size_t i = 0; i < r.n_entries; i++)
        assert_true(wal_test_entry_ok(&r.entries[i]));
    wal_replay_free(&r);
    wal_close(w);
    free(wk);
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[512];
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.') {
            snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
    rmdir(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_commit_syncs_everything_queued_once),
        cmocka_unit_test(test_failed_fsync_poisons_the_wal_and_later_submits_fail),
        cmocka_unit_test(test_submit_after_poison_in_the_same_thread_fails_at_once),
        cmocka_unit_test(test_invalid_batch_fails_alone),
        cmocka_unit_test(test_concurrent_submitters_share_fsyncs_on_a_real_disk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
