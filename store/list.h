/* store/list.h — the project's one intrusive doubly-linked list, as macros over named fields.
 *
 * Each element carries its own (prev, next) pointers, named by the caller, so one element can sit
 * on several lists (a tree node on its parent's child list, a bucket on an LRU) and public structs
 * keep readable field names. A list is a head pointer, plus a tail pointer when it needs O(1)
 * append (the _T forms), or a head pointer whose element's prev is the tail (the _R forms: O(1)
 * append without a tail pointer, for the tree's millions of dirs). O(1) insert and unlink; no
 * allocation; not thread-safe (callers lock).
 * Used by store/ (tree siblings, parked-watch deadlines, watch groups) and service/.
 */
#ifndef DISCOVERYD_STORE_LIST_H
#define DISCOVERYD_STORE_LIST_H

#include <stddef.h>

/* Head-only lists. */
#define LIST_PREPEND(head, elm, prev, next)                                                                  \
    do {                                                                                                     \
        (elm)->prev = NULL;                                                                                  \
        (elm)->next = (head);                                                                                \
        if (head)                                                                                            \
            (head)->prev = (elm);                                                                            \
        (head) = (elm);                                                                                      \
    } while (0)

#define LIST_UNLINK(head, elm, prev, next) LIST_UNLINK_T(head, (elm)->prev, elm, prev, next)

/* Lists with a tail (head, tail). */
#define LIST_APPEND_T(head, tail, elm, prev, next)                                                           \
    do {                                                                                                     \
        (elm)->prev = (tail);                                                                                \
        (elm)->next = NULL;                                                                                  \
        if (tail)                                                                                            \
            (tail)->next = (elm);                                                                            \
        else                                                                                                 \
            (head) = (elm);                                                                                  \
        (tail) = (elm);                                                                                      \
    } while (0)

#define LIST_PREPEND_T(head, tail, elm, prev, next)                                                          \
    do {                                                                                                     \
        if (!(head))                                                                                         \
            (tail) = (elm);                                                                                  \
        LIST_PREPEND(head, elm, prev, next);                                                                 \
    } while (0)

/* Unlink elm, which must be on the list, and clear its links. For a head-only list the "tail"
 * argument is elm->prev, whose assignment to itself is harmless. */
#define LIST_UNLINK_T(head, tail, elm, prev, next)                                                           \
    do {                                                                                                     \
        if ((elm)->prev)                                                                                     \
            (elm)->prev->next = (elm)->next;                                                                 \
        else                                                                                                 \
            (head) = (elm)->next;                                                                            \
        if ((elm)->next)                                                                                     \
            (elm)->next->prev = (elm)->prev;                                                                 \
        else                                                                                                 \
            (tail) = (elm)->prev;                                                                            \
        (elm)->prev = (elm)->next = NULL;                                                                    \
    } while (0)

/* Head-only lists with O(1) append: the head's prev points at the tail (the tail's next is NULL, so
 * a walk from the head by next is as for the other forms; prev is for the list's own use). */
#define LIST_APPEND_R(head, elm, prev, next)                                                                 \
    do {                                                                                                     \
        (elm)->next = NULL;                                                                                  \
        if (head) {                                                                                          \
            (elm)->prev = (head)->prev;                                                                      \
            (head)->prev->next = (elm);                                                                      \
            (head)->prev = (elm);                                                                            \
        } else {                                                                                             \
            (elm)->prev = (elm);                                                                             \
            (head) = (elm);                                                                                  \
        }                                                                                                    \
    } while (0)

/* Unlink elm, which must be on the list, and clear its links. */
#define LIST_UNLINK_R(head, elm, prev, next)                                                                 \
    do {                                                                                                     \
        if ((elm) == (head))                                                                                 \
            (head) = (elm)->next;                                                                            \
        else                                                                                                 \
            (elm)->prev->next = (elm)->next;                                                                 \
        if ((elm)->next)                                                                                     \
            (elm)->next->prev = (elm)->prev;                                                                 \
        else if (head)                                                                                       \
            (head)->prev = (elm)->prev;                                                                      \
        (elm)->prev = (elm)->next = NULL;                                                                    \
    } while (0)

#endif
