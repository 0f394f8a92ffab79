/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Freezing: no request enters while the mirror is frozen (io_begin waits), and the freezer waits
 * for the ones in flight, so that a change of the set of legs (hot add, remove) sees no request
 * half issued and may close a device.  The data path pays one atomic add and one atomic load.
 */
#include "config.h"

#include "mirror/mirror-internal.h"

void io_begin(struct mirror *m)
{
	for (;;) {
		atomic_fetch_add(&m->inflight, 1);
		if (G_LIKELY(atomic_load(&m->frozen) == 0))
			return;
		/* Frozen: step back out (waking the freezer if it waits for us) until the thaw. */
		io_end(m);
		g_mutex_lock(&m->freeze_lock);
		while (atomic_load(&m->frozen) != 0)
			g_cond_wait(&m->freeze_cond, &m->freeze_lock);
		g_mutex_unlock(&m->freeze_lock);
	}
}

void io_end(struct mirror *m)
{
	/*
	 * The freezer stores frozen, then loads inflight; we decrement inflight, then load
	 * frozen: with sequentially consistent atomics one of us sees the other, and the wake-up
	 * under freeze_lock cannot fall between the freezer's look and its wait.
	 */
	if (atomic_fetch_sub(&m->inflight, 1) == 1 && atomic_load(&m->frozen) != 0) {
		g_mutex_lock(&m->freeze_lock);
		g_cond_broadcast(&m->freeze_cond);
		g_mutex_unlock(&m->freeze_lock);
	}
}

void mirror_freeze(struct mirror *m)
{
	g_mutex_lock(&m->freeze_lock);
	/* Freezers are serialised by reconfig_lock; close may drain meanwhile. */
	g_assert(atomic_load(&m->frozen) == 0);
	atomic_store(&m->frozen, 1);
	while (atomic_load(&m->inflight) > 0)
		g_cond_wait(&m->freeze_cond, &m->freeze_lock);
	g_mutex_unlock(&m->freeze_lock);
}

void mirror_thaw(struct mirror *m)
{
	g_mutex_lock(&m->freeze_lock);
	atomic_store(&m->frozen, 0);
	g_cond_broadcast(&m->freeze_cond);
	g_mutex_unlock(&m->freeze_lock);
}

void mirror_drain(struct mirror *m)
{
	mirror_freeze(m);
	mirror_thaw(m);
}
