/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Reconnect: a remote leg (an NBD URI) that lost its server comes back by itself (§9; DRBD's
 * connect-int, nbd-client -persist).
 *
 * libdmio does not reconnect: once a connection dies, every call on the device fails with
 * ENOTCONN, and the leg is failed as for any I/O error (or by its io-timeout when the server
 * hangs).  This thread sees the failure (leg.c kicks it), and when it is a lost connection of a
 * leg on an NBD URI it raises LegDisconnected and tries again in the background: after
 * reconnect-delay, then twice as long each time up to RECONNECT_DELAY_CAP_MS (or the delay itself
 * when longer), at most reconnect-max tries (0: never; then the leg stays failed, as md's does).
 *
 * A try opens the URI anew and reads its superblock, by a short-lived thread of its own holding
 * no lock (a server that accepts and never answers keeps only that thread; the try is given up
 * on, never waited for, when the leg's slot changes or the mirror closes).  When the server
 * answers, the re-add goes through the hot add (reconfig_readd_locked, under reconfig_lock like
 * mirror_add_leg): only the member that was in the slot, with the array's UUID and its own leg
 * UUID, not newer than the array, goes back in, and it catches up from the write-intent bitmap
 * (the cleaner keeps the bits while a member is failed) - LegReconnected.  Anything else that
 * answers on that URI (another array, another member, a blank or damaged export, one written
 * elsewhere meanwhile) is never taken: LegReconnectRefused, and the tries stop.  When the tries
 * run out, LegReconnectGaveUp; fusemirrorctl add re-adds the leg by hand just the same.
 *
 * The tries of a leg end when its slot changes (removed, re-added by hand, replaced), when the
 * operator fails it again (fusemirrorctl fail: reconnect_cancel), and at close.  A leg that fails
 * again soon after it came back (RECONNECT_FLAP_US) carries on with the delay and count where
 * they were, so that a flapping link cannot make it reconnect once a second forever.
 *
 * Locks: reconnect->lock, a leaf, protects the slots' tries and the thread's flags; a try's own
 * lock (a leaf, taken under reconnect->lock or alone) its results.  The thread reads the legs
 * under state_lock with no lock of its own held, raises events with none held, and takes
 * reconfig_lock with none held.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "mirror/mirror-internal.h"

#define RECONNECT_DELAY_CAP_MS 30000u			      /* the doubling stops here */
#define RECONNECT_POLL_US      (20 * G_TIME_SPAN_MILLISECOND) /* while a try connects */
#define RECONNECT_IDLE_US      G_USEC_PER_SEC		      /* besides the kicks */
#define RECONNECT_FLAP_US      (60 * G_USEC_PER_SEC)	      /* back for less: no fresh start */

enum rc_state {
	RC_IDLE = 0,   /* nothing to do: in sync, or failed for another reason */
	RC_WAITING,    /* the next try starts at next_us */
	RC_CONNECTING, /* a try runs (attempt) */
	RC_REFUSED,    /* something else answered on the URI: no more tries */
	RC_GAVE_UP,    /* reconnect-max tries failed */
	RC_STOPPED,    /* the operator stopped them (fusemirrorctl fail) */
	RC_OFF,	       /* the connection was lost, and reconnect-max is 0 (or metadata = none) */
};

/* One try: the URI opened and its superblock read, by a thread of its own. */
struct attempt {
	GMutex lock;	/* a leaf: everything below */
	bool done;	/* the thread has finished: the results are in */
	bool abandoned; /* nobody wants them: the thread frees everything */
	char *path;
	struct dmio_dev *dev; /* open, when err is 0 */
	int err;	      /* 0, or -errno of the open or of the superblock read */
	void *sb;	      /* SB_SIZE bytes of the superblock */
};

struct rc_slot {
	enum rc_state state;
	unsigned int failures;	 /* the leg's failures handled already */
	uint8_t uuid[16];	 /* the member being tried */
	char *path, *shown;	 /* its URI, whole and redacted */
	unsigned int tries;	 /* made in this run */
	unsigned int delay_ms;	 /* before the next one */
	gint64 next_us;		 /* when the next one starts (RC_WAITING) */
	gint64 lost_us;		 /* when the run began */
	gint64 back_us;		 /* when it last came back (0: never) */
	char *why;		 /* the loss, the last try's error, the refusal */
	struct attempt *attempt; /* RC_CONNECTING */
};

struct reconnect {
	GMutex lock; /* a leaf: the slots, stop, kicked */
	GCond cond;  /* kicked or stop set */
	bool stop;
	bool kicked;
	bool started;	 /* the thread's own: it has looked at the legs once */
	GThread *thread; /* started by reconnect_start, joined by reconnect_stop */
	/* Finished tries nobody wants, freed once the lock is dropped: closing a device is I/O,
	 * never done under this lock (completions kick the thread). */
	GPtrArray *dead;
	struct rc_slot slots[SB_MAX_LEGS];
};

/* An event to raise once reconnect->lock is dropped. */
enum rc_event {
	EV_DISCONNECTED,
	EV_RECONNECTED,
	EV_REFUSED,
	EV_GAVE_UP,
};

struct pending_event {
	enum rc_event event;
	int leg;
	char *message;
};

bool reconnect_lost_connection(int err)
{
	switch (err) {
	case ENOTCONN:
	case ECONNRESET:
	case ECONNREFUSED:
	case ECONNABORTED:
	case EPIPE:
	case ESHUTDOWN:
	case ETIMEDOUT: /* the io-timeout: the server stopped answering */
	case EHOSTUNREACH:
	case EHOSTDOWN:
	case ENETUNREACH:
	case ENETDOWN:
	case ENETRESET:
		return true;
	default:
		return false;
	}
}

/* ---- Tries --------------------------------------------------------------------------------- */

static void attempt_free(struct attempt *a)
{
	dmio_dev_close(a->dev);
	free(a->sb);
	g_free(a->path);
	g_mutex_clear(&a->lock);
	g_free(a);
}

static gpointer attempt_main(gpointer data)
{
	struct attempt *a = data;
	struct dmio_dev *dev = NULL;
	void *sb = aligned_alloc(4096, SB_SIZE);
	bool abandoned;
	int r = sb != NULL ? dmio_dev_open(a->path, DMIO_DEV_EXCLUSIVE, &dev) : -ENOMEM;

	if (r == 0) {
		r = superblock_read_raw(dev, sb);
		if (r < 0)
			dmio_dev_close(g_steal_pointer(&dev));
	}
	g_mutex_lock(&a->lock);
	a->done = true;
	abandoned = a->abandoned;
	a->dev = dev;
	a->sb = sb;
	a->err = r;
	g_mutex_unlock(&a->lock);
	if (abandoned)
		attempt_free(a);
	return NULL;
}

/* Start a try on path: NULL when no thread can be had (the try counts as failed). */
static struct attempt *attempt_start(const char *path)
{
	struct attempt *a = g_new0(struct attempt, 1);
	GThread *t;

	g_mutex_init(&a->lock);
	a->path = g_strdup(path);
	t = g_thread_try_new("fm-connect", attempt_main, a, NULL);
	if (t == NULL) {
		attempt_free(a);
		return NULL;
	}
	g_thread_unref(t); /* it ends on its own; whoever is last frees the try */
	return a;
}

/*
 * Under reconnect->lock: nobody wants the try any more.  Finished, it goes to rc->dead (freed
 * without the lock); else its thread frees it when it finishes.
 */
static void attempt_abandon(struct reconnect *rc, struct attempt *a)
{
	bool done;

	if (a == NULL)
		return;
	g_mutex_lock(&a->lock);
	done = a->done;
	a->abandoned = true;
	g_mutex_unlock(&a->lock);
	if (done)
		g_ptr_array_add(rc->dead, a);
}

/* Free the tries nobody wants, holding no lock. */
static void bury_dead(struct reconnect *rc)
{
	GPtrArray *dead;

	g_mutex_lock(&rc->lock);
	dead = rc->dead;
	rc->dead = g_ptr_array_new();
	g_mutex_unlock(&rc->lock);
	for (unsigned int i = 0; i < dead->len; i++)
		attempt_free(g_ptr_array_index(dead, i));
	g_ptr_array_free(dead, TRUE);
}

static bool attempt_done(struct attempt *a)
{
	bool done;

	g_mutex_lock(&a->lock);
	done = a->done;
	g_mutex_unlock(&a->lock);
	return done;
}

/* ---- The slots (under reconnect->lock) ----------------------------------------------------- */

static void slot_set_why(struct rc_slot *s, char *why)
{
	g_free(s->why);
	s->why = why;
}

/* End the run of tries of a slot: its try given up on, its state `state`. */
static void slot_end(struct reconnect *rc, struct rc_slot *s, enum rc_state state, char *why)
{
	attempt_abandon(rc, g_steal_pointer(&s->attempt));
	s->state = state;
	slot_set_why(s, why);
}

static double ceil_seconds(gint64 us)
{
	return (double)((us + G_USEC_PER_SEC - 1) / G_USEC_PER_SEC);
}

static unsigned int delay_cap_ms(unsigned int delay_ms)
{
	return MAX(RECONNECT_DELAY_CAP_MS, delay_ms);
}

static void add_event(GArray *events, enum rc_event event, int leg, char *message)
{
	struct pending_event e = {event, leg, message};

	g_array_append_val(events, e);
}

static void raise_event(struct mirror *m, const struct pending_event *e)
{
	switch (e->event) {
	case EV_DISCONNECTED:
		mirror_event(m, "LegDisconnected", G_LOG_LEVEL_WARNING, e->leg, "%s", e->message);
		break;
	case EV_RECONNECTED:
		mirror_event(m, "LegReconnected", G_LOG_LEVEL_MESSAGE, e->leg, "%s", e->message);
		break;
	case EV_REFUSED:
		mirror_event(m, "LegReconnectRefused", G_LOG_LEVEL_WARNING, e->leg, "%s",
			     e->message);
		break;
	case EV_GAVE_UP:
		mirror_event(m, "LegReconnectGaveUp", G_LOG_LEVEL_WARNING, e->leg, "%s",
			     e->message);
		break;
	}
}

/* What the thread saw of a leg, under state_lock. */
struct leg_view {
	enum leg_state state;
	unsigned int failures;
	int fail_errno;
	bool has_dev;
	uint8_t uuid[16];
	char *path; /* a copy, or NULL */
	char *name;
};

static void view_leg(struct mirror *m, unsigned int i, struct leg_view *v)
{
	struct leg *leg = &m->legs[i];

	g_mutex_lock(&m->state_lock);
	v->state = leg_state(leg);
	v->failures = atomic_load(&leg->failures);
	v->fail_errno = atomic_load(&leg->fail_errno);
	v->has_dev = leg->dev != NULL;
	memcpy(v->uuid, leg->uuid, 16);
	v->path = g_strdup(leg->path);
	v->name = g_strdup(leg->name);
	g_mutex_unlock(&m->state_lock);
}

/* Under reconnect->lock: a new failure of slot i, as v shows it. */
static void slot_failed(struct mirror *m, unsigned int i, struct rc_slot *s,
			const struct leg_view *v, gint64 now, GArray *events)
{
	struct leg *leg = &m->legs[i];
	unsigned int max = atomic_load(&leg->reconnect_max);
	unsigned int delay = MAX(1u, atomic_load(&leg->reconnect_delay_ms));
	bool flapping = s->back_us > 0 && now - s->back_us < RECONNECT_FLAP_US;
	char *shown;

	s->failures = v->failures;
	if (v->state != LEG_FAILED || v->path == NULL || !dmio_path_is_uri(v->path) ||
	    !reconnect_lost_connection(v->fail_errno)) {
		/* Failed by the operator, a media error, or not a remote leg: stays failed. */
		slot_end(m->reconnect, s, RC_IDLE, NULL);
		return;
	}
	shown = dmio_path_display(v->path);
	g_free(s->path);
	g_free(s->shown);
	s->path = g_strdup(v->path);
	s->shown = g_strdup(shown != NULL ? shown : "");
	free(shown);
	memcpy(s->uuid, v->uuid, 16);
	attempt_abandon(m->reconnect, g_steal_pointer(&s->attempt));
	s->lost_us = now;
	if (!flapping) {
		s->tries = 0;
		s->delay_ms = delay;
	}
	slot_set_why(s, g_strdup_printf("%s", g_strerror(v->fail_errno)));
	if (m->metadata != METADATA_INTERNAL || max == 0 || (flapping && s->tries >= max)) {
		s->state = RC_OFF;
		add_event(events, EV_DISCONNECTED, (int)i,
			  g_strdup_printf("leg %u (%s, %s) lost its server: %s; %s", i, v->name,
					  s->shown, s->why,
					  m->metadata != METADATA_INTERNAL
					      ? "no reconnect with metadata = none"
					  : max == 0 ? "reconnect-max is 0: it stays failed"
						     : "it failed again just after it came back, "
						       "with no tries left: it stays failed"));
		return;
	}
	s->state = RC_WAITING;
	s->next_us = now + (gint64)s->delay_ms * G_TIME_SPAN_MILLISECOND;
	add_event(events, EV_DISCONNECTED, (int)i,
		  g_strdup_printf("leg %u (%s, %s) lost its server: %s; reconnecting in %.3g s "
				  "(try %u of %u)",
				  i, v->name, s->shown, s->why, s->delay_ms / 1000.0, s->tries + 1,
				  max));
}

/* Under reconnect->lock: a try failed with why; the next one later, or none. */
static void slot_try_failed(struct mirror *m, unsigned int i, struct rc_slot *s, char *why,
			    gint64 now, GArray *events)
{
	unsigned int max = atomic_load(&m->legs[i].reconnect_max);

	slot_set_why(s, why);
	if (s->tries >= max) {
		s->state = RC_GAVE_UP;
		add_event(events, EV_GAVE_UP, (int)i,
			  g_strdup_printf("leg %u (%s) did not come back after %u tries in %.0f s "
					  "(last: %s); it stays failed until re-added "
					  "(fusemirrorctl add)",
					  i, s->shown, s->tries, (double)(now - s->lost_us) / 1e6,
					  s->why));
		return;
	}
	s->delay_ms =
	    MIN(s->delay_ms * 2, delay_cap_ms(atomic_load(&m->legs[i].reconnect_delay_ms)));
	s->state = RC_WAITING;
	s->next_us = now + (gint64)s->delay_ms * G_TIME_SPAN_MILLISECOND;
	g_debug("mirror %s: leg %u (%s): try %u of %u failed: %s; next in %.3g s", m->name, i,
		s->shown, s->tries, max, s->why, s->delay_ms / 1000.0);
}

/* ---- Re-adding ----------------------------------------------------------------------------- */

/*
 * The try of slot i found a server that answered (dev, its superblock sb): re-add it, holding no
 * lock but reconfig_lock.  Returns the slot, or -errno with *error (reconfig_readd_locked's).
 */
static int readd(struct mirror *m, unsigned int i, const uint8_t uuid[16], unsigned int failures,
		 const char *path, struct dmio_dev *dev, const void *sb, GError **error)
{
	struct reconnect *rc = m->reconnect;
	bool wanted;
	int r = -ECANCELED;

	g_mutex_lock(&m->reconfig_lock);
	/* The operator may have stopped the tries meanwhile (under reconfig_lock, as here). */
	g_mutex_lock(&rc->lock);
	wanted = rc->slots[i].state == RC_CONNECTING;
	g_mutex_unlock(&rc->lock);
	if (wanted)
		r = reconfig_readd_locked(m, i, uuid, failures, path, dev, sb, error);
	else
		dmio_dev_close(dev);
	g_mutex_unlock(&m->reconfig_lock);
	/* (The hot add keeps the member's own settings: io-timeout, reconnect-*.) */
	return r;
}

/* ---- The thread ---------------------------------------------------------------------------- */

/* One look at slot i: events to raise go to events. */
static void look_at(struct mirror *m, unsigned int i, GArray *events)
{
	struct reconnect *rc = m->reconnect;
	struct rc_slot *s = &rc->slots[i];
	struct leg_view v;
	struct attempt *a = NULL;
	uint8_t uuid[16];
	unsigned int failures = 0;
	char *path = NULL;
	gint64 now = g_get_monotonic_time();

	view_leg(m, i, &v);
	g_mutex_lock(&rc->lock);
	if (!rc->started && v.state == LEG_FAILED && !v.has_dev && v.path != NULL &&
	    dmio_path_is_uri(v.path) && memcmp(v.uuid, (uint8_t[16]){0}, 16) != 0) {
		/* A member whose server did not answer when the mirror started (array.c). */
		v.fail_errno = ECONNREFUSED;
		slot_failed(m, i, s, &v, now, events);
	} else if (v.failures != s->failures) {
		slot_failed(m, i, s, &v, now, events);
	} else if ((s->state == RC_WAITING || s->state == RC_CONNECTING) &&
		   (v.state != LEG_FAILED || memcmp(v.uuid, s->uuid, 16) != 0 ||
		    g_strcmp0(v.path, s->path) != 0)) {
		/* Removed, re-added by hand, replaced: its tries end with it. */
		slot_end(m->reconnect, s, RC_IDLE, NULL);
	} else if (s->state == RC_WAITING && now >= s->next_us) {
		s->tries++;
		s->attempt = attempt_start(s->path);
		if (s->attempt != NULL)
			s->state = RC_CONNECTING;
		else
			slot_try_failed(m, i, s, g_strdup("cannot start a thread"), now, events);
	} else if (s->state == RC_CONNECTING && attempt_done(s->attempt)) {
		a = g_steal_pointer(&s->attempt);
		if (a->err < 0) {
			slot_try_failed(m, i, s, g_strdup_printf("%s", g_strerror(-a->err)), now,
					events);
			g_ptr_array_add(rc->dead, g_steal_pointer(&a));
		} else {
			/* Still RC_CONNECTING while it is re-added without the lock. */
			memcpy(uuid, s->uuid, 16);
			failures = s->failures;
			path = g_strdup(s->path);
		}
	}
	g_mutex_unlock(&rc->lock);

	if (a != NULL) {
		g_autoptr(GError) error = NULL;
		struct dmio_dev *dev = g_steal_pointer(&a->dev);
		int r = readd(m, i, uuid, failures, path, dev, a->sb, &error);

		attempt_free(a);
		now = g_get_monotonic_time();
		g_mutex_lock(&rc->lock);
		if (s->state != RC_CONNECTING || s->failures != failures) {
			/* Cancelled meanwhile (fusemirrorctl fail): what happened stays. */
		} else if (r >= 0) {
			s->state = RC_IDLE;
			s->back_us = now;
			add_event(events, EV_RECONNECTED, (int)i,
				  g_strdup_printf("leg %u (%s, %s) is back after %.1f s and %u %s: "
						  "re-added, resyncing the regions it missed",
						  i, v.name, s->shown,
						  (double)(now - s->lost_us) / 1e6, s->tries,
						  s->tries == 1 ? "try" : "tries"));
			slot_set_why(s, NULL);
		} else if (r == -ECANCELED) {
			slot_end(m->reconnect, s, RC_IDLE, NULL);
		} else if (r == -EEXIST) {
			slot_end(m->reconnect, s, RC_REFUSED, g_strdup(error->message));
			add_event(events, EV_REFUSED, (int)i,
				  g_strdup_printf("leg %u (%s, %s) answers again, but is not taken "
						  "back: %s; no more tries (fusemirrorctl add "
						  "--force takes it as a new leg)",
						  i, v.name, s->shown, error->message));
		} else {
			/* The re-add failed (its superblock write): a failed try; a new failure of
			 * the leg is this run's. */
			s->failures = atomic_load(&m->legs[i].failures);
			slot_try_failed(m, i, s,
					g_strdup(error != NULL ? error->message : g_strerror(-r)),
					now, events);
		}
		g_mutex_unlock(&rc->lock);
	}
	g_free(path);
	g_free(v.path);
	g_free(v.name);
}

/* When the thread looks next (monotonic µs), under reconnect->lock. */
static gint64 next_look(struct mirror *m, gint64 now)
{
	struct reconnect *rc = m->reconnect;
	gint64 next = now + RECONNECT_IDLE_US;
	unsigned int i;

	for (i = 0; i < SB_MAX_LEGS; i++) {
		if (rc->slots[i].state == RC_CONNECTING)
			next = MIN(next, now + RECONNECT_POLL_US);
		else if (rc->slots[i].state == RC_WAITING)
			next = MIN(next, rc->slots[i].next_us);
	}
	return next;
}

static gpointer reconnect_main(gpointer data)
{
	struct mirror *m = data;
	struct reconnect *rc = m->reconnect;
	GArray *events = g_array_new(FALSE, FALSE, sizeof(struct pending_event));

	g_mutex_lock(&rc->lock);
	while (!rc->stop) {
		unsigned int i, slots;
		gint64 until;

		rc->kicked = false;
		g_mutex_unlock(&rc->lock);
		slots = atomic_load(&m->num_legs);
		for (i = 0; i < slots; i++)
			look_at(m, i, events);
		rc->started = true; /* (read and written by this thread alone) */
		/* Slots dropped at the end (remove) hold no member any more. */
		g_mutex_lock(&rc->lock);
		for (i = slots; i < SB_MAX_LEGS; i++)
			if (rc->slots[i].state == RC_WAITING || rc->slots[i].state == RC_CONNECTING)
				slot_end(rc, &rc->slots[i], RC_IDLE, NULL);
		g_mutex_unlock(&rc->lock);
		for (i = 0; i < events->len; i++) {
			struct pending_event *e = &g_array_index(events, struct pending_event, i);

			raise_event(m, e);
			g_free(e->message);
		}
		g_array_set_size(events, 0);
		bury_dead(rc);
		g_mutex_lock(&rc->lock);
		until = next_look(m, g_get_monotonic_time());
		while (!rc->kicked && !rc->stop && g_cond_wait_until(&rc->cond, &rc->lock, until))
			;
	}
	g_mutex_unlock(&rc->lock);
	g_array_free(events, TRUE);
	return NULL;
}

/* ---- Life ---------------------------------------------------------------------------------- */

void reconnect_init(struct mirror *m)
{
	m->reconnect = g_new0(struct reconnect, 1);
	m->reconnect->dead = g_ptr_array_new();
	g_mutex_init(&m->reconnect->lock);
	g_cond_init(&m->reconnect->cond);
}

void reconnect_start(struct mirror *m)
{
	struct reconnect *rc = m->reconnect;

	g_mutex_lock(&rc->lock);
	rc->stop = false;
	rc->thread = g_thread_new("fm-reconnect", reconnect_main, m);
	g_mutex_unlock(&rc->lock);
}

void reconnect_stop(struct mirror *m)
{
	struct reconnect *rc = m->reconnect;
	GThread *thread;
	unsigned int i;

	if (rc == NULL)
		return;
	g_mutex_lock(&rc->lock);
	rc->stop = true;
	g_cond_broadcast(&rc->cond);
	thread = g_steal_pointer(&rc->thread);
	g_mutex_unlock(&rc->lock);
	if (thread != NULL)
		g_thread_join(thread);
	/* A try still connecting finishes on its own, and frees itself. */
	g_mutex_lock(&rc->lock);
	for (i = 0; i < SB_MAX_LEGS; i++)
		if (rc->slots[i].state == RC_WAITING || rc->slots[i].state == RC_CONNECTING)
			slot_end(rc, &rc->slots[i], RC_IDLE, NULL);
	g_mutex_unlock(&rc->lock);
	bury_dead(rc);
}

void reconnect_clear(struct mirror *m)
{
	struct reconnect *rc = m->reconnect;
	unsigned int i;

	if (rc == NULL)
		return;
	reconnect_stop(m);
	/* Every try was given up on by reconnect_stop: what is left are strings. */
	for (i = 0; i < SB_MAX_LEGS; i++) {
		g_free(rc->slots[i].path);
		g_free(rc->slots[i].shown);
		g_free(rc->slots[i].why);
	}
	g_ptr_array_free(rc->dead, TRUE);
	g_cond_clear(&rc->cond);
	g_mutex_clear(&rc->lock);
	g_free(rc);
	m->reconnect = NULL;
}

void reconnect_kick(struct mirror *m)
{
	struct reconnect *rc = m->reconnect;

	g_mutex_lock(&rc->lock);
	rc->kicked = true;
	g_cond_signal(&rc->cond);
	g_mutex_unlock(&rc->lock);
}

bool reconnect_cancel(struct mirror *m, unsigned int index, const char *why)
{
	struct reconnect *rc = m->reconnect;
	struct rc_slot *s;
	bool pending;

	if (index >= SB_MAX_LEGS)
		return false;
	s = &rc->slots[index];
	g_mutex_lock(&rc->lock);
	pending = s->state == RC_WAITING || s->state == RC_CONNECTING;
	if (pending)
		slot_end(m->reconnect, s, RC_STOPPED, g_strdup(why));
	g_mutex_unlock(&rc->lock);
	return pending;
}

/* ---- Status and tunables ------------------------------------------------------------------- */

char *mirror_leg_reconnect_status(struct mirror *m, unsigned int index)
{
	struct reconnect *rc = m->reconnect;
	struct rc_slot *s;
	unsigned int max;
	char *text;
	gint64 wait;

	if (index >= SB_MAX_LEGS)
		return g_strdup("idle");
	s = &rc->slots[index];
	max = atomic_load(&m->legs[index].reconnect_max);
	g_mutex_lock(&rc->lock);
	switch (s->state) {
	case RC_WAITING:
		wait = MAX(0, s->next_us - g_get_monotonic_time());
		text = g_strdup_printf("waiting %.0f s, try %u of %u", ceil_seconds(wait),
				       s->tries + 1, max);
		break;
	case RC_CONNECTING:
		text = g_strdup_printf("connecting, try %u of %u", s->tries, max);
		break;
	case RC_REFUSED:
		text = g_strdup_printf("refused: %s", s->why);
		break;
	case RC_GAVE_UP:
		text = g_strdup_printf("gave up after %u tries: %s", s->tries, s->why);
		break;
	case RC_STOPPED:
		text = g_strdup_printf("stopped: %s", s->why);
		break;
	case RC_OFF:
		text = g_strdup_printf("off: %s", s->why);
		break;
	case RC_IDLE:
	default:
		text = g_strdup("idle");
		break;
	}
	g_mutex_unlock(&rc->lock);
	return text;
}

int mirror_set_reconnect(struct mirror *m, int index, int delay_ms, int max)
{
	unsigned int i, slots = atomic_load(&m->num_legs);

	if (index >= (int)slots || delay_ms == 0)
		return -EINVAL;
	for (i = 0; i < slots; i++) {
		if (index >= 0 && i != (unsigned int)index)
			continue;
		if (delay_ms > 0)
			atomic_store(&m->legs[i].reconnect_delay_ms, (unsigned int)delay_ms);
		if (max >= 0)
			atomic_store(&m->legs[i].reconnect_max, (unsigned int)max);
	}
	if (index < 0 && delay_ms > 0)
		atomic_store(&m->reconnect_delay_default_ms, (unsigned int)delay_ms);
	if (index < 0 && max >= 0)
		atomic_store(&m->reconnect_max_default, (unsigned int)max);
	return 0;
}

void mirror_get_reconnect(const struct mirror *m, int index, unsigned int *delay_ms,
			  unsigned int *max)
{
	struct mirror *mm = (struct mirror *)m;

	if (index >= 0) {
		*delay_ms = atomic_load(&mm->legs[index].reconnect_delay_ms);
		*max = atomic_load(&mm->legs[index].reconnect_max);
	} else {
		*delay_ms = atomic_load(&mm->reconnect_delay_default_ms);
		*max = atomic_load(&mm->reconnect_max_default);
	}
}
