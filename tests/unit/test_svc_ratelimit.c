/* tests/unit/test_svc_ratelimit.c — the per-process token buckets: burst, refill, Retry-After,
 * independence of classes and keys, eviction of idle buckets, the hard cap, and thread safety.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "service/ratelimit.h"

static struct rl *mk(double rate, double burst, size_t max)
{
    struct rl_config c = {.max_buckets = max};
    for (int i = 0; i < RL_CLASSES; i++)
        c.rules[i] = (struct rl_rule){rate, burst};
    struct rl *rl = NULL;
    assert_int_equal(rl_new(&rl, &c), 0);
    return rl;
}

static void test_burst_is_allowed_then_refused_with_retry_after(void **state)
{
    struct rl *rl = mk(1, 20, 0);
    uint32_t ra = 0;
    for (int i = 0; i < 20; i++)
        assert_true(rl_take(rl, API_RL_NEW_ADDR, "a", 1, 1000, &ra));
    assert_false(rl_take(rl, API_RL_NEW_ADDR, "a", 1, 1000, &ra));
    assert_int_equal(ra, 1);
    rl_free(rl);
}

static void test_refill_at_rate_allows_again(void **state)
{
    struct rl *rl = mk(2, 1, 0); /* 2 per second, burst 1 */
    uint32_t ra = 0;
    assert_true(rl_take(rl, API_RL_TOKEN_WRITE, "t", 1, 0, &ra));
    assert_false(rl_take(rl, API_RL_TOKEN_WRITE, "t", 1, 100, &ra));
    assert_false(rl_take(rl, API_RL_TOKEN_WRITE, "t", 1, 499, &ra));
    assert_true(rl_take(rl, API_RL_TOKEN_WRITE, "t", 1, 500, &ra));
    rl_free(rl);
}

static void test_retry_after_rounds_up_to_whole_seconds(void **state)
{
    struct rl *rl = mk(0.1, 1, 0); /* one token per 10 s */
    uint32_t ra = 0;
    assert_true(rl_take(rl, API_RL_NEW_RANGE, "r", 1, 0, &ra));
    assert_false(rl_take(rl, API_RL_NEW_RANGE, "r", 1, 0, &ra));
    assert_int_equal(ra, 10);
    assert_false(rl_take(rl, API_RL_NEW_RANGE, "r", 1, 2500, &ra));
    assert_int_equal(ra, 8); /* 7.5 s left */
    rl_free(rl);
}

static void test_refused_requests_do_not_consume(void **state)
{
    struct rl *rl = mk(1, 1, 0);
    uint32_t ra;
    assert_true(rl_take(rl, API_RL_NEW_ADDR, "a", 1, 0, &ra));
    for (int i = 0; i < 10; i++)
        assert_false(rl_take(rl, API_RL_NEW_ADDR, "a", 1, 100 * (uint64_t)i, &ra));
    assert_true(rl_take(rl, API_RL_NEW_ADDR, "a", 1, 1000, &ra));
    rl_free(rl);
}

static void test_keys_and_classes_have_separate_buckets(void **state)
{
    struct rl *rl = mk(1, 1, 0);
    uint32_t ra;
    assert_true(rl_take(rl, API_RL_NEW_ADDR, "a", 1, 0, &ra));
    assert_false(rl_take(rl, API_RL_NEW_ADDR, "a", 1, 0, &ra));
    assert_true(rl_take(rl, API_RL_NEW_ADDR, "b", 1, 0, &ra));
    assert_true(rl_take(rl, API_RL_NEW_RANGE, "a", 1, 0, &ra));
    assert_true(rl_take(rl, API_RL_TOKEN_WRITE, "a", 1, 0, &ra));
    /* same prefix, different length */
    assert_true(rl_take(rl, API_RL_NEW_ADDR, "ab", 2, 0, &ra));
    rl_free(rl);
}

static void test_each_class_uses_its_own_rule(void **state)
{
    struct rl_config c = {0};
    c.rules[API_RL_NEW_ADDR] = (struct rl_rule){1, 1};
    c.rules[API_RL_NEW_RANGE] = (struct rl_rule){1, 3};
    c.rules[API_RL_TOKEN_WRITE] = (struct rl_rule){1, 2};
    struct rl *rl;
    uint32_t ra;
    assert_int_equal(rl_new(&rl, &c), 0);
    int n[3] = {0};
    for (int cls = 0; cls < 3; cls++)
        while (rl_take(rl, (enum api_rl_class)cls, "k", 1, 0, &ra) && n[cls] < 100)
            n[cls]++;
    assert_int_equal(n[API_RL_NEW_ADDR], 1);
    assert_int_equal(n[API_RL_NEW_RANGE], 3);
    assert_int_equal(n[API_RL_TOKEN_WRITE], 2);
    rl_free(rl);
}

static void test_idle_buckets_are_evicted(void **state)
{
    struct rl *rl = mk(10, 5, 0);
    uint32_t ra;
    char key[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_true(rl_take(rl, API_RL_NEW_ADDR, key, strlen(key), 0, &ra));
    }
    assert_int_equal(rl_size(rl), 1000);
    /* An hour later every bucket has refilled; new traffic sweeps them out as it goes. */
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "n%d", i);
        assert_true(rl_take(rl, API_RL_NEW_ADDR, key, strlen(key), 3600000, &ra));
    }
    assert_true(rl_size(rl) < 1100);
    rl_free(rl);
}

static void test_hard_cap_bounds_memory_under_a_flood_of_keys(void **state)
{
    struct rl *rl = mk(0.001, 1, 1600);
    uint32_t ra;
    unsigned char key[16] = {0};
    for (uint32_t i = 0; i < 50000; i++) {
        memcpy(key, &i, sizeof(i));
        rl_take(rl, API_RL_NEW_ADDR, key, sizeof(key), 0, &ra);
    }
    assert_true(rl_size(rl) <= 1600);
    rl_free(rl);
}

struct worker {
    struct rl *rl;
    int allowed;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    uint32_t ra;
    for (int i = 0; i < 2000; i++)
        if (rl_take(w->rl, API_RL_TOKEN_WRITE, "shared", 6, 0, &ra))
            w->allowed++;
    return NULL;
}

static void test_concurrent_takes_never_exceed_the_burst(void **state)
{
    struct rl *rl = mk(0.001, 100, 0);
    pthread_t th[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){rl, 0};
        pthread_create(&th[i], NULL, hammer, &w[i]);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += w[i].allowed;
    }
    assert_int_equal(total, 100);
    rl_free(rl);
}

static void test_api_rate_adapter_uses_the_clock(void **state)
{
    struct rl *rl = mk(0.001, 2, 0);
    uint32_t ra = 0;
    assert_int_equal(rl_api_rate(rl, API_RL_NEW_ADDR, "x", 1, &ra, NULL), API_RATE_ALLOW);
    assert_int_equal(rl_api_rate(rl, API_RL_NEW_ADDR, "x", 1, &ra, NULL), API_RATE_ALLOW);
    assert_int_equal(rl_api_rate(rl, API_RL_NEW_ADDR, "x", 1, &ra, NULL), API_RATE_DENY);
    assert_true(ra >= 1);
    rl_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_is_allowed_then_refused_with_retry_after),
        cmocka_unit_test(test_refill_at_rate_allows_again),
        cmocka_unit_test(test_retry_after_rounds_up_to_whole_seconds),
        cmocka_unit_test(test_refused_requests_do_not_consume),
        cmocka_unit_test(test_keys_and_classes_have_separate_buckets),
        cmocka_unit_test(test_each_class_uses_its_own_rule),
        cmocka_unit_test(test_idle_buckets_are_evicted),
        cmocka_unit_test(test_hard_cap_bounds_memory_under_a_flood_of_keys),
        cmocka_unit_test(test_concurrent_takes_never_exceed_the_burst),
        cmocka_unit_test(test_api_rate_adapter_uses_the_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
