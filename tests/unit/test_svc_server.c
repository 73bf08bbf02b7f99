/* tests/unit/test_svc_server.c — the whole service in-process on 127.0.0.1:<port 0>: requests are
 * served by the HTTP threads, a busy address is refused naming it, the body limit reaches the
 * api, and a graceful stop answers parked watches, closes idle connections and stops accepting.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "service/config.h"
#include "service/svc.h"

static char datadir[] = "/tmp/test_svc_server_XXXXXX";

struct fixture {
    struct svc_config cfg;
    struct svc *svc;
    int port;
};

static int start(struct fixture *f, const char *listen, const char *extra_flag, const char *extra_val)
{
    char *argv[16];
    int argc = 0;
    argv[argc++] = "discoveryd";
    argv[argc++] = "--listen";
    argv[argc++] = (char *)listen;
    argv[argc++] = "--data-dir";
    argv[argc++] = datadir;
    argv[argc++] = "--threads";
    argv[argc++] = "2";
    argv[argc++] = "--log-level";
    argv[argc++] = "error";
    if (extra_flag) {
        argv[argc++] = (char *)extra_flag;
        argv[argc++] = (char *)extra_val;
    }
    argv[argc] = NULL;
    char err[512];
    assert_int_equal(svc_config_parse(&f->cfg, argc, argv, NULL, err, sizeof(err)), 0);
    if (svc_start(&f->svc, &f->cfg, err, sizeof(err)) != 0)
        return -1;
    const char *a = svc_addresses(f->svc);
    const char *colon = strrchr(a, ':');
    assert_non_null(colon);
    f->port = atoi(colon + 1);
    assert_true(f->port > 0);
    return 0;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void send_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        assert_true(w > 0);
        s += w;
        n -= (size_t)w;
    }
}

/* Reads one response (head + Content-Length body) or until EOF; at most 15 s in all. */
static size_t read_response(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (int rounds = 0; rounds < 150 && len + 1 < cap; rounds++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        char *cl = strcasestr(buf, "content-length:");
        if (end && cl && cl < end && len >= (size_t)(end + 4 - buf) + (size_t)atol(cl + 15))
            break;
    }
    buf[len] = '\0';
    return len;
}

/* true when the peer closed the connection within 15 s */
static bool closed_by_peer(int fd)
{
    char b[256];
    for (int rounds = 0; rounds < 150; rounds++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t r = read(fd, b, sizeof(b));
        if (r <= 0)
            return true;
    }
    return false;
}

static void request(int port, const char *req, char *buf, size_t cap)
{
    int fd = connect_to(port);
    assert_true(fd >= 0);
    send_all(fd, req, strlen(req));
    read_response(fd, buf, cap);
    close(fd);
}

static void test_health_is_served_on_the_bound_port(void **state)
{
    struct fixture f;
    char buf[4096];
    assert_int_equal(start(&f, "127.0.0.1:0", NULL, NULL), 0);
    request(f.port, "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    assert_non_null(strstr(buf, "{\"health\":\"true\"}"));
    svc_stop(f.svc);
}

static void test_busy_address_is_refused_naming_it(void **state)
{
    int hold = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t al = sizeof(a);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(hold, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(hold, 1), 0);
    assert_int_equal(getsockname(hold, (struct sockaddr *)&a, &al), 0);
    char listen_arg[64], want[128], err[512];
    snprintf(listen_arg, sizeof(listen_arg), "127.0.0.1:%u", ntohs(a.sin_port));
    snprintf(want, sizeof(want), "cannot listen on %s: Address already in use", listen_arg);

    struct svc_config cfg;
    char *argv[] = {"discoveryd", "--listen",    listen_arg, "--data-dir",
                    datadir,      "--log-level", "error",    NULL};
    assert_int_equal(svc_config_parse(&cfg, 7, argv, NULL, err, sizeof(err)), 0);
    struct svc *s = NULL;
    assert_int_equal(svc_start(&s, &cfg, err, sizeof(err)), -1);
    assert_string_equal(err, want);
    close(hold);
}

static void test_body_one_byte_over_max_body_reaches_the_api_as_413(void **state)
{
    struct fixture f;
    char buf[4096], req[4096];
    assert_int_equal(start(&f, "127.0.0.1:0", "--max-body", "1024"), 0);
    int n = snprintf(req, sizeof(req),
                     "PUT /v2/keys/discovery/abc/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                     "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1025\r\n\r\n");
    memset(req + n, 'a', 1025);
    req[n + 1025] = '\0';
    request(f.port, req, buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 413"));
    svc_stop(f.svc);
}

static void test_parked_watch_is_answered_200_empty_at_stop(void **state)
{
    struct fixture f;
    char buf[4096], req[512];
    assert_int_equal(start(&f, "127.0.0.1:0", "--watch-timeout", "1h"), 0);
    request(f.port, "GET /new?size=3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", buf, sizeof(buf));
    char *tok = strstr(buf, "http://t/");
    assert_non_null(tok);
    tok += strlen("http://t/");

    int fd = connect_to(f.port);
    assert_true(fd >= 0);
    snprintf(req, sizeof(req),
             "GET /v2/keys/discovery/%.32s?wait=true&waitIndex=1000 HTTP/1.1\r\nHost: t\r\n\r\n", tok);
    send_all(fd, req, strlen(req));
    /* parked: nothing comes back for a while */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 300), 0);

    svc_stop(f.svc);
    read_response(fd, buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    assert_non_null(strcasestr(buf, "content-length: 0\r\n"));
    assert_true(closed_by_peer(fd));
    close(fd);
}

static void test_stop_closes_idle_keepalive_connections_and_stops_accepting(void **state)
{
    struct fixture f;
    char buf[4096];
    assert_int_equal(start(&f, "127.0.0.1:0", NULL, NULL), 0);
    int fd = connect_to(f.port);
    assert_true(fd >= 0);
    const char *req = "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
    send_all(fd, req, strlen(req));
    read_response(fd, buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    int port = f.port;

    svc_stop(f.svc);
    assert_true(closed_by_peer(fd));
    close(fd);
    assert_int_equal(connect_to(port), -1);
    assert_int_equal(errno, ECONNREFUSED);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (mkdtemp(datadir) == NULL)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_is_served_on_the_bound_port),
        cmocka_unit_test(test_busy_address_is_refused_naming_it),
        cmocka_unit_test(test_body_one_byte_over_max_body_reaches_the_api_as_413),
        cmocka_unit_test(test_parked_watch_is_answered_200_empty_at_stop),
        cmocka_unit_test(test_stop_closes_idle_keepalive_connections_and_stops_accepting),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(datadir);
    return rc;
}
