/* service/server.c — listeners, TLS and the HTTP threads (libuv loop + h2o context each).
 *
 * Accepting: the main thread binds one listening socket per --listen address; every HTTP thread
 * polls its own dup() of each. We chose this over SO_REUSEPORT sockets per thread because
 * (1) a bind error is then reported once, before any thread starts, naming the address, and
 * (2) SO_REUSEPORT would let a second discoveryd (or anything of the same user) bind the same
 * port silently and take half the connections. Whichever thread wakes first accepts, but it does
 * not keep every connection it accepts: each goes to the thread that holds the fewest connections
 * (itself on a tie), through that thread's inbox. Left to the kernel's wake-up order, one thread
 * used to take a whole burst of keep-alive connections while the others idled, for the
 * connections' whole lives (measured: all 64 of a wrk run on one of two threads in one run of
 * three, at two thirds of the throughput of a balanced run).
 *
 * Every connection reads through the framing guard (guard.h) before h2o parses a byte.
 *
 * Shutdown (driven by svc.c): STOP closes the listeners and makes the catch-all handler answer
 * 503 without calling the api, acknowledged to the main thread so the node can be stopped
 * safely; DRAIN comes after node_stop has posted every completion: the thread half-closes each
 * connection for reading (idle keep-alive connections then see EOF and close, busy ones finish
 * writing their response first), and its loop stops when no connection is left or the grace
 * time ran out.
 */
#define _GNU_SOURCE
#include "service/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <h2o.h>
#include <h2o/socket/uv-binding.h>

#include "service/guard.h"
#include "service/log.h"
#include "store/list.h"

enum { CMD_STOP = 1, CMD_DRAIN = 2, CMD_ADOPT = 4 };
#define SVC_INBOX 256     /* connections in flight to one thread; beyond, the acceptor keeps them */
#define SVC_ACCEPT_BATCH 16 /* accepts per wake-up, so one thread does not drain a burst alone */

struct svc_thread;

struct svc_conn {
    struct svc_guard g; /* first (its tcp first): h2o's close callback hands us that handle */
    struct svc_thread *t;
    struct svc_conn *prev, *next;
};

struct svc_thread {
    struct svc_server *srv;
    unsigned idx;
    pthread_t tid;
    bool running; /* thread created and its setup succeeded */
    uv_loop_t loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept;
    struct api_thread api;
    uv_poll_t listeners[SVC_MAX_LISTEN]; /* readable: accept (on_listener) */
    int listen_fds[SVC_MAX_LISTEN];      /* this thread's dup()s, closed after their polls */
    size_t n_listeners;
    uv_timer_t accept_retry;             /* out of fds: accepting pauses briefly */
    /* connections handed to this thread by whichever thread accepted them (CMD_ADOPT) */
    pthread_mutex_t inbox_mu;
    int inbox[SVC_INBOX];
    size_t inbox_n;
    atomic_size_t load;   /* connections assigned to this thread and not yet closed (any thread reads) */
    atomic_bool accepting; /* false once STOP ran here: nothing is handed to it any more */
    uv_async_t control;
    atomic_int cmd;
    uv_timer_t grace;
    int grace_stage; /* 0: not started, 1: waiting for clients, 2: forced close, waiting */
    struct svc_conn *conns;
    size_t nconns;
    bool stopping, draining;
    size_t abandoned;
};

struct svc_server {
    const struct svc_config *cfg;
    int fds[SVC_MAX_LISTEN];
    size_t nfds;
    char addresses[1024];
    SSL_CTX *ssl;
    h2o_globalconf_t gc;
    struct api *api;
    struct svc_thread *threads;
    size_t nthreads;
    int64_t grace_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t replies; /* threads that answered the current handshake */
    int setup_rc;
    char setup_err[256];
};

/* ---------------------------------------------------------------- handshakes with main */

static void reply(struct svc_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    srv->replies++;
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
}

static void wait_replies(struct svc_server *srv, size_t n)
{
    pthread_mutex_lock(&srv->mu);
    while (srv->replies < n)
        pthread_cond_wait(&srv->cv, &srv->mu);
    srv->replies = 0;
    pthread_mutex_unlock(&srv->mu);
}

/* ---------------------------------------------------------------- requests */

static void send_unavailable(h2o_req_t *req)
{
    static const char body[] = "discoveryd is shutting down\n";
    req->res.status = 503;
    req->res.reason = "Service Unavailable";
    req->res.content_length = sizeof(body) - 1;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; charset=utf-8"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    req->http1_is_persistent = 0;
    h2o_send_inline(req, body, sizeof(body) - 1);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct svc_thread *t = H2O_STRUCT_FROM_MEMBER(struct svc_thread, ctx, req->conn->ctx);
    if (t->stopping) {
        send_unavailable(req);
        return 0;
    }
    return api_handle(&t->api, req);
}

/* ---------------------------------------------------------------- connections */

static void maybe_finish(struct svc_thread *t)
{
    if (t->draining && t->nconns == 0)
        uv_stop(&t->loop);
}

static void on_conn_close(uv_handle_t *h)
{
    struct svc_conn *c = (struct svc_conn *)h;
    struct svc_thread *t = c->t;
    svc_guard_dispose(&c->g);
    LIST_UNLINK(t->conns, c, prev, next);
    t->nconns--;
    atomic_fetch_sub(&t->load, 1);
    free(c);
    maybe_finish(t);
}

static void on_unadopted_close(uv_handle_t *h)
{
    free(h);
}

static void on_listener(uv_poll_t *poll, int status, int events);

/* Serve an accepted connection on this thread (its load was counted when it was assigned). */
static void adopt(struct svc_thread *t, int fd)
{
    struct svc_conn *c = t->stopping ? NULL : calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        atomic_fetch_sub(&t->load, 1);
        return;
    }
    uv_tcp_init(&t->loop, &c->g.tcp);
    if (uv_tcp_open(&c->g.tcp, fd) != 0) {
        close(fd);
        uv_close((uv_handle_t *)&c->g.tcp, on_unadopted_close);
        atomic_fetch_sub(&t->load, 1);
        return;
    }
    c->t = t;
    LIST_PREPEND(t->conns, c, prev, next);
    t->nconns++;
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->g.tcp, on_conn_close);
    svc_guard_attach(&c->g, sock, t->srv->gc.max_request_entity_size);
    h2o_accept(&t->accept, sock);
}

static void send_cmd(struct svc_thread *t, int cmd);

/* The thread a new connection goes to: the accepting one with the fewest, self on a tie. */
static struct svc_thread *least_loaded(struct svc_thread *self)
{
    struct svc_server *srv = self->srv;
    struct svc_thread *best = self;
    size_t best_load = atomic_load(&self->load);
    for (size_t i = 0; i < srv->cfg->threads; i++) { /* a thread never started is not accepting */
        struct svc_thread *o = &srv->threads[i];
        if (o == self || !atomic_load(&o->accepting))
            continue;
        size_t l = atomic_load(&o->load);
        if (l < best_load) {
            best = o;
            best_load = l;
        }
    }
    return best;
}

/* Hand fd to t's inbox; false when the inbox is full (the caller keeps it). */
static bool hand_over(struct svc_thread *t, int fd)
{
    pthread_mutex_lock(&t->inbox_mu);
    bool ok = t->inbox_n < SVC_INBOX;
    if (ok)
        t->inbox[t->inbox_n++] = fd;
    pthread_mutex_unlock(&t->inbox_mu);
    if (ok)
        send_cmd(t, CMD_ADOPT);
    return ok;
}

static void on_accept_retry(uv_timer_t *timer)
{
    struct svc_thread *t = timer->data;
    if (t->stopping)
        return;
    for (size_t i = 0; i < t->n_listeners; i++)
        uv_poll_start(&t->listeners[i], UV_READABLE, on_listener);
}

static void on_listener(uv_poll_t *poll, int status, int events)
{
    struct svc_thread *t = poll->data;
    if (status != 0 || t->stopping)
        return;
    int lfd = t->listen_fds[poll - t->listeners];
    for (int n = 0; n < SVC_ACCEPT_BATCH; n++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* the connection waits in the backlog; polling again at once would spin */
                svc_log(SVC_LOG_WARN, "thread %u: accept: %s; pausing accepts for 100 ms", t->idx,
                        strerror(errno));
                for (size_t i = 0; i < t->n_listeners; i++)
                    uv_poll_stop(&t->listeners[i]);
                uv_timer_start(&t->accept_retry, on_accept_retry, 100, 0);
            }
            return; /* EAGAIN: another thread took it, or the backlog is empty */
        }
        struct svc_thread *to = least_loaded(t);
        atomic_fetch_add(&to->load, 1);
        if (to != t && !hand_over(to, fd)) {
            atomic_fetch_sub(&to->load, 1);
            atomic_fetch_add(&t->load, 1);
            to = t;
        }
        if (to == t)
            adopt(t, fd);
    }
}

/* Connections other threads handed to this one. */
static void adopt_inbox(struct svc_thread *t)
{
    int fds[SVC_INBOX];
    pthread_mutex_lock(&t->inbox_mu);
    size_t n = t->inbox_n;
    memcpy(fds, t->inbox, n * sizeof(fds[0]));
    t->inbox_n = 0;
    pthread_mutex_unlock(&t->inbox_mu);
    for (size_t i = 0; i < n; i++)
        adopt(t, fds[i]); /* closes it when stopping */
}

/* How: shutdown(2) on the raw fd. h2o notices EOF on its next read (idle connections at once,
 * busy ones once their response is written) and closes the connection through its own path,
 * so every h2o-side allocation is released. */
static void shutdown_conns(struct svc_thread *t, int how)
{
    for (struct svc_conn *c = t->conns; c != NULL; c = c->next) {
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&c->g.tcp, &fd) == 0)
            shutdown(fd, how);
    }
}

static void on_grace(uv_timer_t *timer)
{
    struct svc_thread *t = timer->data;
    if (t->grace_stage == 1) {
        svc_log(SVC_LOG_WARN, "thread %u: %zu connection(s) still open after the grace time; closing", t->idx,
                t->nconns);
        shutdown_conns(t, SHUT_RDWR);
        t->grace_stage = 2;
        uv_timer_start(&t->grace, on_grace, 1000, 0);
        return;
    }
    t->abandoned = t->nconns;
    uv_stop(&t->loop);
}

static void on_listener_close(uv_handle_t *h)
{
    struct svc_thread *t = h->data;
    size_t i = (size_t)((uv_poll_t *)h - t->listeners);
    close(t->listen_fds[i]); /* a poll handle does not own its fd */
    t->listen_fds[i] = -1;
}

static void close_listeners(struct svc_thread *t)
{
    uv_timer_stop(&t->accept_retry);
    for (size_t i = 0; i < t->n_listeners; i++)
        if (!uv_is_closing((uv_handle_t *)&t->listeners[i]))
            uv_close((uv_handle_t *)&t->listeners[i], on_listener_close);
}

static void on_control(uv_async_t *async)
{
    struct svc_thread *t = async->data;
    int cmd = atomic_exchange(&t->cmd, 0);
    if ((cmd & CMD_STOP) && !t->stopping) {
        t->stopping = true;
        atomic_store(&t->accepting, false);
        close_listeners(t);
        reply(t->srv);
    }
    if (cmd & CMD_ADOPT)
        adopt_inbox(t);
    if ((cmd & CMD_DRAIN) && !t->draining) {
        t->draining = true;
        /* Not h2o_context_request_shutdown: in 2.2.5 it links an HTTP/2 GOAWAY timer into the
         * context's one-second timeout, which h2o_context_dispose then finds still linked (an
         * assertion). We serve HTTP/1.1, where half-closing the sockets does the job. */
        shutdown_conns(t, SHUT_RD);
        t->grace_stage = 1;
        uv_timer_start(&t->grace, on_grace, (uint64_t)t->srv->grace_ms, 0);
        maybe_finish(t);
    }
}

/* ---------------------------------------------------------------- thread */

static void close_loop(struct svc_thread *t)
{
    /* Let close callbacks run; bounded, so a handle someone left open cannot hang the exit. */
    for (int i = 0; i < 100 && uv_run(&t->loop, UV_RUN_NOWAIT) != 0; i++)
        ;
    if (uv_loop_close(&t->loop) != 0)
        svc_log(SVC_LOG_DEBUG, "thread %u: loop closed with handles still open", t->idx);
}

static int thread_setup(struct svc_thread *t, char *err, size_t errlen)
{
    struct svc_server *srv = t->srv;
    svc_guard_thread_init();
    h2o_context_init(&t->ctx, &t->loop, &srv->gc);
    t->accept.ctx = &t->ctx;
    t->accept.hosts = srv->gc.hosts;
    t->accept.ssl_ctx = srv->ssl;
    uv_async_init(&t->loop, &t->control, on_control);
    t->control.data = t;
    uv_timer_init(&t->loop, &t->grace);
    t->grace.data = t;
    uv_timer_init(&t->loop, &t->accept_retry);
    t->accept_retry.data = t;
    for (size_t i = 0; i < srv->nfds; i++) {
        int fd = dup(srv->fds[i]);
        int rc;
        if (fd < 0) {
            snprintf(err, errlen, "thread %u: dup: %s", t->idx, strerror(errno));
            return -1;
        }
        t->listen_fds[i] = fd;
        t->n_listeners++;
        if ((rc = uv_poll_init(&t->loop, &t->listeners[i], fd)) != 0) {
            t->n_listeners--;
            close(fd);
            snprintf(err, errlen, "thread %u: listen: %s", t->idx, uv_strerror(rc));
            return -1;
        }
        t->listeners[i].data = t;
        if ((rc = uv_poll_start(&t->listeners[i], UV_READABLE, on_listener)) != 0) {
            snprintf(err, errlen, "thread %u: listen: %s", t->idx, uv_strerror(rc));
            return -1;
        }
    }
    if (api_thread_init(&t->api, srv->api, &t->ctx) != 0) {
        snprintf(err, errlen, "thread %u: api_thread_init failed", t->idx);
        return -1;
    }
    return 0;
}

static void thread_teardown(struct svc_thread *t, bool api_ready)
{
    uv_timer_stop(&t->grace);
    uv_close((uv_handle_t *)&t->grace, NULL);
    close_listeners(t);
    uv_close((uv_handle_t *)&t->control, NULL);
    uv_close((uv_handle_t *)&t->accept_retry, NULL);
    /* connections handed over after this thread stopped and not adopted yet */
    pthread_mutex_lock(&t->inbox_mu);
    for (size_t i = 0; i < t->inbox_n; i++)
        close(t->inbox[i]);
    t->inbox_n = 0;
    pthread_mutex_unlock(&t->inbox_mu);
    if (api_ready)
        api_thread_dispose(&t->api);
    h2o_context_dispose(&t->ctx);
    close_loop(t);
}

/* h2o 2.2.5 keeps two per-thread free lists (memory-pool chunks and socket buffers) in
 * thread-local variables and offers no call to empty them, so every HTTP thread that exits
 * would leave them unreachable (LeakSanitizer reports them). Both hold plain malloc()ed blocks:
 * the socket-buffer list is public (a linked list whose first word is the next pointer); the
 * pool's list is static, so we take its chunks out through the public API, one pool allocation
 * at a time, and free them ourselves. Called when nothing on this thread uses h2o any more. */
static void release_h2o_thread_caches(void)
{
    h2o_mem_recycle_t *r = &h2o_socket_buffer_prototype.allocator;
    while (r->cnt > 0 && r->_link != NULL) {
        void **chunk = (void **)r->_link;
        r->_link = *chunk;
        r->cnt--;
        free(chunk);
    }
    for (int i = 0; i < 64; i++) { /* more than the pool's list ever holds (16 in 2.2.5) */
        h2o_mem_pool_t pool;
        h2o_mem_init_pool(&pool);
        h2o_mem_alloc_pool(&pool, 1);
        free(pool.chunks);
    }
}

static void *thread_main(void *arg)
{
    struct svc_thread *t = arg;
    struct svc_server *srv = t->srv;
    char err[256] = "";
    int rc = thread_setup(t, err, sizeof(err));
    pthread_mutex_lock(&srv->mu);
    if (rc != 0 && srv->setup_rc == 0) {
        srv->setup_rc = rc;
        snprintf(srv->setup_err, sizeof(srv->setup_err), "%s", err);
    }
    pthread_mutex_unlock(&srv->mu);
    if (rc != 0) {
        thread_teardown(t, false);
        release_h2o_thread_caches();
        reply(srv);
        return NULL;
    }
    t->running = true;
    atomic_store(&t->accepting, true);
    reply(srv);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    thread_teardown(t, true);
    release_h2o_thread_caches();
    return NULL;
}

/* ---------------------------------------------------------------- server */

static int bind_one(struct svc_listen *l, int *out, char *err, size_t errlen, bool *skipped, bool optional)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    *skipped = false;
    if (fd < 0) {
        if (optional && (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT)) {
            *skipped = true;
            return 0;
        }
        snprintf(err, errlen, "cannot listen on %s: %s", l->text, strerror(errno));
        return -1;
    }
    /* SO_REUSEADDR: restart while old connections sit in TIME_WAIT. It does not let two
     * listeners share the port on Linux (that is SO_REUSEPORT, which we do not set). */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* V6ONLY so [::]:P and 0.0.0.0:P can both be bound. */
    if (l->v6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&l->addr, l->addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        int e = errno;
        close(fd);
        if (optional && e == EADDRNOTAVAIL) {
            *skipped = true;
            return 0;
        }
        snprintf(err, errlen, "cannot listen on %s: %s", l->text, strerror(e));
        return -1;
    }
    *out = fd;
    return 0;
}

static int load_tls(struct svc_server *srv, char *err, size_t errlen)
{
    const struct svc_config *cfg = srv->cfg;
    unsigned long e;
    char buf[256];
    srv->ssl = SSL_CTX_new(TLS_server_method());
    if (srv->ssl == NULL) {
        snprintf(err, errlen, "TLS: cannot create a context");
        return -1;
    }
    SSL_CTX_set_min_proto_version(srv->ssl, TLS1_2_VERSION);
    SSL_CTX_set_options(srv->ssl, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(srv->ssl, cfg->tls_cert) != 1) {
        e = ERR_get_error();
        ERR_error_string_n(e, buf, sizeof(buf));
        snprintf(err, errlen, "--tls-cert: cannot load \"%s\": %s", cfg->tls_cert, buf);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(srv->ssl, cfg->tls_key, SSL_FILETYPE_PEM) != 1) {
        e = ERR_get_error();
        ERR_error_string_n(e, buf, sizeof(buf));
        snprintf(err, errlen, "--tls-key: cannot load \"%s\": %s", cfg->tls_key, buf);
        return -1;
    }
    if (SSL_CTX_check_private_key(srv->ssl) != 1) {
        snprintf(err, errlen, "--tls-key: \"%s\" does not match the certificate in \"%s\"", cfg->tls_key,
                 cfg->tls_cert);
        return -1;
    }
    return 0;
}

int svc_server_new(struct svc_server **out, const struct svc_config *cfg, char *err, size_t errlen)
{
    struct svc_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->cfg = cfg;
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->cv, NULL);
    h2o_config_init(&srv->gc);
    *out = srv;

    if (cfg->tls_cert != NULL && load_tls(srv, err, errlen) != 0)
        return -1;

    size_t used = 0;
    srv->addresses[0] = '\0';
    for (size_t i = 0; i < cfg->n_listen; i++) {
        struct svc_listen l = cfg->listen[i];
        bool skipped;
        int fd;
        if (bind_one(&l, &fd, err, errlen, &skipped, cfg->listen_is_default) != 0)
            return -1;
        if (skipped) {
            svc_log(SVC_LOG_WARN, "skipping %s: this host has no such address family", l.text);
            continue;
        }
        srv->fds[srv->nfds++] = fd;
        /* Name the port actually bound (port 0 asks the kernel for one). */
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        char host[64];
        unsigned port = 0;
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
            if (ss.ss_family == AF_INET6) {
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
                port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
            } else {
                inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
                port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
            }
        }
        int n = snprintf(srv->addresses + used, sizeof(srv->addresses) - used,
                         ss.ss_family == AF_INET6 ? "%s%s://[%s]:%u" : "%s%s://%s:%u", used ? ", " : "",
                         cfg->tls_cert ? "https" : "http", host, port);
        if (n > 0 && (size_t)n < sizeof(srv->addresses) - used)
            used += (size_t)n;
    }
    if (srv->nfds == 0) {
        snprintf(err, errlen, "no address to listen on");
        return -1;
    }

    /* One host, one path "/", one handler: the api routes every request itself. */
    h2o_hostconf_t *host = h2o_config_register_host(&srv->gc, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = on_req;
    srv->gc.server_name = h2o_iovec_init(H2O_STRLIT("discoveryd"));
    /* Bodies up to 1 MiB (or max-body + 1 if larger) reach the api, which answers 413 in its own
     * format and keeps the connection alive; only beyond that does h2o refuse and close. */
    size_t entity_cap = (size_t)cfg->max_body + 1;
    srv->gc.max_request_entity_size = entity_cap > (1u << 20) ? entity_cap : (1u << 20);
    /* HTTP/1.1 only: Debian's h2o 2.2.5 lacks the HTTP/2 Rapid-Reset fix. */
    srv->gc.http1.upgrade_to_http2 = 0;
    /* h2o 2.2.5's HTTP/1 request timeout runs only while a request's head or body is being read
     * and while a keep-alive connection waits for its next request; it is cleared once the
     * request is handed to us, so it never cuts a parked watch (checked: a 15 s --watch-timeout
     * long-poll under the default 10 s req_timeout is answered 200 at 15 s). Keeping it short
     * bounds slow or idle clients. There is no HTTP/1 write or "io" timeout on the server side
     * (proxy.io_timeout is for h2o's proxy client, which we do not use). */
    srv->gc.http1.req_timeout = H2O_DEFAULT_HTTP1_REQ_TIMEOUT;
    return 0;
}

const char *svc_server_addresses(const struct svc_server *srv)
{
    return srv->addresses;
}

int svc_server_start(struct svc_server *srv, struct api *api, char *err, size_t errlen)
{
    srv->api = api;
    srv->nthreads = srv->cfg->threads;
    srv->threads = calloc(srv->nthreads, sizeof(*srv->threads));
    if (srv->threads == NULL) {
        snprintf(err, errlen, "out of memory");
        srv->nthreads = 0;
        return -1;
    }
    for (size_t i = 0; i < srv->nthreads; i++) {
        struct svc_thread *t = &srv->threads[i];
        pthread_mutex_init(&t->inbox_mu, NULL); /* destroyed by svc_server_free */
        atomic_init(&t->load, 0);
        atomic_init(&t->accepting, false);
    }
    size_t created = 0;
    for (size_t i = 0; i < srv->nthreads; i++) {
        struct svc_thread *t = &srv->threads[i];
        t->srv = srv;
        t->idx = (unsigned)i;
        atomic_init(&t->cmd, 0);
        /* The loop is initialised here so that a command can never reach an uninitialised
         * async handle: the thread is not signalled before it replied. */
        uv_loop_init(&t->loop);
        if (pthread_create(&t->tid, NULL, thread_main, t) != 0) {
            uv_loop_close(&t->loop);
            snprintf(err, errlen, "cannot create HTTP thread %zu", i);
            break;
        }
        created++;
    }
    wait_replies(srv, created);
    srv->nthreads = created;
    if (created < srv->cfg->threads)
        return -1;
    if (srv->setup_rc != 0) {
        snprintf(err, errlen, "%s", srv->setup_err);
        return -1;
    }
    return 0;
}

static void send_cmd(struct svc_thread *t, int cmd)
{
    atomic_fetch_or(&t->cmd, cmd);
    uv_async_send(&t->control);
}

void svc_server_stop_accepting(struct svc_server *srv)
{
    size_t n = 0;
    for (size_t i = 0; i < srv->nthreads; i++)
        if (srv->threads[i].running) {
            send_cmd(&srv->threads[i], CMD_STOP);
            n++;
        }
    wait_replies(srv, n);
    /* Close the originals too: with every copy closed the kernel refuses new connections
     * instead of queueing them where nobody will accept them. */
    for (size_t i = 0; i < srv->nfds; i++)
        close(srv->fds[i]);
    srv->nfds = 0;
}

size_t svc_server_drain(struct svc_server *srv, int64_t grace_ms)
{
    size_t abandoned = 0;
    srv->grace_ms = grace_ms;
    for (size_t i = 0; i < srv->nthreads; i++)
        if (srv->threads[i].running)
            send_cmd(&srv->threads[i], CMD_DRAIN);
    for (size_t i = 0; i < srv->nthreads; i++) {
        pthread_join(srv->threads[i].tid, NULL);
        abandoned += srv->threads[i].abandoned;
    }
    srv->nthreads = 0;
    return abandoned;
}

void svc_server_free(struct svc_server *srv)
{
    if (srv == NULL)
        return;
    /* Threads still around (start failed half-way) are drained first. */
    if (srv->nthreads > 0) {
        svc_server_stop_accepting(srv);
        svc_server_drain(srv, 1000);
    }
    for (size_t i = 0; i < srv->nfds; i++)
        close(srv->fds[i]);
    for (size_t i = 0; srv->threads != NULL && i < srv->cfg->threads; i++)
        pthread_mutex_destroy(&srv->threads[i].inbox_mu);
    free(srv->threads);
    h2o_config_dispose(&srv->gc);
    if (srv->ssl)
        SSL_CTX_free(srv->ssl);
    pthread_cond_destroy(&srv->cv);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
}
