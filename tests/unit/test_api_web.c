/* tests/unit/test_api_web.c — the pure parts of the web pages (api/web.h): Accept negotiation,
 * HTML escaping, If-None-Match matching, the embedded files (every template renders with no
 * placeholder left, assets have ETags), and the page time format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "api/web.h"

static bool accepts(const char *s)
{
    return api_web_accepts_html(s, strlen(s));
}

static void test_accept_names_text_html(void **s)
{
    assert_true(accepts("text/html"));
    assert_true(accepts("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"));
    assert_true(accepts("application/json, TEXT/HTML;q=0.5"));
    assert_false(accepts("*/*")); /* curl */
    assert_false(accepts(""));
    assert_false(accepts("application/json"));
    assert_false(accepts("text/html5"));
    assert_false(accepts("text/htm"));
    assert_false(accepts("application/x-text/html"));
}

static void expect_escaped(const char *in, const char *want)
{
    struct api_buf b = {0};
    api_html_escape(&b, in, strlen(in));
    assert_false(b.oom);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.p, want, b.len);
    api_buf_free(&b);
}

static void test_html_escape(void **s)
{
    expect_escaped("", "");
    expect_escaped("web1", "web1");
    expect_escaped("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;");
    expect_escaped("a&b\"c'd", "a&amp;b&quot;c&#39;d");
    expect_escaped("\" onmouseover=\"x", "&quot; onmouseover=&quot;x");
    expect_escaped("ünïcode ok", "ünïcode ok");
}

static void test_if_none_match(void **s)
{
    const char *etag = "\"0123456789abcdef\"";
    assert_true(api_web_etag_match("\"0123456789abcdef\"", 18, etag));
    assert_true(api_web_etag_match("W/\"0123456789abcdef\"", 20, etag));
    assert_true(api_web_etag_match("\"x\", \"0123456789abcdef\"", 23, etag));
    assert_true(api_web_etag_match("*", 1, etag));
    assert_false(api_web_etag_match("\"0123456789abcdee\"", 18, etag));
    assert_false(api_web_etag_match("0123456789abcdef", 16, etag));
    assert_false(api_web_etag_match("", 0, etag));
}

static bool fill_any(void *arg, struct api_buf *b, const char *name, size_t len)
{
    int *count = arg;
    (*count)++;
    api_buf_puts(b, "X");
    return true;
}

static bool fill_none(void *arg, struct api_buf *b, const char *name, size_t len)
{
    return false;
}

static void test_embedded_files(void **s)
{
    const char *want[] = {"index.html", "token.html", "app.css", "app.js", "favicon.svg"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const struct web_file *f = api_web_file(want[i], strlen(want[i]));
        assert_non_null(f);
        assert_true(f->len > 100);
        assert_int_equal(f->data[f->len], 0);
        assert_int_equal(strlen(f->etag), 18);
        assert_int_equal(f->etag[0], '"');
    }
    assert_null(api_web_file("nope.js", 7));
    assert_null(api_web_file("app.j", 5));
    /* every template renders, no placeholder is left, and assets are linked by versioned URLs */
    for (size_t i = 0; i < 2; i++) {
        const struct web_file *f = api_web_file(want[i], strlen(want[i]));
        struct api_buf b = {0};
        const char *bad = NULL;
        int fills = 0;
        assert_int_equal(api_web_render(&b, (const char *)f->data, f->len, fill_any, &fills, &bad), 0);
        assert_true(fills > 0);
        api_buf_put(&b, "", 1);
        assert_null(strstr(b.p, "{{"));
        assert_non_null(strstr(b.p, "/static/app.js?v="));
        assert_non_null(strstr(b.p, "/static/app.css?v="));
        assert_null(strstr(b.p, "<script>")); /* no inline script: the CSP forbids it */
        api_buf_free(&b);
    }
}

static void test_render_placeholders(void **s)
{
    struct api_buf b = {0};
    const char *bad = NULL;
    int fills = 0;
    const char tpl[] = "a{{x}}b{{asset:app.css}}c";
    assert_int_equal(api_web_render(&b, tpl, sizeof(tpl) - 1, fill_any, &fills, &bad), 0);
    api_buf_put(&b, "", 1);
    const struct web_file *css = api_web_file("app.css", 7);
    char want[128];
    snprintf(want, sizeof(want), "aXb/static/app.css?v=%.16sc", css->etag + 1);
    assert_string_equal(b.p, want);
    api_buf_free(&b);

    const char unknown[] = "a{{nope}}b";
    assert_int_equal(api_web_render(&b, unknown, sizeof(unknown) - 1, fill_none, NULL, &bad), -1);
    assert_memory_equal(bad, "nope", 4);
    api_buf_free(&b);
    const char unclosed[] = "a{{x";
    assert_int_equal(api_web_render(&b, unclosed, sizeof(unclosed) - 1, fill_any, &fills, &bad), -1);
    api_buf_free(&b);
    const char badasset[] = "{{asset:nope.css}}";
    assert_int_equal(api_web_render(&b, badasset, sizeof(badasset) - 1, fill_any, &fills, &bad), -1);
    api_buf_free(&b);
}

static void test_time_format(void **s)
{
    struct api_buf b = {0};
    api_web_time_text(&b, 1796083471500LL);
    api_buf_puts(&b, "|");
    api_web_time_attr(&b, 1796083471500LL);
    api_buf_put(&b, "", 1);
    assert_string_equal(b.p, "2026-12-01 00:04:31 UTC|2026-12-01T00:04:31Z");
    api_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_names_text_html), cmocka_unit_test(test_html_escape),
        cmocka_unit_test(test_if_none_match),          cmocka_unit_test(test_embedded_files),
        cmocka_unit_test(test_render_placeholders),    cmocka_unit_test(test_time_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
