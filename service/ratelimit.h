/* service/ratelimit.h — per-process token buckets for the api's rate limits (the rules:
 * docs/protocol.md#rate-limits).
 *
 * One struct rl per process, created by svc before the HTTP threads start and freed after they
 * joined. rl_take / rl_api_rate are called from any HTTP thread: the map is split into shards,
 * each behind its own mutex, and never blocks on anything but that mutex. Memory stays bounded:
 * a bucket that has refilled to its burst is indistinguishable from a missing one and is dropped,
 * and each shard holds at most a fixed number of buckets (least recently used goes first).
 * It is also the fallback of the PostgreSQL-backed limiter (service/pgrl.h).
 */
#ifndef DISCOVERYD_SERVICE_RATELIMIT_H
#define DISCOVERYD_SERVICE_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "api/api.h"

#define RL_CLASSES 3 /* enum api_rl_class */

struct rl_rule {
    double rate;  /* tokens per second, > 0 */
    double burst; /* bucket capacity, >= 1 */
};

struct rl_config {
    struct rl_rule rules[RL_CLASSES]; /* indexed by enum api_rl_class */
    size_t max_buckets;               /* total cap across shards; 0 = default (262144) */
};

struct rl;

/* 0, or -1 (ENOMEM). */
int rl_new(struct rl **out, const struct rl_config *cfg);
void rl_free(struct rl *rl);

/* Take one token from the bucket (cls, key) at now_ms (a monotonic clock). true when allowed;
 * otherwise false and the whole seconds until a token is available in *retry_after (>= 1). */
bool rl_take(struct rl *rl, enum api_rl_class cls, const void *key, size_t key_len, uint64_t now_ms,
             uint32_t *retry_after);

/* Buckets currently held (for tests and /metrics). */
size_t rl_size(struct rl *rl);

/* rl_take at CLOCK_MONOTONIC now. */
bool rl_take_now(struct rl *rl, enum api_rl_class cls, const void *key, size_t key_len,
                 uint32_t *retry_after);

/* api_rate_fn: arg is the struct rl; always decides at once (never PENDING). */
enum api_rate_answer rl_api_rate(void *arg, enum api_rl_class cls, const void *key, size_t key_len,
                                 uint32_t *retry_after, struct api_rate_wait *wait);

#endif
