/* service/ratelimit.c — sharded, mutex-protected hash map of token buckets keyed by (class, key).
 *
 * Token-bucket semantics: a bucket starts full (burst tokens), refills at rate tokens per second
 * up to burst, and a request takes one token or is refused with the wait until one is there.
 * It is computed in the equivalent "theoretical arrival time" form (GCRA) in integer
 * microseconds: no floating-point refill that drifts below a whole token after many small steps.
 * With T = 1/rate, a request at now is allowed when max(tat, now) + T - now <= burst * T, and
 * then tat becomes max(tat, now) + T; the bucket is full exactly when tat <= now.
 * Why eviction is safe: a bucket that has refilled to burst behaves exactly like a fresh one, so
 * dropping it changes no answer. Each take looks at the two least recently used buckets of its
 * shard and drops them if full; a hard cap per shard drops the least recently used bucket when a
 * flood of distinct keys arrives (that client gets a fresh burst, the range limit still holds).
 * The hash is seeded at random so clients choosing token names cannot aim at one chain.
 */
#define _GNU_SOURCE
#include "service/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "store/hash.h"
#include "store/list.h"

#define RL_SHARDS 16
#define RL_DEFAULT_MAX 262144

struct rl_bucket {
    struct rl_bucket *chain;
    struct rl_bucket *lru_prev, *lru_next; /* lru_prev: more recently used */
    uint64_t hash;
    int64_t tat_us; /* theoretical arrival time of the next request */
    uint8_t cls;
    uint32_t key_len;
    unsigned char key[];
};

struct rl_shard {
    pthread_mutex_t mu;
    struct rl_bucket **table;
    size_t table_size; /* power of two */
    size_t count;
    struct rl_bucket *lru_head, *lru_tail;
};

struct rl {
    int64_t interval_us[RL_CLASSES]; /* T = 1/rate */
    int64_t window_us[RL_CLASSES];   /* burst * T */
    size_t max_per_shard;
    uint64_t seed;
    struct rl_shard shards[RL_SHARDS];
};

static uint64_t rl_hash(uint64_t seed, unsigned cls, const unsigned char *k, size_t n)
{
    return hash_of(hash_salt(seed, cls), k, n);
}

int rl_new(struct rl **out, const struct rl_config *cfg)
{
    struct rl *rl = calloc(1, sizeof(*rl));
    if (rl == NULL)
        return -1;
    for (int c = 0; c < RL_CLASSES; c++) {
        double rate = cfg->rules[c].rate > 0 ? cfg->rules[c].rate : 1e-6;
        double burst = cfg->rules[c].burst >= 1 ? cfg->rules[c].burst : 1;
        double t = 1e6 / rate;
        rl->interval_us[c] = t < 1 ? 1 : t > 1e15 ? (int64_t)1e15 : (int64_t)(t + 0.5);
        rl->window_us[c] = (int64_t)((double)rl->interval_us[c] * burst + 0.5);
    }
    size_t max = cfg->max_buckets ? cfg->max_buckets : RL_DEFAULT_MAX;
    rl->max_per_shard = max / RL_SHARDS ? max / RL_SHARDS : 1;
    if (getrandom(&rl->seed, sizeof(rl->seed), 0) != (ssize_t)sizeof(rl->seed))
        rl->seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < RL_SHARDS; i++) {
        struct rl_shard *s = &rl->shards[i];
        pthread_mutex_init(&s->mu, NULL);
        s->table_size = 64;
        s->table = calloc(s->table_size, sizeof(*s->table));
        if (s->table == NULL) {
            rl_free(rl);
            return -1;
        }
    }
    *out = rl;
    return 0;
}

void rl_free(struct rl *rl)
{
    if (rl == NULL)
        return;
    for (int i = 0; i < RL_SHARDS; i++) {
        struct rl_shard *s = &rl->shards[i];
        for (struct rl_bucket *b = s->lru_head, *n; b != NULL; b = n) {
            n = b->lru_next;
            free(b);
        }
        free(s->table);
        pthread_mutex_destroy(&s->mu);
    }
    free(rl);
}

static void lru_unlink(struct rl_shard *s, struct rl_bucket *b)
{
    LIST_UNLINK_T(s->lru_head, s->lru_tail, b, lru_prev, lru_next);
}

static void lru_push_head(struct rl_shard *s, struct rl_bucket *b)
{
    LIST_PREPEND_T(s->lru_head, s->lru_tail, b, lru_prev, lru_next);
}

static void bucket_remove(struct rl_shard *s, struct rl_bucket *b)
{
    struct rl_bucket **pp = &s->table[b->hash & (s->table_size - 1)];
    while (*pp != b)
        pp = &(*pp)->chain;
    *pp = b->chain;
    lru_unlink(s, b);
    s->count--;
    free(b);
}

static bool is_full(const struct rl_bucket *b, int64_t now_us)
{
    return b->tat_us <= now_us;
}

/* Doubling keeps chains short; a failed grow only costs speed, so it is not an error. */
static void maybe_grow(struct rl_shard *s)
{
    if (s->count <= s->table_size)
        return;
    size_t n = s->table_size * 2;
    struct rl_bucket **t = calloc(n, sizeof(*t));
    if (t == NULL)
        return;
    for (size_t i = 0; i < s->table_size; i++)
        for (struct rl_bucket *b = s->table[i], *next; b != NULL; b = next) {
            next = b->chain;
            b->chain = t[b->hash & (n - 1)];
            t[b->hash & (n - 1)] = b;
        }
    free(s->table);
    s->table = t;
    s->table_size = n;
}

bool rl_take(struct rl *rl, enum api_rl_class cls, const void *key, size_t key_len, uint64_t now_ms,
             uint32_t *retry_after)
{
    if ((unsigned)cls >= RL_CLASSES)
        return true;
    int64_t now_us = (int64_t)now_ms * 1000;
    uint64_t h = rl_hash(rl->seed, (unsigned)cls, key, key_len);
    struct rl_shard *s = &rl->shards[h % RL_SHARDS];
    bool allowed;

    pthread_mutex_lock(&s->mu);
    struct rl_bucket *b = s->table[h & (s->table_size - 1)];
    while (b != NULL && !(b->hash == h && b->cls == (uint8_t)cls && b->key_len == key_len &&
                          memcmp(b->key, key, key_len) == 0))
        b = b->chain;
    if (b == NULL) {
        if (s->count >= rl->max_per_shard && s->lru_tail != NULL)
            bucket_remove(s, s->lru_tail);
        b = malloc(sizeof(*b) + key_len);
        if (b == NULL) {
            /* Out of memory: let the request through rather than refuse everyone. */
            pthread_mutex_unlock(&s->mu);
            return true;
        }
        memset(b, 0, sizeof(*b));
        b->hash = h;
        b->cls = (uint8_t)cls;
        b->key_len = (uint32_t)key_len;
        memcpy(b->key, key, key_len);
        b->tat_us = now_us; /* full */
        size_t slot = h & (s->table_size - 1);
        b->chain = s->table[slot];
        s->table[slot] = b;
        s->count++;
        lru_push_head(s, b);
        maybe_grow(s);
    } else {
        lru_unlink(s, b);
        lru_push_head(s, b);
    }
    int64_t next = (b->tat_us > now_us ? b->tat_us : now_us) + rl->interval_us[cls];
    int64_t excess = next - now_us - rl->window_us[cls];
    if (excess <= 0) {
        b->tat_us = next;
        allowed = true;
    } else {
        int64_t secs = (excess + 999999) / 1000000;
        *retry_after = secs < 1 ? 1 : secs > 86400 ? 86400 : (uint32_t)secs;
        allowed = false;
    }
    for (int i = 0; i < 2 && s->lru_tail != NULL && s->lru_tail != b; i++) {
        if (!is_full(s->lru_tail, now_us))
            break;
        bucket_remove(s, s->lru_tail);
    }
    pthread_mutex_unlock(&s->mu);
    return allowed;
}

size_t rl_size(struct rl *rl)
{
    size_t n = 0;
    for (int i = 0; i < RL_SHARDS; i++) {
        pthread_mutex_lock(&rl->shards[i].mu);
        n += rl->shards[i].count;
        pthread_mutex_unlock(&rl->shards[i].mu);
    }
    return n;
}

bool rl_take_now(struct rl *rl, enum api_rl_class cls, const void *key, size_t key_len, uint32_t *retry_after)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    return rl_take(rl, cls, key, key_len, now_ms, retry_after);
}

enum api_rate_answer rl_api_rate(void *arg, enum api_rl_class cls, const void *key, size_t key_len,
                                 uint32_t *retry_after, struct api_rate_wait *wait)
{
    return rl_take_now(arg, cls, key, key_len, retry_after) ? API_RATE_ALLOW : API_RATE_DENY;
}
