/* tests/unit/kv_tree_helpers.h — what the tree tests (test_kv_tree*.c) share: build, encode and
 * apply one command and keep its last event and error; a fresh tree per test.
 */
#ifndef DISCOVERYD_TESTS_UNIT_KV_TREE_HELPERS_H
#define DISCOVERYD_TESTS_UNIT_KV_TREE_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/kv.h"

/* ---- helpers: build, encode and apply one command; keep the last event ---- */

struct res {
    int rc;
    struct kv_event *ev; /* the last emitted event (owned) */
    int nev;
    struct kv_error err;
};

static inline void on_ev(void *arg, struct kv_event *ev)
{
    struct res *r = arg;
    if (r->ev)
        kv_event_unref(r->ev);
    r->ev = kv_event_ref(ev);
    r->nev++;
}

static inline void res_clear(struct res *r)
{
    kv_event_unref(r->ev);
    kv_error_clear(&r->err);
    memset(r, 0, sizeof(*r));
}

static inline struct kv_cmd cmd(enum kv_cmd_type t, const char *key, const char *value)
{
    struct kv_cmd c;
    memset(&c, 0, sizeof(c));
    c.type = t;
    c.now_ms = 1000;
    c.key = key;
    c.key_len = key ? (uint32_t)strlen(key) : 0;
    c.value = value;
    c.value_len = value ? (uint32_t)strlen(value) : 0;
    return c;
}

static inline int apply(struct kv *kv, const struct kv_cmd *c, struct res *r)
{
    uint8_t *buf;
    size_t len;
    res_clear(r);
    assert_int_equal(kv_cmd_encode(c, &buf, &len), 0);
    r->rc = kv_apply(kv, buf, len, on_ev, r, &r->err);
    free(buf);
    return r->rc;
}

static inline int do_set(struct kv *kv, const char *k, const char *v, struct res *r)
{
    struct kv_cmd c = cmd(KV_CMD_SET, k, v);
    return apply(kv, &c, r);
}

static inline int do_create(struct kv *kv, const char *k, const char *v, struct res *r)
{
    struct kv_cmd c = cmd(KV_CMD_CREATE, k, v);
    return apply(kv, &c, r);
}

static inline int do_mkdir(struct kv *kv, const char *k, struct res *r)
{
    struct kv_cmd c = cmd(KV_CMD_SET, k, NULL);
    c.dir = true;
    return apply(kv, &c, r);
}

static inline int do_delete(struct kv *kv, const char *k, bool dir, bool recursive, struct res *r)
{
    struct kv_cmd c = cmd(KV_CMD_DELETE, k, NULL);
    c.dir = dir;
    c.recursive = recursive;
    return apply(kv, &c, r);
}

static inline void expect_err(struct res *r, int code, const char *cause, uint64_t index)
{
    assert_int_equal(r->rc, code);
    assert_int_equal(r->err.code, code);
    assert_non_null(r->err.cause);
    assert_string_equal(r->err.cause, cause);
    assert_int_equal(r->err.index, index);
    assert_int_equal(r->nev, 0);
}

static inline int setup(void **state)
{
    *state = kv_new();
    return *state ? 0 : -1;
}

static inline int teardown(void **state)
{
    kv_free(*state);
    return 0;
}

#endif
