/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Opening a leg with or without O_DIRECT: the direct = rule of fusemirror.conf(5), the same for
 * the legs of the config (array.c), a hot add and a replace (reconfig.c).
 *
 * auto: O_DIRECT on a block device, and on a regular file whose file system takes it (the open
 * with O_DIRECT succeeds and statx's STATX_DIOALIGN does not say no, dev-file.c), but never on
 * tmpfs: tmpfs takes O_DIRECT on new kernels, yet there it only adds a copy's worth of checks to
 * memory that is the page cache anyway.  true: O_DIRECT, or the leg is refused.  false: the page
 * cache.  Either way the device must take 512-byte aligned offsets: the mirror writes whole
 * sectors (io.c reads and rewrites the sectors a partial write touches), so a leg whose O_DIRECT
 * needs more (a disk with 4 KiB logical blocks, a file on a file system with 4 KiB direct I/O
 * offsets) goes through the page cache under auto, and is refused under true.  An NBD export has
 * no page cache here: the key does not apply to it (true is refused by config.c and below).
 */
#include "config.h"

#include <errno.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "mirror/mirror-internal.h"

int leg_open_dev(const char *path, unsigned int flags, enum leg_direct direct,
		 struct dmio_dev **out, char **why)
{
	struct dmio_dev *dev = NULL;
	unsigned int mem_align, offset_align;
	struct statfs sfs;
	struct stat st;
	int r;

	*why = NULL;
	*out = NULL;
	if (dmio_path_is_uri(path)) {
		if (direct == LEG_DIRECT_TRUE) {
			*why = g_strdup("it is an NBD export: direct does not apply to one");
			return -EINVAL;
		}
		return dmio_dev_open(path, flags, out);
	}
	/* What cannot be looked at is opened as ever, so that its error is the open's. */
	if (direct == LEG_DIRECT_FALSE || stat(path, &st) < 0 ||
	    (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)))
		return dmio_dev_open(path, flags, out);
	if (direct == LEG_DIRECT_AUTO && S_ISREG(st.st_mode) && statfs(path, &sfs) == 0 &&
	    sfs.f_type == TMPFS_MAGIC) {
		*why = g_strdup("it is on tmpfs");
		return dmio_dev_open(path, flags, out);
	}

	r = dmio_dev_open(path, flags | DMIO_DEV_DIRECT, &dev);
	if (r == -EINVAL) {
		/* A regular file or a block device (checked above): the file system said no. */
		*why = g_strdup("its file system does not take O_DIRECT");
	} else if (r < 0) {
		return r;
	} else {
		dmio_dev_direct_align(dev, &mem_align, &offset_align);
		if (offset_align <= DMIO_SECTOR_SIZE && mem_align <= DMIO_PAGE_SIZE) {
			*out = dev;
			return 0;
		}
		*why = g_strdup_printf("its O_DIRECT needs %u-byte aligned offsets and %u-byte "
				       "aligned memory, and the mirror writes 512-byte sectors",
				       offset_align, mem_align);
		dmio_dev_close(dev);
	}
	if (direct == LEG_DIRECT_TRUE)
		return -EOPNOTSUPP;
	return dmio_dev_open(path, flags, out);
}
