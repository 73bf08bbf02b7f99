/* service/framing.c — follows each HTTP/1 connection's request framing (heads, Content-Length and
 * chunked bodies) over the raw bytes, to refuse what h2o 2.2.5 would accept ambiguously or only
 * refuse late (framing.h). It parses with the picohttpparser h2o itself uses, so both readers
 * split the stream at the same places.
 */
#include "service/framing.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path,
                      size_t *path_len, int *minor_version, struct phr_header *headers, size_t *num_headers,
                      size_t last_len);
ssize_t phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz);

#define MAX_HEADERS 100 /* h2o's H2O_MAX_HEADERS: a head with more fails both parsers */

void svc_frame_init(struct svc_frame *f, uint64_t cap)
{
    memset(f, 0, sizeof(*f));
    f->cap = cap;
}

void svc_frame_dispose(struct svc_frame *f)
{
    free(f->head);
    f->head = NULL;
    f->head_len = 0;
}

static int refuse(struct svc_frame *f, int status, const char *why)
{
    svc_frame_dispose(f);
    f->state = SVC_FRAME_REFUSED;
    f->status = status;
    f->why = why;
    return status;
}

static bool name_is(const struct phr_header *h, const char *name)
{
    size_t n = strlen(name);
    return h->name != NULL && h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

/* Decimal digits only, as h2o_strtosize; UINT64_MAX for anything else. */
static uint64_t parse_length(const char *s, size_t n)
{
    uint64_t v = 0;
    if (n == 0 || n > 19)
        return UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return UINT64_MAX;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    return v;
}

/* A complete head: refuse its framing, or set up reading its body. */
static int on_head(struct svc_frame *f, const struct phr_header *hs, size_t nh)
{
    const struct phr_header *cl = NULL, *te = NULL;
    for (size_t i = 0; i < nh; i++) {
        if (name_is(&hs[i], "content-length")) {
            if (cl != NULL &&
                (cl->value_len != hs[i].value_len || memcmp(cl->value, hs[i].value, cl->value_len) != 0))
                return refuse(f, 400, "conflicting Content-Length headers");
            if (cl == NULL)
                cl = &hs[i];
        } else if (name_is(&hs[i], "transfer-encoding")) {
            te = &hs[i]; /* h2o reads the body by the last one */
        }
    }
    if (cl != NULL && te != NULL)
        return refuse(f, 400, "both Content-Length and Transfer-Encoding; send one");
    if (te != NULL) {
        if (te->value_len != 7 || strncasecmp(te->value, "chunked", 7) != 0) {
            f->state = SVC_FRAME_PASS; /* h2o answers 400 itself */
            return 0;
        }
        memset(&f->dec, 0, sizeof(f->dec));
        f->dec.consume_trailer = 1;
        f->body = 0;
        f->state = SVC_FRAME_CHUNKED;
        return 0;
    }
    if (cl != NULL) {
        uint64_t len = parse_length(cl->value, cl->value_len);
        if (len == UINT64_MAX || len > f->cap) {
            f->state = SVC_FRAME_PASS; /* h2o answers 400 or 413 at once itself */
            return 0;
        }
        f->left = len;
        f->state = len > 0 ? SVC_FRAME_LENGTH : SVC_FRAME_HEAD;
        return 0;
    }
    f->state = SVC_FRAME_HEAD;
    return 0;
}

/* Head bytes: *used gets how many of p[0..n) belonged to the head (all of them while incomplete).
 * A head that arrives whole (the usual case) is parsed where it lies; only one split across reads
 * is copied, and that copy is freed once the head is complete, so an idle connection holds none. */
static int feed_head(struct svc_frame *f, const char *p, size_t n, size_t *used)
{
    const char *method, *path;
    size_t method_len, path_len, nh = MAX_HEADERS;
    int minor;
    struct phr_header hs[MAX_HEADERS];
    if (f->head_len == 0) {
        size_t len = n < SVC_FRAME_HEAD_MAX ? n : SVC_FRAME_HEAD_MAX;
        int r = phr_parse_request(p, len, &method, &method_len, &path, &path_len, &minor, hs, &nh, 0);
        if (r >= 0) {
            *used = (size_t)r;
            return on_head(f, hs, nh);
        }
        if (r == -1 || len == SVC_FRAME_HEAD_MAX) { /* broken or too long: h2o answers 400 itself */
            f->state = SVC_FRAME_PASS;
            *used = n;
            return 0;
        }
        if (f->head == NULL && (f->head = malloc(SVC_FRAME_HEAD_MAX)) == NULL) {
            f->state = SVC_FRAME_PASS; /* out of memory: h2o alone decides, as before */
            *used = n;
            return 0;
        }
        memcpy(f->head, p, n);
        f->head_len = n;
        *used = n;
        return 0;
    }
    size_t take = n < SVC_FRAME_HEAD_MAX - f->head_len ? n : SVC_FRAME_HEAD_MAX - f->head_len;
    memcpy(f->head + f->head_len, p, take);
    size_t before = f->head_len;
    f->head_len += take;
    int r = phr_parse_request(f->head, f->head_len, &method, &method_len, &path, &path_len, &minor, hs, &nh, 0);
    if (r == -2 && f->head_len < SVC_FRAME_HEAD_MAX) {
        *used = take;
        return 0;
    }
    if (r < 0) {
        svc_frame_dispose(f);
        f->state = SVC_FRAME_PASS;
        *used = n;
        return 0;
    }
    *used = (size_t)r - before;
    int rc = on_head(f, hs, nh); /* before the copy the headers point into goes */
    if (f->state != SVC_FRAME_REFUSED)
        svc_frame_dispose(f);
    return rc;
}

/* Chunked body bytes, decoded in a copy (the decoder rewrites its buffer). */
static int feed_chunked(struct svc_frame *f, const char *p, size_t n, size_t *used)
{
    char copy[4096];
    size_t k = n < sizeof(copy) ? n : sizeof(copy), sz = k;
    memcpy(copy, p, k);
    ssize_t r = phr_decode_chunked(&f->dec, copy, &sz);
    f->body += sz;
    if (r == -1) { /* h2o answers 400 "broken chunked-encoding" itself */
        f->state = SVC_FRAME_PASS;
        *used = n;
        return 0;
    }
    /* h2o refuses once the decoded body reaches the cap: say so as soon as a chunk's size
     * promises it, instead of waiting for the bytes (or the read timeout) */
    if (f->body + f->dec.bytes_left_in_chunk >= f->cap)
        return refuse(f, 413, "a chunk of the request body is larger than the body limit");
    if (r >= 0) {
        *used = k - (size_t)r;
        f->state = SVC_FRAME_HEAD;
    } else {
        *used = k;
    }
    return 0;
}

int svc_frame_feed(struct svc_frame *f, const char *p, size_t n, const char **why)
{
    while (n > 0 && f->state != SVC_FRAME_PASS && f->state != SVC_FRAME_REFUSED) {
        size_t used = n;
        int rc = 0;
        switch (f->state) {
        case SVC_FRAME_HEAD:
            rc = feed_head(f, p, n, &used);
            break;
        case SVC_FRAME_LENGTH:
            used = f->left < n ? (size_t)f->left : n;
            f->left -= used;
            if (f->left == 0)
                f->state = SVC_FRAME_HEAD;
            break;
        case SVC_FRAME_CHUNKED:
            rc = feed_chunked(f, p, n, &used);
            break;
        default:
            break;
        }
        if (rc != 0)
            break;
        p += used;
        n -= used;
    }
    if (f->state == SVC_FRAME_REFUSED) {
        *why = f->why;
        return f->status;
    }
    return 0;
}
