/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A leg's identity and state, and the mirror's state that follows from its legs'.  Every change of
 * a leg's state goes through leg_set_state() or leg_fail(), which check the move against one table
 * under state_lock, note the change for the superblocks, and raise events only after the lock is
 * dropped.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "mirror/mirror-internal.h"

/* ---- The table of moves -------------------------------------------------------------------- */

enum move {
	NEVER = 0,
	ALWAYS,	  /* while the mirror serves, and at assembly */
	ASSEMBLY, /* only before the mirror serves: the states found in the superblocks */
};

#define NUM_STATES (LEG_SPARE + 1)

/*
 * moves[from][to].  An empty slot (removed) is what every slot starts as.  A leg reaches
 * in_sync only from resyncing (its copy done and durable) or at assembly; it leaves failed only
 * by being removed or re-added (stale: its slot's own member back).
 */
static const enum move moves[NUM_STATES][NUM_STATES] = {
    [LEG_IN_SYNC] = {[LEG_FAILED] = ALWAYS},
    [LEG_FAILED] = {[LEG_STALE] = ALWAYS, [LEG_REMOVED] = ALWAYS},
    [LEG_STALE] = {[LEG_FAILED] = ALWAYS, [LEG_RESYNCING] = ALWAYS},
    [LEG_RESYNCING] = {[LEG_IN_SYNC] = ALWAYS, [LEG_FAILED] = ALWAYS},
    [LEG_REMOVED] = {[LEG_IN_SYNC] = ASSEMBLY,
		     [LEG_FAILED] = ASSEMBLY,
		     [LEG_STALE] = ASSEMBLY,
		     [LEG_SPARE] = ALWAYS},
    [LEG_SPARE] = {[LEG_FAILED] = ALWAYS, [LEG_RESYNCING] = ALWAYS, [LEG_REMOVED] = ALWAYS},
};

bool leg_move_allowed(enum leg_state from, enum leg_state to, bool assembly)
{
	if ((unsigned int)from >= NUM_STATES || (unsigned int)to >= NUM_STATES)
		return false;
	return moves[from][to] == ALWAYS || (assembly && moves[from][to] == ASSEMBLY);
}

const char *leg_state_name(enum leg_state state)
{
	switch (state) {
	case LEG_IN_SYNC:
		return "in_sync";
	case LEG_FAILED:
		return "failed";
	case LEG_STALE:
		return "stale";
	case LEG_RESYNCING:
		return "resyncing";
	case LEG_REMOVED:
		return "removed";
	case LEG_SPARE:
		return "spare";
	}
	return "unknown";
}

const char *leg_resync_role_name(enum leg_resync_role role)
{
	switch (role) {
	case LEG_RESYNC_NONE:
		return "none";
	case LEG_RESYNC_SOURCE:
		return "source";
	case LEG_RESYNC_BITMAP:
		return "bitmap";
	case LEG_RESYNC_FULL:
		return "full";
	case LEG_RESYNC_REWRITE:
		return "rewrite";
	case LEG_RESYNC_DIRTY:
		return "dirty";
	}
	return "unknown";
}

uint64_t mirror_state_changed(struct mirror *m, bool bump, bool hold)
{
	uint64_t gen;

	if (m->metadata != METADATA_INTERNAL) {
		/* No superblocks: the counter is all there is to record. */
		if (bump)
			atomic_fetch_add(&m->events, 1);
		return 0;
	}
	gen = atomic_fetch_add(&m->gen_wanted, 1) + 1;
	/* Raise, never lower: another change may have published a later generation already. */
	if (bump) {
		unsigned long long prev = atomic_load(&m->gen_bump);

		while (prev < gen && !atomic_compare_exchange_weak(&m->gen_bump, &prev, gen))
			;
	}
	if (hold) {
		unsigned long long prev = atomic_load(&m->gen_hold);

		while (prev < gen && !atomic_compare_exchange_weak(&m->gen_hold, &prev, gen))
			;
	}
	return gen;
}

/* Under state_lock.  0, -EAGAIN (not in from) or -EPERM (not a move of the table). */
static int move_locked(struct mirror *m, struct leg *leg, enum leg_state from, enum leg_state to)
{
	if (leg_state(leg) != from)
		return -EAGAIN;
	if (!leg_move_allowed(from, to, !atomic_load(&m->serving)))
		return -EPERM;
	atomic_store(&leg->state, to);
	return 0;
}

int leg_set_state(struct mirror *m, struct leg *leg, enum leg_state from, enum leg_state to)
{
	int r;

	g_mutex_lock(&m->state_lock);
	r = to == LEG_FAILED && atomic_load(&m->serving) ? -EPERM : move_locked(m, leg, from, to);
	g_mutex_unlock(&m->state_lock);
	if (r == -EPERM) {
		g_critical("mirror %s: leg %u: the move %s -> %s is not allowed%s", m->name,
			   leg->index, leg_state_name(from), leg_state_name(to),
			   to == LEG_FAILED ? " (a failure goes through leg_fail)" : "");
		return r;
	}
	/* Assembly's moves are recorded by the commit that opens the mirror. */
	if (r == 0 && atomic_load(&m->serving))
		mirror_state_changed(m, true, false);
	return r;
}

/*
 * Under state_lock: move a leg that is not failed or removed to failed.  True when it moved.  An
 * I/O failure (error_bits set) is the leg's latest I/O error; the operator's has none.
 */
static bool fail_locked(struct mirror *m, struct leg *leg, unsigned long error_bits)
{
	enum leg_state st = leg_state(leg);

	if (st == LEG_FAILED || st == LEG_REMOVED || move_locked(m, leg, st, LEG_FAILED) != 0)
		return false;
	atomic_store(&leg->fail_errno, error_bits != 0 ? atomic_load(&leg->io_errno) : 0);
	atomic_fetch_add(&leg->failures, 1);
	return true;
}

/* After the lock: record the failure (writes wait for it) and say so. */
static void raise_failed(struct mirror *m, struct leg *leg, const char *why,
			 unsigned long error_bits, unsigned int left, unsigned int total)
{
	mirror_state_changed(m, true, true);
	/* What the leg still has in flight is given up on at once (failfast.c); a remote leg is
	 * tried again (reconnect.c). */
	failfast_kick(m);
	reconnect_kick(m);
	mirror_event(m, "LegFailed", G_LOG_LEVEL_WARNING, (int)leg->index,
		     "leg %u (%s, %s) failed: %s (error bits 0x%lx); %u of %u legs in sync",
		     leg->index, leg->name, leg->shown, why, error_bits, left, total);
	mirror_event(m, "DegradedArray", G_LOG_LEVEL_WARNING, -1,
		     "mirror %s is degraded: %u of %u legs in sync", m->name, left, total);
}

int leg_fail(struct mirror *m, struct leg *leg, const char *why, unsigned long error_bits)
{
	enum leg_state st;
	unsigned int left, total;
	int r = 0;

	g_mutex_lock(&m->state_lock);
	st = leg_state(leg);
	if (st == LEG_FAILED || st == LEG_REMOVED)
		r = -EALREADY;
	else if (st == LEG_IN_SYNC && mirror_count_in_sync(m) <= 1)
		/* The last in-sync leg is the mirror: never fail it.  A leg catching up is no loss.
		 */
		r = -EBUSY;
	else
		fail_locked(m, leg, error_bits);
	left = mirror_count_in_sync(m);
	total = atomic_load(&m->num_legs);
	g_mutex_unlock(&m->state_lock);
	if (r == 0)
		raise_failed(m, leg, why, error_bits, left, total);
	return r;
}

unsigned int legs_fail_missed(struct mirror *m, uint64_t took, uint64_t missed, char *const *why,
			      unsigned long error_bits)
{
	uint64_t failed = 0;
	unsigned int i, good = 0, left, total;

	g_mutex_lock(&m->state_lock);
	total = atomic_load(&m->num_legs);
	for (i = 0; i < total; i++)
		good += (took & (1ull << i)) && leg_state(&m->legs[i]) == LEG_IN_SYNC;
	for (i = 0; i < total && good > 0; i++)
		if ((missed & (1ull << i)) && fail_locked(m, &m->legs[i], error_bits))
			failed |= 1ull << i;
	left = mirror_count_in_sync(m);
	g_mutex_unlock(&m->state_lock);
	for (i = 0; i < total; i++)
		if (failed & (1ull << i))
			raise_failed(m, &m->legs[i], why[i], error_bits, left, total);
	return good;
}

/* ---- Identity ------------------------------------------------------------------------------ */

/*
 * Replace a slot's strings and UUID (NULL: none) under state_lock, where status reads them; the
 * old strings may still be read by status.
 */
static void set_identity(struct mirror *m, struct leg *leg, char *name, char *path,
			 const uint8_t uuid[16], bool write_mostly)
{
	char *shown = dmio_path_display(path);

	g_mutex_lock(&m->state_lock);
	if (leg->name != NULL)
		g_ptr_array_add(m->retired, leg->name);
	if (leg->path != NULL)
		g_ptr_array_add(m->retired, leg->path);
	if (leg->shown != NULL)
		g_ptr_array_add(m->retired, leg->shown);
	leg->name = name;
	leg->path = path;
	leg->shown = shown;
	if (uuid != NULL)
		memcpy(leg->uuid, uuid, 16);
	else
		memset(leg->uuid, 0, 16);
	atomic_store(&leg->write_mostly, write_mostly);
	g_mutex_unlock(&m->state_lock);
}

void leg_move(struct mirror *m, struct leg *from, struct leg *to)
{
	failfast_lock_slots(m);
	g_mutex_lock(&m->state_lock);
	/* The names move with the member; the empty slot gets empty ones (to's are kept). */
	if (to->name != NULL)
		g_ptr_array_add(m->retired, to->name);
	if (to->path != NULL)
		g_ptr_array_add(m->retired, to->path);
	if (to->shown != NULL)
		g_ptr_array_add(m->retired, to->shown);
	to->name = from->name;
	to->path = from->path;
	to->shown = from->shown;
	from->name = g_strdup("");
	from->path = g_strdup("");
	from->shown = g_strdup("");
	atomic_store(&to->write_mostly, atomic_load(&from->write_mostly));
	atomic_store(&from->write_mostly, false);
	to->dev = from->dev;
	from->dev = NULL;
	memcpy(to->uuid, from->uuid, 16);
	memset(from->uuid, 0, 16);
	atomic_store(&to->read_errors, atomic_load(&from->read_errors));
	atomic_store(&to->write_errors, atomic_load(&from->write_errors));
	atomic_store(&to->corrected_errors, atomic_load(&from->corrected_errors));
	to->recent_read_errors = from->recent_read_errors;
	to->recent_since = from->recent_since;
	atomic_store(&to->io_timeout_ms, atomic_load(&from->io_timeout_ms));
	atomic_store(&to->write_behind, atomic_load(&from->write_behind));
	atomic_store(&from->write_behind, 0);
	atomic_store(&to->behind_answered, atomic_load(&from->behind_answered));
	atomic_store(&to->reconnect_delay_ms, atomic_load(&from->reconnect_delay_ms));
	atomic_store(&to->reconnect_max, atomic_load(&from->reconnect_max));
	atomic_store(&to->io_errno, atomic_load(&from->io_errno));
	to->resync = RESYNC_NONE;
	atomic_store(&to->recovery_offset, SB_RECOVERY_DONE);
	/* The one move that is no move of the table: a member changes slots, in sync. */
	atomic_store(&to->state, LEG_IN_SYNC);
	atomic_store(&from->state, LEG_REMOVED);
	g_mutex_unlock(&m->state_lock);
	failfast_unlock_slots(m);
	mirror_state_changed(m, true, false);
}

void leg_forget_uuid(struct mirror *m, struct leg *leg)
{
	g_mutex_lock(&m->state_lock);
	memset(leg->uuid, 0, 16);
	g_mutex_unlock(&m->state_lock);
}

void leg_attach(struct mirror *m, struct leg *leg, const char *name, const char *path,
		struct dmio_dev *dev, const uint8_t uuid[16], bool write_mostly)
{
	/* A new member gets the mirror's io-timeout; the config may say otherwise (array.c). */
	atomic_store(&leg->io_timeout_ms, atomic_load(&m->io_timeout_default_ms));
	atomic_store(&leg->reconnect_delay_ms, atomic_load(&m->reconnect_delay_default_ms));
	atomic_store(&leg->reconnect_max, atomic_load(&m->reconnect_max_default));
	atomic_store(&leg->io_errno, 0);
	set_identity(m, leg, g_strdup(name), g_strdup(path), uuid, write_mostly);
	/* Status readers read it under state_lock, the failfast thread under its own. */
	failfast_lock_slots(m);
	g_mutex_lock(&m->state_lock);
	leg->dev = dev;
	g_mutex_unlock(&m->state_lock);
	failfast_unlock_slots(m);
	atomic_store(&leg->read_errors, 0);
	atomic_store(&leg->write_errors, 0);
	atomic_store(&leg->corrected_errors, 0);
	leg->recent_read_errors = 0;
	atomic_store(&leg->pending, 0);
	/* No write is behind on a slot being attached (not serving, or frozen). */
	atomic_store(&leg->write_behind, 0);
	atomic_store(&leg->behind_answered, 0);
	leg->resync = RESYNC_NONE;
	atomic_store(&leg->recovery_offset, SB_RECOVERY_DONE);
}

struct dmio_dev *leg_detach(struct mirror *m, struct leg *leg)
{
	struct dmio_dev *dev;

	/* Not while the failfast thread looks at the slot's device (it may be closed next). */
	failfast_lock_slots(m);
	g_mutex_lock(&m->state_lock);
	dev = leg->dev;
	leg->dev = NULL;
	g_mutex_unlock(&m->state_lock);
	failfast_unlock_slots(m);
	return dev;
}

void leg_empty(struct mirror *m, unsigned int i)
{
	unsigned int j = MIN(i, atomic_load(&m->num_legs));

	for (; j <= i; j++) {
		struct leg *leg = &m->legs[j];

		set_identity(m, leg, g_strdup(""), g_strdup(""), NULL, false);
		leg->dev = NULL;
	}
	if (i >= atomic_load(&m->num_legs))
		atomic_store(&m->num_legs, i + 1);
}

void legs_set_count(struct mirror *m, unsigned int n)
{
	atomic_store(&m->num_legs, n);
}

/* ---- Questions ----------------------------------------------------------------------------- */

const char *mirror_state_name(enum mirror_state state)
{
	switch (state) {
	case MIRROR_CLEAN:
		return "clean";
	case MIRROR_DEGRADED:
		return "degraded";
	case MIRROR_FAILED:
		return "failed";
	case MIRROR_RESYNCING:
		return "resyncing";
	case MIRROR_CHECKING:
		return "checking";
	}
	return "unknown";
}

enum mirror_state mirror_state(const struct mirror *m)
{
	struct mirror *mm = (struct mirror *)m;
	unsigned int n = mirror_count_in_sync(m);

	if (n == 0)
		return MIRROR_FAILED;
	if (atomic_load(&mm->resync_active))
		return MIRROR_RESYNCING;
	if (scrub_active(m))
		return MIRROR_CHECKING;
	return n == atomic_load(&mm->num_legs) ? MIRROR_CLEAN : MIRROR_DEGRADED;
}

bool mirror_same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	/* A remote export cannot be stat'ed: one URI, spelled the same once normalised. */
	if (dmio_path_is_uri(a) || dmio_path_is_uri(b)) {
		g_autofree char *na = NULL;
		g_autofree char *nb = NULL;

		if (!dmio_path_is_uri(a) || !dmio_path_is_uri(b))
			return false;
		na = dmio_path_normalize(a);
		nb = dmio_path_normalize(b);
		return na != NULL && nb != NULL && strcmp(na, nb) == 0;
	}
	if (stat(a, &sa) < 0 || stat(b, &sb) < 0)
		return false;
	if (S_ISBLK(sa.st_mode) && S_ISBLK(sb.st_mode))
		return sa.st_rdev == sb.st_rdev;
	return !S_ISBLK(sa.st_mode) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

bool leg_is_written(const struct leg *leg)
{
	enum leg_state st = leg_state(leg);

	return leg->dev != NULL && (st == LEG_IN_SYNC || st == LEG_STALE || st == LEG_RESYNCING);
}

unsigned int mirror_count_in_sync(const struct mirror *m)
{
	unsigned int i, n = 0, legs = atomic_load(&((struct mirror *)m)->num_legs);

	for (i = 0; i < legs; i++)
		n += leg_state(&m->legs[i]) == LEG_IN_SYNC;
	return n;
}

bool mirror_all_in_sync(const struct mirror *m)
{
	unsigned int i, legs = atomic_load(&((struct mirror *)m)->num_legs);

	/* An empty slot or a spare needs nothing of the bitmap: it will be copied in full. */
	for (i = 0; i < legs; i++) {
		enum leg_state st = leg_state(&m->legs[i]);

		if (st != LEG_IN_SYNC && st != LEG_REMOVED && st != LEG_SPARE)
			return false;
	}
	return true;
}
