/* tests/fuzz/fuzz_snap.c — fuzz target for the snapshot loader (snap_parse): arbitrary bytes go into
 * a fresh tree and watch hub. A malformed snapshot must be an error, never a crash, a leak or an
 * over-read (ASan). With the first byte's bit 0 set the trailing CRC-32C is made right first, so the
 * fuzzer gets past the checksum to the record parser and the tree's own checks.
 *
 * Without libFuzzer, main() runs every file of the directories named on the command line (CI:
 * `fuzz_snap --mutate N tests/fuzz/corpus/snap`: each seed and N mutations of it); `fuzz_snap --make-corpus
 * DIR` writes seeds with the real writer. A longer run with libFuzzer (clang + libclang-rt-14-dev): CC=clang
 * cmake -S . -B build-fuzz -DDISCOVERYD_FUZZ=ON -DDISCOVERYD_SANITIZE=ON && cmake --build build-fuzz --target
 * fuzz_snap_libfuzzer && build-fuzz/tests/fuzz/fuzz_snap_libfuzzer -max_total_time=600 tests/fuzz/corpus/snap
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/crc32c.h"
#include "store/snap.h"
#ifndef DISCOVERYD_LIBFUZZER
#include "tests/fuzz/driver.h"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t *buf = malloc(size - 1 ? size - 1 : 1);
    size_t len = size - 1;
    memcpy(buf, data + 1, len);
    if ((data[0] & 1) && len >= 4) {
        uint32_t c = crc32c(buf, len - 4);
        for (int i = 0; i < 4; i++)
            buf[len - 4 + i] = (uint8_t)(c >> (8 * i));
    }
    struct kv *kv = kv_new();
    struct watch_hub *hub = watch_hub_new(1000);
    struct snap_meta m;
    char err[256];
    if (kv && hub && snap_parse(buf, len, &m, kv, hub, err, sizeof(err)) != 0 && !strstr(err, "byte ")) {
        fprintf(stderr, "fuzz_snap: an error without a byte offset: %s\n", err);
        abort();
    }
    watch_hub_free(hub);
    kv_free(kv);
    free(buf);
    return 0;
}

#ifndef DISCOVERYD_LIBFUZZER
static void emit(void *arg, struct kv_event *ev)
{
    watch_publish(arg, ev, NULL, NULL);
}

static void put(struct kv *kv, struct watch_hub *hub, enum kv_cmd_type t, const char *key, const char *v,
                int64_t exp)
{
    struct kv_cmd c = {.type = t,
                       .now_ms = 5000,
                       .key = key,
                       .key_len = (uint32_t)strlen(key),
                       .value = v,
                       .value_len = v ? (uint32_t)strlen(v) : 0,
                       .expire_ms = exp};
    uint8_t *b;
    size_t n;
    struct kv_error e = {0};
    if (kv_cmd_encode(&c, &b, &n) == 0) {
        kv_apply(kv, b, n, emit, hub, &e);
        free(b);
    }
    kv_error_clear(&e);
}

/* Seeds: an empty store, a small one, one with TTLs, history and a deleted token. Each file gets
 * the fuzz header byte (1: fix the CRC) in front of the real snapshot bytes. */
static int make_corpus(const char *dir)
{
    for (int s = 0; s < 3; s++) {
        struct kv *kv = kv_new();
        struct watch_hub *hub = watch_hub_new(1000);
        if (s >= 1) {
            put(kv, hub, KV_CMD_CREATE, "/discovery/t1/_config/size", "3", 0);
            put(kv, hub, KV_CMD_CREATE, "/discovery/t1/m1", "m1=http://10.0.0.1:2380", 0);
            put(kv, hub, KV_CMD_POST, "/discovery/t1/q", "x", 0);
        }
        if (s >= 2) {
            put(kv, hub, KV_CMD_CREATE, "/discovery/t2/ttl", "t", 9000);
            put(kv, hub, KV_CMD_CREATE, "/discovery/t3/_config/size", "1", 0);
            put(kv, hub, KV_CMD_DELETE, "/discovery/t3/_config/size", NULL, 0);
            put(kv, hub, KV_CMD_CREATE, "/elsewhere", "y", 0);
        }
        struct snap_meta m = {
            .index = 10 + (uint64_t)s, .term = 2, .cluster_id = 99, .conf = {.n = 1, .ids = {7}}};
        char err[256], tmpdir[] = "/tmp/fuzz-snap-XXXXXX";
        if (!mkdtemp(tmpdir) || snap_write(fileio_posix(), tmpdir, &m, kv, hub, err, sizeof(err)) != 0) {
            fprintf(stderr, "fuzz_snap: cannot write a seed: %s\n", err);
            return 1;
        }
        char name[48], from[300], to[300];
        snap_name(name, sizeof(name), m.index, m.term);
        snprintf(from, sizeof(from), "%s/%s", tmpdir, name);
        snprintf(to, sizeof(to), "%s/seed-%d", dir, s);
        FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
        if (!in || !out)
            return 1;
        fputc(s == 2 ? 1 : 0, out);
        int ch;
        while ((ch = fgetc(in)) != EOF)
            fputc(ch, out);
        fclose(in);
        fclose(out);
        remove(from);
        remove(tmpdir);
        watch_hub_free(hub);
        kv_free(kv);
    }
    return 0;
}

int main(int argc, char **argv)
{
    return fuzz_driver_main("fuzz_snap", argc, argv, make_corpus);
}
#endif
