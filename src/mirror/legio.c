/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Synchronous I/O on chosen legs, at leg offsets: the superblocks, the bitmap and the resync's
 * copy.  The data path does not use it (io.c issues asynchronous fan-outs).
 */
#include "config.h"

#include <errno.h>

#include "mirror/mirror-internal.h"

int mirror_sync_io(struct mirror *m, enum dmio_op op, unsigned int flags, struct leg **legs,
		   unsigned int n, void *buf, uint64_t leg_offset, uint64_t len, int *errors)
{
	struct dmio_region where[DMIO_MAX_REGIONS];
	int region_errors[DMIO_MAX_REGIONS];
	struct dmio_request req = {
	    .op = op,
	    .flags = flags,
	    .client = m->client,
	    .region_errors = region_errors,
	};
	unsigned long bits = 0;
	unsigned int i;
	int r;

	if (n == 0)
		return -ENODEV;
	req.mem.type = DMIO_MEM_VM;
	req.mem.ptr.vma = buf;
	for (i = 0; i < n; i++) {
		where[i].dev = legs[i]->dev;
		where[i].sector = leg_offset >> DMIO_SECTOR_SHIFT;
		where[i].count = len >> DMIO_SECTOR_SHIFT;
	}
	r = dmio(&req, n, where, &bits);
	if (errors != NULL)
		for (i = 0; i < n; i++)
			errors[i] = (bits & (1ul << i)) ? -region_errors[i] : 0;
	if (r == -EIO)
		for (i = 0; i < n; i++)
			if (bits & (1ul << i))
				return -region_errors[i];
	return r;
}

unsigned int mirror_written_legs(struct mirror *m, struct leg **legs)
{
	unsigned int i, n = 0, slots = atomic_load(&m->num_legs);

	for (i = 0; i < slots; i++)
		if (leg_is_written(&m->legs[i]))
			legs[n++] = &m->legs[i];
	return n;
}
