/* store/node_conf.c — the cluster's membership, on the store thread. The member table (IDs, names,
 * peer URLs) travels beside the voter set in every Raft configuration entry (its context, encoded by
 * store/node_members.h) and in every snapshot, so a restart recovers the membership from the data dir
 * (snapshot, then the WAL's configuration entries), never from the flags once the data dir has any.
 * Two tables follow the log:
 *   latest     the newest table appended (maybe uncommitted). The transport's peers follow the core's
 *              configuration, which takes effect when appended as single-server changes require;
 *              the leader checks a change against it; JOINs are answered from it.
 *   committed  the newest committed table, published for HTTP threads (node_cluster()).
 * A MEMBER op is proposed by the leader (a follower forwards it there, like a write) and completes
 * when its configuration entry applies. A member left out by a committed configuration stops acting:
 * /health 503, writes and changes refused; its ID never comes back (added IDs are derived from the
 * log index of the addition).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/node_members.h"
#include "store/node_raft_int.h"

/* Details of member id: from the latest table, the committed one, or the flags (a data dir written
 * before configuration entries carried the table). NULL if unknown. */
static const struct node_member *lookup(struct node *n, uint64_t id)
{
    struct node_raft *d = n->drv;
    for (size_t i = 0; i < d->n_latest; i++)
        if (d->latest[i].id == id)
            return &d->latest[i];
    for (size_t i = 0; i < d->n_committed; i++)
        if (d->committed[i].id == id)
            return &d->committed[i];
    const struct node_cluster *c = n->cfg.cluster;
    for (size_t i = 0; c && i < c->n; i++)
        if (c->members[i].id == id)
            return &c->members[i];
    return NULL;
}

/* The members of conf that have details, in conf's order. */
static size_t table_of(struct node *n, const struct raft_conf *conf, struct node_member *out)
{
    size_t k = 0;
    for (uint32_t i = 0; i < conf->n; i++) {
        const struct node_member *m = lookup(n, conf->ids[i]);
        if (m)
            out[k++] = *m;
    }
    return k;
}

static void set_table(struct node_member *dst, size_t *dn, const struct node_member *src, size_t n)
{
    memmove(dst, src, n * sizeof(*src));
    *dn = n;
}

void node_conf_publish(struct node *n)
{
    struct node_raft *d = n->drv;
    pthread_mutex_lock(&n->mmu);
    if (n->cfg.cluster) {
        n->pub = *n->cfg.cluster; /* listen address, timeouts, TLS files */
        set_table(n->pub.members, &n->pub.n, d->committed, d->n_committed);
        n->pub.self = n->pub.n;
        for (size_t i = 0; i < n->pub.n; i++)
            if (n->pub.members[i].id == d->member_id)
                n->pub.self = i;
    }
    n->pub.cluster_id = n->cluster_id;
    pthread_mutex_unlock(&n->mmu);
}

void node_conf_founding(struct node *n, const struct node_member *m, size_t count)
{
    struct node_raft *d = n->drv;
    set_table(d->latest, &d->n_latest, m, count);
    set_table(d->committed, &d->n_committed, m, count);
}

int node_conf_load(struct node *n, const struct raft_conf *conf, const uint8_t *table, size_t len, char *err,
                   size_t errlen)
{
    struct node_raft *d = n->drv;
    if (raft_conf_has(conf, d->member_id))
        d->was_member = true;
    struct node_member ms[NODE_MAX_MEMBERS];
    size_t count;
    if (len == 0)
        return 0; /* a snapshot written before snapshots carried the table */
    if (node_members_decode(table, len, ms, &count, err, errlen) != 0)
        return -1;
    set_table(d->latest, &d->n_latest, ms, count);
    set_table(d->committed, &d->n_committed, ms, count);
    return 0;
}

/* The table a configuration entry carries (0 and *count = 0 without one), -1 if malformed. */
static int entry_table(const struct raft_entry *e, struct raft_conf *conf, struct node_member *ms, size_t *count)
{
    const uint8_t *ctx;
    size_t ctx_len;
    char why[128];
    *count = 0;
    if (raft_conf_decode_ctx(e->data, e->len, conf, &ctx, &ctx_len) != 0)
        return -1;
    if (ctx_len && node_members_decode(ctx, ctx_len, ms, count, why, sizeof(why)) != 0) {
        fprintf(stderr, "discoveryd: the configuration entry at index %llu: %s\n",
                (unsigned long long)e->index, why);
        return -1;
    }
    return 0;
}

void node_conf_seen(struct node *n, const struct raft_entry *es, size_t count)
{
    struct node_raft *d = n->drv;
    for (size_t i = 0; i < count; i++) {
        if (es[i].type != RAFT_ENTRY_CONF)
            continue;
        struct raft_conf conf;
        struct node_member ms[NODE_MAX_MEMBERS];
        size_t k;
        if (entry_table(&es[i], &conf, ms, &k) == 0 && k > 0)
            set_table(d->latest, &d->n_latest, ms, k);
    }
}

static void set_removed(struct node *n, const char *how)
{
    struct node_raft *d = n->drv;
    d->removed = true;
    fprintf(stderr,
            "discoveryd: this member (ID %llx) was removed from the cluster (%s); it stops serving writes and "
            "will not rejoin under this ID (to come back: stop it, wipe --data-dir and add it again with POST "
            "/v2/members)\n",
            (unsigned long long)d->member_id, how);
    node_raft_health(n, false, "this member was removed from the cluster: stop it");
}

void node_conf_removed(struct node *n, uint64_t from)
{
    struct node_raft *d = n->drv;
    const struct raft_conf *conf = raft_configuration(d->raft);
    if (d->removed || !raft_conf_has(conf, from))
        return; /* only a member of our configuration is believed */
    char how[64];
    snprintf(how, sizeof(how), "member %llx says so", (unsigned long long)from);
    set_removed(n, how);
    uv_async_send(&d->kick); /* fail what waits */
}

void node_conf_applied(struct node *n, const struct raft_entry *e, struct node_op *op)
{
    struct node_raft *d = n->drv;
    struct raft_conf conf;
    struct node_member ms[NODE_MAX_MEMBERS], old[NODE_MAX_MEMBERS];
    size_t k, n_old = d->n_committed;
    memcpy(old, d->committed, n_old * sizeof(old[0]));
    if (entry_table(e, &conf, ms, &k) != 0) {
        if (op)
            node_complete(n, op, NODE_EUNAVAILABLE);
        return;
    }
    if (k == 0)
        k = table_of(n, &conf, ms);
    set_table(d->committed, &d->n_committed, ms, k);
    node_conf_publish(n);
    for (size_t i = 0; i < n_old; i++)
        if (!raft_conf_has(&conf, old[i].id))
            node_peers_gone(n, old[i].id);
    if (raft_conf_has(&conf, d->member_id)) {
        d->was_member = true; /* a joining member applies the configurations from before it too */
    } else if (d->was_member && !d->removed && d->peers) {
        char at[64];
        snprintf(at, sizeof(at), "at index %llu", (unsigned long long)e->index);
        set_removed(n, at);
    }
    if (!op)
        return;
    if (op->member) {
        memset(op->member, 0, sizeof(*op->member));
        const struct node_member *src = op->member_op == NODE_MEMBER_REMOVE ? old : ms;
        size_t ns = op->member_op == NODE_MEMBER_REMOVE ? n_old : k;
        for (size_t i = 0; i < ns; i++)
            if (op->member_op == NODE_MEMBER_ADD ? strcmp(src[i].peer_url, op->peer_url) == 0
                                                 : src[i].id == op->member_id)
                *op->member = src[i];
        if (op->member_op == NODE_MEMBER_REMOVE)
            op->member->id = op->member_id;
    }
    node_complete(n, op, NODE_OK);
}

void node_conf_sync(struct node *n)
{
    struct node_raft *d = n->drv;
    if (!d->peers)
        return;
    struct raft_conf want = *raft_configuration(d->raft);
    if (want.n == 0) { /* joining: no configuration yet; the members that told us who we are */
        for (size_t i = 0; i < d->n_latest && i < RAFT_MAX_NODES; i++)
            want.ids[want.n++] = d->latest[i].id;
    }
    struct raft_conf now = {0};
    for (uint32_t i = 0; i < d->tp_conf.n; i++) {
        if (raft_conf_has(&want, d->tp_conf.ids[i]))
            now.ids[now.n++] = d->tp_conf.ids[i];
        else
            node_peers_remove(n, d->tp_conf.ids[i]);
    }
    for (uint32_t i = 0; i < want.n; i++) {
        uint64_t id = want.ids[i];
        if (id == d->member_id || raft_conf_has(&now, id))
            continue;
        const struct node_member *m = lookup(n, id);
        if (!m)
            continue; /* no address known (yet): tried again at the next change */
        node_peers_add(n, m);
        now.ids[now.n++] = id;
    }
    d->tp_conf = now;
}

/* The voters the leader reaches now (itself included) among conf, leaving out skip. */
static uint32_t reachable(struct node *n, const struct raft_conf *conf, uint64_t skip)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < conf->n; i++)
        if (conf->ids[i] != skip && (conf->ids[i] == n->drv->member_id || node_peers_connected(n, conf->ids[i])))
            k++;
    return k;
}

int node_conf_propose(struct node *n, enum node_member_op op, uint64_t id, const char *url, size_t url_len,
                      uint64_t *index)
{
    struct node_raft *d = n->drv;
    if (d->removed || raft_role(d->raft) != RAFT_LEADER)
        return NODE_EUNAVAILABLE;
    struct raft_conf conf = *raft_configuration(d->raft);
    struct node_member ms[NODE_MAX_MEMBERS + 1];
    size_t k = table_of(n, &conf, ms);
    if (op == NODE_MEMBER_ADD) {
        struct node_member m;
        memset(&m, 0, sizeof(m));
        if (url_len == 0 || url_len >= sizeof(m.peer_url) ||
            node_member_parse_url(url, url_len, m.host, sizeof(m.host), &m.port) != 0)
            return NODE_EMEMBER_BADURL;
        memcpy(m.peer_url, url, url_len);
        for (size_t i = 0; i < k; i++)
            if (strcmp(ms[i].peer_url, m.peer_url) == 0)
                return NODE_EMEMBER_EXISTS;
        if (conf.n >= NODE_MAX_MEMBERS)
            return NODE_EMEMBER_FULL;
        /* the newcomer is not running yet: the members we reach must be a quorum of the new size */
        if (reachable(n, &conf, 0) < (conf.n + 1) / 2 + 1)
            return NODE_EMEMBER_QUORUM;
        m.id = node_member_added_id(m.peer_url, n->cluster_id, raft_last_index(d->raft) + 1);
        while (raft_conf_has(&conf, m.id) || m.id == 0)
            m.id++;
        ms[k++] = m;
        id = m.id;
    } else if (op == NODE_MEMBER_NAME) {
        bool found = false;
        for (size_t i = 0; i < k; i++) {
            if (ms[i].id != id)
                continue;
            if (url_len == 0 || url_len >= sizeof(ms[i].name) || memchr(url, 0, url_len))
                return NODE_EMEMBER_BADURL;
            memset(ms[i].name, 0, sizeof(ms[i].name));
            memcpy(ms[i].name, url, url_len);
            found = true;
        }
        if (!found)
            return NODE_EMEMBER_UNKNOWN;
    } else {
        if (!raft_conf_has(&conf, id))
            return NODE_EMEMBER_UNKNOWN;
        if (conf.n == 1 || reachable(n, &conf, id) < (conf.n - 1) / 2 + 1)
            return NODE_EMEMBER_QUORUM;
        size_t j = 0;
        for (size_t i = 0; i < k; i++)
            if (ms[i].id != id)
                ms[j++] = ms[i];
        k = j;
    }
    uint8_t ctx[NODE_MEMBERS_MAX_BYTES];
    size_t len = node_members_encode(ms, k, ctx, sizeof(ctx));
    if (len == 0)
        return NODE_EMEMBER_BADURL;
    int rv = raft_propose_conf_change_ctx(d->raft,
                                          op == NODE_MEMBER_ADD      ? RAFT_CONF_ADD
                                          : op == NODE_MEMBER_REMOVE ? RAFT_CONF_REMOVE
                                                                     : RAFT_CONF_UPDATE,
                                          id, ctx, (uint32_t)len);
    if (rv == RAFT_EBUSY)
        return NODE_EMEMBER_BUSY;
    if (rv == RAFT_ENOMEM)
        return NODE_ENOMEM;
    if (rv != 0)
        return NODE_EUNAVAILABLE;
    *index = raft_last_index(d->raft);
    return NODE_OK;
}

static void name_done(struct node_op *op)
{
    struct node *n = op->data;
    n->drv->name_out = false; /* on failure the next tick tries again */
}

/* An added member joins with the name "" (etcd's add request carries none): once it is a committed
 * member with a leader, it proposes its --name into the table, like etcd's member publishing its
 * attributes when it starts. */
static void publish_name(struct node *n)
{
    struct node_raft *d = n->drv;
    const struct node_cluster *c = n->cfg.cluster;
    if (d->name_out || d->removed || !d->peers || !c || c->self >= c->n || !c->members[c->self].name[0] ||
        !raft_leader(d->raft) || !d->was_member)
        return;
    const struct node_member *me = NULL;
    for (size_t i = 0; i < d->n_committed; i++)
        if (d->committed[i].id == d->member_id)
            me = &d->committed[i];
    if (!me || me->name[0])
        return;
    memset(&d->name_op, 0, sizeof(d->name_op));
    d->name_op.type = NODE_OP_MEMBER;
    d->name_op.member_op = NODE_MEMBER_NAME;
    d->name_op.member_id = d->member_id;
    d->name_op.member_name = c->members[c->self].name;
    d->name_op.done = name_done;
    d->name_op.data = n;
    d->name_out = true;
    q_push(&d->mwaiting, &d->name_op);
}

void node_conf_submit(struct node *n, struct node_op *op)
{
    q_push(&n->drv->mwaiting, op);
}

void node_conf_drive(struct node *n)
{
    struct node_raft *d = n->drv;
    if (!d->peers || d->removed || d->poisoned) {
        node_raft_fail(n, &d->mwaiting, !d->peers ? NODE_EMEMBER_ALONE : NODE_EUNAVAILABLE);
        return;
    }
    publish_name(n);
    struct opq keep = {0};
    struct node_op *op;
    while ((op = q_pop(&d->mwaiting))) {
        if (raft_role(d->raft) != RAFT_LEADER) {
            if (!node_peers_forward_conf(n, op))
                q_push(&keep, op); /* no leader to go to: waits, bounded by node_peers_expire */
            continue;
        }
        uint64_t index = 0;
        const char *arg = op->member_op == NODE_MEMBER_NAME ? op->member_name : op->peer_url ? op->peer_url : "";
        int rv = node_conf_propose(n, op->member_op, op->member_id, arg, strlen(arg), &index);
        if (rv == NODE_OK) {
            op->index_ = index;
            op->ctx_ = 0;
            q_push(&d->proposed, op);
        } else if (rv == NODE_EUNAVAILABLE) {
            q_push(&keep, op);
        } else {
            node_complete(n, op, rv);
        }
    }
    d->mwaiting = keep;
}

uint64_t node_conf_join(struct node *n, const char *url, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    struct node_raft *d = n->drv;
    if (d->removed)
        return 0;
    struct node_member ms[NODE_MAX_MEMBERS];
    size_t k = table_of(n, raft_configuration(d->raft), ms);
    for (size_t i = 0; i < k; i++) {
        if (strlen(ms[i].peer_url) != len || memcmp(ms[i].peer_url, url, len) != 0)
            continue;
        *out_len = node_members_encode(ms, k, out, cap);
        return *out_len ? ms[i].id : 0;
    }
    return 0;
}

size_t node_conf_encode(struct node *n, const struct raft_conf *conf, uint8_t *buf, size_t cap)
{
    struct node_member ms[NODE_MAX_MEMBERS];
    size_t k = table_of(n, conf, ms);
    return k ? node_members_encode(ms, k, buf, cap) : 0;
}
