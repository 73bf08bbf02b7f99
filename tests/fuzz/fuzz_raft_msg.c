/* tests/fuzz/fuzz_raft_msg.c — fuzz target for the Raft codec (store/raft/codec.c): messages as
 * peers send them, log entries as the WAL stores them, voter sets and hard states. The first byte
 * picks the decoder. Malformed input must be an error code; what decodes must re-encode to bytes
 * that decode to the same encoding again (one meaning, one form).
 *
 * CI (plain main): `fuzz_raft_msg --mutate N tests/fuzz/corpus/raft`. Longer, with libFuzzer:
 *   CC=clang cmake -S . -B build-fuzz -DDISCOVERYD_FUZZ=ON -DDISCOVERYD_SANITIZE=ON &&
 *   cmake --build build-fuzz --target fuzz_raft_msg_libfuzzer &&
 *   build-fuzz/tests/fuzz/fuzz_raft_msg_libfuzzer -max_total_time=600 tests/fuzz/corpus/raft
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/raft/raft.h"
#ifndef DISCOVERYD_LIBFUZZER
#include "tests/fuzz/driver.h"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_raft_msg: %s\n", what);
    abort();
}

static void message(const uint8_t *in, size_t n)
{
    struct raft_message m;
    if (raft_msg_decode(in, n, &m, NULL) != 0)
        return;
    size_t sz = raft_msg_size(&m), len = 0, len2 = 0;
    uint8_t *a = malloc(sz ? sz : 1), *b = malloc(sz ? sz : 1);
    if (raft_msg_encode(&m, a, sz, &len) != 0 || len != sz)
        fail("a decoded message does not encode");
    struct raft_message d;
    if (raft_msg_decode(a, len, &d, NULL) != 0)
        fail("a re-encoded message does not decode");
    if (raft_msg_size(&d) != sz || raft_msg_encode(&d, b, sz, &len2) != 0 || len2 != len || memcmp(a, b, len) != 0)
        fail("re-encoding is not stable");
    raft_msg_release(&d, NULL);
    raft_msg_release(&m, NULL);
    free(a);
    free(b);
}

static void entry(const uint8_t *in, size_t n)
{
    struct raft_entry e;
    if (raft_entry_decode(in, n, &e) != 0)
        return;
    size_t sz = raft_entry_size(&e), len = 0;
    uint8_t *a = malloc(sz ? sz : 1);
    if (raft_entry_encode(&e, a, sz, &len) != 0 || len != sz)
        fail("a decoded entry does not encode");
    struct raft_entry d;
    if (raft_entry_decode(a, len, &d) != 0 || d.term != e.term || d.index != e.index || d.type != e.type ||
        d.len != e.len || (d.len && memcmp(d.data, e.data, d.len) != 0))
        fail("an entry does not round-trip");
    free(a);
}

static void conf_and_hard_state(const uint8_t *in, size_t n)
{
    struct raft_conf c;
    if (raft_conf_decode(in, n, &c) == 0) {
        uint8_t buf[8 + 8 * RAFT_MAX_NODES + 64];
        size_t len;
        struct raft_conf d;
        if (raft_conf_size(&c) > sizeof(buf) || raft_conf_encode(&c, buf, sizeof(buf), &len) != 0 ||
            raft_conf_decode(buf, len, &d) != 0 || d.n != c.n || memcmp(d.ids, c.ids, c.n * sizeof(c.ids[0])) != 0)
            fail("a voter set does not round-trip");
    }
    struct raft_hard_state hs;
    if (raft_hard_state_decode(in, n, &hs) == 0) {
        uint8_t buf[RAFT_HARD_STATE_SIZE];
        size_t len;
        struct raft_hard_state d;
        if (raft_hard_state_encode(&hs, buf, sizeof(buf), &len) != 0 || raft_hard_state_decode(buf, len, &d) != 0 ||
            memcmp(&d, &hs, sizeof(d)) != 0)
            fail("a hard state does not round-trip");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0:
        message(data + 1, size - 1);
        break;
    case 1:
        entry(data + 1, size - 1);
        break;
    default:
        conf_and_hard_state(data + 1, size - 1);
        break;
    }
    return 0;
}

#ifndef DISCOVERYD_LIBFUZZER
static int seed(const char *dir, const char *name, uint8_t sel, const uint8_t *b, size_t n)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    fputc(sel, f);
    fwrite(b, 1, n, f);
    fclose(f);
    return 0;
}

static int make_corpus(const char *dir)
{
    static struct raft_entry ents[2] = {
        {.term = 4, .index = 8, .type = RAFT_ENTRY_NORMAL, .len = 5, .data = (uint8_t *)"hello"},
        {.term = 4, .index = 9, .type = RAFT_ENTRY_NOOP, .len = 0, .data = NULL},
    };
    struct raft_message msgs[] = {
        {.type = RAFT_MSG_APPEND, .from = 1, .to = 2, .term = 5, .index = 7, .log_term = 3, .commit = 6,
         .n_entries = 2, .entries = ents},
        {.type = RAFT_MSG_APPEND_RESP, .from = 2, .to = 1, .term = 5, .index = 9, .reject = true, .hint = 4},
        {.type = RAFT_MSG_APPEND_RESP + 1, .from = 3, .to = 1, .term = 6, .index = 9, .log_term = 5},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        uint8_t buf[512];
        size_t len;
        char name[32];
        if (raft_msg_encode(&msgs[i], buf, sizeof(buf), &len) != 0)
            continue;
        snprintf(name, sizeof(name), "msg-%zu", i);
        rc |= seed(dir, name, 0, buf, len);
    }
    uint8_t buf[512];
    size_t len;
    if (raft_entry_encode(&ents[0], buf, sizeof(buf), &len) == 0)
        rc |= seed(dir, "entry", 1, buf, len);
    struct raft_conf c = {.n = 3, .ids = {1, 2, 3}};
    if (raft_conf_encode(&c, buf, sizeof(buf), &len) == 0)
        rc |= seed(dir, "conf", 2, buf, len);
    struct raft_hard_state hs = {.term = 7, .vote = 2, .commit = 40};
    if (raft_hard_state_encode(&hs, buf, sizeof(buf), &len) == 0)
        rc |= seed(dir, "hard-state", 2, buf, len);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    return fuzz_driver_main("fuzz_raft_msg", argc, argv, make_corpus);
}
#endif
