/* api/members.h — parsing of /v2/members requests (pure; members.c answers them, the unit tests
 * call these directly).
 */
#ifndef DISCOVERYD_API_MEMBERS_H
#define DISCOVERYD_API_MEMBERS_H

#include <stddef.h>
#include <stdint.h>

/* etcd v2's add body {"peerURLs":["http://HOST:PORT"]}: exactly one URL (a member has one peer
 * URL here), checked to be http(s)://HOST:PORT, copied into url (NUL-terminated). 0, or -1 with a
 * one-line reason in why. */
int api_members_parse_add(const char *body, size_t len, char *url, size_t cap, char *why, size_t whylen);
/* A member ID as etcd writes it in a path: 1 to 16 hex digits, not 0. 0 (and *id), or -1. */
int api_members_parse_id(const char *s, size_t len, uint64_t *id);

#endif
