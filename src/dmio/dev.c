/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Devices: the public dmio_dev_* calls, dispatching to one kind behind a vtable: file/block
 * device (dev-file.c) for every path but a few prefixes; remote kinds add themselves to
 * dmio_dev_open().
 *
 * An NBD URI (nbd://, nbds://, nbd+unix://, nbds+unix://, nbd+vsock://, nbds+vsock://) opens an
 * export through libnbd (dev-nbd.c); a file whose name starts so is "./nbd:...".
 *
 * "crash:NAME" opens the crash-test disk NAME (dev-crash.c, dev-crash.h), an in-memory disk with
 * a volatile write cache that tests create and "power cut".  It is for tests only, so neither
 * libdmio(3) nor dmio.h mention it; -ENOENT when no such disk exists.  A file whose path starts
 * with "crash:" can still be opened as "./crash:...".
 *
 * "fault:PATH" opens PATH through the fault-injecting kind (dev-fault.c, dev-fault.h), whose
 * rules fail, delay or hang its operations.  It is documented in libdmio(3) for tests, and opens
 * only with FUSEMIRROR_TEST_DEVICES=1 in the environment (else -EPERM).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "dmio-internal.h"

int dmio_dev_open(const char *path, unsigned int flags, struct dmio_dev **out)
{
	if (path == NULL || *path == '\0' || out == NULL)
		return -EINVAL;
	if (flags & ~(DMIO_DEV_RDONLY | DMIO_DEV_DIRECT | DMIO_DEV_EXCLUSIVE))
		return -EINVAL;
	*out = NULL;
	int r;

	if (g_str_has_prefix(path, DMIO_DEV_CRASH_PREFIX))
		r = dmio_dev_crash_open(path, flags, out);
	else if (g_str_has_prefix(path, DMIO_DEV_FAULT_PREFIX))
		r = dmio_dev_fault_open(path, flags, out);
	else if (dmio_dev_is_nbd_uri(path))
		r = dmio_dev_nbd_open(path, flags, out);
	else
		r = dmio_dev_file_open(path, flags, out);
	if (r == 0)
		g_mutex_init(&(*out)->jobs_lock);
	return r;
}

void dmio_dev_free(struct dmio_dev *dev)
{
	g_mutex_clear(&dev->jobs_lock);
	dev->ops->close(dev);
	g_free(dev->path);
	g_free(dev);
}

void dmio_dev_close(struct dmio_dev *dev)
{
	bool later;

	if (dev == NULL)
		return;
	/* A job abandoned while running still uses the descriptor: its answer closes it. */
	g_mutex_lock(&dev->jobs_lock);
	later = dev->abandoned_running > 0;
	dev->close_pending = later;
	g_mutex_unlock(&dev->jobs_lock);
	if (!later)
		dmio_dev_free(dev);
}

uint64_t dmio_dev_sectors(const struct dmio_dev *dev)
{
	return dev->size >> DMIO_SECTOR_SHIFT;
}

unsigned int dmio_dev_logical_block_size(const struct dmio_dev *dev)
{
	return dev->lbs;
}

const char *dmio_dev_path(const struct dmio_dev *dev)
{
	return dev->path;
}

bool dmio_dev_is_block(const struct dmio_dev *dev)
{
	return dev->is_block;
}

unsigned int dmio_dev_flags(const struct dmio_dev *dev)
{
	return dev->flags;
}

bool dmio_dev_can_discard(const struct dmio_dev *dev)
{
	return atomic_load(&((struct dmio_dev *)dev)->can_discard);
}

bool dmio_dev_can_zero(const struct dmio_dev *dev)
{
	return atomic_load(&((struct dmio_dev *)dev)->can_zero);
}

bool dmio_dev_can_fua(const struct dmio_dev *dev)
{
	return atomic_load(&((struct dmio_dev *)dev)->can_fua);
}

void dmio_dev_cap_off(atomic_bool *cap, const struct dmio_dev *dev, const char *what)
{
	/* Only the first thread to learn it says so. */
	if (atomic_exchange(cap, false))
		g_debug("%s: %s is not supported, switched off", dev->path, what);
}
