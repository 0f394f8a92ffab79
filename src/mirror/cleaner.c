/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The bitmap cleaner: a thread that clears the bits of regions idle for IDLE_US, once every
 * leg has flushed them (md's lazy bitmap clearing).  Never while a member is missing, failed or
 * catching up: the bits are what it will need.
 */
#include "config.h"

#include "mirror/mirror-internal.h"

#define CLEAN_INTERVAL_US (1 * G_USEC_PER_SEC) /* how often the cleaner looks */
#define IDLE_US		  (5 * G_USEC_PER_SEC) /* a region idle this long gets its bit cleared */

long cleaner_clean(struct mirror *m, bool all)
{
	gint64 before;
	long cleared = 0;

	if (m->bitmap == NULL || bitmap_count(m->bitmap) == 0)
		return 0;
	/* Counted as a request: a freezer (hot add, remove) never closes a leg under us. */
	io_begin(m);
	if (mirror_all_in_sync(m) && !atomic_load(&m->resync_active)) {
		/* The time before the flush: a write that ended after it may not be flushed. */
		before = all ? G_MAXINT64 : g_get_monotonic_time() - IDLE_US;
		if (metadata_flush_legs(m) == 0)
			cleared = bitmap_clear_idle(m->bitmap, before);
	}
	io_end(m);
	return cleared;
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
		g_mutex_unlock(&m->cleaner_lock);
		if (cleaner_clean(m, false) > 0)
			metadata_bits_cleared(m, false);
		g_mutex_lock(&m->cleaner_lock);
	}
	g_mutex_unlock(&m->cleaner_lock);
	return NULL;
}

void cleaner_start(struct mirror *m)
{
	if (m->metadata != METADATA_INTERNAL || m->bitmap == NULL)
		return;
	m->cleaner = g_thread_new("fm-bitmap", cleaner_thread, m);
}

void cleaner_stop(struct mirror *m)
{
	if (m->cleaner == NULL)
		return;
	g_mutex_lock(&m->cleaner_lock);
	m->stopping = true;
	g_cond_signal(&m->cleaner_cond);
	g_mutex_unlock(&m->cleaner_lock);
	g_thread_join(m->cleaner);
	m->cleaner = NULL;
}
