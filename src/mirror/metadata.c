/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * metadata = internal: assembly from the legs' superblocks, superblock updates on every change
 * of state, persisting the write-intent bitmap, and the thread that clears idle bits.
 * The format is in doc/format.md.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mirror/mirror-internal.h"

#define CLEAN_INTERVAL_US (1 * G_USEC_PER_SEC) /* how often the cleaner looks */
#define IDLE_US		  (5 * G_USEC_PER_SEC) /* a region idle this long gets its bit cleared */

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

static enum sb_role leg_role(const struct leg *leg)
{
	switch ((enum leg_state)atomic_load(&((struct leg *)leg)->state)) {
	case LEG_IN_SYNC:
		return SB_ROLE_IN_SYNC;
	case LEG_STALE:
	case LEG_RESYNCING:
		return SB_ROLE_RESYNCING;
	case LEG_FAILED:
		return SB_ROLE_FAILED;
	case LEG_REMOVED:
		return SB_ROLE_EMPTY;
	}
	return SB_ROLE_FAILED;
}

int metadata_write(struct mirror *m, bool bump, bool clean)
{
	struct superblock sb;
	unsigned int i, good = 0, wrote = 0;
	int err = -EIO;

	if (m->metadata != METADATA_INTERNAL)
		return 0;
	g_mutex_lock(&m->sb_lock);
	if (bump)
		m->array.events++;
	if (clean)
		m->array.flags |= SB_FLAG_CLEAN;
	else
		m->array.flags &= ~SB_FLAG_CLEAN;
	m->array.utime = (uint64_t)time(NULL);
	/* Slots past the configured legs (a leg hot-added, not in the config) keep their role. */
	m->array.num_legs = MAX(m->array.num_legs, m->num_legs);
	for (i = 0; i < m->num_legs; i++) {
		m->array.roles[i].role = leg_role(&m->legs[i]);
		memcpy(m->array.roles[i].uuid, m->legs[i].uuid, 16);
	}
	for (i = 0; i < m->num_legs; i++) {
		struct leg *leg = &m->legs[i];
		int r;

		if (leg->dev == NULL || !leg_is_written(leg))
			continue;
		sb = m->array;
		memcpy(sb.leg_uuid, leg->uuid, 16);
		sb.leg_index = i;
		sb.recovery_offset = leg_state(leg) == LEG_IN_SYNC
					 ? SB_RECOVERY_DONE
					 : atomic_load(&leg->recovery_offset);
		r = superblock_write(leg->dev, &sb);
		wrote++;
		if (r == 0 && leg_state(leg) == LEG_IN_SYNC)
			good++;
		if (r < 0) {
			err = r;
			g_warning("mirror %s: cannot write the superblock of leg %u (%s, %s): %s",
				  m->name, i, leg->name, leg->path, g_strerror(-r));
		}
	}
	g_mutex_unlock(&m->sb_lock);
	return good > 0 || wrote == 0 ? 0 : err;
}

/* Write bitmap blocks to every leg that takes writes. */
static int persist_bitmap(void *opaque, const void *bits, uint64_t first_block, uint64_t count)
{
	struct mirror *m = opaque;
	struct leg *legs[DMIO_MAX_REGIONS];
	int errors[DMIO_MAX_REGIONS];
	unsigned int i, n = 0, good = 0;
	int r, err = -EIO;

	for (i = 0; i < m->num_legs; i++)
		if (m->legs[i].dev != NULL && leg_is_written(&m->legs[i]))
			legs[n++] = &m->legs[i];
	r = mirror_sync_io(m, DMIO_WRITE, DMIO_REQ_FUA, legs, n, (void *)bits,
			   SB_BITMAP_OFFSET + first_block * 4096, count * 4096, errors);
	if (r == 0)
		return 0;
	for (i = 0; i < n; i++) {
		if (errors[i] == 0) {
			good += leg_state(legs[i]) == LEG_IN_SYNC;
			continue;
		}
		err = errors[i];
		mirror_fail_leg_because(m, legs[i], "cannot write the write-intent bitmap");
	}
	return good > 0 ? 0 : err;
}

/* Read and decode every leg's superblock, then decide. */
int metadata_assemble(struct mirror *m, int force_source, GError **error)
{
	const unsigned int configured = m->num_legs;
	struct assemble_input *in = g_new0(struct assemble_input, configured);
	struct assemble_result *res = g_new0(struct assemble_result, 1);
	char **whys = g_new0(char *, m->num_legs);
	void *buf = aligned_alloc(4096, SB_SIZE);
	unsigned int i;
	int r = 0;

	for (i = 0; i < m->num_legs; i++) {
		struct leg *leg = &m->legs[i];

		in[i].name = leg->name;
		in[i].path = leg->path;
		in[i].present = leg->dev != NULL;
		if (!in[i].present)
			continue;
		in[i].dev_bytes = dmio_dev_sectors(leg->dev) << DMIO_SECTOR_SHIFT;
		r = superblock_read_raw(leg->dev, buf);
		if (r < 0) {
			g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_LEG,
				    "leg '%s' (%s): cannot read its superblock: %s", leg->name,
				    leg->path, g_strerror(-r));
			goto out;
		}
		in[i].sb_error = superblock_decode(buf, &in[i].sb, &whys[i]);
		in[i].sb_why = whys[i];
	}
	if (!assemble_decide(in, m->num_legs, force_source, res, error)) {
		r = -EINVAL;
		goto out;
	}

	m->array = res->array;
	m->data_offset = res->array.data_offset;
	m->size = res->array.data_size;
	m->unclean = res->unclean;
	for (i = 0; i < m->num_legs; i++) {
		struct leg *leg = &m->legs[i];
		const struct assemble_leg *a = &res->legs[i];

		if (in[i].present)
			memcpy(leg->uuid, in[i].sb.leg_uuid, 16);
		else
			memcpy(leg->uuid, res->array.roles[i].uuid, 16);
		leg->resync = a->resync;
		switch (a->role) {
		case ASSEMBLE_IN_SYNC:
			atomic_store(&leg->state, LEG_IN_SYNC);
			atomic_store(&leg->recovery_offset, SB_RECOVERY_DONE);
			break;
		case ASSEMBLE_STALE:
			atomic_store(&leg->state, LEG_STALE);
			atomic_store(&leg->recovery_offset,
				     a->resync == RESYNC_FULL ? a->recovery_offset : 0);
			if (in[i].sb.events == res->array.events) {
				/* Not behind: a new array's initial sync, or one a crash cut short.
				 */
				g_message(
				    "leg %u (%s, %s) is being rebuilt: its resync goes on from "
				    "offset %" PRIu64,
				    i, leg->name, leg->path, a->recovery_offset);
				break;
			}
			mirror_event(m, "StaleLegRejected", G_LOG_LEVEL_WARNING, (int)i,
				     "leg %u (%s, %s) is stale (events %" PRIu64
				     ", the array is at %" PRIu64
				     "): it is not read, and is resynced (%s)",
				     i, leg->name, leg->path, in[i].sb.events, res->array.events,
				     a->resync == RESYNC_BITMAP ? "the regions the bitmap recorded"
								: "in full");
			break;
		case ASSEMBLE_MISSING:
			atomic_store(&leg->state, LEG_FAILED);
			break;
		}
	}

	/*
	 * Slots the superblocks name beyond the config's legs: a leg hot-added and not listed in
	 * the config since.  It is missing, as a configured leg that is not there: the mirror runs
	 * degraded until it is added back (into its slot, by its UUID) or removed.
	 */
	for (i = m->num_legs; i < res->array.num_legs && i < SB_MAX_LEGS; i++) {
		if (res->array.roles[i].role == SB_ROLE_EMPTY)
			continue;
		while (m->num_legs < i)
			mirror_empty_slot(m, m->num_legs++, LEG_REMOVED);
		mirror_empty_slot(m, i, LEG_FAILED);
		memcpy(m->legs[i].uuid, res->array.roles[i].uuid, 16);
		m->num_legs = i + 1;
		res->missing++;
		g_warning(
		    "mirror %s: the superblocks name a leg in slot %u that the config does not "
		    "list: it is missing (fusemirrorctl add puts it back, remove forgets it)",
		    m->name, i);
	}

	/* The bits of every in-sync leg: writes go to all of them, a torn write to one. */
	m->bitmap = bitmap_new(m->size, res->array.region_size, persist_bitmap, m);
	if (bitmap_disk_bytes(m->bitmap) > 0) {
		void *bits = aligned_alloc(4096, bitmap_disk_bytes(m->bitmap));

		for (i = 0; i < m->num_legs; i++) {
			struct leg *leg = &m->legs[i];

			if (leg_state(leg) != LEG_IN_SYNC)
				continue;
			r = mirror_sync_io(m, DMIO_READ, 0, &leg, 1, bits, SB_BITMAP_OFFSET,
					   bitmap_disk_bytes(m->bitmap), NULL);
			if (r < 0) {
				g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_LEG,
					    "leg '%s' (%s): cannot read its bitmap: %s", leg->name,
					    leg->path, g_strerror(-r));
				free(bits);
				goto out;
			}
			bitmap_load(m->bitmap, bits, res->array.bitmap_bytes);
		}
		free(bits);
	}
	if (res->missing > 0)
		mirror_event(m, "DegradedArray", G_LOG_LEVEL_WARNING, -1,
			     "mirror %s is assembled degraded: %u of %u legs missing", m->name,
			     res->missing, m->num_legs);
	if (m->unclean)
		g_message("mirror %s was not shut down cleanly: %" PRIu64
			  " dirty regions will be resynced",
			  m->name, bitmap_count(m->bitmap));
	r = 0;
out:
	for (i = 0; i < configured; i++)
		g_free(whys[i]);
	g_free(whys);
	g_free(in);
	g_free(res);
	free(buf);
	return r;
}

static bool all_in_sync(struct mirror *m)
{
	unsigned int i;

	for (i = 0; i < m->num_legs; i++)
		if (leg_state(&m->legs[i]) != LEG_IN_SYNC)
			return false;
	return true;
}

/* Flush every in-sync leg; 0 or -errno. */
static int flush_legs(struct mirror *m)
{
	struct leg *legs[DMIO_MAX_REGIONS];
	unsigned int i, n = 0;

	for (i = 0; i < m->num_legs; i++)
		if (m->legs[i].dev != NULL && leg_is_written(&m->legs[i]))
			legs[n++] = &m->legs[i];
	return mirror_sync_io(m, DMIO_FLUSH, 0, legs, n, NULL, 0, 0, NULL);
}

/*
 * Clear the bits of regions idle for IDLE_US, once every leg has flushed them.  Never while a
 * leg is missing, failed or catching up: the bits are what it will need.
 */
static void clean_idle(struct mirror *m)
{
	gint64 before;
	long cleared;

	if (bitmap_count(m->bitmap) == 0 || !all_in_sync(m) || atomic_load(&m->resync_active))
		return;
	before = g_get_monotonic_time() - IDLE_US;
	if (flush_legs(m) < 0)
		return;
	cleared = bitmap_clear_idle(m->bitmap, before);
	if (cleared > 0) {
		g_mutex_lock(&m->sb_lock);
		m->array.events_cleared = m->array.events;
		g_mutex_unlock(&m->sb_lock);
	}
}

static gpointer cleaner_thread(gpointer data)
{
	struct mirror *m = data;
	gint64 deadline;

	g_mutex_lock(&m->cleaner_lock);
	while (!m->stopping) {
		deadline = g_get_monotonic_time() + CLEAN_INTERVAL_US;
		g_cond_wait_until(&m->cleaner_cond, &m->cleaner_lock, deadline);
		if (m->stopping)
			break;
		/* Under cleaner_lock: fusemirrorctl remove closes a leg only between two looks. */
		clean_idle(m);
	}
	g_mutex_unlock(&m->cleaner_lock);
	return NULL;
}

void metadata_start_cleaner(struct mirror *m)
{
	if (m->metadata != METADATA_INTERNAL)
		return;
	m->cleaner = g_thread_new("fm-bitmap", cleaner_thread, m);
}

/*
 * A clean stop: no write in flight.  With every leg in sync and flushed, every bit can go; the
 * superblocks then say clean, so the next start resyncs nothing.
 */
void metadata_stop(struct mirror *m)
{
	if (m->metadata != METADATA_INTERNAL)
		return;
	if (m->cleaner != NULL) {
		g_mutex_lock(&m->cleaner_lock);
		m->stopping = true;
		g_cond_signal(&m->cleaner_cond);
		g_mutex_unlock(&m->cleaner_lock);
		g_thread_join(m->cleaner);
		m->cleaner = NULL;
	}
	if (!m->assembled)
		return;
	if (flush_legs(m) == 0 && all_in_sync(m) && !atomic_load(&m->resync_active) &&
	    bitmap_clear_idle(m->bitmap, G_MAXINT64) > 0)
		m->array.events_cleared = m->array.events + 1;
	if (metadata_write(m, true, true) < 0)
		g_warning("mirror %s: the clean superblocks could not be written: the next start "
			  "resyncs the dirty regions",
			  m->name);
}
