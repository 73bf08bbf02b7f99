/* service/cluster.h — the cluster flags (config.h) turned into the members the store replicates
 * between (store/node.h's struct node_cluster). Called once by svc_start, before anything starts.
 */
#ifndef DISCOVERYD_SERVICE_CLUSTER_H
#define DISCOVERYD_SERVICE_CLUSTER_H

#include <stddef.h>
#include "service/config.h"
#include "store/node.h"

/* 0 with *c filled (c->n == 0 without --initial-cluster: the one-member cluster of today), or -1
 * with a one-line reason naming the flag at fault. */
int svc_cluster_from_config(const struct svc_config *cfg, struct node_cluster *c, char *err, size_t errlen);

#endif
