/* tests/unit/test_wal_log.c — the WAL's log semantics on the real file system (fileio_posix) and on
 * the fake one: record framing, append/sync/reopen, roll-over, truncation, snapshot markers,
 * release_before, ownership checks, and the mapping onto raft_new().
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "store/wal_internal.h"
#include "tests/support/fake_fs.h"
#include "tests/support/wal_util.h"

struct fx {
    char root[64];
    char dir[96];
    struct logcap log;
    struct wal_config cfg;
    struct wal *w;
    struct wal_replay r;
    char err[1024];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->root, sizeof(f->root), "/tmp/dd-wal-test-XXXXXX");
    if (mkdtemp(f->root) == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "%s/wal", f->root);
    wal_config_defaults(&f->cfg);
    f->cfg.dir = f->dir;
    f->cfg.segment_size = 4096;
    f->cfg.cluster_id = 0xC1;
    f->cfg.member_id = 0x3;
    f->cfg.log = logcap_fn;
    f->cfg.log_arg = &f->log;
    *state = f;
    return 0;
}

static int rm_cb(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    struct dirent *de;
    char p[512];
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    return rmdir(dir);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    wal_close(f->w);
    wal_replay_free(&f->r);
    rm_cb(f->dir);
    rmdir(f->root);
    free(f);
    return 0;
}

static void open_ok(struct fx *f)
{
    wal_close(f->w);
    f->w = NULL;
    wal_replay_free(&f->r);
    int rv = wal_open(&f->w, &f->cfg, &f->r, f->err, sizeof(f->err));
    if (rv != 0)
        fail_msg("wal_open: %d %s", rv, f->err);
}

static int open_rv(struct fx *f)
{
    wal_close(f->w);
    f->w = NULL;
    wal_replay_free(&f->r);
    f->err[0] = '\0';
    return wal_open(&f->w, &f->cfg, &f->r, f->err, sizeof(f->err));
}

/* Appends entries [from, to] in term. */
static void append_range(struct wal *w, uint64_t from, uint64_t to, uint64_t term)
{
    for (uint64_t i = from; i <= to; i++) {
        uint8_t buf[ENTRY_DATA_MAX];
        struct raft_entry e;
        wal_test_entry(&e, buf, i, term);
        assert_int_equal(wal_append(w, &e, 1), 0);
    }
}

/* The replay holds exactly [from, to], all well-formed, with terms given by term_of. */
static void expect_entries(const struct wal_replay *r, uint64_t from, uint64_t to)
{
    assert_int_equal(r->n_entries, to >= from ? to - from + 1 : 0);
    for (size_t i = 0; i < r->n_entries; i++) {
        assert_int_equal(r->entries[i].index, from + i);
        assert_true(wal_test_entry_ok(&r->entries[i]));
    }
}

static size_t count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += strlen(de->d_name) == WAL_NAME_LEN && strstr(de->d_name, ".wal") != NULL;
    closedir(d);
    return n;
}

static void test_record_frame_parses_back_and_rejects_damage(void **state)
{
    uint8_t payload[5] = {1, 2, 3, 4, 5}, rec[WAL_REC_FRAME + 1 + 5 + 4] = {0};
    wal_record_frame(rec, WAL_REC_ENTRY, payload, 5);
    assert_int_equal(le_get32(rec), 6);
    uint8_t type;
    const uint8_t *p;
    uint32_t plen;
    uint64_t reclen;
    const char *why = NULL;
    assert_int_equal(wal_parse_record(rec, sizeof(rec), 0, &type, &p, &plen, &reclen, &why), WAL_PARSE_OK);
    assert_int_equal(type, WAL_REC_ENTRY);
    assert_int_equal(plen, 5);
    assert_int_equal(reclen, 14);
    assert_memory_equal(p, payload, 5);
    assert_int_equal(wal_parse_record(rec, sizeof(rec), 14, &type, &p, &plen, &reclen, &why), WAL_PARSE_END);
    rec[10] ^= 0x40;
    assert_int_equal(wal_parse_record(rec, sizeof(rec), 0, &type, &p, &plen, &reclen, &why), WAL_PARSE_BAD);
    assert_string_equal(why, "checksum mismatch");
}

static void test_fresh_open_creates_one_preallocated_segment(void **state)
{
    struct fx *f = *state;
    open_ok(f);
    assert_int_equal(f->r.n_entries, 0);
    assert_false(f->r.has_snapshot);
    assert_int_equal(f->r.cluster_id, 0xC1);
    char path[256];
    snprintf(path, sizeof(path), "%s/0000000000000001-0000000000000001.wal", f->dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 4096);
    assert_int_equal(f->log.n, 0);
}

static void test_synced_entries_and_hard_state_replay_after_reopen(void **state)
{
    struct fx *f = *state;
    open_ok(f);
    append_range(f->w, 1, 20, 1);
    struct raft_hard_state hs = {.term = 1, .vote = 3, .commit = 17};
    assert_int_equal(wal_set_hard_state(f->w, &hs), 0);
    assert_int_equal(wal_sync(f->w), 0);
    open_ok(f);
    expect_entries(&f->r, 1, 20);
    assert_int_equal(f->r.hard_state.term, 1);
    assert_int_equal(f->r.hard_state.vote, 3);
    assert_int_equal(f->r.hard_state.commit, 17);
    /* Appending continues after the replayed log. */
    append_range(f->w, 21, 22, 2);
    assert_int_equal(wal_sync(f->w), 0);
    open_ok(f);
    expect_entries(&f->r, 1, 22);
    assert_int_equal(f->r.entries[21].term, 2);
}

static void test_unsynced_records_are_not_replayed(void **state)
{
    struct fx *f = *state;
    open_ok(f);
    append_range(f->w, 1, 5, 1);
    assert_int_equal(wal_sync(f->w), 0);
    append_range(f->w, 6, 9, 1);
    open_ok(f); /* closed without wal_sync */
    expect_entries(&f->r, 1, 5);
}

static void test_rollover_spreads_the_log_over_several_segments(void **state)
{
    struct fx *f = *state;
    f->cfg.segment_size = 1024;
    open_ok(f);
    struct raft_hard_state hs = {.term = 4, .vote = 1, .commit = 0};
    for (uint64_t i = 1; i <= 300; i++) {
        append_range(f->w, i, i, 1 + i / 100);
        if (i % 7 == 0) {
            hs.commit = i;
            assert_int_equal(wal_set_hard_state(f->w, &hs), 0);
        }
        if (i % 3 == 0)
            assert_int_equal(wal_sync(f->w), 0);
    }
    assert_int_equal(wal_sync(f->w), 0);
    struct wal_stats ws;
    wal_stats(f->w, &ws);
    assert_true(ws.segments_created >= 10);
    assert_int_equal(count_segments(f->dir), ws.segments_created);
    open_ok(f);
    expect_entries(&f->r, 1, 300);
    assert_int_equal(f->r.hard_state.commit, 294);
    assert_int_equal(f->r.hard_state.term, 4);
}

static void test_oversized_record_fills_a_segment_of_its_own(void **state)
{
    struct fx *f = *state;
    f->cfg.segment_size = 512;
    open_ok(f);
    append_range(f->w, 1, 2, 1);
    static uint8_t big[2000];
    memset(big, 0xAB, sizeof(big));
    struct raft_entry e = {.term = 1, .index = 3, .type = RAFT_ENTRY_NORMAL, .len = sizeof(big), .data = big};
    assert_int_equal(wal_append(f->w, &e, 1), 0);
    append_range(f->w, 4, 6, 1);
    assert_int_equal(wal_sync(f->w), 0);
    open_ok(f);
    assert_int_equal(f->r.n_entries, 6);
    assert_int_equal(f->r.entries[2].len, sizeof(big));
    assert_memory_equal(f->r.entries[2].data, big, sizeof(big));
    assert_int_equal(count_segments(f->dir), 3);
}

static void test_append_at_lower_index_truncates_the_log(void **state)
{
    struct fx *f = *state;
    f->cfg.segment_size = 1024;
    open_ok(f);
    append_range(f->w, 1, 60, 1);
    assert_int_equal(wal_sync(f->w), 0);
    append_range(f->w, 41, 45, 2); /* a new leader overwrote 41..60 */
    assert_int_equal(wal_sync(f->w), 0);
    open_ok(f);
    expect_entries(&f->r, 1, 45);
    assert_int_equal(f->r.entries[39].term, 1);
    assert_int_equal(f->r.entries[40].term, 2);
    /* Truncation that crosses segments, in one batch with the new entries. */
    append_range(f->w, 10, 12, 3);
    append_range(f->w, 13, 13, 3);
    assert_int_equal(wal_sync(f->w), 0);
    open_ok(f);
    expect_entries(&f->r, 1, 13);
    assert_int_equal(f->r.entries[9].term, 3);
}

static void test_append_refuses_gaps_and_indexes_under_the_snapshot(void **state)
{
    struct fx *f = *state;
    open_ok(f);
    append_range(f->w, 1, 3, 1);
    uint8_t buf[ENTRY_DATA_MAX];
    struct raft_entry e;
    wal_test_entry(&e, buf, 5, 1);
    assert_int_equal(wal_append(f->w, &e, 1), -EINVAL);
    wal_test_entry(&e, buf, 0, 1);
    assert_int_equal(wal_append(f->w, &e, 1), -EINVAL);
    assert_int_equal(wal_snapshot(f->w, 2, 1, false), 0);
    wal_test_entry(&e, buf, 2, 1);
    assert_int_equal(wal_append(f->w, &e, 1), -EINVAL);
    wal_test_entry(&e, buf, 3, 0);
    assert_int_equal(wal_append(f->w, &e, 1), -EINVAL);         /* term 0 */
    assert_int_equal(wal_snapshot(f->w, 1, 1, false), -EINVAL); /* backwards */
    assert_int_equal(wal_last_index(f->w), 3);
}

static void test_compaction_marker_keeps_the_tail_received_snapshot_drops_all(void **state)
{
    struct fx *f = *state;
    open_ok(f);
    append_range(f->w, 1, 30, 1);
    assert_int_equal(wal_snapshot(f->w, 20, 1, false), 0);
    assert_int_equal(wal_sync(f->w), 0);
    open_ok(f);
    assert_true(f->r.has_snapshot);
    assert_int_equal(f->r.snapshot_index, 20);
    assert_int_equal(f->r.snapshot_term, 1);
    expect_entries(&f->r, 21, 30);
    /* A received snapshot at 100 replaces the log; entries continue at 101. */
    assert_int_equal(wal_snapshot(f->w, 100, 5, true), 0);
    append_range(f->w, 101, 103, 5);
    assert_int_equal(wal_sync(f->w), 0);
    open_ok(f);
    assert_int_equal(f->r.snapshot_index, 100);
    assert_int_equal(f->r.snapshot_term, 5);
    expect_entries(&f->r, 101, 103);
}

static void test_release_before_removes_only_covered_segments(void **state)
{
    struct fx *f = *state;
    f->cfg.segment_size = 1024;
    open_ok(f);
    append_range(f->w, 1, 200, 1);
    struct raft_hard_state hs = {.term = 1, .vote = 3, .commit = 150};
    assert_int_equal(wal_set_hard_state(f->w, &hs), 0);
    assert_int_equal(wal_sync(f->w), 0);
    size_t before = count_segments(f->dir);
    assert_true(before >= 8);
    /* No durable snapshot marker yet: refused. */
    assert_int_equal(wal_release_before(f->w, 100), -EINVAL);
    assert_int_equal(wal_snapshot(f->w, 100, 1, false), 0);
    assert_int_equal(wal_release_before(f->w, 100), -EINVAL); /* buffered, not synced */
    assert_int_equal(wal_sync(f->w), 0);
    assert_int_equal(wal_release_before(f->w, 101), -EINVAL); /* beyond the marker */
    assert_int_equal(wal_release_before(f->w, 100), 0);
    size_t after = count_segments(f->dir);
    assert_true(after < before);
    struct wal_stats ws;
    wal_stats(f->w, &ws);
    assert_int_equal(ws.segments_removed, before - after);
    append_range(f->w, 201, 210, 1);
    assert_int_equal(wal_sync(f->w), 0);
    open_ok(f);
    assert_int_equal(f->r.snapshot_index, 100);
    expect_entries(&f->r, 101, 210);
    assert_int_equal(f->r.hard_state.commit, 150);
    /* Everything but the newest segment can go once a snapshot covers the whole log. */
    assert_int_equal(wal_snapshot(f->w, 210, 1, false), 0);
    assert_int_equal(wal_sync(f->w), 0);
    assert_int_equal(wal_release_before(f->w, 210), 0);
    assert_int_equal(count_segments(f->dir), 1);
    open_ok(f);
    assert_int_equal(f->r.snapshot_index, 210);
    assert_int_equal(f->r.n_entries, 0);
    assert_int_equal(f->r.hard_state.commit, 150); /* from the newest segment's header */
}

static void test_wal_of_another_member_is_refused(void **state)
{
    struct fx *f = *state;
    open_ok(f);
    append_range(f->w, 1, 2, 1);
    assert_int_equal(wal_sync(f->w), 0);
    f->cfg.member_id = 4;
    assert_int_equal(open_rv(f), -EINVAL);
    assert_non_null(strstr(f->err, "belongs to cluster 00000000000000c1 member 0000000000000003"));
    assert_non_null(strstr(f->err, "--data-dir"));
    f->cfg.member_id = 0; /* unknown yet: accept the disk's */
    open_ok(f);
    assert_int_equal(f->r.member_id, 3);
}

static void test_interrupted_segment_creation_is_cleaned_up(void **state)
{
    struct fx *f = *state;
    open_ok(f);
    append_range(f->w, 1, 2, 1);
    assert_int_equal(wal_sync(f->w), 0);
    wal_close(f->w);
    f->w = NULL;
    char path[256];
    snprintf(path, sizeof(path), "%s/0000000000000002-0000000000000003.wal.tmp", f->dir);
    FILE *fp = fopen(path, "w");
    fputs("half", fp);
    fclose(fp);
    open_ok(f);
    expect_entries(&f->r, 1, 2);
    assert_int_equal(access(path, F_OK), -1);
    assert_non_null(strstr(f->log.last, "interrupted"));
}

static void test_missing_segment_in_the_middle_is_refused(void **state)
{
    struct fx *f = *state;
    f->cfg.segment_size = 1024;
    open_ok(f);
    append_range(f->w, 1, 100, 1);
    assert_int_equal(wal_sync(f->w), 0);
    wal_close(f->w);
    f->w = NULL;
    /* Remove the second segment by hand. */
    DIR *d = opendir(f->dir);
    struct dirent *de;
    char victim[512] = "";
    while ((de = readdir(d)) != NULL)
        if (!strncmp(de->d_name, "0000000000000002-", 17))
            snprintf(victim, sizeof(victim), "%s/%s", f->dir, de->d_name);
    closedir(d);
    assert_int_equal(unlink(victim), 0);
    assert_int_equal(open_rv(f), -EBADMSG);
    assert_non_null(strstr(f->err, "a segment file is missing"));
    assert_non_null(strstr(f->err, "0000000000000003-"));
    assert_non_null(strstr(f->err, "restore the data dir from a backup"));
}

static void test_a_file_too_large_to_be_a_segment_is_refused_unread(void **state)
{
    struct fx *f = *state;
    open_ok(f);
    wal_close(f->w);
    f->w = NULL;
    char path[256];
    snprintf(path, sizeof(path), "%s/0000000000000001-0000000000000001.wal", f->dir);
    assert_int_equal(truncate(path, 300ll << 20), 0); /* sparse */
    assert_int_equal(open_rv(f), -EBADMSG);
    assert_non_null(strstr(f->err, "0000000000000001-0000000000000001.wal"));
    assert_non_null(strstr(f->err, "the file is 314572800 bytes, more than any segment this WAL writes"));
}

static void test_replay_maps_onto_raft_new(void **state)
{
    struct fx *f = *state;
    open_ok(f);
    struct raft_entry e = {.term = 1, .index = 1, .type = RAFT_ENTRY_NOOP};
    assert_int_equal(wal_append(f->w, &e, 1), 0);
    append_range(f->w, 2, 10, 1);
    assert_int_equal(wal_snapshot(f->w, 4, 1, false), 0);
    struct raft_hard_state hs = {.term = 1, .vote = 1, .commit = 8};
    assert_int_equal(wal_set_hard_state(f->w, &hs), 0);
    assert_int_equal(wal_sync(f->w), 0);
    open_ok(f);
    struct raft_snapshot snap = {.meta = {.index = 4, .term = 1, .conf = {.n = 1, .ids = {1}}}};
    struct raft_persisted p;
    char err[256];
    assert_int_equal(wal_replay_persisted(&f->r, NULL, &p, err, sizeof(err)), -EINVAL);
    struct raft_snapshot wrong = snap;
    wrong.meta.index = 5;
    assert_int_equal(wal_replay_persisted(&f->r, &wrong, &p, err, sizeof(err)), -EINVAL);
    assert_int_equal(wal_replay_persisted(&f->r, &snap, &p, err, sizeof(err)), 0);
    struct raft_config cfg;
    raft_config_defaults(&cfg);
    cfg.id = 1;
    struct raft *r;
    assert_int_equal(raft_new(&r, &cfg, &p, err, sizeof(err)), 0);
    assert_int_equal(raft_last_index(r), 10);
    assert_int_equal(raft_term(r), 1);
    assert_int_equal(raft_snapshot_index(r), 4);
    raft_free(r);
}

/* The same semantics on the fake file system, with short writes. */
static void test_short_writes_are_completed(void **state)
{
    struct fake_fs *fs = fake_fs_new(7);
    fake_fs_short_writes(fs, true);
    struct wal_config cfg;
    wal_config_defaults(&cfg);
    cfg.dir = "/wal";
    cfg.segment_size = 1024;
    cfg.io = fake_fs_io(fs);
    struct wal *w;
    struct wal_replay r;
    char err[512];
    assert_int_equal(wal_open(&w, &cfg, &r, err, sizeof(err)), 0);
    wal_replay_free(&r);
    append_range(w, 1, 100, 1);
    assert_int_equal(wal_sync(w), 0);
    wal_close(w);
    fake_fs_power_cut(fs);
    assert_int_equal(wal_open(&w, &cfg, &r, err, sizeof(err)), 0);
    expect_entries(&r, 1, 100);
    wal_replay_free(&r);
    wal_close(w);
    fake_fs_free(fs);
}

/* The two-step release: detach forgets the covered segments but leaves the files (a crash then
 * replays them and the marker drops what they hold); wal_remove_detached removes them. */
static void test_detached_segments_are_removed_later_and_harmless_until_then(void **state)
{
    struct fx *f = *state;
    f->cfg.segment_size = 1024;
    open_ok(f);
    append_range(f->w, 1, 200, 1);
    assert_int_equal(wal_snapshot(f->w, 150, 1, false), 0);
    assert_int_equal(wal_sync(f->w), 0);
    size_t before = count_segments(f->dir);
    struct wal_detached d;
    assert_int_equal(wal_detach_before(f->w, 151, &d), -EINVAL); /* beyond the marker */
    assert_int_equal(d.n, 0);
    assert_int_equal(wal_detach_before(f->w, 150, &d), 0);
    assert_true(d.n >= 3);
    assert_int_equal(count_segments(f->dir), before); /* nothing unlinked yet */
    /* a second detach finds nothing more to forget */
    struct wal_detached again;
    assert_int_equal(wal_detach_before(f->w, 150, &again), 0);
    assert_int_equal(again.n, 0);
    /* "crash" here: the covered segments are still on disk, and the log replays as it should */
    append_range(f->w, 201, 205, 1);
    assert_int_equal(wal_sync(f->w), 0);
    wal_close(f->w);
    f->w = NULL;
    struct wal *w2 = NULL;
    struct wal_replay r2;
    assert_int_equal(wal_open(&w2, &f->cfg, &r2, f->err, sizeof(f->err)), 0);
    assert_int_equal(r2.snapshot_index, 150);
    expect_entries(&r2, 151, 205);
    wal_replay_free(&r2);
    wal_close(w2);
    /* and the removal, whenever it runs, leaves only what the marker does not cover */
    char why[256] = "";
    size_t n_detached = d.n, now = count_segments(f->dir);
    assert_int_equal(wal_remove_detached(fileio_posix(), &d, why, sizeof(why)), 0);
    assert_int_equal(count_segments(f->dir), now - n_detached);
    assert_null(d.paths);
    open_ok(f);
    assert_int_equal(f->r.snapshot_index, 150);
    expect_entries(&f->r, 151, 205);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_frame_parses_back_and_rejects_damage),
        T(test_fresh_open_creates_one_preallocated_segment),
        T(test_synced_entries_and_hard_state_replay_after_reopen),
        T(test_unsynced_records_are_not_replayed),
        T(test_rollover_spreads_the_log_over_several_segments),
        T(test_oversized_record_fills_a_segment_of_its_own),
        T(test_append_at_lower_index_truncates_the_log),
        T(test_append_refuses_gaps_and_indexes_under_the_snapshot),
        T(test_compaction_marker_keeps_the_tail_received_snapshot_drops_all),
        T(test_release_before_removes_only_covered_segments),
        T(test_detached_segments_are_removed_later_and_harmless_until_then),
        T(test_wal_of_another_member_is_refused),
        T(test_interrupted_segment_creation_is_cleaned_up),
        T(test_missing_segment_in_the_middle_is_refused),
        T(test_a_file_too_large_to_be_a_segment_is_refused_unread),
        T(test_replay_maps_onto_raft_new),
        cmocka_unit_test(test_short_writes_are_completed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
