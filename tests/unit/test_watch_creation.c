/* tests/unit/test_watch_creation.c — a hub bound to its tree keeps nothing for a token that holds
 * only its creation event and rebuilds that event from the tree (store/watch.c). The test runs the
 * same commands through a bound hub (announced with watch_prepare and published in batches, as
 * node_apply does) and through an unbound hub that records every event, and requires the same
 * answer from both for every watched key and every waitIndex, and the same snapshot dump, after
 * creations by CREATE, SET, dir PUT and POST, registrations, a same-size SET over the size, a
 * recursive delete inside the token in the batch that created it, TTL expiry and token expiry by
 * SWEEP, and refreshes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/kv.h"
#include "store/watch.h"

struct world {
    struct kv *kv;
    struct watch_hub *hub;
    struct kv_event *pending[64]; /* a batch's events, published after it (as node_apply does) */
    int npending;
};

static void collect(void *arg, struct kv_event *ev)
{
    struct world *w = arg;
    assert_true(w->npending < 64);
    w->pending[w->npending++] = kv_event_ref(ev);
}

static void no_fire(void *arg, struct watcher *w, struct kv_event *ev)
{
    (void)arg;
    (void)w;
    (void)ev;
}

static struct world a, b; /* a: bound; b: records everything */

static void apply(struct world *w, bool bound, const struct kv_cmd *c)
{
    uint8_t *buf;
    size_t len;
    struct kv_error err = {0};
    assert_int_equal(kv_cmd_encode(c, &buf, &len), 0);
    if (bound && c->type != KV_CMD_SWEEP)
        watch_prepare(w->hub, c->key, c->key_len);
    kv_apply(w->kv, buf, len, collect, w, &err);
    kv_error_clear(&err);
    free(buf);
}

static void publish(struct world *w)
{
    for (int i = 0; i < w->npending; i++) {
        watch_publish(w->hub, w->pending[i], no_fire, NULL);
        kv_event_unref(w->pending[i]);
    }
    w->npending = 0;
}

/* One batch of commands on both worlds. */
static void batch(const struct kv_cmd *cs, int n)
{
    for (int i = 0; i < n; i++) {
        apply(&a, true, &cs[i]);
        apply(&b, false, &cs[i]);
    }
    publish(&a);
    publish(&b);
}

static struct kv_cmd cmd(enum kv_cmd_type type, const char *key, const char *val)
{
    struct kv_cmd c;
    memset(&c, 0, sizeof(c));
    c.type = type;
    c.key = key;
    c.key_len = (uint32_t)strlen(key);
    c.value = val;
    c.value_len = val ? (uint32_t)strlen(val) : 0;
    c.now_ms = 1000;
    return c;
}

static void same_enode(const struct kv_enode *x, const struct kv_enode *y)
{
    assert_string_equal(x->key, y->key);
    assert_true((x->value == NULL) == (y->value == NULL));
    if (x->value) {
        assert_int_equal(x->value_len, y->value_len);
        assert_memory_equal(x->value, y->value, x->value_len);
    }
    assert_int_equal(x->dir, y->dir);
    assert_int_equal(x->expire_ms, y->expire_ms);
    assert_int_equal(x->modified_index, y->modified_index);
    assert_int_equal(x->created_index, y->created_index);
}

static void same_event(const struct kv_event *x, const struct kv_event *y)
{
    assert_int_equal(x->action, y->action);
    assert_int_equal(x->index, y->index);
    assert_int_equal(x->refresh, y->refresh);
    assert_int_equal(x->has_prev, y->has_prev);
    same_enode(&x->node, &y->node);
    if (x->has_prev)
        same_enode(&x->prev, &y->prev);
}

static const char *const keys[] = {
    "/discovery/T1", "/discovery/T1/_config", "/discovery/T1/_config/size", "/discovery/T1/m1",
    "/discovery/T2", "/discovery/T2/_config/size", "/discovery/T3", "/discovery/T4", "/discovery/T4/_config/size",
    "/discovery/T5", "/discovery/T6", "/discovery/T6/a/b", "/discovery/T7", "/discovery/T7/_config/size",
    "/discovery/00000000000000000006", "/discovery", "/",
};

/* Every key, recursive or not, every waitIndex: the same answer from both hubs. */
static void same_answers(void)
{
    uint64_t cur = kv_index(b.kv);
    assert_int_equal(kv_index(a.kv), cur);
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
        for (int rec = 0; rec < 2; rec++)
            for (uint64_t wi = 1; wi <= cur + 1; wi++) {
                struct watcher wa = {.key = keys[k], .key_len = (uint32_t)strlen(keys[k]), .recursive = rec};
                struct watcher wb = wa;
                struct kv_event *ea = NULL, *eb = NULL;
                struct kv_error xa = {0}, xb = {0};
                int ra = watch_start(a.hub, &wa, wi, cur, &ea, &xa);
                int rb = watch_start(b.hub, &wb, wi, cur, &eb, &xb);
                if (ra != rb)
                    fail_msg("%s recursive=%d waitIndex=%llu: %d vs %d", keys[k], rec, (unsigned long long)wi, ra,
                             rb);
                if (ra == 0)
                    same_event(ea, eb);
                kv_event_unref(ea);
                kv_event_unref(eb);
                kv_error_clear(&xa);
                kv_error_clear(&xb);
            }
}

/* A dump as text, one line per ring (sorted), so two hubs' dumps compare whatever their order. */
struct dumptext {
    char *lines[256];
    int n;
    char cur[4096];
};

static int d_ring(void *arg, const char *token, size_t len, uint64_t dropped, uint32_t n)
{
    struct dumptext *d = arg;
    if (d->cur[0]) {
        assert_true(d->n < 256);
        d->lines[d->n++] = strdup(d->cur);
    }
    snprintf(d->cur, sizeof(d->cur), "%.*s dropped=%llu n=%u:", (int)len, token ? token : "(global)",
             (unsigned long long)dropped, n);
    return 0;
}

static int d_event(void *arg, const struct kv_event *ev)
{
    struct dumptext *d = arg;
    size_t l = strlen(d->cur);
    snprintf(d->cur + l, sizeof(d->cur) - l, " [%d %llu %s %s d%d e%lld m%llu c%llu p%d %s r%d]", ev->action,
             (unsigned long long)ev->index, ev->node.key, ev->node.value ? ev->node.value : "-", ev->node.dir,
             (long long)ev->node.expire_ms, (unsigned long long)ev->node.modified_index,
             (unsigned long long)ev->node.created_index, ev->has_prev,
             ev->has_prev && ev->prev.value ? ev->prev.value : "-", ev->refresh);
    return 0;
}

static int by_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static void dump_of(struct world *w, struct dumptext *d)
{
    memset(d, 0, sizeof(*d));
    struct watch_dump_fns f = {d_ring, d_event};
    assert_int_equal(watch_dump(w->hub, &f, d), 0);
    if (d->cur[0])
        d->lines[d->n++] = strdup(d->cur);
    qsort(d->lines, (size_t)d->n, sizeof(d->lines[0]), by_str);
}

static void same_dumps(void)
{
    struct dumptext da, db;
    dump_of(&a, &da);
    dump_of(&b, &db);
    assert_int_equal(da.n, db.n);
    for (int i = 0; i < da.n; i++) {
        assert_string_equal(da.lines[i], db.lines[i]);
        free(da.lines[i]);
        free(db.lines[i]);
    }
}

static void check(void)
{
    same_answers();
    same_dumps();
}

static void test_bound_hub_answers_as_one_that_keeps_everything(void **s)
{
    (void)s;
    a = (struct world){kv_new(), watch_hub_new(1000), {0}, 0};
    b = (struct world){kv_new(), watch_hub_new(1000), {0}, 0};
    watch_hub_bind(a.hub, a.kv);

    /* creations of every kind, one per batch and several in one */
    struct kv_cmd c1[] = {cmd(KV_CMD_CREATE, "/discovery/T1/_config/size", "3")};
    batch(c1, 1);
    struct kv_cmd c2[] = {cmd(KV_CMD_SET, "/discovery/T2/_config/size", "5"), cmd(KV_CMD_SET, "/discovery/T3", NULL),
                          cmd(KV_CMD_POST, "/discovery", "x")};
    c2[1].dir = true;
    batch(c2, 3);
    struct kv_cmd c3[] = {cmd(KV_CMD_CREATE, "/discovery/T4/_config/size", "7")};
    c3[0].expire_ms = 2000;
    batch(c3, 1);
    check();

    /* the first registration of T1; the same size again over T2's (a retried creation) */
    struct kv_cmd c4[] = {cmd(KV_CMD_CREATE, "/discovery/T1/m1", "m1=http://a:2380")};
    batch(c4, 1);
    struct kv_cmd c5[] = {cmd(KV_CMD_SET, "/discovery/T2/_config/size", "5")};
    batch(c5, 1);
    check();

    /* T4's size expires by SWEEP (not announced): rebuilt from the expiry's prevNode */
    struct kv_cmd sw;
    memset(&sw, 0, sizeof(sw));
    sw.type = KV_CMD_SWEEP;
    sw.now_ms = 3000;
    batch(&sw, 1);
    check();

    /* created and cut down in one batch; created, then cut down in the next */
    struct kv_cmd c6[] = {cmd(KV_CMD_CREATE, "/discovery/T5/_config/size", "3"),
                          cmd(KV_CMD_DELETE, "/discovery/T5/_config", NULL)};
    c6[1].recursive = true;
    batch(c6, 2);
    struct kv_cmd c7[] = {cmd(KV_CMD_SET, "/discovery/T6/a/b", "v")};
    batch(c7, 1);
    check();
    struct kv_cmd c8[] = {cmd(KV_CMD_DELETE, "/discovery/T6/a", NULL)};
    c8[0].recursive = true;
    batch(c8, 1);
    check();

    /* a refresh of a fresh token's size (TTL, same value) */
    struct kv_cmd c9[] = {cmd(KV_CMD_CREATE, "/discovery/T7/_config/size", "3")};
    batch(c9, 1);
    struct kv_cmd c10[] = {cmd(KV_CMD_UPDATE, "/discovery/T7/_config/size", NULL)};
    c10[0].refresh = true;
    c10[0].expire_ms = 9000;
    batch(c10, 1);
    check();

    /* token expiry by SWEEP: tokens and their histories go */
    sw.now_ms = 5000;
    sw.token_ttl_ms = 1;
    batch(&sw, 1);
    check();

    watch_hub_free(a.hub);
    watch_hub_free(b.hub);
    kv_free(a.kv);
    kv_free(b.kv);
}

/* The point of it: a token that only holds its creation keeps no ring, and nothing is lost. */
static void test_a_fresh_token_keeps_no_ring(void **s)
{
    (void)s;
    struct world w = {kv_new(), watch_hub_new(1000), {0}, 0};
    watch_hub_bind(w.hub, w.kv);
    struct kv_cmd c = cmd(KV_CMD_CREATE, "/discovery/T/_config/size", "3");
    apply(&w, true, &c);
    publish(&w);
    struct dumptext d;
    dump_of(&w, &d);
    /* the global ring, and T's ring rebuilt from the tree */
    assert_int_equal(d.n, 2);
    assert_non_null(strstr(d.lines[1], "T dropped=0 n=1: [2 2 /discovery/T/_config/size 3"));
    for (int i = 0; i < d.n; i++)
        free(d.lines[i]);
    watch_hub_free(w.hub);
    kv_free(w.kv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bound_hub_answers_as_one_that_keeps_everything),
        cmocka_unit_test(test_a_fresh_token_keeps_no_ring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
