/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Changing the set of legs while the mirror serves I/O (mdadm's --add, --re-add, --remove) and
 * starting a resync on the operator's request.
 *
 * The leg array never moves (it holds SB_MAX_LEGS slots) and num_legs only grows, so a request
 * that loops over the legs always sees whole slots.  Every change happens with the resync
 * thread stopped and the mirror frozen (mirror_freeze: no request in flight), so that a write
 * either went to the new set of legs or was finished before it existed, and the resync's region
 * accounting starts from no writer.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "mirror/mirror-internal.h"

static void set_error(struct mirror *m, GError **error, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* Fill *error, and keep the message for user.fusemirror.last_error. */
static void set_error(struct mirror *m, GError **error, const char *fmt, ...)
{
	va_list ap;
	char *message;

	va_start(ap, fmt);
	message = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	mirror_set_last_error(m, message);
	g_set_error_literal(error, MIRROR_ERROR, MIRROR_ERROR_LEG, message);
	g_free(message);
}

void mirror_set_last_error(struct mirror *m, const char *message)
{
	g_mutex_lock(&m->lock);
	g_free(m->last_error);
	m->last_error = g_strdup(message);
	g_mutex_unlock(&m->lock);
}

char *mirror_last_error(struct mirror *m)
{
	char *s;

	g_mutex_lock(&m->lock);
	s = g_strdup(m->last_error != NULL ? m->last_error : "");
	g_mutex_unlock(&m->lock);
	return s;
}

char *mirror_uuid(struct mirror *m)
{
	char text[37];

	if (m->metadata != METADATA_INTERNAL)
		return g_strdup("");
	g_mutex_lock(&m->sb_lock);
	uuid_format(m->array.array_uuid, text);
	g_mutex_unlock(&m->sb_lock);
	return g_strdup(text);
}

/* Replace a slot's strings; the old ones may still be read by a status request. */
static void set_leg_strings(struct mirror *m, struct leg *leg, char *name, char *path)
{
	if (leg->name != NULL)
		g_ptr_array_add(m->retired, leg->name);
	if (leg->path != NULL)
		g_ptr_array_add(m->retired, leg->path);
	leg->name = name;
	leg->path = path;
}

void mirror_empty_slot(struct mirror *m, unsigned int i, enum leg_state state)
{
	struct leg *leg = &m->legs[i];

	leg->m = m;
	leg->index = i;
	set_leg_strings(m, leg, g_strdup(""), g_strdup(""));
	atomic_store(&leg->state, state);
}

/*
 * Take a leg's device away from the superblock writer and the bitmap cleaner, the only users of
 * a device outside requests (none are in flight: the mirror is frozen).
 */
static struct dmio_dev *detach_dev(struct mirror *m, struct leg *leg)
{
	struct dmio_dev *dev;

	g_mutex_lock(&m->cleaner_lock);
	g_mutex_lock(&m->sb_lock);
	dev = leg->dev;
	leg->dev = NULL;
	g_mutex_unlock(&m->sb_lock);
	g_mutex_unlock(&m->cleaner_lock);
	return dev;
}

/*
 * What the superblock found on a leg to be added says: its slot in this array (re-add) or -1,
 * and how it catches up.  Returns 0, or -EEXIST with *error when it must not be taken.
 */
static int judge_superblock(struct mirror *m, const char *path, struct dmio_dev *dev, bool force,
			    int *slot, enum assemble_resync *resync, uint8_t uuid[16],
			    GError **error)
{
	void *buf = aligned_alloc(4096, SB_SIZE);
	struct superblock sb;
	char *why = NULL;
	enum sb_error e;
	int r;

	*slot = -1;
	*resync = RESYNC_FULL;
	if (buf == NULL)
		return -ENOMEM;
	r = superblock_read_raw(dev, buf);
	if (r < 0) {
		set_error(m, error, "cannot read the superblock area of %s: %s", path,
			  g_strerror(-r));
		free(buf);
		return r;
	}
	e = superblock_decode(buf, &sb, &why);
	free(buf);
	if (e == SB_ERROR_MAGIC) {
		r = 0;
	} else if (e != SB_ERROR_NONE) {
		r = force ? 0 : -EEXIST;
		if (r < 0)
			set_error(m, error,
				  "%s carries a damaged fusemirror superblock (%s); add --force "
				  "to overwrite it",
				  path, why);
	} else if (memcmp(sb.array_uuid, m->array.array_uuid, 16) != 0) {
		char text[37];

		uuid_format(sb.array_uuid, text);
		r = force ? 0 : -EEXIST;
		if (r < 0)
			set_error(m, error,
				  "%s belongs to another fusemirror array ('%s', uuid %s); add "
				  "--force to overwrite it",
				  path, sb.name, text);
	} else {
		/* A former member: back into its slot, from the bitmap when it covers the gap. */
		g_mutex_lock(&m->sb_lock);
		*slot = assemble_slot_of(&m->array, sb.leg_uuid);
		memcpy(uuid, sb.leg_uuid, 16);
		if (*slot >= 0 && sb.events >= m->array.events_cleared &&
		    sb.events <= m->array.events && sb.recovery_offset == SB_RECOVERY_DONE &&
		    sb.data_offset == m->array.data_offset &&
		    sb.region_size == m->array.region_size)
			*resync = RESYNC_BITMAP;
		g_mutex_unlock(&m->sb_lock);
		r = 0;
	}
	g_free(why);
	return r;
}

int mirror_add_leg(struct mirror *m, const char *path, bool force, GError **error)
{
	enum assemble_resync resync;
	uint8_t uuid[16];
	bool readd;
	struct dmio_dev *dev = NULL;
	struct leg *leg;
	uint64_t bytes, need;
	unsigned int i, n;
	int slot, r;

	if (m->metadata != METADATA_INTERNAL) {
		set_error(m, error,
			  "hot add needs metadata = internal (the superblocks remember the legs)");
		return -ENOTSUP;
	}
	r = dmio_dev_open(path, 0, &dev);
	if (r < 0) {
		if (r == -EINVAL)
			set_error(m, error, "%s is not a regular file or block device", path);
		else
			set_error(m, error, "cannot open %s: %s", path, g_strerror(-r));
		return r;
	}
	n = m->num_legs;
	for (i = 0; i < n; i++) {
		if (m->legs[i].dev != NULL && leg_state(&m->legs[i]) != LEG_FAILED &&
		    mirror_same_file(path, m->legs[i].path)) {
			set_error(m, error, "%s is already leg %u (%s) of mirror %s", path, i,
				  m->legs[i].name, m->name);
			r = -EEXIST;
			goto fail;
		}
	}
	bytes = dmio_dev_sectors(dev) << DMIO_SECTOR_SHIFT;
	need = m->data_offset + m->size;
	if (bytes < need) {
		set_error(m, error,
			  "%s is %" PRIu64 " bytes: a leg of mirror %s needs at least %" PRIu64,
			  path, bytes, m->name, need);
		r = -ENOSPC;
		goto fail;
	}
	r = judge_superblock(m, path, dev, force, &slot, &resync, uuid, error);
	if (r < 0)
		goto fail;
	readd = slot >= 0;
	if (slot >= 0 && (unsigned int)slot < n && leg_is_written(&m->legs[slot])) {
		set_error(m, error,
			  "%s carries the identity of leg %u (%s), which is live: is it a copy?",
			  path, slot, m->legs[slot].name);
		r = -EEXIST;
		goto fail;
	}
	if (slot < 0) {
		for (i = 0; i < n; i++)
			if (leg_state(&m->legs[i]) == LEG_REMOVED)
				break;
		slot = (int)i;
		resync = RESYNC_FULL;
	}
	if ((unsigned int)slot >= SB_MAX_LEGS) {
		set_error(m, error, "mirror %s has no free leg slot (at most %u legs)", m->name,
			  SB_MAX_LEGS);
		r = -EMLINK;
		goto fail;
	}

	resync_stop(m);
	mirror_freeze(m);
	/* A failed leg re-added into its own slot: its old device goes. */
	leg = &m->legs[slot];
	if ((unsigned int)slot < n)
		dmio_dev_close(detach_dev(m, leg));
	/* Slots skipped over (a member not in the config file) stay empty. */
	for (i = n; i < (unsigned int)slot; i++)
		mirror_empty_slot(m, i, LEG_REMOVED);
	leg->m = m;
	leg->index = (unsigned int)slot;
	/* A member back in its configured slot keeps its name; a new leg is named after its file.
	 */
	if (readd && (unsigned int)slot < n && leg->name != NULL && *leg->name != '\0')
		set_leg_strings(m, leg, g_strdup(leg->name), g_strdup(path));
	else
		set_leg_strings(m, leg, g_path_get_basename(path), g_strdup(path));
	leg->write_mostly = false;
	atomic_store(&leg->read_errors, 0);
	atomic_store(&leg->write_errors, 0);
	atomic_store(&leg->pending, 0);
	leg->resync = resync;
	atomic_store(&leg->recovery_offset, 0);
	leg->recovery_saved = 0;
	if (readd)
		memcpy(leg->uuid, uuid, 16);
	else
		uuid_generate_random_v4(leg->uuid);
	leg->dev = dev;
	/* Published: written from now on, never read until the resync is done. */
	atomic_store(&leg->state, LEG_STALE);
	if ((unsigned int)slot >= n)
		atomic_store(&m->num_legs, (unsigned int)slot + 1);

	r = metadata_write(m, true, false);
	if (r == 0)
		r = bitmap_flush(m->bitmap);
	if (r == 0 && leg_state(leg) == LEG_FAILED)
		r = -EIO;
	resync_start(m);
	mirror_thaw(m);
	if (r < 0) {
		set_error(m, error,
			  "%s was added as leg %d but its metadata could not be "
			  "written: %s",
			  path, slot, g_strerror(-r));
		return r;
	}
	mirror_event(m, "LegAdded", G_LOG_LEVEL_MESSAGE, slot,
		     "leg %d (%s, %s) added to mirror %s: %s", slot, leg->name, leg->path, m->name,
		     resync == RESYNC_BITMAP ? "re-added, resyncing the regions it missed"
					     : "resyncing in full");
	return slot;
fail:
	dmio_dev_close(dev);
	return r;
}

int mirror_remove_leg(struct mirror *m, unsigned int index, bool force, GError **error)
{
	struct dmio_dev *dev;
	struct leg *leg;
	enum leg_state st;

	if (index >= m->num_legs) {
		set_error(m, error, "mirror %s has no leg %u", m->name, index);
		return -EINVAL;
	}
	leg = &m->legs[index];
	g_mutex_lock(&m->lock);
	st = leg_state(leg);
	g_mutex_unlock(&m->lock);
	if (st == LEG_REMOVED) {
		set_error(m, error, "leg %u of mirror %s is removed already", index, m->name);
		return -EALREADY;
	}
	if (st != LEG_FAILED && !force) {
		set_error(m, error,
			  "leg %u (%s) is %s: only a failed leg is removed (fail it first, or "
			  "use --force)",
			  index, leg->name, leg_state_name(st));
		return -EBUSY;
	}
	if (st != LEG_FAILED) {
		int r = mirror_fail_leg(m, index);

		if (r == -EBUSY) {
			set_error(m, error,
				  "leg %u (%s) is the last in-sync leg of mirror %s: removing it "
				  "would lose the data",
				  index, leg->name, m->name);
			return -EBUSY;
		}
	}

	resync_stop(m);
	mirror_freeze(m);
	dev = detach_dev(m, leg);
	memset(leg->uuid, 0, sizeof(leg->uuid));
	atomic_store(&leg->state, LEG_REMOVED);
	/* A removed last slot goes: a hot-added leg removed again leaves the mirror as it was. */
	while (m->num_legs > 1 && leg_state(&m->legs[m->num_legs - 1]) == LEG_REMOVED) {
		unsigned int last = m->num_legs - 1;

		atomic_store(&m->num_legs, last);
		g_mutex_lock(&m->sb_lock);
		if (m->array.num_legs > last) {
			memset(&m->array.roles[last], 0, sizeof(m->array.roles[last]));
			if (m->array.num_legs == last + 1)
				m->array.num_legs = last;
		}
		g_mutex_unlock(&m->sb_lock);
	}
	metadata_write(m, true, false);
	resync_start(m);
	mirror_thaw(m);
	dmio_dev_close(dev);
	mirror_event(m, "LegRemoved", G_LOG_LEVEL_MESSAGE, (int)index,
		     "leg %u (%s, %s) removed from mirror %s", index, leg->name, leg->path,
		     m->name);
	return 0;
}

int mirror_resync(struct mirror *m, bool full, GError **error)
{
	unsigned int in_sync;

	if (m->metadata != METADATA_INTERNAL || m->bitmap == NULL) {
		set_error(m, error,
			  "resync on request needs metadata = internal (with metadata = none "
			  "every start resyncs in full)");
		return -ENOTSUP;
	}
	if (atomic_load(&m->resync_running)) {
		set_error(m, error, "a resync of mirror %s is running already", m->name);
		return -EALREADY;
	}
	in_sync = mirror_count_in_sync(m);
	if (full && in_sync < 2) {
		set_error(m, error,
			  "mirror %s has %u in-sync legs: a full resync needs two (add a leg "
			  "instead)",
			  m->name, in_sync);
		return -EBUSY;
	}
	resync_stop(m);
	mirror_freeze(m);
	if (full) {
		int r = bitmap_set_all(m->bitmap);

		if (r < 0) {
			mirror_thaw(m);
			set_error(m, error, "cannot mark every region dirty: %s", g_strerror(-r));
			return r;
		}
		/* Every region differs until copied: reads of it come from the source. */
		m->unclean = true;
		m->full_requested = true;
	}
	resync_start(m);
	mirror_thaw(m);
	return 0;
}
