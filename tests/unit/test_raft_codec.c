/* tests/unit/test_raft_codec.c — the Raft codec: round trips, and every malformed input (truncated,
 * oversized counts, bad versions, flipped bytes) is an error code, never a crash or an overread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "store/raft/raft.h"

static uint8_t *encode(const struct raft_message *m, size_t *len)
{
    size_t sz = raft_msg_size(m);
    uint8_t *buf = malloc(sz);
    assert_int_equal(raft_msg_encode(m, buf, sz, len), 0);
    assert_int_equal(*len, sz);
    return buf;
}

static struct raft_entry ents[3] = {
    {.term = 4, .index = 8, .type = RAFT_ENTRY_NORMAL, .len = 5, .data = (uint8_t *)"hello"},
    {.term = 4, .index = 9, .type = RAFT_ENTRY_NOOP, .len = 0, .data = NULL},
    {.term = 5, .index = 10, .type = RAFT_ENTRY_NORMAL, .len = 3, .data = (uint8_t *)"abc"},
};

static struct raft_message append_msg(void)
{
    return (struct raft_message){.type = RAFT_MSG_APPEND,
                                 .from = 1,
                                 .to = 2,
                                 .term = 5,
                                 .index = 7,
                                 .log_term = 3,
                                 .commit = 6,
                                 .n_entries = 3,
                                 .entries = ents};
}

static void test_append_message_round_trips(void **state)
{
    struct raft_message m = append_msg(), d;
    size_t len;
    uint8_t *buf = encode(&m, &len);
    assert_int_equal(raft_msg_decode(buf, len, &d, NULL), 0);
    assert_int_equal(d.type, RAFT_MSG_APPEND);
    assert_int_equal(d.from, 1);
    assert_int_equal(d.to, 2);
    assert_int_equal(d.term, 5);
    assert_int_equal(d.index, 7);
    assert_int_equal(d.log_term, 3);
    assert_int_equal(d.commit, 6);
    assert_int_equal(d.n_entries, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(d.entries[i].term, ents[i].term);
        assert_int_equal(d.entries[i].index, ents[i].index);
        assert_int_equal(d.entries[i].type, ents[i].type);
        assert_int_equal(d.entries[i].len, ents[i].len);
        if (ents[i].len)
            assert_memory_equal(d.entries[i].data, ents[i].data, ents[i].len);
    }
    raft_msg_release(&d, NULL);
    free(buf);
}

static void test_snapshot_and_flags_round_trip(void **state)
{
    struct raft_message m = {.type = RAFT_MSG_SNAPSHOT, .from = 3, .to = 1, .term = 9};
    m.snapshot.meta.index = 100;
    m.snapshot.meta.term = 8;
    m.snapshot.meta.conf.n = 3;
    m.snapshot.meta.conf.ids[0] = 1;
    m.snapshot.meta.conf.ids[1] = 3;
    m.snapshot.meta.conf.ids[2] = 7;
    m.snapshot.len = 4;
    m.snapshot.data = (uint8_t *)"snap";
    size_t len;
    uint8_t *buf = encode(&m, &len);
    struct raft_message d;
    assert_int_equal(raft_msg_decode(buf, len, &d, NULL), 0);
    assert_int_equal(d.snapshot.meta.index, 100);
    assert_int_equal(d.snapshot.meta.term, 8);
    assert_int_equal(d.snapshot.meta.conf.n, 3);
    assert_int_equal(d.snapshot.meta.conf.ids[2], 7);
    assert_int_equal(d.snapshot.len, 4);
    assert_memory_equal(d.snapshot.data, "snap", 4);
    raft_msg_release(&d, NULL);
    free(buf);

    struct raft_message v = {.type = RAFT_MSG_VOTE, .from = 1, .to = 2, .term = 3, .transfer = true};
    struct raft_message r = {
        .type = RAFT_MSG_VOTE_RESP, .from = 2, .to = 1, .term = 3, .reject = true, .ctx = 77};
    buf = encode(&v, &len);
    assert_int_equal(raft_msg_decode(buf, len, &d, NULL), 0);
    assert_true(d.transfer);
    assert_false(d.reject);
    free(buf);
    buf = encode(&r, &len);
    assert_int_equal(raft_msg_decode(buf, len, &d, NULL), 0);
    assert_true(d.reject);
    assert_int_equal(d.ctx, 77);
    free(buf);
}

static void test_every_truncation_of_a_message_is_malformed(void **state)
{
    struct raft_message m = append_msg(), d;
    size_t len;
    uint8_t *buf = encode(&m, &len);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1); /* exact size: ASan catches any overread */
        memcpy(copy, buf, cut);
        assert_int_equal(raft_msg_decode(copy, cut, &d, NULL), RAFT_EMALFORMED);
        free(copy);
    }
    /* A trailing byte is an error too. */
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 0;
    assert_int_equal(raft_msg_decode(longer, len + 1, &d, NULL), RAFT_EMALFORMED);
    free(longer);
    free(buf);
}

static void test_bad_version_type_flags_and_counts_are_rejected(void **state)
{
    struct raft_message m = append_msg(), d;
    size_t len;
    uint8_t *buf = encode(&m, &len);
    buf[0] = 2;
    assert_int_equal(raft_msg_decode(buf, len, &d, NULL), RAFT_EVERSION);
    buf[0] = 1;
    buf[1] = 0;
    assert_int_equal(raft_msg_decode(buf, len, &d, NULL), RAFT_EMALFORMED);
    buf[1] = RAFT_MSG_TYPE_MAX + 1;
    assert_int_equal(raft_msg_decode(buf, len, &d, NULL), RAFT_EMALFORMED);
    buf[1] = RAFT_MSG_APPEND;
    buf[2] = 0x80;
    assert_int_equal(raft_msg_decode(buf, len, &d, NULL), RAFT_EMALFORMED);
    buf[2] = 0;
    /* An entry count far beyond the bytes left must fail before allocating. */
    size_t count_at = 4 + 8 * 8;
    buf[count_at + 3] = 0x7f;
    assert_int_equal(raft_msg_decode(buf, len, &d, NULL), RAFT_EMALFORMED);
    buf[count_at + 3] = 0;
    /* Entries out of sequence. */
    size_t second_index_at = count_at + 4 + (8 + 8 + 1 + 4 + 5) + 8;
    buf[second_index_at] ^= 1;
    assert_int_equal(raft_msg_decode(buf, len, &d, NULL), RAFT_EMALFORMED);
    buf[second_index_at] ^= 1;
    assert_int_equal(raft_msg_decode(buf, len, &d, NULL), 0);
    raft_msg_release(&d, NULL);
    assert_int_equal(raft_msg_encode(&m, buf, len - 1, &len), RAFT_ETOOSMALL);
    assert_int_equal(raft_msg_decode(NULL, 0, &d, NULL), RAFT_EMALFORMED);
    free(buf);
}

static void test_random_corruption_never_crashes(void **state)
{
    struct raft_message m = append_msg(), d;
    size_t len;
    uint8_t *buf = encode(&m, &len);
    uint64_t x = 0x1234567;
    int ok = 0, bad = 0;
    for (int iter = 0; iter < 20000; iter++) {
        uint8_t *copy = malloc(len);
        memcpy(copy, buf, len);
        for (int k = 0; k < 1 + iter % 4; k++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            copy[(x >> 33) % len] = (uint8_t)(x >> 17);
        }
        size_t l = (x >> 40) % 8 == 0 ? (x >> 20) % (len + 1) : len;
        int rv = raft_msg_decode(copy, l, &d, NULL);
        if (rv == 0) {
            ok++;
            for (uint32_t i = 0; i < d.n_entries; i++)
                assert_true((size_t)(d.entries[i].data - copy) + d.entries[i].len <= l ||
                            d.entries[i].len == 0);
            raft_msg_release(&d, NULL);
        } else {
            assert_true(rv == RAFT_EMALFORMED || rv == RAFT_EVERSION);
            bad++;
        }
        free(copy);
    }
    assert_true(bad > 0);
    free(buf);
}

static void test_entry_hard_state_and_conf_codecs(void **state)
{
    uint8_t buf[128];
    size_t len;
    struct raft_entry e;
    assert_int_equal(raft_entry_encode(&ents[0], buf, sizeof(buf), &len), 0);
    assert_int_equal(len, raft_entry_size(&ents[0]));
    assert_int_equal(raft_entry_decode(buf, len, &e), 0);
    assert_int_equal(e.index, 8);
    assert_memory_equal(e.data, "hello", 5);
    for (size_t cut = 0; cut < len; cut++)
        assert_int_not_equal(raft_entry_decode(buf, cut, &e), 0);
    buf[9 + 8] = 9; /* entry type */
    assert_int_equal(raft_entry_decode(buf, len, &e), RAFT_EMALFORMED);
    assert_int_equal(raft_entry_encode(&ents[0], buf, 3, &len), RAFT_ETOOSMALL);

    struct raft_hard_state hs = {.term = 7, .vote = 3, .commit = 99}, hs2;
    assert_int_equal(raft_hard_state_encode(&hs, buf, sizeof(buf), &len), 0);
    assert_int_equal(len, RAFT_HARD_STATE_SIZE);
    assert_int_equal(raft_hard_state_decode(buf, len, &hs2), 0);
    assert_int_equal(hs2.term, 7);
    assert_int_equal(hs2.vote, 3);
    assert_int_equal(hs2.commit, 99);
    assert_int_equal(raft_hard_state_decode(buf, len - 1, &hs2), RAFT_EMALFORMED);
    buf[0] = 3;
    assert_int_equal(raft_hard_state_decode(buf, len, &hs2), RAFT_EVERSION);
    assert_int_equal(raft_hard_state_encode(&hs, buf, 4, &len), RAFT_ETOOSMALL);

    struct raft_conf c = {.n = 2, .ids = {4, 9}}, c2;
    assert_int_equal(raft_conf_encode(&c, buf, sizeof(buf), &len), 0);
    assert_int_equal(raft_conf_decode(buf, len, &c2), 0);
    assert_int_equal(c2.n, 2);
    assert_int_equal(c2.ids[1], 9);
    buf[2 + 8] = 4; /* duplicate id */
    for (int i = 1; i < 8; i++)
        buf[2 + 8 + i] = 0;
    assert_int_equal(raft_conf_decode(buf, len, &c2), RAFT_EMALFORMED);
    buf[1] = RAFT_MAX_NODES + 1;
    assert_int_equal(raft_conf_decode(buf, len, &c2), RAFT_EMALFORMED);
    struct raft_conf empty = {0};
    assert_int_equal(raft_conf_encode(&empty, buf, sizeof(buf), &len), RAFT_EINVAL);
    assert_int_equal(raft_conf_decode(buf, 0, &c2), RAFT_EMALFORMED);
}

static void test_conf_with_context(void **state)
{
    (void)state;
    uint8_t buf[256];
    size_t len, cl;
    const uint8_t *ctx;
    struct raft_conf c = {.n = 2, .ids = {4, 9}}, c2;
    assert_int_equal(raft_conf_encode_ctx(&c, "members", 7, buf, sizeof(buf), &len), 0);
    assert_int_equal(len, raft_conf_size_ctx(&c, 7));
    assert_int_equal(raft_conf_decode_ctx(buf, len, &c2, &ctx, &cl), 0);
    assert_int_equal(c2.n, 2);
    assert_int_equal(c2.ids[0], 4);
    assert_int_equal(cl, 7);
    assert_memory_equal(ctx, "members", 7);
    /* the core's own decoder takes it too (it ignores the context) */
    assert_int_equal(raft_conf_decode(buf, len, &c2), 0);
    assert_int_equal(c2.ids[1], 9);
    /* without a context: version 1, no context handed out */
    assert_int_equal(raft_conf_encode_ctx(&c, NULL, 0, buf, sizeof(buf), &len), 0);
    assert_int_equal(raft_conf_decode_ctx(buf, len, &c2, &ctx, &cl), 0);
    assert_null(ctx);
    assert_int_equal(cl, 0);
    /* every truncation of one with a context, and a trailing byte, are malformed */
    assert_int_equal(raft_conf_encode_ctx(&c, "members", 7, buf, sizeof(buf), &len), 0);
    for (size_t i = 0; i < len; i++)
        assert_int_not_equal(raft_conf_decode_ctx(buf, i, &c2, &ctx, &cl), 0);
    assert_int_equal(raft_conf_decode_ctx(buf, len + 1, &c2, &ctx, &cl), RAFT_EMALFORMED);
    assert_int_equal(raft_conf_encode_ctx(&c, "members", 7, buf, 10, &len), RAFT_ETOOSMALL);
    assert_int_equal(raft_conf_encode_ctx(&c, buf, RAFT_MAX_CONF_CTX + 1, buf, sizeof(buf), &len), RAFT_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_message_round_trips),
        cmocka_unit_test(test_snapshot_and_flags_round_trip),
        cmocka_unit_test(test_every_truncation_of_a_message_is_malformed),
        cmocka_unit_test(test_bad_version_type_flags_and_counts_are_rejected),
        cmocka_unit_test(test_random_corruption_never_crashes),
        cmocka_unit_test(test_entry_hard_state_and_conf_codecs),
        cmocka_unit_test(test_conf_with_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
