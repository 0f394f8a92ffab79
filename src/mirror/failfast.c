/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Failfast: the thread that watches the legs' outstanding I/O (md's failfast, DRBD's
 * disk-timeout).
 *
 * Every tick it asks libdmio how long each leg's device has been working on its oldest request
 * (dmio_dev_busy_ns).  A leg past its io-timeout is failed through the one door (leg_fail), and
 * its outstanding I/O is given up on (dmio_dev_abandon, ETIMEDOUT): the requests complete on the
 * other legs, reads go to another leg, and a hung leg keeps only the buffers it was given, until
 * it answers.  The I/O of a leg failed for any other reason (fusemirrorctl fail, an error) is
 * given up on at once (ECANCELED): leg.c kicks the thread.  A leg whose oldest I/O is older than
 * half its io-timeout (FAILFAST_SLOW_NS without one) is shown as slow.  The last in-sync leg is
 * never failed: the mirror waits for it, as it must, and says so once.
 *
 * failfast_lock is held across a scan, so that the device of a slot is not closed under it:
 * leg_detach() takes it too.  It sits between reconfig_lock and the rest in the lock order: the
 * completions that an abandon runs take only what lies below it.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>

#include "mirror/mirror-internal.h"

#define FAILFAST_TICK_US     (100 * G_TIME_SPAN_MILLISECOND)
#define FAILFAST_MIN_TICK_US (10 * G_TIME_SPAN_MILLISECOND)
#define FAILFAST_SLOW_NS     (5ull * 1000000000ull) /* slow, for a leg without io-timeout */

/* The tick: a tenth of the shortest io-timeout, within [10 ms, 100 ms]. */
static gint64 failfast_tick(struct mirror *m)
{
	unsigned int i, slots = atomic_load(&m->num_legs);
	gint64 tick = FAILFAST_TICK_US;

	for (i = 0; i < slots; i++) {
		unsigned int ms = atomic_load(&m->legs[i].io_timeout_ms);

		if (ms > 0)
			tick = MIN(tick, (gint64)ms * G_TIME_SPAN_MILLISECOND / 10);
	}
	return MAX(tick, FAILFAST_MIN_TICK_US);
}

static void failfast_leg(struct mirror *m, struct leg *leg)
{
	struct dmio_dev *dev = leg->dev;
	enum leg_state st = leg_state(leg);
	unsigned int outstanding, timeout_ms = atomic_load(&leg->io_timeout_ms);
	uint64_t busy, slow_ns;
	char *why;
	int r;

	if (dev == NULL)
		return;
	busy = dmio_dev_busy_ns(dev, &outstanding);
	atomic_store(&leg->busy_ns, busy);
	slow_ns = timeout_ms > 0 ? (uint64_t)timeout_ms * 500000ull : FAILFAST_SLOW_NS;
	atomic_store(&leg->slow, busy > slow_ns);

	/* A failed leg answers nobody any more: give up on what it still has. */
	if (st == LEG_FAILED || st == LEG_REMOVED) {
		if (outstanding > 0)
			dmio_dev_abandon(dev, ECANCELED);
		return;
	}
	if (timeout_ms == 0 || busy <= (uint64_t)timeout_ms * 1000000ull) {
		leg->waiting_logged = false;
		return;
	}
	why = g_strdup_printf("I/O timeout: an I/O outstanding for %.1f s (io-timeout %.1f s)",
			      (double)busy / 1e9, timeout_ms / 1000.0);
	/* Why it failed, for the reconnect of a remote leg: it stopped answering. */
	leg_note_io_error(leg, ETIMEDOUT);
	r = leg_fail(m, leg, why, 1ul << leg->index);
	if (r == 0 || r == -EALREADY) {
		dmio_dev_abandon(dev, ETIMEDOUT);
	} else if (r == -EBUSY && !leg->waiting_logged) {
		/* The mirror itself: failing it would fail every request. */
		leg->waiting_logged = true;
		mirror_event(m, "LegSlow", G_LOG_LEVEL_WARNING, (int)leg->index,
			     "leg %u (%s): %s; it is the last in-sync leg, so the mirror waits "
			     "for it",
			     leg->index, leg->name, why);
	}
	g_free(why);
}

static gpointer failfast_main(gpointer data)
{
	struct mirror *m = data;

	g_mutex_lock(&m->failfast_wait_lock);
	while (!m->failfast_stopping) {
		unsigned int i, slots;

		m->failfast_kicked = false;
		g_mutex_unlock(&m->failfast_wait_lock);

		g_mutex_lock(&m->failfast_lock);
		slots = atomic_load(&m->num_legs);
		for (i = 0; i < slots; i++)
			failfast_leg(m, &m->legs[i]);
		g_mutex_unlock(&m->failfast_lock);

		g_mutex_lock(&m->failfast_wait_lock);
		if (!m->failfast_kicked && !m->failfast_stopping)
			g_cond_wait_until(&m->failfast_cond, &m->failfast_wait_lock,
					  g_get_monotonic_time() + failfast_tick(m));
	}
	g_mutex_unlock(&m->failfast_wait_lock);
	return NULL;
}

void failfast_init(struct mirror *m)
{
	g_mutex_init(&m->failfast_lock);
	g_mutex_init(&m->failfast_wait_lock);
	g_cond_init(&m->failfast_cond);
}

void failfast_clear(struct mirror *m)
{
	g_cond_clear(&m->failfast_cond);
	g_mutex_clear(&m->failfast_wait_lock);
	g_mutex_clear(&m->failfast_lock);
}

void failfast_start(struct mirror *m)
{
	m->failfast_stopping = false;
	m->failfast = g_thread_new("failfast", failfast_main, m);
}

void failfast_stop(struct mirror *m)
{
	if (m->failfast == NULL)
		return;
	g_mutex_lock(&m->failfast_wait_lock);
	m->failfast_stopping = true;
	g_cond_signal(&m->failfast_cond);
	g_mutex_unlock(&m->failfast_wait_lock);
	g_thread_join(m->failfast);
	m->failfast = NULL;
}

void failfast_kick(struct mirror *m)
{
	g_mutex_lock(&m->failfast_wait_lock);
	m->failfast_kicked = true;
	g_cond_signal(&m->failfast_cond);
	g_mutex_unlock(&m->failfast_wait_lock);
}

void failfast_lock_slots(struct mirror *m)
{
	g_mutex_lock(&m->failfast_lock);
}

void failfast_unlock_slots(struct mirror *m)
{
	g_mutex_unlock(&m->failfast_lock);
}
