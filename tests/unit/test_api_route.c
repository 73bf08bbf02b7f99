/* tests/unit/test_api_route.c — every route, reserved words, token rules and refused paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/route.h"

static void *blocks[1024];
static int nblocks;
static void *alloc(void *ctx, size_t sz)
{
    return blocks[nblocks++] = malloc(sz ? sz : 1);
}
static int teardown(void **s)
{
    while (nblocks > 0)
        free(blocks[--nblocks]);
    return 0;
}

static struct api_route route(const char *path)
{
    struct api_route r;
    assert_int_equal(api_route(&r, path, strlen(path), alloc, NULL), 0);
    return r;
}

static void assert_kind(const char *path, enum api_route_kind k)
{
    struct api_route r = route(path);
    if (r.kind != k)
        fail_msg("%s: kind %s, want %s", path, api_route_name(r.kind), api_route_name(k));
}

static void assert_keys(const char *path, const char *key, const char *token, bool short_form)
{
    struct api_route r = route(path);
    if (r.kind != API_ROUTE_KEYS)
        fail_msg("%s: kind %s, want keys", path, api_route_name(r.kind));
    assert_string_equal(r.key, key);
    assert_int_equal(r.key_len, strlen(key));
    assert_int_equal(r.token_len, strlen(token));
    assert_memory_equal(r.token, token, r.token_len);
    assert_int_equal(r.short_form, short_form);
}

static void test_fixed_routes(void **s)
{
    assert_kind("/", API_ROUTE_HOME);
    assert_kind("/new", API_ROUTE_NEW);
    assert_kind("/new/", API_ROUTE_NEW);
    assert_kind("/health", API_ROUTE_HEALTH);
    assert_kind("/metrics", API_ROUTE_METRICS);
    assert_kind("/robots.txt", API_ROUTE_ROBOTS);
    struct api_route r = route("/static/app.js");
    assert_int_equal(r.kind, API_ROUTE_STATIC);
    assert_int_equal(r.token_len, 6);
    assert_memory_equal(r.token, "app.js", 6);
}

static void test_status_route_takes_a_valid_token(void **s)
{
    struct api_route r = route("/status/3e86b59982e49066c5d813af1c2e2579");
    assert_int_equal(r.kind, API_ROUTE_STATUS);
    assert_int_equal(r.token_len, 32);
    assert_memory_equal(r.token, "3e86b59982e49066c5d813af1c2e2579", 32);
    assert_kind("/status", API_ROUTE_NOT_FOUND);
    assert_kind("/status/a/b", API_ROUTE_NOT_FOUND);
    assert_kind("/status/a%20b", API_ROUTE_NOT_FOUND);
}

static void test_short_form_maps_to_discovery_keys(void **s)
{
    assert_keys("/3e86b59982e49066c5d813af1c2e2579", "/discovery/3e86b59982e49066c5d813af1c2e2579",
                "3e86b59982e49066c5d813af1c2e2579", true);
    assert_keys("/T/_config/size", "/discovery/T/_config/size", "T", true);
    assert_keys("/T/6c007a14875d53d9", "/discovery/T/6c007a14875d53d9", "T", true);
    assert_keys("/T/", "/discovery/T", "T", true);
    assert_keys("/newer", "/discovery/newer", "newer", true);
    assert_keys("/my_token.1-x", "/discovery/my_token.1-x", "my_token.1-x", true);
}

static void test_private_form_maps_to_discovery_keys(void **s)
{
    assert_keys("/v2/keys/discovery/4068fe4b-9f9f-4768-9ea2-6208e77632aa",
                "/discovery/4068fe4b-9f9f-4768-9ea2-6208e77632aa", "4068fe4b-9f9f-4768-9ea2-6208e77632aa",
                false);
    assert_keys("/v2/keys/discovery/T/_config/size", "/discovery/T/_config/size", "T", false);
    /* reserved words are fine as private-form tokens */
    assert_keys("/v2/keys/discovery/new", "/discovery/new", "new", false);
}

static void test_member_key_is_percent_decoded(void **s)
{
    assert_keys("/T/a%20b", "/discovery/T/a b", "T", true);
    assert_keys("/T/a+b", "/discovery/T/a+b", "T", true);
}

static void test_longest_component_below_token_is_reported(void **s)
{
    struct api_route r = route("/v2/keys/discovery/T/abc/abcdefg/x");
    assert_int_equal(r.longest, 7);
    r = route("/T");
    assert_int_equal(r.longest, 0);
}

static void test_other_v2_keys_paths_are_forbidden(void **s)
{
    assert_kind("/v2/keys", API_ROUTE_FORBIDDEN);
    assert_kind("/v2/keys/", API_ROUTE_FORBIDDEN);
    assert_kind("/v2/keys/discovery", API_ROUTE_FORBIDDEN);
    assert_kind("/v2/keys/discovery/", API_ROUTE_FORBIDDEN);
    assert_kind("/v2/keys/foo", API_ROUTE_FORBIDDEN);
    assert_kind("/v2/keys/_etcd/registry/T", API_ROUTE_FORBIDDEN);
    assert_kind("/v2/keys/discovery/a%20b", API_ROUTE_BAD_PATH); /* malformed token inside the namespace */
}

static void test_reserved_words_are_not_tokens(void **s)
{
    assert_kind("/v2", API_ROUTE_NOT_FOUND);
    assert_kind("/v2/members", API_ROUTE_MEMBERS); /* etcd v2 members API: the cluster's own members */
    assert_kind("/v2/members/abc", API_ROUTE_MEMBERS);
    assert_kind("/v2/members/a/b", API_ROUTE_NOT_FOUND);
    assert_kind("/favicon.ico", API_ROUTE_NOT_FOUND);
    assert_kind("/static", API_ROUTE_NOT_FOUND);
    assert_kind("/static/app.js/x", API_ROUTE_NOT_FOUND);
    assert_kind("/new/x", API_ROUTE_NOT_FOUND);
    assert_kind("/health/x", API_ROUTE_NOT_FOUND);
    assert_kind("/metrics/x", API_ROUTE_NOT_FOUND);
    assert_kind("/robots.txt/x", API_ROUTE_NOT_FOUND);
}

static void test_invalid_token_names_are_not_found(void **s)
{
    assert_kind("/a%20b", API_ROUTE_NOT_FOUND);
    assert_kind("/a~b", API_ROUTE_NOT_FOUND);
    char longname[160] = "/";
    memset(longname + 1, 'a', 129);
    assert_kind(longname, API_ROUTE_NOT_FOUND);
    longname[129] = 0; /* 128 chars */
    assert_kind(longname, API_ROUTE_KEYS);
}

static void test_bad_paths_are_refused_with_a_reason(void **s)
{
    const char *bad[] = {"//",       "/T//x",    "/T/./x", "/T/../x", "/..",
                         "/T/a%2Fb", "/T/a%2fb", "/T/%zz", "/T/%4",   "/T/a%00b",
                         "/T/%ff",   "/./T",     "T",      "",        "/v2/keys/discovery/T/..",
                         "/v2//keys"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct api_route r = route(bad[i]);
        if (r.kind != API_ROUTE_BAD_PATH)
            fail_msg("%s: kind %s, want badpath", bad[i], api_route_name(r.kind));
        assert_non_null(r.reason);
        assert_null(strchr(r.reason, '\n'));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_fixed_routes, teardown),
        cmocka_unit_test_teardown(test_status_route_takes_a_valid_token, teardown),
        cmocka_unit_test_teardown(test_short_form_maps_to_discovery_keys, teardown),
        cmocka_unit_test_teardown(test_private_form_maps_to_discovery_keys, teardown),
        cmocka_unit_test_teardown(test_member_key_is_percent_decoded, teardown),
        cmocka_unit_test_teardown(test_longest_component_below_token_is_reported, teardown),
        cmocka_unit_test_teardown(test_other_v2_keys_paths_are_forbidden, teardown),
        cmocka_unit_test_teardown(test_reserved_words_are_not_tokens, teardown),
        cmocka_unit_test_teardown(test_invalid_token_names_are_not_found, teardown),
        cmocka_unit_test_teardown(test_bad_paths_are_refused_with_a_reason, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
