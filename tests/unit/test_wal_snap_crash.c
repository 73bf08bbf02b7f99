/* tests/unit/test_wal_snap_crash.c — snapshot files under faults and power cuts, on the in-memory file
 * system of the WAL's crash simulation (tests/support/fake_fs): a snapshot write that fails at any
 * write or sync reports the failure and leaves no file under the final name; a power cut at any
 * operation of a write leaves either the new snapshot whole (it loads and equals the tree it was
 * taken from) or nothing under its name, and the older snapshot always loads. Seeds are replayable:
 * DISCOVERYD_SNAP_CRASH_SEEDS=N (default 1000).
 */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/snap.h"
#include "tests/support/fake_fs.h"

#define DIR "/data/snap"

static void emit(void *arg, struct kv_event *ev)
{
    watch_publish(arg, ev, NULL, NULL);
}

static void put(struct kv *kv, struct watch_hub *hub, const char *key, const char *v, int64_t exp)
{
    struct kv_cmd c = {.type = KV_CMD_SET,
                       .now_ms = 1000,
                       .key = key,
                       .key_len = (uint32_t)strlen(key),
                       .value = v,
                       .value_len = (uint32_t)strlen(v),
                       .expire_ms = exp};
    uint8_t *b;
    size_t n;
    struct kv_error e = {0};
    assert_int_equal(kv_cmd_encode(&c, &b, &n), 0);
    assert_int_equal(kv_apply(kv, b, n, emit, hub, &e), 0);
    free(b);
}

static int line(void *arg, const struct kv_image *n)
{
    char **s = arg;
    char *t;
    assert_true(asprintf(&t, "%s%s|%s|%llu|%lld\n", *s, n->key, n->value ? n->value : "-",
                         (unsigned long long)n->modified_index, (long long)n->expire_ms) > 0);
    free(*s);
    *s = t;
    return 0;
}

static char *text(const struct kv *kv)
{
    char *s = strdup("");
    kv_dump(kv, line, &s);
    return s;
}

/* Load (index, term) from fs into a fresh tree; its text, or NULL if it does not load. */
static char *load(struct fake_fs *fs, uint64_t index)
{
    struct kv *kv = kv_new();
    struct watch_hub *hub = watch_hub_new(1000);
    struct snap_meta m;
    char err[512];
    char *t = snap_load(fake_fs_io(fs), DIR, index, 1, &m, kv, hub, err, sizeof(err)) == 0 ? text(kv) : NULL;
    watch_hub_free(hub);
    kv_free(kv);
    return t;
}

static bool exists(struct fake_fs *fs, uint64_t index)
{
    char name[48], path[128];
    snap_name(name, sizeof(name), index, 1);
    snprintf(path, sizeof(path), "%s/%s", DIR, name);
    size_t len;
    uint8_t *b = fake_fs_get(fs, path, &len);
    free(b);
    return b != NULL;
}

static void test_snapshot_writes_under_faults_and_power_cuts(void **state)
{
    (void)state;
    struct kv *kv = kv_new();
    struct watch_hub *hub = watch_hub_new(1000);
    for (int i = 0; i < 200; i++) {
        char k[64], v[32];
        snprintf(k, sizeof(k), "/discovery/t%d/m%d", i % 13, i);
        snprintf(v, sizeof(v), "v%d", i);
        put(kv, hub, k, v, i % 4 ? 0 : 50000 + i);
    }
    char *old_text = text(kv);
    struct snap_meta a = {.index = 10, .term = 1, .cluster_id = 5};
    char err[512];
    /* how many operations a whole write of the newer snapshot takes */
    struct fake_fs *probe = fake_fs_new(1);
    fake_fs_io(probe)->mkdir(fake_fs_io(probe)->ctx, "/data", 0700);
    assert_int_equal(snap_write(fake_fs_io(probe), DIR, &a, kv, hub, err, sizeof(err)), 0);
    for (int i = 0; i < 100; i++) {
        char k[64];
        snprintf(k, sizeof(k), "/discovery/new/m%d", i);
        put(kv, hub, k, "x", 0);
    }
    char *new_text = text(kv);
    struct snap_meta b = {.index = 20, .term = 1, .cluster_id = 5};
    uint64_t before = fake_fs_ops(probe);
    assert_int_equal(snap_write(fake_fs_io(probe), DIR, &b, kv, hub, err, sizeof(err)), 0);
    uint64_t ops = fake_fs_ops(probe) - before;
    fake_fs_free(probe);
    assert_true(ops > 4);

    const char *env = getenv("DISCOVERYD_SNAP_CRASH_SEEDS");
    unsigned seeds = env ? (unsigned)strtoul(env, NULL, 10) : 1000;
    unsigned whole = 0, none = 0;
    for (unsigned seed = 1; seed <= seeds; seed++) {
        struct fake_fs *fs = fake_fs_new(seed);
        const struct fileio *io = fake_fs_io(fs);
        io->mkdir(io->ctx, "/data", 0700);
        /* the older snapshot, durable; its tree is old_text (rebuilt from the newer one minus "new") */
        struct kv *okv = kv_new();
        struct watch_hub *ohub = watch_hub_new(1000);
        for (int i = 0; i < 200; i++) {
            char k[64], v[32];
            snprintf(k, sizeof(k), "/discovery/t%d/m%d", i % 13, i);
            snprintf(v, sizeof(v), "v%d", i);
            put(okv, ohub, k, v, i % 4 ? 0 : 50000 + i);
        }
        assert_int_equal(snap_write(io, DIR, &a, okv, ohub, err, sizeof(err)), 0);
        watch_hub_free(ohub);
        kv_free(okv);
        int mode = (int)(seed % 3);
        uint64_t n = 1 + (uint64_t)(seed * 2654435761u) % ops;
        if (mode == 0)
            fake_fs_fail_write(fs, n % 2 + 1, EIO); /* the body and the trailer: two writes at least */
        else if (mode == 1)
            fake_fs_fail_sync(fs, n % 2 + 1, EIO);
        else
            fake_fs_die_after(fs, n);
        int rv = snap_write(io, DIR, &b, kv, hub, err, sizeof(err));
        if (mode < 2) {
            /* a failed write or sync is reported, and nothing carries the final name */
            if (rv == 0) {
                fprintf(stderr, "seed %u: a failing %s was not reported\n", seed, mode ? "sync" : "write");
                fail();
            }
            assert_false(exists(fs, 20));
        }
        fake_fs_power_cut(fs);
        char *t = load(fs, 20);
        if (t) {
            assert_string_equal(t, new_text);
            whole++;
        } else {
            assert_false(exists(fs, 20) && mode < 2);
            none++;
        }
        if (rv == 0 && mode == 2 && !t) {
            fprintf(stderr, "seed %u: an acknowledged snapshot was lost\n", seed);
            fail();
        }
        free(t);
        char *o = load(fs, 10);
        if (!o || strcmp(o, old_text) != 0) {
            fprintf(stderr, "seed %u: the older snapshot no longer loads\n", seed);
            fail();
        }
        free(o);
        fake_fs_free(fs);
    }
    printf("snapshot crash simulation: %u seeds, %u left the new snapshot whole, %u left none\n", seeds,
           whole, none);
    assert_int_equal(whole + none, seeds);
    free(old_text);
    free(new_text);
    watch_hub_free(hub);
    kv_free(kv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_writes_under_faults_and_power_cuts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
