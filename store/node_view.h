/* store/node_view.h — lock-free change stamps of the applied state, for readers that keep a copy of
 * what they rendered from it (the api's cache of GET answers, api/getcache.h) and must know, without
 * node_rdlock(), whether that copy still describes the store.
 *
 * Contract:
 * - Every token (/discovery/<token> and everything below it) has a stamp. The apply seam
 *   (node_apply.c) changes a token's stamp, under the node's write lock, whenever it changes
 *   anything in that token: a write, a delete, a TTL expiry or token expiry of a SWEEP, a refresh.
 *   A change it cannot attribute to one token (a key outside /discovery/<token>, a snapshot that
 *   replaces the tree) changes every stamp. Stamps of different tokens may share a slot, so a
 *   stamp may also change when another token changes (a copy is then dropped needlessly, never
 *   kept wrongly). Stamps never repeat.
 * - The seam also publishes the store's index (X-Etcd-Index) and the raft position of the last
 *   applied entry (X-Raft-Index/Term) as one consistent view (a sequence lock).
 * - What a stamp says is about the applied state, not about clocks: a rendering that depends on
 *   the time (a TTL's remaining seconds) is the reader's to expire.
 *
 * Readers, any thread, no lock:
 *     struct node_view v;
 *     if (node_view_begin(n, &v)) {
 *         uint64_t s = node_view_stamp(n, token, token_len);
 *         if (s == copy's stamp && node_view_end(n, &v)) -> the copy, with v's indexes, is what a
 *             locked read would have answered at some instant between begin and end
 *     }
 * Under node_rdlock(), node_view_stamp() is the stamp of exactly the state the lock shows (take it
 * there when rendering the copy). Writers: node_apply.c only (node_view_write_*).
 */
#ifndef DISCOVERYD_STORE_NODE_VIEW_H
#define DISCOVERYD_STORE_NODE_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct node;

struct node_view {
    uint64_t etcd_index; /* the store's index: X-Etcd-Index */
    uint64_t raft_index; /* the last applied log entry: X-Raft-Index */
    uint64_t raft_term;  /* ... its term: X-Raft-Term */
    uint64_t seq_;       /* private */
};

/* Begin a lock-free look: fills v and returns true, or false while the apply seam is changing the
 * store (then read under node_rdlock() instead). */
bool node_view_begin(struct node *n, struct node_view *v);
/* The stamp of the token (its name, as in /discovery/<token>). */
uint64_t node_view_stamp(struct node *n, const char *token, size_t token_len);
/* True when nothing was applied since node_view_begin(n, v): v and every stamp read in between
 * describe one state. */
bool node_view_end(struct node *n, const struct node_view *v);

#endif
