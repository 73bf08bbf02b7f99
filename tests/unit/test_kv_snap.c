/* tests/unit/test_kv_snap.c — snapshot files (store/snap.c): a tree with tokens, hidden nodes, dirs,
 * TTLs and in-order keys, and its watch history, written and loaded back, are the same tree and the
 * same history (dump for dump, answer for answer); a damaged or cut file is refused with its name
 * and a byte offset. Real files in a temp dir.
 */
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

struct world {
    struct kv *kv;
    struct watch_hub *hub;
};

static void on_event(void *arg, struct kv_event *ev)
{
    watch_publish(arg, ev, NULL, NULL);
}

static void run(struct world *w, enum kv_cmd_type type, const char *key, const char *val, int64_t expire_ms,
                bool dir)
{
    struct kv_cmd c;
    memset(&c, 0, sizeof(c));
    c.type = type;
    c.now_ms = 1000000;
    c.key = key;
    c.key_len = (uint32_t)strlen(key);
    c.value = val;
    c.value_len = val ? (uint32_t)strlen(val) : 0;
    c.expire_ms = expire_ms;
    c.dir = dir;
    c.recursive = type == KV_CMD_DELETE && dir;
    uint8_t *buf;
    size_t len;
    assert_int_equal(kv_cmd_encode(&c, &buf, &len), 0);
    struct kv_error err = {0};
    kv_apply(w->kv, buf, len, on_event, w->hub, &err); /* failures are part of the history too */
    kv_error_clear(&err);
    free(buf);
}

static void build(struct world *w)
{
    w->kv = kv_new();
    w->hub = watch_hub_new(1000);
    run(w, KV_CMD_CREATE, "/discovery/A/_config/size", "3", 0, false);
    run(w, KV_CMD_CREATE, "/discovery/A/m1", "m1=http://a:2380", 0, false);
    run(w, KV_CMD_CREATE, "/discovery/A/m2", "", 0, false);
    run(w, KV_CMD_SET, "/discovery/A/m1", "m1=http://b:2380", 0, false);
    run(w, KV_CMD_CREATE, "/discovery/A/ttl", "t", 5000000, false);
    run(w, KV_CMD_POST, "/discovery/A/queue", "first", 0, false);
    run(w, KV_CMD_POST, "/discovery/A/queue", "second", 0, false);
    run(w, KV_CMD_CREATE, "/discovery/B/d/e/f", "deep", 0, false);
    run(w, KV_CMD_CREATE, "/discovery/B/emptydir", NULL, 0, true);
    run(w, KV_CMD_DELETE, "/discovery/B/d", NULL, 0, true);
    run(w, KV_CMD_CREATE, "/discovery/C/_config/size", "5", 0, false);
    run(w, KV_CMD_DELETE, "/discovery/C", NULL, 0, true); /* a deleted token: its history goes */
    run(w, KV_CMD_CREATE, "/outside", "x", 0, false);     /* only in the global ring */
    for (int i = 0; i < 30; i++) {
        char k[64];
        snprintf(k, sizeof(k), "/discovery/T%02d/m", i % 7);
        run(w, KV_CMD_SET, k, "v", i % 3 ? 0 : 9000000 + i, false);
    }
}

static void destroy(struct world *w)
{
    watch_hub_free(w->hub);
    kv_free(w->kv);
}

/* A dump as text, one line per node with every field a snapshot keeps (and the visible count the
 * tree derives). */
struct text {
    char *p;
    size_t len;
    const struct kv *kv;
};

static int dump_line(void *arg, const struct kv_image *n)
{
    struct text *t = arg;
    char line[512];
    const struct kv_node *node = kv_lookup(t->kv, n->key, n->key_len);
    assert_non_null(node);
    int l = snprintf(line, sizeof(line), "%s d=%d v=%s c=%llu m=%llu cms=%lld exp=%lld vis=%u\n", n->key,
                     n->dir, n->value ? n->value : "-", (unsigned long long)n->created_index,
                     (unsigned long long)n->modified_index, (long long)n->created_ms, (long long)n->expire_ms,
                     kv_node_nvisible(node));
    t->p = realloc(t->p, t->len + (size_t)l + 1);
    memcpy(t->p + t->len, line, (size_t)l + 1);
    t->len += (size_t)l;
    return 0;
}

static char *dump_text(const struct kv *kv)
{
    struct text t = {calloc(1, 1), 0, kv};
    kv_dump(kv, dump_line, &t);
    return t.p;
}

/* What a watch at (key, recursive, wait_index) answers: the event's index, 0 = would wait, or -401. */
static long long watch_answer(struct watch_hub *h, const char *key, bool recursive, uint64_t wait,
                              uint64_t cur)
{
    struct watcher w;
    memset(&w, 0, sizeof(w));
    w.key = key;
    w.key_len = (uint32_t)strlen(key);
    w.recursive = recursive;
    struct kv_event *ev = NULL;
    struct kv_error err = {0};
    int rc = watch_start(h, &w, wait, cur, &ev, &err);
    kv_error_clear(&err);
    long long r = rc == 0 ? (long long)ev->index : rc == 1 ? 0 : -(long long)rc;
    kv_event_unref(ev);
    return r;
}

static char dir[] = "/tmp/dd-kv-snap-XXXXXX";

static void test_a_tree_and_its_history_come_back_whole(void **state)
{
    (void)state;
    struct world a, b;
    build(&a);
    static struct snap_meta m = {.index = 77, .term = 3, .cluster_id = 0xabcdef, .conf = {.n = 1, .ids = {42}},
                                 .members_len = 5, .members = "table"}; /* the member table, opaque here */
    char err[600];
    assert_int_equal(snap_write(fileio_posix(), dir, &m, a.kv, a.hub, err, sizeof(err)), 0);
    b.kv = kv_new();
    b.hub = watch_hub_new(1000);
    struct snap_meta got;
    assert_int_equal(snap_load(fileio_posix(), dir, 77, 3, &got, b.kv, b.hub, err, sizeof(err)), 0);
    assert_int_equal(got.index, 77);
    assert_int_equal(got.term, 3);
    assert_int_equal(got.cluster_id, 0xabcdef);
    assert_int_equal(got.conf.n, 1);
    assert_int_equal(got.conf.ids[0], 42);
    assert_int_equal(got.members_len, 5);
    assert_memory_equal(got.members, "table", 5);
    char *ta = dump_text(a.kv), *tb = dump_text(b.kv);
    assert_string_equal(ta, tb);
    assert_non_null(strstr(ta, "/discovery/A/_config/size"));
    assert_non_null(strstr(ta, "exp=5000000"));
    free(ta);
    free(tb);
    assert_int_equal(kv_index(a.kv), kv_index(b.kv));
    assert_int_equal(kv_ntokens(a.kv), kv_ntokens(b.kv));
    assert_int_equal(kv_nnodes(a.kv), kv_nnodes(b.kv));
    assert_int_equal(kv_next_due(a.kv, 3600000), kv_next_due(b.kv, 3600000));
    assert_int_equal(kv_next_due(a.kv, 0), kv_next_due(b.kv, 0));
    /* every watch answers the same: from history, waiting, or 401 */
    const char *keys[] = {"/discovery/A", "/discovery/A/m1", "/discovery/B",
                          "/discovery/C", "/discovery/T03",  "/",
                          "/outside",     "/discovery"};
    uint64_t cur = kv_index(a.kv);
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
        for (uint64_t wi = 0; wi <= cur + 1; wi++)
            for (int rec = 0; rec < 2; rec++)
                assert_int_equal(watch_answer(a.hub, keys[k], rec, wi, cur),
                                 watch_answer(b.hub, keys[k], rec, wi, cur));
    /* and the restored tree goes on like the original */
    run(&a, KV_CMD_CREATE, "/discovery/A/m3", "z", 0, false);
    run(&b, KV_CMD_CREATE, "/discovery/A/m3", "z", 0, false);
    ta = dump_text(a.kv);
    tb = dump_text(b.kv);
    assert_string_equal(ta, tb);
    free(ta);
    free(tb);
    destroy(&a);
    destroy(&b);
}

static void test_a_damaged_or_cut_file_is_refused_by_name_and_offset(void **state)
{
    (void)state;
    struct world a;
    build(&a);
    struct snap_meta m = {.index = 90, .term = 4, .cluster_id = 7};
    char err[600];
    assert_int_equal(snap_write(fileio_posix(), dir, &m, a.kv, a.hub, err, sizeof(err)), 0);
    char path[256];
    snprintf(path, sizeof(path), "%s/%016x-%016x.snap", dir, 90, 4);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *orig = malloc((size_t)size);
    assert_int_equal(fread(orig, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    uint8_t *buf = malloc((size_t)size);
    /* a flipped bit anywhere, or any cut, is an error: never a crash, never a partial tree */
    for (long off = 0; off < size; off += 7) {
        for (int cut = 0; cut < 2; cut++) {
            memcpy(buf, orig, (size_t)size);
            size_t len = (size_t)size;
            if (cut)
                len = (size_t)off;
            else
                buf[off] ^= 0x10;
            struct world b = {kv_new(), watch_hub_new(1000)};
            struct snap_meta got;
            char why[256] = "";
            assert_int_not_equal(snap_parse(buf, len, &got, b.kv, b.hub, why, sizeof(why)), 0);
            assert_non_null(strstr(why, "byte "));
            destroy(&b);
        }
    }
    /* through snap_load the message names the file and says what to do */
    orig[size / 2] ^= 1;
    f = fopen(path, "wb");
    assert_int_equal(fwrite(orig, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    struct world b = {kv_new(), watch_hub_new(1000)};
    struct snap_meta got;
    assert_int_equal(snap_load(fileio_posix(), dir, 90, 4, &got, b.kv, b.hub, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "checksum"));
    assert_non_null(strstr(err, "backup"));
    destroy(&b);
    /* a missing file is -ENOENT */
    b = (struct world){kv_new(), watch_hub_new(1000)};
    assert_int_equal(snap_load(fileio_posix(), dir, 91, 4, &got, b.kv, b.hub, err, sizeof(err)), -ENOENT);
    destroy(&b);
    /* pruning keeps what is asked and removes older files */
    assert_int_equal(snap_prune(fileio_posix(), dir, 90), 0);
    assert_non_null(fopen(path, "rb") ? (void *)1 : NULL);
    free(orig);
    free(buf);
    destroy(&a);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_tree_and_its_history_come_back_whole),
        cmocka_unit_test(test_a_damaged_or_cut_file_is_refused_by_name_and_offset),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
