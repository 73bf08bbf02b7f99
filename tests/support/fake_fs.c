/* tests/support/fake_fs.c — the in-memory, power-cut-simulating struct fileio of the WAL tests.
 * Files are inodes with a durable image, a current image and the list of unsynced operations;
 * the namespace is a flat list of paths (directories included) with a durable twin.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include "tests/support/fake_fs.h"

enum op_kind { OP_WRITE, OP_TRUNC, OP_GROW };
struct op {
    enum op_kind kind;
    uint64_t off, len; /* TRUNC/GROW: off = new size */
    uint8_t *data;
};
struct inode {
    uint8_t *cur, *dur;
    size_t cur_len, dur_len;
    struct op *ops;
    size_t n_ops, cap_ops;
};
struct dirent_ {
    char *path;
    int ino; /* -1: a directory */
};
struct names {
    struct dirent_ *e;
    size_t n, cap;
};
enum dop_kind { DOP_CREATE, DOP_UNLINK, DOP_RENAME };
struct dop {
    enum dop_kind kind;
    char *path, *to;
    int ino;
    char *parent;
};

struct fake_fs {
    struct fileio io;
    uint64_t rng;
    struct inode **inodes;
    size_t n_inodes;
    struct names cur, dur;
    struct dop *dops;
    size_t n_dops, cap_dops;
    int fds[64]; /* inode per descriptor, -1 free */
    uint64_t ops, syncs, writes, all_syncs;
    uint64_t fail_write_at, fail_sync_at, die_at;
    int fail_write_err, fail_sync_err;
    bool short_writes;
    void (*hook)(void *);
    void *hook_arg;
};

static uint64_t rnd(struct fake_fs *fs)
{
    uint64_t x = fs->rng += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        abort();
    return p;
}
static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        abort();
    return p;
}

static char *parent_of(const char *path)
{
    char *p = xstrdup(path);
    char *slash = strrchr(p, '/');
    if (slash == NULL)
        strcpy(p, ".");
    else if (slash == p)
        slash[1] = '\0';
    else
        *slash = '\0';
    return p;
}

/* ---- names ---- */

static struct dirent_ *names_find(struct names *n, const char *path)
{
    for (size_t i = 0; i < n->n; i++)
        if (!strcmp(n->e[i].path, path))
            return &n->e[i];
    return NULL;
}
static void names_set(struct names *n, const char *path, int ino)
{
    struct dirent_ *d = names_find(n, path);
    if (d != NULL) {
        d->ino = ino;
        return;
    }
    if (n->n == n->cap) {
        n->cap = n->cap ? n->cap * 2 : 16;
        n->e = realloc(n->e, n->cap * sizeof(*n->e));
        if (n->e == NULL)
            abort();
    }
    n->e[n->n++] = (struct dirent_){xstrdup(path), ino};
}
static void names_del(struct names *n, const char *path)
{
    struct dirent_ *d = names_find(n, path);
    if (d == NULL)
        return;
    free(d->path);
    *d = n->e[--n->n];
}
static void names_free(struct names *n)
{
    for (size_t i = 0; i < n->n; i++)
        free(n->e[i].path);
    free(n->e);
    memset(n, 0, sizeof(*n));
}
static void names_copy(struct names *dst, const struct names *src)
{
    names_free(dst);
    for (size_t i = 0; i < src->n; i++)
        names_set(dst, src->e[i].path, src->e[i].ino);
}
static void dop_apply(struct names *n, const struct dop *d)
{
    struct dirent_ *e;
    switch (d->kind) {
    case DOP_CREATE:
        names_set(n, d->path, d->ino);
        break;
    case DOP_UNLINK:
        names_del(n, d->path);
        break;
    case DOP_RENAME:
        if ((e = names_find(n, d->path)) != NULL) {
            int ino = e->ino;
            names_del(n, d->path);
            names_set(n, d->to, ino);
        }
        break;
    }
}
static void dop_free(struct dop *d)
{
    free(d->path);
    free(d->to);
    free(d->parent);
}
static void dop_push(struct fake_fs *fs, enum dop_kind kind, const char *path, const char *to, int ino)
{
    if (fs->n_dops == fs->cap_dops) {
        fs->cap_dops = fs->cap_dops ? fs->cap_dops * 2 : 16;
        fs->dops = realloc(fs->dops, fs->cap_dops * sizeof(*fs->dops));
        if (fs->dops == NULL)
            abort();
    }
    struct dop d = {kind, xstrdup(path), to ? xstrdup(to) : NULL, ino, parent_of(path)};
    fs->dops[fs->n_dops++] = d;
    dop_apply(&fs->cur, &d);
}

/* ---- inodes ---- */

static int inode_new(struct fake_fs *fs)
{
    fs->inodes = realloc(fs->inodes, (fs->n_inodes + 1) * sizeof(*fs->inodes));
    if (fs->inodes == NULL)
        abort();
    struct inode *in = calloc(1, sizeof(*in));
    if (in == NULL)
        abort();
    fs->inodes[fs->n_inodes] = in;
    return (int)fs->n_inodes++;
}
static void image_resize(uint8_t **img, size_t *len, size_t n)
{
    if (n > *len) {
        *img = realloc(*img, n ? n : 1);
        if (*img == NULL)
            abort();
        memset(*img + *len, 0, n - *len);
    }
    *len = n;
}
static void op_apply(uint8_t **img, size_t *len, const struct op *o, uint64_t keep)
{
    switch (o->kind) {
    case OP_WRITE:
        if (o->off + keep > *len)
            image_resize(img, len, (size_t)(o->off + keep));
        memcpy(*img + o->off, o->data, (size_t)keep);
        break;
    case OP_TRUNC:
        image_resize(img, len, (size_t)o->off);
        break;
    case OP_GROW:
        if (o->off > *len)
            image_resize(img, len, (size_t)o->off);
        break;
    }
}
static void op_push(struct inode *in, struct op o)
{
    if (in->n_ops == in->cap_ops) {
        in->cap_ops = in->cap_ops ? in->cap_ops * 2 : 16;
        in->ops = realloc(in->ops, in->cap_ops * sizeof(*in->ops));
        if (in->ops == NULL)
            abort();
    }
    in->ops[in->n_ops++] = o;
    op_apply(&in->cur, &in->cur_len, &o, o.len);
}
static void ops_clear(struct inode *in)
{
    for (size_t i = 0; i < in->n_ops; i++)
        free(in->ops[i].data);
    in->n_ops = 0;
}
static void inode_sync(struct inode *in)
{
    free(in->dur);
    in->dur = xmalloc(in->cur_len);
    if (in->cur_len)
        memcpy(in->dur, in->cur, in->cur_len);
    in->dur_len = in->cur_len;
    ops_clear(in);
}

/* ---- fileio ---- */

/* Common entry: counts the operation and applies die_after. */
static int enter(struct fake_fs *fs)
{
    fs->ops++;
    if (fs->die_at != 0 && fs->ops >= fs->die_at)
        return -EIO;
    return 0;
}

static struct inode *fd_inode(struct fake_fs *fs, int fd)
{
    if (fd < 0 || fd >= 64 || fs->fds[fd] < 0)
        return NULL;
    return fs->inodes[fs->fds[fd]];
}

static int f_open(void *ctx, const char *path, int flags, mode_t mode)
{
    struct fake_fs *fs = ctx;
    int rv = enter(fs);
    if (rv)
        return rv;
    struct dirent_ *d = names_find(&fs->cur, path);
    if (d != NULL && d->ino < 0)
        return (flags & O_ACCMODE) == O_RDONLY ? -EISDIR : -EISDIR;
    if (d == NULL) {
        if (!(flags & O_CREAT))
            return -ENOENT;
        char *parent = parent_of(path);
        struct dirent_ *p = names_find(&fs->cur, parent);
        free(parent);
        if (p == NULL || p->ino >= 0)
            return -ENOENT;
        dop_push(fs, DOP_CREATE, path, NULL, inode_new(fs));
        d = names_find(&fs->cur, path);
    } else if ((flags & O_CREAT) && (flags & O_EXCL)) {
        return -EEXIST;
    } else if (flags & O_TRUNC) {
        op_push(fs->inodes[d->ino], (struct op){OP_TRUNC, 0, 0, NULL});
    }
    for (int fd = 0; fd < 64; fd++)
        if (fs->fds[fd] < 0) {
            fs->fds[fd] = d->ino;
            return fd;
        }
    return -EMFILE;
}

static int f_close(void *ctx, int fd)
{
    struct fake_fs *fs = ctx;
    if (fd_inode(fs, fd) == NULL)
        return -EBADF;
    fs->fds[fd] = -1;
    return 0;
}

static ssize_t f_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
    struct fake_fs *fs = ctx;
    int rv = enter(fs);
    if (rv)
        return rv;
    struct inode *in = fd_inode(fs, fd);
    if (in == NULL)
        return -EBADF;
    if ((uint64_t)off >= in->cur_len)
        return 0;
    size_t n = in->cur_len - (size_t)off < len ? in->cur_len - (size_t)off : len;
    memcpy(buf, in->cur + off, n);
    return (ssize_t)n;
}

static ssize_t f_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
    struct fake_fs *fs = ctx;
    int rv = enter(fs);
    if (rv)
        return rv;
    struct inode *in = fd_inode(fs, fd);
    if (in == NULL)
        return -EBADF;
    fs->writes++;
    if (fs->fail_write_at != 0 && fs->writes == fs->fail_write_at)
        return -fs->fail_write_err;
    if (fs->short_writes && len > 1 && rnd(fs) % 4 == 0)
        len = 1 + (size_t)(rnd(fs) % (len - 1));
    struct op o = {OP_WRITE, (uint64_t)off, len, xmalloc(len)};
    memcpy(o.data, buf, len);
    op_push(in, o);
    return (ssize_t)len;
}

static int do_sync(struct fake_fs *fs, struct inode *in)
{
    fs->all_syncs++;
    if (fs->fail_sync_at != 0 && fs->all_syncs == fs->fail_sync_at) {
        /* fsyncgate: the dirty pages are marked clean without reaching the disk. */
        if (in != NULL)
            ops_clear(in);
        return -fs->fail_sync_err;
    }
    if (in != NULL)
        inode_sync(in);
    return 0;
}

static int f_fdatasync(void *ctx, int fd)
{
    struct fake_fs *fs = ctx;
    if (fs->hook != NULL)
        fs->hook(fs->hook_arg);
    int rv = enter(fs);
    if (rv)
        return rv;
    struct inode *in = fd_inode(fs, fd);
    if (in == NULL)
        return -EBADF;
    fs->syncs++;
    return do_sync(fs, in);
}

static int f_fsync(void *ctx, int fd)
{
    struct fake_fs *fs = ctx;
    int rv = enter(fs);
    if (rv)
        return rv;
    struct inode *in = fd_inode(fs, fd);
    if (in == NULL)
        return -EBADF;
    fs->syncs++;
    return do_sync(fs, in);
}

static int f_ftruncate(void *ctx, int fd, off_t len)
{
    struct fake_fs *fs = ctx;
    int rv = enter(fs);
    if (rv)
        return rv;
    struct inode *in = fd_inode(fs, fd);
    if (in == NULL)
        return -EBADF;
    op_push(in, (struct op){OP_TRUNC, (uint64_t)len, 0, NULL});
    return 0;
}

static int f_fallocate(void *ctx, int fd, off_t off, off_t len)
{
    struct fake_fs *fs = ctx;
    int rv = enter(fs);
    if (rv)
        return rv;
    struct inode *in = fd_inode(fs, fd);
    if (in == NULL)
        return -EBADF;
    op_push(in, (struct op){OP_GROW, (uint64_t)(off + len), 0, NULL});
    return 0;
}

static int f_size(void *ctx, int fd, uint64_t *size)
{
    struct fake_fs *fs = ctx;
    struct inode *in = fd_inode(fs, fd);
    if (in == NULL)
        return -EBADF;
    *size = in->cur_len;
    return 0;
}

static int f_rename(void *ctx, const char *from, const char *to)
{
    struct fake_fs *fs = ctx;
    int rv = enter(fs);
    if (rv)
        return rv;
    if (names_find(&fs->cur, from) == NULL)
        return -ENOENT;
    dop_push(fs, DOP_RENAME, from, to, 0);
    return 0;
}

static int f_unlink(void *ctx, const char *path)
{
    struct fake_fs *fs = ctx;
    int rv = enter(fs);
    if (rv)
        return rv;
    struct dirent_ *d = names_find(&fs->cur, path);
    if (d == NULL)
        return -ENOENT;
    if (d->ino < 0)
        return -EISDIR;
    dop_push(fs, DOP_UNLINK, path, NULL, 0);
    return 0;
}

static int f_mkdir(void *ctx, const char *path, mode_t mode)
{
    struct fake_fs *fs = ctx;
    int rv = enter(fs);
    if (rv)
        return rv;
    if (names_find(&fs->cur, path) != NULL)
        return -EEXIST;
    dop_push(fs, DOP_CREATE, path, NULL, -1);
    return 0;
}

static int f_sync_dir(void *ctx, const char *path)
{
    struct fake_fs *fs = ctx;
    int rv = enter(fs);
    if (rv)
        return rv;
    struct dirent_ *d = names_find(&fs->cur, path);
    if (d == NULL || d->ino >= 0)
        return d == NULL ? -ENOENT : -ENOTDIR;
    fs->all_syncs++;
    if (fs->fail_sync_at != 0 && fs->all_syncs == fs->fail_sync_at)
        return -fs->fail_sync_err;
    /* Commit this directory's pending operations; others stay pending, in order. */
    size_t k = 0;
    for (size_t i = 0; i < fs->n_dops; i++) {
        if (!strcmp(fs->dops[i].parent, path)) {
            dop_apply(&fs->dur, &fs->dops[i]);
            dop_free(&fs->dops[i]);
        } else {
            fs->dops[k++] = fs->dops[i];
        }
    }
    fs->n_dops = k;
    return 0;
}

static int f_list_dir(void *ctx, const char *path, int (*fn)(void *arg, const char *name), void *arg)
{
    struct fake_fs *fs = ctx;
    int rv = enter(fs);
    if (rv)
        return rv;
    struct dirent_ *d = names_find(&fs->cur, path);
    if (d == NULL || d->ino >= 0)
        return d == NULL ? -ENOENT : -ENOTDIR;
    size_t plen = strlen(path);
    /* Copy the names first: fn may not change the namespace, but be safe. */
    char **list = xmalloc(fs->cur.n * sizeof(char *));
    size_t n = 0;
    for (size_t i = 0; i < fs->cur.n; i++) {
        const char *p = fs->cur.e[i].path;
        if (!strncmp(p, path, plen) && p[plen] == '/' && strchr(p + plen + 1, '/') == NULL)
            list[n++] = xstrdup(p + plen + 1);
    }
    rv = 0;
    for (size_t i = 0; i < n; i++) {
        if (rv == 0)
            rv = fn(arg, list[i]);
        free(list[i]);
    }
    free(list);
    return rv;
}

struct fake_fs *fake_fs_new(uint64_t seed)
{
    struct fake_fs *fs = calloc(1, sizeof(*fs));
    if (fs == NULL)
        abort();
    fs->rng = seed;
    for (int i = 0; i < 64; i++)
        fs->fds[i] = -1;
    names_set(&fs->cur, "/", -1);
    names_set(&fs->dur, "/", -1);
    fs->io = (struct fileio){
        .open = f_open,
        .close = f_close,
        .pread = f_pread,
        .pwrite = f_pwrite,
        .fdatasync = f_fdatasync,
        .fsync = f_fsync,
        .ftruncate = f_ftruncate,
        .fallocate = f_fallocate,
        .size = f_size,
        .rename = f_rename,
        .unlink = f_unlink,
        .mkdir = f_mkdir,
        .sync_dir = f_sync_dir,
        .list_dir = f_list_dir,
        .ctx = fs,
    };
    return fs;
}

void fake_fs_free(struct fake_fs *fs)
{
    if (fs == NULL)
        return;
    for (size_t i = 0; i < fs->n_inodes; i++) {
        ops_clear(fs->inodes[i]);
        free(fs->inodes[i]->ops);
        free(fs->inodes[i]->cur);
        free(fs->inodes[i]->dur);
        free(fs->inodes[i]);
    }
    free(fs->inodes);
    for (size_t i = 0; i < fs->n_dops; i++)
        dop_free(&fs->dops[i]);
    free(fs->dops);
    names_free(&fs->cur);
    names_free(&fs->dur);
    free(fs);
}

const struct fileio *fake_fs_io(struct fake_fs *fs)
{
    return &fs->io;
}

void fake_fs_fail_write(struct fake_fs *fs, uint64_t n, int err)
{
    fs->fail_write_at = n ? fs->writes + n : 0;
    fs->fail_write_err = err;
}
void fake_fs_fail_sync(struct fake_fs *fs, uint64_t n, int err)
{
    fs->fail_sync_at = n ? fs->all_syncs + n : 0;
    fs->fail_sync_err = err;
}
void fake_fs_die_after(struct fake_fs *fs, uint64_t n)
{
    fs->die_at = n ? fs->ops + n : 0;
}
void fake_fs_short_writes(struct fake_fs *fs, bool on)
{
    fs->short_writes = on;
}
void fake_fs_sync_hook(struct fake_fs *fs, void (*hook)(void *arg), void *arg)
{
    fs->hook = hook;
    fs->hook_arg = arg;
}

void fake_fs_power_cut(struct fake_fs *fs)
{
    /* The directory: durable + a random prefix of what was not synced. */
    size_t keep = fs->n_dops ? (size_t)(rnd(fs) % (fs->n_dops + 1)) : 0;
    for (size_t i = 0; i < fs->n_dops; i++) {
        if (i < keep)
            dop_apply(&fs->dur, &fs->dops[i]);
        dop_free(&fs->dops[i]);
    }
    fs->n_dops = 0;
    names_copy(&fs->cur, &fs->dur);
    /* Each file: durable + a random prefix of its unsynced operations, the last one torn. */
    for (size_t i = 0; i < fs->n_inodes; i++) {
        struct inode *in = fs->inodes[i];
        size_t n = in->n_ops ? (size_t)(rnd(fs) % (in->n_ops + 1)) : 0;
        for (size_t j = 0; j < n; j++) {
            const struct op *o = &in->ops[j];
            uint64_t bytes = o->len;
            if (j == n - 1 && o->kind == OP_WRITE && o->len > 0)
                bytes = rnd(fs) % (o->len + 1);
            op_apply(&in->dur, &in->dur_len, o, bytes);
        }
        ops_clear(in);
        free(in->cur);
        in->cur = xmalloc(in->dur_len);
        if (in->dur_len)
            memcpy(in->cur, in->dur, in->dur_len);
        in->cur_len = in->dur_len;
    }
    for (int fd = 0; fd < 64; fd++)
        fs->fds[fd] = -1;
    fs->fail_write_at = fs->fail_sync_at = fs->die_at = 0;
}

int fake_fs_put(struct fake_fs *fs, const char *path, const uint8_t *data, size_t len)
{
    struct dirent_ *d = names_find(&fs->cur, path);
    int ino;
    if (d == NULL) {
        char *parent = parent_of(path);
        if (names_find(&fs->cur, parent) == NULL) {
            names_set(&fs->cur, parent, -1);
            names_set(&fs->dur, parent, -1);
        }
        free(parent);
        ino = inode_new(fs);
        names_set(&fs->cur, path, ino);
        names_set(&fs->dur, path, ino);
    } else {
        ino = d->ino;
    }
    struct inode *in = fs->inodes[ino];
    ops_clear(in);
    free(in->cur);
    in->cur = xmalloc(len);
    if (len)
        memcpy(in->cur, data, len);
    in->cur_len = len;
    inode_sync(in);
    return 0;
}

uint8_t *fake_fs_get(struct fake_fs *fs, const char *path, size_t *len)
{
    struct dirent_ *d = names_find(&fs->cur, path);
    if (d == NULL || d->ino < 0)
        return NULL;
    struct inode *in = fs->inodes[d->ino];
    uint8_t *p = xmalloc(in->cur_len);
    if (in->cur_len)
        memcpy(p, in->cur, in->cur_len);
    *len = in->cur_len;
    return p;
}

uint64_t fake_fs_ops(const struct fake_fs *fs)
{
    return fs->ops;
}
uint64_t fake_fs_syncs(const struct fake_fs *fs)
{
    return fs->syncs;
}
