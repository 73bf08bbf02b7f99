/* store/raft/codec.c — the wire and disk encodings of messages, entries, hard state and
 * configurations: little-endian, a version byte first, every length checked against what remains.
 *
 * Decoding never trusts a count: an entry count or a data length larger than the bytes left is
 * RAFT_EMALFORMED before anything is allocated, and trailing bytes are an error too.
 */
#include <stdlib.h>
#include "store/raft/internal.h"

#define CODEC_VERSION 1
#define CONF_CTX_VERSION 2 /* a configuration entry that carries the application's context */
#define MSG_HEADER (4 + 8 * 8 + 4)
#define ENTRY_HEADER (8 + 8 + 1 + 4)
#define FLAG_REJECT 1u
#define FLAG_TRANSFER 2u

struct wbuf {
    uint8_t *p, *end;
};
struct rbuf {
    const uint8_t *p, *end;
    bool bad;
};

static void put8(struct wbuf *w, uint8_t v)
{
    *w->p++ = v;
}
static void put32(struct wbuf *w, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        *w->p++ = (uint8_t)(v >> (8 * i));
}
static void put64(struct wbuf *w, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        *w->p++ = (uint8_t)(v >> (8 * i));
}
static void putbytes(struct wbuf *w, const uint8_t *d, size_t n)
{
    if (n > 0)
        memcpy(w->p, d, n);
    w->p += n;
}

static bool need(struct rbuf *b, size_t n)
{
    if (b->bad || (size_t)(b->end - b->p) < n) {
        b->bad = true;
        return false;
    }
    return true;
}
static uint8_t get8(struct rbuf *b)
{
    if (!need(b, 1))
        return 0;
    return *b->p++;
}
static uint32_t get32(struct rbuf *b)
{
    if (!need(b, 4))
        return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)(*b->p++) << (8 * i);
    return v;
}
static uint64_t get64(struct rbuf *b)
{
    if (!need(b, 8))
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)(*b->p++) << (8 * i);
    return v;
}
static const uint8_t *getbytes(struct rbuf *b, uint64_t n)
{
    if (n > (uint64_t)(b->end - b->p)) {
        b->bad = true;
        return NULL;
    }
    const uint8_t *d = b->p;
    b->p += n;
    return d;
}

/* ---- configuration ---- */

size_t raft_conf_size(const struct raft_conf *c)
{
    return 2 + 8 * (size_t)c->n;
}

size_t raft_conf_size_ctx(const struct raft_conf *c, size_t ctx_len)
{
    return ctx_len ? 2 + 8 * (size_t)c->n + 4 + ctx_len : raft_conf_size(c);
}

int raft_conf_encode(const struct raft_conf *c, uint8_t *buf, size_t cap, size_t *len)
{
    return raft_conf_encode_ctx(c, NULL, 0, buf, cap, len);
}

/* Without a context: version 1, [n][ids]. With one: version 2, [n][ids][u32 ctx_len][ctx]. */
int raft_conf_encode_ctx(const struct raft_conf *c, const void *ctx, size_t ctx_len, uint8_t *buf, size_t cap,
                         size_t *len)
{
    if (c->n == 0 || c->n > RAFT_MAX_NODES || ctx_len > RAFT_MAX_CONF_CTX)
        return RAFT_EINVAL;
    if (cap < raft_conf_size_ctx(c, ctx_len))
        return RAFT_ETOOSMALL;
    struct wbuf w = {buf, buf + cap};
    put8(&w, ctx_len ? CONF_CTX_VERSION : CODEC_VERSION);
    put8(&w, (uint8_t)c->n);
    for (uint32_t i = 0; i < c->n; i++)
        put64(&w, c->ids[i]);
    if (ctx_len) {
        put32(&w, (uint32_t)ctx_len);
        putbytes(&w, ctx, ctx_len);
    }
    *len = (size_t)(w.p - buf);
    return 0;
}

static int conf_read(struct rbuf *b, struct raft_conf *c, bool allow_empty)
{
    uint32_t n = get8(b);
    if (b->bad || n > RAFT_MAX_NODES || (n == 0 && !allow_empty))
        return RAFT_EMALFORMED;
    c->n = n;
    for (uint32_t i = 0; i < n; i++) {
        c->ids[i] = get64(b);
        if (b->bad || c->ids[i] == 0)
            return RAFT_EMALFORMED;
        for (uint32_t j = 0; j < i; j++)
            if (c->ids[j] == c->ids[i])
                return RAFT_EMALFORMED;
    }
    return 0;
}

int raft_conf_decode(const uint8_t *buf, size_t len, struct raft_conf *c)
{
    const uint8_t *ctx;
    size_t ctx_len;
    return raft_conf_decode_ctx(buf, len, c, &ctx, &ctx_len);
}

int raft_conf_decode_ctx(const uint8_t *buf, size_t len, struct raft_conf *c, const uint8_t **ctx,
                         size_t *ctx_len)
{
    struct rbuf b = {buf, buf + len, false};
    if (buf == NULL || len < 1)
        return RAFT_EMALFORMED;
    uint8_t version = get8(&b);
    if (version != CODEC_VERSION && version != CONF_CTX_VERSION)
        return RAFT_EVERSION;
    struct raft_conf tmp;
    int rv = conf_read(&b, &tmp, false);
    if (rv != 0)
        return rv;
    const uint8_t *cp = NULL;
    uint32_t cl = 0;
    if (version == CONF_CTX_VERSION) {
        cl = get32(&b);
        if (b.bad || cl == 0 || cl > RAFT_MAX_CONF_CTX || cl != (size_t)(b.end - b.p))
            return RAFT_EMALFORMED;
        cp = b.p;
        b.p += cl;
    }
    if (b.p != b.end)
        return RAFT_EMALFORMED;
    *c = tmp;
    *ctx = cp;
    *ctx_len = cl;
    return 0;
}

/* ---- hard state ---- */

int raft_hard_state_encode(const struct raft_hard_state *hs, uint8_t *buf, size_t cap, size_t *len)
{
    if (cap < RAFT_HARD_STATE_SIZE)
        return RAFT_ETOOSMALL;
    struct wbuf w = {buf, buf + cap};
    put8(&w, CODEC_VERSION);
    put8(&w, 0);
    put64(&w, hs->term);
    put64(&w, hs->vote);
    put64(&w, hs->commit);
    *len = RAFT_HARD_STATE_SIZE;
    return 0;
}

int raft_hard_state_decode(const uint8_t *buf, size_t len, struct raft_hard_state *hs)
{
    if (len != RAFT_HARD_STATE_SIZE)
        return RAFT_EMALFORMED;
    struct rbuf b = {buf, buf + len, false};
    if (get8(&b) != CODEC_VERSION)
        return RAFT_EVERSION;
    if (get8(&b) != 0)
        return RAFT_EMALFORMED;
    hs->term = get64(&b);
    hs->vote = get64(&b);
    hs->commit = get64(&b);
    return 0;
}

/* ---- entries ---- */

static bool entry_type_ok(uint8_t t)
{
    return t == RAFT_ENTRY_NORMAL || t == RAFT_ENTRY_NOOP || t == RAFT_ENTRY_CONF;
}

size_t raft_entry_size(const struct raft_entry *e)
{
    return 1 + ENTRY_HEADER + e->len;
}

static void entry_write(struct wbuf *w, const struct raft_entry *e)
{
    put64(w, e->term);
    put64(w, e->index);
    put8(w, e->type);
    put32(w, e->len);
    putbytes(w, e->data, e->len);
}

static int entry_read(struct rbuf *b, struct raft_entry *e)
{
    e->term = get64(b);
    e->index = get64(b);
    e->type = get8(b);
    e->len = get32(b);
    e->data = (uint8_t *)getbytes(b, e->len);
    if (b->bad || !entry_type_ok(e->type) || e->term == 0 || e->index == 0)
        return RAFT_EMALFORMED;
    if (e->len == 0)
        e->data = NULL;
    return 0;
}

int raft_entry_encode(const struct raft_entry *e, uint8_t *buf, size_t cap, size_t *len)
{
    if (cap < raft_entry_size(e))
        return RAFT_ETOOSMALL;
    struct wbuf w = {buf, buf + cap};
    put8(&w, CODEC_VERSION);
    entry_write(&w, e);
    *len = (size_t)(w.p - buf);
    return 0;
}

int raft_entry_decode(const uint8_t *buf, size_t len, struct raft_entry *e)
{
    struct rbuf b = {buf, buf + len, false};
    if (len < 1)
        return RAFT_EMALFORMED;
    if (get8(&b) != CODEC_VERSION)
        return RAFT_EVERSION;
    struct raft_entry tmp;
    int rv = entry_read(&b, &tmp);
    if (rv != 0)
        return rv;
    if (b.p != b.end)
        return RAFT_EMALFORMED;
    *e = tmp;
    return 0;
}

/* ---- messages ---- */

size_t raft_msg_size(const struct raft_message *m)
{
    size_t n = MSG_HEADER;
    for (uint32_t i = 0; i < m->n_entries; i++)
        n += ENTRY_HEADER + m->entries[i].len;
    if (m->type == RAFT_MSG_SNAPSHOT)
        n += 8 + 8 + 1 + 8 * (size_t)m->snapshot.meta.conf.n + 8 + (size_t)m->snapshot.len;
    return n;
}

int raft_msg_encode(const struct raft_message *m, uint8_t *buf, size_t cap, size_t *len)
{
    if (m->type < 1 || m->type > RAFT_MSG_TYPE_MAX || m->snapshot.meta.conf.n > RAFT_MAX_NODES)
        return RAFT_EINVAL;
    if (cap < raft_msg_size(m))
        return RAFT_ETOOSMALL;
    struct wbuf w = {buf, buf + cap};
    put8(&w, CODEC_VERSION);
    put8(&w, m->type);
    put8(&w, (uint8_t)((m->reject ? FLAG_REJECT : 0) | (m->transfer ? FLAG_TRANSFER : 0)));
    put8(&w, 0);
    put64(&w, m->from);
    put64(&w, m->to);
    put64(&w, m->term);
    put64(&w, m->index);
    put64(&w, m->log_term);
    put64(&w, m->commit);
    put64(&w, m->hint);
    put64(&w, m->ctx);
    put32(&w, m->n_entries);
    for (uint32_t i = 0; i < m->n_entries; i++)
        entry_write(&w, &m->entries[i]);
    if (m->type == RAFT_MSG_SNAPSHOT) {
        const struct raft_snapshot *s = &m->snapshot;
        put64(&w, s->meta.index);
        put64(&w, s->meta.term);
        put8(&w, (uint8_t)s->meta.conf.n);
        for (uint32_t i = 0; i < s->meta.conf.n; i++)
            put64(&w, s->meta.conf.ids[i]);
        put64(&w, s->len);
        putbytes(&w, s->data, (size_t)s->len);
    }
    *len = (size_t)(w.p - buf);
    return 0;
}

int raft_msg_decode(const uint8_t *buf, size_t len, struct raft_message *m, const struct raft_alloc *a)
{
    memset(m, 0, sizeof(*m));
    if (buf == NULL || len < MSG_HEADER)
        return RAFT_EMALFORMED;
    struct rbuf b = {buf, buf + len, false};
    if (get8(&b) != CODEC_VERSION)
        return RAFT_EVERSION;
    m->type = get8(&b);
    uint8_t flags = get8(&b);
    uint8_t reserved = get8(&b);
    if (m->type < 1 || m->type > RAFT_MSG_TYPE_MAX || (flags & ~(FLAG_REJECT | FLAG_TRANSFER)) || reserved)
        return RAFT_EMALFORMED;
    m->reject = flags & FLAG_REJECT;
    m->transfer = flags & FLAG_TRANSFER;
    m->from = get64(&b);
    m->to = get64(&b);
    m->term = get64(&b);
    m->index = get64(&b);
    m->log_term = get64(&b);
    m->commit = get64(&b);
    m->hint = get64(&b);
    m->ctx = get64(&b);
    uint32_t n = get32(&b);
    /* The count cannot exceed what the remaining bytes could hold. */
    if (n > 0 && (m->type != RAFT_MSG_APPEND || n > (size_t)(b.end - b.p) / ENTRY_HEADER))
        return RAFT_EMALFORMED;
    if (n > 0) {
        const struct raft_alloc *al = a;
        struct raft_entry *es = al != NULL ? al->malloc(al->ctx, n * sizeof(*es)) : malloc(n * sizeof(*es));
        if (es == NULL)
            return RAFT_ENOMEM;
        m->entries = es;
        m->n_entries = n;
        for (uint32_t i = 0; i < n; i++) {
            if (entry_read(&b, &es[i]) != 0 || es[i].index != m->index + 1 + i) {
                raft_msg_release(m, a);
                return RAFT_EMALFORMED;
            }
        }
    }
    if (m->type == RAFT_MSG_SNAPSHOT) {
        struct raft_snapshot *s = &m->snapshot;
        s->meta.index = get64(&b);
        s->meta.term = get64(&b);
        if (conf_read(&b, &s->meta.conf, true) != 0)
            return RAFT_EMALFORMED;
        s->len = get64(&b);
        s->data = (uint8_t *)getbytes(&b, s->len);
        if (s->len == 0)
            s->data = NULL;
    }
    if (b.bad || b.p != b.end) {
        raft_msg_release(m, a);
        return RAFT_EMALFORMED;
    }
    return 0;
}

void raft_msg_release(struct raft_message *m, const struct raft_alloc *a)
{
    if (m->entries != NULL) {
        if (a != NULL)
            a->free(a->ctx, m->entries);
        else
            free(m->entries);
    }
    m->entries = NULL;
    m->n_entries = 0;
}
