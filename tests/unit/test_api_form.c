/* tests/unit/test_api_form.c — query/body decoding with Go url.ParseQuery semantics, and the
 * ParseBool / ParseUint rules etcd applies to parameters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/form.h"

/* A tracking arena: everything allocated during a test is freed at its end. */
struct arena {
    void *blocks[64];
    int n;
};
static void *arena_alloc(void *ctx, size_t sz)
{
    struct arena *a = ctx;
    if (a->n == 64)
        return NULL;
    return a->blocks[a->n++] = malloc(sz ? sz : 1);
}
static void arena_free(struct arena *a)
{
    for (int i = 0; i < a->n; i++)
        free(a->blocks[i]);
    a->n = 0;
}

static int parse(struct arena *a, struct api_form *f, const char *q, const char *body)
{
    return api_form_parse(f, q, q ? strlen(q) : 0, body, body ? strlen(body) : 0, arena_alloc, a);
}

static void test_plus_is_space_and_percent_decodes(void **s)
{
    struct arena a = {0};
    struct api_form f;
    assert_int_equal(parse(&a, &f, "value=infra0%3Dhttp%3A%2F%2F10.0.1.10%3A2380&x=a+b%20c", NULL), 0);
    const struct api_param *p = api_form_get(&f, "value");
    assert_non_null(p);
    assert_string_equal(p->value, "infra0=http://10.0.1.10:2380");
    assert_string_equal(api_form_get(&f, "x")->value, "a b c");
    arena_free(&a);
}

static void test_first_of_repeated_name_wins(void **s)
{
    struct arena a = {0};
    struct api_form f;
    assert_int_equal(parse(&a, &f, "size=5&size=7", NULL), 0);
    assert_string_equal(api_form_get(&f, "size")->value, "5");
    arena_free(&a);
}

static void test_body_wins_over_query(void **s)
{
    struct arena a = {0};
    struct api_form f;
    assert_int_equal(parse(&a, &f, "value=q&only=query", "value=b"), 0);
    assert_string_equal(api_form_get(&f, "value")->value, "b");
    assert_string_equal(api_form_get(&f, "only")->value, "query");
    arena_free(&a);
}

static void test_name_without_equals_has_empty_value(void **s)
{
    struct arena a = {0};
    struct api_form f;
    assert_int_equal(parse(&a, &f, "prevValue&&x=", NULL), 0);
    assert_int_equal(f.n, 2);
    assert_non_null(api_form_get(&f, "prevValue"));
    assert_int_equal(api_form_get(&f, "prevValue")->value_len, 0);
    assert_int_equal(api_form_get(&f, "x")->value_len, 0);
    assert_null(api_form_get(&f, "y"));
    arena_free(&a);
}

static void test_bad_percent_escape_is_error_with_go_text(void **s)
{
    struct arena a = {0};
    struct api_form f;
    assert_int_equal(parse(&a, &f, "value=%zz1", NULL), -1);
    assert_string_equal(f.err, "invalid URL escape \"%zz\"");
    arena_free(&a);
    assert_int_equal(parse(&a, &f, "value=ab%4", NULL), -1);
    assert_string_equal(f.err, "invalid URL escape \"%4\"");
    arena_free(&a);
    assert_int_equal(parse(&a, &f, "k%=1", NULL), -1);
    arena_free(&a);
}

static void test_semicolon_is_error(void **s)
{
    struct arena a = {0};
    struct api_form f;
    assert_int_equal(parse(&a, &f, "a=1;b=2", NULL), -1);
    assert_string_equal(f.err, "invalid semicolon separator in query");
    arena_free(&a);
}

static void test_non_utf8_value_or_name_is_error(void **s)
{
    struct arena a = {0};
    struct api_form f;
    assert_int_equal(parse(&a, &f, "value=%ff", NULL), -1);
    assert_non_null(strstr(f.err, "UTF-8"));
    arena_free(&a);
    assert_int_equal(parse(&a, &f, "%c0%af=x", NULL), -1); /* overlong '/' */
    arena_free(&a);
    assert_int_equal(parse(&a, &f, "value=%ed%a0%80", NULL), -1); /* surrogate */
    arena_free(&a);
    assert_int_equal(parse(&a, &f, "value=%e2%82%ac", NULL), 0); /* euro sign */
    assert_string_equal(api_form_get(&f, "value")->value, "\xe2\x82\xac");
    arena_free(&a);
}

static void test_empty_inputs_give_empty_form(void **s)
{
    struct arena a = {0};
    struct api_form f;
    assert_int_equal(parse(&a, &f, NULL, NULL), 0);
    assert_int_equal(f.n, 0);
    assert_int_equal(parse(&a, &f, "", "&&"), 0);
    assert_int_equal(f.n, 0);
    arena_free(&a);
}

static void test_parse_bool_accepts_exactly_go_values(void **s)
{
    const char *yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    const char *no[] = {"0", "f", "F", "FALSE", "false", "False"};
    const char *bad[] = {"", "yes", "tRUE", "TRue", "2", " true", "true ", "on"};
    bool v;
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(api_parse_bool(yes[i], strlen(yes[i]), &v), 0);
        assert_true(v);
        assert_int_equal(api_parse_bool(no[i], strlen(no[i]), &v), 0);
        assert_false(v);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(api_parse_bool(bad[i], strlen(bad[i]), &v), -1);
}

static void test_parse_uint64_is_strict_decimal(void **s)
{
    uint64_t v;
    assert_int_equal(api_parse_uint64("0", 1, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(api_parse_uint64("18446744073709551615", 20, &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(api_parse_uint64("18446744073709551616", 20, &v), -1);
    assert_int_equal(api_parse_uint64("", 0, &v), -1);
    assert_int_equal(api_parse_uint64("+5", 2, &v), -1);
    assert_int_equal(api_parse_uint64("-1", 2, &v), -1);
    assert_int_equal(api_parse_uint64("1_0", 3, &v), -1);
    assert_int_equal(api_parse_uint64("abc", 3, &v), -1);
    assert_int_equal(api_parse_uint64("007", 3, &v), 0);
    assert_int_equal(v, 7);
}

static void test_pct_decode_path_mode_keeps_plus(void **s)
{
    char out[16];
    size_t bad;
    long n = api_pct_decode("a+b%41", 6, out, false, &bad);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "a+bA", 4);
    assert_int_equal(api_pct_decode("ab%g1", 5, out, false, &bad), -1);
    assert_int_equal(bad, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plus_is_space_and_percent_decodes),
        cmocka_unit_test(test_first_of_repeated_name_wins),
        cmocka_unit_test(test_body_wins_over_query),
        cmocka_unit_test(test_name_without_equals_has_empty_value),
        cmocka_unit_test(test_bad_percent_escape_is_error_with_go_text),
        cmocka_unit_test(test_semicolon_is_error),
        cmocka_unit_test(test_non_utf8_value_or_name_is_error),
        cmocka_unit_test(test_empty_inputs_give_empty_form),
        cmocka_unit_test(test_parse_bool_accepts_exactly_go_values),
        cmocka_unit_test(test_parse_uint64_is_strict_decimal),
        cmocka_unit_test(test_pct_decode_path_mode_keeps_plus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
