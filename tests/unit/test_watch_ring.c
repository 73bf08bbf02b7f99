/* tests/unit/test_watch_ring.c — a token's history ring of compact records (store/watch.c), at the
 * sizes where its layout changes: a ring of one (the record in place of an array), its growth to
 * an array, and a full ring dropping its oldest; a history scan answers the very event that was
 * published, and a dump gives back every event in order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/watch.h"

#define TOK "/discovery/8f2d"

static void no_fire(void *arg, struct watcher *w, struct kv_event *ev)
{
    (void)arg;
    (void)w;
    (void)ev;
}

/* Event i of the token: a registration /discovery/8f2d/m<i> = "v<i>" at index 10 + i. */
static struct kv_event *reg(int i)
{
    char key[64], val[32];
    snprintf(key, sizeof(key), TOK "/m%d", i);
    snprintf(val, sizeof(val), "v%d", i);
    struct kv_event *ev = kv_event_new(KV_ACT_CREATE, 10 + (uint64_t)i, key, (uint32_t)strlen(key), val,
                                       (uint32_t)strlen(val), NULL, 0);
    assert_non_null(ev);
    ev->node.created_index = ev->node.modified_index = 10 + (uint64_t)i;
    return ev;
}

/* A recursive watch on the token from wait_index: the event answered (a new reference), or NULL
 * with *rc the status. */
static struct kv_event *scan(struct watch_hub *h, uint64_t wait_index, uint64_t current, int *rc)
{
    struct watcher w = {.key = TOK, .key_len = (uint32_t)strlen(TOK), .recursive = true};
    struct kv_event *ev = NULL;
    struct kv_error err = {0};
    *rc = watch_start(h, &w, wait_index, current, &ev, &err);
    kv_error_clear(&err);
    return *rc == 0 ? ev : NULL;
}

static void same_event(const struct kv_event *a, const struct kv_event *b)
{
    assert_int_equal(a->action, b->action);
    assert_int_equal(a->index, b->index);
    assert_string_equal(a->node.key, b->node.key);
    assert_string_equal(a->node.value, b->node.value);
    assert_int_equal(a->node.created_index, b->node.created_index);
    assert_int_equal(a->node.modified_index, b->node.modified_index);
    assert_int_equal(a->has_prev, b->has_prev);
}

static void check_ring(uint32_t cap, int published)
{
    struct watch_hub *h = watch_hub_new(cap);
    assert_non_null(h);
    struct kv_event *evs[16];
    for (int i = 0; i < published; i++) {
        evs[i] = reg(i);
        watch_publish(h, evs[i], no_fire, NULL);
    }
    uint64_t current = 10 + (uint64_t)published - 1;
    int first_kept = published > (int)cap ? published - (int)cap : 0;
    for (int i = 0; i < published; i++) {
        int rc;
        struct kv_event *got = scan(h, 10 + (uint64_t)i, current, &rc);
        if (i < first_kept) {
            assert_int_equal(rc, KV_EEVENTCLEARED);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_non_null(got);
        same_event(got, evs[i]);
        kv_event_unref(got);
    }
    /* nothing newer yet: the watch would park */
    int rc;
    assert_null(scan(h, current + 1, current, &rc));
    assert_int_equal(rc, 1);
    for (int i = 0; i < published; i++)
        kv_event_unref(evs[i]);
    watch_hub_free(h);
}

static void test_ring_of_one_grows_and_drops(void **s)
{
    (void)s;
    check_ring(1, 1); /* one record, in place */
    check_ring(1, 3); /* a ring of one dropping: only the newest is left */
    check_ring(2, 1);
    check_ring(2, 2); /* grown from one to an array */
    check_ring(2, 5);
    check_ring(1000, 9); /* 1 -> 4 -> 8 -> 16 */
}

/* watch_dump writes each event as it was published; watch_restore into a fresh hub takes them
 * back, and the restored hub answers the same. */
struct dump {
    struct watch_hub *to;
    const char *token;
    size_t len;
    uint64_t dropped;
    int events;
};

static int on_ring(void *arg, const char *token, size_t len, uint64_t dropped_max, uint32_t n)
{
    struct dump *d = arg;
    (void)n;
    d->token = token;
    d->len = len;
    d->dropped = dropped_max;
    return watch_restore(d->to, token, len, dropped_max, NULL);
}

static int on_event(void *arg, const struct kv_event *ev)
{
    struct dump *d = arg;
    if (d->token)
        d->events++;
    return watch_restore(d->to, d->token, d->len, d->dropped, (struct kv_event *)ev);
}

static void test_dump_and_restore_give_the_same_answers(void **s)
{
    (void)s;
    struct watch_hub *a = watch_hub_new(3), *b = watch_hub_new(3);
    struct kv_event *evs[5];
    for (int i = 0; i < 5; i++) {
        evs[i] = reg(i);
        watch_publish(a, evs[i], no_fire, NULL);
    }
    struct dump d = {.to = b};
    struct watch_dump_fns f = {on_ring, on_event};
    assert_int_equal(watch_dump(a, &f, &d), 0);
    assert_int_equal(d.events, 3);
    for (uint64_t wi = 10; wi <= 14; wi++) {
        int ra, rb;
        struct kv_event *ea = scan(a, wi, 14, &ra), *eb = scan(b, wi, 14, &rb);
        assert_int_equal(ra, rb);
        if (ea) {
            same_event(ea, eb);
            same_event(ea, evs[wi - 10]);
        }
        kv_event_unref(ea);
        kv_event_unref(eb);
    }
    /* an event restored into a ring of another token is refused */
    char other[] = "/discovery/zz/m1";
    struct kv_event *bad = kv_event_new(KV_ACT_CREATE, 99, other, (uint32_t)strlen(other), "x", 1, NULL, 0);
    assert_int_equal(watch_restore(b, "8f2d", 4, 0, bad), -1);
    kv_event_unref(bad);
    for (int i = 0; i < 5; i++)
        kv_event_unref(evs[i]);
    watch_hub_free(a);
    watch_hub_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_of_one_grows_and_drops),
        cmocka_unit_test(test_dump_and_restore_give_the_same_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
