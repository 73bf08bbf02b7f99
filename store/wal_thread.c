/* store/wal_thread.c — the group-commit thread of the WAL: a mutex-protected FIFO of caller-owned
 * batches; each round takes the whole queue, buffers it into the WAL, syncs once and calls back.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store/wal_thread.h"

struct wal_thread {
    struct wal *w;
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct wal_batch *head, *tail; /* under mu */
    bool stopping;                 /* under mu */
    int poison;                    /* under mu: copy of the WAL's poison error */
    char msg[512];                 /* under mu */
    uint64_t batches, rounds;      /* under mu */
};

static int buffer_batch(struct wal *w, struct wal_batch *b)
{
    int rv = 0;
    if (b->has_snapshot)
        rv = wal_snapshot(w, b->snapshot_index, b->snapshot_term, b->snapshot_replaces_log);
    if (rv == 0 && b->n_entries > 0)
        rv = wal_append(w, b->entries, b->n_entries);
    if (rv == 0 && b->hard_state != NULL)
        rv = wal_set_hard_state(w, b->hard_state);
    return rv;
}

static void *run(void *arg)
{
    struct wal_thread *t = arg;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (t->head == NULL && !t->stopping)
            pthread_cond_wait(&t->cv, &t->mu);
        if (t->head == NULL)
            break;
        struct wal_batch *list = t->head;
        t->head = t->tail = NULL;
        pthread_mutex_unlock(&t->mu);

        size_t n = 0;
        for (struct wal_batch *b = list; b != NULL; b = b->next, n++)
            b->rv = buffer_batch(t->w, b);
        int sync_rv = wal_sync(t->w);
        /* segments a now-durable snapshot marker covers (their files go on the caller's side) */
        for (struct wal_batch *b = list; sync_rv == 0 && b != NULL; b = b->next)
            if (b->rv == 0 && b->release_before)
                b->rv = wal_detach_before(t->w, b->release_before, &b->detached);
        const char *wmsg = NULL;
        int poison = wal_error(t->w, &wmsg);

        pthread_mutex_lock(&t->mu);
        if (poison != 0 && t->poison == 0) {
            t->poison = poison;
            snprintf(t->msg, sizeof(t->msg), "%s", wmsg);
        }
        t->rounds++;
        t->batches += n;
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", t->msg);
        pthread_mutex_unlock(&t->mu);

        for (struct wal_batch *b = list, *next; b != NULL; b = next) {
            next = b->next; /* done() may free b */
            int err = b->rv != 0 ? b->rv : sync_rv;
            const char *m = err == 0 ? "" : msg;
            if (err == -EINVAL && poison == 0)
                m = "the batch does not follow the log";
            else if (err == -EINVAL)
                err = poison;
            b->done(b->arg, err, m);
        }
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int wal_thread_start(struct wal_thread **out, struct wal *w)
{
    struct wal_thread *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->w = w;
    const char *m;
    t->poison = wal_error(w, &m);
    if (t->poison != 0)
        snprintf(t->msg, sizeof(t->msg), "%s", m);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    int rv = pthread_create(&t->tid, NULL, run, t);
    if (rv != 0) {
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        free(t);
        return -rv;
    }
    *out = t;
    return 0;
}

int wal_thread_submit(struct wal_thread *t, struct wal_batch *b)
{
    pthread_mutex_lock(&t->mu);
    int rv = t->poison != 0 ? t->poison : t->stopping ? -ECANCELED : 0;
    if (rv == 0) {
        b->next = NULL;
        if (t->tail != NULL)
            t->tail->next = b;
        else
            t->head = b;
        t->tail = b;
        pthread_cond_signal(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
    return rv;
}

void wal_thread_stop(struct wal_thread *t)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    t->stopping = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->tid, NULL);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

int wal_thread_error(struct wal_thread *t, char *msg, size_t cap)
{
    pthread_mutex_lock(&t->mu);
    int rv = t->poison;
    if (msg != NULL && cap > 0)
        snprintf(msg, cap, "%s", t->msg);
    pthread_mutex_unlock(&t->mu);
    return rv;
}

void wal_thread_stats(struct wal_thread *t, struct wal_thread_stats *out)
{
    struct wal_stats ws;
    wal_stats(t->w, &ws);
    pthread_mutex_lock(&t->mu);
    out->batches = t->batches;
    out->rounds = t->rounds;
    pthread_mutex_unlock(&t->mu);
    out->fsyncs = ws.fsyncs;
    out->bytes = ws.bytes;
}
