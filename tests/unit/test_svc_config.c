/* tests/unit/test_svc_config.c — svc_config_parse: every flag, its DISCOVERYD_* twin, defaults,
 * precedence (flag beats env), durations, listen address forms and the exact one-line message
 * (naming the flag) for each bad value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "service/config.h"

static struct svc_config cfg;
static char err[512];

/* args and env are NULL-terminated lists; argv[0] is supplied. */
static int parse_env(const char **args, const char **env)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = "discoveryd";
    for (; args && *args; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    return svc_config_parse(&cfg, argc, argv, (char **)env, err, sizeof(err));
}

#define ARGS(...) ((const char *[]){__VA_ARGS__, NULL})
#define NOARGS ((const char *[]){NULL})

static int parse(const char **args)
{
    return parse_env(args, NULL);
}

static void assert_bad(const char **args, const char **env, const char *msg)
{
    assert_int_equal(parse_env(args, env), SVC_EXIT_USAGE);
    assert_string_equal(err, msg);
}

static const char *listen_text(size_t i)
{
    return cfg.listen[i].text;
}

/* ------------------------------------------------------------------ defaults */

static void test_defaults_match_the_documented_values(void **state)
{
    assert_int_equal(parse(NOARGS), 0);
    assert_int_equal(cfg.n_listen, 2);
    assert_string_equal(listen_text(0), "0.0.0.0:8087");
    assert_string_equal(listen_text(1), "[::]:8087");
    assert_true(cfg.listen_is_default);
    assert_string_equal(cfg.public_url, "");
    assert_string_equal(cfg.data_dir, "./discoveryd-data");
    assert_int_equal(cfg.snapshot_count, 10000);
    assert_int_equal(cfg.max_size, 15);
    assert_int_equal(cfg.watch_timeout_ms, 60000);
    assert_int_equal(cfg.token_ttl_ms, 168LL * 3600 * 1000);
    assert_int_equal(cfg.threads, (uint32_t)sysconf(_SC_NPROCESSORS_ONLN));
    assert_int_equal(cfg.surplus, 16);
    assert_int_equal(cfg.max_value, 4096);
    assert_int_equal(cfg.max_key, 255);
    assert_int_equal(cfg.max_body, 65536);
    assert_int_equal(cfg.max_watches, 65536);
    assert_int_equal(cfg.max_watches_per_client, 1024);
    assert_int_equal(cfg.history, 1000);
    assert_true(cfg.new_rate == 1.0);
    assert_int_equal(cfg.new_burst, 20);
    assert_true(cfg.new_range_rate == 10.0);
    assert_int_equal(cfg.new_range_burst, 200);
    assert_true(cfg.token_write_rate == 10.0);
    assert_int_equal(cfg.token_write_burst, 100);
    assert_null(cfg.postgres);
    assert_int_equal(cfg.postgres_pool, 4);
    assert_int_equal(cfg.postgres_timeout_ms, 200);
    assert_int_equal(cfg.n_trusted, 0);
    assert_null(cfg.tls_cert);
    assert_null(cfg.tls_key);
    assert_int_equal(cfg.log_level, SVC_LOG_INFO);
    assert_false(cfg.help);
    assert_false(cfg.version);
}

/* ------------------------------------------------------------------ each flag */

static void test_every_integer_flag_is_parsed(void **state)
{
    assert_int_equal(parse(ARGS("--max-size", "7", "--threads", "3", "--surplus", "0", "--max-value", "100",
                                "--max-key", "64", "--max-body", "2048", "--max-watches", "10",
                                "--max-watches-per-client", "2", "--history", "5000", "--new-burst", "5",
                                "--new-range-burst", "50", "--token-write-burst", "9")),
                     0);
    assert_int_equal(cfg.max_size, 7);
    assert_int_equal(cfg.threads, 3);
    assert_int_equal(cfg.surplus, 0);
    assert_int_equal(cfg.max_value, 100);
    assert_int_equal(cfg.max_key, 64);
    assert_int_equal(cfg.max_body, 2048);
    assert_int_equal(cfg.max_watches, 10);
    assert_int_equal(cfg.max_watches_per_client, 2);
    assert_int_equal(cfg.history, 5000);
    assert_int_equal(cfg.new_burst, 5);
    assert_int_equal(cfg.new_range_burst, 50);
    assert_int_equal(cfg.token_write_burst, 9);
}

static void test_rate_flags_accept_decimals(void **state)
{
    assert_int_equal(parse(ARGS("--new-rate", "0.5", "--new-range-rate", "3", "--token-write-rate", "2.25")),
                     0);
    assert_true(cfg.new_rate == 0.5);
    assert_true(cfg.new_range_rate == 3.0);
    assert_true(cfg.token_write_rate == 2.25);
}

static void test_string_flags_are_kept(void **state)
{
    assert_int_equal(parse(ARGS("--data-dir", "/var/lib/d", "--tls-cert", "c.pem", "--tls-key", "k.pem",
                                "--log-level", "warn")),
                     0);
    assert_string_equal(cfg.data_dir, "/var/lib/d");
    assert_string_equal(cfg.tls_cert, "c.pem");
    assert_string_equal(cfg.tls_key, "k.pem");
    assert_int_equal(cfg.log_level, SVC_LOG_WARN);
}

static void test_log_levels(void **state)
{
    const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(parse(ARGS("--log-level", names[i])), 0);
        assert_int_equal(cfg.log_level, i);
    }
}

static void test_flag_equals_form_and_single_dash_form(void **state)
{
    assert_int_equal(parse(ARGS("--max-size=9", "-surplus", "3", "-history=2000")), 0);
    assert_int_equal(cfg.max_size, 9);
    assert_int_equal(cfg.surplus, 3);
    assert_int_equal(cfg.history, 2000);
}

static void test_help_and_version_stop_parsing(void **state)
{
    assert_int_equal(parse(ARGS("--help", "--max-size", "abc")), 0);
    assert_true(cfg.help);
    assert_int_equal(parse(ARGS("-h")), 0);
    assert_true(cfg.help);
    assert_int_equal(parse(ARGS("--version")), 0);
    assert_true(cfg.version);
}

/* ------------------------------------------------------------------ public URL */

static void test_public_url_forms(void **state)
{
    assert_int_equal(parse(ARGS("--public-url", "https://disc.example.com")), 0);
    assert_string_equal(cfg.public_url, "https://disc.example.com");
    assert_int_equal(parse(ARGS("--public-url", "http://disc.example.com:8087/")), 0);
    assert_string_equal(cfg.public_url, "http://disc.example.com:8087");
    assert_int_equal(parse(ARGS("--public-url", "http://[::1]:80")), 0);
    assert_string_equal(cfg.public_url, "http://[::1]:80");
    assert_int_equal(parse(ARGS("--public-url", "http://127.0.0.1")), 0);
    assert_string_equal(cfg.public_url, "http://127.0.0.1");
}

static void test_public_url_with_path_query_or_other_scheme_is_refused(void **state)
{
    const char *bad[] = {"ftp://x.example",
                         "https://x.example/disc",
                         "https://x.example?a=1",
                         "https://x.example#f",
                         "https://",
                         "x.example",
                         "https://x.example:0",
                         "https://x.example:99999",
                         "https://user@x.example",
                         "http://[zz]:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[256];
        snprintf(want, sizeof(want),
                 "--public-url: \"%s\" is not an http:// or https:// URL without path, query or fragment",
                 bad[i]);
        assert_bad(ARGS("--public-url", bad[i]), NULL, want);
    }
}

/* ------------------------------------------------------------------ listen */

static void test_listen_ipv4_and_bracketed_ipv6(void **state)
{
    assert_int_equal(parse(ARGS("--listen", "127.0.0.1:9000", "--listen", "[::1]:9001")), 0);
    assert_false(cfg.listen_is_default);
    assert_int_equal(cfg.n_listen, 2);
    assert_string_equal(listen_text(0), "127.0.0.1:9000");
    assert_false(cfg.listen[0].v6);
    const struct sockaddr_in *a = (const struct sockaddr_in *)&cfg.listen[0].addr;
    assert_int_equal(a->sin_family, AF_INET);
    assert_int_equal(ntohs(a->sin_port), 9000);
    assert_int_equal(ntohl(a->sin_addr.s_addr), 0x7f000001);
    assert_string_equal(listen_text(1), "[::1]:9001");
    assert_true(cfg.listen[1].v6);
    const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)&cfg.listen[1].addr;
    assert_int_equal(b->sin6_family, AF_INET6);
    assert_int_equal(ntohs(b->sin6_port), 9001);
    assert_true(IN6_IS_ADDR_LOOPBACK(&b->sin6_addr));
}

static void test_listen_flag_replaces_the_default_list(void **state)
{
    assert_int_equal(parse(ARGS("--listen", "127.0.0.1:0")), 0);
    assert_int_equal(cfg.n_listen, 1);
    assert_string_equal(listen_text(0), "127.0.0.1:0");
}

static void test_listen_env_takes_a_comma_separated_list(void **state)
{
    assert_int_equal(parse_env(NOARGS, ARGS("DISCOVERYD_LISTEN=127.0.0.1:1, [::1]:2")), 0);
    assert_int_equal(cfg.n_listen, 2);
    assert_string_equal(listen_text(0), "127.0.0.1:1");
    assert_string_equal(listen_text(1), "[::1]:2");
}

static void test_listen_flag_beats_listen_env(void **state)
{
    assert_int_equal(parse_env(ARGS("--listen", "127.0.0.2:5"), ARGS("DISCOVERYD_LISTEN=127.0.0.1:1")), 0);
    assert_int_equal(cfg.n_listen, 1);
    assert_string_equal(listen_text(0), "127.0.0.2:5");
}

static void test_bad_listen_addresses_are_refused(void **state)
{
    const char *bad[] = {"8087",          "localhost:8087", "::1:8087", "[::1]8087",    "1.2.3.4:",
                         "1.2.3.4:65536", "1.2.3.4:-1",     "1.2.3:80", "[1.2.3.4]:80", "0.0.0.0:80x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[256];
        snprintf(want, sizeof(want), "--listen: \"%s\" is not ADDR:PORT (e.g. 0.0.0.0:8087 or [::]:8087)",
                 bad[i]);
        assert_bad(ARGS("--listen", bad[i]), NULL, want);
    }
}

static void test_more_than_sixteen_listen_addresses_is_refused(void **state)
{
    const char *args[40];
    char ports[17][32];
    int n = 0;
    for (int i = 0; i < 17; i++) {
        snprintf(ports[i], sizeof(ports[i]), "127.0.0.1:%d", 1000 + i);
        args[n++] = "--listen";
        args[n++] = ports[i];
    }
    args[n] = NULL;
    assert_bad(args, NULL, "--listen: more than 16 addresses");
}

/* ------------------------------------------------------------------ durations */

static void test_go_style_durations(void **state)
{
    struct {
        const char *s;
        int64_t ms;
    } ok[] = {{"500ms", 500},      {"90s", 90000},         {"15m", 900000}, {"168h", 604800000},
              {"1h30m", 5400000},  {"1.5h", 5400000},      {"0", 0},        {"2s500ms", 2500},
              {"1000000us", 1000}, {"1000000000ns", 1000}, {".5s", 500},    {"1m0.25s", 60250}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t ms = -1;
        assert_int_equal(svc_parse_duration(ok[i].s, &ms), 0);
        assert_int_equal(ms, ok[i].ms);
    }
    const char *bad[] = {"", "10", "s", "1x", "-1s", "1.2.3s", "1 s", "1h ", "1d", "abc", "99999999999h"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms;
        assert_int_equal(svc_parse_duration(bad[i], &ms), -1);
    }
}

static void test_duration_flags(void **state)
{
    assert_int_equal(parse(ARGS("--watch-timeout", "2s", "--token-ttl", "1h30m")), 0);
    assert_int_equal(cfg.watch_timeout_ms, 2000);
    assert_int_equal(cfg.token_ttl_ms, 5400000);
    assert_int_equal(parse(ARGS("--token-ttl", "0")), 0);
    assert_int_equal(cfg.token_ttl_ms, 0);
}

static void test_bad_durations_name_the_flag_and_the_range(void **state)
{
    assert_bad(ARGS("--watch-timeout", "60"), NULL,
               "--watch-timeout: \"60\" is not a duration from 100ms to 1h (e.g. 90s, 15m, 1h30m)");
    assert_bad(ARGS("--watch-timeout", "50ms"), NULL,
               "--watch-timeout: \"50ms\" is not a duration from 100ms to 1h (e.g. 90s, 15m, 1h30m)");
    assert_bad(ARGS("--watch-timeout", "0"), NULL,
               "--watch-timeout: \"0\" is not a duration from 100ms to 1h (e.g. 90s, 15m, 1h30m)");
    assert_bad(ARGS("--watch-timeout", "2h"), NULL,
               "--watch-timeout: \"2h\" is not a duration from 100ms to 1h (e.g. 90s, 15m, 1h30m)");
    assert_bad(
        ARGS("--token-ttl", "7d"), NULL,
        "--token-ttl: \"7d\" is not a duration from 1s to 87600h, or 0 for never (e.g. 90s, 15m, 1h30m)");
    assert_bad(
        ARGS("--token-ttl", "500ms"), NULL,
        "--token-ttl: \"500ms\" is not a duration from 1s to 87600h, or 0 for never (e.g. 90s, 15m, 1h30m)");
}

/* ------------------------------------------------------------------ bad values */

static void test_bad_integers_name_the_flag_and_the_range(void **state)
{
    assert_bad(ARGS("--max-size", "abc"), NULL, "--max-size: \"abc\" is not an integer from 1 to 1000");
    assert_bad(ARGS("--max-size", "0"), NULL, "--max-size: \"0\" is not an integer from 1 to 1000");
    assert_bad(ARGS("--snapshot-count", "0"), NULL, "--snapshot-count: \"0\" is not an integer from 1 to 1000000000");
    assert_bad(ARGS("--max-size", "1001"), NULL, "--max-size: \"1001\" is not an integer from 1 to 1000");
    assert_bad(ARGS("--max-size", "-3"), NULL, "--max-size: \"-3\" is not an integer from 1 to 1000");
    assert_bad(ARGS("--max-size", " 3"), NULL, "--max-size: \" 3\" is not an integer from 1 to 1000");
    assert_bad(ARGS("--max-size", "0x10"), NULL, "--max-size: \"0x10\" is not an integer from 1 to 1000");
    assert_bad(ARGS("--max-size", ""), NULL, "--max-size: \"\" is not an integer from 1 to 1000");
    assert_bad(ARGS("--max-size", "99999999999999999999999"), NULL,
               "--max-size: \"99999999999999999999999\" is not an integer from 1 to 1000");
    assert_bad(ARGS("--threads", "0"), NULL, "--threads: \"0\" is not an integer from 1 to 1024");
    assert_bad(ARGS("--surplus", "1001"), NULL, "--surplus: \"1001\" is not an integer from 0 to 1000");
    assert_bad(ARGS("--max-value", "0"), NULL, "--max-value: \"0\" is not an integer from 1 to 1048576");
    assert_bad(ARGS("--max-key", "4097"), NULL, "--max-key: \"4097\" is not an integer from 1 to 4096");
    assert_bad(ARGS("--max-body", "100"), NULL,
               "--max-body: \"100\" is not an integer from 1024 to 16777216");
    assert_bad(ARGS("--max-watches", "0"), NULL, "--max-watches: \"0\" is not an integer from 1 to 10000000");
    assert_bad(ARGS("--max-watches-per-client", "x"), NULL,
               "--max-watches-per-client: \"x\" is not an integer from 1 to 10000000");
    assert_bad(ARGS("--history", "999"), NULL, "--history: \"999\" is not an integer from 1000 to 1000000");
    assert_bad(ARGS("--new-burst", "0"), NULL, "--new-burst: \"0\" is not an integer from 1 to 1000000");
    assert_bad(ARGS("--new-range-burst", "1.5"), NULL,
               "--new-range-burst: \"1.5\" is not an integer from 1 to 1000000");
    assert_bad(ARGS("--token-write-burst", "0"), NULL,
               "--token-write-burst: \"0\" is not an integer from 1 to 1000000");
}

static void test_bad_rates_name_the_flag(void **state)
{
    const char *bad[] = {"0", "-1", "abc", "inf", "nan", "1e3", "0x10", "1.2.3", "", "2000000"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[256];
        snprintf(want, sizeof(want), "--new-rate: \"%s\" is not a number from 0.001 to 1000000 (per second)",
                 bad[i]);
        assert_bad(ARGS("--new-rate", bad[i]), NULL, want);
    }
    assert_bad(ARGS("--new-range-rate", "x"), NULL,
               "--new-range-rate: \"x\" is not a number from 0.001 to 1000000 (per second)");
    assert_bad(ARGS("--token-write-rate", "x"), NULL,
               "--token-write-rate: \"x\" is not a number from 0.001 to 1000000 (per second)");
}

static void test_bad_strings_and_levels(void **state)
{
    assert_bad(ARGS("--log-level", "loud"), NULL,
               "--log-level: \"loud\" is not one of debug, info, warn, error");
    assert_bad(ARGS("--data-dir", ""), NULL, "--data-dir: must not be empty");
    assert_bad(ARGS("--tls-cert", "c.pem"), NULL, "--tls-cert: given without --tls-key");
    assert_bad(ARGS("--tls-key", "k.pem"), NULL, "--tls-key: given without --tls-cert");
}

static void test_unknown_flag_missing_value_and_stray_argument(void **state)
{
    assert_bad(ARGS("--max-sise", "3"), NULL, "unknown flag \"--max-sise\" (see --help)");
    assert_bad(ARGS("--max-size"), NULL, "--max-size: missing value");
    assert_bad(ARGS("serve"), NULL, "unexpected argument \"serve\" (see --help)");
    assert_bad(ARGS("--help=yes"), NULL, "--help: takes no value");
}

/* ------------------------------------------------------------------ PostgreSQL and proxies */

static void test_postgres_flags(void **state)
{
    assert_int_equal(parse(ARGS("--postgres", "postgresql://u:pw@db/x", "--postgres-pool", "9",
                                "--postgres-timeout", "50ms")),
                     0);
    assert_string_equal(cfg.postgres, "postgresql://u:pw@db/x");
    assert_int_equal(cfg.postgres_pool, 9);
    assert_int_equal(cfg.postgres_timeout_ms, 50);
    assert_int_equal(parse_env(NOARGS, ARGS("DISCOVERYD_POSTGRES=host=db password=pw", "DISCOVERYD_POSTGRES_POOL=2",
                                            "DISCOVERYD_POSTGRES_TIMEOUT=1s")),
                     0);
    assert_string_equal(cfg.postgres, "host=db password=pw");
    assert_int_equal(cfg.postgres_pool, 2);
    assert_int_equal(cfg.postgres_timeout_ms, 1000);
    assert_bad(ARGS("--postgres", ""), NULL, "--postgres: must not be empty");
    assert_bad(ARGS("--postgres-pool", "0"), NULL, "--postgres-pool: \"0\" is not an integer from 1 to 64");
    assert_bad(ARGS("--postgres-pool", "65"), NULL, "--postgres-pool: \"65\" is not an integer from 1 to 64");
    assert_bad(ARGS("--postgres-timeout", "0"), NULL,
               "--postgres-timeout: \"0\" is not a duration from 1ms to 10s (e.g. 90s, 15m, 1h30m)");
    assert_bad(ARGS("--postgres-timeout", "11s"), NULL,
               "--postgres-timeout: \"11s\" is not a duration from 1ms to 10s (e.g. 90s, 15m, 1h30m)");
}

static void test_trusted_proxy_networks(void **state)
{
    assert_int_equal(parse(ARGS("--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "::1/128", "--trusted-proxy",
                                "192.0.2.7", "--trusted-proxy", "2001:db8::")),
                     0);
    assert_int_equal(cfg.n_trusted, 4);
    assert_string_equal(cfg.trusted[0].text, "10.0.0.0/8");
    assert_int_equal(cfg.trusted[0].bits, 104);
    assert_int_equal(cfg.trusted[0].addr[10], 0xff);
    assert_int_equal(cfg.trusted[0].addr[12], 10);
    assert_string_equal(cfg.trusted[1].text, "::1/128");
    assert_int_equal(cfg.trusted[1].addr[15], 1);
    assert_string_equal(cfg.trusted[2].text, "192.0.2.7/32");
    assert_int_equal(cfg.trusted[2].bits, 128);
    assert_string_equal(cfg.trusted[3].text, "2001:db8::/128");
    /* the environment form is a list; a flag replaces it */
    assert_int_equal(parse_env(NOARGS, ARGS("DISCOVERYD_TRUSTED_PROXY=10.0.0.0/8, 172.16.0.0/12,fd00::/8")), 0);
    assert_int_equal(cfg.n_trusted, 3);
    assert_string_equal(cfg.trusted[2].text, "fd00::/8");
    assert_int_equal(parse_env(ARGS("--trusted-proxy", "0.0.0.0/0"), ARGS("DISCOVERYD_TRUSTED_PROXY=10.0.0.0/8")), 0);
    assert_int_equal(cfg.n_trusted, 1);
    assert_int_equal(cfg.trusted[0].bits, 96);
    const char *bad[] = {"10.0.0.1/8", "10.0.0.0/33", "::1/129", "10.0.0.0/", "/8", "10.0.0/8", "host.example",
                         "10.0.0.0/8x", "fe80::1%eth0/128", "10.0.0.0/-1", "[::1]/128", "1.2.3.4/0032"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[256];
        snprintf(want, sizeof(want),
                 "--trusted-proxy: \"%s\" is not a network (e.g. 10.0.0.0/8 or fd00::/8; host bits must be zero)",
                 bad[i]);
        assert_bad(ARGS("--trusted-proxy", bad[i]), NULL, want);
    }
    assert_bad(ARGS("--trusted-proxy", ""), NULL,
               "--trusted-proxy: \"\" is not a network (e.g. 10.0.0.0/8 or fd00::/8)");
}

static void test_bad_postgres_url_is_never_echoed(void **state)
{
    /* an empty value is the only one config.c refuses; its message must not carry the value */
    assert_int_equal(parse(ARGS("--postgres", "postgresql://u:hunter2@db/x")), 0);
    assert_bad(NOARGS, ARGS("DISCOVERYD_POSTGRES_POOL=x"), "DISCOVERYD_POSTGRES_POOL: \"x\" is not an integer from 1 to 64");
    assert_null(strstr(err, "hunter2"));
}

/* ------------------------------------------------------------------ environment */

static void test_every_flag_has_an_env_twin(void **state)
{
    assert_int_equal(
        parse_env(NOARGS,
                  ARGS("DISCOVERYD_PUBLIC_URL=https://d.example", "DISCOVERYD_DATA_DIR=/tmp/dd",
                       "DISCOVERYD_MAX_SIZE=5", "DISCOVERYD_WATCH_TIMEOUT=5s", "DISCOVERYD_TOKEN_TTL=1h",
                       "DISCOVERYD_THREADS=4", "DISCOVERYD_SURPLUS=2", "DISCOVERYD_MAX_VALUE=10",
                       "DISCOVERYD_MAX_KEY=11", "DISCOVERYD_MAX_BODY=4096", "DISCOVERYD_MAX_WATCHES=12",
                       "DISCOVERYD_MAX_WATCHES_PER_CLIENT=13", "DISCOVERYD_HISTORY=1500",
                       "DISCOVERYD_NEW_RATE=2", "DISCOVERYD_NEW_BURST=3", "DISCOVERYD_NEW_RANGE_RATE=4",
                       "DISCOVERYD_NEW_RANGE_BURST=5", "DISCOVERYD_TOKEN_WRITE_RATE=6",
                       "DISCOVERYD_TOKEN_WRITE_BURST=7", "DISCOVERYD_TLS_CERT=c.pem",
                       "DISCOVERYD_TLS_KEY=k.pem", "DISCOVERYD_LOG_LEVEL=debug")),
        0);
    assert_string_equal(cfg.public_url, "https://d.example");
    assert_string_equal(cfg.data_dir, "/tmp/dd");
    assert_int_equal(cfg.max_size, 5);
    assert_int_equal(cfg.watch_timeout_ms, 5000);
    assert_int_equal(cfg.token_ttl_ms, 3600000);
    assert_int_equal(cfg.threads, 4);
    assert_int_equal(cfg.surplus, 2);
    assert_int_equal(cfg.max_value, 10);
    assert_int_equal(cfg.max_key, 11);
    assert_int_equal(cfg.max_body, 4096);
    assert_int_equal(cfg.max_watches, 12);
    assert_int_equal(cfg.max_watches_per_client, 13);
    assert_int_equal(cfg.history, 1500);
    assert_true(cfg.new_rate == 2.0);
    assert_int_equal(cfg.new_burst, 3);
    assert_true(cfg.new_range_rate == 4.0);
    assert_int_equal(cfg.new_range_burst, 5);
    assert_true(cfg.token_write_rate == 6.0);
    assert_int_equal(cfg.token_write_burst, 7);
    assert_string_equal(cfg.tls_cert, "c.pem");
    assert_string_equal(cfg.tls_key, "k.pem");
    assert_int_equal(cfg.log_level, SVC_LOG_DEBUG);
}

static void test_flag_beats_env(void **state)
{
    assert_int_equal(parse_env(ARGS("--max-size", "8", "--watch-timeout", "3s"),
                               ARGS("DISCOVERYD_MAX_SIZE=5", "DISCOVERYD_WATCH_TIMEOUT=9s")),
                     0);
    assert_int_equal(cfg.max_size, 8);
    assert_int_equal(cfg.watch_timeout_ms, 3000);
}

static void test_bad_env_value_overridden_by_a_flag_does_not_stop_the_start(void **state)
{
    assert_int_equal(parse_env(ARGS("--max-size", "8"), ARGS("DISCOVERYD_MAX_SIZE=abc")), 0);
    assert_int_equal(cfg.max_size, 8);
}

static void test_bad_env_value_names_the_variable(void **state)
{
    assert_bad(NOARGS, ARGS("DISCOVERYD_MAX_SIZE=abc"),
               "DISCOVERYD_MAX_SIZE: \"abc\" is not an integer from 1 to 1000");
    assert_bad(NOARGS, ARGS("DISCOVERYD_WATCH_TIMEOUT=60"),
               "DISCOVERYD_WATCH_TIMEOUT: \"60\" is not a duration from 100ms to 1h (e.g. 90s, 15m, 1h30m)");
}

static void test_empty_env_value_means_unset_and_similar_names_are_ignored(void **state)
{
    assert_int_equal(parse_env(NOARGS, ARGS("DISCOVERYD_MAX_SIZE=", "DISCOVERYD_MAX_SIZEX=3",
                                            "XDISCOVERYD_MAX_SIZE=4", "DISCOVERYD_MAX_SIZ=5")),
                     0);
    assert_int_equal(cfg.max_size, 15);
}

static void test_tls_pair_may_come_half_from_env(void **state)
{
    assert_int_equal(parse_env(ARGS("--tls-cert", "c.pem"), ARGS("DISCOVERYD_TLS_KEY=k.pem")), 0);
    assert_string_equal(cfg.tls_cert, "c.pem");
    assert_string_equal(cfg.tls_key, "k.pem");
}

/* ------------------------------------------------------------------ help and data dir */

static void test_help_lists_every_flag_with_its_env_twin_and_default(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    svc_config_usage(f);
    fclose(f);
    const char *expect[] = {"--listen ADDR:PORT",
                            "DISCOVERYD_LISTEN",
                            "0.0.0.0:8087,[::]:8087",
                            "--public-url URL",
                            "DISCOVERYD_PUBLIC_URL",
                            "--data-dir DIR",
                            "DISCOVERYD_DATA_DIR; default: ./discoveryd-data",
                            "--max-size N",
                            "DISCOVERYD_MAX_SIZE; default: 15",
                            "DISCOVERYD_WATCH_TIMEOUT; default: 60s",
                            "DISCOVERYD_TOKEN_TTL; default: 168h",
                            "DISCOVERYD_THREADS; default: number of cores",
                            "DISCOVERYD_SURPLUS; default: 16",
                            "DISCOVERYD_MAX_VALUE; default: 4096",
                            "DISCOVERYD_MAX_KEY; default: 255",
                            "DISCOVERYD_MAX_BODY; default: 65536",
                            "DISCOVERYD_MAX_WATCHES; default: 65536",
                            "DISCOVERYD_MAX_WATCHES_PER_CLIENT; default: 1024",
                            "DISCOVERYD_HISTORY; default: 1000",
                            "DISCOVERYD_NEW_RATE; default: 1",
                            "DISCOVERYD_NEW_BURST; default: 20",
                            "DISCOVERYD_NEW_RANGE_RATE; default: 10",
                            "DISCOVERYD_NEW_RANGE_BURST; default: 200",
                            "DISCOVERYD_TOKEN_WRITE_RATE; default: 10",
                            "DISCOVERYD_TOKEN_WRITE_BURST; default: 100",
                            "--postgres URL",
                            "DISCOVERYD_POSTGRES; default: (none)",
                            "--postgres-pool N",
                            "DISCOVERYD_POSTGRES_POOL; default: 4",
                            "--postgres-timeout DURATION",
                            "DISCOVERYD_POSTGRES_TIMEOUT; default: 200ms",
                            "--trusted-proxy CIDR",
                            "DISCOVERYD_TRUSTED_PROXY; default: (none)",
                            "--tls-cert FILE",
                            "DISCOVERYD_TLS_CERT",
                            "--tls-key FILE",
                            "DISCOVERYD_TLS_KEY",
                            "DISCOVERYD_LOG_LEVEL; default: info",
                            "--help",
                            "--version"};
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        if (strstr(buf, expect[i]) == NULL)
            fail_msg("--help lacks \"%s\"", expect[i]);
    }
    free(buf);
}

static void test_data_dir_is_created_with_parents(void **state)
{
    char base[] = "/tmp/test_svc_config_XXXXXX";
    assert_non_null(mkdtemp(base));
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/a/b", base);
    assert_int_equal(parse(ARGS("--data-dir", dir)), 0);
    assert_int_equal(svc_config_prepare_data_dir(&cfg, err, sizeof(err)), 0);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    /* a file where the directory should be is a clear error naming the flag */
    char file[256];
    snprintf(file, sizeof(file), "%s/f", base);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    char sub[300];
    snprintf(sub, sizeof(sub), "%s/x", file);
    assert_int_equal(parse(ARGS("--data-dir", sub)), 0);
    assert_int_equal(svc_config_prepare_data_dir(&cfg, err, sizeof(err)), -1);
    char want[512];
    snprintf(want, sizeof(want), "--data-dir: cannot create \"%s\": Not a directory", sub);
    assert_string_equal(err, want);
    unlink(file);
    rmdir(dir);
    snprintf(dir, sizeof(dir), "%s/a", base);
    rmdir(dir);
    rmdir(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_match_the_documented_values),
        cmocka_unit_test(test_every_integer_flag_is_parsed),
        cmocka_unit_test(test_rate_flags_accept_decimals),
        cmocka_unit_test(test_string_flags_are_kept),
        cmocka_unit_test(test_log_levels),
        cmocka_unit_test(test_flag_equals_form_and_single_dash_form),
        cmocka_unit_test(test_help_and_version_stop_parsing),
        cmocka_unit_test(test_public_url_forms),
        cmocka_unit_test(test_public_url_with_path_query_or_other_scheme_is_refused),
        cmocka_unit_test(test_listen_ipv4_and_bracketed_ipv6),
        cmocka_unit_test(test_listen_flag_replaces_the_default_list),
        cmocka_unit_test(test_listen_env_takes_a_comma_separated_list),
        cmocka_unit_test(test_listen_flag_beats_listen_env),
        cmocka_unit_test(test_bad_listen_addresses_are_refused),
        cmocka_unit_test(test_more_than_sixteen_listen_addresses_is_refused),
        cmocka_unit_test(test_go_style_durations),
        cmocka_unit_test(test_duration_flags),
        cmocka_unit_test(test_bad_durations_name_the_flag_and_the_range),
        cmocka_unit_test(test_bad_integers_name_the_flag_and_the_range),
        cmocka_unit_test(test_bad_rates_name_the_flag),
        cmocka_unit_test(test_bad_strings_and_levels),
        cmocka_unit_test(test_unknown_flag_missing_value_and_stray_argument),
        cmocka_unit_test(test_postgres_flags),
        cmocka_unit_test(test_trusted_proxy_networks),
        cmocka_unit_test(test_bad_postgres_url_is_never_echoed),
        cmocka_unit_test(test_every_flag_has_an_env_twin),
        cmocka_unit_test(test_flag_beats_env),
        cmocka_unit_test(test_bad_env_value_overridden_by_a_flag_does_not_stop_the_start),
        cmocka_unit_test(test_bad_env_value_names_the_variable),
        cmocka_unit_test(test_empty_env_value_means_unset_and_similar_names_are_ignored),
        cmocka_unit_test(test_tls_pair_may_come_half_from_env),
        cmocka_unit_test(test_help_lists_every_flag_with_its_env_twin_and_default),
        cmocka_unit_test(test_data_dir_is_created_with_parents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
