/* tests/unit/test_watch_hub.c — per-token history and parked watchers (store/watch.c), driven by
 * real events from store/kv.c: answers from history, 401 with etcd's cause, per-token isolation,
 * hidden keys (filtered live, not in history), dir deletes waking descendants, refreshes waking
 * nobody, and history dropped with its token.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/kv.h"
#include "store/watch.h"

struct fx {
    struct kv *kv;
    struct watch_hub *hub;
    struct watcher *fired[64];
    struct kv_event *fired_ev[64];
    int nfired;
};

static void on_fire(void *arg, struct watcher *w, struct kv_event *ev)
{
    struct fx *f = arg;
    assert_null(w->bucket); /* unparked before fire */
    assert_true(f->nfired < 64);
    f->fired[f->nfired] = w;
    f->fired_ev[f->nfired++] = kv_event_ref(ev);
}

static void fired_clear(struct fx *f)
{
    for (int i = 0; i < f->nfired; i++)
        kv_event_unref(f->fired_ev[i]);
    f->nfired = 0;
}

static void on_ev(void *arg, struct kv_event *ev)
{
    struct fx *f = arg;
    watch_publish(f->hub, ev, on_fire, f);
}

static int run(struct fx *f, struct kv_cmd *c)
{
    uint8_t *buf;
    size_t len;
    struct kv_error err = {0};
    if (!c->now_ms)
        c->now_ms = 1000;
    assert_int_equal(kv_cmd_encode(c, &buf, &len), 0);
    int rc = kv_apply(f->kv, buf, len, on_ev, f, &err);
    kv_error_clear(&err);
    free(buf);
    return rc;
}

static int put(struct fx *f, const char *key, const char *val)
{
    struct kv_cmd c;
    memset(&c, 0, sizeof(c));
    c.type = KV_CMD_SET;
    c.key = key;
    c.key_len = (uint32_t)strlen(key);
    c.value = val;
    c.value_len = val ? (uint32_t)strlen(val) : 0;
    return run(f, &c);
}

static int del(struct fx *f, const char *key, bool recursive)
{
    struct kv_cmd c;
    memset(&c, 0, sizeof(c));
    c.type = KV_CMD_DELETE;
    c.key = key;
    c.key_len = (uint32_t)strlen(key);
    c.recursive = recursive;
    return run(f, &c);
}

static void wset(struct watcher *w, const char *key, bool recursive)
{
    memset(w, 0, sizeof(*w));
    w->key = key;
    w->key_len = (uint32_t)strlen(key);
    w->recursive = recursive;
}

/* start; on 1 park. Returns watch_start's result; *ev set on 0. */
static int start_park(struct fx *f, struct watcher *w, uint64_t wait, struct kv_event **ev,
                      struct kv_error *err)
{
    int rc = watch_start(f->hub, w, wait, kv_index(f->kv), ev, err);
    if (rc == 1)
        assert_int_equal(watch_park(f->hub, w), 0);
    return rc;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->kv = kv_new();
    f->hub = watch_hub_new(1000);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    fired_clear(f);
    watch_hub_free(f->hub);
    kv_free(f->kv);
    free(f);
    return 0;
}

static void test_self_watch_is_answered_from_history(void **state)
{
    struct fx *f = *state;
    assert_int_equal(put(f, "/discovery/T/_config/size", "3"), 0);        /* 2 */
    assert_int_equal(put(f, "/discovery/T/fc594def544cceea", "m1=x"), 0); /* 3 */
    assert_int_equal(put(f, "/discovery/T/9be2e60fa3f1cda3", "m2=x"), 0); /* 4 */
    struct watcher w;
    wset(&w, "/discovery/T/fc594def544cceea", false);
    struct kv_event *ev = NULL;
    struct kv_error err = {0};
    assert_int_equal(watch_start(f->hub, &w, 3, kv_index(f->kv), &ev, &err), 0);
    assert_string_equal(ev->node.key, "/discovery/T/fc594def544cceea");
    assert_int_equal(ev->index, 3);
    kv_event_unref(ev);
    assert_int_equal(watch_nparked(f->hub), 0);
}

static void test_history_scan_returns_hidden_events_first(void **state)
{
    struct fx *f = *state;
    assert_int_equal(put(f, "/discovery/T/_config/size", "3"), 0); /* 2 */
    assert_int_equal(put(f, "/discovery/T/m1", "a"), 0);           /* 3 */
    struct watcher w;
    wset(&w, "/discovery/T", true);
    struct kv_event *ev = NULL;
    struct kv_error err = {0};
    assert_int_equal(watch_start(f->hub, &w, 1, kv_index(f->kv), &ev, &err), 0);
    assert_string_equal(ev->node.key, "/discovery/T/_config/size"); /* trace 5.5b */
    kv_event_unref(ev);
    assert_int_equal(watch_start(f->hub, &w, 3, kv_index(f->kv), &ev, &err), 0);
    assert_string_equal(ev->node.key, "/discovery/T/m1");
    kv_event_unref(ev);
}

static void test_non_recursive_watch_ignores_children_in_history(void **state)
{
    struct fx *f = *state;
    assert_int_equal(put(f, "/discovery/T/m1", "a"), 0); /* 2 */
    struct watcher w;
    wset(&w, "/discovery/T", false);
    struct kv_event *ev = NULL;
    struct kv_error err = {0};
    assert_int_equal(watch_start(f->hub, &w, 2, kv_index(f->kv), &ev, &err), 1);
    assert_int_equal(w.since, 2);
}

static void test_wait_index_zero_means_next_event(void **state)
{
    struct fx *f = *state;
    assert_int_equal(put(f, "/discovery/T/m1", "a"), 0); /* 2 */
    struct watcher w;
    wset(&w, "/discovery/T/m1", false);
    struct kv_event *ev = NULL;
    struct kv_error err = {0};
    assert_int_equal(start_park(f, &w, 0, &ev, &err), 1);
    assert_int_equal(w.since, 3);
    assert_int_equal(watch_nparked(f->hub), 1);
    assert_int_equal(put(f, "/discovery/T/m1", "b"), 0);
    assert_int_equal(f->nfired, 1);
    assert_ptr_equal(f->fired[0], &w);
    assert_int_equal(f->fired_ev[0]->index, 3);
    assert_int_equal(watch_nparked(f->hub), 0);
}

static void test_live_recursive_watch_skips_hidden_then_fires_on_member(void **state)
{
    struct fx *f = *state;
    assert_int_equal(put(f, "/discovery/T/_config/size", "3"), 0); /* 2 */
    struct watcher w;
    wset(&w, "/discovery/T", true);
    struct kv_event *ev = NULL;
    struct kv_error err = {0};
    assert_int_equal(start_park(f, &w, 3, &ev, &err), 1);
    assert_int_equal(put(f, "/discovery/T/_config/hiddentest", "h"), 0); /* 3: no wake */
    assert_int_equal(f->nfired, 0);
    assert_int_equal(put(f, "/discovery/T/feedfacecafebeef", "fake"), 0); /* 4 */
    assert_int_equal(f->nfired, 1);
    assert_string_equal(f->fired_ev[0]->node.key, "/discovery/T/feedfacecafebeef");
    /* the same range from history does return the hidden event (trace 5.6d) */
    wset(&w, "/discovery/T", true);
    assert_int_equal(watch_start(f->hub, &w, 3, kv_index(f->kv), &ev, &err), 0);
    assert_string_equal(ev->node.key, "/discovery/T/_config/hiddentest");
    kv_event_unref(ev);
}

static void test_exact_watch_on_hidden_key_fires(void **state)
{
    struct fx *f = *state;
    struct watcher w;
    wset(&w, "/discovery/T/_config/size", false);
    struct kv_event *ev = NULL;
    struct kv_error err = {0};
    assert_int_equal(start_park(f, &w, 0, &ev, &err), 1);
    assert_int_equal(put(f, "/discovery/T/_config/size", "3"), 0);
    assert_int_equal(f->nfired, 1);
}

static void test_watch_on_token_without_history_parks_and_fires(void **state)
{
    struct fx *f = *state;
    struct watcher w;
    wset(&w, "/discovery/NEW", true);
    struct kv_event *ev = NULL;
    struct kv_error err = {0};
    /* an old index, but the token has no history: park */
    assert_int_equal(start_park(f, &w, 1, &ev, &err), 1);
    assert_int_equal(put(f, "/discovery/OTHER/m", "x"), 0);
    assert_int_equal(f->nfired, 0);
    assert_int_equal(put(f, "/discovery/NEW/m", "x"), 0);
    assert_int_equal(f->nfired, 1);
}

static void test_since_above_event_index_keeps_watcher_parked(void **state)
{
    struct fx *f = *state;
    struct watcher w;
    wset(&w, "/discovery/T/k", false);
    struct kv_event *ev = NULL;
    struct kv_error err = {0};
    assert_int_equal(start_park(f, &w, 4, &ev, &err), 1);
    assert_int_equal(put(f, "/discovery/T/k", "a"), 0); /* 2 */
    assert_int_equal(put(f, "/discovery/T/k", "b"), 0); /* 3 */
    assert_int_equal(f->nfired, 0);
    assert_int_equal(put(f, "/discovery/T/k", "c"), 0); /* 4 */
    assert_int_equal(f->nfired, 1);
    assert_int_equal(f->fired_ev[0]->index, 4);
}

static void test_cleared_history_is_401_with_etcd_cause(void **state)
{
    struct fx *f = *state;
    watch_hub_free(f->hub);
    f->hub = watch_hub_new(1000);
    char v[16];
    for (int i = 0; i < 1100; i++) { /* indexes 2..1101 */
        snprintf(v, sizeof(v), "%d", i);
        assert_int_equal(put(f, "/discovery/T/k", v), 0);
    }
    struct watcher w;
    wset(&w, "/discovery/T", true);
    struct kv_event *ev = NULL;
    struct kv_error err = {0};
    assert_int_equal(watch_start(f->hub, &w, 7, kv_index(f->kv), &ev, &err), KV_EEVENTCLEARED);
    assert_int_equal(err.code, KV_EEVENTCLEARED);
    assert_int_equal(err.index, 1101);
    assert_string_equal(err.cause, "the requested history has been cleared [102/7]");
    assert_string_equal(kv_err_message(KV_EEVENTCLEARED),
                        "The event in requested index is outdated and cleared");
    kv_error_clear(&err);
    /* the oldest kept index itself is still answerable */
    assert_int_equal(watch_start(f->hub, &w, 102, kv_index(f->kv), &ev, &err), 0);
    assert_int_equal(ev->index, 102);
    kv_event_unref(ev);
    assert_int_equal(watch_start(f->hub, &w, 101, kv_index(f->kv), &ev, &err), KV_EEVENTCLEARED);
    kv_error_clear(&err);
}

static void test_other_tokens_traffic_never_clears_a_token(void **state)
{
    struct fx *f = *state;
    assert_int_equal(put(f, "/discovery/B/_config/size", "3"), 0); /* 2 */
    assert_int_equal(put(f, "/discovery/B/m1", "x"), 0);           /* 3 */
    char k[64];
    for (int i = 0; i < 1500; i++) {
        snprintf(k, sizeof(k), "/discovery/A/k%d", i % 7);
        assert_int_equal(put(f, k, "v"), 0);
    }
    /* B's member re-polls with its old index: answered, not 401 */
    struct watcher w;
    wset(&w, "/discovery/B", true);
    struct kv_event *ev = NULL;
    struct kv_error err = {0};
    assert_int_equal(watch_start(f->hub, &w, 3, kv_index(f->kv), &ev, &err), 0);
    assert_string_equal(ev->node.key, "/discovery/B/m1");
    kv_event_unref(ev);
    assert_int_equal(watch_start(f->hub, &w, 4, kv_index(f->kv), &ev, &err), 1);
    /* while A's own old history is gone */
    wset(&w, "/discovery/A", true);
    assert_int_equal(watch_start(f->hub, &w, 4, kv_index(f->kv), &ev, &err), KV_EEVENTCLEARED);
    kv_error_clear(&err);
}

static void test_refresh_wakes_nobody_and_is_skipped_in_history(void **state)
{
    struct fx *f = *state;
    struct kv_cmd c;
    memset(&c, 0, sizeof(c));
    c.type = KV_CMD_SET;
    c.key = "/discovery/T/k";
    c.key_len = 14;
    c.value = "v";
    c.value_len = 1;
    c.expire_ms = 50000;
    assert_int_equal(run(f, &c), 0); /* 2 */
    struct watcher w1, w2;
    wset(&w1, "/discovery/T/k", false);
    wset(&w2, "/discovery/T", true);
    struct kv_event *ev = NULL;
    struct kv_error err = {0};
    assert_int_equal(start_park(f, &w1, 3, &ev, &err), 1);
    assert_int_equal(start_park(f, &w2, 3, &ev, &err), 1);
    c.type = KV_CMD_UPDATE;
    c.value = NULL;
    c.value_len = 0;
    c.refresh = true;
    c.expire_ms = 90000;
    assert_int_equal(run(f, &c), 0); /* 3, refresh */
    assert_int_equal(f->nfired, 0);
    assert_int_equal(watch_nparked(f->hub), 2);
    struct watcher w3;
    wset(&w3, "/discovery/T/k", false);
    assert_int_equal(watch_start(f->hub, &w3, 3, kv_index(f->kv), &ev, &err), 1);
    watch_cancel(f->hub, &w1);
    watch_cancel(f->hub, &w2);
    assert_int_equal(watch_nparked(f->hub), 0);
}

static void test_dir_delete_wakes_watchers_inside_it(void **state)
{
    struct fx *f = *state;
    assert_int_equal(put(f, "/discovery/T/_config/size", "3"), 0);
    assert_int_equal(put(f, "/discovery/T/m1", "x"), 0);
    struct watcher w1, w2, w3, w4;
    wset(&w1, "/discovery/T/m1", false);
    wset(&w2, "/discovery/T/_config/size", false);
    wset(&w3, "/discovery/T", false);
    wset(&w4, "/discovery/U/m1", false);
    struct kv_event *ev = NULL;
    struct kv_error err = {0};
    assert_int_equal(start_park(f, &w1, 0, &ev, &err), 1);
    assert_int_equal(start_park(f, &w2, 0, &ev, &err), 1);
    assert_int_equal(start_park(f, &w3, 0, &ev, &err), 1);
    assert_int_equal(start_park(f, &w4, 0, &ev, &err), 1);
    assert_int_equal(del(f, "/discovery/T", true), 0);
    assert_int_equal(f->nfired, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f->fired_ev[i]->action, KV_ACT_DELETE);
        assert_string_equal(f->fired_ev[i]->node.key, "/discovery/T");
    }
    assert_int_equal(watch_nparked(f->hub), 1);
    watch_cancel(f->hub, &w4);
}

static void test_dir_delete_in_history_matches_descendant_watch(void **state)
{
    struct fx *f = *state;
    assert_int_equal(put(f, "/discovery/T/d/x", "1"), 0); /* 2 */
    assert_int_equal(del(f, "/discovery/T/d", true), 0);  /* 3 */
    struct watcher w;
    wset(&w, "/discovery/T/d/x/y", false);
    struct kv_event *ev = NULL;
    struct kv_error err = {0};
    assert_int_equal(watch_start(f->hub, &w, 3, kv_index(f->kv), &ev, &err), 0);
    assert_int_equal(ev->action, KV_ACT_DELETE);
    kv_event_unref(ev);
}

static void test_token_history_is_dropped_with_the_token(void **state)
{
    struct fx *f = *state;
    assert_int_equal(put(f, "/discovery/T/_config/size", "3"), 0); /* 2 */
    assert_int_equal(put(f, "/discovery/T/m1", "x"), 0);           /* 3 */
    assert_int_equal(del(f, "/discovery/T", true), 0);             /* 4 */
    struct watcher w;
    wset(&w, "/discovery/T", true);
    struct kv_event *ev = NULL;
    struct kv_error err = {0};
    assert_int_equal(watch_start(f->hub, &w, 2, kv_index(f->kv), &ev, &err), 1);
    /* a new token of the same name starts a fresh history */
    assert_int_equal(put(f, "/discovery/T/_config/size", "5"), 0); /* 5 */
    assert_int_equal(watch_start(f->hub, &w, 2, kv_index(f->kv), &ev, &err), 0);
    assert_int_equal(ev->index, 5);
    kv_event_unref(ev);
}

static void test_deleting_one_token_keeps_other_tokens_history(void **state)
{
    struct fx *f = *state;
    assert_int_equal(put(f, "/discovery/A/m", "x"), 0); /* 2 */
    assert_int_equal(put(f, "/discovery/B/m", "x"), 0); /* 3 */
    assert_int_equal(del(f, "/discovery/A", true), 0);  /* 4 */
    struct watcher w;
    wset(&w, "/discovery/B", true);
    struct kv_event *ev = NULL;
    struct kv_error err = {0};
    assert_int_equal(watch_start(f->hub, &w, 2, kv_index(f->kv), &ev, &err), 0);
    assert_int_equal(ev->index, 3);
    kv_event_unref(ev);
}

static void test_watchers_outside_tokens_see_everything_below(void **state)
{
    struct fx *f = *state;
    struct watcher w1, w2;
    wset(&w1, "/discovery", true);
    wset(&w2, "/", true);
    struct kv_event *ev = NULL;
    struct kv_error err = {0};
    assert_int_equal(start_park(f, &w1, 0, &ev, &err), 1);
    assert_int_equal(start_park(f, &w2, 0, &ev, &err), 1);
    assert_int_equal(put(f, "/discovery/T/_config/size", "3"), 0); /* hidden for both */
    assert_int_equal(f->nfired, 0);
    assert_int_equal(put(f, "/discovery/T/m", "3"), 0);
    assert_int_equal(f->nfired, 2);
    /* and read the global history */
    wset(&w1, "/discovery", true);
    assert_int_equal(watch_start(f->hub, &w1, 2, kv_index(f->kv), &ev, &err), 0);
    assert_string_equal(ev->node.key, "/discovery/T/_config/size");
    kv_event_unref(ev);
}

static void test_cancel_is_idempotent_and_many_watchers_share_a_key(void **state)
{
    struct fx *f = *state;
    struct watcher w[10];
    struct kv_event *ev = NULL;
    struct kv_error err = {0};
    for (int i = 0; i < 10; i++) {
        wset(&w[i], "/discovery/T", true);
        assert_int_equal(start_park(f, &w[i], 0, &ev, &err), 1);
    }
    watch_cancel(f->hub, &w[3]);
    watch_cancel(f->hub, &w[3]);
    assert_int_equal(watch_nparked(f->hub), 9);
    assert_int_equal(put(f, "/discovery/T/m", "x"), 0);
    assert_int_equal(f->nfired, 9);
    assert_int_equal(watch_nparked(f->hub), 0);
}

static void test_sweep_expire_of_token_wakes_its_watchers(void **state)
{
    struct fx *f = *state;
    assert_int_equal(put(f, "/discovery/T/_config/size", "3"), 0);
    struct watcher w;
    wset(&w, "/discovery/T", true);
    struct kv_event *ev = NULL;
    struct kv_error err = {0};
    assert_int_equal(start_park(f, &w, 0, &ev, &err), 1);
    struct kv_cmd c;
    memset(&c, 0, sizeof(c));
    c.type = KV_CMD_SWEEP;
    c.now_ms = 1000000;
    c.token_ttl_ms = 1000;
    assert_int_equal(run(f, &c), 0);
    assert_int_equal(f->nfired, 1);
    assert_int_equal(f->fired_ev[0]->action, KV_ACT_DELETE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_self_watch_is_answered_from_history),
        T(test_history_scan_returns_hidden_events_first),
        T(test_non_recursive_watch_ignores_children_in_history),
        T(test_wait_index_zero_means_next_event),
        T(test_live_recursive_watch_skips_hidden_then_fires_on_member),
        T(test_exact_watch_on_hidden_key_fires),
        T(test_watch_on_token_without_history_parks_and_fires),
        T(test_since_above_event_index_keeps_watcher_parked),
        T(test_cleared_history_is_401_with_etcd_cause),
        T(test_other_tokens_traffic_never_clears_a_token),
        T(test_refresh_wakes_nobody_and_is_skipped_in_history),
        T(test_dir_delete_wakes_watchers_inside_it),
        T(test_dir_delete_in_history_matches_descendant_watch),
        T(test_token_history_is_dropped_with_the_token),
        T(test_deleting_one_token_keeps_other_tokens_history),
        T(test_watchers_outside_tokens_see_everything_below),
        T(test_cancel_is_idempotent_and_many_watchers_share_a_key),
        T(test_sweep_expire_of_token_wakes_its_watchers),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
