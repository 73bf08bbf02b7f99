/* store/fileio.h — the file operations of the durable store (WAL, snapshots), as a table of function
 * pointers so that tests can put a fault-injecting, power-cut-simulating file system underneath.
 *
 * Owns nothing; fileio_posix() is the real thing (stateless, any thread). The WAL and the snapshot
 * code do every byte of their I/O through a struct fileio and never call open()/write() directly.
 * Convention: every function returns >= 0 on success and -errno on failure (never sets errno for
 * the caller to read). A read or write may be short; fileio_pwrite_all/fileio_pread_all loop.
 */
#ifndef DISCOVERYD_STORE_FILEIO_H
#define DISCOVERYD_STORE_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct fileio {
    /* open(2) flags and mode; returns a descriptor (>= 0). */
    int (*open)(void *ctx, const char *path, int flags, mode_t mode);
    int (*close)(void *ctx, int fd);
    /* Bytes transferred (may be short; 0 from pread = end of file). */
    ssize_t (*pread)(void *ctx, int fd, void *buf, size_t len, off_t off);
    ssize_t (*pwrite)(void *ctx, int fd, const void *buf, size_t len, off_t off);
    int (*fdatasync)(void *ctx, int fd);
    int (*fsync)(void *ctx, int fd);
    int (*ftruncate)(void *ctx, int fd, off_t len);
    /* Reserve [off, off+len) so later writes there cannot fail for space; reads there give zeros. */
    int (*fallocate)(void *ctx, int fd, off_t off, off_t len);
    int (*size)(void *ctx, int fd, uint64_t *size);
    int (*rename)(void *ctx, const char *from, const char *to);
    int (*unlink)(void *ctx, const char *path);
    int (*mkdir)(void *ctx, const char *path, mode_t mode); /* -EEXIST if it exists */
    /* fsync of a directory: makes creations, renames and removals in it durable. */
    int (*sync_dir)(void *ctx, const char *path);
    /* Calls fn for every entry of directory path except "." and ".." (any order); a non-zero return
     * of fn stops the listing and is returned. */
    int (*list_dir)(void *ctx, const char *path, int (*fn)(void *arg, const char *name), void *arg);
    /* Optional (NULL: skip): a hint that [off, off+len) is written and may go to the device now; it
     * waits until what was handed over before off is written, so a long sequential writer keeps its
     * dirty pages bounded. Durability still needs fsync. */
    int (*writeback)(void *ctx, int fd, off_t off, off_t len);
    void *ctx;
};

/* The POSIX implementation (open(2), pwrite(2), fdatasync(2), posix_fallocate(3), opendir(3) ...). */
const struct fileio *fileio_posix(void);

/* Write or read exactly len bytes at off, looping over short transfers. pread_all returns the bytes
 * read (< len only at end of file); pwrite_all returns 0. Both -errno on failure. */
int fileio_pwrite_all(const struct fileio *io, int fd, const void *buf, size_t len, off_t off);
ssize_t fileio_pread_all(const struct fileio *io, int fd, void *buf, size_t len, off_t off);

#endif
