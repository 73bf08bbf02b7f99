/* store/node_peers.c — the log driver's side of a cluster: what the transport (store/transport.h)
 * brings in waits in inboxes until the core may take input (no ready out), then is stepped in;
 * the core's messages go out once their ready is durable; a follower forwards writes and quorum
 * reads to the leader and matches the leader's answers with the entries it applies; a snapshot
 * received from the leader replaces the tree (and the membership). Store thread only. node_raft.c
 * calls in here; the transport's handlers only queue and kick the loop (a JOIN is answered from
 * the membership as it stands, a REMOVED notice only sets a flag), so nothing here calls back up.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/node_raft_int.h"
#include "store/transport.h"

#define FORWARD_WAIT_MS 4000 /* a write waits this long for a leader, then 503 (members retry 5xx) */

struct inmsg {
    struct inmsg *next;
    char *snap_path; /* a received snapshot file (RAFT_MSG_SNAPSHOT) */
    size_t len;
    uint8_t buf[]; /* raft_msg_encode'd */
};

struct infwd {
    struct infwd *next;
    uint64_t from, req;
    uint8_t conf_op;  /* a membership change (cmd holds the peer URL), or 0 */
    uint64_t conf_id;
    size_t len;    /* 0: a read-index request */
    uint8_t cmd[]; /* an encoded kv_cmd */
};

/* A follower's read the leader serves a read index for. */
struct remote_read {
    struct remote_read *next;
    uint64_t from, req, ctx;
};

struct node_peers {
    struct transport *tp;
    struct inmsg *in_head, *in_tail;
    struct infwd *fw_head, *fw_tail;
    struct remote_read *rreads;
    struct opq forwarded; /* our writes and reads with the leader, by request number (ctx_) */
    uint64_t next_req;
    bool stopped;
};

static void kick(struct node *n)
{
    uv_async_send(&n->drv->kick);
}

/* ---------------------------------------------------------------- the transport's handlers */

static void on_message(void *arg, const struct raft_message *m, const char *snap_path)
{
    struct node *n = arg;
    struct node_peers *p = n->drv->peers;
    struct raft_message meta;
    if (m->type == RAFT_MSG_SNAPSHOT) { /* the image is the file at snap_path, not bytes in m */
        meta = *m;
        meta.snapshot.len = 0;
        meta.snapshot.data = NULL;
        m = &meta;
    }
    size_t len = raft_msg_size(m);
    struct inmsg *im = malloc(sizeof(*im) + len);
    if (!im)
        return; /* dropped: Raft retries */
    im->next = NULL;
    im->snap_path = snap_path ? strdup(snap_path) : NULL;
    if (raft_msg_encode(m, im->buf, len, &im->len) != 0 || (snap_path && !im->snap_path)) {
        free(im->snap_path);
        free(im);
        return;
    }
    if (p->in_tail)
        p->in_tail->next = im;
    else
        p->in_head = im;
    p->in_tail = im;
    kick(n);
}

static struct infwd *queue_forward(struct node *n, uint64_t from, uint64_t req, const uint8_t *cmd, size_t len)
{
    struct node_peers *p = n->drv->peers;
    struct infwd *f = malloc(sizeof(*f) + len);
    if (!f)
        return NULL; /* the follower's request times out: 503 */
    f->next = NULL;
    f->from = from;
    f->req = req;
    f->conf_op = 0;
    f->conf_id = 0;
    f->len = len;
    memcpy(f->cmd, cmd, len);
    if (p->fw_tail)
        p->fw_tail->next = f;
    else
        p->fw_head = f;
    p->fw_tail = f;
    kick(n);
    return f;
}

static void on_forward(void *arg, uint64_t from, uint64_t req, const uint8_t *cmd, size_t len)
{
    queue_forward(arg, from, req, cmd, len);
}

static void on_forward_conf(void *arg, uint64_t from, uint64_t req, uint8_t op, uint64_t id, const char *url,
                            size_t len)
{
    if (op != NODE_MEMBER_ADD && op != NODE_MEMBER_REMOVE && op != NODE_MEMBER_NAME)
        return;
    struct infwd *f = queue_forward(arg, from, req, (const uint8_t *)url, len);
    if (f) {
        f->conf_op = op;
        f->conf_id = id;
    }
}

static uint64_t on_join(void *arg, const char *url, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    return node_conf_join(arg, url, len, out, cap, out_len);
}

static void on_removed(void *arg, uint64_t from)
{
    node_conf_removed(arg, from);
}

static void on_forwarded(void *arg, uint64_t req, uint64_t index, uint64_t term, int status)
{
    struct node *n = arg;
    struct node_raft *d = n->drv;
    struct node_peers *p = d->peers;
    struct opq keep = {0};
    struct node_op *op, *found = NULL;
    while ((op = q_pop(&p->forwarded))) {
        if (!found && op->ctx_ == req)
            found = op;
        else
            q_push(&keep, op);
    }
    p->forwarded = keep;
    if (!found)
        return; /* timed out already */
    if (status > 0 && status <= -NODE_STATUS_MIN) {
        node_complete(n, found, -status); /* the leader refused a membership change for good */
        return;
    }
    if (status != 0) {
        /* the leader did not take it (it stopped leading, or hands over): it was not proposed, so
         * it may go again to the next leader, within its deadline */
        found->index_ = found->ctx_ = 0;
        q_push(found->type == NODE_OP_QUORUM    ? &d->unasked
               : found->type == NODE_OP_MEMBER ? &d->mwaiting
                                                : &d->waiting,
               found);
        kick(n);
        return;
    }
    if (found->type == NODE_OP_QUORUM) {
        found->index_ = index ? index : 1; /* serve once applied up to the leader's read index */
        q_push(&d->reads, found);
        kick(n);
        return;
    }
    /* the write is at (index, term) in the leader's log: it completes when that entry applies here
     * (a different term at that index means it was overwritten: it did not happen) */
    found->index_ = index;
    found->ctx_ = term;
    struct opq sorted = {0};
    bool placed = false;
    while ((op = q_pop(&d->proposed))) {
        if (!placed && op->index_ > index) {
            q_push(&sorted, found);
            placed = true;
        }
        q_push(&sorted, op);
    }
    if (!placed)
        q_push(&sorted, found);
    d->proposed = sorted;
}

/* ---------------------------------------------------------------- called by the driver */

int node_peers_start(struct node *n, char *err, size_t errlen)
{
    const struct node_cluster *c = n->cfg.cluster;
    struct node_raft *d = n->drv;
    struct node_peers *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    d->peers = p;
    struct transport_config tc;
    memset(&tc, 0, sizeof(tc));
    tc.loop = &n->loop;
    tc.self_id = d->member_id;
    tc.cluster_id = n->cluster_id;
    snprintf(tc.listen_host, sizeof(tc.listen_host), "%s", c->listen_host);
    tc.listen_port = c->listen_port; /* the peers come from the membership (node_conf_sync) */
    char recv_dir[4300];
    snprintf(recv_dir, sizeof(recv_dir), "%s/snap.recv", n->cfg.data_dir);
    tc.snap_recv_dir = recv_dir;
    tc.cert_file = c->cert;
    tc.key_file = c->key;
    tc.ca_file = c->ca;
    tc.h = (struct transport_handlers){on_message, on_forward, on_forwarded, n, on_forward_conf, on_join, on_removed};
    char why[512];
    if (transport_start(&p->tp, &tc, why, sizeof(why)) != 0) {
        /* the transport names the address or the file; say which flag that comes from */
        snprintf(err, errlen, "%s: %s", c->cert ? "--listen-peer-urls or --peer-*-file" : "--listen-peer-urls", why);
        return -1;
    }
    node_conf_sync(n);
    return 0;
}

void node_peers_add(struct node *n, const struct node_member *m)
{
    struct node_peers *p = n->drv->peers;
    struct transport_peer tp;
    memset(&tp, 0, sizeof(tp));
    tp.id = m->id;
    snprintf(tp.host, sizeof(tp.host), "%s", m->host);
    tp.port = m->port;
    int rv = transport_add_peer(p->tp, &tp);
    if (rv != 0 && rv != -EEXIST)
        fprintf(stderr, "discoveryd: cannot add peer %llx (%s): %s\n", (unsigned long long)m->id, m->peer_url,
                strerror(-rv));
}

void node_peers_remove(struct node *n, uint64_t id)
{
    transport_remove_peer(n->drv->peers->tp, id);
}

void node_peers_gone(struct node *n, uint64_t id)
{
    if (n->drv->peers)
        transport_peer_gone(n->drv->peers->tp, id);
}

bool node_peers_connected(struct node *n, uint64_t id)
{
    struct node_peers *p = n->drv->peers;
    return p && transport_connected(p->tp, id);
}

/* On a follower: hand a membership change to the leader. false: no leader known now. */
bool node_peers_forward_conf(struct node *n, struct node_op *op)
{
    struct node_raft *d = n->drv;
    struct node_peers *p = d->peers;
    uint64_t lead = raft_leader(d->raft);
    if (!p || lead == 0 || lead == d->member_id || !transport_connected(p->tp, lead))
        return false;
    op->ctx_ = ++p->next_req;
    op->index_ = 0;
    const char *url = op->member_op == NODE_MEMBER_NAME ? op->member_name : op->peer_url ? op->peer_url : "";
    if (transport_forward_conf(p->tp, lead, op->ctx_, (uint8_t)op->member_op, op->member_id, url, strlen(url)) != 0)
        return false;
    q_push(&p->forwarded, op);
    return true;
}

/* Step what arrived into the core (no ready is out). A received snapshot's file is remembered
 * for when its ready is persisted. */
void node_peers_step(struct node *n)
{
    struct node_raft *d = n->drv;
    struct node_peers *p = d->peers;
    if (!p)
        return;
    struct inmsg *im;
    while ((im = p->in_head)) {
        p->in_head = im->next;
        if (!p->in_head)
            p->in_tail = NULL;
        struct raft_message m;
        if (raft_msg_decode(im->buf, im->len, &m, NULL) == 0) {
            if (m.type == RAFT_MSG_SNAPSHOT && im->snap_path) {
                free(d->snap_recv_path);
                d->snap_recv_path = im->snap_path;
                im->snap_path = NULL;
            }
            raft_step(d->raft, &m);
            raft_msg_release(&m, NULL);
        }
        if (im->snap_path)
            remove(im->snap_path);
        free(im->snap_path);
        free(im);
    }
}

/* On the leader: propose what followers forwarded and tell them where it went. */
void node_peers_serve(struct node *n)
{
    struct node_raft *d = n->drv;
    struct node_peers *p = d->peers;
    if (!p)
        return;
    struct infwd *f;
    while ((f = p->fw_head)) {
        p->fw_head = f->next;
        if (!p->fw_head)
            p->fw_tail = NULL;
        int status = -1;
        uint64_t index = 0, term = raft_term(d->raft);
        if (d->poisoned) {
            status = -1;
        } else if (f->conf_op) {
            int rv = node_conf_propose(n, f->conf_op, f->conf_id, (const char *)f->cmd, f->len, &index);
            status = rv == NODE_OK ? 0 : rv == NODE_EUNAVAILABLE ? -1 : -rv;
        } else if (f->len == 0) { /* a read: answered when the read index is confirmed */
            struct remote_read *rr = malloc(sizeof(*rr));
            if (rr) {
                rr->from = f->from;
                rr->req = f->req;
                rr->ctx = ++d->read_ctx;
                if (raft_read_index(d->raft, rr->ctx) == 0) {
                    rr->next = p->rreads;
                    p->rreads = rr;
                    free(f);
                    continue;
                }
                free(rr);
            }
        } else if (raft_propose(d->raft, f->cmd, (uint32_t)f->len) == 0) {
            status = 0;
            index = raft_last_index(d->raft);
        }
        transport_forwarded(p->tp, f->from, f->req, index, term, status);
        free(f);
    }
}

/* On the leader: the read states of followers' reads go back to them. */
void node_peers_read_states(struct node *n, const struct raft_ready *rd)
{
    struct node_peers *p = n->drv->peers;
    if (!p)
        return;
    for (size_t i = 0; i < rd->n_read_states; i++) {
        for (struct remote_read **pp = &p->rreads; *pp;) {
            struct remote_read *rr = *pp;
            if (rr->ctx != rd->read_states[i].ctx) {
                pp = &rr->next;
                continue;
            }
            transport_forwarded(p->tp, rr->from, rr->req, rd->read_states[i].index, 0, 0);
            *pp = rr->next;
            free(rr);
        }
    }
}

/* On a follower: hand a write or a quorum read to the leader. false: no leader known now. */
bool node_peers_forward(struct node *n, struct node_op *op, const uint8_t *cmd, size_t len)
{
    struct node_raft *d = n->drv;
    struct node_peers *p = d->peers;
    uint64_t lead = raft_leader(d->raft);
    if (!p || lead == 0 || lead == d->member_id || !transport_connected(p->tp, lead))
        return false; /* wait (bounded) for a leader we can reach: a request sent into a dead link
                         would only time out, and sending it again later could make it happen twice */
    op->ctx_ = ++p->next_req;
    op->index_ = 0;
    op->cmd.now_ms = op->cmd.now_ms ? op->cmd.now_ms : node_wall_ms();
    if (transport_forward(p->tp, lead, op->ctx_, cmd, len) != 0)
        return false;
    q_push(&p->forwarded, op);
    return true;
}

/* Ops that waited too long for a leader, its answer, or their entry to commit and apply here: 503
 * (the member retries). A write the leader took may still commit after its 503; a 5xx says only
 * that the outcome is unknown. A follower cut off from the cluster (its leader gone with the
 * majority) would otherwise hold such a write until the cluster came back. */
void node_peers_expire(struct node *n)
{
    struct node_raft *d = n->drv;
    struct node_peers *p = d->peers;
    if (!p)
        return;
    uint64_t now = uv_now(&n->loop);
    struct opq *qs[] = {&d->waiting, &d->unasked, &p->forwarded, &d->mwaiting, &d->proposed, &d->reads};
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        struct opq keep = {0};
        struct node_op *op;
        while ((op = q_pop(qs[i]))) {
            if (!op->deadline_)
                op->deadline_ = now + FORWARD_WAIT_MS;
            if (op->deadline_ <= now)
                node_complete(n, op, NODE_EUNAVAILABLE);
            else
                q_push(&keep, op);
        }
        *qs[i] = keep;
    }
}

/* Send the ready's messages (its writes are durable): a snapshot goes as our latest snapshot file. */
void node_peers_send(struct node *n, const struct raft_ready *rd)
{
    struct node_raft *d = n->drv;
    struct node_peers *p = d->peers;
    if (!p)
        return;
    for (size_t i = 0; i < rd->n_messages; i++) {
        const struct raft_message *m = &rd->messages[i];
        if (m->type != RAFT_MSG_SNAPSHOT) {
            transport_send(p->tp, m);
            continue;
        }
        char name[48], path[4300];
        snap_name(name, sizeof(name), m->snapshot.meta.index, m->snapshot.meta.term);
        snprintf(path, sizeof(path), "%s/%s", d->snap_dir, name);
        transport_send_snapshot(p->tp, m, path);
    }
}

/* The leader's snapshot file (received whole, CRC checked, fsync'd) takes its name in our snap dir,
 * so that the WAL marker about to be written names a durable file. */
int node_peers_persist_snapshot(struct node *n, const struct raft_snapshot *s, char *err, size_t errlen)
{
    struct node_raft *d = n->drv;
    if (!d->snap_recv_path) {
        snprintf(err, errlen, "a snapshot from the leader came without its file");
        return -1;
    }
    char name[48], path[4300];
    snap_name(name, sizeof(name), s->meta.index, s->meta.term);
    snprintf(path, sizeof(path), "%s/%s", d->snap_dir, name);
    const struct fileio *io = fileio_posix();
    int rv = io->mkdir(io->ctx, d->snap_dir, 0700);
    if (rv == -EEXIST)
        rv = 0;
    if (rv == 0)
        rv = io->rename(io->ctx, d->snap_recv_path, path);
    if (rv == 0)
        rv = io->sync_dir(io->ctx, d->snap_dir);
    if (rv < 0) {
        snprintf(err, errlen, "keeping the leader's snapshot as %s: %s", path, strerror(-rv));
        return -1;
    }
    free(d->snap_recv_path);
    d->snap_recv_path = NULL;
    return 0;
}

/* Replace the tree and the history with the snapshot (its marker is durable). Parked watches are
 * answered empty (their clients re-poll against the new state). */
int node_peers_install_snapshot(struct node *n, const struct raft_snapshot *s, char *err, size_t errlen)
{
    struct node_raft *d = n->drv;
    struct kv *kv = kv_new();
    struct watch_hub *hub = watch_hub_new(n->cfg.history_per_token);
    struct snap_meta m;
    char why[600];
    int rv = kv && hub ? snap_load(fileio_posix(), d->snap_dir, s->meta.index, s->meta.term, &m, kv, hub, why,
                                   sizeof(why))
                       : -ENOMEM;
    if (rv != 0) {
        snprintf(err, errlen, "installing the leader's snapshot: %s", rv == -ENOMEM ? "out of memory" : why);
        watch_hub_free(hub);
        kv_free(kv);
        return -1;
    }
    watch_hub_bind(hub, kv);
    node_watch_reset(n);
    pthread_rwlock_wrlock(&n->rw);
    struct kv *old_kv = n->kv;
    struct watch_hub *old_hub = n->hub;
    n->kv = kv;
    n->hub = hub;
    pthread_rwlock_unlock(&n->rw);
    node_apply_restore(n, m.index, m.term);
    d->snap_index = m.index;
    d->snap_nodes = kv_nnodes(kv);
    __atomic_store_n(&n->st_snap_index, m.index, __ATOMIC_RELAXED);
    fprintf(stderr, "discoveryd: installed the leader's snapshot at index %llu\n", (unsigned long long)m.index);
    if (node_conf_load(n, &m.conf, m.members, m.members_len, why, sizeof(why)) != 0)
        fprintf(stderr, "discoveryd: the leader's snapshot: %s (keeping the membership known)\n", why);
    node_conf_publish(n);
    watch_hub_free(old_hub);
    kv_free(old_kv);
    return 0;
}

uint64_t node_peers_best_follower(struct node *n)
{
    struct node_peers *p = n->drv->peers;
    if (!p)
        return 0;
    struct transport_stats st;
    transport_stats(p->tp, &st);
    for (size_t i = 0; i < st.n_peers; i++) /* the core catches the target up before it hands over */
        if (st.peers[i].connected)
            return st.peers[i].id;
    return 0;
}

void node_peers_count(struct node *n)
{
    struct node_peers *p = n->drv->peers;
    if (!p || !p->tp || p->stopped)
        return;
    struct transport_stats st;
    transport_stats(p->tp, &st);
    size_t np = st.n_peers < NODE_MAX_MEMBERS ? st.n_peers : NODE_MAX_MEMBERS;
    for (size_t i = 0; i < np; i++) {
        struct node_peer_stats *ps = &n->st_peers[i];
        __atomic_store_n(&ps->id, st.peers[i].id, __ATOMIC_RELAXED);
        __atomic_store_n(&ps->frames_sent, st.peers[i].sent, __ATOMIC_RELAXED);
        __atomic_store_n(&ps->frames_dropped, st.peers[i].dropped, __ATOMIC_RELAXED);
        __atomic_store_n(&ps->snapshots_sent, st.peers[i].snapshots_sent, __ATOMIC_RELAXED);
        __atomic_store_n(&ps->queued_bytes, (uint64_t)st.peers[i].queued_bytes, __ATOMIC_RELAXED);
        __atomic_store_n(&ps->connected, st.peers[i].connected, __ATOMIC_RELAXED);
    }
    __atomic_store_n(&n->st_npeers, (uint64_t)np, __ATOMIC_RELEASE);
    __atomic_store_n(&n->st_peer_received, st.received, __ATOMIC_RELAXED);
    __atomic_store_n(&n->st_peer_foreign, st.dropped_foreign, __ATOMIC_RELAXED);
}

void node_peers_stop(struct node *n)
{
    struct node_peers *p = n->drv ? n->drv->peers : NULL;
    if (!p)
        return;
    node_raft_fail(n, &p->forwarded, NODE_EUNAVAILABLE);
    if (p->tp && !p->stopped)
        transport_stop(p->tp);
    p->stopped = true;
}

void node_peers_free(struct node *n)
{
    struct node_peers *p = n->drv ? n->drv->peers : NULL;
    if (!p)
        return;
    if (p->tp)
        transport_free(p->tp);
    while (p->in_head) {
        struct inmsg *im = p->in_head;
        p->in_head = im->next;
        free(im->snap_path);
        free(im);
    }
    while (p->fw_head) {
        struct infwd *f = p->fw_head;
        p->fw_head = f->next;
        free(f);
    }
    while (p->rreads) {
        struct remote_read *rr = p->rreads;
        p->rreads = rr->next;
        free(rr);
    }
    free(p);
    n->drv->peers = NULL;
}
