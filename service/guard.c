/* service/guard.c — the framing guard's hook on a connection (guard.h): every byte a connection
 * receives passes through svc_frame_feed (framing.c) before h2o parses it.
 *
 * libuv calls a stream's io_watcher.cb for each readiness event (set once by uv_tcp_init and never
 * changed by uv_read_start), and h2o's uv binding hands each read to sock->_cb.read with the new
 * (for TLS: newly decrypted) bytes at the end of sock->input. We wrap io_watcher.cb; around each
 * event we put guard_on_read in front of whatever reader h2o (or the api's hang-up watch) has set.
 * A refused request is answered with one line and Connection: close straight on the socket
 * (plain TCP; over TLS the connection is just closed, since only h2o may write there), then
 * shutdown(2): h2o sees EOF on its next read and closes the connection through its own path.
 */
#include "service/guard.h"

#include <dlfcn.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "service/log.h"

static _Thread_local struct svc_guard *guard_conn; /* the connection whose I/O event runs */

/* h2o's own h2o_socket_read_start/stop (libh2o), which ours below stand in front of */
static void (*h2o_read_start)(h2o_socket_t *sock, h2o_socket_cb cb);
static void (*h2o_read_stop)(h2o_socket_t *sock);

static void guard_refuse(struct svc_guard *c, int status, const char *why)
{
    int fd = h2o_socket_get_fd(c->sock);
    svc_log(SVC_LOG_DEBUG, "refused a request: %d %s", status, why);
    if (c->sock->ssl == NULL && fd >= 0) {
        char refusal[320]; /* sent at once or never (a refused client gets one try) */
        int n = snprintf(refusal, sizeof(refusal),
                         "HTTP/1.1 %d %s\r\nServer: discoveryd\r\nContent-Type: text/plain; charset=utf-8\r\n"
                         "Connection: close\r\nContent-Length: %zu\r\n\r\n%s\n",
                         status, status == 413 ? "Request Entity Too Large" : "Bad Request", strlen(why) + 1, why);
        if (n > 0 && (size_t)n < sizeof(refusal))
            (void)!send(fd, refusal, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
}

static void guard_on_read(h2o_socket_t *sock, const char *err)
{
    struct svc_guard *c = guard_conn;
    /* only ever installed by guard_io, around this connection's own I/O event */
    if (c == NULL || c->sock != sock) {
        svc_log(SVC_LOG_ERROR, "framing guard: a read outside its connection's event");
        abort();
    }
    h2o_socket_cb next = c->read_cb;
    if (err == NULL && sock->bytes_read > 0 && sock->bytes_read <= sock->input->size) {
        bool refused = c->frame.state == SVC_FRAME_REFUSED;
        const char *why = NULL;
        int status =
            svc_frame_feed(&c->frame, sock->input->bytes + sock->input->size - sock->bytes_read, sock->bytes_read, &why);
        if (status != 0) {
            /* nobody parses these bytes: drop them, answer once, and wait for h2o to see EOF */
            sock->input->size -= sock->bytes_read;
            sock->bytes_read = 0;
            if (!refused)
                guard_refuse(c, status, why);
            return;
        }
    }
    next(sock, err);
    /* paused in this callback after a read that filled the buffer: libuv reads again at once */
    if (c->paused && sock->bytes_read == c->read_len) {
        c->paused = false;
        h2o_read_stop(sock);
    }
    /* a reader installed during this event (the api's hang-up watch) gets the guard in front too */
    if (sock->_cb.read != NULL && sock->_cb.read != guard_on_read) {
        c->read_cb = sock->_cb.read;
        sock->_cb.read = guard_on_read;
    }
}

/* h2o's reader asks for 4096 free bytes before each read, and its first buffer holds twice that; a
 * request keeps its buffer until it is answered (its head is parsed in place), so each parked watch
 * held 8 KiB for the ~100 bytes it sent. Reads of plain connections ask for SVC_GUARD_READ instead,
 * from a first buffer of that size; a bigger or pipelined input grows it as h2o always does. */
static void guard_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct svc_guard *c = (struct svc_guard *)h; /* tcp is its first member */
    (void)suggested;
    h2o_iovec_t v = h2o_buffer_reserve(&c->sock->input, SVC_GUARD_READ);
    *buf = uv_buf_init(v.base, (unsigned)v.len);
    c->read_len = v.len;
}

/* ---- pausing instead of stopping ----
 * h2o stops reading a connection while it answers a request and starts again once the answer is
 * written. libuv turns each stop and start into epoll_ctl calls (a start after a stop is an ADD
 * that fails EEXIST, then a MOD): two system calls per request, which a GET answered from the cache
 * otherwise does not need. For a plain connection the guard only pauses: h2o sees it as stopped
 * (its read callback is NULL) while libuv keeps the descriptor armed, and a start while paused just
 * puts the callback back (unless libuv stopped by itself, as it does at EOF: then it starts). Nothing is ever read for a connection that is not reading: an event that
 * would make libuv read (POLLIN, POLLERR, POLLHUP) stops it for real first (guard_io; a write's
 * completion, POLLOUT alone, comes through there too and reads nothing), and so does a pause in a
 * read callback whose read filled the buffer, after which libuv reads again at once
 * (guard_on_read). Over TLS the guard does not see the read sizes: it stops for real, as h2o does. */

static pthread_once_t h2o_once = PTHREAD_ONCE_INIT;

static void find_h2o(void)
{
    h2o_read_start = (void (*)(h2o_socket_t *, h2o_socket_cb))dlsym(RTLD_NEXT, "h2o_socket_read_start");
    h2o_read_stop = (void (*)(h2o_socket_t *))dlsym(RTLD_NEXT, "h2o_socket_read_stop");
    if (h2o_read_start == NULL || h2o_read_stop == NULL) {
        fprintf(stderr, "discoveryd: libh2o's h2o_socket_read_start/stop not found: %s\n", dlerror());
        abort();
    }
}

static void guard_io(uv_loop_t *loop, struct uv__io_s *w, unsigned int events);

/* h2o 2.2.5's libuv socket (lib/common/socket/uv-binding.c.h) is its h2o_socket_t followed by the
 * stream: the way from a socket h2o hands us to its uv_tcp_t, which is ours when the guard wraps it */
struct h2o_uv_socket_head {
    h2o_socket_t super;
    uv_stream_t *stream;
};

static struct svc_guard *guard_of(h2o_socket_t *sock)
{
    uv_stream_t *s = ((struct h2o_uv_socket_head *)sock)->stream;
    if (s == NULL || s->type != UV_TCP || s->io_watcher.cb != guard_io)
        return NULL;
    return (struct svc_guard *)s; /* tcp is its first member */
}

void h2o_socket_read_stop(h2o_socket_t *sock)
{
    pthread_once(&h2o_once, find_h2o); /* done by svc_guard_thread_init, unless a socket came first */
    struct svc_guard *c = guard_of(sock);
    if (c == NULL || sock->ssl != NULL) {
        h2o_read_stop(sock);
        return;
    }
    sock->_cb.read = NULL;
    c->paused = true;
}

void h2o_socket_read_start(h2o_socket_t *sock, h2o_socket_cb cb)
{
    pthread_once(&h2o_once, find_h2o);
    struct svc_guard *c = guard_of(sock);
    if (c != NULL && c->paused) {
        c->paused = false;
        if (c->tcp.io_watcher.pevents & POLLIN) {
            sock->_cb.read = cb;
            return;
        } /* libuv stopped by itself meanwhile (it does at EOF): start for real */
    }
    h2o_read_start(sock, cb);
}

void svc_guard_thread_init(void)
{
    h2o_socket_buffer_prototype._initial_buf.capacity = SVC_GUARD_READ;
    pthread_once(&h2o_once, find_h2o);
}

/* After a write completes, libuv stops POLLOUT (which a write that went out at once never
 * started) and queues the watcher for an epoll_ctl MOD that changes nothing, one per answer. A
 * watcher whose wanted events (pevents) are the ones the kernel has (events) leaves the queue here.
 * The queue is libuv's intrusive list (uv/unix.h: watcher_queue[0] next, [1] prev; empty when it
 * points at itself). */
static void unqueue_unchanged(uv__io_t *w)
{
    void **q = w->watcher_queue;
    if (q[0] == (void *)q || w->pevents != w->events || w->events == 0)
        return;
    void **next = q[0], **prev = q[1];
    prev[0] = next;
    next[1] = prev;
    q[0] = q[1] = (void *)q;
}

static void guard_io(uv_loop_t *loop, struct uv__io_s *w, unsigned int events)
{
    struct svc_guard *c = H2O_STRUCT_FROM_MEMBER(struct svc_guard, tcp.io_watcher, w);
    h2o_socket_t *sock = c->sock;
    struct svc_guard *outer = guard_conn;
    if (c->paused && (events & (POLLIN | POLLERR | POLLHUP))) { /* libuv would read: stop for real */
        c->paused = false;
        h2o_read_stop(sock);
    }
    /* h2o (re)starts reading with its own allocator; over TLS it fills another buffer: leave it */
    if (sock->ssl == NULL && c->tcp.alloc_cb != NULL)
        c->tcp.alloc_cb = guard_alloc;
    if (sock->_cb.read != NULL && sock->_cb.read != guard_on_read) {
        c->read_cb = sock->_cb.read;
        sock->_cb.read = guard_on_read;
    }
    guard_conn = c;
    c->io_cb(loop, w, events);
    guard_conn = outer;
    unqueue_unchanged(w);
    /* the socket's memory outlives this event (h2o frees it in a close callback, later) */
    if (sock->_cb.read == guard_on_read)
        sock->_cb.read = c->read_cb;
}

void svc_guard_attach(struct svc_guard *g, h2o_socket_t *sock, size_t max_body)
{
    g->sock = sock;
    svc_frame_init(&g->frame, max_body);
    g->io_cb = g->tcp.io_watcher.cb;
    g->tcp.io_watcher.cb = guard_io;
}

void svc_guard_dispose(struct svc_guard *g)
{
    svc_frame_dispose(&g->frame);
}
