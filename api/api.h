/* api/api.h — the HTTP surface of discoveryd: routing, /new, the v2 keys protocol (short and
 * private forms), /status, /health, /metrics, /robots.txt.
 *
 * service/ creates one struct api per process (api_new) and, on each HTTP thread, one
 * struct api_thread (api_thread_init) before that thread's loop runs; every request h2o hands
 * to that thread goes to api_handle(). api/ never touches Raft: it talks to the store only
 * through store/node.h (writes, watches, quorum barriers) and reads applied state under
 * node_rdlock(). Responses are always sent from the thread that owns the request.
 */
#ifndef DISCOVERYD_API_API_H
#define DISCOVERYD_API_API_H

#include <stdbool.h>
#include <stdint.h>
#include <h2o.h>
#include <sys/socket.h>
#include "store/node.h"

/* Rate-limit classes the api asks about (docs/protocol.md#rate-limits). */
enum api_rl_class {
    API_RL_NEW_ADDR,   /* token creation per client address (IPv4 /32, IPv6 /64) */
    API_RL_NEW_RANGE,  /* token creation per address range (IPv4 /24, IPv6 /48) */
    API_RL_TOKEN_WRITE /* writes per token */
};

/* A limiter's answer. PENDING: asked later through api_rate_answer; UNKNOWN (only through
 * api_rate_answer): the limiter could not decide, the api asks again with wait == NULL. */
enum api_rate_answer { API_RATE_ALLOW, API_RATE_DENY, API_RATE_PENDING, API_RATE_UNKNOWN };

/* A request waiting for a limiter's answer; owned by api/, opaque to the limiter. */
struct api_rate_wait;

/* Decides one request against a bucket. key is an address prefix (16 bytes, IPv4 mapped into
 * ::ffff:0:0/96 then masked) or a token name. With wait == NULL the limiter decides now: ALLOW,
 * or DENY with the seconds to wait in *retry_after (>= 1). With wait != NULL it may instead
 * return PENDING and later call api_rate_answer(wait, ...) exactly once, from any thread; the
 * api waits at most cfg.rate_timeout_ms for it, then asks again with wait == NULL (the late
 * answer is then dropped). Must not block. Called on HTTP threads. */
typedef enum api_rate_answer (*api_rate_fn)(void *arg, enum api_rl_class cls, const void *key, size_t key_len,
                                            uint32_t *retry_after, struct api_rate_wait *wait);

/* The answer to a PENDING question: ALLOW, DENY (retry_after >= 1) or UNKNOWN. Any thread, once
 * per PENDING; wait must not be touched afterwards. It hops to the HTTP thread that asked. */
void api_rate_answer(struct api_rate_wait *wait, enum api_rate_answer a, uint32_t retry_after);

struct api_config {
    const char *public_url;      /* base URL /new prints ("https://disc.example.com"); NULL: "http://" + Host */
    uint32_t max_size;           /* --max-size, default 15 */
    uint32_t surplus;            /* --surplus, default 16: a token holds at most size+surplus members */
    uint32_t max_value_bytes;    /* --max-value, default 4096 */
    uint32_t max_key_bytes;      /* --max-key, default 255 (one path component) */
    uint32_t max_body_bytes;     /* --max-body, default 65536 */
    int64_t token_ttl_ms;        /* --token-ttl, default 168h (for /status "expires") */
    uint64_t max_tokens;         /* --max-tokens: live tokens; beyond, creation is 503 (0: no cap) */
    api_rate_fn rate;            /* NULL: no limits */
    void *rate_arg;
    uint32_t rate_timeout_ms;    /* longest wait for a PENDING answer; default 200 */
    /* The client's address for rate limits and the parked-watch cap (NULL: the socket peer).
     * service/ sets it to honour X-Forwarded-For when --trusted-proxy names the peer. Fills out
     * and *len; returns 0, or -1 when unknown. Called on HTTP threads; must not block. */
    int (*client_addr)(void *arg, h2o_req_t *req, struct sockaddr_storage *out, socklen_t *len);
    void *client_addr_arg;
    /* Extra /metrics lines (e.g. the rate limiter's PostgreSQL state), appended as given; NULL:
     * none. write() may be called any number of times. HTTP threads; must not block. */
    void (*metrics_extra)(void *arg, void (*write)(void *wctx, const char *s, size_t n), void *wctx);
    void *metrics_extra_arg;
    /* Why this node is degraded though it serves (e.g. rate limits fell back to per process):
     * true with a one-line reason in reason; false when it is not. /health then still answers
     * 200 but says so. NULL: never degraded. HTTP threads; must not block. */
    bool (*degraded)(void *arg, char *reason, size_t len);
    void *degraded_arg;
};
void api_config_defaults(struct api_config *cfg);

struct api;
/* 0, or -1 (ENOMEM). cfg is copied (strings included). */
int api_new(struct api **out, const struct api_config *cfg, struct node *node);
void api_free(struct api *api);

/* Per HTTP thread state. Lives on that thread; init before its loop runs, dispose after the
 * loop stopped and every op it submitted has completed. */
struct api_thread {
    struct api *api;
    h2o_context_t *ctx;
    void *priv; /* the queue that brings node completions back to this thread, counters, ... */
};
int api_thread_init(struct api_thread *t, struct api *api, h2o_context_t *ctx);
void api_thread_dispose(struct api_thread *t);

/* Handle one request (any path, any method). Always answers, now or later. */
int api_handle(struct api_thread *t, h2o_req_t *req);

/* The one escaping of log text: copies src[0..n) to dst (cap >= 1, always NUL-terminated), each
 * control byte (< 0x20, 0x7f) as "\xNN", so client text in a log line (keys, values, names, Host,
 * User-Agent) cannot move the cursor, recolour a terminal or forge a line. Truncates at a whole
 * character. Returns the length written. Any thread. */
size_t api_log_escape(char *dst, size_t cap, const char *src, size_t n);

/* Log lines go through this; service/ sets it (default: stderr with a timestamp). Both sinks pass
 * the formatted line through api_log_escape. */
extern void (*api_log)(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
