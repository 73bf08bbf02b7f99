/* store/node_join.h — joining a running cluster: a member started with --initial-cluster-state
 * existing and an empty data dir asks the members named in --initial-cluster who it is (the JOIN
 * exchange of store/transport.h: its peer URL in, its member ID, the cluster ID and the member table
 * out), the way etcd asks its peers for the member list and matches its own peer URL. Blocking, at
 * start-up, before the store thread runs; with peer TLS the exchange is TLS too.
 */
#ifndef DISCOVERYD_STORE_NODE_JOIN_H
#define DISCOVERYD_STORE_NODE_JOIN_H

#include <stddef.h>
#include <stdint.h>
#include "store/node.h"

struct node_join_result {
    uint64_t cluster_id, member_id;
    struct node_member members[NODE_MAX_MEMBERS];
    size_t n;
};

/* Ask every member of c but c->self, in rounds, for at most timeout_ms. 0, or -1 with a one-line
 * reason naming --initial-cluster (nobody answered, or nobody knows our peer URL). */
int node_join(const struct node_cluster *c, int64_t timeout_ms, struct node_join_result *out, char *err,
              size_t errlen);

#endif
