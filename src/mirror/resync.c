/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Online resync: a background thread copies regions from an in-sync source leg onto the legs
 * that need them, while the mirror serves I/O:
 *
 *   - stale legs (missed writes): the regions the bitmap recorded, or everything from their
 *     recovery offset on; they take every write meanwhile and are never read until done;
 *   - after an unclean shutdown, the other in-sync legs: the dirty regions only; until a dirty
 *     region is copied, reads of it come from the source.
 *
 * A region being copied is locked against writes (they wait for that region only); the copy
 * waits for the writes already in it.  Rate limited between resync-rate-min (always granted)
 * and resync-rate-max (when the mirror is otherwise idle); progress in xattrs and events.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "mirror/mirror-internal.h"

#define COPY_CHUNK	 (1u << 20)	      /* bytes per read/write inside a region */
#define SAVE_RECOVERY_US (1 * G_USEC_PER_SEC) /* how often recovery offsets are persisted */

static uint64_t region_of(const struct mirror *m, uint64_t offset)
{
	return offset / bitmap_region_size(m->bitmap);
}

/* ---- Region locks -------------------------------------------------------------------------- */

bool resync_write_enter(struct mirror *m, uint64_t offset, uint64_t len)
{
	uint64_t first, last, r;

	if (!atomic_load(&m->resync_active) || m->bitmap == NULL)
		return false;
	first = region_of(m, offset);
	last = region_of(m, offset + MAX(len, 1) - 1);
	g_mutex_lock(&m->region_lock);
	while (m->region_busy >= first && m->region_busy <= last)
		g_cond_wait(&m->region_cond, &m->region_lock);
	for (r = first; r <= last; r++) {
		gpointer key = GSIZE_TO_POINTER(r + 1);

		g_hash_table_insert(
		    m->region_writers, key,
		    GSIZE_TO_POINTER(GPOINTER_TO_SIZE(g_hash_table_lookup(m->region_writers, key)) +
				     1));
	}
	g_mutex_unlock(&m->region_lock);
	return true;
}

void resync_write_exit(struct mirror *m, uint64_t offset, uint64_t len)
{
	uint64_t first = region_of(m, offset), last = region_of(m, offset + MAX(len, 1) - 1), r;

	g_mutex_lock(&m->region_lock);
	for (r = first; r <= last; r++) {
		gpointer key = GSIZE_TO_POINTER(r + 1);
		gsize n = GPOINTER_TO_SIZE(g_hash_table_lookup(m->region_writers, key));

		if (n <= 1)
			g_hash_table_remove(m->region_writers, key);
		else
			g_hash_table_insert(m->region_writers, key, GSIZE_TO_POINTER(n - 1));
	}
	g_cond_broadcast(&m->region_cond);
	g_mutex_unlock(&m->region_lock);
}

/* Lock a region for copying: no new write enters it, the ones in it finish. */
static void region_lock(struct mirror *m, uint64_t region)
{
	g_mutex_lock(&m->region_lock);
	m->region_busy = region;
	while (g_hash_table_lookup(m->region_writers, GSIZE_TO_POINTER(region + 1)) != NULL)
		g_cond_wait(&m->region_cond, &m->region_lock);
	g_mutex_unlock(&m->region_lock);
}

static void region_unlock(struct mirror *m)
{
	g_mutex_lock(&m->region_lock);
	m->region_busy = UINT64_MAX;
	g_cond_broadcast(&m->region_cond);
	g_mutex_unlock(&m->region_lock);
}

bool resync_read_needs_source(struct mirror *m, uint64_t offset, uint64_t len)
{
	uint64_t first, last, r, cursor;

	if (!atomic_load(&m->resync_active) || !m->unclean)
		return false;
	first = region_of(m, offset);
	last = region_of(m, offset + MAX(len, 1) - 1);
	cursor = atomic_load(&m->resync_cursor);
	for (r = MAX(first, cursor); r <= last; r++)
		if (bitmap_test(m->bitmap, r))
			return true;
	return false;
}

/* ---- The copy ------------------------------------------------------------------------------ */

/* Whether leg needs region r copied onto it. */
static bool leg_needs(struct mirror *m, struct leg *leg, unsigned int source, uint64_t r)
{
	enum leg_state st = leg_state(leg);
	uint64_t end = (r + 1) * bitmap_region_size(m->bitmap);

	if (leg->index == source || leg->dev == NULL)
		return false;
	if (st == LEG_STALE || st == LEG_RESYNCING) {
		if (leg->resync == RESYNC_BITMAP)
			return bitmap_test(m->bitmap, r);
		/* Below the recovery offset a crash may still have left a dirty region. */
		return end > atomic_load(&leg->recovery_offset) ||
		       (m->unclean && bitmap_test(m->bitmap, r));
	}
	/* After a crash the in-sync legs may differ where writes were in flight. */
	return st == LEG_IN_SYNC && m->unclean && bitmap_test(m->bitmap, r);
}

/* The leg to copy from: the first in-sync one, write-mostly last. */
static int pick_source(struct mirror *m)
{
	unsigned int i, pass;

	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < m->num_legs; i++)
			if (leg_state(&m->legs[i]) == LEG_IN_SYNC &&
			    m->legs[i].write_mostly == (pass == 1))
				return (int)i;
	return -1;
}

static uint64_t count_work(struct mirror *m, unsigned int source)
{
	uint64_t r, regions = bitmap_regions(m->bitmap), rs = bitmap_region_size(m->bitmap);
	uint64_t total = 0;
	unsigned int i;

	for (r = 0; r < regions; r++) {
		for (i = 0; i < m->num_legs; i++) {
			if (leg_needs(m, &m->legs[i], source, r)) {
				total += MIN(rs, m->size - r * rs);
				break;
			}
		}
	}
	return total;
}

/* Copy one region from the source onto targets.  0, or -errno when the source failed. */
static int copy_region(struct mirror *m, struct leg *source, struct leg **targets, unsigned int n,
		       uint64_t r, char *buf)
{
	uint64_t rs = bitmap_region_size(m->bitmap), start = r * rs;
	uint64_t end = MIN(start + rs, m->size), pos;
	int errors[DMIO_MAX_REGIONS];
	unsigned int i;
	int err;

	for (pos = start; pos < end; pos += COPY_CHUNK) {
		uint64_t len = MIN((uint64_t)COPY_CHUNK, end - pos);

		err = mirror_sync_io(m, DMIO_READ, 0, &source, 1, buf, m->data_offset + pos, len,
				     NULL);
		if (err < 0) {
			mirror_fail_leg_because(m, source,
						"read error while it was the resync source");
			return err;
		}
		if (mirror_sync_io(m, DMIO_WRITE, 0, targets, n, buf, m->data_offset + pos, len,
				   errors) < 0) {
			for (i = 0; i < n; i++)
				if (errors[i] < 0 && leg_state(targets[i]) != LEG_FAILED)
					mirror_fail_leg_because(m, targets[i],
								"write error while being resynced");
		}
	}
	return 0;
}

/* Sleep so that the copy stays under the allowed rate. */
static void throttle(struct mirror *m, gint64 started, uint64_t copied)
{
	/* Foreground I/O in flight: only the minimum rate is due to the resync. */
	uint64_t rate = atomic_load(&m->inflight) > 0 ? atomic_load(&m->resync_rate_min)
						      : atomic_load(&m->resync_rate_max);
	gint64 elapsed = g_get_monotonic_time() - started;
	gint64 due;

	if (elapsed > 0)
		atomic_store(&m->resync_rate, copied * G_USEC_PER_SEC / (uint64_t)elapsed);
	if (rate == 0)
		return;
	due = (gint64)(copied * G_USEC_PER_SEC / rate);
	if (due > elapsed && !atomic_load(&m->resync_stop))
		g_usleep((gulong)MIN(due - elapsed, G_USEC_PER_SEC));
}

static void save_recovery(struct mirror *m, bool force)
{
	gint64 now = g_get_monotonic_time();
	unsigned int i;
	bool due = force;

	for (i = 0; i < m->num_legs; i++)
		if (leg_state(&m->legs[i]) == LEG_RESYNCING &&
		    now - m->legs[i].recovery_saved >= SAVE_RECOVERY_US)
			due = true;
	if (!due)
		return;
	for (i = 0; i < m->num_legs; i++)
		m->legs[i].recovery_saved = now;
	metadata_write(m, false, false);
}

static gpointer resync_thread(gpointer data)
{
	struct mirror *m = data;
	uint64_t regions = bitmap_regions(m->bitmap), rs = bitmap_region_size(m->bitmap);
	uint64_t r, total, copied = 0;
	char *buf = aligned_alloc(4096, COPY_CHUNK);
	gint64 started = g_get_monotonic_time();
	unsigned int i, percent = 0;
	int source = pick_source(m);
	bool finished = false;

	if (source < 0)
		goto out;
	atomic_store(&m->resync_source, source);
	total = count_work(m, (unsigned int)source);
	atomic_store(&m->resync_total, total);
	atomic_store(&m->resync_done, 0);
	for (i = 0; i < m->num_legs; i++)
		if (leg_state(&m->legs[i]) == LEG_STALE)
			atomic_store(&m->legs[i].state, LEG_RESYNCING);
	mirror_event(m, "ResyncStarted", G_LOG_LEVEL_MESSAGE, -1,
		     "mirror %s: resync of %" PRIu64 " bytes from leg %d (%s) started%s", m->name,
		     total, source, m->legs[source].name,
		     m->full_requested ? " (every region, on request)"
		     : m->unclean      ? " after an unclean shutdown"
				       : "");
	m->full_requested = false;

	for (r = 0; r < regions && !atomic_load(&m->resync_stop); r++) {
		struct leg *targets[DMIO_MAX_REGIONS];
		unsigned int n = 0;

		for (i = 0; i < m->num_legs; i++)
			if (leg_needs(m, &m->legs[i], (unsigned int)source, r))
				targets[n++] = &m->legs[i];
		if (n > 0) {
			region_lock(m, r);
			if (copy_region(m, &m->legs[source], targets, n, r, buf) < 0) {
				region_unlock(m);
				source = pick_source(m);
				if (source < 0)
					goto out;
				atomic_store(&m->resync_source, source);
				r--; /* again, from the new source */
				continue;
			}
			copied += MIN(rs, m->size - r * rs);
			atomic_store(&m->resync_done, copied);
		}
		for (i = 0; i < m->num_legs; i++)
			if (leg_state(&m->legs[i]) == LEG_RESYNCING &&
			    m->legs[i].resync == RESYNC_FULL)
				if (MIN((r + 1) * rs, m->size) >
				    atomic_load(&m->legs[i].recovery_offset))
					atomic_store(&m->legs[i].recovery_offset,
						     MIN((r + 1) * rs, m->size));
		atomic_store(&m->resync_cursor, r + 1);
		if (n > 0) {
			region_unlock(m);
			throttle(m, started, copied);
			save_recovery(m, false);
		}
		/* One event per 10% step reached (a big region may cross several at once). */
		if (total > 0 && copied < total && copied * 10 / total * 10 > percent) {
			percent = (unsigned int)(copied * 10 / total * 10);
			mirror_event(m, "ResyncProgress", G_LOG_LEVEL_INFO, -1,
				     "mirror %s: resync %u%% (%" PRIu64 " of %" PRIu64 " bytes)",
				     m->name, percent, copied, total);
		}
	}
	finished = !atomic_load(&m->resync_stop);
out:
	free(buf);
	if (finished) {
		g_mutex_lock(&m->lock);
		for (i = 0; i < m->num_legs; i++) {
			if (leg_state(&m->legs[i]) == LEG_RESYNCING) {
				atomic_store(&m->legs[i].state, LEG_IN_SYNC);
				atomic_store(&m->legs[i].recovery_offset, SB_RECOVERY_DONE);
			}
		}
		m->unclean = false;
		g_mutex_unlock(&m->lock);
		atomic_store(&m->resync_active, false);
		metadata_write(m, true, false);
		mirror_event(m, "ResyncFinished", G_LOG_LEVEL_MESSAGE, -1,
			     "mirror %s: resync finished: %" PRIu64 " bytes in %.1f s; %s", m->name,
			     copied, (double)(g_get_monotonic_time() - started) / G_USEC_PER_SEC,
			     mirror_state_name(mirror_state(m)));
	} else {
		/* Stopped or no source left: keep what was done for the next start. */
		save_recovery(m, true);
		if (source < 0)
			mirror_event(m, "ResyncAborted", G_LOG_LEVEL_WARNING, -1,
				     "mirror %s: resync stopped: no in-sync leg left to copy from",
				     m->name);
	}
	atomic_store(&m->resync_running, false);
	return NULL;
}

void resync_start(struct mirror *m)
{
	unsigned int i;
	bool needed = m->unclean && bitmap_count(m->bitmap) > 0;

	if (m->metadata != METADATA_INTERNAL || m->bitmap == NULL)
		return;
	for (i = 0; i < m->num_legs; i++)
		needed |=
		    leg_state(&m->legs[i]) == LEG_STALE || leg_state(&m->legs[i]) == LEG_RESYNCING;
	if (!needed) {
		m->unclean = false;
		return;
	}
	atomic_store(&m->resync_cursor, 0);
	atomic_store(&m->resync_stop, false);
	atomic_store(&m->resync_active, true);
	atomic_store(&m->resync_running, true);
	m->resync_thread = g_thread_new("fm-resync", resync_thread, m);
}

void resync_stop(struct mirror *m)
{
	if (m->resync_thread == NULL)
		return;
	atomic_store(&m->resync_stop, true);
	g_thread_join(m->resync_thread);
	m->resync_thread = NULL;
}
