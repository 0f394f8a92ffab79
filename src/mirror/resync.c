/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Online resync: a background thread copies regions from an in-sync source leg onto the legs
 * that need them, while the mirror serves I/O:
 *
 *   - stale legs (missed writes) and spares (new legs): the regions the bitmap recorded, or
 *     everything from their recovery offset on; they become resyncing when the copy starts,
 *     take every write from then on and are never read until done;
 *   - after an unclean shutdown, the other in-sync legs: the dirty regions only; until a dirty
 *     region is copied, reads of it come from the source.
 *
 * Each chunk is copied holding its range (rangelock.h), so a write to it waits for the copy and
 * the copy for the writes before it.  In md's order, the copied data is flushed on the targets
 * before their recovery offset advances or they become in sync, and both are committed to the
 * superblocks.  Rate limited between resync-rate-min (always granted) and resync-rate-max (when
 * the mirror is otherwise idle); progress in xattrs and events.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "mirror/mirror-internal.h"

#define COPY_CHUNK	 (1u << 20)	      /* bytes per read/write inside a region */
#define SAVE_RECOVERY_US (1 * G_USEC_PER_SEC) /* how often recovery offsets are committed */

static uint64_t region_of(const struct mirror *m, uint64_t offset)
{
	return offset / bitmap_region_size(m->bitmap);
}

enum leg_resync_role resync_leg_role(struct mirror *m, const struct leg *leg)
{
	enum leg_state st = leg_state(leg);

	if (!atomic_load(&m->resync_active) || leg->dev == NULL)
		return LEG_RESYNC_NONE;
	if ((int)leg->index == atomic_load(&m->resync_source))
		return LEG_RESYNC_SOURCE;
	if (st == LEG_RESYNCING || st == LEG_STALE || st == LEG_SPARE)
		return leg->resync == RESYNC_BITMAP ? LEG_RESYNC_BITMAP : LEG_RESYNC_FULL;
	/* leg_needs(): after a crash, or on request, the other in-sync legs are written too. */
	if (st == LEG_IN_SYNC && atomic_load(&m->unclean))
		return atomic_load(&m->rewriting) ? LEG_RESYNC_REWRITE : LEG_RESYNC_DIRTY;
	return LEG_RESYNC_NONE;
}

bool resync_read_needs_source(struct mirror *m, uint64_t offset, uint64_t len)
{
	uint64_t first, last, r, cursor;

	if (!atomic_load(&m->resync_active) || !atomic_load(&m->unclean))
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

/* Where each leg's copy has got to, not yet flushed nor published as its recovery offset. */
struct progress {
	uint64_t copied[SB_MAX_LEGS];
	gint64 saved; /* when the recovery offsets were last committed */
};

/* Whether leg needs region r copied onto it. */
static bool leg_needs(struct mirror *m, struct leg *leg, unsigned int source, uint64_t r)
{
	enum leg_state st = leg_state(leg);
	uint64_t end = (r + 1) * bitmap_region_size(m->bitmap);
	bool unclean = atomic_load(&m->unclean);

	if (leg->index == source || leg->dev == NULL)
		return false;
	if (st == LEG_RESYNCING) {
		if (leg->resync == RESYNC_BITMAP)
			return bitmap_test(m->bitmap, r);
		/* Below the recovery offset a crash may still have left a dirty region. */
		return end > atomic_load(&leg->recovery_offset) ||
		       (unclean && bitmap_test(m->bitmap, r));
	}
	/* After a crash the in-sync legs may differ where writes were in flight. */
	return st == LEG_IN_SYNC && unclean && bitmap_test(m->bitmap, r);
}

/* The leg to copy from: the first in-sync one, write-mostly last. */
static int pick_source(struct mirror *m)
{
	unsigned int i, pass, slots = atomic_load(&m->num_legs);

	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < slots; i++)
			if (leg_state(&m->legs[i]) == LEG_IN_SYNC &&
			    m->legs[i].write_mostly == (pass == 1))
				return (int)i;
	return -1;
}

static uint64_t count_work(struct mirror *m, unsigned int source)
{
	uint64_t r, regions = bitmap_regions(m->bitmap), rs = bitmap_region_size(m->bitmap);
	uint64_t total = 0;
	unsigned int i, slots = atomic_load(&m->num_legs);

	for (r = 0; r < regions; r++) {
		for (i = 0; i < slots; i++) {
			if (leg_needs(m, &m->legs[i], source, r)) {
				total += MIN(rs, m->size - r * rs);
				break;
			}
		}
	}
	return total;
}

/*
 * Copy one region from the source onto targets, one chunk at a time, each under its range.
 * 0, or -errno when the source failed (the region must be copied again from another one).
 */
static int copy_region(struct mirror *m, struct leg *source, struct leg **targets, unsigned int n,
		       uint64_t r, char *buf)
{
	uint64_t rs = bitmap_region_size(m->bitmap), start = r * rs;
	uint64_t end = MIN(start + rs, m->size), pos;
	int errors[DMIO_MAX_REGIONS];
	struct rangelock_hold hold;
	unsigned int i;
	int err = 0;

	for (pos = start; pos < end && err == 0; pos += COPY_CHUNK) {
		uint64_t len = MIN((uint64_t)COPY_CHUNK, end - pos);

		rangelock_acquire(m->ranges, &hold, pos, len);
		err = mirror_sync_io(m, DMIO_READ, 0, &source, 1, buf, m->data_offset + pos, len,
				     NULL);
		if (err < 0) {
			char *why = g_strdup_printf(
			    "resync read error at data offset %" PRIu64 " (leg offset %" PRIu64
			    ") length %" PRIu64 " while it was the resync source: %s",
			    pos, m->data_offset + pos, len, g_strerror(-err));

			leg_log_io_error(m, source, "resync read", pos, m->data_offset + pos, len,
					 -err, 1ul << source->index);
			leg_fail(m, source, why, 1ul << source->index);
			g_free(why);
		} else if (mirror_sync_io(m, DMIO_WRITE, 0, targets, n, buf, m->data_offset + pos,
					  len, errors) < 0) {
			unsigned long bits = 0;

			for (i = 0; i < n; i++)
				if (errors[i] != 0)
					bits |= 1ul << targets[i]->index;
			for (i = 0; i < n; i++) {
				char *why;

				if (errors[i] == 0)
					continue;
				leg_log_io_error(m, targets[i], "resync write", pos,
						 m->data_offset + pos, len, -errors[i], bits);
				why = g_strdup_printf("resync write error at data offset %" PRIu64
						      " (leg offset %" PRIu64 ") length %" PRIu64
						      " while being resynced: %s",
						      pos, m->data_offset + pos, len,
						      g_strerror(-errors[i]));
				leg_fail(m, targets[i], why, bits);
				g_free(why);
			}
		}
		rangelock_release(m->ranges, &hold);
	}
	return err;
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

/* The resyncing legs with a device, into legs[]; their number. */
static unsigned int resyncing_legs(struct mirror *m, struct leg **legs)
{
	unsigned int i, n = 0, slots = atomic_load(&m->num_legs);

	for (i = 0; i < slots; i++)
		if (leg_state(&m->legs[i]) == LEG_RESYNCING && m->legs[i].dev != NULL)
			legs[n++] = &m->legs[i];
	return n;
}

/*
 * Make what was copied durable and say so: flush the resyncing legs, then publish how far each
 * got as its recovery offset and commit it (when forced, or once a second).
 */
static void save_progress(struct mirror *m, struct progress *p, bool force)
{
	struct leg *legs[DMIO_MAX_REGIONS];
	gint64 now = g_get_monotonic_time();
	unsigned int i, n;
	bool advanced = false;

	if (!force && now - p->saved < SAVE_RECOVERY_US)
		return;
	p->saved = now;
	n = resyncing_legs(m, legs);
	for (i = 0; i < n; i++)
		advanced |= legs[i]->resync == RESYNC_FULL &&
			    p->copied[legs[i]->index] > atomic_load(&legs[i]->recovery_offset);
	if (!advanced)
		return;
	/* A leg whose flush fails is not flushed: it fails at the commit's own flush. */
	mirror_sync_io(m, DMIO_FLUSH, 0, legs, n, NULL, 0, 0, NULL);
	for (i = 0; i < n; i++)
		if (legs[i]->resync == RESYNC_FULL &&
		    p->copied[legs[i]->index] > atomic_load(&legs[i]->recovery_offset))
			atomic_store(&legs[i]->recovery_offset, p->copied[legs[i]->index]);
	metadata_commit(m, mirror_state_changed(m, false, false));
}

/*
 * The copy is done: flush the resyncing legs, make them in sync (those that did not fail
 * meanwhile) and commit.
 */
static void finish(struct mirror *m)
{
	struct leg *legs[DMIO_MAX_REGIONS];
	int errors[DMIO_MAX_REGIONS];
	unsigned int i, n = resyncing_legs(m, legs);

	if (n > 0)
		mirror_sync_io(m, DMIO_FLUSH, 0, legs, n, NULL, 0, 0, errors);
	for (i = 0; i < n; i++) {
		if (errors[i] < 0) {
			char *why =
			    g_strdup_printf("cannot flush the data it was resynced with: %s",
					    g_strerror(-errors[i]));

			leg_log_io_error(m, legs[i], "resync flush", LEG_IO_METADATA, 0, 0,
					 -errors[i], 1ul << legs[i]->index);

			leg_fail(m, legs[i], why, 1ul << legs[i]->index);
			g_free(why);
			continue;
		}
		atomic_store(&legs[i]->recovery_offset, SB_RECOVERY_DONE);
		/* -EAGAIN: it failed since the flush; it stays failed. */
		leg_set_state(m, legs[i], LEG_RESYNCING, LEG_IN_SYNC);
	}
	atomic_store(&m->unclean, false);
	atomic_store(&m->rewriting, false);
	metadata_sync(m);
	/* Only now does the mirror read as no longer resyncing: its legs say so on disk too. */
	atomic_store(&m->resync_active, false);
}

static gpointer resync_thread(gpointer data)
{
	struct mirror *m = data;
	uint64_t regions = bitmap_regions(m->bitmap), rs = bitmap_region_size(m->bitmap);
	uint64_t r, total, copied = 0;
	char *buf = aligned_alloc(4096, COPY_CHUNK);
	struct progress *p = g_new0(struct progress, 1);
	gint64 started = g_get_monotonic_time();
	unsigned int i, percent = 0, slots = atomic_load(&m->num_legs);
	int source = atomic_load(&m->resync_source);
	bool finished = false;
	int err;

	if (source < 0)
		goto out;
	for (i = 0; i < slots; i++)
		p->copied[i] = atomic_load(&m->legs[i].recovery_offset);
	/* The legs just made resyncing get the whole bitmap: from now on they take its writes. */
	err = bitmap_flush(m->bitmap);
	if (err < 0)
		g_warning("mirror %s: the write-intent bitmap could not be written before the "
			  "resync: %s",
			  m->name, g_strerror(-err));
	total = atomic_load(&m->resync_total);
	mirror_event(m, "ResyncStarted", G_LOG_LEVEL_MESSAGE, -1,
		     "mirror %s: resync of %" PRIu64 " bytes from leg %d (%s) started%s", m->name,
		     total, source, m->legs[source].name,
		     atomic_exchange(&m->full_requested, false) ? " (every region, on request)"
		     : atomic_load(&m->unclean)			? " after an unclean shutdown"
								: "");

	for (r = 0; r < regions && !atomic_load(&m->resync_stop); r++) {
		struct leg *targets[DMIO_MAX_REGIONS];
		unsigned int n = 0;

		for (i = 0; i < slots; i++)
			if (leg_needs(m, &m->legs[i], (unsigned int)source, r))
				targets[n++] = &m->legs[i];
		if (n > 0) {
			if (copy_region(m, &m->legs[source], targets, n, r, buf) < 0) {
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
		for (i = 0; i < slots; i++)
			p->copied[i] = MAX(p->copied[i], MIN((r + 1) * rs, m->size));
		atomic_store(&m->resync_cursor, r + 1);
		if (n > 0) {
			throttle(m, started, copied);
			save_progress(m, p, false);
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
		finish(m);
		mirror_event(m, "ResyncFinished", G_LOG_LEVEL_MESSAGE, -1,
			     "mirror %s: resync finished: %" PRIu64 " bytes in %.1f s; %s", m->name,
			     copied, (double)(g_get_monotonic_time() - started) / G_USEC_PER_SEC,
			     mirror_state_name(mirror_state(m)));
	} else {
		/* Stopped or no source left: keep what was done for the next start. */
		save_progress(m, p, true);
		if (source < 0)
			mirror_event(m, "ResyncAborted", G_LOG_LEVEL_WARNING, -1,
				     "mirror %s: resync stopped: no in-sync leg left to copy from",
				     m->name);
	}
	g_free(p);
	atomic_store(&m->resync_running, false);
	return NULL;
}

/*
 * Before the thread starts, so that the status is true from the command's return on: the source,
 * the legs that catch up made resyncing (written from now on, never read until done), and the
 * bytes to copy.
 */
static void prepare(struct mirror *m)
{
	unsigned int i, slots = atomic_load(&m->num_legs);
	int source = pick_source(m);

	atomic_store(&m->resync_source, source);
	atomic_store(&m->resync_done, 0);
	atomic_store(&m->resync_rate, 0);
	if (source < 0) {
		atomic_store(&m->resync_total, 0);
		return;
	}
	for (i = 0; i < slots; i++) {
		struct leg *leg = &m->legs[i];

		/* -EAGAIN: it failed meanwhile, and stays failed. */
		if (leg_state(leg) == LEG_STALE)
			leg_set_state(m, leg, LEG_STALE, LEG_RESYNCING);
		else if (leg_state(leg) == LEG_SPARE)
			leg_set_state(m, leg, LEG_SPARE, LEG_RESYNCING);
	}
	atomic_store(&m->resync_total, count_work(m, (unsigned int)source));
}

void resync_start(struct mirror *m)
{
	unsigned int i, slots = atomic_load(&m->num_legs);
	bool needed = atomic_load(&m->unclean) && bitmap_count(m->bitmap) > 0;

	if (m->metadata != METADATA_INTERNAL || m->bitmap == NULL || m->resync_thread != NULL)
		return;
	for (i = 0; i < slots; i++) {
		enum leg_state st = leg_state(&m->legs[i]);

		needed |= m->legs[i].dev != NULL &&
			  (st == LEG_STALE || st == LEG_RESYNCING || st == LEG_SPARE);
	}
	if (!needed) {
		atomic_store(&m->unclean, false);
		/*
		 * A resync stopped mid-way (resync_stop keeps the mirror reading resyncing, so that
		 * reads of dirty regions still go to the source until it restarts) that has nothing
		 * left to do: a leg removed while it was copied.
		 */
		atomic_store(&m->resync_active, false);
		return;
	}
	atomic_store(&m->resync_cursor, 0);
	atomic_store(&m->resync_stop, false);
	atomic_store(&m->resync_active, true);
	atomic_store(&m->resync_running, true);
	prepare(m);
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
