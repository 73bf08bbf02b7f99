/* tests/fuzz/fuzz_parse.c — fuzz target for the parsers a client's bytes reach before any state:
 * the request path router (token and key parsing, percent-decoding), query/form decoding, the v2
 * keys parameter rules (api_keys_parse on the routed key and decoded form), the Host validator,
 * the log escaper, and service/'s HTTP framing guard. The first input byte picks the parser; the
 * rest is its input (a form is "query\nbody"). Properties are checked, not just crashes: a routed
 * key is a clean absolute path, the log escaper's output holds no control byte, a valid Host has no
 * character that would need escaping.
 *
 * CI (plain main): `fuzz_parse --mutate N tests/fuzz/corpus/parse`. Longer, with libFuzzer:
 *   CC=clang cmake -S . -B build-fuzz -DDISCOVERYD_FUZZ=ON -DDISCOVERYD_SANITIZE=ON &&
 *   cmake --build build-fuzz --target fuzz_parse_libfuzzer &&
 *   build-fuzz/tests/fuzz/fuzz_parse_libfuzzer -dict=tests/fuzz/http.dict -max_total_time=600 tests/fuzz/corpus/parse
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <h2o.h>

#include "api/api_int.h"
#include "api/form.h"
#include "api/keys.h"
#include "api/request.h"
#include "api/route.h"
#include "api/token.h"
#include "service/framing.h"
#ifndef DISCOVERYD_LIBFUZZER
#include "tests/fuzz/driver.h"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_parse: %s\n", what);
    abort();
}

static void route_and_keys(const char *in, size_t n, h2o_mem_pool_t *pool)
{
    const char *nl = memchr(in, '\n', n);
    size_t plen = nl ? (size_t)(nl - in) : n;
    const char *q = memchr(in, '?', plen);
    size_t path_len = q ? (size_t)(q - in) : plen;
    struct api_route r;
    if (api_route(&r, in, path_len, api_pool_alloc, pool) != 0)
        return;
    if (r.kind != API_ROUTE_KEYS)
        return;
    if (r.key_len == 0 || r.key[0] != '/' || strlen(r.key) != r.key_len || strstr(r.key, "//") ||
        strstr(r.key, "/../") || !api_token_name_valid(r.token, r.token_len))
        fail("the router gave an unclean key or an invalid token");
    struct api_form f;
    const char *body = nl ? nl + 1 : NULL;
    size_t blen = nl ? n - plen - 1 : 0;
    if (api_form_parse(&f, q ? q + 1 : NULL, q ? plen - path_len - 1 : 0, body, blen, api_pool_alloc, pool) != 0)
        return;
    struct api_config cfg;
    api_config_defaults(&cfg);
    for (int m = API_M_GET; m <= API_M_OTHER; m++) {
        struct api_keys_req k;
        struct api_keys_err e;
        api_keys_parse(&cfg, (enum api_method)m, r.key, r.key_len, r.token_len, r.longest, &f, 1000, &k, &e);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    switch (data[0] % 6) {
    case 0:
        route_and_keys(in, n, &pool);
        break;
    case 1: { /* a form: query \n body */
        const char *nl = memchr(in, '\n', n);
        struct api_form f;
        if (api_form_parse(&f, in, nl ? (size_t)(nl - in) : n, nl ? nl + 1 : NULL, nl ? n - (size_t)(nl - in) - 1 : 0,
                           api_pool_alloc, &pool) == 0)
            for (size_t i = 0; i < f.n; i++)
                if (strlen(f.params[i].name) > n)
                    fail("a decoded name longer than its input");
        uint32_t v;
        api_parse_size(in, n, 15, &v);
        break;
    }
    case 2: /* Host */
        if (api_host_valid(in, n))
            for (size_t i = 0; i < n; i++)
                if (in[i] == '\0' || strchr("\"'<>\\ \t\r\n%@/?#,;", in[i]) != NULL || (unsigned char)in[i] < 0x20)
                    fail("a valid Host holds a character that needs escaping");
        break;
    case 3: { /* token names */
        bool ok = api_token_name_valid(in, n);
        if (ok && (n == 0 || n > API_TOKEN_MAX_LEN))
            fail("a valid token name of a bad length");
        api_token_reserved(in, n);
        break;
    }
    case 4: { /* the log escaper */
        char out[256];
        size_t len = api_log_escape(out, sizeof(out), in, n);
        if (len >= sizeof(out) || out[len] != '\0')
            fail("the escaper overran or did not terminate");
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
                fail("the escaper let a control byte through");
        break;
    }
    default: { /* the framing guard, fed in two pieces split at a byte the input chooses */
        struct svc_frame fr;
        svc_frame_init(&fr, 1u << 20);
        size_t cut = n ? (size_t)data[0] % (n + 1) : 0;
        const char *why = NULL;
        int a = svc_frame_feed(&fr, in, cut, &why);
        int b = svc_frame_feed(&fr, in + cut, n - cut, &why);
        if ((a != 0 && b != a) || ((a || b) && (why == NULL || (a ? a : b) < 400)))
            fail("a framing refusal is not final or says no reason");
        svc_frame_dispose(&fr);
        break;
    }
    }
    h2o_mem_clear_pool(&pool);
    return 0;
}

#ifndef DISCOVERYD_LIBFUZZER
static int write_seed(const char *dir, const char *name, const char *s, size_t n)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    fwrite(s, 1, n, f);
    fclose(f);
    return 0;
}

static int make_corpus(const char *dir)
{
    static const char *const seeds[][2] = {
        {"route-private", "\x06/v2/keys/discovery/4068fe4b-9f9f-4768-9ea2-6208e77632aa/e67929f2a29df4de?prevExist=false\nvalue=x%3Dhttp%3A%2F%2F127.0.0.1%3A2380"},
        {"route-short", "\x06/4068fe4b9f9f47689ea26208e77632aa?wait=true&recursive=true&waitIndex=7"},
        {"route-config", "\x0c/v2/keys/discovery/tok/_config/size\nvalue=3"},
        {"route-bad", "\x12/v2/keys/discovery/a%2Fb/../%zz?ttl=-5&prevValue=&refresh=true"},
        {"form", "\x01size=3&a=%41%zz&b\nsize=4&value=%ff%fe"},
        {"host-v6", "\x02[2001:db8::1]:8087"},
        {"host-bad", "\x02" "a\"b<script>:99999"},
        {"token", "\x03" "4068fe4b-9f9f-4768-9ea2-6208e77632aa"},
        {"log", "\x04key \x1b[31mred\nforged\r\x7f"},
        {"frame-two-lengths", "\x05PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nContent-Length: 40\r\n\r\nvalue=x"},
        {"frame-length-chunked", "\x0bPUT /x HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
        {"frame-huge-chunk", "\x11PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n100000000\r\nvalue=x"},
        {"frame-pipelined", "\x17GET /a HTTP/1.1\r\nHost: x\r\n\r\nPUT /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /c HTTP/1.1\r\n\r\n"},
    };
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
        if (write_seed(dir, seeds[i][0], seeds[i][1], strlen(seeds[i][1])) != 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    return fuzz_driver_main("fuzz_parse", argc, argv, make_corpus);
}
#endif
