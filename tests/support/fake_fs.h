/* tests/support/fake_fs.h — an in-memory struct fileio for the WAL's tests and fuzz target: fault
 * injection (fail the Nth write or sync, stop dead after the Nth operation) and power cuts.
 *
 * Power-cut model (fake_fs_power_cut): each file keeps what was fsync'd/fdatasync'd plus a random
 * prefix of the writes made since (the last one kept torn at a random byte); the directory keeps the
 * creations, renames and removals that were directory-fsync'd plus a random prefix of those that
 * were not (a journaling file system commits metadata in order). A failed sync drops the file's
 * unsynced writes from what a power cut can keep while reads still see them (Linux after EIO).
 * Single-threaded, except that the sync hook may block the calling thread.
 */
#ifndef DISCOVERYD_TESTS_FAKE_FS_H
#define DISCOVERYD_TESTS_FAKE_FS_H

#include <stdbool.h>
#include <stdint.h>
#include "store/fileio.h"

struct fake_fs;

struct fake_fs *fake_fs_new(uint64_t seed);
void fake_fs_free(struct fake_fs *fs);
const struct fileio *fake_fs_io(struct fake_fs *fs);

/* Faults: the n-th pwrite / sync (fdatasync, fsync or directory sync) from now fails with err
 * (0 = never). A sync failure also poisons that file's unsynced writes as described above. */
void fake_fs_fail_write(struct fake_fs *fs, uint64_t n, int err);
void fake_fs_fail_sync(struct fake_fs *fs, uint64_t n, int err);
/* After n more operations of any kind, every operation fails with -EIO (the process is dead; the
 * caller then calls fake_fs_power_cut). 0 = never. */
void fake_fs_die_after(struct fake_fs *fs, uint64_t n);
/* Writes sometimes transfer fewer bytes than asked. */
void fake_fs_short_writes(struct fake_fs *fs, bool on);
/* Called at the start of every fdatasync (before the fault check). */
void fake_fs_sync_hook(struct fake_fs *fs, void (*hook)(void *arg), void *arg);

/* Power cut: open descriptors vanish, only the durable state (plus random unsynced prefixes) stays,
 * and the fs works again (faults cleared). */
void fake_fs_power_cut(struct fake_fs *fs);

/* Direct access for tests that build or damage files. */
int fake_fs_put(struct fake_fs *fs, const char *path, const uint8_t *data, size_t len); /* durable */
uint8_t *fake_fs_get(struct fake_fs *fs, const char *path, size_t *len);                /* current view */
uint64_t fake_fs_ops(const struct fake_fs *fs);   /* operations so far */
uint64_t fake_fs_syncs(const struct fake_fs *fs); /* fdatasync + fsync calls so far */

#endif
