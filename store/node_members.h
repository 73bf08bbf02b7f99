/* store/node_members.h — a cluster's member table as the store keeps it (IDs, names, peer URLs):
 * its one encoding, carried in Raft configuration entries (the context beside the voter set) and in
 * snapshots, so that membership is recovered from the data dir; peer URL parsing; and how an added
 * member's ID is derived. Pure functions, any thread. node_conf.c is their main user.
 */
#ifndef DISCOVERYD_STORE_NODE_MEMBERS_H
#define DISCOVERYD_STORE_NODE_MEMBERS_H

#include <stddef.h>
#include <stdint.h>
#include "store/node.h"

/* Encoding (version 1, little-endian): [u8 version=1][u8 n], then n times
 *   [u64 id][u8 name_len][name][u16 url_len][url]
 * with ids non-zero and unique, names of NAME characters (may be empty: an added member that has
 * not started yet), URLs http(s)://HOST:PORT. At most NODE_MEMBERS_MAX_BYTES. */
#define NODE_MEMBERS_VERSION 1
#define NODE_MEMBERS_MAX_BYTES (2 + NODE_MAX_MEMBERS * (8 + 1 + 63 + 2 + 255))

/* Encode members[0..n) into buf. The length, or 0 if it does not fit or a field is too long. */
size_t node_members_encode(const struct node_member *members, size_t n, uint8_t *buf, size_t cap);
/* Decode into out[0..NODE_MAX_MEMBERS) (host and port split from each URL). 0, or -1 with a
 * one-line reason if the bytes are malformed. */
int node_members_decode(const uint8_t *buf, size_t len, struct node_member *out, size_t *n, char *err,
                        size_t errlen);

/* "http://HOST:PORT" (or https), HOST a name, IPv4 or [IPv6]; no path. 0, or -1. */
int node_member_parse_url(const char *url, size_t len, char *host, size_t hostcap, uint16_t *port);

/* The ID of a founding member (--initial-cluster): from its name and peer URL, so every founding
 * member computes the same ones without talking first. Never 0. */
uint64_t node_member_founding_id(const char *name, const char *peer_url);
/* The ID of a member added at run time: from its peer URL, the cluster, and the log index its
 * configuration entry takes, so a member re-added under the same URL (a wiped data dir) gets a new
 * ID and a removed ID never comes back. Never 0. */
uint64_t node_member_added_id(const char *peer_url, uint64_t cluster_id, uint64_t index);

#endif
