/* store/kv_image.c — the tree as a snapshot sees it: kv_dump() walks every node in pre-order
 * (parents first, siblings in creation order) and kv_restore_node() rebuilds a tree from such a
 * walk, so that a restored tree lists, sorts, expires and indexes exactly as the original did.
 * kv_dump only reads (a forked child may run it); kv_restore_node runs on an empty tree at start-up.
 */
#include <stdlib.h>
#include <string.h>

#include "store/kv_int.h"

int kv_dump(const struct kv *kv, int (*fn)(void *arg, const struct kv_node *n), void *arg)
{
    const struct kv_node *root = &kv->root->n, *cur = root->first_child;
    while (cur) {
        int rv = fn(arg, cur);
        if (rv)
            return rv;
        if (cur->first_child) {
            cur = cur->first_child;
            continue;
        }
        while (cur && cur != root && !cur->next_sibling)
            cur = cur->parent;
        cur = cur && cur != root ? cur->next_sibling : NULL;
    }
    return 0;
}

int kv_restore_node(struct kv *kv, const struct kv_node *img)
{
    if (!img->key || img->key_len < 2 || img->key[0] != '/' || img->key[img->key_len - 1] == '/' ||
        memchr(img->key, '\0', img->key_len))
        return -1;
    struct walk w;
    kv_walk_path(kv, img->key, img->key_len, &w);
    struct knode *k = w.node;
    if (k && k != kv->disc)
        return -1; /* a key twice */
    if (!k) {
        /* its parent must exist already (pre-order), and be a dir */
        size_t name_off = img->key_len;
        while (name_off > 0 && img->key[name_off - 1] != '/')
            name_off--;
        if (w.notdir || w.miss_start != name_off || w.miss_end != img->key_len)
            return -1;
        k = kv_node_alloc(kv, img->key, img->key_len, (uint32_t)name_off, img->dir ? NULL : (img->value ? img->value : ""),
                          img->dir ? 0 : img->value_len);
        if (!k)
            return -1;
        if (kv_heap_reserve(&kv->tok, 1) != 0 || kv_heap_reserve(&kv->ttl, 1) != 0 || kv_node_reserve(kv, 1) != 0) {
            kv_node_discard(kv, k);
            return -1;
        }
        k->n.dir = img->dir;
        k->n.value_len = img->dir ? 0 : img->value_len;
        k->n.created_index = img->created_index;
        k->n.modified_index = img->modified_index;
        k->n.created_ms = img->created_ms;
        k->n.expire_ms = img->expire_ms;
        kv_node_link(kv, w.at, k); /* appended: sibling order is dump order */
        return 0;
    }
    /* /discovery itself, made by kv_new: take its recorded indexes */
    if (!img->dir)
        return -1;
    k->n.created_index = img->created_index;
    k->n.modified_index = img->modified_index;
    k->n.created_ms = img->created_ms;
    return 0;
}

void kv_restore_index(struct kv *kv, uint64_t index)
{
    kv->index = index;
}
