/* store/wal_write.c — the WAL writer: open (replay in wal_replay.c, then repair of a torn tail), buffering
 * of records, wal_sync (write + one fdatasync, rolling over to a new preallocated segment when the
 * current one is full), and removal of segments covered by a durable snapshot. Format: store/wal.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store/crc32c.h"
#include "store/wal_internal.h"

/* Records the first failure; every later call returns it. */
__attribute__((format(printf, 3, 4))) static int poison(struct wal *w, int rv, const char *fmt, ...)
{
    if (w->poison == 0) {
        char what[384];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        w->poison = rv;
        snprintf(w->msg, sizeof(w->msg), "%s: %s (the WAL accepts no more writes until restarted)", what,
                 strerror(-rv));
    }
    return w->poison;
}

static int count_sync(struct wal *w, int rv)
{
    atomic_fetch_add(&w->n_fsyncs, 1);
    return rv;
}

/* ---- segments ---- */

static void header_payload(const struct wal *w, uint64_t seq, uint64_t first, const struct wal_state *st,
                           uint8_t *p)
{
    memset(p, 0, WAL_HEADER_PAYLOAD);
    le_put32(p, WAL_FORMAT_VERSION);
    le_put64(p + 4, w->cfg.cluster_id);
    le_put64(p + 12, w->cfg.member_id);
    le_put64(p + 20, seq);
    le_put64(p + 28, first);
    p[36] = (uint8_t)((st->has_hs ? WAL_HDR_HAS_HS : 0) | (st->has_snap ? WAL_HDR_HAS_SNAP : 0));
    size_t n;
    raft_hard_state_encode(&st->hs, p + 37, RAFT_HARD_STATE_SIZE, &n);
    le_put64(p + 37 + RAFT_HARD_STATE_SIZE, st->snap_index);
    le_put64(p + 45 + RAFT_HARD_STATE_SIZE, st->snap_term);
}

/* Creates segment (seq, first) with its header as of *st: <name>.tmp, preallocate, header, fsync,
 * rename, directory fsync. On success it is appended to w->segs and w->fd/off point at it. */
static int seg_create(struct wal *w, uint64_t seq, uint64_t first, const struct wal_state *st,
                      const char **what)
{
    const struct fileio *io = w->io;
    char name[WAL_NAME_LEN + 1], path[4096], tmp[4096 + 4];
    wal_seg_name(name, sizeof(name), seq, first);
    if (w->n_segs == w->cap_segs) {
        size_t cap = w->cap_segs ? w->cap_segs * 2 : 16;
        struct wal_seg *s = realloc(w->segs, cap * sizeof(*s));
        if (s == NULL) {
            *what = "grow the segment list";
            return -ENOMEM;
        }
        w->segs = s;
        w->cap_segs = cap;
    }
    if (wal_path(w, path, sizeof(path), name) != 0) {
        *what = "build the path";
        return -ENAMETOOLONG;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    uint8_t rec[WAL_REC_FRAME + 1 + WAL_HEADER_PAYLOAD];
    header_payload(w, seq, first, st, rec + WAL_REC_FRAME + 1);
    wal_record_frame(rec, WAL_REC_HEADER, rec + WAL_REC_FRAME + 1, WAL_HEADER_PAYLOAD);

    int rv, fd = io->open(io->ctx, tmp, O_CREAT | O_TRUNC | O_RDWR, 0644);
    if (fd < 0) {
        *what = "create";
        return fd;
    }
    if ((rv = io->fallocate(io->ctx, fd, 0, (off_t)w->cfg.segment_size)) != 0)
        *what = "preallocate";
    else if ((rv = fileio_pwrite_all(io, fd, rec, sizeof(rec), 0)) != 0)
        *what = "write the header of";
    else if ((rv = count_sync(w, io->fsync(io->ctx, fd))) != 0)
        *what = "fsync";
    else if ((rv = io->rename(io->ctx, tmp, path)) != 0)
        *what = "rename into place";
    else if ((rv = count_sync(w, io->sync_dir(io->ctx, w->dir))) != 0)
        *what = "fsync the directory after creating";
    if (rv != 0) {
        io->close(io->ctx, fd);
        io->unlink(io->ctx, tmp);
        return rv;
    }
    if (w->fd >= 0)
        io->close(io->ctx, w->fd);
    w->fd = fd;
    w->off = sizeof(rec);
    w->header_end = sizeof(rec);
    w->segs[w->n_segs++] = (struct wal_seg){seq, first};
    atomic_fetch_add(&w->n_created, 1);
    return 0;
}

static void seg_current_name(const struct wal *w, char *out, size_t cap)
{
    const struct wal_seg *s = &w->segs[w->n_segs - 1];
    wal_seg_name(out, cap, s->seq, s->first);
}

/* Cut the newest segment at off (a torn tail) and preallocate again what was cut. */
static int repair_tail(struct wal *w, uint64_t off, const char **what)
{
    const struct fileio *io = w->io;
    int rv = io->ftruncate(io->ctx, w->fd, (off_t)off);
    if (rv != 0) {
        *what = "truncate the torn tail of";
        return rv;
    }
    if (w->cfg.segment_size > off &&
        (rv = io->fallocate(io->ctx, w->fd, (off_t)off, (off_t)(w->cfg.segment_size - off))) != 0) {
        *what = "preallocate";
        return rv;
    }
    if ((rv = count_sync(w, io->fsync(io->ctx, w->fd))) != 0)
        *what = "fsync";
    return rv;
}

/* ---- open / close ---- */

static int mkdir_durable(struct wal *w)
{
    int rv = w->io->mkdir(w->io->ctx, w->dir, 0755);
    if (rv == -EEXIST)
        return 0;
    if (rv != 0)
        return rv;
    /* Make the new directory's entry in its parent durable. */
    char parent[4096];
    snprintf(parent, sizeof(parent), "%s", w->dir);
    char *slash = strrchr(parent, '/');
    if (slash == NULL)
        snprintf(parent, sizeof(parent), ".");
    else if (slash == parent)
        slash[1] = '\0';
    else
        *slash = '\0';
    return count_sync(w, w->io->sync_dir(w->io->ctx, parent));
}

int wal_open(struct wal **out, const struct wal_config *cfg, struct wal_replay *replay, char *err,
             size_t errlen)
{
    *out = NULL;
    memset(replay, 0, sizeof(*replay));
    if (cfg->dir == NULL || cfg->dir[0] == '\0' || cfg->segment_size < WAL_SEGMENT_SIZE_MIN) {
        snprintf(err, errlen, "WAL: a directory and a segment size of at least %llu bytes are required",
                 (unsigned long long)WAL_SEGMENT_SIZE_MIN);
        return -EINVAL;
    }
    struct wal *w = calloc(1, sizeof(*w));
    if (w == NULL || (w->dir = strdup(cfg->dir)) == NULL) {
        free(w);
        snprintf(err, errlen, "WAL %s: out of memory", cfg->dir);
        return -ENOMEM;
    }
    w->cfg = *cfg;
    w->cfg.dir = w->dir;
    w->io = cfg->io != NULL ? cfg->io : fileio_posix();
    w->fd = -1;
    const char *what = NULL;
    char name[WAL_NAME_LEN + 1];
    uint64_t repair = UINT64_MAX;
    int rv = mkdir_durable(w);
    if (rv != 0) {
        snprintf(err, errlen, "WAL %s: cannot create the directory: %s", w->dir, strerror(-rv));
        goto fail;
    }
    if ((rv = wal_replay_dir(w, replay, &repair, err, errlen)) != 0)
        goto fail;
    if (w->n_segs == 0) {
        replay->version = WAL_FORMAT_VERSION;
        replay->cluster_id = cfg->cluster_id;
        replay->member_id = cfg->member_id;
        if ((rv = seg_create(w, 1, 1, &w->written, &what)) != 0) {
            wal_seg_name(name, sizeof(name), 1, 1);
            snprintf(err, errlen, "WAL %s: cannot %s %s: %s", w->dir, what, name, strerror(-rv));
            goto fail;
        }
    } else {
        /* Later segments record the ids the first one had. */
        w->cfg.cluster_id = replay->cluster_id;
        w->cfg.member_id = replay->member_id;
        char path[4096];
        seg_current_name(w, name, sizeof(name));
        wal_path(w, path, sizeof(path), name);
        rv = w->io->open(w->io->ctx, path, O_RDWR, 0);
        what = "open";
        if (rv >= 0) {
            w->fd = rv;
            rv = repair == UINT64_MAX ? 0 : repair_tail(w, repair, &what);
        }
        if (rv < 0) {
            snprintf(err, errlen, "WAL %s/%s: cannot %s it: %s", w->dir, name, what, strerror(-rv));
            goto fail;
        }
    }
    w->pending = w->durable = w->written;
    *out = w;
    return 0;
fail:
    wal_close(w);
    return rv;
}

void wal_close(struct wal *w)
{
    if (w == NULL)
        return;
    if (w->fd >= 0)
        w->io->close(w->io->ctx, w->fd);
    free(w->segs);
    free(w->buf);
    free(w->dir);
    free(w);
}

/* ---- buffering ---- */

static int reserve(struct wal *w, size_t n)
{
    if (w->cap - w->len >= n)
        return 0;
    size_t cap = w->cap ? w->cap : 4096;
    while (cap - w->len < n)
        cap *= 2;
    uint8_t *b = realloc(w->buf, cap);
    if (b == NULL)
        return -ENOMEM;
    w->buf = b;
    w->cap = cap;
    return 0;
}

static int buffer_record(struct wal *w, uint8_t type, const uint8_t *payload, uint32_t plen)
{
    int rv = reserve(w, WAL_REC_FRAME + 1 + (size_t)plen);
    if (rv != 0)
        return rv;
    wal_record_frame(w->buf + w->len, type, payload, plen);
    w->len += WAL_REC_FRAME + 1 + (size_t)plen;
    return 0;
}

int wal_append(struct wal *w, const struct raft_entry *entries, size_t n)
{
    if (w->poison)
        return w->poison;
    if (n == 0)
        return 0;
    uint64_t first = entries[0].index;
    if (first == 0 || first > w->pending.last + 1 || (w->pending.has_snap && first <= w->pending.snap_index))
        return -EINVAL;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const struct raft_entry *e = &entries[i];
        size_t sz = raft_entry_size(e);
        if (e->index != first + i || e->term == 0 || e->type < RAFT_ENTRY_NORMAL ||
            e->type > RAFT_ENTRY_CONF || sz >= WAL_RECORD_MAX || (e->len > 0 && e->data == NULL))
            return -EINVAL;
        total += WAL_REC_FRAME + 1 + sz;
    }
    int rv = reserve(w, total);
    if (rv != 0)
        return rv;
    for (size_t i = 0; i < n; i++) {
        uint8_t *rec = w->buf + w->len;
        size_t sz;
        raft_entry_encode(&entries[i], rec + WAL_REC_FRAME + 1, w->cap - w->len - WAL_REC_FRAME - 1, &sz);
        wal_record_frame(rec, WAL_REC_ENTRY, rec + WAL_REC_FRAME + 1, (uint32_t)sz);
        w->len += WAL_REC_FRAME + 1 + sz;
    }
    w->pending.last = entries[n - 1].index;
    return 0;
}

int wal_set_hard_state(struct wal *w, const struct raft_hard_state *hs)
{
    if (w->poison)
        return w->poison;
    uint8_t p[RAFT_HARD_STATE_SIZE];
    size_t n;
    raft_hard_state_encode(hs, p, sizeof(p), &n);
    int rv = buffer_record(w, WAL_REC_HARD_STATE, p, (uint32_t)n);
    if (rv == 0) {
        w->pending.hs = *hs;
        w->pending.has_hs = true;
    }
    return rv;
}

static void snap_payload(uint8_t *p, uint64_t index, uint64_t term, bool replaces)
{
    p[0] = 1;
    p[1] = replaces ? WAL_SNAP_REPLACES_LOG : 0;
    le_put64(p + 2, index);
    le_put64(p + 10, term);
}

int wal_snapshot(struct wal *w, uint64_t index, uint64_t term, bool replaces_log)
{
    if (w->poison)
        return w->poison;
    if (index == 0 || (w->pending.has_snap && index < w->pending.snap_index))
        return -EINVAL;
    uint8_t p[WAL_SNAP_PAYLOAD];
    snap_payload(p, index, term, replaces_log);
    int rv = buffer_record(w, WAL_REC_SNAPSHOT, p, sizeof(p));
    if (rv == 0) {
        w->pending.has_snap = true;
        w->pending.snap_index = index;
        w->pending.snap_term = term;
        if (replaces_log || index > w->pending.last)
            w->pending.last = index;
    }
    return rv;
}

/* ---- sync ---- */

/* Moves st past one buffered record (the writer's own, so it decodes). */
static void state_apply(struct wal_state *st, const uint8_t *rec)
{
    uint32_t plen = le_get32(rec) - 1;
    const uint8_t *p = rec + WAL_REC_FRAME + 1;
    struct raft_entry e;
    switch (rec[WAL_REC_FRAME]) {
    case WAL_REC_ENTRY:
        if (raft_entry_decode(p, plen, &e) == 0)
            st->last = e.index;
        break;
    case WAL_REC_HARD_STATE:
        if (raft_hard_state_decode(p, plen, &st->hs) == 0)
            st->has_hs = true;
        break;
    case WAL_REC_SNAPSHOT:
        st->has_snap = true;
        st->snap_index = le_get64(p + 2);
        st->snap_term = le_get64(p + 10);
        if ((p[1] & WAL_SNAP_REPLACES_LOG) || st->snap_index > st->last)
            st->last = st->snap_index;
        break;
    }
}

static int write_out(struct wal *w, size_t from, size_t to)
{
    if (to == from)
        return 0;
    int rv = fileio_pwrite_all(w->io, w->fd, w->buf + from, to - from, (off_t)w->off);
    if (rv != 0) {
        char name[WAL_NAME_LEN + 1];
        seg_current_name(w, name, sizeof(name));
        return poison(w, rv, "WAL %s/%s: write of %zu bytes at offset %" PRIu64 " failed", w->dir, name,
                      to - from, w->off);
    }
    w->off += to - from;
    atomic_fetch_add(&w->n_bytes, to - from);
    return 0;
}

static int datasync(struct wal *w)
{
    int rv = count_sync(w, w->io->fdatasync(w->io->ctx, w->fd));
    if (rv != 0) {
        char name[WAL_NAME_LEN + 1];
        seg_current_name(w, name, sizeof(name));
        return poison(w, rv, "WAL %s/%s: fdatasync failed", w->dir, name);
    }
    return 0;
}

int wal_sync(struct wal *w)
{
    if (w->poison)
        return w->poison;
    if (w->len == 0)
        return 0;
    size_t chunk = 0, pos = 0;
    int rv;
    while (pos < w->len) {
        uint64_t reclen = WAL_REC_FRAME + (uint64_t)le_get32(w->buf + pos);
        uint64_t at = w->off + (pos - chunk);
        /* Roll over when the record does not fit, unless the segment holds nothing but its header
         * (a record bigger than a whole segment then grows the file past its preallocation). */
        if (at + reclen > w->cfg.segment_size && at > w->header_end) {
            if ((rv = write_out(w, chunk, pos)) != 0 || (rv = datasync(w)) != 0)
                return rv;
            chunk = pos;
            const struct wal_seg *cur = &w->segs[w->n_segs - 1];
            const char *what = NULL;
            uint64_t seq = cur->seq + 1, first = w->written.last + 1;
            if ((rv = seg_create(w, seq, first, &w->written, &what)) != 0) {
                char name[WAL_NAME_LEN + 1];
                wal_seg_name(name, sizeof(name), seq, first);
                return poison(w, rv, "WAL %s/%s: cannot %s the new segment", w->dir, name, what);
            }
        }
        state_apply(&w->written, w->buf + pos);
        pos += (size_t)reclen;
    }
    if ((rv = write_out(w, chunk, pos)) != 0 || (rv = datasync(w)) != 0)
        return rv;
    w->durable = w->written;
    w->len = 0;
    atomic_fetch_add(&w->n_syncs, 1);
    return 0;
}

/* ---- release ---- */

int wal_detach_before(struct wal *w, uint64_t index, struct wal_detached *out)
{
    memset(out, 0, sizeof(*out));
    if (w->poison)
        return w->poison;
    if (!w->durable.has_snap || index > w->durable.snap_index)
        return -EINVAL;
    /* Segment k holds only entries below the next segment's first index (later truncations rewrite
     * entries in later segments), so it is covered once that first index - 1 <= index. */
    size_t k = 0;
    while (k + 1 < w->n_segs && w->segs[k + 1].first - 1 <= index)
        k++;
    if (k == 0)
        return 0;
    if ((out->paths = calloc(k, sizeof(*out->paths))) == NULL || (out->dir = strdup(w->dir)) == NULL)
        goto nomem;
    for (size_t i = 0; i < k; i++) {
        char name[WAL_NAME_LEN + 1], path[4096];
        wal_seg_name(name, sizeof(name), w->segs[i].seq, w->segs[i].first);
        wal_path(w, path, sizeof(path), name);
        if ((out->paths[i] = strdup(path)) == NULL)
            goto nomem;
        out->n = i + 1;
    }
    memmove(w->segs, w->segs + k, (w->n_segs - k) * sizeof(*w->segs));
    w->n_segs -= k;
    atomic_fetch_add(&w->n_removed, k);
    return 0;
nomem:
    wal_remove_detached(w->io, &(struct wal_detached){out->paths, out->n, NULL}, NULL, 0); /* frees */
    free(out->dir);
    memset(out, 0, sizeof(*out));
    return -ENOMEM; /* nothing detached: a later release tries again */
}

int wal_remove_detached(const struct fileio *io, struct wal_detached *d, char *err, size_t errlen)
{
    int rv = 0;
    for (size_t i = 0; i < d->n; i++) {
        int r = d->dir ? io->unlink(io->ctx, d->paths[i]) : 0; /* no dir: only free */
        if (r != 0 && r != -ENOENT && rv == 0) {
            rv = r;
            if (err && errlen)
                snprintf(err, errlen, "WAL %s: cannot remove %s", d->dir, d->paths[i]);
        }
        free(d->paths[i]);
    }
    if (d->dir && d->n && rv == 0 && (rv = io->sync_dir(io->ctx, d->dir)) != 0 && err && errlen)
        snprintf(err, errlen, "WAL %s: fsync of the directory after removing segments failed", d->dir);
    free(d->paths);
    free(d->dir);
    memset(d, 0, sizeof(*d));
    return rv;
}

int wal_release_before(struct wal *w, uint64_t index)
{
    struct wal_detached d;
    int rv = wal_detach_before(w, index, &d);
    if (rv != 0 || d.n == 0)
        return rv;
    char why[600];
    atomic_fetch_add(&w->n_fsyncs, 1); /* the directory's */
    if ((rv = wal_remove_detached(w->io, &d, why, sizeof(why))) != 0)
        return poison(w, rv, "%s", why);
    return 0;
}

/* ---- introspection ---- */

int wal_error(const struct wal *w, const char **msg)
{
    if (msg != NULL)
        *msg = w->msg;
    return w->poison;
}

uint64_t wal_last_index(const struct wal *w)
{
    return w->pending.last;
}

void wal_stats(const struct wal *w, struct wal_stats *out)
{
    out->fsyncs = atomic_load(&w->n_fsyncs);
    out->syncs = atomic_load(&w->n_syncs);
    out->bytes = atomic_load(&w->n_bytes);
    out->segments_created = atomic_load(&w->n_created);
    out->segments_removed = atomic_load(&w->n_removed);
}
