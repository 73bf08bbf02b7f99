/* service/cluster.c — etcd's cluster flags (--name, --initial-cluster, --initial-cluster-state,
 * --listen-peer-urls, --initial-advertise-peer-urls, --heartbeat-interval, --election-timeout,
 * --peer-*-file) turned into the members the store replicates between, with every bad combination
 * stopped at start with a message naming the flag. Founding member and cluster IDs are derived from
 * names and peer URLs, so every member computes the same ones without talking first; a member that
 * joins with --initial-cluster-state existing learns its ID and the cluster ID from the members when
 * it starts (store/node_join.c), and a restart takes all of them from the data dir. Pure (no I/O).
 */
#include "service/cluster.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/hash.h"
#include "store/node_members.h"

static int fail(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    snprintf(err, errlen, fmt, a, b);
    return -1;
}

static bool valid_name(const char *s, size_t n)
{
    if (n == 0 || n >= sizeof(((struct node_member *)0)->name))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_' || s[i] == '.'))
            return false;
    return true;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int parse_members(const char *list, struct node_cluster *c, char *err, size_t errlen)
{
    const char *p = list;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0)
            return fail(err, errlen, "--initial-cluster: an empty entry (two commas, or one at an end)%s%s",
                        "", "");
        const char *eq = memchr(p, '=', len);
        char item[600];
        snprintf(item, sizeof(item), "%.*s", (int)(len < 500 ? len : 500), p);
        if (c->n == NODE_MAX_MEMBERS)
            return fail(err, errlen, "--initial-cluster: more than 16 members%s%s", "", "");
        struct node_member *m = &c->members[c->n];
        memset(m, 0, sizeof(*m));
        size_t nl = eq ? (size_t)(eq - p) : 0, ul = eq ? len - nl - 1 : 0;
        if (!eq || !valid_name(p, nl))
            return fail(err, errlen,
                        "--initial-cluster: \"%s\" is not NAME=URL (NAME: letters, digits, - _ .)%s", item,
                        "");
        if (ul >= sizeof(m->peer_url) || node_member_parse_url(eq + 1, ul, m->host, sizeof(m->host), &m->port) != 0)
            return fail(err, errlen, "--initial-cluster: \"%s\" has no http://HOST:PORT peer URL%s", item,
                        "");
        memcpy(m->name, p, nl);
        memcpy(m->peer_url, eq + 1, ul);
        for (size_t i = 0; i < c->n; i++) {
            if (strcmp(c->members[i].name, m->name) == 0)
                return fail(err, errlen, "--initial-cluster: the name \"%s\" appears twice%s", m->name, "");
            if (strcmp(c->members[i].peer_url, m->peer_url) == 0)
                return fail(err, errlen, "--initial-cluster: the URL \"%s\" appears twice%s", m->peer_url,
                            "");
        }
        m->id = node_member_founding_id(m->name, m->peer_url);
        c->n++;
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

int svc_cluster_from_config(const struct svc_config *cfg, struct node_cluster *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    if (!cfg->initial_cluster) {
        if (cfg->listen_peer_urls)
            return fail(err, errlen, "--listen-peer-urls: needs --initial-cluster%s%s", "", "");
        if (cfg->advertise_peer_urls)
            return fail(err, errlen, "--initial-advertise-peer-urls: needs --initial-cluster%s%s", "", "");
        if (strcmp(cfg->initial_cluster_state, "new") != 0)
            return fail(err, errlen, "--initial-cluster-state: needs --initial-cluster%s%s", "", "");
        return 0;
    }
    if (parse_members(cfg->initial_cluster, c, err, errlen) != 0)
        return -1;
    c->self = c->n;
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->members[i].name, cfg->name) == 0)
            c->self = i;
    if (c->self == c->n)
        return fail(err, errlen, "--name: \"%s\" is not one of the members of --initial-cluster%s", cfg->name,
                    "");
    const struct node_member *me = &c->members[c->self];
    if (cfg->advertise_peer_urls && strcmp(cfg->advertise_peer_urls, me->peer_url) != 0)
        return fail(err, errlen,
                    "--initial-advertise-peer-urls: \"%s\" is not this member's URL in "
                    "--initial-cluster (%s)",
                    cfg->advertise_peer_urls, me->peer_url);
    if (strcmp(cfg->initial_cluster_state, "new") == 0)
        c->existing = false;
    else if (strcmp(cfg->initial_cluster_state, "existing") == 0)
        c->existing = true;
    else
        return fail(err, errlen, "--initial-cluster-state: \"%s\" is not new or existing%s",
                    cfg->initial_cluster_state, "");
    if (cfg->listen_peer_urls) {
        const char *u = cfg->listen_peer_urls;
        if (node_member_parse_url(u, strlen(u), c->listen_host, sizeof(c->listen_host), &c->listen_port) != 0)
            return fail(err, errlen, "--listen-peer-urls: \"%s\" is not http://ADDR:PORT%s", u, "");
    } else {
        snprintf(c->listen_host, sizeof(c->listen_host), "%s", me->host);
        c->listen_port = me->port;
    }
    if (cfg->election_ms < 5 * cfg->heartbeat_ms)
        return fail(err, errlen, "--election-timeout: must be at least 5 times --heartbeat-interval%s%s", "",
                    "");
    c->heartbeat_ms = (unsigned)cfg->heartbeat_ms;
    c->election_ms = (unsigned)cfg->election_ms;
    int tls = (cfg->peer_cert != NULL) + (cfg->peer_key != NULL) + (cfg->peer_ca != NULL);
    if (tls != 0 && tls != 3)
        return fail(err, errlen,
                    "--peer-cert-file, --peer-key-file and --peer-trusted-ca-file go together%s%s", "", "");
    c->cert = cfg->peer_cert;
    c->key = cfg->peer_key;
    c->ca = cfg->peer_ca;
    uint64_t ids[NODE_MAX_MEMBERS];
    for (size_t i = 0; i < c->n; i++)
        ids[i] = c->members[i].id;
    qsort(ids, c->n, sizeof(ids[0]), cmp_u64);
    for (size_t i = 1; i < c->n; i++)
        if (ids[i] == ids[i - 1])
            return fail(err, errlen, "--initial-cluster: two members hash to one ID; rename one%s%s", "", "");
    c->cluster_id = hash_of(HASH_INIT, ids, c->n * sizeof(ids[0]));
    if (c->cluster_id == 0)
        c->cluster_id = 1;
    return 0;
}
