/* tests/fuzz/fuzz_kvcmd.c — fuzz target for the kv command codec and the state machine behind it:
 * arbitrary bytes go to kv_cmd_decode; what decodes must encode back to the very same bytes (the
 * log is replicated: one meaning, one encoding), and is then applied to a small tree holding a
 * token with a _config, members and TTLs. A failed apply must leave the index where it was.
 *
 * CI (plain main): `fuzz_kvcmd --mutate N tests/fuzz/corpus/kvcmd`. Longer, with libFuzzer:
 *   CC=clang cmake -S . -B build-fuzz -DDISCOVERYD_FUZZ=ON -DDISCOVERYD_SANITIZE=ON &&
 *   cmake --build build-fuzz --target fuzz_kvcmd_libfuzzer &&
 *   build-fuzz/tests/fuzz/fuzz_kvcmd_libfuzzer -max_total_time=600 tests/fuzz/corpus/kvcmd
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/kv.h"
#include "store/kv_cmd.h"
#ifndef DISCOVERYD_LIBFUZZER
#include "tests/fuzz/driver.h"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void apply(struct kv *kv, const struct kv_cmd *c)
{
    uint8_t *b;
    size_t n;
    struct kv_error err = {0};
    if (kv_cmd_encode(c, &b, &n) != 0)
        return;
    kv_apply(kv, b, n, NULL, NULL, &err);
    kv_error_clear(&err);
    free(b);
}

static struct kv_cmd cmd(enum kv_cmd_type t, const char *key, const char *v)
{
    struct kv_cmd c = {.type = t, .now_ms = 1000, .key = key, .key_len = (uint32_t)strlen(key), .value = v,
                       .value_len = v ? (uint32_t)strlen(v) : 0};
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kv_cmd c;
    if (kv_cmd_decode(data, size, &c) != 0)
        return 0;
    uint8_t *b;
    size_t n;
    if (kv_cmd_encode(&c, &b, &n) != 0)
        return 0;
    if (n != size || memcmp(b, data, n) != 0) {
        fprintf(stderr, "fuzz_kvcmd: decode then encode changed the bytes\n");
        abort();
    }
    free(b);
    struct kv *kv = kv_new();
    if (kv == NULL)
        return 0;
    struct kv_cmd s = cmd(KV_CMD_SET, "/discovery/t1/_config/size", "3");
    apply(kv, &s);
    s = cmd(KV_CMD_CREATE, "/discovery/t1/m1", "a=http://x");
    s.cap_size = 15;
    apply(kv, &s);
    s = cmd(KV_CMD_SET, "/discovery/t1/ttl", "v");
    s.expire_ms = 2000;
    apply(kv, &s);
    s = cmd(KV_CMD_SET, "/discovery/t2/_config/size", "1");
    apply(kv, &s);
    uint64_t before = kv_index(kv);
    struct kv_error err = {0};
    int rc = kv_apply(kv, data, size, NULL, NULL, &err);
    if (rc != 0 && kv_index(kv) != before) {
        fprintf(stderr, "fuzz_kvcmd: a failed command moved the index\n");
        abort();
    }
    if (rc == 0 && c.type != KV_CMD_SWEEP && kv_index(kv) != before + 1) {
        fprintf(stderr, "fuzz_kvcmd: a successful write must add exactly 1 to the index\n");
        abort();
    }
    kv_error_clear(&err);
    kv_free(kv);
    return 0;
}

#ifndef DISCOVERYD_LIBFUZZER
static int seed(const char *dir, const char *name, const struct kv_cmd *c)
{
    uint8_t *b;
    size_t n;
    char path[4096];
    if (kv_cmd_encode(c, &b, &n) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(b, 1, n, f);
        fclose(f);
    }
    free(b);
    return f ? 0 : -1;
}

static int make_corpus(const char *dir)
{
    struct kv_cmd c = cmd(KV_CMD_CREATE, "/discovery/t1/m2", "b=http://y");
    c.cap_size = 15;
    c.cap_surplus = 16;
    c.keep_config = true;
    int rc = seed(dir, "create-member", &c);
    c = cmd(KV_CMD_SET, "/discovery/t1/_config/size", "5");
    c.keep_config = true;
    rc |= seed(dir, "config-size-change", &c);
    c = cmd(KV_CMD_DELETE, "/discovery/t1", NULL);
    c.recursive = true;
    c.keep_config = true;
    rc |= seed(dir, "delete-token", &c);
    c = cmd(KV_CMD_CAS, "/discovery/t1/m1", "z");
    c.has_prev_value = true;
    c.prev_value = "a=http://x";
    c.prev_value_len = 10;
    c.prev_index = 3;
    rc |= seed(dir, "cas", &c);
    c = cmd(KV_CMD_POST, "/discovery/t2", "q");
    c.expire_ms = 5000;
    rc |= seed(dir, "post-ttl", &c);
    c = cmd(KV_CMD_SWEEP, "", NULL);
    c.now_ms = 100000;
    c.token_ttl_ms = 1000;
    c.sweep_max = 2;
    rc |= seed(dir, "sweep", &c);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    return fuzz_driver_main("fuzz_kvcmd", argc, argv, make_corpus);
}
#endif
