/* store/kv_image.c — the tree as a snapshot sees it: kv_dump() walks every node in pre-order
 * (parents first, siblings in creation order) and kv_restore_node() rebuilds a tree from such a
 * walk, so that a restored tree lists, sorts, expires and indexes exactly as the original did.
 * kv_dump only reads (a forked child may run it); kv_restore_node runs on an empty tree at start-up.
 */
#include <stdlib.h>
#include <string.h>

#include "store/kv_int.h"

/* The key of the node being dumped, kept as the walk goes down and up. */
struct path {
    char *p;
    size_t len, cap;
};

/* Set the path to parent's key (of length plen) + "/" + name. 0, or -1 on ENOMEM. */
static int path_set(struct path *pa, size_t plen, const struct kv_node *n)
{
    size_t need = plen + 1 + n->name_len + 1;
    if (need > pa->cap) {
        size_t cap = pa->cap ? pa->cap * 2 : 256;
        while (cap < need)
            cap *= 2;
        char *p = realloc(pa->p, cap);
        if (!p)
            return -1;
        pa->p = p;
        pa->cap = cap;
    }
    pa->p[plen] = '/';
    memcpy(pa->p + plen + 1, n->name, n->name_len);
    pa->len = plen + 1 + n->name_len;
    pa->p[pa->len] = '\0';
    return 0;
}

int kv_dump(const struct kv *kv, int (*fn)(void *arg, const struct kv_image *img), void *arg)
{
    const struct kv_node *root = kv->root, *cur = kv_node_first(root);
    struct path pa = {0};
    size_t plen = 0; /* the length of cur's parent's key ("/" counts 0) */
    int rv = 0;
    while (cur) {
        if (path_set(&pa, plen, cur) != 0) {
            rv = -1;
            break;
        }
        struct kv_image img = {
            .key = pa.p,
            .key_len = (uint32_t)pa.len,
            .value = kv_node_value(cur),
            .value_len = kv_node_value_len(cur),
            .created_index = cur->created_index,
            .modified_index = cur->modified_index,
            .created_ms = cur->created_ms,
            .expire_ms = kv_node_expire_ms(kv, cur),
            .dir = cur->dir,
        };
        if ((rv = fn(arg, &img)) != 0)
            break;
        if (kv_node_first(cur)) {
            plen = pa.len;
            cur = kv_node_first(cur);
            continue;
        }
        while (cur && cur != root && !cur->next_sibling) {
            cur = cur->parent;
            plen -= cur != root ? 1 + cur->name_len : 0;
        }
        cur = cur && cur != root ? cur->next_sibling : NULL;
    }
    free(pa.p);
    return rv;
}

int kv_restore_node(struct kv *kv, const struct kv_image *img)
{
    if (!img->key || img->key_len < 2 || img->key[0] != '/' || img->key[img->key_len - 1] == '/' ||
        memchr(img->key, '\0', img->key_len))
        return -1;
    struct walk w;
    kv_walk_path(kv, img->key, img->key_len, &w);
    struct kv_node *k = w.node;
    if (k && k != kv->disc)
        return -1; /* a key twice */
    if (!k) {
        /* its parent must exist already (pre-order), and be a dir */
        size_t name_off = img->key_len;
        while (name_off > 0 && img->key[name_off - 1] != '/')
            name_off--;
        if (w.notdir || w.miss_start != name_off || w.miss_end != img->key_len ||
            img->key_len - name_off > KV_NAME_MAX)
            return -1;
        k = kv_node_alloc(kv, img->key + name_off, (uint32_t)(img->key_len - name_off),
                          img->dir ? NULL : (img->value ? img->value : ""), img->dir ? 0 : img->value_len);
        if (!k)
            return -1;
        if (kv_expiry_reserve(kv, 1) != 0 || kv_node_reserve(kv, 1) != 0) {
            kv_node_discard(kv, k);
            return -1;
        }
        k->created_index = img->created_index;
        k->modified_index = img->modified_index;
        k->created_ms = img->created_ms;
        kv_node_link(kv, w.at, k, img->expire_ms); /* appended: sibling order is dump order */
        return 0;
    }
    /* /discovery itself, made by kv_new: take its recorded indexes */
    if (!img->dir)
        return -1;
    k->created_index = img->created_index;
    k->modified_index = img->modified_index;
    k->created_ms = img->created_ms;
    return 0;
}

void kv_restore_index(struct kv *kv, uint64_t index)
{
    kv->index = index;
}
