/* tests/unit/test_api_http.c — the whole HTTP surface end to end in one process: a real store
 * thread (node_start), an h2o server on a libuv loop in a second thread calling api_handle, and
 * a plain blocking HTTP/1.1 client. Checks bytes on the wire, headers, status codes, keep-alive
 * across error answers, watches (history, wake-up, timeout) and the discovery bookkeeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#include <h2o.h>

#include "api/api.h"

/* ---- the server under test ---- */

struct handler {
    h2o_handler_t super;
    struct api_thread *t;
};

static struct {
    struct node *node;
    struct api *api;
    struct api_thread at;
    h2o_globalconf_t conf;
    h2o_context_t ctx;
    h2o_accept_ctx_t actx;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop;
    int port;
    /* rate limiter stub: refuse when set */
    int refuse_class; /* -1: allow all */
    int rate_calls;
    int rate_mode;    /* 0: decide at once; 1: PENDING, answered by another thread; 2: PENDING, held */
    int rate_sync_calls; /* calls with wait == NULL (the per-process decision after a timeout) */
    pthread_mutex_t held_mu;
    struct api_rate_wait *held[64];
    int n_held;
    char logbuf[4096];
} S;

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    return api_handle(((struct handler *)self)->t, req);
}

static void on_accept(uv_stream_t *listener, int status)
{
    if (status != 0)
        return;
    uv_tcp_t *conn = h2o_mem_alloc(sizeof(*conn));
    uv_tcp_init(listener->loop, conn);
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, (uv_close_cb)free);
        return;
    }
    h2o_accept(&S.actx, h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free));
}

static void on_stop(uv_async_t *a)
{
    uv_close((uv_handle_t *)&S.listener, NULL);
    uv_close((uv_handle_t *)&S.stop, NULL);
    uv_stop(&S.loop);
}

struct later {
    struct api_rate_wait *wait;
    enum api_rate_answer a;
};

/* A limiter on another thread: answers a moment later. */
static void *answer_later(void *arg)
{
    struct later *l = arg;
    usleep(5000);
    api_rate_answer(l->wait, l->a, l->a == API_RATE_DENY ? 7 : 0);
    free(l);
    return NULL;
}

static enum api_rate_answer rate_stub(void *arg, enum api_rl_class cls, const void *key, size_t key_len,
                                      uint32_t *retry_after, struct api_rate_wait *wait)
{
    S.rate_calls++;
    if (wait == NULL)
        S.rate_sync_calls++;
    if (wait != NULL && S.rate_mode == 1) {
        struct later *l = malloc(sizeof(*l));
        l->wait = wait;
        l->a = (int)cls == S.refuse_class ? API_RATE_DENY : API_RATE_ALLOW;
        pthread_t th;
        pthread_create(&th, NULL, answer_later, l);
        pthread_detach(th);
        return API_RATE_PENDING;
    }
    if (wait != NULL && S.rate_mode == 2) {
        pthread_mutex_lock(&S.held_mu);
        S.held[S.n_held++] = wait;
        pthread_mutex_unlock(&S.held_mu);
        return API_RATE_PENDING;
    }
    if ((int)cls == S.refuse_class) {
        *retry_after = 7;
        return API_RATE_DENY;
    }
    return API_RATE_ALLOW;
}

static void log_capture(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = strlen(S.logbuf);
    if (n < sizeof(S.logbuf) - 2) {
        vsnprintf(S.logbuf + n, sizeof(S.logbuf) - n - 1, fmt, ap);
        strcat(S.logbuf, "\n");
    }
    va_end(ap);
}

static int server_up(void **state)
{
    memset(&S, 0, sizeof(S));
    S.refuse_class = -1;
    api_log = log_capture;
    struct node_config nc;
    node_config_defaults(&nc);
    nc.watch_timeout_ms = 300;
    nc.cluster_id = 0x890ee0b358a883feULL;
    char err[128];
    assert_int_equal(node_start(&S.node, &nc, err, sizeof(err)), 0);
    struct api_config ac;
    api_config_defaults(&ac);
    ac.surplus = 1;
    ac.max_body_bytes = 1024;
    ac.rate = rate_stub;
    ac.rate_timeout_ms = 100;
    pthread_mutex_init(&S.held_mu, NULL);
    assert_int_equal(api_new(&S.api, &ac, S.node), 0);

    h2o_config_init(&S.conf);
    h2o_hostconf_t *host = h2o_config_register_host(&S.conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    struct handler *h = (struct handler *)h2o_create_handler(path, sizeof(*h));
    h->super.on_req = on_req;
    h->t = &S.at;
    uv_loop_init(&S.loop);
    h2o_context_init(&S.ctx, &S.loop, &S.conf);
    S.actx.ctx = &S.ctx;
    S.actx.hosts = S.conf.hosts;
    assert_int_equal(api_thread_init(&S.at, S.api, &S.ctx), 0);

    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", 0, &sin);
    uv_tcp_init(&S.loop, &S.listener);
    assert_int_equal(uv_tcp_bind(&S.listener, (struct sockaddr *)&sin, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&S.listener, 64, on_accept), 0);
    int len = sizeof(sin);
    uv_tcp_getsockname(&S.listener, (struct sockaddr *)&sin, &len);
    S.port = ntohs(sin.sin_port);
    uv_async_init(&S.loop, &S.stop, on_stop);
    return 0;
}

static int server_down(void **state)
{
    node_stop(S.node);
    /* deliver completions node_stop posted (none expected), then tear the loop down */
    uv_run(&S.loop, UV_RUN_NOWAIT);
    api_thread_dispose(&S.at);
    h2o_context_dispose(&S.ctx);
    h2o_config_dispose(&S.conf);
    uv_run(&S.loop, UV_RUN_NOWAIT);
    uv_loop_close(&S.loop);
    api_free(S.api);
    node_free(S.node);
    return 0;
}

/* ---- a small blocking HTTP/1.1 client ---- */

struct resp {
    int status;
    char head[8192];
    char *body;
    size_t body_len;
};

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)S.port)};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void send_req(int fd, const char *method, const char *target, const char *body)
{
    char buf[8192];
    int n;
    if (body != NULL)
        n = snprintf(
            buf, sizeof(buf),
            "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            "Content-Length: %zu\r\n\r\n%s",
            method, target, S.port, strlen(body), body);
    else
        n = snprintf(buf, sizeof(buf), "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", method, target,
                     S.port);
    assert_int_equal(write(fd, buf, (size_t)n), n);
}

/* Value of a response header (case-insensitive name), or NULL. */
static const char *header(const struct resp *r, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *v = p + 2 + nl + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t l = (size_t)(e - v) < outlen - 1 ? (size_t)(e - v) : outlen - 1;
            memcpy(out, v, l);
            out[l] = 0;
            return out;
        }
    }
    return NULL;
}

static void read_resp(int fd, struct resp *r, bool head_only)
{
    memset(r, 0, sizeof(*r));
    size_t n = 0;
    char *end = NULL;
    while (end == NULL) {
        assert_true(n < sizeof(r->head) - 1);
        ssize_t got = read(fd, r->head + n, 1); /* byte by byte: never read past the head */
        if (got <= 0)
            fail_msg("connection closed or timed out while reading the head (%zu bytes)", n);
        n += (size_t)got;
        r->head[n] = 0;
        end = strstr(r->head, "\r\n\r\n");
    }
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d", &r->status), 1);
    char cl[32];
    if (header(r, "content-length", cl, sizeof(cl)) == NULL)
        fail_msg("no Content-Length in\n%s", r->head);
    size_t len = head_only ? 0 : strtoul(cl, NULL, 10);
    r->body = malloc(len + 1);
    size_t got = 0;
    while (got < len) {
        ssize_t k = read(fd, r->body + got, len - got);
        if (k <= 0)
            fail_msg("short body");
        got += (size_t)k;
    }
    r->body[len] = 0;
    r->body_len = len;
}

static void http(int fd, const char *method, const char *target, const char *body, struct resp *r)
{
    send_req(fd, method, target, body);
    read_resp(fd, r, strcmp(method, "HEAD") == 0);
}

static void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

static void expect_header(const struct resp *r, const char *name, const char *want)
{
    char v[256];
    if (header(r, name, v, sizeof(v)) == NULL)
        fail_msg("missing %s in\n%s", name, r->head);
    if (strcmp(v, want) != 0)
        fail_msg("%s: got '%s', want '%s'", name, v, want);
}

static void expect_no_header(const struct resp *r, const char *name)
{
    char v[256];
    if (header(r, name, v, sizeof(v)) != NULL)
        fail_msg("unexpected %s: %s", name, v);
}

static uint64_t header_u64(const struct resp *r, const char *name)
{
    char v[64];
    if (header(r, name, v, sizeof(v)) == NULL)
        fail_msg("missing %s", name);
    return strtoull(v, NULL, 10);
}

static void expect_body(const struct resp *r, const char *want)
{
    if (r->body_len != strlen(want) || memcmp(r->body, want, r->body_len) != 0)
        fail_msg("body: got  %s\nwant %s", r->body, want);
}

/* Make a token through /new; returns its name in tok. */
static void new_token(int fd, const char *query, char tok[33])
{
    struct resp r;
    char target[64];
    snprintf(target, sizeof(target), "/new%s", query);
    http(fd, "GET", target, NULL, &r);
    assert_int_equal(r.status, 200);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "http://127.0.0.1:%d/", S.port);
    assert_int_equal(r.body_len, strlen(prefix) + 32);
    assert_memory_equal(r.body, prefix, strlen(prefix));
    memcpy(tok, r.body + strlen(prefix), 32);
    tok[32] = 0;
    resp_free(&r);
}

/* ---- tests ---- */

static void test_new_returns_url_without_newline_and_stores_size(void **s)
{
    int fd = dial();
    struct resp r;
    http(fd, "GET", "/new?size=5", NULL, &r);
    assert_int_equal(r.status, 200);
    expect_header(&r, "content-type", "text/plain; charset=utf-8");
    assert_true(r.body_len > 0 && r.body[r.body_len - 1] != '\n');
    char *tok = strrchr(r.body, '/') + 1;
    assert_int_equal(strlen(tok), 32);
    char target[128];
    snprintf(target, sizeof(target), "/%s/_config/size", tok);
    struct resp g;
    http(fd, "GET", target, NULL, &g);
    assert_int_equal(g.status, 200);
    uint64_t idx = header_u64(&g, "x-etcd-index");
    char want[256];
    snprintf(want, sizeof(want),
             "{\"action\":\"get\",\"node\":{\"key\":\"/discovery/%s/_config/"
             "size\",\"value\":\"5\",\"modifiedIndex\":%llu,"
             "\"createdIndex\":%llu}}\n",
             tok, (unsigned long long)idx, (unsigned long long)idx);
    expect_body(&g, want);
    expect_header(&g, "content-type", "application/json");
    expect_header(&g, "x-etcd-cluster-id", "890ee0b358a883fe");
    expect_header(&g, "x-discovery-size", "5");
    expect_header(&g, "x-discovery-full", "false");
    header_u64(&g, "x-raft-index");
    header_u64(&g, "x-raft-term");
    resp_free(&g);
    resp_free(&r);
    /* size from a urlencoded POST body */
    http(fd, "POST", "/new", "size=2", &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    close(fd);
}

static void test_new_rejects_bad_sizes_with_one_line_and_keeps_alive(void **s)
{
    int fd = dial();
    const char *bad[] = {"/new?size=0",  "/new?size=16", "/new?size=abc",
                         "/new?size=-1", "/new?size=",   "/new?size=+3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct resp r;
        http(fd, "GET", bad[i], NULL, &r); /* same connection throughout: keep-alive survives */
        assert_int_equal(r.status, 400);
        expect_body(&r, "size must be an integer from 1 to 15\n");
        resp_free(&r);
    }
    struct resp r;
    http(fd, "DELETE", "/new", NULL, &r);
    assert_int_equal(r.status, 405);
    expect_header(&r, "allow", "GET, POST, PUT");
    resp_free(&r);
    close(fd);
}

static void test_new_rate_limited_is_429_with_retry_after(void **s)
{
    int fd = dial();
    S.refuse_class = API_RL_NEW_RANGE;
    struct resp r;
    http(fd, "GET", "/new", NULL, &r);
    S.refuse_class = -1;
    assert_int_equal(r.status, 429);
    expect_header(&r, "retry-after", "7");
    expect_body(&r, "too many tokens created from this address range; retry in 7 s\n");
    resp_free(&r);
    close(fd);
}

/* The limiter answers later, from another thread: the request waits for it on its own thread. */
static void test_rate_answer_later_allows_and_denies(void **s)
{
    int fd = dial();
    struct resp r;
    S.rate_mode = 1;
    int sync_before = S.rate_sync_calls;
    http(fd, "GET", "/new", NULL, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    S.refuse_class = API_RL_NEW_ADDR;
    http(fd, "GET", "/new", NULL, &r);
    assert_int_equal(r.status, 429);
    expect_header(&r, "retry-after", "7");
    expect_body(&r, "too many tokens created from this address; retry in 7 s\n");
    resp_free(&r);
    /* a write to a token: the keys JSON error with Retry-After */
    S.refuse_class = -1;
    char tok[33], target[128];
    new_token(fd, "?size=3", tok);
    S.refuse_class = API_RL_TOKEN_WRITE;
    snprintf(target, sizeof(target), "/v2/keys/discovery/%s/m1", tok);
    http(fd, "PUT", target, "value=x", &r);
    assert_int_equal(r.status, 429);
    expect_header(&r, "retry-after", "7");
    assert_non_null(strstr(r.body, "\"cause\":\"too many writes to this token; retry in 7 s\""));
    resp_free(&r);
    S.refuse_class = -1;
    http(fd, "PUT", target, "value=x", &r);
    assert_int_equal(r.status, 201);
    resp_free(&r);
    S.rate_mode = 0;
    assert_int_equal(S.rate_sync_calls, sync_before); /* every answer came from the limiter */
    close(fd);
}

/* No answer within rate_timeout_ms: the limiter is asked again without a wait (the per-process
 * decision), and the late answers are dropped safely. */
static void test_rate_timeout_decides_per_process(void **s)
{
    int fd = dial();
    struct resp r;
    S.rate_mode = 2;
    int sync_before = S.rate_sync_calls;
    http(fd, "GET", "/new", NULL, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_int_equal(S.rate_sync_calls, sync_before + 2); /* address, then range */
    S.refuse_class = API_RL_NEW_ADDR;
    http(fd, "GET", "/new", NULL, &r);
    assert_int_equal(r.status, 429);
    expect_body(&r, "too many tokens created from this address; retry in 7 s\n");
    resp_free(&r);
    S.refuse_class = -1;
    S.rate_mode = 0;
    /* the answers arrive after all, contradicting the local decisions: nothing changes */
    pthread_mutex_lock(&S.held_mu);
    assert_int_equal(S.n_held, 3);
    for (int i = 0; i < S.n_held; i++)
        api_rate_answer(S.held[i], i % 2 ? API_RATE_ALLOW : API_RATE_DENY, 3);
    S.n_held = 0;
    pthread_mutex_unlock(&S.held_mu);
    http(fd, "GET", "/new", NULL, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    close(fd);
}

static void test_discovery_join_sequence_as_etcd_members_do_it(void **s)
{
    int fd = dial();
    char tok[33], target[256], want[1024];
    new_token(fd, "?size=2", tok);
    struct resp r;

    /* R2 on a fresh token: the dir with its hidden _config only */
    snprintf(target, sizeof(target), "/v2/keys/discovery/%s?quorum=false&recursive=false&sorted=false", tok);
    http(fd, "GET", target, NULL, &r);
    assert_int_equal(r.status, 200);
    uint64_t ci = header_u64(&r, "x-etcd-index");
    snprintf(want, sizeof(want),
             "{\"action\":\"get\",\"node\":{\"key\":\"/discovery/%s\",\"dir\":true,\"modifiedIndex\":%llu,"
             "\"createdIndex\":%llu}}\n",
             tok, (unsigned long long)ci, (unsigned long long)ci);
    expect_body(&r, want);
    resp_free(&r);

    /* R3: register */
    snprintf(target, sizeof(target), "/v2/keys/discovery/%s/6c007a14875d53d9?prevExist=false", tok);
    http(fd, "PUT", target, "value=infra0%3Dhttp%3A%2F%2F10.0.1.10%3A2380", &r);
    assert_int_equal(r.status, 201);
    uint64_t m1 = header_u64(&r, "x-etcd-index");
    assert_true(m1 >= 2);
    snprintf(want, sizeof(want),
             "{\"action\":\"create\",\"node\":{\"key\":\"/discovery/%s/6c007a14875d53d9\","
             "\"value\":\"infra0=http://10.0.1.10:2380\",\"modifiedIndex\":%llu,\"createdIndex\":%llu}}\n",
             tok, (unsigned long long)m1, (unsigned long long)m1);
    expect_body(&r, want);
    expect_header(&r, "x-discovery-size", "2");
    expect_header(&r, "x-discovery-full", "false");
    resp_free(&r);

    /* the same registration again: 412 / 105, no X-Raft headers, connection stays usable */
    http(fd, "PUT", target, "value=infra0%3Dhttp%3A%2F%2F10.0.1.10%3A2380", &r);
    assert_int_equal(r.status, 412);
    snprintf(
        want, sizeof(want),
        "{\"errorCode\":105,\"message\":\"Key already exists\",\"cause\":\"/discovery/%s/6c007a14875d53d9\","
        "\"index\":%llu}\n",
        tok, (unsigned long long)m1);
    expect_body(&r, want);
    char idx[24];
    snprintf(idx, sizeof(idx), "%llu", (unsigned long long)m1);
    expect_header(&r, "x-etcd-index", idx);
    expect_no_header(&r, "x-raft-index");
    expect_header(&r, "x-etcd-cluster-id", "890ee0b358a883fe");
    resp_free(&r);

    /* R4: the self-watch is answered from history */
    snprintf(target, sizeof(target),
             "/v2/keys/discovery/%s/6c007a14875d53d9?recursive=false&wait=true&waitIndex=%llu", tok,
             (unsigned long long)m1);
    http(fd, "GET", target, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"action\":\"create\""));
    resp_free(&r);

    /* R5 on a second connection parks; a registration on the first wakes it */
    int fd2 = dial();
    snprintf(target, sizeof(target), "/%s?recursive=true&wait=true&waitIndex=%llu", tok,
             (unsigned long long)m1 + 1);
    send_req(fd2, "GET", target, NULL);
    usleep(50 * 1000);
    snprintf(target, sizeof(target), "/%s/a3b6?prevExist=false", tok);
    http(fd, "PUT", target, "value=infra1%3Dhttp%3A%2F%2F10.0.1.11%3A2380", &r);
    assert_int_equal(r.status, 201);
    expect_header(&r, "x-discovery-full", "true");
    uint64_t m2 = header_u64(&r, "x-etcd-index");
    resp_free(&r);
    read_resp(fd2, &r, false);
    assert_int_equal(r.status, 200);
    snprintf(want, sizeof(want),
             "{\"action\":\"create\",\"node\":{\"key\":\"/discovery/%s/a3b6\","
             "\"value\":\"infra1=http://10.0.1.11:2380\",\"modifiedIndex\":%llu,\"createdIndex\":%llu}}\n",
             tok, (unsigned long long)m2, (unsigned long long)m2);
    expect_body(&r, want);
    resp_free(&r);
    close(fd2);

    /* the token page data: two members in createdIndex order */
    snprintf(target, sizeof(target), "/status/%s", tok);
    http(fd, "GET", target, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"size\":2,\"full\":true"));
    snprintf(want, sizeof(want),
             "\"members\":[{\"id\":\"6c007a14875d53d9\",\"name\":\"infra0\",\"peerURLs\":[\"http://"
             "10.0.1.10:2380\"],"
             "\"createdIndex\":%llu,\"role\":\"member\",\"registered\":\"20",
             (unsigned long long)m1);
    if (strstr(r.body, want) == NULL)
        fail_msg("status body %s\nlacks %s", r.body, want);
    snprintf(want, sizeof(want),
             "Z\"},{\"id\":\"a3b6\",\"name\":\"infra1\",\"peerURLs\":["
             "\"http://10.0.1.11:2380\"],"
             "\"createdIndex\":%llu,\"role\":\"member\",\"registered\":\"20",
             (unsigned long long)m2);
    if (strstr(r.body, want) == NULL || strstr(r.body, "Z\"}]}\n") == NULL)
        fail_msg("status body %s\nlacks %s", r.body, want);
    resp_free(&r);
    assert_non_null(strstr(S.logbuf, "is full"));

    /* a surplus registration is kept (size 2 + surplus 1), the next one is refused with 429 */
    snprintf(target, sizeof(target), "/%s/c3?prevExist=false", tok);
    http(fd, "PUT", target, "value=late%3Dhttp%3A%2F%2F10.0.1.12%3A2380", &r);
    assert_int_equal(r.status, 201);
    resp_free(&r);
    assert_non_null(strstr(S.logbuf, "surplus registration"));
    snprintf(target, sizeof(target), "/%s/d4?prevExist=false", tok);
    http(fd, "PUT", target, "value=later%3Dhttp%3A%2F%2F10.0.1.13%3A2380", &r);
    assert_int_equal(r.status, 429);
    assert_non_null(strstr(r.body, "\"errorCode\":1001"));
    resp_free(&r);
    snprintf(target, sizeof(target), "/status/%s", tok);
    http(fd, "GET", target, NULL, &r);
    assert_non_null(strstr(r.body, "\"id\":\"c3\",\"name\":\"late\""));
    assert_non_null(strstr(r.body, "\"role\":\"surplus\""));
    resp_free(&r);

    /* /metrics counts it */
    http(fd, "GET", "/metrics", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "discoveryd_registrations_total 3\n"));
    assert_non_null(strstr(r.body, "discoveryd_surplus_registrations_total 1\n"));
    assert_non_null(strstr(r.body, "discoveryd_tokens_full_total 1\n"));
    assert_non_null(strstr(r.body, "discoveryd_http_requests_total{route=\"keys\",code=\"429\"} 1\n"));
    resp_free(&r);
    close(fd);
}

static void test_watch_timeout_is_200_with_empty_body(void **s)
{
    int fd = dial();
    char tok[33], target[128];
    new_token(fd, "", tok);
    struct resp r;
    snprintf(target, sizeof(target), "/%s?wait=true&recursive=true", tok);
    http(fd, "GET", target, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    expect_header(&r, "content-length", "0");
    expect_header(&r, "content-type", "application/json");
    header_u64(&r, "x-etcd-index");
    resp_free(&r);
    /* and the connection is still good */
    http(fd, "GET", "/health", NULL, &r);
    assert_int_equal(r.status, 200);
    expect_body(&r, "{\"health\":\"true\"}\n");
    resp_free(&r);
    close(fd);
}

static void test_errors_and_other_routes_keep_the_connection(void **s)
{
    int fd = dial();
    struct resp r;
    http(fd, "GET", "/v2/keys/foo", NULL, &r);
    assert_int_equal(r.status, 403);
    expect_body(&r, "{\"errorCode\":1100,\"message\":\"Not served\",\"cause\":\"only "
                    "/v2/keys/discovery/{token} is served\",\"index\":0}\n");
    resp_free(&r);
    http(fd, "GET", "/T//x", NULL, &r);
    assert_int_equal(r.status, 400);
    expect_body(&r, "bad path: the path has an empty component (\"//\")\n");
    resp_free(&r);
    http(fd, "GET", "/T/a%2Fb", NULL, &r);
    assert_int_equal(r.status, 400);
    resp_free(&r);
    http(fd, "GET", "/favicon.ico", NULL, &r);
    assert_int_equal(r.status, 404);
    expect_body(&r, "404 page not found\n");
    resp_free(&r);
    http(fd, "GET", "/nosuchtoken/_config/size", NULL, &r);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(
        r.body, "\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/discovery/nosuchtoken\""));
    resp_free(&r);
    http(fd, "PATCH", "/nosuchtoken", NULL, &r);
    assert_int_equal(r.status, 405);
    expect_header(&r, "allow", "GET, HEAD, PUT, POST, DELETE");
    resp_free(&r);
    http(fd, "GET", "/robots.txt", NULL, &r);
    expect_body(&r, "User-agent: *\nDisallow: /\n");
    resp_free(&r);
    http(fd, "GET", "/", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "/new"));
    resp_free(&r);
    http(fd, "GET", "/status/nosuchtoken", NULL, &r);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    http(fd, "HEAD", "/health", NULL, &r);
    assert_int_equal(r.status, 200);
    expect_header(&r, "content-length", "18");
    resp_free(&r);
    /* a write to a token that does not exist creates nothing */
    http(fd, "PUT", "/nosuchtoken/m1", "value=x", &r);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    close(fd);
}

static void test_keys_form_errors_and_caps(void **s)
{
    int fd = dial();
    char tok[33], target[256];
    new_token(fd, "", tok);
    struct resp r;
    snprintf(target, sizeof(target), "/%s/m?prevExist=abc", tok);
    http(fd, "PUT", target, "value=x", &r);
    assert_int_equal(r.status, 400);
    expect_body(&r, "{\"errorCode\":209,\"message\":\"Invalid field\",\"cause\":\"invalid value for "
                    "prevExist\",\"index\":0}\n");
    expect_header(&r, "x-etcd-index", "0");
    resp_free(&r);
    snprintf(target, sizeof(target), "/%s/m?a=%%zz", tok);
    http(fd, "PUT", target, "value=x", &r);
    assert_int_equal(r.status, 400);
    expect_body(&r, "{\"errorCode\":210,\"message\":\"Invalid POST form\",\"cause\":\"invalid URL escape "
                    "\\\"%zz\\\"\",\"index\":0}\n");
    resp_free(&r);
    snprintf(target, sizeof(target), "/%s/m", tok);
    char big[1100] = "value=";
    memset(big + 6, 'a', 1050);
    big[1056] = 0;
    http(fd, "PUT", target, big, &r);
    assert_int_equal(r.status, 413);
    resp_free(&r);
    /* nothing was stored by any of them */
    http(fd, "GET", target, NULL, &r);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    close(fd);
}

static void test_token_by_hand_through_config_size(void **s)
{
    int fd = dial();
    struct resp r;
    int before = S.rate_calls;
    http(fd, "PUT", "/v2/keys/discovery/4068fe4b-9f9f-4768-9ea2-6208e77632aa/_config/size", "value=3", &r);
    assert_int_equal(r.status, 201);
    assert_non_null(strstr(r.body, "{\"action\":\"set\",\"node\":{\"key\":\"/discovery/"
                                   "4068fe4b-9f9f-4768-9ea2-6208e77632aa/_config/size\",\"value\":\"3\""));
    assert_true(S.rate_calls >= before + 2); /* address and range buckets */
    resp_free(&r);
    http(fd, "GET", "/v2/keys/discovery/4068fe4b-9f9f-4768-9ea2-6208e77632aa/_config/size?quorum=true", NULL,
         &r);
    assert_int_equal(r.status, 200);
    expect_header(&r, "x-discovery-size", "3");
    resp_free(&r);
    http(fd, "HEAD", "/v2/keys/discovery/4068fe4b-9f9f-4768-9ea2-6208e77632aa", NULL, &r);
    assert_int_equal(r.status, 200);
    header_u64(&r, "x-etcd-index");
    resp_free(&r);
    /* refused by the creation limiter */
    S.refuse_class = API_RL_NEW_ADDR;
    http(fd, "PUT", "/v2/keys/discovery/another/_config/size", "value=3", &r);
    S.refuse_class = -1;
    assert_int_equal(r.status, 429);
    expect_header(&r, "retry-after", "7");
    resp_free(&r);
    http(fd, "GET", "/v2/keys/discovery/another", NULL, &r);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    /* delete a member registration, then the whole token */
    http(fd, "PUT", "/v2/keys/discovery/4068fe4b-9f9f-4768-9ea2-6208e77632aa/m1",
         "value=a%3Dhttp%3A%2F%2F1.2.3.4%3A2380", &r);
    assert_int_equal(r.status, 201);
    resp_free(&r);
    http(fd, "DELETE", "/v2/keys/discovery/4068fe4b-9f9f-4768-9ea2-6208e77632aa/m1", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "{\"action\":\"delete\",\"node\":{\"key\":\"/discovery/"
                                   "4068fe4b-9f9f-4768-9ea2-6208e77632aa/m1\",\"modifiedIndex\":"));
    resp_free(&r);
    http(fd, "DELETE", "/v2/keys/discovery/4068fe4b-9f9f-4768-9ea2-6208e77632aa?recursive=true", NULL, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    close(fd);
}

static int run_all(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_returns_url_without_newline_and_stores_size),
        cmocka_unit_test(test_new_rejects_bad_sizes_with_one_line_and_keeps_alive),
        cmocka_unit_test(test_new_rate_limited_is_429_with_retry_after),
        cmocka_unit_test(test_discovery_join_sequence_as_etcd_members_do_it),
        cmocka_unit_test(test_watch_timeout_is_200_with_empty_body),
        cmocka_unit_test(test_errors_and_other_routes_keep_the_connection),
        cmocka_unit_test(test_keys_form_errors_and_caps),
        cmocka_unit_test(test_token_by_hand_through_config_size),
        cmocka_unit_test(test_rate_answer_later_allows_and_denies),
        cmocka_unit_test(test_rate_timeout_decides_per_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The client side (the cmocka tests) runs on its own thread; the server loop runs on the main
 * thread, so h2o's thread-local caches stay reachable until exit. */
static void *client_main(void *arg)
{
    *(int *)arg = run_all();
    usleep(50 * 1000); /* let the server notice closed client connections */
    uv_async_send(&S.stop);
    return NULL;
}

int main(void)
{
    int rc = 1;
    server_up(NULL);
    pthread_t client;
    if (pthread_create(&client, NULL, client_main, &rc) != 0)
        return 1;
    uv_run(&S.loop, UV_RUN_DEFAULT);
    pthread_join(client, NULL);
    server_down(NULL);
    return rc;
}
