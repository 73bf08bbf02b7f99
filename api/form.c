/* api/form.c — query string and urlencoded body decoding (Go url.ParseQuery semantics) and the
 * ParseBool / ParseUint rules etcd applies to form values. Pure; see form.h.
 */
#include "api/form.h"

#include <stdio.h>
#include <string.h>

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long api_pct_decode(const char *in, size_t n, char *out, bool plus_space, size_t *bad)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            int h, l;
            if (i + 2 >= n || (h = hexval((unsigned char)in[i + 1])) < 0 ||
                (l = hexval((unsigned char)in[i + 2])) < 0) {
                if (bad)
                    *bad = i;
                return -1;
            }
            out[o++] = (char)(h << 4 | l);
            i += 2;
        } else if (c == '+' && plus_space) {
            out[o++] = ' ';
        } else {
            out[o++] = (char)c;
        }
    }
    return (long)o;
}

size_t api_utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    uint32_t v;
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        v = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        v = c & 0x0f;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        v = c & 0x07;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* > U+10FFFF */
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    v = v << 6 | (s[1] & 0x3f);
    for (size_t i = 2; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    *cp = v;
    return len;
}

bool api_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    uint32_t cp;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = api_utf8_seq(p + i, n - i, &cp);
        if (l == 0)
            return false;
        i += l;
    }
    return true;
}

/* Go's EscapeError text: invalid URL escape "%zz" (at most three bytes, quoted). */
static void escape_error(struct api_form *f, const char *s, size_t n)
{
    char q[32];
    size_t o = 0;
    for (size_t i = 0; i < n && i < 3; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            q[o++] = (char)c;
        else
            o += (size_t)snprintf(q + o, sizeof(q) - o, "\\x%02x", c);
    }
    q[o] = 0;
    snprintf(f->err, sizeof(f->err), "invalid URL escape \"%s\"", q);
}

/* Decode one source into f->params (appending); buf is the output cursor. */
static int parse_one(struct api_form *f, const char *s, size_t n, char **buf)
{
    size_t i = 0;
    while (i < n) {
        size_t end = i;
        while (end < n && s[end] != '&')
            end++;
        const char *pair = s + i;
        size_t plen = end - i;
        i = end + 1;
        if (memchr(pair, ';', plen) != NULL) {
            snprintf(f->err, sizeof(f->err), "invalid semicolon separator in query");
            return -1;
        }
        if (plen == 0)
            continue;
        const char *eq = memchr(pair, '=', plen);
        size_t klen = eq ? (size_t)(eq - pair) : plen;
        const char *v = eq ? eq + 1 : pair + plen;
        size_t vlen = eq ? plen - klen - 1 : 0;
        size_t bad = 0;
        char *k_out = *buf;
        long kl = api_pct_decode(pair, klen, k_out, true, &bad);
        if (kl < 0) {
            escape_error(f, pair + bad, klen - bad);
            return -1;
        }
        k_out[kl] = 0;
        char *v_out = k_out + kl + 1;
        long vl = api_pct_decode(v, vlen, v_out, true, &bad);
        if (vl < 0) {
            escape_error(f, v + bad, vlen - bad);
            return -1;
        }
        v_out[vl] = 0;
        *buf = v_out + vl + 1;
        if (!api_utf8_valid(k_out, (size_t)kl) || !api_utf8_valid(v_out, (size_t)vl)) {
            snprintf(f->err, sizeof(f->err), "invalid UTF-8 in a parameter name or value");
            return -1;
        }
        struct api_param *p = &f->params[f->n++];
        p->name = k_out;
        p->name_len = (uint32_t)kl;
        p->value = v_out;
        p->value_len = (uint32_t)vl;
    }
    return 0;
}

static size_t count_pairs(const char *s, size_t n)
{
    size_t c = n ? 1 : 0;
    for (size_t i = 0; i < n; i++)
        c += s[i] == '&';
    return c;
}

int api_form_parse(struct api_form *f, const char *query, size_t qlen, const char *body, size_t blen,
                   api_alloc_fn alloc, void *actx)
{
    f->params = NULL;
    f->n = 0;
    f->err[0] = 0;
    if (body == NULL)
        blen = 0;
    if (query == NULL)
        qlen = 0;
    size_t npairs = count_pairs(body, blen) + count_pairs(query, qlen);
    if (npairs == 0)
        return 0;
    /* decoded text never grows; each pair adds two NULs */
    char *buf = alloc(actx, qlen + blen + 2 * npairs);
    f->params = alloc(actx, npairs * sizeof(*f->params));
    if (buf == NULL || f->params == NULL)
        return -2;
    /* body first: Go's r.Form lists post-form values before query values */
    if (parse_one(f, body, blen, &buf) != 0 || parse_one(f, query, qlen, &buf) != 0)
        return -1;
    return 0;
}

const struct api_param *api_form_get(const struct api_form *f, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < f->n; i++)
        if (f->params[i].name_len == len && memcmp(f->params[i].name, name, len) == 0)
            return &f->params[i];
    return NULL;
}

int api_parse_bool(const char *s, size_t len, bool *out)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strlen(yes[i]) == len && memcmp(yes[i], s, len) == 0) {
            *out = true;
            return 0;
        }
        if (strlen(no[i]) == len && memcmp(no[i], s, len) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

int api_parse_uint64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}
