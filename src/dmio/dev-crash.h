/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The crash-test device kind, for tests only (not exported from libdmio.so): an in-memory disk
 * with a volatile write cache, opened as dmio_dev_open("crash:NAME").  Writes are held in the
 * cache until a flush of the disk makes them durable; FUA writes (RWF_DSYNC) are durable at once.
 * Every operation is recorded, so that one workload can be "power cut" at many points afterwards
 * (CrashMonkey's and dm-log-writes' method): a cut keeps what was durable and a seeded random
 * subset of what was not, as a real disk may.
 *
 * Transfers are in whole 512-byte sectors (dmio's regions always are): others get -EINVAL.
 * DMIO_DEV_DIRECT is accepted, with 512-byte memory and offset alignment, so that the library's
 * bounce path can be tested on it.
 */
#ifndef DMIO_DEV_CRASH_H
#define DMIO_DEV_CRASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A crash disk: an in-memory disk with a volatile write cache.  Thread-safe. */
struct dmio_crash_disk;

/*
 * Create a disk of size bytes (a multiple of 512, not 0), all zeroes, reachable as
 * dmio_dev_open("crash:NAME").  Returns 0, -EEXIST (the name is taken), -EINVAL, -ENOMEM.
 * Creation starts its recording: its contents now are the recording's base, already durable.
 */
int dmio_crash_disk_create(const char *name, uint64_t size, struct dmio_crash_disk **out);

/*
 * Free a disk and its recording.  No dmio_dev may be open on it any more (if one is, it says so
 * with g_critical and frees nothing); the name becomes free.  NULL is ignored.
 */
void dmio_crash_disk_destroy(struct dmio_crash_disk *disk);

/* The disk's size in bytes. */
uint64_t dmio_crash_disk_size(const struct dmio_crash_disk *disk);

/*
 * One sequence for every crash disk of the process: each operation that reaches a crash disk
 * (write, FUA write, write-zeroes, discard, flush) takes the next number when it is applied.
 * dmio_crash_seq() is the number the next operation will take: a cut at it loses nothing that
 * has happened so far but what was never flushed.
 */
uint64_t dmio_crash_seq(void);

/*
 * A new disk named name with what `from` would hold after a power cut just before operation
 * number cut: the recording's base, every logged write before cut that a later flush (also
 * before cut) of this disk made durable, every FUA write before cut, and of the writes before
 * cut that no flush covered, a subset chosen by seed (each kept or lost independently, about
 * half of them; the same seed and cut give the same disk) - all applied in sequence order.
 * The new disk starts its own recording with that image as its base; `from` is not changed
 * (it may be cut again at another point).  A failing disk can be cut too.
 * Returns 0 or -errno as create.
 */
int dmio_crash_disk_cut(struct dmio_crash_disk *from, uint64_t cut, uint64_t seed, const char *name,
			struct dmio_crash_disk **out);

/*
 * How many writes (write-zeroes and discards included) before cut no flush covered, FUA writes
 * left out: the ones a cut there may lose.  For test reports.
 */
uint64_t dmio_crash_disk_unflushed(struct dmio_crash_disk *disk, uint64_t cut);

/*
 * From now on every operation on the disk through a dmio_dev (reads too) fails with -EIO and is
 * not logged, until called again with false: a leg that dies.  Opening it still works, and so do
 * dmio_crash_disk_read() and dmio_crash_disk_cut(), which are the test's view of it.
 */
void dmio_crash_disk_set_failing(struct dmio_crash_disk *disk, bool failing);

/*
 * Copy len bytes at offset of what the disk holds now (reads see the cache: the latest writes).
 * Returns 0, or -EINVAL when the range is not inside the disk.
 */
int dmio_crash_disk_read(struct dmio_crash_disk *disk, uint64_t offset, void *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* DMIO_DEV_CRASH_H */
