/* store/snap.c — writing and loading snapshot files (format and contract in snap.h). The writer
 * streams records through a 64 KiB buffer (a 1M-key tree never sits in memory twice); the loader
 * reads the whole file, checks its CRC, then parses it trusting no length.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/crc32c.h"
#include "store/snap.h"

static const char MAGIC[8] = {'D', 'D', 'S', 'N', 'A', 'P', '0', '1'};

enum { F_PREV = 1, F_REFRESH = 2, F_NDIR = 4, F_PDIR = 8, F_NVAL = 16, F_PVAL = 32, F_ALL = 63 };

void snap_name(char *buf, size_t cap, uint64_t index, uint64_t term)
{
    snprintf(buf, cap, "%016" PRIx64 "-%016" PRIx64 ".snap", index, term);
}

/* ---------------------------------------------------------------- writing */

#define SNAP_WRITEBACK_STEP (4 << 20)

struct wbuf {
    const struct fileio *io;
    int fd;
    off_t off, handed; /* written; handed to the device (writeback) */
    uint32_t crc;
    int err;
    size_t len;
    uint64_t nodes, events;
    uint8_t b[65536];
};

static void wflush(struct wbuf *w)
{
    if (w->err || !w->len)
        return;
    w->crc = crc32c_update(w->crc, w->b, w->len);
    w->err = fileio_pwrite_all(w->io, w->fd, w->b, w->len, w->off);
    w->off += (off_t)w->len;
    w->len = 0;
    /* Hand the file to the device in steps as it grows: the final fsync then flushes one step, not
     * hundreds of MiB at once in front of the WAL's fdatasync. */
    if (!w->err && w->io->writeback && w->off - w->handed >= SNAP_WRITEBACK_STEP) {
        w->err = w->io->writeback(w->io->ctx, w->fd, w->handed, w->off - w->handed);
        w->handed = w->off;
    }
}

static void wput(struct wbuf *w, const void *p, size_t n)
{
    const uint8_t *s = p;
    while (n && !w->err) {
        if (w->len == sizeof(w->b))
            wflush(w);
        size_t k = sizeof(w->b) - w->len < n ? sizeof(w->b) - w->len : n;
        memcpy(w->b + w->len, s, k);
        w->len += k;
        s += k;
        n -= k;
    }
}

static void wu8(struct wbuf *w, uint8_t v)
{
    wput(w, &v, 1);
}

static void wu32(struct wbuf *w, uint32_t v)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    wput(w, b, 4);
}

static void wu64(struct wbuf *w, uint64_t v)
{
    wu32(w, (uint32_t)v);
    wu32(w, (uint32_t)(v >> 32));
}

static void wstr(struct wbuf *w, const char *s, uint32_t n)
{
    wu32(w, n);
    wput(w, s, n);
}

static int put_node(void *arg, const struct kv_image *n)
{
    struct wbuf *w = arg;
    wu8(w, 'N');
    wstr(w, n->key, n->key_len);
    wu8(w, n->dir ? 1 : 0);
    wstr(w, n->value, n->dir ? 0 : n->value_len);
    wu64(w, n->created_index);
    wu64(w, n->modified_index);
    wu64(w, (uint64_t)n->created_ms);
    wu64(w, (uint64_t)n->expire_ms);
    w->nodes++;
    return w->err;
}

static int put_ring(void *arg, const char *token, size_t len, uint64_t dropped_max, uint32_t n)
{
    struct wbuf *w = arg;
    wu8(w, 'R');
    wu8(w, token ? 0 : 1);
    wstr(w, token, (uint32_t)len);
    wu64(w, dropped_max);
    wu32(w, n);
    return w->err;
}

static void put_enode(struct wbuf *w, const struct kv_enode *e)
{
    wstr(w, e->value, e->value ? e->value_len : 0);
    wu64(w, (uint64_t)e->expire_ms);
    wu64(w, e->modified_index);
    wu64(w, e->created_index);
}

static int put_event(void *arg, const struct kv_event *ev)
{
    struct wbuf *w = arg;
    wu8(w, 'V');
    wu8(w, (uint8_t)ev->action);
    wu64(w, ev->index);
    wu8(w, (uint8_t)((ev->has_prev ? F_PREV : 0) | (ev->refresh ? F_REFRESH : 0) |
                     (ev->node.dir ? F_NDIR : 0) | (ev->prev.dir ? F_PDIR : 0) |
                     (ev->node.value ? F_NVAL : 0) | (ev->has_prev && ev->prev.value ? F_PVAL : 0)));
    wstr(w, ev->node.key, (uint32_t)strlen(ev->node.key));
    put_enode(w, &ev->node);
    put_enode(w, &ev->prev);
    w->events++;
    return w->err;
}

int snap_write(const struct fileio *io, const char *dir, const struct snap_meta *m, const struct kv *kv,
               const struct watch_hub *hub, char *err, size_t errlen)
{
    char name[48], tmp[4300], path[4200];
    snap_name(name, sizeof(name), m->index, m->term);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int rv = io->mkdir(io->ctx, dir, 0700);
    if (rv < 0 && rv != -EEXIST) {
        snprintf(err, errlen, "snapshot: mkdir %s: %s", dir, strerror(-rv));
        return rv;
    }
    struct wbuf *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(err, errlen, "snapshot: out of memory");
        return -ENOMEM;
    }
    w->io = io;
    w->fd = io->open(io->ctx, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        rv = w->fd;
        snprintf(err, errlen, "snapshot: open %s: %s", tmp, strerror(-rv));
        free(w);
        return rv;
    }
    wput(w, MAGIC, sizeof(MAGIC));
    wu32(w, SNAP_VERSION);
    wu64(w, m->index);
    wu64(w, m->term);
    wu64(w, m->cluster_id);
    wu64(w, kv_index(kv));
    wu32(w, m->conf.n);
    for (uint32_t i = 0; i < m->conf.n; i++)
        wu64(w, m->conf.ids[i]);
    wu32(w, m->members_len);
    wput(w, m->members, m->members_len);
    const struct watch_dump_fns fns = {put_ring, put_event};
    if (!w->err && kv_dump(kv, put_node, w) != 0 && !w->err)
        w->err = -ENOMEM; /* the walk's own key buffer: a snapshot short of nodes must not be written */
    if (!w->err)
        watch_dump(hub, &fns, w);
    wu8(w, 'E');
    wu64(w, w->nodes);
    wu64(w, w->events);
    wflush(w);
    uint8_t c[4];
    for (int i = 0; i < 4; i++)
        c[i] = (uint8_t)(w->crc >> (8 * i));
    const char *step = "write";
    rv = w->err ? w->err : fileio_pwrite_all(io, w->fd, c, 4, w->off);
    if (rv == 0 && (step = "fsync", rv = io->fsync(io->ctx, w->fd)) > 0)
        rv = 0;
    io->close(io->ctx, w->fd);
    free(w);
    if (rv == 0 && (step = "rename", rv = io->rename(io->ctx, tmp, path)) > 0)
        rv = 0;
    if (rv == 0 && (step = "fsync of the directory", rv = io->sync_dir(io->ctx, dir)) > 0)
        rv = 0;
    if (rv < 0) {
        /* nothing carries the final name of a snapshot that was not made durable */
        snprintf(err, errlen, "snapshot: %s of %s failed: %s", step, tmp, strerror(-rv));
        io->unlink(io->ctx, tmp);
        io->unlink(io->ctx, path);
        return rv;
    }
    return 0;
}

/* ---------------------------------------------------------------- loading */

struct rbuf {
    const uint8_t *p;
    size_t len, off;
    bool bad;
};

static const uint8_t *rtake(struct rbuf *r, size_t n)
{
    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}

static uint8_t ru8(struct rbuf *r)
{
    const uint8_t *p = rtake(r, 1);
    return p ? p[0] : 0;
}

static uint32_t ru32(struct rbuf *r)
{
    const uint8_t *p = rtake(r, 4);
    return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24 : 0;
}

static uint64_t ru64(struct rbuf *r)
{
    uint64_t lo = ru32(r);
    return lo | (uint64_t)ru32(r) << 32;
}

static const char *rstr(struct rbuf *r, uint32_t *n)
{
    *n = ru32(r);
    return (const char *)rtake(r, *n);
}

static void rnode(struct rbuf *r, struct kv_enode *e, bool has_value)
{
    uint32_t vl;
    const char *v = rstr(r, &vl);
    e->value = has_value ? (char *)v : NULL;
    e->value_len = has_value ? vl : 0;
    e->expire_ms = (int64_t)ru64(r);
    e->modified_index = ru64(r);
    e->created_index = ru64(r);
    if ((!has_value && vl) || e->expire_ms < 0)
        r->bad = true;
}

/* One 'V' record into a new event (NULL when malformed or on ENOMEM). */
static struct kv_event *read_event(struct rbuf *r)
{
    uint8_t action = ru8(r);
    uint64_t index = ru64(r);
    uint8_t flags = ru8(r);
    uint32_t kl;
    const char *key = rstr(r, &kl);
    struct kv_enode node, prev;
    rnode(r, &node, flags & F_NVAL);
    rnode(r, &prev, flags & F_PVAL);
    if (r->bad || action > KV_ACT_EXPIRE || (flags & ~F_ALL) || !kl || key[0] != '/' ||
        memchr(key, '\0', kl) || ((flags & F_PVAL) && !(flags & F_PREV))) {
        r->bad = true;
        return NULL;
    }
    struct kv_event *ev = kv_event_new((enum kv_action)action, index, key, kl, node.value, node.value_len,
                                       prev.value, prev.value_len);
    if (!ev)
        return NULL;
    ev->node.dir = flags & F_NDIR;
    ev->node.expire_ms = node.expire_ms;
    ev->node.modified_index = node.modified_index;
    ev->node.created_index = node.created_index;
    ev->has_prev = flags & F_PREV;
    ev->prev.dir = flags & F_PDIR;
    ev->prev.expire_ms = prev.expire_ms;
    ev->prev.modified_index = prev.modified_index;
    ev->prev.created_index = prev.created_index;
    ev->refresh = flags & F_REFRESH;
    return ev;
}

static int bad(char *err, size_t errlen, size_t off, const char *what)
{
    snprintf(err, errlen, "byte %zu: %s", off, what);
    return -EBADMSG;
}

int snap_parse(const uint8_t *buf, size_t len, struct snap_meta *m, struct kv *kv, struct watch_hub *hub,
               char *err, size_t errlen)
{
    if (len < sizeof(MAGIC) + 4 + 32 + 4 + 4 || memcmp(buf, MAGIC, sizeof(MAGIC)) != 0)
        return bad(err, errlen, 0, "not a discoveryd snapshot (bad magic or too short)");
    uint32_t want = (uint32_t)buf[len - 4] | (uint32_t)buf[len - 3] << 8 | (uint32_t)buf[len - 2] << 16 |
                    (uint32_t)buf[len - 1] << 24;
    if (crc32c(buf, len - 4) != want)
        return bad(err, errlen, len - 4, "checksum mismatch (the file is damaged)");
    struct rbuf r = {buf, len - 4, sizeof(MAGIC), false};
    uint32_t version = ru32(&r);
    if (version != 1 && version != SNAP_VERSION)
        return bad(err, errlen, sizeof(MAGIC), "unknown snapshot version");
    memset(m, 0, sizeof(*m));
    m->index = ru64(&r);
    m->term = ru64(&r);
    m->cluster_id = ru64(&r);
    m->kv_index = ru64(&r);
    m->conf.n = ru32(&r);
    if (m->conf.n > RAFT_MAX_NODES)
        return bad(err, errlen, r.off - 4, "too many voters");
    for (uint32_t i = 0; i < m->conf.n; i++)
        m->conf.ids[i] = ru64(&r);
    if (version >= 2) {
        size_t at = r.off;
        m->members_len = ru32(&r);
        const uint8_t *tab = r.bad || m->members_len > SNAP_MEMBERS_MAX ? NULL : rtake(&r, m->members_len);
        if (!tab)
            return bad(err, errlen, at, "a member table too long for the file");
        memcpy(m->members, tab, m->members_len);
    }
    uint64_t nodes = 0, events = 0;
    const char *ring = NULL; /* the ring 'V' records go to: token name, or NULL for the global one */
    uint32_t ring_len = 0, ring_left = 0;
    bool ring_global = false;
    uint64_t ring_dropped = 0;
    for (;;) {
        size_t at = r.off;
        uint8_t tag = ru8(&r);
        if (r.bad)
            return bad(err, errlen, at, "cut short before the end record");
        if (ring_left && tag != 'V')
            return bad(err, errlen, at, "a history ring holds fewer events than it says");
        if (tag == 'E') {
            uint64_t n = ru64(&r), e = ru64(&r);
            if (r.bad || r.off != r.len)
                return bad(err, errlen, at, "bytes after the end record");
            if (n != nodes || e != events)
                return bad(err, errlen, at, "the end record's counts do not match the records");
            break;
        }
        if (tag == 'N') {
            struct kv_image img;
            memset(&img, 0, sizeof(img));
            img.key = rstr(&r, &img.key_len);
            img.dir = ru8(&r) != 0;
            img.value = rstr(&r, &img.value_len);
            img.created_index = ru64(&r);
            img.modified_index = ru64(&r);
            img.created_ms = (int64_t)ru64(&r);
            img.expire_ms = (int64_t)ru64(&r);
            if (r.bad || img.expire_ms < 0 || kv_restore_node(kv, &img) != 0)
                return bad(err, errlen, at, "a tree node that does not fit the tree (or out of memory)");
            nodes++;
        } else if (tag == 'R') {
            ring_global = ru8(&r) != 0;
            ring = rstr(&r, &ring_len);
            ring_dropped = ru64(&r);
            ring_left = ru32(&r);
            if (r.bad || (ring_global && ring_len) || (!ring_global && !ring_len) ||
                watch_restore(hub, ring_global ? NULL : ring, ring_len, ring_dropped, NULL) != 0)
                return bad(err, errlen, at, "a bad history ring header");
        } else if (tag == 'V' && ring_left) {
            struct kv_event *ev = read_event(&r);
            int rv = ev ? watch_restore(hub, ring_global ? NULL : ring, ring_len, ring_dropped, ev) : -1;
            kv_event_unref(ev);
            if (rv != 0)
                return bad(err, errlen, at, "a bad history event (or out of memory)");
            ring_left--;
            events++;
        } else {
            return bad(err, errlen, at, "an unknown record");
        }
    }
    if (kv_index(kv) > m->kv_index)
        return bad(err, errlen, 0, "the tree holds indexes past the snapshot's own");
    kv_restore_index(kv, m->kv_index);
    return 0;
}

int snap_load(const struct fileio *io, const char *dir, uint64_t index, uint64_t term, struct snap_meta *m,
              struct kv *kv, struct watch_hub *hub, char *err, size_t errlen)
{
    char name[48], path[4200];
    snap_name(name, sizeof(name), index, term);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = io->open(io->ctx, path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(-fd));
        return fd;
    }
    uint64_t size = 0;
    int rv = io->size(io->ctx, fd, &size);
    uint8_t *buf = rv >= 0 && size < (1ull << 40) ? malloc(size ? size : 1) : NULL;
    if (rv >= 0 && !buf)
        rv = -ENOMEM;
    ssize_t got = buf ? fileio_pread_all(io, fd, buf, size, 0) : 0;
    io->close(io->ctx, fd);
    if (rv >= 0 && got < 0)
        rv = (int)got;
    if (rv < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(-rv));
        free(buf);
        return rv;
    }
    char why[200];
    rv = snap_parse(buf, (size_t)got, m, kv, hub, why, sizeof(why));
    free(buf);
    if (rv == 0 && (m->index != index || m->term != term)) {
        snprintf(why, sizeof(why), "byte 12: holds %" PRIu64 "/%" PRIu64 ", not what its name says", m->index,
                 m->term);
        rv = -EBADMSG;
    }
    if (rv != 0)
        snprintf(err, errlen, "%s: %s; restore the data dir from a backup (or move it away to start empty)",
                 path, why);
    return rv;
}

struct prune_ctx {
    const struct fileio *io;
    const char *dir;
    uint64_t keep;
    int rv;
    bool removed;
};

static int prune_one(void *arg, const char *name)
{
    struct prune_ctx *p = arg;
    size_t l = strlen(name);
    uint64_t index;
    bool tmp = l > 4 && strcmp(name + l - 4, ".tmp") == 0;
    bool old = l == 38 && strcmp(name + 33, ".snap") == 0 && sscanf(name, "%16" SCNx64, &index) == 1 &&
               index < p->keep;
    if (!tmp && !old)
        return 0;
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", p->dir, name);
    int rv = p->io->unlink(p->io->ctx, path);
    if (rv < 0 && p->rv == 0)
        p->rv = rv;
    p->removed = true;
    return 0;
}

int snap_prune(const struct fileio *io, const char *dir, uint64_t keep_index)
{
    struct prune_ctx p = {io, dir, keep_index, 0, false};
    int rv = io->list_dir(io->ctx, dir, prune_one, &p);
    if (rv < 0)
        return rv;
    if (p.removed && (rv = io->sync_dir(io->ctx, dir)) < 0)
        return rv;
    return p.rv;
}
