/* store/fileio.c — the POSIX implementation of struct fileio, and the loops over short transfers.
 * Every function maps a failing system call to -errno and retries EINTR (never a failed fsync:
 * after fsync fails the kernel may have dropped the dirty pages, so the caller must give up).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "store/fileio.h"

static int px_open(void *ctx, const char *path, int flags, mode_t mode)
{
    int fd;
    do
        fd = open(path, flags | O_CLOEXEC, mode);
    while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

static int px_close(void *ctx, int fd)
{
    /* Linux closes the descriptor even when close() reports EINTR: never retry. */
    return close(fd) < 0 && errno != EINTR ? -errno : 0;
}

static ssize_t px_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
    ssize_t n;
    do
        n = pread(fd, buf, len, off);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static ssize_t px_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
    ssize_t n;
    do
        n = pwrite(fd, buf, len, off);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static int px_fdatasync(void *ctx, int fd)
{
    return fdatasync(fd) < 0 ? -errno : 0;
}

static int px_fsync(void *ctx, int fd)
{
    return fsync(fd) < 0 ? -errno : 0;
}

static int px_ftruncate(void *ctx, int fd, off_t len)
{
    int rv;
    do
        rv = ftruncate(fd, len);
    while (rv < 0 && errno == EINTR);
    return rv < 0 ? -errno : 0;
}

static int px_fallocate(void *ctx, int fd, off_t off, off_t len)
{
    /* posix_fallocate returns the error instead of setting errno; glibc emulates it by writing
     * zeros on file systems without fallocate(2). */
    int rv = posix_fallocate(fd, off, len);
    return rv == 0 ? 0 : -rv;
}

static int px_writeback(void *ctx, int fd, off_t off, off_t len)
{
    /* Start writing this range, then wait for everything before it (sync_file_range(2) flags).
     * Dropping the written range from the page cache keeps a big snapshot from evicting the
     * service's own pages. */
    if (sync_file_range(fd, off, len, SYNC_FILE_RANGE_WRITE) < 0 ||
        (off > 0 && sync_file_range(fd, 0, off, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                                    SYNC_FILE_RANGE_WAIT_AFTER) < 0))
        return -errno;
    if (off > 0)
        (void)posix_fadvise(fd, 0, off, POSIX_FADV_DONTNEED);
    return 0;
}

static int px_size(void *ctx, int fd, uint64_t *size)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    *size = (uint64_t)st.st_size;
    return 0;
}

static int px_rename(void *ctx, const char *from, const char *to)
{
    return rename(from, to) < 0 ? -errno : 0;
}

static int px_unlink(void *ctx, const char *path)
{
    return unlink(path) < 0 ? -errno : 0;
}

static int px_mkdir(void *ctx, const char *path, mode_t mode)
{
    return mkdir(path, mode) < 0 ? -errno : 0;
}

static int px_sync_dir(void *ctx, const char *path)
{
    int fd = px_open(ctx, path, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return fd;
    int rv = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rv;
}

static int px_list_dir(void *ctx, const char *path, int (*fn)(void *arg, const char *name), void *arg)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return -errno;
    int rv = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            rv = errno != 0 ? -errno : 0;
            break;
        }
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        rv = fn(arg, de->d_name);
        if (rv != 0)
            break;
    }
    closedir(d);
    return rv;
}

static const struct fileio posix_io = {
    .open = px_open,
    .close = px_close,
    .pread = px_pread,
    .pwrite = px_pwrite,
    .fdatasync = px_fdatasync,
    .fsync = px_fsync,
    .ftruncate = px_ftruncate,
    .fallocate = px_fallocate,
    .size = px_size,
    .rename = px_rename,
    .unlink = px_unlink,
    .mkdir = px_mkdir,
    .sync_dir = px_sync_dir,
    .list_dir = px_list_dir,
    .writeback = px_writeback,
    .ctx = NULL,
};

const struct fileio *fileio_posix(void)
{
    return &posix_io;
}

int fileio_pwrite_all(const struct fileio *io, int fd, const void *buf, size_t len, off_t off)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = io->pwrite(io->ctx, fd, p, len, off);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return -EIO; /* a regular file never accepts zero bytes of a non-empty write */
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

ssize_t fileio_pread_all(const struct fileio *io, int fd, void *buf, size_t len, off_t off)
{
    uint8_t *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = io->pread(io->ctx, fd, p + got, len - got, off + (off_t)got);
        if (n < 0)
            return n;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}
