/* service/framing.h — a second reader of each HTTP/1 connection's raw bytes that refuses request
 * framing h2o 2.2.5 lets through: conflicting Content-Length headers, Content-Length together
 * with Transfer-Encoding (request smuggling through a proxy that reads the other one), and a
 * chunk whose announced size cannot fit the body cap (h2o would wait for the bytes, then 413).
 *
 * Pure: bytes in, a verdict out; no socket, no h2o state. server.c feeds it every byte a
 * connection receives, in order, before h2o parses them (HTTP thread of that connection).
 */
#ifndef DISCOVERYD_SERVICE_FRAMING_H
#define DISCOVERYD_SERVICE_FRAMING_H

#include <stddef.h>
#include <stdint.h>

/* Declared as libh2o 2.2.5 exports it (its bundled picohttpparser; Debian installs no header). */
struct phr_chunked_decoder {
    size_t bytes_left_in_chunk;
    char consume_trailer;
    char _hex_count;
    char _state;
};

enum svc_frame_state {
    SVC_FRAME_HEAD,    /* reading a request head */
    SVC_FRAME_LENGTH,  /* a Content-Length body */
    SVC_FRAME_CHUNKED, /* a chunked body */
    SVC_FRAME_PASS,    /* h2o refuses what follows itself (a head it cannot parse): stop looking */
    SVC_FRAME_REFUSED  /* we refused; the connection is closing */
};

struct svc_frame {
    enum svc_frame_state state;
    uint64_t cap; /* the largest body h2o accepts (max_request_entity_size) */
    char *head;   /* a head split across reads, copied here until complete */
    size_t head_len;
    uint64_t left; /* LENGTH: body bytes still to come */
    uint64_t body; /* CHUNKED: decoded bytes so far */
    struct phr_chunked_decoder dec;
    int status; /* REFUSED: the answer (400, 413) and its reason */
    const char *why;
};

/* The longest head followed; h2o answers longer ones 400 itself (H2O_MAX_REQLEN). */
#define SVC_FRAME_HEAD_MAX 8192

void svc_frame_init(struct svc_frame *f, uint64_t cap);
void svc_frame_dispose(struct svc_frame *f);

/* Feed the next n bytes the connection received. 0: let h2o have them. Else the HTTP status to
 * answer (400 or 413) before closing, with a one-line reason in *why; every later call returns
 * the same status (the connection is refused). */
int svc_frame_feed(struct svc_frame *f, const char *p, size_t n, const char **why);

#endif
