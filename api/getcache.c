/* api/getcache.c — a thread's copies of rendered GET answers (getcache.h): a direct-mapped table,
 * a slot per hash of (key, recursive, sorted), the newest copy replacing the one it collides with.
 * One HTTP thread; no locks.
 */
#include "api/getcache.h"

#include <stdlib.h>
#include <string.h>

#include "store/hash.h"

struct slot {
    struct api_getcache_entry e;
    char *key;
    size_t key_len;
    uint64_t hash;
    bool recursive, sorted;
};

/* A target and its parse in one allocation: target bytes, then key (NUL), then token. */
struct target_slot {
    char *mem;
    size_t len; /* of the target */
    uint64_t hash;
    struct api_getcache_target tg;
};

struct api_getcache {
    struct slot slots[API_GETCACHE_SLOTS];
    struct target_slot targets[API_GETCACHE_SLOTS];
    size_t bytes; /* bodies, keys and targets held */
};

static uint64_t hash_req(const char *key, size_t key_len, bool recursive, bool sorted)
{
    return hash_of(hash_salt(HASH_INIT, (uint64_t)recursive << 1 | (uint64_t)sorted), key, key_len);
}

static void slot_clear(struct api_getcache *c, struct slot *s)
{
    if (s->key == NULL)
        return;
    c->bytes -= s->key_len + s->e.body_len;
    free(s->key);
    free((char *)s->e.body);
    memset(s, 0, sizeof(*s));
}

struct api_getcache *api_getcache_new(void)
{
    return calloc(1, sizeof(struct api_getcache));
}

static void target_clear(struct api_getcache *c, struct target_slot *s)
{
    if (s->mem == NULL)
        return;
    c->bytes -= s->len + s->tg.key_len + 1 + s->tg.token_len;
    free(s->mem);
    memset(s, 0, sizeof(*s));
}

void api_getcache_free(struct api_getcache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < API_GETCACHE_SLOTS; i++) {
        slot_clear(c, &c->slots[i]);
        target_clear(c, &c->targets[i]);
    }
    free(c);
}

bool api_getcache_target_get(struct api_getcache *c, const char *target, size_t len,
                             struct api_getcache_target *out)
{
    uint64_t h = hash_of(HASH_INIT, target, len);
    const struct target_slot *s = &c->targets[h & (API_GETCACHE_SLOTS - 1)];
    if (s->mem == NULL || s->hash != h || s->len != len || memcmp(s->mem, target, len) != 0)
        return false;
    *out = s->tg;
    return true;
}

void api_getcache_target_put(struct api_getcache *c, const char *target, size_t len,
                             const struct api_getcache_target *tg)
{
    uint64_t h = hash_of(HASH_INIT, target, len);
    struct target_slot *s = &c->targets[h & (API_GETCACHE_SLOTS - 1)];
    target_clear(c, s);
    size_t need = len + tg->key_len + 1 + tg->token_len;
    if (c->bytes + need > API_GETCACHE_BYTES || (s->mem = malloc(need)) == NULL)
        return;
    memcpy(s->mem, target, len);
    char *key = s->mem + len;
    memcpy(key, tg->key, tg->key_len);
    key[tg->key_len] = 0;
    memcpy(key + tg->key_len + 1, tg->token, tg->token_len);
    s->len = len;
    s->hash = h;
    s->tg = *tg;
    s->tg.key = key;
    s->tg.token = key + tg->key_len + 1;
    c->bytes += need;
}

const struct api_getcache_entry *api_getcache_get(struct api_getcache *c, const char *key, size_t key_len,
                                                  bool recursive, bool sorted)
{
    uint64_t h = hash_req(key, key_len, recursive, sorted);
    const struct slot *s = &c->slots[h & (API_GETCACHE_SLOTS - 1)];
    if (s->key == NULL || s->hash != h || s->key_len != key_len || s->recursive != recursive ||
        s->sorted != sorted || memcmp(s->key, key, key_len) != 0)
        return NULL;
    return &s->e;
}

void api_getcache_put(struct api_getcache *c, const char *key, size_t key_len, bool recursive, bool sorted,
                      const struct api_getcache_entry *e, char *body)
{
    uint64_t h = hash_req(key, key_len, recursive, sorted);
    struct slot *s = &c->slots[h & (API_GETCACHE_SLOTS - 1)];
    slot_clear(c, s);
    char *k = NULL;
    if (e->body_len > API_GETCACHE_MAX_BODY || c->bytes + key_len + e->body_len > API_GETCACHE_BYTES ||
        (k = malloc(key_len ? key_len : 1)) == NULL) {
        free(body);
        return;
    }
    memcpy(k, key, key_len);
    s->e = *e;
    s->e.body = body;
    s->key = k;
    s->key_len = key_len;
    s->hash = h;
    s->recursive = recursive;
    s->sorted = sorted;
    c->bytes += key_len + e->body_len;
}
