/* store/wal_replay.c — the WAL reader: lists the segments, verifies every record, rebuilds the
 * hard state, the latest snapshot marker and the log (honouring truncation), and decides whether a
 * bad record is a torn tail (cut off) or corruption (refuse to open). Format: store/wal.h.
 *
 * Why "a valid record after a bad one" means corruption: the writer appends sequentially and
 * fdatasyncs before acknowledging, so a power cut can only damage the unacknowledged end of the
 * newest segment. Older segments were synced in full before their successor was created.
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

#define ADVICE                                                                                               \
    "restore the data dir from a backup, or remove it to start this member empty (it then needs a "          \
    "snapshot from the cluster)"

enum wal_parse wal_parse_record(const uint8_t *buf, uint64_t size, uint64_t off, uint8_t *type,
                                const uint8_t **payload, uint32_t *plen, uint64_t *reclen, const char **why)
{
    uint64_t left = size - off;
    if (left < 4) {
        for (uint64_t i = off; i < size; i++)
            if (buf[i] != 0) {
                *why = "record cut short in its length field";
                return WAL_PARSE_BAD;
            }
        return WAL_PARSE_END;
    }
    uint32_t len = le_get32(buf + off);
    if (len == 0)
        return WAL_PARSE_END;
    if (len > WAL_RECORD_MAX) {
        *why = "record length out of range";
        return WAL_PARSE_BAD;
    }
    if (left < WAL_REC_FRAME || left - WAL_REC_FRAME < len) {
        *why = "record cut short (its length runs past the end of the file)";
        return WAL_PARSE_BAD;
    }
    uint32_t crc = crc32c_update(crc32c(buf + off, 4), buf + off + WAL_REC_FRAME, len);
    if (crc != le_get32(buf + off + 4)) {
        *why = "checksum mismatch";
        return WAL_PARSE_BAD;
    }
    uint8_t t = buf[off + WAL_REC_FRAME];
    if (t < WAL_REC_HEADER || t > WAL_REC_SNAPSHOT) {
        *why = "unknown record type";
        return WAL_PARSE_BAD;
    }
    *type = t;
    *payload = buf + off + WAL_REC_FRAME + 1;
    *plen = len - 1;
    *reclen = WAL_REC_FRAME + (uint64_t)len;
    return WAL_PARSE_OK;
}

/* ---- listing ---- */

struct listing {
    struct wal *w;
    struct wal_seg *segs;
    size_t n, cap;
    char **tmps;
    size_t n_tmps;
    int err;
};

static bool parse_hex16(const char *s, uint64_t *v)
{
    uint64_t x = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return false;
        x = x << 4 | (uint64_t)d;
    }
    *v = x;
    return true;
}

static int list_one(void *arg, const char *name)
{
    struct listing *l = arg;
    size_t n = strlen(name);
    uint64_t seq, first;
    if (n == WAL_NAME_LEN + 4 && !strcmp(name + WAL_NAME_LEN, ".tmp")) {
        char **t = realloc(l->tmps, (l->n_tmps + 1) * sizeof(*t));
        if (t == NULL || (t[l->n_tmps] = strdup(name)) == NULL) {
            if (t != NULL)
                l->tmps = t;
            return -ENOMEM;
        }
        l->tmps = t;
        l->n_tmps++;
        return 0;
    }
    if (n != WAL_NAME_LEN || name[16] != '-' || strcmp(name + 33, ".wal") || !parse_hex16(name, &seq) ||
        !parse_hex16(name + 17, &first))
        return 0; /* not ours */
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct wal_seg *s = realloc(l->segs, cap * sizeof(*s));
        if (s == NULL)
            return -ENOMEM;
        l->segs = s;
        l->cap = cap;
    }
    l->segs[l->n++] = (struct wal_seg){seq, first};
    return 0;
}

static int seg_cmp(const void *a, const void *b)
{
    const struct wal_seg *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* ---- replay ---- */

struct replay {
    struct wal *w;
    struct wal_replay *r;
    size_t cap;
    char *err;
    size_t errlen;
    struct wal_state st;
    bool have_ids;
    char name[WAL_NAME_LEN + 1]; /* the segment being read */
    char base_name[WAL_NAME_LEN + 1];
    uint64_t base_off; /* where the first entry of r->entries was read */
};

__attribute__((format(printf, 3, 4))) static int refuse(struct replay *rp, uint64_t off, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(rp->err, rp->errlen, "WAL %s/%s, byte offset %" PRIu64 ": %s; " ADVICE, rp->w->dir, rp->name,
             off, what);
    return -EBADMSG;
}

static void drop_through(struct replay *rp, uint64_t index)
{
    struct wal_replay *r = rp->r;
    if (r->n_entries == 0 || r->entries[0].index > index)
        return;
    uint64_t k = index - r->entries[0].index + 1;
    if (k >= r->n_entries) {
        r->n_entries = 0;
        return;
    }
    memmove(r->entries, r->entries + k, (r->n_entries - (size_t)k) * sizeof(*r->entries));
    r->n_entries -= (size_t)k;
}

static int apply_snapshot(struct replay *rp, uint64_t off, uint64_t index, uint64_t term, bool replaces)
{
    if (rp->st.has_snap && index < rp->st.snap_index)
        return refuse(rp, off,
                      "snapshot marker %" PRIu64 " is older than the marker %" PRIu64 " logged before it",
                      index, rp->st.snap_index);
    rp->st.has_snap = true;
    rp->st.snap_index = index;
    rp->st.snap_term = term;
    if (replaces)
        rp->r->n_entries = 0;
    else
        drop_through(rp, index);
    return 0;
}

static int apply_entry(struct replay *rp, uint64_t off, const uint8_t *p, uint32_t len)
{
    struct wal_replay *r = rp->r;
    struct raft_entry e;
    int rv = raft_entry_decode(p, len, &e);
    if (rv != 0)
        return refuse(rp, off, "entry record does not decode (%s)", raft_strerror(rv));
    if (rp->st.has_snap && e.index <= rp->st.snap_index)
        return refuse(rp, off,
                      "entry %" PRIu64 " is covered by the snapshot marker %" PRIu64 " logged before it",
                      e.index, rp->st.snap_index);
    /* Below the first entry held: that entry did not follow a snapshot marker (older segments were
     * released), so this truncation replaces all of it; the final check ties the log to the marker. */
    if (r->n_entries > 0 && e.index < r->entries[0].index)
        r->n_entries = 0;
    if (r->n_entries == 0) {
        snprintf(rp->base_name, sizeof(rp->base_name), "%s", rp->name);
        rp->base_off = off;
    } else {
        uint64_t first = r->entries[0].index, last = r->entries[r->n_entries - 1].index;
        if (e.index > last + 1)
            return refuse(rp, off, "entry %" PRIu64 " does not follow the log %" PRIu64 "..%" PRIu64, e.index,
                          first, last);
        r->n_entries = (size_t)(e.index - first);
        if (r->n_entries > 0 && e.term < r->entries[r->n_entries - 1].term)
            return refuse(rp, off, "entry %" PRIu64 " has term %" PRIu64 ", lower than the entry before it",
                          e.index, e.term);
    }
    if (r->n_entries == rp->cap) {
        size_t cap = rp->cap ? rp->cap * 2 : 1024;
        struct raft_entry *ne = realloc(r->entries, cap * sizeof(*ne));
        if (ne == NULL) {
            snprintf(rp->err, rp->errlen, "WAL %s: out of memory replaying %s", rp->w->dir, rp->name);
            return -ENOMEM;
        }
        r->entries = ne;
        rp->cap = cap;
    }
    r->entries[r->n_entries++] = e;
    rp->st.last = e.index;
    return 0;
}

static int apply_header(struct replay *rp, const struct wal_seg *seg, const uint8_t *p, uint32_t len)
{
    struct wal *w = rp->w;
    struct wal_replay *r = rp->r;
    if (len != WAL_HEADER_PAYLOAD)
        return refuse(rp, 0, "segment header has the wrong size");
    uint32_t version = le_get32(p);
    uint64_t cluster = le_get64(p + 4), member = le_get64(p + 12);
    uint64_t seq = le_get64(p + 20), first = le_get64(p + 28);
    uint8_t flags = p[36];
    if (version != WAL_FORMAT_VERSION)
        return refuse(rp, 0,
                      "format version %" PRIu32 " is not the supported %d (written by another discoveryd?)",
                      version, WAL_FORMAT_VERSION);
    if (seq != seg->seq || first != seg->first)
        return refuse(rp, 0,
                      "the header says sequence %" PRIu64 ", first index %" PRIu64
                      ": the file was renamed or copied",
                      seq, first);
    if (flags & ~(WAL_HDR_HAS_HS | WAL_HDR_HAS_SNAP))
        return refuse(rp, 0, "segment header has unknown flags");
    if (!rp->have_ids) {
        if ((w->cfg.cluster_id != 0 && cluster != w->cfg.cluster_id) ||
            (w->cfg.member_id != 0 && member != w->cfg.member_id)) {
            snprintf(rp->err, rp->errlen,
                     "WAL %s belongs to cluster %016" PRIx64 " member %016" PRIx64 ", not cluster %016" PRIx64
                     " member %016" PRIx64 ": point --data-dir at this member's own directory",
                     w->dir, cluster, member, w->cfg.cluster_id, w->cfg.member_id);
            return -EINVAL;
        }
        r->version = version;
        r->cluster_id = cluster;
        r->member_id = member;
        rp->have_ids = true;
    } else if (cluster != r->cluster_id || member != r->member_id) {
        return refuse(rp, 0,
                      "this segment belongs to cluster %016" PRIx64 " member %016" PRIx64
                      ", the segments before it to cluster %016" PRIx64 " member %016" PRIx64,
                      cluster, member, r->cluster_id, r->member_id);
    }
    if (flags & WAL_HDR_HAS_HS) {
        if (raft_hard_state_decode(p + 37, RAFT_HARD_STATE_SIZE, &rp->st.hs) != 0)
            return refuse(rp, 0, "segment header holds a malformed hard state");
        rp->st.has_hs = true;
    }
    if (flags & WAL_HDR_HAS_SNAP)
        return apply_snapshot(rp, 0, le_get64(p + 37 + RAFT_HARD_STATE_SIZE),
                              le_get64(p + 45 + RAFT_HARD_STATE_SIZE), false);
    return 0;
}

static int apply_record(struct replay *rp, uint64_t off, uint8_t type, const uint8_t *p, uint32_t len)
{
    switch (type) {
    case WAL_REC_ENTRY:
        return apply_entry(rp, off, p, len);
    case WAL_REC_HARD_STATE:
        if (raft_hard_state_decode(p, len, &rp->st.hs) != 0)
            return refuse(rp, off, "hard state record does not decode");
        rp->st.has_hs = true;
        return 0;
    case WAL_REC_SNAPSHOT:
        if (len != WAL_SNAP_PAYLOAD || p[0] != 1 || (p[1] & ~WAL_SNAP_REPLACES_LOG))
            return refuse(rp, off, "snapshot marker does not decode");
        return apply_snapshot(rp, off, le_get64(p + 2), le_get64(p + 10), p[1] & WAL_SNAP_REPLACES_LOG);
    default:
        return refuse(rp, off, "a segment header in the middle of a segment");
    }
}

/* Is there a record that verifies anywhere in buf[from..size)? */
static bool valid_record_after(const uint8_t *buf, uint64_t size, uint64_t from, uint64_t *at)
{
    for (uint64_t y = from; y + WAL_REC_FRAME < size; y++) {
        uint8_t type;
        const uint8_t *p;
        uint32_t plen;
        uint64_t reclen;
        const char *why;
        /* Cheap filters first: most garbage has an impossible length or type. */
        uint32_t len = le_get32(buf + y);
        if (len == 0 || len > size - y - WAL_REC_FRAME || buf[y + WAL_REC_FRAME] < WAL_REC_HEADER ||
            buf[y + WAL_REC_FRAME] > WAL_REC_SNAPSHOT)
            continue;
        if (wal_parse_record(buf, size, y, &type, &p, &plen, &reclen, &why) == WAL_PARSE_OK) {
            *at = y;
            return true;
        }
    }
    return false;
}

static int read_segment(struct replay *rp, const struct wal_seg *seg, bool newest, uint64_t *repair_off)
{
    struct wal *w = rp->w;
    char path[4096];
    wal_seg_name(rp->name, sizeof(rp->name), seg->seq, seg->first);
    if (wal_path(w, path, sizeof(path), rp->name) != 0) {
        snprintf(rp->err, rp->errlen, "WAL %s: path too long", w->dir);
        return -ENAMETOOLONG;
    }
    int fd = w->io->open(w->io->ctx, path, O_RDONLY, 0);
    uint64_t size = 0;
    int rv = fd < 0 ? fd : w->io->size(w->io->ctx, fd, &size);
    /* A segment is its preallocation plus at most one oversized record: refuse to read a file that
     * could not be one rather than allocate whatever its size says. */
    uint64_t prealloc =
        w->cfg.segment_size > WAL_SEGMENT_SIZE_DEFAULT ? w->cfg.segment_size : WAL_SEGMENT_SIZE_DEFAULT;
    if (rv == 0 && size > prealloc * 4 + WAL_RECORD_MAX) {
        w->io->close(w->io->ctx, fd);
        return refuse(rp, 0, "the file is %" PRIu64 " bytes, more than any segment this WAL writes", size);
    }
    uint8_t *buf = NULL;
    if (rv == 0 && (buf = malloc(size > 0 ? (size_t)size : 1)) == NULL)
        rv = -ENOMEM;
    if (rv == 0) {
        ssize_t n = fileio_pread_all(w->io, fd, buf, (size_t)size, 0);
        rv = n < 0 ? (int)n : (uint64_t)n != size ? -EIO : 0;
    }
    if (fd >= 0)
        w->io->close(w->io->ctx, fd);
    if (rv != 0) {
        free(buf);
        snprintf(rp->err, rp->errlen, "WAL %s: cannot read: %s", path, strerror(-rv));
        return rv;
    }
    /* Keep the image: the entries point into it. */
    uint8_t **bufs = realloc(rp->r->bufs, (rp->r->n_bufs + 1) * sizeof(*bufs));
    if (bufs == NULL) {
        free(buf);
        snprintf(rp->err, rp->errlen, "WAL %s: out of memory", path);
        return -ENOMEM;
    }
    rp->r->bufs = bufs;
    bufs[rp->r->n_bufs++] = buf;

    uint8_t type;
    const uint8_t *p;
    uint32_t plen;
    uint64_t reclen, off = 0;
    const char *why = NULL;
    enum wal_parse ps = wal_parse_record(buf, size, 0, &type, &p, &plen, &reclen, &why);
    if (ps != WAL_PARSE_OK || type != WAL_REC_HEADER)
        return refuse(rp, 0, "the segment header is missing or damaged (%s)",
                      ps == WAL_PARSE_BAD   ? why
                      : ps == WAL_PARSE_END ? "empty"
                                            : "another record type");
    if ((rv = apply_header(rp, seg, p, plen)) != 0)
        return rv;
    off = reclen;
    w->header_end = reclen;
    for (;;) {
        ps = wal_parse_record(buf, size, off, &type, &p, &plen, &reclen, &why);
        if (ps == WAL_PARSE_OK) {
            if ((rv = apply_record(rp, off, type, p, plen)) != 0)
                return rv;
            off += reclen;
            continue;
        }
        if (ps == WAL_PARSE_END) {
            uint64_t i = off;
            while (i < size && buf[i] == 0)
                i++;
            if (i == size)
                break;
            why = "non-zero bytes after the end of the data";
        }
        /* A bad record at off. */
        uint64_t at;
        if (!newest)
            return refuse(rp, off,
                          "%s in a segment that is not the newest (it was synced in full before the next one "
                          "was created, so this is not a torn write)",
                          why);
        if (valid_record_after(buf, size, off + 1, &at))
            return refuse(rp, off, "%s, yet a valid record follows at offset %" PRIu64 " (not a torn tail)",
                          why, at);
        WAL_LOG(w,
                "WAL %s/%s: torn tail at byte offset %" PRIu64 " (%s): cutting off the unacknowledged bytes "
                "%" PRIu64 "..%" PRIu64,
                w->dir, rp->name, off, why, off, size);
        *repair_off = off;
        break;
    }
    if (newest)
        w->off = off;
    return 0;
}

int wal_replay_dir(struct wal *w, struct wal_replay *r, uint64_t *repair_off, char *err, size_t errlen)
{
    struct listing l = {.w = w};
    struct replay rp = {.w = w, .r = r, .err = err, .errlen = errlen};
    *repair_off = UINT64_MAX;
    int rv = w->io->list_dir(w->io->ctx, w->dir, list_one, &l);
    if (rv != 0) {
        snprintf(err, errlen, "WAL %s: cannot list: %s", w->dir, strerror(-rv));
        goto out;
    }
    for (size_t i = 0; i < l.n_tmps; i++) {
        char path[4096];
        if (wal_path(w, path, sizeof(path), l.tmps[i]) == 0 && w->io->unlink(w->io->ctx, path) == 0)
            WAL_LOG(w, "WAL %s: removed %s, a segment whose creation was interrupted", w->dir, l.tmps[i]);
    }
    if (l.n > 1)
        qsort(l.segs, l.n, sizeof(*l.segs), seg_cmp);
    for (size_t i = 0; i < l.n; i++) {
        if (i > 0 && l.segs[i].seq == l.segs[i - 1].seq) {
            wal_seg_name(rp.name, sizeof(rp.name), l.segs[i].seq, l.segs[i].first);
            rv = refuse(&rp, 0, "two segments have sequence number %" PRIu64, l.segs[i].seq);
            goto out;
        }
        if (i > 0 && l.segs[i].seq != l.segs[i - 1].seq + 1) {
            /* Segments are removed oldest first, and only when a durable snapshot covers them, so a
             * hole means an interrupted removal left older files behind. Their entries are all
             * covered by the snapshot marker in the segments after the hole; if not, the check
             * below (entries must follow the snapshot) refuses the open. */
            WAL_LOG(w,
                    "WAL %s: segments %" PRIu64 "..%" PRIu64
                    " are missing; ignoring the entries of the older ones",
                    w->dir, l.segs[i - 1].seq + 1, l.segs[i].seq - 1);
            r->n_entries = 0;
        }
        rv = read_segment(&rp, &l.segs[i], i == l.n - 1, repair_off);
        if (rv != 0)
            goto out;
    }
    if (r->n_entries > 0) {
        uint64_t want = rp.st.has_snap ? rp.st.snap_index + 1 : 1;
        if (r->entries[0].index != want) {
            snprintf(rp.name, sizeof(rp.name), "%s", rp.base_name);
            rv = refuse(&rp, rp.base_off,
                        "the log starts at entry %" PRIu64 " but %s: a segment file is missing",
                        r->entries[0].index,
                        rp.st.has_snap ? "the latest snapshot marker does not reach it"
                                       : "no snapshot marker covers the entries before it");
            goto out;
        }
        rp.st.last = r->entries[r->n_entries - 1].index;
    } else {
        rp.st.last = rp.st.has_snap ? rp.st.snap_index : 0;
    }
    r->hard_state = rp.st.hs;
    r->has_snapshot = rp.st.has_snap;
    r->snapshot_index = rp.st.snap_index;
    r->snapshot_term = rp.st.snap_term;
    w->written = rp.st;
    w->segs = l.segs;
    w->n_segs = l.n;
    w->cap_segs = l.cap;
    l.segs = NULL;
out:
    for (size_t i = 0; i < l.n_tmps; i++)
        free(l.tmps[i]);
    free(l.tmps);
    free(l.segs);
    return rv;
}

void wal_replay_free(struct wal_replay *r)
{
    for (size_t i = 0; i < r->n_bufs; i++)
        free(r->bufs[i]);
    free(r->bufs);
    free(r->entries);
    memset(r, 0, sizeof(*r));
}

int wal_replay_persisted(const struct wal_replay *r, const struct raft_snapshot *snap,
                         struct raft_persisted *out, char *err, size_t errlen)
{
    if (r->has_snapshot != (snap != NULL) ||
        (snap != NULL && (snap->meta.index != r->snapshot_index || snap->meta.term != r->snapshot_term))) {
        snprintf(err, errlen,
                 "the WAL's snapshot marker (%s %" PRIu64 ", term %" PRIu64
                 ") does not match the snapshot loaded (%s %" PRIu64 ", term %" PRIu64 ")",
                 r->has_snapshot ? "index" : "none", r->snapshot_index, r->snapshot_term,
                 snap ? "index" : "none", snap ? snap->meta.index : 0, snap ? snap->meta.term : 0);
        return -EINVAL;
    }
    out->hard_state = r->hard_state;
    out->snapshot = snap;
    out->entries = r->entries;
    out->n_entries = r->n_entries;
    return 0;
}
