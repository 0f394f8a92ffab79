/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * metadata = internal: the durable state.  Assembly from the legs' superblocks; commits of the
 * in-memory state to every live leg's superblock, in md's order; the write-intent bitmap's
 * persistence; and the writes held until a leg's failure is durable.  The format is in
 * doc/format.md.
 *
 * A commit (md's md_update_sb) records every change made so far: it snapshots the array
 * superblock and the legs' states under sb_lock, drops it, flushes every live leg (the data a
 * resync copied, the writes before a clean mark) and then writes each leg's superblock with FUA.
 * Commits are grouped: a caller whose change is covered by a commit in progress waits for it,
 * and a commit covers all the changes made before its snapshot.  A leg that cannot take its
 * superblock is failed, and the next commit records that.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mirror/mirror-internal.h"

/* ---- Superblock commits -------------------------------------------------------------------- */

static enum sb_role leg_role(const struct leg *leg)
{
	switch (leg_state(leg)) {
	case LEG_IN_SYNC:
		return SB_ROLE_IN_SYNC;
	case LEG_STALE:
	case LEG_RESYNCING:
		return SB_ROLE_RESYNCING;
	case LEG_FAILED:
		return SB_ROLE_FAILED;
	case LEG_REMOVED:
		return SB_ROLE_EMPTY;
	case LEG_SPARE:
		return SB_ROLE_SPARE;
	}
	return SB_ROLE_FAILED;
}

/* The legs whose superblock a commit writes: the members with a device that have not failed. */
static bool leg_takes_superblock(const struct leg *leg)
{
	return leg->dev != NULL && (leg_is_written(leg) || leg_state(leg) == LEG_SPARE);
}

/* Copy text into a role's name or path when it can be recorded, else record it unknown. */
static void record_text(char *out, size_t max, const char *text)
{
	if (text != NULL && superblock_leg_text_ok(text, max))
		strcpy(out, text);
	else
		*out = '\0';
}

/* A slot's role, UUID, name and last path, as its leg is now; under state_lock. */
static void record_role(struct sb_leg_role *r, const struct leg *leg)
{
	r->role = leg_role(leg);
	memcpy(r->uuid, leg->uuid, 16);
	record_text(r->name, SB_LEG_NAME_MAX, r->role != SB_ROLE_EMPTY ? leg->name : NULL);
	/* Redacted: every leg's superblock records every path, and examine prints them. */
	record_text(r->path, SB_LEG_PATH_MAX, r->role != SB_ROLE_EMPTY ? leg->shown : NULL);
}

struct commit {
	struct superblock array;
	unsigned int n;
	struct leg *legs[DMIO_MAX_REGIONS];
	uint64_t recovery[DMIO_MAX_REGIONS];
	bool in_sync[DMIO_MAX_REGIONS];
};

/* Under sb_lock: the array superblock and each written leg's part of it, as they are now. */
static void commit_snapshot(struct mirror *m, struct commit *c)
{
	unsigned int i, pass, slots = atomic_load(&m->num_legs);

	m->array.utime = (uint64_t)time(NULL);
	/* Slots past the configured legs (a leg hot-added, not in the config) keep their role. */
	m->array.num_legs = MAX(m->array.num_legs, slots);
	/* The strings change under state_lock (a leaf below sb_lock). */
	g_mutex_lock(&m->state_lock);
	for (i = 0; i < slots; i++)
		record_role(&m->array.roles[i], &m->legs[i]);
	g_mutex_unlock(&m->state_lock);
	/*
	 * The in-sync legs first: when a power cut falls amid the writes, the newest superblock
	 * is an in-sync leg's, and the legs it counts in sync are one commit behind at most.
	 */
	c->n = 0;
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < slots; i++) {
			struct leg *leg = &m->legs[i];
			bool in_sync = leg_state(leg) == LEG_IN_SYNC;

			if (!leg_takes_superblock(leg) || in_sync != (pass == 0))
				continue;
			c->legs[c->n] = leg;
			c->in_sync[c->n] = in_sync;
			/* Taken before the flush below: what it covers was copied before it. */
			c->recovery[c->n] =
			    in_sync ? SB_RECOVERY_DONE : atomic_load(&leg->recovery_offset);
			c->n++;
		}
	}
	c->array = m->array;
}

/*
 * Flush every leg of the commit, then write each one's superblock with FUA.  Returns how many
 * legs in sync at the snapshot took it; errors[i] is leg i's 0 or -errno.  -EINVAL, with nothing
 * written, when the codec refuses the array superblock (a bug: two slots with one leg UUID).
 */
static int commit_write(struct mirror *m, struct commit *c, int *errors)
{
	void *page = aligned_alloc(4096, SB_SIZE);
	unsigned int i, good = 0;

	/* The legs' superblocks differ only in their own fields: one refuses as all would. */
	if (page != NULL && superblock_encode(&c->array, page) < 0) {
		free(page);
		return -EINVAL;
	}
	mirror_sync_io(m, DMIO_FLUSH, 0, c->legs, c->n, NULL, 0, 0, errors);
	for (i = 0; i < c->n; i++) {
		struct superblock sb = c->array;

		if (errors[i] < 0) {
			leg_log_io_error(m, c->legs[i], "flush before the superblock",
					 LEG_IO_METADATA, 0, 0, -errors[i],
					 1ul << c->legs[i]->index);
			continue;
		}
		if (page == NULL) {
			errors[i] = -ENOMEM;
			continue;
		}
		memcpy(sb.leg_uuid, c->legs[i]->uuid, 16);
		sb.leg_index = c->legs[i]->index;
		sb.recovery_offset = c->recovery[i];
		errors[i] = superblock_encode(&sb, page);
		if (errors[i] == 0) {
			errors[i] = mirror_sync_io(m, DMIO_WRITE, DMIO_REQ_FUA, &c->legs[i], 1,
						   page, 0, SB_SIZE, NULL);
			if (errors[i] < 0)
				leg_log_io_error(m, c->legs[i], "superblock write", LEG_IO_METADATA,
						 0, SB_SIZE, -errors[i], 1ul << c->legs[i]->index);
		}
		good += errors[i] == 0 && c->in_sync[i];
	}
	free(page);
	return (int)good;
}

int metadata_commit(struct mirror *m, uint64_t gen)
{
	struct commit *c;
	int errors[DMIO_MAX_REGIONS];
	int r = 0;

	if (m->metadata != METADATA_INTERNAL)
		return 0;
	c = g_new(struct commit, 1);
	g_mutex_lock(&m->sb_lock);
	while (atomic_load(&m->gen_recorded) < gen) {
		uint64_t target;
		unsigned int i;
		int good;

		if (m->sb_writing) {
			g_cond_wait(&m->sb_cond, &m->sb_lock);
			continue;
		}
		target = atomic_load(&m->gen_wanted);
		if (atomic_load(&m->gen_bump) > atomic_load(&m->gen_recorded)) {
			if (m->array.events == UINT64_MAX) {
				/* Never to 0: a left-out leg would become the authority. */
				g_warning(
				    "mirror %s: the events counter is at its limit 2^64-1: the "
				    "change is not recorded",
				    m->name);
				r = -EOVERFLOW;
				break;
			}
			m->array.events++;
		}
		m->sb_writing = true;
		commit_snapshot(m, c);
		g_mutex_unlock(&m->sb_lock);

		good = commit_write(m, c, errors);
		if (good < 0) {
			g_mutex_lock(&m->sb_lock);
			m->sb_writing = false;
			g_cond_broadcast(&m->sb_cond);
			r = good;
			break;
		}
		for (i = 0; i < c->n; i++) {
			char *why;

			if (errors[i] == 0)
				continue;
			/* commit_write() logged the I/O error: which step, errno, offset. */
			why = g_strdup_printf("cannot write its superblock (leg offset 0 length "
					      "%u): %s",
					      SB_SIZE, g_strerror(-errors[i]));
			leg_fail(m, c->legs[i], why, 1ul << c->legs[i]->index);
			g_free(why);
		}

		g_mutex_lock(&m->sb_lock);
		m->sb_writing = false;
		if (good > 0 || c->n == 0)
			atomic_store(&m->gen_recorded, target);
		else
			r = -EIO;
		g_cond_broadcast(&m->sb_cond);
		if (r < 0) {
			g_warning(
			    "mirror %s: no in-sync leg took the superblocks: the state of the "
			    "legs is not recorded",
			    m->name);
			break;
		}
	}
	g_mutex_unlock(&m->sb_lock);
	g_free(c);
	return r;
}

int metadata_sync(struct mirror *m)
{
	return metadata_commit(m, atomic_load(&m->gen_wanted));
}

void metadata_set_clean(struct mirror *m, bool clean)
{
	if (m->metadata != METADATA_INTERNAL)
		return;
	g_mutex_lock(&m->sb_lock);
	if (clean)
		m->array.flags |= SB_FLAG_CLEAN;
	else
		m->array.flags &= ~SB_FLAG_CLEAN;
	g_mutex_unlock(&m->sb_lock);
	mirror_state_changed(m, true, false);
}

void metadata_snapshot(struct mirror *m, struct superblock *out)
{
	g_mutex_lock(&m->sb_lock);
	*out = m->array;
	g_mutex_unlock(&m->sb_lock);
}

void metadata_forget_slots(struct mirror *m, unsigned int n)
{
	unsigned int i;

	g_mutex_lock(&m->sb_lock);
	for (i = n; i < m->array.num_legs && i < SB_MAX_LEGS; i++)
		memset(&m->array.roles[i], 0, sizeof(m->array.roles[i]));
	if (m->array.num_legs > n)
		m->array.num_legs = MAX(n, 1u);
	g_mutex_unlock(&m->sb_lock);
	mirror_state_changed(m, true, false);
}

void metadata_bits_cleared(struct mirror *m, bool at_stop)
{
	g_mutex_lock(&m->sb_lock);
	/* At a clean stop the clean mark's commit bumps events once more. */
	m->array.events_cleared = m->array.events + (at_stop ? 1 : 0);
	g_mutex_unlock(&m->sb_lock);
}

/* ---- Writes held until a failure is durable ----------------------------------------------- */

struct deferred {
	void (*fn)(void *opaque, int result);
	void *opaque;
};

static void deferred_run(gpointer data, gpointer user_data)
{
	struct deferred *d = data;
	struct mirror *m = user_data;

	/* Everything failed so far: the write may have missed any leg failed before it ended. */
	d->fn(d->opaque, metadata_commit(m, atomic_load(&m->gen_hold)));
	g_free(d);
}

void metadata_defer(struct mirror *m, void (*fn)(void *opaque, int result), void *opaque)
{
	struct deferred *d;

	if (m->deferred == NULL) {
		fn(opaque, 0);
		return;
	}
	d = g_new(struct deferred, 1);
	d->fn = fn;
	d->opaque = opaque;
	g_thread_pool_push(m->deferred, d, NULL);
}

/* ---- The write-intent bitmap on disk ------------------------------------------------------- */

int metadata_flush_legs(struct mirror *m)
{
	struct leg *legs[DMIO_MAX_REGIONS];
	int errors[DMIO_MAX_REGIONS];
	unsigned int i, n = mirror_written_legs(m, legs);
	int r;

	if (n == 0)
		return 0;
	r = mirror_sync_io(m, DMIO_FLUSH, 0, legs, n, NULL, 0, 0, errors);
	for (i = 0; i < n && r < 0; i++)
		if (errors[i] < 0)
			leg_log_io_error(m, legs[i], "flush", LEG_IO_METADATA, 0, 0, -errors[i],
					 1ul << legs[i]->index);
	return r;
}

/* Write bitmap blocks to every leg that takes writes; a leg that cannot take them fails. */
static int persist_bitmap(void *opaque, const void *bits, uint64_t first_block, uint64_t count)
{
	struct mirror *m = opaque;
	struct leg *legs[DMIO_MAX_REGIONS];
	int errors[DMIO_MAX_REGIONS];
	unsigned int i, n, good = 0;
	int r, err = -EIO;

	n = mirror_written_legs(m, legs);
	r = mirror_sync_io(m, DMIO_WRITE, DMIO_REQ_FUA, legs, n, (void *)bits,
			   SB_BITMAP_OFFSET + first_block * 4096, count * 4096, errors);
	if (r == 0)
		return 0;
	for (i = 0; i < n; i++) {
		char *why;

		if (errors[i] == 0) {
			good += leg_state(legs[i]) == LEG_IN_SYNC;
			continue;
		}
		err = errors[i];
		leg_log_io_error(m, legs[i], "bitmap write", LEG_IO_METADATA,
				 SB_BITMAP_OFFSET + first_block * 4096, count * 4096, -err,
				 1ul << legs[i]->index);
		why = g_strdup_printf("cannot write the write-intent bitmap at leg offset %" PRIu64
				      " length %" PRIu64 ": %s",
				      SB_BITMAP_OFFSET + first_block * 4096, count * 4096,
				      g_strerror(-err));
		leg_fail(m, legs[i], why, 1ul << legs[i]->index);
		g_free(why);
	}
	return good > 0 ? 0 : err;
}

/* ---- Assembly ------------------------------------------------------------------------------ */

/* Move a slot found at assembly (removed, or failed when missing) to its state. */
static void assemble_state(struct mirror *m, struct leg *leg, enum leg_state to)
{
	enum leg_state from = leg_state(leg);

	if (from != to)
		leg_set_state(m, leg, from, to);
}

/* A configured leg's device and flag, taken out of the slot open_leg() put it in. */
struct opened {
	struct dmio_dev *dev;
	bool write_mostly;
};

/*
 * Give every slot the superblocks name its leg (array.c opened config leg i into slot i): a
 * present leg its device, its config name (a renamed group renames the leg) and path; a missing
 * one the name and path configured for it, else those its slot recorded.  Slots past the array's
 * are emptied.  Not serving yet: nothing reads the slots meanwhile.
 */
static void place_slots(struct mirror *m, const struct assemble_input *in, unsigned int configured,
			const struct assemble_result *res)
{
	const unsigned int slots = MIN(res->array.num_legs, SB_MAX_LEGS);
	struct opened *opened = g_new0(struct opened, configured);
	unsigned int i;

	/* in[i].name and .path stay valid: a slot's replaced strings are kept until close. */
	for (i = 0; i < configured; i++) {
		opened[i].dev = leg_detach(m, &m->legs[i]);
		opened[i].write_mostly = m->legs[i].write_mostly;
	}
	for (i = 0; i < MAX(configured, slots); i++)
		leg_attach(m, &m->legs[i], "", "", NULL, NULL, false);
	legs_set_count(m, slots);
	for (i = 0; i < slots; i++) {
		const struct sb_leg_role *r = &res->array.roles[i];
		int k = res->slot_leg[i];

		if (r->role == SB_ROLE_EMPTY)
			continue;
		if (k < 0) {
			leg_attach(m, &m->legs[i], r->name, r->path, NULL, r->uuid, false);
			g_warning(
			    "mirror %s: the config does not list slot %u (leg '%s', last at %s): "
			    "it is missing (fusemirrorctl add puts it back, remove forgets it)",
			    m->name, i, *r->name != '\0' ? r->name : "unknown",
			    *r->path != '\0' ? r->path : "unknown");
			continue;
		}
		leg_attach(m, &m->legs[i], in[k].name, in[k].path, opened[k].dev,
			   in[k].present ? in[k].sb.leg_uuid : r->uuid, opened[k].write_mostly);
		if (in[k].present && *r->name != '\0' && strcmp(r->name, in[k].name) != 0)
			g_message("mirror %s: leg %u, recorded as '%s', is now named '%s' (its "
				  "config group)",
				  m->name, i, r->name, in[k].name);
	}
	for (i = 0; i < configured; i++)
		if (res->legs[i].slot < 0)
			g_warning("mirror %s: leg '%s' (%s) is missing, and no slot of the mirror "
				  "records that name or path: it is left out",
				  m->name, in[i].name, in[i].shown);
	g_free(opened);
}

int metadata_assemble(struct mirror *m, int force_source, GError **error)
{
	const unsigned int configured = atomic_load(&m->num_legs);
	struct assemble_input *in = g_new0(struct assemble_input, configured);
	struct assemble_result *res = g_new0(struct assemble_result, 1);
	char **whys = g_new0(char *, configured);
	void *buf = aligned_alloc(4096, SB_SIZE);
	unsigned int i;
	int r = 0;

	for (i = 0; i < configured; i++) {
		struct leg *leg = &m->legs[i];

		in[i].name = leg->name;
		in[i].path = leg->path;
		in[i].shown = leg->shown;
		in[i].present = leg->dev != NULL;
		if (!in[i].present)
			continue;
		in[i].dev_bytes = dmio_dev_sectors(leg->dev) << DMIO_SECTOR_SHIFT;
		r = superblock_read_raw(leg->dev, buf);
		if (r < 0) {
			g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_LEG,
				    "leg %u '%s' (%s): cannot read its superblock (leg offset 0 "
				    "length %u): %s (errno %d)",
				    i, leg->name, leg->shown, SB_SIZE, g_strerror(-r), -r);
			goto out;
		}
		in[i].sb_error = superblock_decode(buf, &in[i].sb, &whys[i]);
		in[i].sb_why = whys[i];
	}
	if (!assemble_decide(in, configured, force_source, res, error)) {
		r = -EINVAL;
		goto out;
	}

	g_mutex_lock(&m->sb_lock);
	m->array = res->array;
	g_mutex_unlock(&m->sb_lock);
	m->data_offset = res->array.data_offset;
	m->size = res->array.data_size;
	atomic_store(&m->unclean, res->unclean);
	place_slots(m, in, configured, res);
	for (i = 0; i < res->array.num_legs && i < SB_MAX_LEGS; i++) {
		struct leg *leg = &m->legs[i];
		int k = res->slot_leg[i];
		const struct assemble_leg *a = k >= 0 ? &res->legs[k] : NULL;

		if (res->array.roles[i].role == SB_ROLE_EMPTY)
			continue; /* a removed slot: stays removed */
		if (a == NULL || a->role == ASSEMBLE_MISSING) {
			assemble_state(m, leg, LEG_FAILED);
			continue;
		}
		leg->resync = a->resync;
		switch (a->role) {
		case ASSEMBLE_IN_SYNC:
			assemble_state(m, leg, LEG_IN_SYNC);
			atomic_store(&leg->recovery_offset, SB_RECOVERY_DONE);
			break;
		case ASSEMBLE_STALE:
			assemble_state(m, leg, LEG_STALE);
			atomic_store(&leg->recovery_offset,
				     a->resync == RESYNC_FULL ? a->recovery_offset : 0);
			if (in[k].sb.events == res->array.events) {
				/* Not behind: a new array's initial sync, or one a crash cut short.
				 */
				g_message(
				    "leg %u (%s, %s) is being rebuilt: its resync goes on from "
				    "offset %" PRIu64,
				    i, leg->name, leg->shown, a->recovery_offset);
				break;
			}
			mirror_event(m, "StaleLegRejected", G_LOG_LEVEL_WARNING, (int)i,
				     "leg %u (%s, %s) is stale (events %" PRIu64
				     ", the array is at %" PRIu64
				     "): it is not read, and is resynced (%s)",
				     i, leg->name, leg->shown, in[k].sb.events, res->array.events,
				     a->resync == RESYNC_BITMAP ? "the regions the bitmap recorded"
								: "in full");
			break;
		case ASSEMBLE_MISSING:
			break;
		}
	}

	/* The bits of every in-sync leg: writes go to all of them, a torn write to one. */
	m->bitmap = bitmap_new(m->size, res->array.region_size, persist_bitmap, m);
	if (bitmap_disk_bytes(m->bitmap) > 0) {
		void *bits = aligned_alloc(4096, bitmap_disk_bytes(m->bitmap));

		for (i = 0; i < atomic_load(&m->num_legs); i++) {
			struct leg *leg = &m->legs[i];

			if (leg_state(leg) != LEG_IN_SYNC)
				continue;
			r = mirror_sync_io(m, DMIO_READ, 0, &leg, 1, bits, SB_BITMAP_OFFSET,
					   bitmap_disk_bytes(m->bitmap), NULL);
			if (r < 0) {
				g_set_error(
				    error, MIRROR_ERROR, MIRROR_ERROR_LEG,
				    "leg %u '%s' (%s): cannot read its bitmap (leg offset %u "
				    "length %" PRIu64 "): %s (errno %d)",
				    i, leg->name, leg->shown, SB_BITMAP_OFFSET,
				    (uint64_t)bitmap_disk_bytes(m->bitmap), g_strerror(-r), -r);
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
			     res->missing, atomic_load(&m->num_legs));
	if (res->unclean)
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

/* ---- Start and stop ------------------------------------------------------------------------ */

void metadata_start(struct mirror *m)
{
	if (m->metadata != METADATA_INTERNAL)
		return;
	/* One thread: held writes complete in order, and never on an engine thread. */
	m->deferred = g_thread_pool_new(deferred_run, m, 1, FALSE, NULL);
}

/*
 * A clean stop: no request in flight, the resync and the cleaner stopped, the idle bits cleared
 * (array.c).  The superblocks then say clean, so the next start resyncs nothing.
 */
void metadata_stop(struct mirror *m)
{
	if (m->metadata != METADATA_INTERNAL)
		return;
	if (m->deferred != NULL) {
		g_thread_pool_free(m->deferred, FALSE, TRUE);
		m->deferred = NULL;
	}
	if (!atomic_load(&m->serving))
		return;
	metadata_set_clean(m, true);
	if (metadata_sync(m) < 0)
		g_warning("mirror %s: the clean superblocks could not be written: the next start "
			  "resyncs the dirty regions",
			  m->name);
}
