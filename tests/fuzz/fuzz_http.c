/* tests/fuzz/fuzz_http.c — fuzz target for the whole HTTP request path in one process: the real
 * service (svc_start: the framing guard, h2o's HTTP/1 parser, the api, a real store with its log
 * in a temp dir) on 127.0.0.1, and each input sent as the raw bytes of one connection (method,
 * path, query, headers, body, pipelined requests), the write side then closed and the answer read
 * to the end. A crash, a sanitizer report, a hang past the read timeout or a 5xx for anything but
 * capacity is a finding. A token from the recorded etcd exchange exists, so its seeds reach state.
 *
 * CI (plain main): `fuzz_http --mutate N tests/fuzz/corpus/http` (seeds: the recorded etcd 3.4
 * exchange, tests/fuzz/make_http_corpus.py, and one per framing/Host/_config/log/stream bug of
 * issue 11). Longer, with libFuzzer:
 *   CC=clang cmake -S . -B build-fuzz -DDISCOVERYD_FUZZ=ON -DDISCOVERYD_SANITIZE=ON &&
 *   cmake --build build-fuzz --target fuzz_http_libfuzzer &&
 *   build-fuzz/tests/fuzz/fuzz_http_libfuzzer -dict=tests/fuzz/http.dict -max_total_time=600 tests/fuzz/corpus/http
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "service/config.h"
#include "service/svc.h"
#ifndef DISCOVERYD_LIBFUZZER
#include "tests/fuzz/driver.h"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TRACE_TOKEN "4068fe4b-9f9f-4768-9ea2-6208e77632aa"

static struct svc *S;
static struct svc_config CFG;
static int PORT;
static char DIR_[64];
static unsigned long STATUS[6]; /* answers by class: none, 1xx..5xx */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void stop(void)
{
    if (getenv("FUZZ_HTTP_STATS") != NULL)
        fprintf(stderr, "fuzz_http: first answers: none %lu, 2xx %lu, 3xx %lu, 4xx %lu, 5xx %lu\n", STATUS[0],
                STATUS[2], STATUS[3], STATUS[4], STATUS[5]);
    if (S != NULL)
        svc_stop(S);
    S = NULL;
    nftw(DIR_, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* One connection: send everything, close our side, read the answer to the end. Returns the
 * status of the first response (0 if none). */
static int exchange(const uint8_t *data, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)PORT)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        fprintf(stderr, "fuzz_http: connect: %s\n", strerror(errno));
        abort();
    }
    for (size_t off = 0; off < size;) {
        ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the server refused and closed: fine */
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    char buf[65536], first[16] = "";
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EAGAIN) {
            fprintf(stderr, "fuzz_http: no end of the answer within 10 s\n");
            abort();
        }
        if (n <= 0)
            break;
        if (got < sizeof(first) - 1) {
            size_t k = (size_t)n < sizeof(first) - 1 - got ? (size_t)n : sizeof(first) - 1 - got;
            memcpy(first + got, buf, k);
            first[got + k] = '\0';
        }
        got += (size_t)n;
    }
    close(fd);
    int status = 0;
    if (strncmp(first, "HTTP/1.", 7) == 0)
        status = atoi(first + 9);
    return status;
}

static void start(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(DIR_, sizeof(DIR_), "%s/dd-fuzz-http-XXXXXX", base);
    if (mkdtemp(DIR_) == NULL)
        abort();
    char *argv[] = {"discoveryd", "--listen", "127.0.0.1:0", "--data-dir", DIR_, "--watch-timeout", "100ms",
                    "--threads", "1", "--log-level", "error", "--max-tokens", "200", "--new-rate", "1000000",
                    "--new-burst", "1000000", "--new-range-rate", "1000000", "--new-range-burst", "1000000",
                    "--token-write-rate", "1000000", "--token-write-burst", "1000000", "--snapshot-count", "500",
                    NULL};
    char *envp[] = {NULL};
    char err[512];
    if (svc_config_parse(&CFG, (int)(sizeof(argv) / sizeof(argv[0])) - 1, argv, envp, err, sizeof(err)) != 0 ||
        svc_start(&S, &CFG, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_http: cannot start: %s\n", err);
        abort();
    }
    const char *p = strrchr(svc_addresses(S), ':');
    PORT = p ? atoi(p + 1) : 0;
    atexit(stop);
    static const char mk[] = "PUT /v2/keys/discovery/" TRACE_TOKEN "/_config/size HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nvalue=3";
    exchange((const uint8_t *)mk, sizeof(mk) - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (S == NULL)
        start();
    int status = exchange(data, size);
    STATUS[status >= 100 && status < 600 ? status / 100 : 0]++;
    /* 5xx only for capacity (503: --max-tokens, a full store) */
    if (status >= 500 && status != 503) {
        fprintf(stderr, "fuzz_http: answered %d\n", status);
        abort();
    }
    return 0;
}

#ifndef DISCOVERYD_LIBFUZZER
static int make_corpus(const char *dir)
{
    fprintf(stderr, "fuzz_http: the seeds come from tests/fuzz/make_http_corpus.py %s\n", dir);
    return 1;
}

int main(int argc, char **argv)
{
    return fuzz_driver_main("fuzz_http", argc, argv, make_corpus);
}
#endif
