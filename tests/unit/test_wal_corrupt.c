/* tests/unit/test_wal_corrupt.c — recovery from damaged segments: a torn last record at every byte
 * offset is cut off with a log line; a flipped bit in every byte (length, crc, type, payload) of the
 * last record is cut off too, while the same damage in a middle record or an older segment refuses
 * the open with a message naming the file, the byte offset, what is wrong and what to do.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "store/wal_internal.h"
#include "tests/support/fake_fs.h"
#include "tests/support/wal_util.h"

#define N_ENTRIES 60

struct fx {
    struct fake_fs *fs;
    struct wal_config cfg;
    struct logcap log;
    char newest[128], older[128]; /* paths */
    uint8_t *img_newest, *img_older;
    size_t len_newest, len_older;
    uint64_t newest_first; /* first entry index whose record is in the newest segment */
    uint64_t n_entries;
    char err[1024];
};

static uint64_t rec_offsets(const uint8_t *img, size_t len, uint64_t *offs, size_t cap)
{
    uint64_t off = 0, n = 0;
    for (;;) {
        uint8_t type;
        const uint8_t *p;
        uint32_t plen;
        uint64_t reclen;
        const char *why;
        if (wal_parse_record(img, len, off, &type, &p, &plen, &reclen, &why) != WAL_PARSE_OK)
            break;
        assert_true(n < cap);
        offs[n++] = off;
        off += reclen;
    }
    offs[n] = off; /* end of data */
    return n;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->fs = fake_fs_new(1);
    wal_config_defaults(&f->cfg);
    f->cfg.dir = "/wal";
    f->cfg.segment_size = 2048;
    f->cfg.io = fake_fs_io(f->fs);
    f->cfg.log = logcap_fn;
    f->cfg.log_arg = &f->log;
    struct wal *w;
    struct wal_replay r;
    if (wal_open(&w, &f->cfg, &r, f->err, sizeof(f->err)) != 0)
        return -1;
    wal_replay_free(&r);
    /* At least N_ENTRIES, over two segments or more, with room left in the newest for the entry
     * expect_recovered() appends (so every reopen sees the same two files). */
    uint64_t i;
    for (i = 1; i <= N_ENTRIES || w->n_segs < 2 || w->segs[w->n_segs - 1].first + 4 > i ||
                w->off + 200 > f->cfg.segment_size;
         i++) {
        uint8_t buf[ENTRY_DATA_MAX];
        struct raft_entry e;
        wal_test_entry(&e, buf, i, 1);
        wal_append(w, &e, 1);
        if (wal_sync(w) != 0)
            return -1;
    }
    f->n_entries = i - 1;
    char name[WAL_NAME_LEN + 1];
    wal_seg_name(name, sizeof(name), w->segs[w->n_segs - 1].seq, w->segs[w->n_segs - 1].first);
    snprintf(f->newest, sizeof(f->newest), "/wal/%s", name);
    f->newest_first = w->segs[w->n_segs - 1].first;
    wal_seg_name(name, sizeof(name), w->segs[w->n_segs - 2].seq, w->segs[w->n_segs - 2].first);
    snprintf(f->older, sizeof(f->older), "/wal/%s", name);
    wal_close(w);
    f->img_newest = fake_fs_get(f->fs, f->newest, &f->len_newest);
    f->img_older = fake_fs_get(f->fs, f->older, &f->len_older);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    free(f->img_newest);
    free(f->img_older);
    fake_fs_free(f->fs);
    free(f);
    return 0;
}

/* Puts both images back (durably), then replaces one file with img. */
static void install(struct fx *f, const char *path, const uint8_t *img, size_t len)
{
    fake_fs_put(f->fs, f->newest, f->img_newest, f->len_newest);
    fake_fs_put(f->fs, f->older, f->img_older, f->len_older);
    fake_fs_put(f->fs, path, img, len);
}

static int reopen(struct fx *f, struct wal_replay *r, struct wal **w)
{
    memset(&f->log, 0, sizeof(f->log));
    f->err[0] = '\0';
    return wal_open(w, &f->cfg, r, f->err, sizeof(f->err));
}

/* Opens, expects success with entries 1..last, then proves writing continues cleanly there. */
static void expect_recovered(struct fx *f, uint64_t last)
{
    struct wal *w;
    struct wal_replay r;
    int rv = reopen(f, &r, &w);
    if (rv != 0)
        fail_msg("open refused: %s", f->err);
    assert_int_equal(r.n_entries, last);
    for (size_t i = 0; i < r.n_entries; i++) {
        assert_int_equal(r.entries[i].index, i + 1);
        assert_true(wal_test_entry_ok(&r.entries[i]));
    }
    wal_replay_free(&r);
    uint8_t buf[ENTRY_DATA_MAX];
    struct raft_entry e;
    wal_test_entry(&e, buf, last + 1, 2);
    assert_int_equal(wal_append(w, &e, 1), 0);
    assert_int_equal(wal_sync(w), 0);
    wal_close(w);
    struct logcap saved = f->log;
    assert_int_equal(reopen(f, &r, &w), 0);
    assert_int_equal(r.n_entries, last + 1);
    assert_int_equal(r.entries[last].term, 2);
    assert_int_equal(f->log.n, 0); /* the repair left nothing to repair */
    wal_replay_free(&r);
    wal_close(w);
    f->log = saved;
}

static void expect_refused(struct fx *f, const char *path, uint64_t off, const char *what)
{
    struct wal *w = NULL;
    struct wal_replay r;
    int rv = reopen(f, &r, &w);
    wal_replay_free(&r);
    wal_close(w);
    if (rv != -EBADMSG)
        fail_msg("expected a refusal at %s:%" PRIu64 ", got %d (%s)", path, off, rv, f->err);
    char where[256];
    snprintf(where, sizeof(where), "WAL %s, byte offset %" PRIu64 ": ", path, off);
    if (strstr(f->err, where) == NULL || strstr(f->err, what) == NULL ||
        strstr(f->err, "restore the data dir from a backup, or remove it") == NULL)
        fail_msg("message does not name '%s' and '%s': %s", where, what, f->err);
}

static void test_torn_last_record_at_every_byte_offset_is_cut_off(void **state)
{
    struct fx *f = *state;
    uint64_t offs[256];
    uint64_t n = rec_offsets(f->img_newest, f->len_newest, offs, 255);
    uint64_t last = offs[n - 1], end = offs[n];
    uint8_t *img = malloc(f->len_newest);
    for (int garbage = 0; garbage < 2; garbage++) {
        for (uint64_t cut = 0; cut < end - last; cut++) {
            memcpy(img, f->img_newest, f->len_newest);
            /* What the disk kept of the torn write: a prefix, then zeros or junk. */
            for (uint64_t i = last + cut; i < end; i++)
                img[i] = garbage ? (uint8_t)(0xA5 ^ i) : 0;
            install(f, f->newest, img, f->len_newest);
            expect_recovered(f, f->n_entries - 1);
            if (cut == 0 && !garbage) {
                assert_int_equal(f->log.n, 0); /* nothing written: a clean end */
            } else {
                char want[160];
                snprintf(want, sizeof(want), "%s: torn tail at byte offset %" PRIu64, f->newest, last);
                if (f->log.n != 1 || strstr(f->log.last, want) == NULL)
                    fail_msg("cut %" PRIu64 " garbage %d: log '%s'", cut, garbage, f->log.all);
            }
        }
    }
    free(img);
}

static const char *region_of(uint64_t i)
{
    return i < 4 ? "length" : i < 8 ? "crc" : i == 8 ? "type" : "payload";
}

static void test_flipped_bit_in_last_record_is_a_torn_tail(void **state)
{
    struct fx *f = *state;
    uint64_t offs[256];
    uint64_t n = rec_offsets(f->img_newest, f->len_newest, offs, 255);
    uint64_t last = offs[n - 1], end = offs[n];
    uint8_t *img = malloc(f->len_newest);
    int regions = 0;
    for (uint64_t i = 0; i < end - last; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(img, f->img_newest, f->len_newest);
            img[last + i] ^= (uint8_t)(1u << bit);
            install(f, f->newest, img, f->len_newest);
            expect_recovered(f, f->n_entries - 1);
            char want[160];
            snprintf(want, sizeof(want), "torn tail at byte offset %" PRIu64, last);
            if (f->log.n != 1 || strstr(f->log.last, want) == NULL)
                fail_msg("%s byte %" PRIu64 " bit %d: log '%s'", region_of(i), i, bit, f->log.all);
        }
        regions |= 1 << (i < 4 ? 0 : i < 8 ? 1 : i == 8 ? 2 : 3);
    }
    assert_int_equal(regions, 15);
    free(img);
}

static void flip_and_refuse(struct fx *f, const char *path, const uint8_t *orig, size_t len, uint64_t rec_off,
                            uint64_t rec_len, const char *extra)
{
    uint8_t *img = malloc(len);
    for (uint64_t i = 0; i < rec_len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(img, orig, len);
            img[rec_off + i] ^= (uint8_t)(1u << bit);
            install(f, path, img, len);
            /* The crc covers length, type and payload: every flip is a checksum mismatch, unless the
             * length became impossible first. */
            const char *what = i < 4 ? "" : "checksum mismatch";
            expect_refused(f, path, rec_off, what);
            if (i < 4 && strstr(f->err, "checksum mismatch") == NULL &&
                strstr(f->err, "out of range") == NULL && strstr(f->err, "cut short") == NULL)
                fail_msg("length flip: %s", f->err);
            assert_non_null(strstr(f->err, extra));
        }
    }
    free(img);
}

static void test_flipped_bit_in_a_middle_record_refuses_the_open(void **state)
{
    struct fx *f = *state;
    uint64_t offs[256];
    uint64_t n = rec_offsets(f->img_newest, f->len_newest, offs, 255);
    assert_true(n >= 4);
    uint64_t k = n / 2;
    flip_and_refuse(f, f->newest, f->img_newest, f->len_newest, offs[k], offs[k + 1] - offs[k],
                    "yet a valid record follows");
}

static void test_flipped_bit_in_an_older_segment_refuses_the_open(void **state)
{
    struct fx *f = *state;
    uint64_t offs[256];
    uint64_t n = rec_offsets(f->img_older, f->len_older, offs, 255);
    assert_true(n >= 3);
    /* Its last record: in the newest segment this would be a torn tail, here it is corruption. */
    flip_and_refuse(f, f->older, f->img_older, f->len_older, offs[n - 1], offs[n] - offs[n - 1],
                    "not the newest");
    flip_and_refuse(f, f->older, f->img_older, f->len_older, offs[1], offs[2] - offs[1], "not the newest");
}

static void test_junk_after_the_end_of_an_older_segment_refuses_the_open(void **state)
{
    struct fx *f = *state;
    uint64_t offs[256];
    uint64_t n = rec_offsets(f->img_older, f->len_older, offs, 255);
    uint8_t *img = malloc(f->len_older);
    memcpy(img, f->img_older, f->len_older);
    img[f->len_older - 3] = 0x01;
    install(f, f->older, img, f->len_older);
    expect_refused(f, f->older, offs[n], "non-zero bytes after the end of the data");
    free(img);
}

static void test_junk_after_the_end_of_the_newest_segment_is_cut_off(void **state)
{
    struct fx *f = *state;
    uint8_t *img = malloc(f->len_newest);
    memcpy(img, f->img_newest, f->len_newest);
    img[f->len_newest - 3] = 0x01;
    install(f, f->newest, img, f->len_newest);
    expect_recovered(f, f->n_entries);
    assert_non_null(strstr(f->log.last, "non-zero bytes after the end of the data"));
    free(img);
}

static void test_damaged_header_of_the_newest_segment_refuses_the_open(void **state)
{
    struct fx *f = *state;
    uint8_t *img = malloc(f->len_newest);
    memcpy(img, f->img_newest, f->len_newest);
    img[20] ^= 0x10;
    install(f, f->newest, img, f->len_newest);
    expect_refused(f, f->newest, 0, "the segment header is missing or damaged (checksum mismatch)");
    free(img);
}

static void test_valid_records_with_inconsistent_indexes_refuse_the_open(void **state)
{
    struct fx *f = *state;
    /* Re-frame the newest segment's last entry as index + 5: a gap, with a valid checksum. */
    uint64_t offs[256];
    uint64_t n = rec_offsets(f->img_newest, f->len_newest, offs, 255);
    uint8_t *img = malloc(f->len_newest);
    memcpy(img, f->img_newest, f->len_newest);
    uint64_t at = offs[n - 1];
    uint32_t plen = le_get32(img + at) - 1;
    uint8_t *payload = img + at + WAL_REC_FRAME + 1;
    le_put64(payload + 9, le_get64(payload + 9) + 5); /* version, term, then index */
    wal_record_frame(img + at, WAL_REC_ENTRY, payload, plen);
    install(f, f->newest, img, f->len_newest);
    expect_refused(f, f->newest, at, "does not follow the log");
    free(img);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_torn_last_record_at_every_byte_offset_is_cut_off),
        T(test_flipped_bit_in_last_record_is_a_torn_tail),
        T(test_flipped_bit_in_a_middle_record_refuses_the_open),
        T(test_flipped_bit_in_an_older_segment_refuses_the_open),
        T(test_junk_after_the_end_of_an_older_segment_refuses_the_open),
        T(test_junk_after_the_end_of_the_newest_segment_is_cut_off),
        T(test_damaged_header_of_the_newest_segment_refuses_the_open),
        T(test_valid_records_with_inconsistent_indexes_refuse_the_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
