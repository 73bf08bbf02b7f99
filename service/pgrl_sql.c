/* service/pgrl_sql.c — the PostgreSQL limiter's statements and the masking of its connection
 * string (pgrl.h). Token-bucket arithmetic in SQL: a row holds the tokens left at `updated`; a take
 * refills by the elapsed time on the database's own clock (never negative: a clock that went
 * backwards refills nothing and `updated` never moves back), caps at the burst, and takes one
 * token when at least one is there. A refused take still stores the refill, so it costs nothing.
 */
#include "service/pgrl.h"

#include <stdio.h>
#include <string.h>

const char pgrl_sql_schema[] =
    "SET client_min_messages = warning;" /* no "already exists, skipping" notices on stderr */
    "BEGIN;"
    "SELECT pg_advisory_xact_lock(726153101);" /* nodes starting together: one creates, the others wait */
    "CREATE TABLE IF NOT EXISTS discoveryd_schema ("
    " component text PRIMARY KEY, version integer NOT NULL);"
    "INSERT INTO discoveryd_schema (component, version) VALUES ('ratelimit', 1)"
    " ON CONFLICT (component) DO NOTHING;"
    "CREATE TABLE IF NOT EXISTS discoveryd_ratelimit ("
    " kind smallint NOT NULL,"
    " subject bytea NOT NULL,"
    " tokens double precision NOT NULL,"
    " updated timestamptz NOT NULL,"
    " allowed boolean NOT NULL,"
    " PRIMARY KEY (kind, subject)) WITH (fillfactor = 70);"
    "COMMIT;"
    "SELECT version FROM discoveryd_schema WHERE component = 'ratelimit';";

/* avail: the tokens there now, refilled and capped (the old row's values: b.*). */
#define PGRL_AVAIL                                                                                           \
    "LEAST($4::float8, b.tokens + GREATEST(0::float8,"                                                       \
    " EXTRACT(EPOCH FROM (EXCLUDED.updated - b.updated))::float8) * $3::float8)"
/* "at least one token", forgiving the last bits of floating-point refill */
#define PGRL_ONE "0.999999999"

const char pgrl_sql_take[] =
    "INSERT INTO discoveryd_ratelimit AS b (kind, subject, tokens, updated, allowed)"
    " VALUES ($1::smallint, $2::bytea, $4::float8 - 1, clock_timestamp(), true)"
    " ON CONFLICT (kind, subject) DO UPDATE SET"
    " tokens = CASE WHEN " PGRL_AVAIL " >= " PGRL_ONE " THEN " PGRL_AVAIL " - 1 ELSE " PGRL_AVAIL " END,"
    " allowed = " PGRL_AVAIL " >= " PGRL_ONE ","
    " updated = GREATEST(b.updated, EXCLUDED.updated)"
    " RETURNING b.allowed,"
    " CASE WHEN b.allowed THEN 0 ELSE CEIL((1 - b.tokens) / $3::float8)::bigint END";

const char pgrl_sql_sweep[] =
    "DELETE FROM discoveryd_ratelimit WHERE ctid = ANY (ARRAY("
    " SELECT ctid FROM discoveryd_ratelimit WHERE kind = $1::smallint"
    " AND updated < clock_timestamp() - make_interval(secs => $2::float8) LIMIT $3::int))";

/* Append [s, s+n) to out (bounded). */
static void put(char *out, size_t outlen, size_t *pos, const char *s, size_t n)
{
    for (size_t i = 0; i < n && *pos + 1 < outlen; i++)
        out[(*pos)++] = s[i];
    out[*pos < outlen ? *pos : outlen - 1] = '\0';
}

static void mask_uri(const char *in, char *out, size_t outlen)
{
    size_t pos = 0;
    const char *auth = strstr(in, "://") + 3;
    const char *auth_end = auth + strcspn(auth, "/?");
    const char *at = NULL;
    for (const char *p = auth; p < auth_end; p++)
        if (*p == '@')
            at = p;
    put(out, outlen, &pos, in, (size_t)(auth - in));
    if (at != NULL) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (colon != NULL) {
            put(out, outlen, &pos, auth, (size_t)(colon + 1 - auth));
            put(out, outlen, &pos, "****", 4);
            put(out, outlen, &pos, at, (size_t)(auth_end - at));
        } else {
            put(out, outlen, &pos, auth, (size_t)(auth_end - auth));
        }
    } else {
        put(out, outlen, &pos, auth, (size_t)(auth_end - auth));
    }
    /* the query: password=... values */
    for (const char *p = auth_end; *p;) {
        if ((*p == '?' || *p == '&') && strncmp(p + 1, "password=", 9) == 0) {
            put(out, outlen, &pos, p, 10);
            put(out, outlen, &pos, "****", 4);
            p += 10;
            p += strcspn(p, "&");
        } else {
            put(out, outlen, &pos, p, 1);
            p++;
        }
    }
}

void pgrl_mask_conninfo(const char *in, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    out[0] = '\0';
    if (strncmp(in, "postgresql://", 13) == 0 || strncmp(in, "postgres://", 11) == 0) {
        mask_uri(in, out, outlen);
        return;
    }
    /* key = value pairs; a value is a word or a single-quoted string with \-escapes */
    size_t pos = 0;
    const char *p = in;
    while (*p) {
        const char *start = p;
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        const char *key = p;
        while (*p && *p != '=' && *p != ' ' && *p != '\t')
            p++;
        size_t klen = (size_t)(p - key);
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '=') { /* not a pair: copy the rest as is (libpq refuses it anyway) */
            put(out, outlen, &pos, start, strlen(start));
            return;
        }
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        const char *val = p;
        if (*p == '\'') {
            for (p++; *p && *p != '\''; p++)
                if (*p == '\\' && p[1])
                    p++;
            if (*p == '\'')
                p++;
        } else {
            while (*p && *p != ' ' && *p != '\t' && *p != '\n')
                p++;
        }
        put(out, outlen, &pos, start, (size_t)(val - start));
        if (klen == 8 && strncmp(key, "password", 8) == 0)
            put(out, outlen, &pos, "****", 4);
        else
            put(out, outlen, &pos, val, (size_t)(p - val));
    }
}
