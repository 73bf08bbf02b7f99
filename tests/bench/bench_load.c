/* tests/bench/bench_load.c — a count- and time-bounded HTTP/1.1 load generator for the benchmarks
 * (snap.sh, restart.sh): member registrations PUT over N keep-alive loopback connections, closed
 * loop (one request in flight per connection), every request's start time and latency recorded.
 * Used both to seed a store with many registrations fast and to measure a window whose latencies
 * are later split by time (before, during, after a snapshot). Not a test: nothing is asserted.
 *
 * bench_load --port P [--conns 64] --count N [--seconds 120] [--tokens 10000] [--prefix bench]
 *            [--first K] [--lat FILE] [--mode member|new|size] [--hex-ids]
 * Request k (k = first .. first+count-1), by --mode:
 *   member (default): PUT /v2/keys/discovery/<prefix>-<k % tokens>/m<k>?prevExist=false with body
 *           value=name%3Dhttp%3A%2F%2F127.0.0.1%3A2380 (--hex-ids: the id is k as 16 hex digits, the
 *           form etcd's member IDs take, instead of m<k>);
 *   new:    GET /new?size=3 (a token minted by the server; memory.py);
 *   size:   PUT /v2/keys/discovery/<prefix>-<k>/_config/size?prevExist=false with body value=3 (a
 *           token as the upstream discovery server creates one in etcd).
 * Stops after count requests or seconds.
 * stdout, one line: sent done ok2xx non2xx unanswered elapsed_s req_per_s p50_ms p99_ms max_ms
 * --lat FILE: one line per answered request, "start_epoch_us latency_us status".
 * --get PATH: every request is instead GET PATH (with an etcd member's User-Agent and Accept-Encoding),
 *             e.g. the token-dir read, for counting a server's instructions per GET under callgrind.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_CAP 65536

struct conn {
    int fd;
    char req[512];
    size_t req_len, req_off;
    char buf[BUF_CAP];
    size_t buf_len;
    uint64_t t0; /* monotonic ns when the request was started */
    bool busy;
};

struct rec {
    uint64_t start_us; /* epoch µs */
    uint32_t lat_us;
    uint16_t status;
};

static uint64_t now_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int port, nconns = 64, ntokens = 10000;
static long long count, first;
static double seconds = 120;
static const char *prefix = "bench", *lat_path, *get_path, *mode = "member";
static bool hex_ids;
static long long next_k, sent, done, ok2xx, non2xx;
static struct rec *recs;
static uint64_t mono0, real0;

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool start_req(struct conn *c)
{
    if (next_k >= first + count)
        return false;
    long long k = next_k++;
    static const char body[] = "value=name%3Dhttp%3A%2F%2F127.0.0.1%3A2380";
    int n;
    if (get_path != NULL)
        n = snprintf(c->req, sizeof(c->req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: Go-http-client/1.1\r\n"
                     "Accept-Encoding: gzip\r\n\r\n",
                     get_path, port);
    else if (!strcmp(mode, "new"))
        n = snprintf(c->req, sizeof(c->req), "GET /new?size=3 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", port);
    else if (!strcmp(mode, "size"))
        n = snprintf(c->req, sizeof(c->req),
                     "PUT /v2/keys/discovery/%s-%lld/_config/size?prevExist=false HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nvalue=3",
                     prefix, k, port);
    else if (hex_ids)
        n = snprintf(c->req, sizeof(c->req),
                     "PUT /v2/keys/discovery/%s-%lld/%016llx?prevExist=false HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n\r\n%s",
                     prefix, k % ntokens, (unsigned long long)k, port, sizeof(body) - 1, body);
    else
        n = snprintf(c->req, sizeof(c->req),
                     "PUT /v2/keys/discovery/%s-%lld/m%lld?prevExist=false HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n\r\n%s",
                     prefix, k % ntokens, k, port, sizeof(body) - 1, body);
    c->req_len = (size_t)n;
    c->req_off = 0;
    c->t0 = now_ns(CLOCK_MONOTONIC);
    c->busy = true;
    sent++;
    return true;
}

static void flush_req(struct conn *c)
{
    while (c->req_off < c->req_len) {
        ssize_t w = write(c->fd, c->req + c->req_off, c->req_len - c->req_off);
        if (w < 0)
            return; /* EAGAIN (or an error the read side will see) */
        c->req_off += (size_t)w;
    }
}

/* Length of one complete response at the start of buf, 0 if incomplete, -1 if malformed. */
static long response_len(const char *buf, size_t len, int *status)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (end == NULL)
        return len >= BUF_CAP ? -1 : 0;
    size_t hlen = (size_t)(end - buf) + 4;
    if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0)
        return -1;
    *status = atoi(buf + 9);
    long clen = -1;
    bool chunked = false;
    for (const char *p = buf; p < end;) {
        const char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
        if (eol == NULL)
            break;
        if ((size_t)(eol - p) > 15 && strncasecmp(p, "content-length:", 15) == 0)
            clen = atol(p + 15);
        else if ((size_t)(eol - p) > 18 && strncasecmp(p, "transfer-encoding:", 18) == 0 &&
                 memmem(p, (size_t)(eol - p), "chunked", 7) != NULL)
            chunked = true;
        p = eol + 2;
    }
    if (!chunked)
        return (clen < 0 || hlen + (size_t)clen > len) ? (clen < 0 ? -1 : 0) : (long)(hlen + (size_t)clen);
    size_t off = hlen;
    for (;;) { /* chunk-size CRLF data CRLF ... 0 CRLF CRLF (no trailers expected) */
        const char *eol = memmem(buf + off, len - off, "\r\n", 2);
        if (eol == NULL)
            return 0;
        long sz = strtol(buf + off, NULL, 16);
        off = (size_t)(eol - buf) + 2;
        if (sz == 0)
            return off + 2 <= len ? (long)(off + 2) : 0;
        off += (size_t)sz + 2;
        if (off > len)
            return 0;
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i += 2) {
        if (!strcmp(argv[i], "--hex-ids")) {
            hex_ids = true;
            i--;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_load: %s needs a value\n", argv[i]);
            return 2;
        }
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--port"))
            port = atoi(v);
        else if (!strcmp(k, "--conns"))
            nconns = atoi(v);
        else if (!strcmp(k, "--count"))
            count = atoll(v);
        else if (!strcmp(k, "--seconds"))
            seconds = atof(v);
        else if (!strcmp(k, "--tokens"))
            ntokens = atoi(v);
        else if (!strcmp(k, "--prefix"))
            prefix = v;
        else if (!strcmp(k, "--first"))
            first = atoll(v);
        else if (!strcmp(k, "--lat"))
            lat_path = v;
        else if (!strcmp(k, "--get"))
            get_path = v;
        else if (!strcmp(k, "--mode"))
            mode = v;
        else {
            fprintf(stderr, "bench_load: unknown option %s\n", k);
            return 2;
        }
    }
    if (get_path != NULL && (get_path[0] != '/' || strlen(get_path) > 400)) {
        fprintf(stderr, "bench_load: --get wants an absolute path of at most 400 bytes\n");
        return 2;
    }
    if (port <= 0 || nconns <= 0 || nconns > 1024 || count <= 0 || count > 100000000 || ntokens <= 0 ||
        seconds <= 0 || seconds > 3600 ||
        (strcmp(mode, "member") && strcmp(mode, "new") && strcmp(mode, "size"))) {
        fprintf(stderr, "usage: bench_load --port P --count N [--conns 1..1024] [--seconds S<=3600] "
                        "[--tokens N] [--prefix P] [--first K] [--lat FILE] [--get PATH] [--mode member|new|size] [--hex-ids]\n");
        return 2;
    }
    recs = calloc((size_t)count, sizeof(*recs));
    struct conn *cs = calloc((size_t)nconns, sizeof(*cs));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (recs == NULL || cs == NULL || ep < 0) {
        perror("bench_load");
        return 1;
    }
    next_k = first;
    mono0 = now_ns(CLOCK_MONOTONIC);
    real0 = now_ns(CLOCK_REALTIME);
    uint64_t deadline = mono0 + (uint64_t)(seconds * 1e9);
    int live = 0;
    for (int i = 0; i < nconns; i++) {
        cs[i].fd = dial();
        if (cs[i].fd < 0) {
            perror("bench_load: connect");
            return 1;
        }
        struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &e);
        if (start_req(&cs[i]))
            live++;
    }
    struct epoll_event evs[256];
    while (live > 0 && now_ns(CLOCK_MONOTONIC) < deadline) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c->busy)
                continue;
            if (evs[i].events & EPOLLOUT)
                flush_req(c);
            if (!(evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                continue;
            for (;;) {
                ssize_t r = read(c->fd, c->buf + c->buf_len, BUF_CAP - c->buf_len);
                if (r > 0) {
                    c->buf_len += (size_t)r;
                    int status = 0;
                    long rl = response_len(c->buf, c->buf_len, &status);
                    if (rl == 0)
                        continue;
                    if (rl < 0) {
                        r = 0; /* malformed: treat as a dead connection */
                    } else {
                        uint64_t t1 = now_ns(CLOCK_MONOTONIC);
                        struct rec *rc = &recs[done++];
                        rc->start_us = (real0 + (c->t0 - mono0)) / 1000;
                        rc->lat_us = (uint32_t)((t1 - c->t0) / 1000);
                        rc->status = (uint16_t)status;
                        if (status >= 200 && status < 300)
                            ok2xx++;
                        else
                            non2xx++;
                        memmove(c->buf, c->buf + rl, c->buf_len - (size_t)rl);
                        c->buf_len -= (size_t)rl;
                        c->busy = false;
                        if (t1 < deadline && start_req(c))
                            flush_req(c);
                        else
                            live--;
                        break;
                    }
                }
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                    /* the request in flight is lost (counted as unanswered); the connection is not reused */
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    c->fd = -1;
                    c->busy = false;
                    live--;
                    break;
                }
                if (r < 0)
                    break;
            }
        }
    }
    double el = (double)(now_ns(CLOCK_MONOTONIC) - mono0) / 1e9;
    uint32_t *lat = malloc((size_t)(done ? done : 1) * sizeof(*lat));
    for (long long i = 0; i < done; i++)
        lat[i] = recs[i].lat_us;
    qsort(lat, (size_t)done, sizeof(*lat), cmp_u32);
#define PCT(p) (done ? lat[(size_t)((double)(done - 1) * (p))] / 1000.0 : 0.0)
    printf("%lld %lld %lld %lld %lld %.3f %.1f %.3f %.3f %.3f\n", sent, done, ok2xx, non2xx, sent - done, el,
           done / el, PCT(0.5), PCT(0.99), PCT(1.0));
    if (lat_path) {
        FILE *f = fopen(lat_path, "w");
        if (f == NULL) {
            perror(lat_path);
            return 1;
        }
        for (long long i = 0; i < done; i++)
            fprintf(f, "%llu %u %u\n", (unsigned long long)recs[i].start_us, recs[i].lat_us, recs[i].status);
        fclose(f);
    }
    for (int i = 0; i < nconns; i++)
        if (cs[i].fd >= 0)
            close(cs[i].fd);
    close(ep);
    free(lat);
    free(cs);
    free(recs);
    return 0;
}
