/* tests/fuzz/fuzz_wal.c — fuzz target for the WAL reader: arbitrary bytes become 1-3 segment files on
 * the in-memory file system and go through wal_open (listing, record parsing, verification, torn-
 * tail repair). A malformed WAL must be an error, never a crash, a leak or an over-read (ASan); a
 * WAL that opens must replay a contiguous log and accept one more synced entry after its repair.
 *
 * Input: [u8 flags|n-1] (bit 7: fix every record's CRC first) then, for every segment but the last, [u16
 * length][bytes]; the last takes the rest. A segment is named after the sequence and first index its header
 * claims (if it has one).
 *
 * Without libFuzzer, main() runs every file of the directories/files named on the command line
 * (CI: `fuzz_wal --mutate N tests/fuzz/corpus/wal`: each seed and N mutations of it); `fuzz_wal --make-corpus DIR` writes the seed corpus with
 * the real writer. A longer run with libFuzzer (clang + libclang-rt-14-dev):
 *   CC=clang cmake -S . -B build-fuzz -DDISCOVERYD_FUZZ=ON -DDISCOVERYD_SANITIZE=ON &&
 *   cmake --build build-fuzz --target fuzz_wal_libfuzzer &&
 *   build-fuzz/tests/fuzz/fuzz_wal_libfuzzer -max_total_time=600 -max_len=16384 tests/fuzz/corpus/wal
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "store/wal_internal.h"
#include "tests/support/fake_fs.h"
#include "tests/support/wal_util.h"
#ifndef DISCOVERYD_LIBFUZZER
#include "tests/fuzz/driver.h"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void quiet(void *arg, const char *fmt, ...) {}

static void check(bool cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_wal: invariant broken: %s\n", what);
        abort();
    }
}

/* With bit 7 of the first input byte set, every record's checksum is made right first, so that the
 * fuzzer gets past the CRC and exercises the semantic checks (indexes, markers, headers). */
static void fix_crcs(uint8_t *p, size_t len)
{
    uint64_t off = 0;
    while (len - off >= WAL_REC_FRAME + 1) {
        uint32_t n = le_get32(p + off);
        if (n == 0 || n > len - off - WAL_REC_FRAME)
            break;
        wal_record_frame(p + off, p[off + WAL_REC_FRAME], p + off + WAL_REC_FRAME + 1, n - 1);
        off += WAL_REC_FRAME + (uint64_t)n;
    }
}

static void put_segment(struct fake_fs *fs, size_t i, uint8_t *p, size_t len, bool fix)
{
    if (fix)
        fix_crcs(p, len);
    uint64_t seq = i + 1, first = 1;
    size_t h = WAL_REC_FRAME + 1;
    if (len >= h + 36) {
        seq = le_get64(p + h + 20);
        first = le_get64(p + h + 28);
    }
    char path[64], name[WAL_NAME_LEN + 1];
    wal_seg_name(name, sizeof(name), seq, first);
    snprintf(path, sizeof(path), "/wal/%s", name);
    fake_fs_put(fs, path, p, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct fake_fs *fs = fake_fs_new(size);
    uint8_t *copy = malloc(size);
    if (copy == NULL)
        abort();
    memcpy(copy, data, size);
    size_t nseg = 1 + (data[0] & 0x7f) % 3, pos = 1;
    for (size_t i = 0; i < nseg; i++) {
        size_t len = size - pos;
        if (i + 1 < nseg) {
            if (size - pos < 2)
                break;
            len = (size_t)data[pos] | (size_t)data[pos + 1] << 8;
            pos += 2;
            if (len > size - pos)
                len = size - pos;
        }
        put_segment(fs, i, copy + pos, len, data[0] & 0x80);
        pos += len;
    }
    struct wal_config cfg;
    wal_config_defaults(&cfg);
    cfg.dir = "/wal";
    cfg.segment_size = 4096;
    cfg.io = fake_fs_io(fs);
    cfg.log = quiet;
    struct wal *w = NULL;
    struct wal_replay r;
    char err[1024];
    int orv = wal_open(&w, &cfg, &r, err, sizeof(err));
    if (getenv("FUZZ_WAL_VERBOSE") != NULL)
        printf("  open: %d %s\n", orv, orv ? err : "");
    if (orv == 0) {
        uint64_t from = r.has_snapshot ? r.snapshot_index + 1 : 1, term = 1;
        for (size_t i = 0; i < r.n_entries; i++) {
            check(r.entries[i].index == from + i, "replayed entries are contiguous after the snapshot");
            term = r.entries[i].term;
        }
        uint64_t last = r.n_entries ? r.entries[r.n_entries - 1].index : from - 1;
        size_t n = r.n_entries;
        if (r.snapshot_term > term)
            term = r.snapshot_term;
        wal_replay_free(&r);
        /* Writing after the repair works and survives a reopen. */
        const struct wal_seg *cur = &w->segs[w->n_segs - 1];
        if (last < UINT64_MAX / 2 && cur->seq < UINT32_MAX) {
            uint8_t buf[ENTRY_DATA_MAX];
            struct raft_entry e;
            wal_test_entry(&e, buf, last + 1, term);
            check(wal_append(w, &e, 1) == 0 && wal_sync(w) == 0, "append after open");
            wal_close(w);
            w = NULL;
            int rv = wal_open(&w, &cfg, &r, err, sizeof(err));
            if (rv != 0)
                fprintf(stderr, "fuzz_wal: reopen failed: %s\n", err);
            check(rv == 0, "reopen after an append");
            check(r.n_entries == n + 1 && r.entries[n].index == last + 1, "the appended entry is replayed");
        }
    }
    wal_replay_free(&r);
    wal_close(w);
    fake_fs_free(fs);
    free(copy);
    return 0;
}

#ifndef DISCOVERYD_LIBFUZZER


/* ---- seed corpus, written with the real writer ---- */

struct corpus {
    const char *dir;
    int n;
};

static void emit(struct corpus *c, const char *name, struct fake_fs *fs, const char **paths, size_t nseg,
                 void (*damage)(uint8_t *img, size_t *len))
{
    uint8_t out[1 << 16];
    size_t len = 1;
    out[0] = (uint8_t)(nseg - 1);
    for (size_t i = 0; i < nseg; i++) {
        size_t sl;
        uint8_t *img = fake_fs_get(fs, paths[i], &sl);
        /* Drop the preallocated zeros after the data: the reader treats the end of file alike. */
        uint64_t end = 0, reclen;
        uint8_t type;
        const uint8_t *p;
        uint32_t plen;
        const char *why;
        while (wal_parse_record(img, sl, end, &type, &p, &plen, &reclen, &why) == WAL_PARSE_OK)
            end += reclen;
        sl = (size_t)end;
        if (i + 1 == nseg && damage != NULL)
            damage(img, &sl);
        if (i + 1 < nseg) {
            out[len++] = (uint8_t)sl;
            out[len++] = (uint8_t)(sl >> 8);
        }
        memcpy(out + len, img, sl);
        len += sl;
        free(img);
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", c->dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(out, 1, len, f) != len)
        abort();
    fclose(f);
    c->n++;
}

struct seglist {
    char paths[8][64];
    const char *ptrs[8];
    size_t n;
};
static int collect(void *arg, const char *name)
{
    struct seglist *l = arg;
    if (strlen(name) == WAL_NAME_LEN && l->n < 8)
        snprintf(l->paths[l->n++], 64, "/wal/%s", name);
    return 0;
}
static int cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}
static void segments(struct fake_fs *fs, struct seglist *l)
{
    l->n = 0;
    const struct fileio *io = fake_fs_io(fs);
    io->list_dir(io->ctx, "/wal", collect, l);
    for (size_t i = 0; i < l->n; i++)
        l->ptrs[i] = l->paths[i];
    qsort(l->ptrs, l->n, sizeof(l->ptrs[0]), cmp);
}

static void tear(uint8_t *img, size_t *len)
{
    *len -= 7;
}
static void flip_middle(uint8_t *img, size_t *len)
{
    img[*len / 2] ^= 0x08;
}
static void junk_tail(uint8_t *img, size_t *len)
{
    memcpy(img + *len, "\x13\x37garbage", 9);
    *len += 9;
}
static void huge_length(uint8_t *img, size_t *len)
{
    memcpy(img + *len, "\xff\xff\xff\x7f\x00\x00\x00\x00\x02", 9);
    *len += 9;
}

static struct wal *writer(struct fake_fs *fs, uint64_t seg_size)
{
    struct wal_config cfg;
    wal_config_defaults(&cfg);
    cfg.dir = "/wal";
    cfg.segment_size = seg_size;
    cfg.io = fake_fs_io(fs);
    cfg.cluster_id = 0xABC;
    cfg.member_id = 2;
    struct wal *w;
    struct wal_replay r;
    char err[512];
    if (wal_open(&w, &cfg, &r, err, sizeof(err)) != 0)
        abort();
    wal_replay_free(&r);
    return w;
}

static void entries(struct wal *w, uint64_t from, uint64_t to, uint64_t term)
{
    for (uint64_t i = from; i <= to; i++) {
        uint8_t buf[ENTRY_DATA_MAX];
        struct raft_entry e;
        wal_test_entry(&e, buf, i, term);
        if (wal_append(w, &e, 1) != 0)
            abort();
    }
}

static int make_corpus(const char *dir)
{
    mkdir(dir, 0755);
    struct corpus c = {dir, 0};
    struct raft_hard_state hs = {.term = 2, .vote = 1, .commit = 5};
    /* 1: a fresh WAL; 2: entries, hard state, marker; 3-7: the same, damaged. */
    struct fake_fs *fs = fake_fs_new(1);
    struct wal *w = writer(fs, 4096);
    struct seglist l;
    segments(fs, &l);
    emit(&c, "fresh", fs, l.ptrs, l.n, NULL);
    entries(w, 1, 12, 1);
    wal_set_hard_state(w, &hs);
    wal_snapshot(w, 4, 1, false);
    entries(w, 13, 14, 2);
    wal_sync(w);
    segments(fs, &l);
    emit(&c, "one-segment", fs, l.ptrs, l.n, NULL);
    emit(&c, "torn-tail", fs, l.ptrs, l.n, tear);
    emit(&c, "flipped-middle", fs, l.ptrs, l.n, flip_middle);
    emit(&c, "junk-after-end", fs, l.ptrs, l.n, junk_tail);
    emit(&c, "huge-length", fs, l.ptrs, l.n, huge_length);
    /* Received snapshot replacing the log. */
    wal_snapshot(w, 40, 3, true);
    entries(w, 41, 43, 3);
    wal_sync(w);
    segments(fs, &l);
    emit(&c, "received-snapshot", fs, l.ptrs, l.n, NULL);
    wal_close(w);
    fake_fs_free(fs);
    /* Three small segments with a truncation, then a release. */
    fs = fake_fs_new(2);
    w = writer(fs, 512);
    for (uint64_t i = 1; i <= 16; i++) {
        entries(w, i, i, 1);
        wal_sync(w);
    }
    entries(w, 14, 18, 2);
    wal_set_hard_state(w, &hs);
    wal_sync(w);
    segments(fs, &l);
    if (l.n > 3) {
        emit(&c, "first-segment-missing", fs, l.ptrs + l.n - 3, 3, NULL);
        l.n = 3;
    }
    emit(&c, "three-segments", fs, l.ptrs, l.n, NULL);
    emit(&c, "three-segments-torn", fs, l.ptrs, l.n, tear);
    wal_snapshot(w, 10, 1, false);
    wal_sync(w);
    wal_release_before(w, 10);
    segments(fs, &l);
    if (l.n > 3)
        l.n = 3;
    emit(&c, "released", fs, l.ptrs, l.n, NULL);
    emit(&c, "released-flipped", fs, l.ptrs, l.n, flip_middle);
    wal_close(w);
    fake_fs_free(fs);
    printf("wrote %d seeds to %s\n", c.n, dir);
    return 0;
}

int main(int argc, char **argv)
{
    return fuzz_driver_main("fuzz_wal", argc, argv, make_corpus);
}
#endif
