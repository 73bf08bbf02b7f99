/* api/form.h — query-string and urlencoded-body decoding with Go url.ParseQuery semantics,
 * plus the scalar parsers etcd applies to form values (ParseBool, ParseUint).
 *
 * Pure: no h2o, no clock. Memory comes from the caller's allocator (the request pool on HTTP
 * threads, a tracking arena in tests) so a parsed form lives exactly as long as its request.
 */
#ifndef DISCOVERYD_API_FORM_H
#define DISCOVERYD_API_FORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Allocate sz bytes that the caller releases in bulk; NULL on ENOMEM. */
typedef void *(*api_alloc_fn)(void *ctx, size_t sz);

struct api_param {
    const char *name; /* decoded, NUL-terminated */
    uint32_t name_len;
    const char *value; /* decoded, NUL-terminated */
    uint32_t value_len;
};

/* Body parameters come first, then query parameters, each in order of appearance, so the first
 * match of a lookup is Go's r.FormValue(): body wins over query, and the first of a repeated
 * name wins. */
struct api_form {
    struct api_param *params;
    size_t n;
    char err[128]; /* on failure: Go's error text ("invalid URL escape \"%zz\"", ...) */
};

/* Decode query (raw, without '?') and body (application/x-www-form-urlencoded; pass NULL/0 when
 * the request has no such body). '+' is a space, %XX must be valid hex, ';' in a pair is an
 * error, empty pairs are skipped, names and values must be valid UTF-8.
 * Returns 0; -1 with f->err set for a malformed form; -2 on ENOMEM. */
int api_form_parse(struct api_form *f, const char *query, size_t qlen, const char *body, size_t blen,
                   api_alloc_fn alloc, void *actx);

/* First parameter with this name, or NULL. */
const struct api_param *api_form_get(const struct api_form *f, const char *name);

/* Go strconv.ParseBool: 1 t T TRUE true True / 0 f F FALSE false False. 0 or -1. */
int api_parse_bool(const char *s, size_t len, bool *out);
/* Go strconv.ParseUint(s, 10, 64): decimal digits only, no sign, not empty, no overflow. 0 or -1. */
int api_parse_uint64(const char *s, size_t len, uint64_t *out);

/* Percent-decode in[0..n) into out (which may be in; out needs n bytes). plus_space: '+' -> ' '.
 * Returns the decoded length, or -1 for a bad escape (*bad = its offset in in). */
long api_pct_decode(const char *in, size_t n, char *out, bool plus_space, size_t *bad);

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF), as Go's utf8.Valid. */
bool api_utf8_valid(const char *s, size_t n);
/* Length of the valid UTF-8 sequence starting at s (1..4), or 0 if s[0] starts an invalid one. */
size_t api_utf8_seq(const unsigned char *s, size_t n, uint32_t *cp);

#endif
