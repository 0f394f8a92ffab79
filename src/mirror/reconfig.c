/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Control commands (mdadm's --fail, --add, --re-add, --remove; a resync on request), one at a
 * time under reconfig_lock (md's reconfig_mutex), and the reasons of their refusals.
 *
 * The leg array never moves (it holds SB_MAX_LEGS slots), so a request that loops over the
 * legs always sees whole slots.  A change of the set of legs happens with the resync thread
 * stopped and the mirror frozen (no request in flight), so that a write either went to the new
 * set of legs or was finished before it existed, and a device is closed with no I/O on it.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "mirror/mirror-internal.h"

/* ---- Refusals, per caller ------------------------------------------------------------------ */

struct last_error {
	uint64_t caller;
	char *message;
};

static void last_error_free(gpointer data)
{
	struct last_error *e = data;

	g_free(e->message);
	g_free(e);
}

void mirror_set_last_error(struct mirror *m, uint64_t caller, const char *message)
{
	struct last_error *e = NULL;
	GList *l;

	g_mutex_lock(&m->last_error_lock);
	for (l = m->last_errors.head; l != NULL; l = l->next) {
		if (((struct last_error *)l->data)->caller == caller) {
			e = l->data;
			g_queue_delete_link(&m->last_errors, l);
			break;
		}
	}
	if (e == NULL) {
		e = g_new0(struct last_error, 1);
		e->caller = caller;
	}
	g_free(e->message);
	e->message = g_strdup(message);
	g_queue_push_head(&m->last_errors, e);
	while (g_queue_get_length(&m->last_errors) > MIRROR_LAST_ERRORS)
		last_error_free(g_queue_pop_tail(&m->last_errors));
	g_mutex_unlock(&m->last_error_lock);
}

char *mirror_last_error(struct mirror *m, uint64_t caller)
{
	char *s = NULL;
	GList *l;

	g_mutex_lock(&m->last_error_lock);
	for (l = m->last_errors.head; l != NULL && s == NULL; l = l->next)
		if (((struct last_error *)l->data)->caller == caller)
			s = g_strdup(((struct last_error *)l->data)->message);
	g_mutex_unlock(&m->last_error_lock);
	return s != NULL ? s : g_strdup("");
}

void reconfig_init(struct mirror *m)
{
	g_mutex_init(&m->reconfig_lock);
	g_mutex_init(&m->last_error_lock);
	g_queue_init(&m->last_errors);
}

void reconfig_clear(struct mirror *m)
{
	g_queue_clear_full(&m->last_errors, last_error_free);
	g_mutex_clear(&m->last_error_lock);
	g_mutex_clear(&m->reconfig_lock);
}

static void set_error(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void set_error(GError **error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	g_propagate_error(error, g_error_new_valist(MIRROR_ERROR, MIRROR_ERROR_LEG, fmt, ap));
	va_end(ap);
}

char *mirror_uuid(struct mirror *m)
{
	struct superblock sb;
	char text[37];

	if (m->metadata != METADATA_INTERNAL)
		return g_strdup("");
	metadata_snapshot(m, &sb);
	uuid_format(sb.array_uuid, text);
	return g_strdup(text);
}

/* ---- fail ---------------------------------------------------------------------------------- */

int mirror_fail_leg(struct mirror *m, unsigned int index, GError **error)
{
	int r;

	g_mutex_lock(&m->reconfig_lock);
	if (index >= atomic_load(&m->num_legs)) {
		set_error(error, "mirror %s has no leg %u", m->name, index);
		r = -EINVAL;
		goto out;
	}
	r = leg_fail(m, &m->legs[index], "failed by the operator", 0);
	/* Failed already and waiting to reconnect: the operator wants it kept out. */
	if (r == -EALREADY && reconnect_cancel(m, index, "failed by the operator"))
		r = 0;
	else if (r == -EALREADY)
		set_error(error,
			  "leg %u is not in sync: it has failed already, or its slot is removed",
			  index);
	else if (r == -EBUSY)
		set_error(error, "leg %u is the last in-sync leg", index);
	else if (metadata_sync(m) < 0)
		g_warning("mirror %s: the failure of leg %u is not in the superblocks", m->name,
			  index);
out:
	g_mutex_unlock(&m->reconfig_lock);
	return r;
}

/* ---- add ----------------------------------------------------------------------------------- */

/*
 * What the superblock found on a leg to be added says: its slot in this array (re-add) or -1,
 * and how it catches up.  Returns 0, or -EEXIST with *error when it must not be taken.
 */
static int judge_superblock(struct mirror *m, const char *shown, struct dmio_dev *dev, bool force,
			    int *slot, enum assemble_resync *resync, uint8_t uuid[16],
			    GError **error)
{
	void *buf = aligned_alloc(4096, SB_SIZE);
	struct superblock sb, array;
	char *why = NULL;
	enum sb_error e;
	int r;

	*slot = -1;
	*resync = RESYNC_FULL;
	if (buf == NULL)
		return -ENOMEM;
	r = superblock_read_raw(dev, buf);
	if (r < 0) {
		set_error(error, "cannot read the superblock area of %s: %s", shown,
			  g_strerror(-r));
		free(buf);
		return r;
	}
	e = superblock_decode(buf, &sb, &why);
	free(buf);
	metadata_snapshot(m, &array);
	if (e == SB_ERROR_MAGIC) {
		r = 0;
	} else if (e != SB_ERROR_NONE) {
		r = force ? 0 : -EEXIST;
		if (r < 0)
			set_error(error,
				  "%s carries a damaged fusemirror superblock (%s); add --force "
				  "to overwrite it",
				  shown, why);
	} else if (memcmp(sb.array_uuid, array.array_uuid, 16) != 0) {
		char text[37];

		uuid_format(sb.array_uuid, text);
		r = force ? 0 : -EEXIST;
		if (r < 0)
			set_error(error,
				  "%s belongs to another fusemirror array ('%s', uuid %s); add "
				  "--force to overwrite it",
				  shown, sb.name, text);
	} else {
		/* A former member: back into its slot, from the bitmap when it covers the gap. */
		*slot = assemble_slot_of(&array, sb.leg_uuid);
		memcpy(uuid, sb.leg_uuid, 16);
		if (*slot >= 0 && sb.events >= array.events_cleared && sb.events <= array.events &&
		    sb.recovery_offset == SB_RECOVERY_DONE && sb.data_offset == array.data_offset &&
		    sb.region_size == array.region_size)
			*resync = RESYNC_BITMAP;
		r = 0;
	}
	g_free(why);
	return r;
}

/* Checks before a leg is taken, then the slot: -errno with *error when it must not be. */
static int choose_slot(struct mirror *m, const char *path, struct dmio_dev *dev, bool force,
		       int *slot, bool *readd, enum assemble_resync *resync, uint8_t uuid[16],
		       GError **error)
{
	unsigned int i, n = atomic_load(&m->num_legs);
	uint64_t bytes, need;
	g_autofree char *shown = dmio_path_display(path);
	int r;

	for (i = 0; i < n; i++) {
		if (m->legs[i].dev != NULL && leg_state(&m->legs[i]) != LEG_FAILED &&
		    mirror_same_file(path, m->legs[i].path)) {
			set_error(error, "%s is already leg %u (%s) of mirror %s", shown, i,
				  m->legs[i].name, m->name);
			return -EEXIST;
		}
	}
	bytes = dmio_dev_sectors(dev) << DMIO_SECTOR_SHIFT;
	need = m->data_offset + m->size;
	if (bytes < need) {
		set_error(error,
			  "%s is %" PRIu64 " bytes: a leg of mirror %s needs at least %" PRIu64,
			  shown, bytes, m->name, need);
		return -ENOSPC;
	}
	r = judge_superblock(m, shown, dev, force, slot, resync, uuid, error);
	if (r < 0)
		return r;
	if (*slot >= 0 && (unsigned int)*slot < n && leg_state(&m->legs[*slot]) != LEG_FAILED) {
		set_error(error,
			  "%s carries the identity of leg %d (%s), which is live: is it a copy?",
			  shown, *slot, m->legs[*slot].name);
		return -EEXIST;
	}
	/* Its own slot, failed: a re-add.  (A slot past the legs in use is taken as new.) */
	*readd = *slot >= 0 && (unsigned int)*slot < n;
	if (!*readd)
		*resync = RESYNC_FULL;
	if (*slot < 0) {
		for (i = 0; i < n; i++)
			if (leg_state(&m->legs[i]) == LEG_REMOVED)
				break;
		*slot = (int)i;
		*resync = RESYNC_FULL;
	}
	if ((unsigned int)*slot >= SB_MAX_LEGS) {
		set_error(error, "mirror %s has no free leg slot (at most %u legs)", m->name,
			  SB_MAX_LEGS);
		return -EMLINK;
	}
	return 0;
}

/*
 * The name of a new leg: its file's name, or for an NBD URI the last part of its export name
 * (its host when it has none); never a secret of the URI.
 */
static char *new_leg_name(const char *path)
{
	g_autoptr(GUri) uri = NULL;
	const char *export;

	if (!dmio_path_is_uri(path))
		return g_path_get_basename(path);
	uri = g_uri_parse(path, G_URI_FLAGS_NON_DNS, NULL);
	if (uri == NULL)
		return g_strdup("nbd");
	export = strrchr(g_uri_get_path(uri), '/');
	if (export != NULL && export[1] != '\0')
		return g_strdup(export + 1);
	if (g_uri_get_host(uri) != NULL && *g_uri_get_host(uri) != '\0')
		return g_strdup(g_uri_get_host(uri));
	return g_strdup("nbd");
}

/*
 * The hot add of dev, open on path (own: the failed leg whose descriptor holds its claim, or -1);
 * dev is ours: used or closed.  expect >= 0 (a reconnect): only a re-add into slot expect is
 * taken, anything else is refused with -EEXIST.  Returns the slot, or -errno with *error.
 */
static int add_opened(struct mirror *m, const char *path, struct dmio_dev *dev, int own, bool force,
		      int expect, GError **error)
{
	enum assemble_resync resync;
	uint8_t uuid[16];
	struct dmio_dev *old;
	struct leg *leg;
	const char *name;
	char *basename = NULL;
	/* Messages name it by this: an NBD URI may carry a password. */
	g_autofree char *shown = dmio_path_display(path);
	unsigned int timeout_ms, delay_ms, tries;
	bool readd = false, wm; /* readd: set by choose_slot() when it returns 0 */
	int slot = -1, r;

	r = choose_slot(m, path, dev, force, &slot, &readd, &resync, uuid, error);
	if (r == 0 && expect >= 0 && (!readd || slot != expect)) {
		set_error(error, "%s would not go back into slot %d as its own member", shown,
			  expect);
		r = -EEXIST;
	}
	if (r == 0 && own >= 0 && slot != own) {
		set_error(error,
			  "%s is held by failed leg %d (%s) of mirror %s, and would not go back "
			  "into that slot: remove leg %d first",
			  shown, own, m->legs[own].name, m->name, own);
		r = -EBUSY;
	}
	if (r < 0) {
		dmio_dev_close(dev);
		return r;
	}
	if (!readd)
		uuid_generate_random_v4(uuid);

	scrub_stop(m); /* a pass compares a set of legs: it ends when the set changes */
	resync_stop(m);
	mirror_freeze(m);
	leg = &m->legs[slot];
	/* A failed leg re-added into its own slot: its old device goes. */
	old = leg_detach(m, leg);
	if (own >= 0) {
		/* That old descriptor held the claim: closed, the new one takes it over. */
		dmio_dev_close(g_steal_pointer(&old));
		r = claim_take_over(path, &dev);
		if (r < 0) {
			resync_start(m);
			mirror_thaw(m);
			set_error(error, "%s: cannot claim it once leg %d let it go: %s", shown,
				  slot, g_strerror(-r));
			return r;
		}
	}
	if ((unsigned int)slot >= atomic_load(&m->num_legs))
		leg_empty(m, (unsigned int)slot);
	/*
	 * A member back in its configured slot keeps its name; a new leg is named after its file
	 * (or its export).
	 */
	if (readd && leg->name != NULL && *leg->name != '\0') {
		name = leg->name;
	} else {
		basename = new_leg_name(path);
		name = basename;
	}
	/*
	 * A member back in its slot keeps what its [leg] group set: write-mostly, io-timeout,
	 * reconnect-delay and reconnect-max.
	 */
	wm = readd && atomic_load(&leg->write_mostly);
	timeout_ms = atomic_load(&leg->io_timeout_ms);
	delay_ms = atomic_load(&leg->reconnect_delay_ms);
	tries = atomic_load(&leg->reconnect_max);
	leg_attach(m, leg, name, path, dev, uuid, wm);
	if (readd) {
		atomic_store(&leg->io_timeout_ms, timeout_ms);
		atomic_store(&leg->reconnect_delay_ms, delay_ms);
		atomic_store(&leg->reconnect_max, tries);
	}
	leg->resync = resync;
	atomic_store(&leg->recovery_offset, 0);
	/* Published: a re-added member is written from now on; a new leg once its copy starts. */
	if (readd)
		r = leg_set_state(m, leg, LEG_FAILED, LEG_STALE);
	else
		r = leg_set_state(m, leg, LEG_REMOVED, LEG_SPARE);
	if (r == 0)
		r = metadata_sync(m);
	if (r == 0)
		r = bitmap_flush(m->bitmap);
	if (r == 0 && leg_state(leg) == LEG_FAILED)
		r = -EIO;
	resync_start(m);
	mirror_thaw(m);
	dmio_dev_close(old);
	if (r < 0) {
		set_error(error, "%s was added as leg %d but its metadata could not be written: %s",
			  shown, slot, g_strerror(-r));
		g_free(basename);
		return r;
	}
	mirror_event(m, "LegAdded", G_LOG_LEVEL_MESSAGE, slot,
		     "leg %d (%s, %s) added to mirror %s: %s", slot, leg->name, leg->shown, m->name,
		     resync == RESYNC_BITMAP ? "re-added, resyncing the regions it missed"
					     : "resyncing in full");
	g_free(basename);
	return slot;
}

int reconfig_add_leg_locked(struct mirror *m, const char *path, bool force, enum leg_direct direct,
			    GError **error)
{
	struct dmio_dev *dev = NULL;
	/* Messages name it by this: an NBD URI may carry a password. */
	g_autofree char *shown = dmio_path_display(path);
	g_autofree char *why = NULL;
	int own = -1, r;

	if (m->metadata != METADATA_INTERNAL) {
		set_error(error,
			  "hot add needs metadata = internal (the superblocks remember the legs)");
		return -ENOTSUP;
	}
	/* The claim (claim.c): held by another mirror or program, it is refused, naming it. */
	r = leg_open_dev(path, DMIO_DEV_EXCLUSIVE, direct, &dev, &why);
	if (r == -EBUSY) {
		g_clear_pointer(&why, g_free);
		r = claim_busy_for_add(m, path, direct, &dev, &own, error);
		if (r < 0)
			return r;
	}
	if (r < 0) {
		if (why != NULL)
			set_error(error, "%s: direct = true, but %s", shown, why);
		else if (r == -EINVAL)
			set_error(error, "%s is not a regular file or block device", shown);
		else
			set_error(error, "cannot open %s: %s", shown, g_strerror(-r));
		return r;
	}
	if (why != NULL)
		g_message("%s: no O_DIRECT, through the page cache: %s", shown, why);
	return add_opened(m, path, dev, own, force, -1, error);
}

/* ---- re-add of a leg that reconnected (reconnect.c) ---------------------------------------- */

/* Whether slot still holds the member uuid, failed `failures` times, on path. */
static bool still_failed_member(struct mirror *m, unsigned int slot, const uint8_t uuid[16],
				unsigned int failures, const char *path)
{
	struct leg *leg = &m->legs[slot];
	bool same;

	if (slot >= atomic_load(&m->num_legs))
		return false;
	g_mutex_lock(&m->state_lock);
	same = leg_state(leg) == LEG_FAILED && memcmp(leg->uuid, uuid, 16) == 0 &&
	       atomic_load(&leg->failures) == failures && leg->path != NULL &&
	       strcmp(leg->path, path) == 0;
	g_mutex_unlock(&m->state_lock);
	return same;
}

int reconfig_readd_locked(struct mirror *m, unsigned int slot, const uint8_t uuid[16],
			  unsigned int failures, const char *path, struct dmio_dev *dev,
			  const void *sb_buf, GError **error)
{
	struct superblock sb, array;
	char *why = NULL, text[37], want[37], found[37];
	enum sb_error e;
	int r = -EEXIST;

	if (m->metadata != METADATA_INTERNAL ||
	    !still_failed_member(m, slot, uuid, failures, path)) {
		dmio_dev_close(dev);
		return -ECANCELED;
	}
	/* Who came back, said precisely; then the hot add's own judgement, as for any re-add. */
	memset(&sb, 0, sizeof(sb));
	e = superblock_decode(sb_buf, &sb, &why);
	metadata_snapshot(m, &array);
	uuid_format(sb.array_uuid, text);
	uuid_format(sb.leg_uuid, found);
	uuid_format(uuid, want);
	if (e == SB_ERROR_MAGIC)
		set_error(error, "it carries no fusemirror superblock (another export?)");
	else if (e != SB_ERROR_NONE)
		set_error(error, "it carries a damaged fusemirror superblock (%s)", why);
	else if (memcmp(sb.array_uuid, array.array_uuid, 16) != 0)
		set_error(error, "it belongs to another fusemirror array ('%s', uuid %s)", sb.name,
			  text);
	else if (memcmp(sb.leg_uuid, uuid, 16) != 0)
		set_error(error, "it is another member of this array (leg uuid %s, not %s)", found,
			  want);
	else if (sb.events > array.events)
		set_error(error,
			  "its superblock is newer than the array's (events %" PRIu64 " > %" PRIu64
			  "): it was written elsewhere meanwhile (split brain)",
			  (uint64_t)sb.events, (uint64_t)array.events);
	else
		r = 0;
	g_free(why);
	if (r < 0) {
		dmio_dev_close(dev);
		return r;
	}
	return add_opened(m, path, dev, -1, false, (int)slot, error);
}

int mirror_add_leg(struct mirror *m, const char *path, bool force, GError **error)
{
	return mirror_add_leg_direct(m, path, force, LEG_DIRECT_AUTO, error);
}

int mirror_add_leg_direct(struct mirror *m, const char *path, bool force, enum leg_direct direct,
			  GError **error)
{
	int r;

	g_mutex_lock(&m->reconfig_lock);
	r = reconfig_add_leg_locked(m, path, force, direct, error);
	g_mutex_unlock(&m->reconfig_lock);
	return r;
}

/* ---- remove -------------------------------------------------------------------------------- */

static void drop_removed_tail(struct mirror *m);

int reconfig_remove_leg_locked(struct mirror *m, unsigned int index, bool force, GError **error)
{
	struct dmio_dev *dev;
	struct leg *leg;
	enum leg_state st;
	int r;

	if (index >= atomic_load(&m->num_legs)) {
		set_error(error, "mirror %s has no leg %u", m->name, index);
		return -EINVAL;
	}
	leg = &m->legs[index];
	st = leg_state(leg);
	if (st == LEG_REMOVED) {
		set_error(error, "leg %u of mirror %s is removed already", index, m->name);
		return -EALREADY;
	}
	if (st != LEG_FAILED && st != LEG_SPARE && !force) {
		set_error(error,
			  "leg %u (%s) is %s: only a failed leg is removed (fail it first, or "
			  "use --force)",
			  index, leg->name, leg_state_name(st));
		return -EBUSY;
	}
	if (st != LEG_FAILED && st != LEG_SPARE &&
	    leg_fail(m, leg, "removed by the operator", 0) == -EBUSY) {
		set_error(error,
			  "leg %u (%s) is the last in-sync leg of mirror %s: removing it would "
			  "lose the data",
			  index, leg->name, m->name);
		return -EBUSY;
	}

	scrub_stop(m); /* a pass compares a set of legs: it ends when the set changes */
	resync_stop(m);
	mirror_freeze(m);
	dev = leg_detach(m, leg);
	r = leg_set_state(m, leg, leg_state(leg), LEG_REMOVED);
	leg_forget_uuid(m, leg);
	drop_removed_tail(m);
	if (metadata_sync(m) < 0)
		g_warning("mirror %s: the removal of leg %u is not in the superblocks", m->name,
			  index);
	resync_start(m);
	mirror_thaw(m);
	dmio_dev_close(dev);
	/* Tries to reconnect it, if any, end with it (reconnect.c). */
	reconnect_kick(m);
	if (r == 0)
		mirror_event(m, "LegRemoved", G_LOG_LEVEL_MESSAGE, (int)index,
			     "leg %u (%s, %s) removed from mirror %s", index, leg->name, leg->shown,
			     m->name);
	return r;
}

/* Drop the removed slots at the end (a hot-added leg removed again leaves the mirror as it was).
 */
static void drop_removed_tail(struct mirror *m)
{
	unsigned int n = atomic_load(&m->num_legs);

	while (n > 1 && leg_state(&m->legs[n - 1]) == LEG_REMOVED)
		n--;
	if (n < atomic_load(&m->num_legs)) {
		legs_set_count(m, n);
		metadata_forget_slots(m, n);
	}
}

int reconfig_move_leg_locked(struct mirror *m, unsigned int from, unsigned int to)
{
	unsigned int slots = atomic_load(&m->num_legs);

	if (from >= slots || to >= slots || from == to ||
	    leg_state(&m->legs[from]) != LEG_IN_SYNC || leg_state(&m->legs[to]) != LEG_REMOVED)
		return -EINVAL;
	scrub_stop(m);
	resync_stop(m);
	mirror_freeze(m);
	leg_move(m, &m->legs[from], &m->legs[to]);
	drop_removed_tail(m);
	if (metadata_sync(m) < 0)
		g_warning("mirror %s: the move of leg %u into slot %u is not in the superblocks",
			  m->name, from, to);
	resync_start(m);
	mirror_thaw(m);
	return 0;
}

int mirror_remove_leg(struct mirror *m, unsigned int index, bool force, GError **error)
{
	int r;

	g_mutex_lock(&m->reconfig_lock);
	r = reconfig_remove_leg_locked(m, index, force, error);
	g_mutex_unlock(&m->reconfig_lock);
	return r;
}

/* ---- resync on request --------------------------------------------------------------------- */

static int resync_locked(struct mirror *m, bool full, GError **error)
{
	unsigned int in_sync;

	if (m->metadata != METADATA_INTERNAL || m->bitmap == NULL) {
		set_error(error, "resync on request needs metadata = internal (with metadata = "
				 "none every start resyncs in full)");
		return -ENOTSUP;
	}
	if (atomic_load(&m->resync_running)) {
		set_error(error, "a resync of mirror %s is running already", m->name);
		return -EALREADY;
	}
	if (scrub_running(m)) {
		set_error(error,
			  "a check of mirror %s is running: resync once it is over "
			  "('fusemirrorctl wait' follows it)",
			  m->name);
		return -EBUSY;
	}
	in_sync = mirror_count_in_sync(m);
	if (full && in_sync < 2) {
		set_error(error,
			  "mirror %s has %u in-sync legs: a full resync needs two (add a leg "
			  "instead)",
			  m->name, in_sync);
		return -EBUSY;
	}
	resync_stop(m);
	if (full) {
		int r = bitmap_set_all(m->bitmap);

		if (r < 0) {
			set_error(error, "cannot mark every region dirty: %s", g_strerror(-r));
			return r;
		}
		/* Every region differs until copied: reads of it come from the source. */
		atomic_store(&m->unclean, true);
		atomic_store(&m->full_requested, true);
		atomic_store(&m->rewriting, true);
	}
	resync_start(m);
	return 0;
}

int mirror_resync(struct mirror *m, bool full, GError **error)
{
	int r;

	g_mutex_lock(&m->reconfig_lock);
	r = resync_locked(m, full, error);
	g_mutex_unlock(&m->reconfig_lock);
	return r;
}

void mirror_set_read_policy(struct mirror *m, enum read_policy policy)
{
	atomic_store(&m->policy, (int)policy);
}

enum read_policy mirror_get_read_policy(const struct mirror *m)
{
	return (enum read_policy)atomic_load(&m->policy);
}

int mirror_set_write_mostly(struct mirror *m, unsigned int index, bool on)
{
	int r = -EINVAL;

	/* Under reconfig_lock: an add, remove or replace does not move the leg meanwhile. */
	g_mutex_lock(&m->reconfig_lock);
	if (index < atomic_load(&m->num_legs) && m->legs[index].dev != NULL) {
		atomic_store(&m->legs[index].write_mostly, on);
		r = 0;
	}
	g_mutex_unlock(&m->reconfig_lock);
	return r;
}
