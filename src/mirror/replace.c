/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Replace (md's --replace): a new leg is hot added and catches up while the leg it replaces keeps
 * serving, in sync, taking reads and writes; only once the new leg is in sync is the old one
 * removed.  So the mirror never has fewer in-sync legs than when the replace began.
 *
 * The control command (mirror_replace_leg) checks, does the hot add and starts a thread, and
 * returns at once: the FUSE setxattr that carries it holds the kernel's inode lock, which must
 * not wait for a resync.  The thread waits, without reconfig_lock, for the new leg to be in
 * sync, then takes reconfig_lock, checks again and removes the old leg; it ends the replace with
 * LegReplaced, or with ReplaceAborted (never removing the old leg) when the old or the new leg
 * fails or goes, or the mirror closes.  One replace at a time; mirror_close stops and joins it.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "mirror/mirror-internal.h"

#define POLL_US (50 * 1000) /* how often the thread looks at the legs' states */

struct replace {
	GMutex lock; /* a leaf: protects stop and thread */
	GCond cond;  /* signalled when stop is set */
	bool stop;
	GThread *thread;     /* started under reconfig_lock; joined by replace_stop (close) or,
			      * once finished, by the next replace */
	atomic_bool running; /* the thread has not finished (status, the one-at-a-time rule) */
	atomic_int leg;	     /* the leg being replaced, -1 when none runs (status) */
	atomic_int by;	     /* the leg replacing it, -1 when none runs (status) */
	/* Set before the thread starts, constant while it runs. */
	uint8_t leg_uuid[16], by_uuid[16]; /* who the two legs are: a slot may change hands */
	unsigned int in_sync;		   /* in-sync legs when the replace began */
	char *leg_name, *leg_path, *by_name, *by_path; /* paths as shown (leg->shown) */
	mirror_replace_done_fn done;
	void *opaque;
};

void replace_init(struct mirror *m)
{
	m->replace = g_new0(struct replace, 1);
	g_mutex_init(&m->replace->lock);
	g_cond_init(&m->replace->cond);
	atomic_init(&m->replace->leg, -1);
	atomic_init(&m->replace->by, -1);
}

void replace_clear(struct mirror *m)
{
	if (m->replace == NULL)
		return;
	replace_stop(m);
	g_cond_clear(&m->replace->cond);
	g_mutex_clear(&m->replace->lock);
	g_free(m->replace);
	m->replace = NULL;
}

void mirror_replace_status(const struct mirror *m, struct replace_status *out)
{
	struct replace *rp = m->replace;

	out->leg = rp != NULL ? atomic_load(&rp->leg) : -1;
	out->by = rp != NULL ? atomic_load(&rp->by) : -1;
}

/* Whether slot i holds the member uuid (under state_lock: status readers' lock of identity). */
static bool holds(struct mirror *m, unsigned int i, const uint8_t uuid[16])
{
	bool same;

	g_mutex_lock(&m->state_lock);
	same = i < atomic_load(&m->num_legs) && m->legs[i].dev != NULL &&
	       memcmp(m->legs[i].uuid, uuid, 16) == 0;
	g_mutex_unlock(&m->state_lock);
	return same;
}

/*
 * Why the replace cannot go on (a new string), or NULL while it may.  *ready: the new leg is in
 * sync, so the old one may go now.
 */
static char *why_not(struct mirror *m, struct replace *rp, bool *ready)
{
	unsigned int leg = (unsigned int)atomic_load(&rp->leg);
	unsigned int by = (unsigned int)atomic_load(&rp->by);
	enum leg_state st;

	*ready = false;
	if (!holds(m, leg, rp->leg_uuid))
		return g_strdup_printf("leg %u (%s) was removed", leg, rp->leg_name);
	st = leg_state(&m->legs[leg]);
	if (st != LEG_IN_SYNC)
		return g_strdup_printf("leg %u (%s) is %s, no longer in sync", leg, rp->leg_name,
				       leg_state_name(st));
	if (!holds(m, by, rp->by_uuid))
		return g_strdup_printf("the new leg %u (%s) was removed", by, rp->by_path);
	st = leg_state(&m->legs[by]);
	if (st == LEG_FAILED || st == LEG_REMOVED)
		return g_strdup_printf("the new leg %u (%s) is %s", by, rp->by_path,
				       leg_state_name(st));
	*ready = st == LEG_IN_SYNC;
	return NULL;
}

/* Wait POLL_US, or less when stopped.  Returns whether the replace is to stop. */
static bool nap(struct replace *rp)
{
	gint64 until = g_get_monotonic_time() + POLL_US;
	bool stop;

	g_mutex_lock(&rp->lock);
	while (!rp->stop && g_cond_wait_until(&rp->cond, &rp->lock, until))
		;
	stop = rp->stop;
	g_mutex_unlock(&rp->lock);
	return stop;
}

/*
 * Under reconfig_lock: the new leg is in sync; remove the old one, unless something changed
 * since the last look or the removal would leave fewer in-sync legs than the replace began with
 * (another leg failed meanwhile).  Returns NULL (removed) or why not.
 */
static char *finish_locked(struct mirror *m, struct replace *rp)
{
	unsigned int leg = (unsigned int)atomic_load(&rp->leg);
	g_autoptr(GError) error = NULL;
	unsigned int in_sync;
	bool ready;
	char *why = why_not(m, rp, &ready);

	if (why != NULL)
		return why;
	if (!ready)
		return g_strdup("the new leg is not in sync"); /* not reached: checked before */
	in_sync = mirror_count_in_sync(m);
	if (in_sync - 1 < rp->in_sync)
		return g_strdup_printf("another leg failed meanwhile: removing leg %u (%s) would "
				       "leave %u in-sync legs, fewer than the %u the replace began "
				       "with",
				       leg, rp->leg_name, in_sync - 1, rp->in_sync);
	if (reconfig_remove_leg_locked(m, leg, true, &error) < 0)
		return g_strdup_printf("leg %u (%s) could not be removed: %s", leg, rp->leg_name,
				       error != NULL ? error->message : "unknown error");
	/* The new leg takes the old one's slot, as md's replacement does: no hole is left. */
	if (reconfig_move_leg_locked(m, (unsigned int)atomic_load(&rp->by), leg) == 0)
		atomic_store(&rp->by, (int)leg);
	return NULL;
}

static gpointer replace_thread(gpointer data)
{
	struct mirror *m = data;
	struct replace *rp = m->replace;
	int leg = atomic_load(&rp->leg), by = atomic_load(&rp->by);
	char *why = NULL;
	bool ready = false;

	for (;;) {
		why = why_not(m, rp, &ready);
		if (why != NULL || ready)
			break;
		if (nap(rp)) {
			why = g_strdup_printf("mirror %s is closing before the new leg %d (%s) is "
					      "in sync",
					      m->name, by, rp->by_path);
			break;
		}
	}
	if (why == NULL) {
		g_mutex_lock(&m->reconfig_lock);
		why = finish_locked(m, rp);
		g_mutex_unlock(&m->reconfig_lock);
		by = atomic_load(&rp->by); /* the old leg's slot now */
	}
	/* Events and the done callback (the daemon saves its config) after reconfig_lock. */
	if (why == NULL)
		mirror_event(m, "LegReplaced", G_LOG_LEVEL_MESSAGE, by,
			     "leg %d (%s, %s) of mirror %s replaced by leg %d (%s, %s), in sync",
			     leg, rp->leg_name, rp->leg_path, m->name, by, rp->by_name,
			     rp->by_path);
	else
		mirror_event(m, "ReplaceAborted", G_LOG_LEVEL_WARNING, leg,
			     "replace of leg %d (%s, %s) of mirror %s by leg %d (%s) aborted: %s; "
			     "leg %d is kept",
			     leg, rp->leg_name, rp->leg_path, m->name, by, rp->by_path, why, leg);
	if (rp->done != NULL)
		rp->done(rp->opaque, m, why == NULL);
	g_free(why);
	/* Status says none only once the config is saved: replace --wait then reads it true. */
	atomic_store(&rp->leg, -1);
	atomic_store(&rp->by, -1);
	atomic_store(&rp->running, false);
	return NULL;
}

/*
 * Join the thread, told to stop or finished (under reconfig_lock only when finished: a running
 * one takes it), and forget its replace.
 */
static void reap(struct replace *rp, bool stop)
{
	GThread *thread;

	g_mutex_lock(&rp->lock);
	rp->stop |= stop;
	g_cond_broadcast(&rp->cond);
	thread = g_steal_pointer(&rp->thread);
	g_mutex_unlock(&rp->lock);
	if (thread != NULL)
		g_thread_join(thread);
	g_clear_pointer(&rp->leg_name, g_free);
	g_clear_pointer(&rp->leg_path, g_free);
	g_clear_pointer(&rp->by_name, g_free);
	g_clear_pointer(&rp->by_path, g_free);
}

static void set_error(GError **error, int code, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void set_error(GError **error, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	g_propagate_error(error, g_error_new_valist(MIRROR_ERROR, code, fmt, ap));
	va_end(ap);
}

static int replace_locked(struct mirror *m, unsigned int index, const char *path,
			  enum leg_direct direct, mirror_replace_done_fn done, void *opaque,
			  GError **error)
{
	struct replace *rp = m->replace;
	struct leg *leg;
	int by;

	if (atomic_load(&rp->running)) {
		int l = atomic_load(&rp->leg), b = atomic_load(&rp->by);

		set_error(error, MIRROR_ERROR_LEG,
			  "a replace of leg %d (%s) by leg %d (%s) is running on mirror %s: one "
			  "at a time",
			  l, rp->leg_name, b, rp->by_path, m->name);
		return -EBUSY;
	}
	reap(rp, false);
	if (index >= atomic_load(&m->num_legs)) {
		set_error(error, MIRROR_ERROR_LEG, "mirror %s has no leg %u", m->name, index);
		return -EINVAL;
	}
	leg = &m->legs[index];
	if (leg_state(leg) != LEG_IN_SYNC) {
		set_error(error, MIRROR_ERROR_LEG,
			  "leg %u (%s) is %s: replace copies from a leg while it serves, so it "
			  "needs an in-sync one (add the new leg and remove this one instead)",
			  index, leg->name, leg_state_name(leg_state(leg)));
		return -EINVAL;
	}
	by = reconfig_add_leg_locked(m, path, false, direct, error);
	if (by < 0)
		return by;

	/* The thread starts from these; identities change only under reconfig_lock, held. */
	g_mutex_lock(&m->state_lock);
	memcpy(rp->leg_uuid, leg->uuid, 16);
	memcpy(rp->by_uuid, m->legs[by].uuid, 16);
	rp->leg_name = g_strdup(leg->name);
	rp->leg_path = g_strdup(leg->shown);
	rp->by_name = g_strdup(m->legs[by].name);
	rp->by_path = g_strdup(m->legs[by].shown);
	g_mutex_unlock(&m->state_lock);
	/* The new leg is not in sync yet (or has just become so: then it is one more). */
	rp->in_sync = mirror_count_in_sync(m) - (leg_state(&m->legs[by]) == LEG_IN_SYNC);
	rp->done = done;
	rp->opaque = opaque;
	atomic_store(&rp->leg, (int)index);
	atomic_store(&rp->by, by);
	atomic_store(&rp->running, true);
	g_mutex_lock(&rp->lock);
	rp->stop = false;
	rp->thread = g_thread_new("fm-replace", replace_thread, m);
	g_mutex_unlock(&rp->lock);
	return by;
}

int mirror_replace_leg(struct mirror *m, unsigned int index, const char *path,
		       mirror_replace_done_fn done, void *opaque, GError **error)
{
	return mirror_replace_leg_direct(m, index, path, LEG_DIRECT_AUTO, done, opaque, error);
}

int mirror_replace_leg_direct(struct mirror *m, unsigned int index, const char *path,
			      enum leg_direct direct, mirror_replace_done_fn done, void *opaque,
			      GError **error)
{
	int r;

	g_mutex_lock(&m->reconfig_lock);
	r = replace_locked(m, index, path, direct, done, opaque, error);
	g_mutex_unlock(&m->reconfig_lock);
	return r;
}

void replace_stop(struct mirror *m)
{
	/* Not under reconfig_lock: the thread may be taking it to remove the old leg. */
	reap(m->replace, true);
}
