/* store/node_snap.c — taking a snapshot without stalling the store thread: fork(), and let the child
 * write the tree and the watch history (snap_write) while the parent goes on serving.
 *
 * Why fork: the store thread is the tree's only writer, so at any moment between two applies the
 * tree is consistent, and fork() hands the child a copy-on-write image of exactly that moment for
 * the cost of copying page tables (a few ms per GiB), where serialising a 1M-key tree inline would
 * stall every write for seconds, and a persistent tree or incremental copying would tax every
 * write forever. The child only reads memory and writes one file through store/fileio.h, then
 * _exit()s: it touches no lock another thread could have held (glibc's malloc is reset across
 * fork), no libuv handle and no socket. Memory: pages the parent writes during the dump are
 * duplicated, bounded by the write rate times the dump time. Store thread only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/node_snap.h"

struct node_snapper {
    pid_t pid;
    int rfd; /* read end of the child's report pipe */
    uv_poll_t poll;
    bool polling;
    struct snap_meta meta;
    node_snap_done_fn done;
    char msg[512];
    size_t msg_len;
};

static void finish(struct node *n, bool ok, const char *msg)
{
    struct node_snapper *s = n->snapper;
    if (s->polling) {
        uv_poll_stop(&s->poll);
        uv_close((uv_handle_t *)&s->poll, NULL);
        s->polling = false;
    }
    close(s->rfd);
    s->rfd = -1;
    int status = 0;
    while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
        ;
    s->pid = 0;
    if (ok && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        ok = false;
        msg = "the snapshot writer died";
    }
    s->done(n, ok, &s->meta, msg);
}

static void on_report(uv_poll_t *p, int status, int events)
{
    struct node *n = p->data;
    struct node_snapper *s = n->snapper;
    ssize_t r = read(s->rfd, s->msg + s->msg_len, sizeof(s->msg) - 1 - s->msg_len);
    if (r > 0 && s->msg_len + (size_t)r < sizeof(s->msg) - 1) {
        s->msg_len += (size_t)r;
        return; /* more may come; EOF ends it */
    }
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (r > 0)
        s->msg_len += (size_t)r;
    s->msg[s->msg_len] = '\0';
    finish(n, s->msg_len == 0, s->msg);
}

bool node_snap_running(const struct node *n)
{
    return n->snapper && n->snapper->pid > 0;
}

int node_snap_begin(struct node *n, const char *dir, const struct snap_meta *m, node_snap_done_fn done)
{
    if (!n->snapper && !(n->snapper = calloc(1, sizeof(*n->snapper))))
        return -ENOMEM;
    struct node_snapper *s = n->snapper;
    if (s->pid > 0)
        return -EBUSY;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -errno;
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return -e;
    }
    if (pid == 0) {
        /* The child: keep nothing of the parent's but its memory. Listening sockets and the data
         * dir's LOCK must not outlive a parent killed mid-snapshot (a restart could not bind or
         * lock), and a snapshot no parent will ever mark is pointless: die with the parent. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* Serving comes first: the writer yields the CPU to the service's threads (nice 10) and
         * its I/O to the WAL's fdatasync (the idle I/O class; the block layer still lets it
         * through when the device is free, and schedulers age it so it cannot starve forever). */
        if (setpriority(PRIO_PROCESS, 0, 10) != 0 ||
            syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, 3 << 13 /* IOPRIO_CLASS_IDLE */) != 0)
            (void)0; /* a hint: a kernel without it writes the snapshot all the same */
        if (getppid() != parent)
            _exit(1);
        int out = fds[1] == 3 ? 3 : dup2(fds[1], 3);
        if (out != 3 || close_range(4, ~0u, 0) != 0)
            _exit(1);
        char err[480] = "";
        int rv = snap_write(fileio_posix(), dir, m, n->kv, n->hub, err, sizeof(err));
        if (rv != 0) {
            ssize_t w = write(out, err, strnlen(err, sizeof(err)));
            (void)w;
        }
        _exit(rv == 0 ? 0 : 1);
    }
    close(fds[1]);
    s->pid = pid;
    s->rfd = fds[0];
    s->meta = *m;
    s->done = done;
    s->msg_len = 0;
    uv_poll_init(&n->loop, &s->poll, s->rfd);
    s->poll.data = n;
    uv_poll_start(&s->poll, UV_READABLE | UV_DISCONNECT, on_report);
    s->polling = true;
    return 0;
}

void node_snap_close(struct node *n)
{
    struct node_snapper *s = n->snapper;
    if (!s || s->pid <= 0)
        return;
    kill(s->pid, SIGKILL); /* its .tmp file is removed by the next snap_prune */
    finish(n, false, "shutting down");
}

void node_snap_free(struct node *n)
{
    free(n->snapper);
    n->snapper = NULL;
}
