/* service/guard.h — the framing guard (framing.h) put in front of every read of one HTTP
 * connection: libuv's I/O callback of the connection's uv_tcp_t is wrapped, and around each event
 * the guard reads the new bytes before the reader h2o (or the api's hang-up watch) installed. A
 * refused request is answered with one line and the connection is shut down (guard.c says how).
 * Owned by server.c, one per connection, on that connection's HTTP thread.
 */
#ifndef DISCOVERYD_SERVICE_GUARD_H
#define DISCOVERYD_SERVICE_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include <h2o.h>

#include "service/framing.h"

struct svc_guard {
    uv_tcp_t tcp;           /* first: the connection's handle (h2o wraps it) */
    h2o_socket_t *sock;
    struct svc_frame frame;
    uv__io_cb io_cb;        /* libuv's own I/O callback of tcp, which the guard wraps */
    h2o_socket_cb read_cb;  /* the reader h2o (or the api) installed, during one I/O event */
    size_t read_len;        /* the room the last read of a plain connection was offered */
    bool paused;            /* h2o stopped reading; libuv still has the descriptor armed (guard.c) */
};

/* The bytes a plain connection's read asks for, and the size of its first input buffer. */
#define SVC_GUARD_READ 1024
/* Size this thread's h2o input buffers for SVC_GUARD_READ: call on each HTTP thread before it
 * has a socket (h2o's buffer prototype is thread-local). The first call also finds libh2o's
 * h2o_socket_read_start/stop, which guard.c defines over (the executable's definition is the one
 * libh2o's own calls reach): on a guarded plain connection a stop only pauses (guard.c says why). */
void svc_guard_thread_init(void);

/* tcp is open and sock = h2o's socket on it: from now on every read goes through the guard. */
void svc_guard_attach(struct svc_guard *g, h2o_socket_t *sock, size_t max_body);
/* The connection closed: release the guard's state (not tcp, which the caller frees). */
void svc_guard_dispose(struct svc_guard *g);

#endif
