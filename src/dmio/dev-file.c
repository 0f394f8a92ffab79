/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The file and block-device kind: preadv/pwritev2, fdatasync, and discard / write-zeroes through
 * fallocate (files) or BLKDISCARD / BLKZEROOUT (block devices).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "dmio-internal.h"

static ssize_t file_preadv(struct dmio_dev *dev, const struct iovec *iov, int iovcnt,
			   uint64_t offset)
{
	ssize_t r = preadv(dev->fd, iov, iovcnt, (off_t)offset);

	return r < 0 ? -errno : r;
}

static ssize_t file_pwritev(struct dmio_dev *dev, const struct iovec *iov, int iovcnt,
			    uint64_t offset, int rwf_flags)
{
	ssize_t r = pwritev2(dev->fd, iov, iovcnt, (off_t)offset, rwf_flags);

	return r < 0 ? -errno : r;
}

static int file_flush(struct dmio_dev *dev)
{
	return fdatasync(dev->fd) < 0 ? -errno : 0;
}

static int file_discard(struct dmio_dev *dev, uint64_t offset, uint64_t len)
{
	if (dev->is_block) {
		uint64_t range[2] = { offset, len };

		return ioctl(dev->fd, BLKDISCARD, range) < 0 ? -errno : 0;
	}
	if (fallocate(dev->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
		      (off_t)len) < 0)
		return -errno;
	return 0;
}

static int file_zero(struct dmio_dev *dev, uint64_t offset, uint64_t len)
{
	if (dev->is_block) {
		uint64_t range[2] = { offset, len };

		return ioctl(dev->fd, BLKZEROOUT, range) < 0 ? -errno : 0;
	}
	if (fallocate(dev->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
		      (off_t)len) < 0)
		return -errno;
	return 0;
}

static void file_close(struct dmio_dev *dev)
{
	if (dev->fd >= 0)
		close(dev->fd);
	dev->fd = -1;
}

static const struct dmio_dev_ops file_ops = {
	.kind = "file",
	.preadv = file_preadv,
	.pwritev = file_pwritev,
	.flush = file_flush,
	.discard = file_discard,
	.zero = file_zero,
	.close = file_close,
};

/* A block device's queue limit from sysfs, or -1 when it cannot be read. */
static long long block_queue_limit(dev_t rdev, const char *name)
{
	char path[96];
	long long value = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/queue/%s", major(rdev), minor(rdev),
		 name);
	f = fopen(path, "re");
	if (f == NULL)
		return -1;
	if (fscanf(f, "%lld", &value) != 1)
		value = -1;
	fclose(f);
	return value;
}

/*
 * O_DIRECT alignment: what the kernel reports through statx, else the logical block size.
 * -EINVAL when statx says the file takes no direct I/O at all (a zero alignment: an open with
 * O_DIRECT may succeed where every read and write would then fail, e.g. an ext4 file with
 * data=journal), as open(2) refuses O_DIRECT on a file system that has none.
 */
static int probe_direct_alignment(struct dmio_dev *dev)
{
	struct statx stx;

	dev->mem_align = dev->lbs;
	dev->offset_align = dev->lbs;
	if (statx(dev->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN)) {
		if (stx.stx_dio_mem_align == 0 || stx.stx_dio_offset_align == 0)
			return -EINVAL;
		dev->mem_align = stx.stx_dio_mem_align;
		dev->offset_align = stx.stx_dio_offset_align;
	}
	/* Region offsets are in sectors: never ask for less than a sector. */
	if (dev->offset_align < DMIO_SECTOR_SIZE)
		dev->offset_align = DMIO_SECTOR_SIZE;
	if (dev->mem_align < 1)
		dev->mem_align = 1;
	return 0;
}

/*
 * DMIO_DEV_EXCLUSIVE on a regular file: a lock over the whole file, owned by the open file
 * description, so it lasts as long as fd and no other descriptor of this process releases it.
 * A read-only descriptor can only take a read lock.  0, -EBUSY when another lock conflicts, or
 * the -errno of fcntl(2) (-ENOLCK, ...).
 */
static int lock_whole_file(int fd, bool rdonly)
{
	struct flock lock = {
	    .l_type = rdonly ? F_RDLCK : F_WRLCK,
	    .l_whence = SEEK_SET,
	    .l_start = 0,
	    .l_len = 0, /* to the end, however far it grows */
	};

	if (fcntl(fd, F_OFD_SETLK, &lock) == 0)
		return 0;
	return errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
}

int dmio_dev_file_open(const char *path, unsigned int flags, struct dmio_dev **out)
{
	struct dmio_dev *dev;
	struct stat st;
	int oflags = O_CLOEXEC;
	int fd, r;

	if (stat(path, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return -EINVAL;

	oflags |= (flags & DMIO_DEV_RDONLY) ? O_RDONLY : O_RDWR;
	if (flags & DMIO_DEV_DIRECT)
		oflags |= O_DIRECT;
	/* Without O_CREAT, O_EXCL means "claim it" for a block device only (open(2)). */
	if ((flags & DMIO_DEV_EXCLUSIVE) && S_ISBLK(st.st_mode))
		oflags |= O_EXCL;
	fd = open(path, oflags);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (flags & DMIO_DEV_EXCLUSIVE) {
		/* Replaced between stat and open: what was checked is not what was claimed. */
		if (S_ISBLK(st.st_mode) != ((oflags & O_EXCL) != 0))
			r = -EAGAIN;
		else if (!S_ISBLK(st.st_mode))
			r = lock_whole_file(fd, flags & DMIO_DEV_RDONLY);
		else
			r = 0;
		if (r < 0) {
			close(fd);
			return r;
		}
	}

	dev = g_new0(struct dmio_dev, 1);
	dev->ops = &file_ops;
	dev->path = g_strdup(path);
	dev->fd = fd;
	dev->flags = flags;
	dev->is_block = S_ISBLK(st.st_mode);
	dev->lbs = DMIO_SECTOR_SIZE;
	atomic_init(&dev->can_discard, true);
	atomic_init(&dev->can_zero, true);
	atomic_init(&dev->can_fua, true);
	/* O_DIRECT would need the pipe's pages aligned, which nobody promises: those copy. */
	atomic_init(&dev->can_splice, !(flags & DMIO_DEV_DIRECT));
	atomic_init(&dev->avg_ns, 0);
	atomic_init(&dev->timed_ns, 0);
	atomic_init(&dev->probe_ns, 0);

	if (dev->is_block) {
		uint64_t size;
		int lbs;

		if (ioctl(fd, BLKGETSIZE64, &size) < 0 || ioctl(fd, BLKSSZGET, &lbs) < 0) {
			r = -errno;
			goto fail;
		}
		dev->size = size;
		dev->lbs = lbs > 0 ? (unsigned int)lbs : DMIO_SECTOR_SIZE;
		/* The queue says whether discard reaches the hardware; zeroout always works. */
		if (block_queue_limit(st.st_rdev, "discard_max_bytes") == 0)
			atomic_store(&dev->can_discard, false);
	} else {
		dev->size = (uint64_t)st.st_size;
	}

	dev->mem_align = 1;
	dev->offset_align = 1;
	if (flags & DMIO_DEV_DIRECT) {
		r = probe_direct_alignment(dev);
		if (r < 0)
			goto fail;
	}

	*out = dev;
	return 0;
fail:
	close(fd);
	g_free(dev->path);
	g_free(dev);
	return r;
}
