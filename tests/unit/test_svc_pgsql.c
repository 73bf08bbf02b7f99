/* tests/unit/test_svc_pgsql.c — the PostgreSQL limiter's SQL against a real database (run by ctest
 * through tests/integration/pg_harness.py --run, which starts PostgreSQL 15 in a temp dir and sets
 * DISCOVERYD_TEST_PG): the schema is idempotent and versioned, a take refills by elapsed time on the
 * database clock (fractional rates), a clock that went backwards refills nothing and never moves a
 * bucket back, huge bursts stay exact, Retry-After is the wait for the next whole token, and the
 * sweep deletes only full buckets, in bounded batches. Also the masking of the connection string.
 * Time travel without sleeping: the tests move a bucket's `updated` instead of waiting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/pgrl.h"

static PGconn *db;

static PGresult *exec_ok(const char *sql)
{
    PGresult *r = PQexec(db, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    return r;
}

static void exec_void(const char *sql)
{
    PQclear(exec_ok(sql));
}

static int setup(void **state)
{
    const char *url = getenv("DISCOVERYD_TEST_PG");
    if (url == NULL) {
        fprintf(stderr, "DISCOVERYD_TEST_PG is not set: run through tests/integration/pg_harness.py --run\n");
        return -1;
    }
    db = PQconnectdb(url);
    if (PQstatus(db) != CONNECTION_OK) {
        fprintf(stderr, "connect: %s\n", PQerrorMessage(db));
        return -1;
    }
    exec_void("SET client_min_messages = warning");
    return 0;
}

static int teardown(void **state)
{
    PQfinish(db);
    return 0;
}

static void schema(void)
{
    PGresult *r = PQexec(db, pgrl_sql_schema);
    /* PQexec returns the last result: the version */
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(atoi(PQgetvalue(r, 0, 0)), PGRL_SCHEMA_VERSION);
    PQclear(r);
}

static int reset(void **state)
{
    schema();
    exec_void("TRUNCATE discoveryd_ratelimit");
    return 0;
}

/* One take of (kind, subject) with rate and burst: true when allowed; *retry the seconds. */
static bool take(int kind, const char *subject, double rate, double burst, long *retry)
{
    char k[16], ra[40], bu[40];
    snprintf(k, sizeof(k), "%d", kind);
    snprintf(ra, sizeof(ra), "%.17g", rate);
    snprintf(bu, sizeof(bu), "%.17g", burst);
    const char *v[4] = {k, subject, ra, bu};
    int len[4] = {0, (int)strlen(subject), 0, 0};
    int fmt[4] = {0, 1, 0, 0};
    PGresult *r = PQexecParams(db, pgrl_sql_take, 4, NULL, v, len, fmt, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("take: %s", PQresultErrorMessage(r));
    assert_int_equal(PQntuples(r), 1);
    bool allowed = PQgetvalue(r, 0, 0)[0] == 't';
    long ra_s = atol(PQgetvalue(r, 0, 1));
    PQclear(r);
    if (retry)
        *retry = ra_s;
    return allowed;
}

/* Move a bucket's clock: "updated = updated - interval 'N seconds'" (positive: time passes). */
static void advance(int kind, const char *subject, double seconds)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "UPDATE discoveryd_ratelimit SET updated = updated - make_interval(secs => %.17g) "
             "WHERE kind = %d AND subject = '%s'::bytea",
             seconds, kind, subject);
    PGresult *r = exec_ok(sql);
    assert_string_equal(PQcmdTuples(r), "1");
    PQclear(r);
}

static double tokens(int kind, const char *subject)
{
    char sql[200];
    snprintf(sql, sizeof(sql),
             "SELECT tokens FROM discoveryd_ratelimit WHERE kind = %d AND subject = '%s'::bytea", kind,
             subject);
    PGresult *r = exec_ok(sql);
    double t = atof(PQgetvalue(r, 0, 0));
    PQclear(r);
    return t;
}

static void test_schema_is_idempotent_and_versioned(void **state)
{
    schema();
    schema();
    PGresult *r = exec_ok("SELECT version FROM discoveryd_schema WHERE component = 'ratelimit'");
    assert_int_equal(PQntuples(r), 1);
    PQclear(r);
}

static void test_burst_then_refused_with_retry_after(void **state)
{
    long ra = 0;
    for (int i = 0; i < 5; i++)
        assert_true(take(0, "a", 1, 5, &ra));
    assert_false(take(0, "a", 1, 5, &ra));
    assert_int_equal(ra, 1);
    /* another subject and another kind are other buckets */
    assert_true(take(0, "b", 1, 5, NULL));
    assert_true(take(1, "a", 1, 5, NULL));
}

static void test_fractional_rate_refills_by_elapsed_time(void **state)
{
    long ra = 0;
    assert_true(take(2, "f", 0.25, 1, &ra)); /* one token per 4 s */
    assert_false(take(2, "f", 0.25, 1, &ra));
    assert_true(ra >= 3 && ra <= 4);
    advance(2, "f", 2); /* half a token */
    assert_false(take(2, "f", 0.25, 1, &ra));
    assert_true(ra >= 1 && ra <= 2);
    advance(2, "f", 2.1); /* now a whole one */
    assert_true(take(2, "f", 0.25, 1, &ra));
    assert_false(take(2, "f", 0.25, 1, &ra));
}

static void test_refused_takes_consume_nothing(void **state)
{
    assert_true(take(0, "r", 1, 1, NULL));
    for (int i = 0; i < 20; i++)
        assert_false(take(0, "r", 1, 1, NULL));
    advance(0, "r", 1.05);
    assert_true(take(0, "r", 1, 1, NULL));
}

static void test_refill_is_capped_at_the_burst(void **state)
{
    assert_true(take(0, "c", 10, 3, NULL));
    advance(0, "c", 3600);
    for (int i = 0; i < 3; i++)
        assert_true(take(0, "c", 10, 3, NULL));
    assert_false(take(0, "c", 10, 3, NULL));
}

static void test_clock_going_backwards_refills_nothing(void **state)
{
    assert_true(take(1, "k", 1, 2, NULL));
    assert_true(take(1, "k", 1, 2, NULL));
    double before = tokens(1, "k");
    /* the database's clock jumps back an hour: the bucket seems to have been updated in the future */
    advance(1, "k", -3600);
    assert_false(take(1, "k", 1, 2, NULL));
    assert_true(tokens(1, "k") <= before + 1e-6); /* nothing refilled */
    /* and `updated` did not move back with the clock, so the hour is not counted twice later */
    PGresult *r =
        exec_ok("SELECT updated > clock_timestamp() + interval '59 minutes' FROM discoveryd_ratelimit "
                "WHERE kind = 1 AND subject = 'k'::bytea");
    assert_string_equal(PQgetvalue(r, 0, 0), "t");
    PQclear(r);
}

static void test_huge_burst_stays_exact(void **state)
{
    double burst = 1e9;
    assert_true(take(0, "h", 1e6, burst, NULL));
    for (int i = 0; i < 99; i++)
        assert_true(take(0, "h", 1e6, burst, NULL));
    double t = tokens(0, "h");
    /* 100 taken; the rest may have refilled (at most the burst), never more */
    assert_true(t <= burst && t >= burst - 100);
    /* drain it by hand and see one refill second bring back rate tokens */
    exec_void("UPDATE discoveryd_ratelimit SET tokens = 0.5, updated = clock_timestamp() WHERE kind = 0 AND "
              "subject = 'h'::bytea");
    long ra = -1;
    /* 0.5 tokens and 1e6 per second: the take a moment later is allowed (0.5 us is enough) */
    advance(0, "h", 0.001);
    assert_true(take(0, "h", 1e6, burst, &ra));
    assert_int_equal(ra, 0);
}

static void test_subject_is_binary(void **state)
{
    /* address keys are raw bytes: a NUL inside must not end the key */
    const char *v[4] = {"0", "\x00\x01", "1", "1"};
    int len[4] = {0, 2, 0, 0};
    int fmt[4] = {0, 1, 0, 0};
    PGresult *r = PQexecParams(db, pgrl_sql_take, 4, NULL, v, len, fmt, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    const char *v2[4] = {"0", "\x00\x02", "1", "1"};
    r = PQexecParams(db, pgrl_sql_take, 4, NULL, v2, len, fmt, 0);
    assert_string_equal(PQgetvalue(r, 0, 0), "t"); /* another bucket */
    PQclear(r);
    r = exec_ok("SELECT count(*) FROM discoveryd_ratelimit WHERE kind = 0 AND length(subject) = 2");
    assert_string_equal(PQgetvalue(r, 0, 0), "2");
    PQclear(r);
}

static long sweep(int kind, double refill_secs, int batch)
{
    char k[16], s[40], b[16];
    snprintf(k, sizeof(k), "%d", kind);
    snprintf(s, sizeof(s), "%.17g", refill_secs);
    snprintf(b, sizeof(b), "%d", batch);
    const char *v[3] = {k, s, b};
    PGresult *r = PQexecParams(db, pgrl_sql_sweep, 3, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("sweep: %s", PQresultErrorMessage(r));
    long n = atol(PQcmdTuples(r));
    PQclear(r);
    return n;
}

static void test_sweep_deletes_only_full_buckets_in_batches(void **state)
{
    char subj[16];
    for (int i = 0; i < 25; i++) {
        snprintf(subj, sizeof(subj), "s%02d", i);
        assert_true(take(0, subj, 1, 10, NULL));
        if (i < 20)
            advance(0, subj, 11); /* refilled to the burst: stale */
    }
    assert_true(take(1, "s00", 1, 10, NULL));
    advance(1, "s00", 100); /* another kind: not this sweep's */
    assert_int_equal(sweep(0, 10, 8), 8);
    assert_int_equal(sweep(0, 10, 8), 8);
    assert_int_equal(sweep(0, 10, 8), 4);
    assert_int_equal(sweep(0, 10, 8), 0);
    PGresult *r = exec_ok("SELECT count(*) FROM discoveryd_ratelimit");
    assert_string_equal(PQgetvalue(r, 0, 0), "6"); /* 5 fresh of kind 0, 1 of kind 1 */
    PQclear(r);
}

static void test_mask_conninfo(void **state)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"postgresql://u:pw@db:5432/x", "postgresql://u:****@db:5432/x"},
        {"postgres://u:p%40ss@db/x?sslmode=require", "postgres://u:****@db/x?sslmode=require"},
        {"postgresql://u@db/x?password=pw&sslmode=disable",
         "postgresql://u@db/x?password=****&sslmode=disable"},
        {"postgresql://db/x?sslmode=disable&password=pw", "postgresql://db/x?sslmode=disable&password=****"},
        {"postgresql:///x?host=/tmp", "postgresql:///x?host=/tmp"},
        {"host=db password=pw user=u", "host=db password=**** user=u"},
        {"host=db password = 'p w\\' x' user=u", "host=db password = **** user=u"},
        {"password=pw", "password=****"},
        {"host=db dbname=x", "host=db dbname=x"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[256];
        pgrl_mask_conninfo(cases[i].in, out, sizeof(out));
        assert_string_equal(out, cases[i].want);
    }
    char small[8];
    pgrl_mask_conninfo("postgresql://u:secret@db/x", small, sizeof(small));
    assert_null(strstr(small, "secret"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_schema_is_idempotent_and_versioned, reset),
        cmocka_unit_test_setup(test_burst_then_refused_with_retry_after, reset),
        cmocka_unit_test_setup(test_fractional_rate_refills_by_elapsed_time, reset),
        cmocka_unit_test_setup(test_refused_takes_consume_nothing, reset),
        cmocka_unit_test_setup(test_refill_is_capped_at_the_burst, reset),
        cmocka_unit_test_setup(test_clock_going_backwards_refills_nothing, reset),
        cmocka_unit_test_setup(test_huge_burst_stays_exact, reset),
        cmocka_unit_test_setup(test_subject_is_binary, reset),
        cmocka_unit_test_setup(test_sweep_deletes_only_full_buckets_in_batches, reset),
        cmocka_unit_test(test_mask_conninfo),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
