/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Assembly decisions (assemble.h).  md's rules: the legs with the highest events counter are
 * authoritative; a leg with fewer events missed writes and is stale; its resync can use the
 * bitmap when no bit was cleared since it fell behind (its events >= events_cleared), else it is
 * copied in full.  Two legs that each recorded the other as failed both went on alone: split
 * brain, which only the operator can settle.  A leg is who its superblock says: it takes the
 * slot the authority lists its UUID in, whatever the config's order or names; legs that
 * disagree on the array's layout, or whose events counter could wrap, are refused.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "mirror/assemble.h"

/* How a leg is named in messages and recorded in superblocks: redacted (assemble.h). */
#define SHOWN(l) ((l)->shown != NULL ? (l)->shown : (l)->path)

GQuark assemble_error_quark(void)
{
	return g_quark_from_static_string("assemble-error-quark");
}

/* The slot of the roles table that holds uuid, or -1. */
int assemble_slot_of(const struct superblock *sb, const uint8_t uuid[16])
{
	unsigned int i;

	for (i = 0; i < sb->num_legs; i++)
		if (sb->roles[i].role != SB_ROLE_EMPTY && memcmp(sb->roles[i].uuid, uuid, 16) == 0)
			return (int)i;
	return -1;
}

/* Whether x's superblock records y as failed. */
static bool records_failed(const struct superblock *x, const struct superblock *y)
{
	int slot = assemble_slot_of(x, y->leg_uuid);

	return slot >= 0 && x->roles[slot].role == SB_ROLE_FAILED;
}

/* The array UUID most present legs carry (ties: the first leg's). */
static const uint8_t *majority_array(const struct assemble_input *legs, unsigned int n)
{
	const uint8_t *best = NULL;
	unsigned int best_count = 0, i, j;

	for (i = 0; i < n; i++) {
		unsigned int count = 0;

		if (!legs[i].present)
			continue;
		for (j = 0; j < n; j++)
			count += legs[j].present &&
				 memcmp(legs[j].sb.array_uuid, legs[i].sb.array_uuid, 16) == 0;
		if (count > best_count) {
			best = legs[i].sb.array_uuid;
			best_count = count;
		}
	}
	return best;
}

static gboolean check_legs(const struct assemble_input *legs, unsigned int n, GError **error)
{
	const uint8_t *array;
	char uuid[37], other[37];
	unsigned int i, j, present = 0;

	for (i = 0; i < n; i++) {
		const struct assemble_input *l = &legs[i];

		if (!l->present)
			continue;
		present++;
		if (l->sb_error == SB_ERROR_MAGIC) {
			g_set_error(error, ASSEMBLE_ERROR, ASSEMBLE_ERROR_NO_SUPERBLOCK,
				    "leg '%s' (%s) has no fusemirror superblock: create the mirror "
				    "with 'fusemirrorctl create' first",
				    l->name, SHOWN(l));
			return FALSE;
		}
		if (l->sb_error != SB_ERROR_NONE) {
			g_set_error(error, ASSEMBLE_ERROR, ASSEMBLE_ERROR_CORRUPT,
				    "leg '%s' (%s) has a bad superblock: %s", l->name, SHOWN(l),
				    l->sb_why != NULL ? l->sb_why : "unreadable");
			return FALSE;
		}
	}
	if (present == 0) {
		g_set_error(error, ASSEMBLE_ERROR, ASSEMBLE_ERROR_NO_LEG,
			    "no leg of the mirror is present");
		return FALSE;
	}
	for (i = 0; i < n; i++) {
		const struct assemble_input *l = &legs[i];

		/* Starting and stopping bump it twice, each failure once more. */
		if (l->present && l->sb.events > SB_EVENTS_LIMIT) {
			g_set_error(error, ASSEMBLE_ERROR, ASSEMBLE_ERROR_EVENTS,
				    "leg '%s' (%s): events %" G_GUINT64_FORMAT
				    " is too close to the counter's limit 2^64-1 (a mirror starts "
				    "with at most %" G_GUINT64_FORMAT
				    "): the superblock is damaged or forged; nothing was written",
				    l->name, SHOWN(l), l->sb.events, (guint64)SB_EVENTS_LIMIT);
			return FALSE;
		}
	}
	array = majority_array(legs, n);
	for (i = 0; i < n; i++) {
		const struct assemble_input *l = &legs[i];

		if (!l->present)
			continue;
		if (memcmp(l->sb.array_uuid, array, 16) != 0) {
			uuid_format(l->sb.array_uuid, uuid);
			uuid_format(array, other);
			g_set_error(
			    error, ASSEMBLE_ERROR, ASSEMBLE_ERROR_FOREIGN,
			    "leg '%s' (%s) belongs to another array ('%s', uuid %s), not to "
			    "this one (uuid %s)",
			    l->name, SHOWN(l), l->sb.name, uuid, other);
			return FALSE;
		}
		if (l->dev_bytes < l->sb.data_offset + l->sb.data_size) {
			g_set_error(error, ASSEMBLE_ERROR, ASSEMBLE_ERROR_TOO_SMALL,
				    "leg '%s' (%s) is %" G_GUINT64_FORMAT
				    " bytes, smaller than its data area ends (%" G_GUINT64_FORMAT
				    "): truncated?",
				    l->name, SHOWN(l), l->dev_bytes,
				    l->sb.data_offset + l->sb.data_size);
			return FALSE;
		}
		for (j = 0; j < i; j++) {
			if (legs[j].present &&
			    memcmp(legs[j].sb.leg_uuid, l->sb.leg_uuid, 16) == 0) {
				g_set_error(
				    error, ASSEMBLE_ERROR, ASSEMBLE_ERROR_DUPLICATE,
				    "legs '%s' (%s) and '%s' (%s) carry the same leg UUID: one "
				    "is a copy of the other",
				    legs[j].name, SHOWN(&legs[j]), l->name, SHOWN(l));
				return FALSE;
			}
		}
	}
	return TRUE;
}

/*
 * The array's layout is fixed at create: every leg must agree with the authority on it.  Only
 * the number of slots changes (hot add, remove), and a leg that missed that change is behind:
 * legs at the same events were written by one commit and must agree on it too.
 */
static gboolean check_geometry(const struct assemble_input *legs, unsigned int n,
			       unsigned int authority, GError **error)
{
	const struct assemble_input *a = &legs[authority];
	unsigned int i, f;

	for (i = 0; i < n; i++) {
		const struct assemble_input *l = &legs[i];
		const struct {
			const char *field;
			uint64_t mine, theirs;
			bool must;
		} fields[] = {
		    {"data_offset", l->sb.data_offset, a->sb.data_offset, true},
		    {"data_size", l->sb.data_size, a->sb.data_size, true},
		    {"region_size", l->sb.region_size, a->sb.region_size, true},
		    {"bitmap_offset", l->sb.bitmap_offset, a->sb.bitmap_offset, true},
		    {"bitmap_bytes", l->sb.bitmap_bytes, a->sb.bitmap_bytes, true},
		    {"num_legs (slots) at equal events", l->sb.num_legs, a->sb.num_legs,
		     l->sb.events == a->sb.events},
		};

		if (!l->present || i == authority)
			continue;
		for (f = 0; f < G_N_ELEMENTS(fields); f++) {
			if (!fields[f].must || fields[f].mine == fields[f].theirs)
				continue;
			g_set_error(error, ASSEMBLE_ERROR, ASSEMBLE_ERROR_GEOMETRY,
				    "legs '%s' (%s, events %" G_GUINT64_FORMAT ") and '%s' (%s, "
				    "events %" G_GUINT64_FORMAT ") disagree on the array's "
				    "geometry: %s %" G_GUINT64_FORMAT " and %" G_GUINT64_FORMAT
				    "; the layout never changes, so one superblock is damaged: "
				    "nothing was written",
				    a->name, SHOWN(a), a->sb.events, l->name, SHOWN(l),
				    l->sb.events, fields[f].field, fields[f].theirs,
				    fields[f].mine);
			return FALSE;
		}
	}
	return TRUE;
}

/*
 * Each present leg into the slot where the authority lists its UUID, which is the slot its own
 * superblock names; each absent configured leg into the unfilled member slot that records its
 * name, else its path.  The config's order and names never decide a slot.
 */
static gboolean place_legs(const struct assemble_input *legs, unsigned int n,
			   unsigned int authority, struct assemble_result *out, GError **error)
{
	const struct superblock *auth = &legs[authority].sb;
	char uuid[37];
	unsigned int i, s, pass;

	for (s = 0; s < SB_MAX_LEGS; s++)
		out->slot_leg[s] = -1;
	for (i = 0; i < n; i++) {
		const struct assemble_input *l = &legs[i];
		int slot;

		out->legs[i].slot = -1;
		if (!l->present)
			continue;
		slot = assemble_slot_of(auth, l->sb.leg_uuid);
		if (slot < 0) {
			uuid_format(l->sb.leg_uuid, uuid);
			g_set_error(error, ASSEMBLE_ERROR, ASSEMBLE_ERROR_NOT_MEMBER,
				    "leg '%s' (%s) is not a member of mirror '%s' any more: the "
				    "newest superblock (leg '%s', events %" G_GUINT64_FORMAT
				    ") does not list its leg uuid %s, so it was removed or "
				    "replaced since; take it out of the config, or add it back "
				    "with 'fusemirrorctl add' (a full resync)",
				    l->name, SHOWN(l), auth->name, legs[authority].name,
				    auth->events, uuid);
			return FALSE;
		}
		if ((unsigned int)slot != l->sb.leg_index) {
			g_set_error(
			    error, ASSEMBLE_ERROR, ASSEMBLE_ERROR_SLOT,
			    "leg '%s' (%s) says it is slot %" G_GUINT32_FORMAT
			    " (leg_index), but the newest superblock (leg '%s') lists it in "
			    "slot %d: its superblock is damaged; nothing was written",
			    l->name, SHOWN(l), l->sb.leg_index, legs[authority].name, slot);
			return FALSE;
		}
		out->legs[i].slot = slot;
		out->slot_leg[slot] = (int)i;
	}
	/* Names first: two legs may have shared a path (a device renamed), never a name. */
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < n; i++) {
			const struct assemble_input *l = &legs[i];
			const char *mine = pass == 0 ? l->name : SHOWN(l);

			if (l->present || out->legs[i].slot >= 0 || mine == NULL || *mine == '\0')
				continue;
			for (s = 0; s < auth->num_legs && s < SB_MAX_LEGS; s++) {
				const struct sb_leg_role *r = &auth->roles[s];

				if (r->role == SB_ROLE_EMPTY || out->slot_leg[s] >= 0 ||
				    strcmp(pass == 0 ? r->name : r->path, mine) != 0)
					continue;
				out->legs[i].slot = (int)s;
				out->slot_leg[s] = (int)i;
				break;
			}
		}
	}
	for (s = 0; s < auth->num_legs && s < SB_MAX_LEGS; s++)
		out->missing += auth->roles[s].role != SB_ROLE_EMPTY &&
				(out->slot_leg[s] < 0 || !legs[out->slot_leg[s]].present);
	return TRUE;
}

gboolean assemble_decide(const struct assemble_input *legs, unsigned int n, int force_source,
			 struct assemble_result *out, GError **error)
{
	const struct superblock *auth;
	unsigned int i, j;
	int authority = -1;

	memset(out, 0, sizeof(*out));
	if (!check_legs(legs, n, error))
		return FALSE;
	if (force_source >= 0 && ((unsigned int)force_source >= n || !legs[force_source].present)) {
		g_set_error(error, ASSEMBLE_ERROR, ASSEMBLE_ERROR_FORCE_SOURCE,
			    "the forced source leg is not present");
		return FALSE;
	}

	/* Split brain: two legs that each recorded the other as failed. */
	for (i = 0; i < n && force_source < 0; i++) {
		for (j = i + 1; j < n; j++) {
			if (!legs[i].present || !legs[j].present)
				continue;
			if (records_failed(&legs[i].sb, &legs[j].sb) &&
			    records_failed(&legs[j].sb, &legs[i].sb)) {
				g_set_error(
				    error, ASSEMBLE_ERROR, ASSEMBLE_ERROR_SPLIT_BRAIN,
				    "split brain: legs '%s' (events %" G_GUINT64_FORMAT
				    ") and '%s' (events %" G_GUINT64_FORMAT
				    ") each went on without the other; choose the one to keep "
				    "with --force-source LEG (the other is overwritten)",
				    legs[i].name, legs[i].sb.events, legs[j].name,
				    legs[j].sb.events);
				return FALSE;
			}
		}
	}

	if (force_source >= 0) {
		authority = force_source;
	} else {
		for (i = 0; i < n; i++)
			if (legs[i].present &&
			    (authority < 0 || legs[i].sb.events > legs[authority].sb.events))
				authority = (int)i;
	}
	auth = &legs[authority].sb;
	out->authority = (unsigned int)authority;
	out->array = *auth;
	out->unclean = !(auth->flags & SB_FLAG_CLEAN);
	if (!check_geometry(legs, n, (unsigned int)authority, error) ||
	    !place_legs(legs, n, (unsigned int)authority, out, error))
		return FALSE;

	for (i = 0; i < n; i++) {
		const struct superblock *sb = &legs[i].sb;
		struct assemble_leg *l = &out->legs[i];
		int slot;

		if (!legs[i].present) {
			l->role = ASSEMBLE_MISSING;
			continue;
		}
		slot = l->slot;
		if (force_source >= 0 && (int)i != force_source) {
			/* After a split brain the bitmap cannot tell what differs. */
			l->role = ASSEMBLE_STALE;
			l->resync = RESYNC_FULL;
			l->recovery_offset = 0;
		} else if (sb->events == auth->events && slot >= 0 &&
			   auth->roles[slot].role == SB_ROLE_IN_SYNC) {
			l->role = ASSEMBLE_IN_SYNC;
		} else if (sb->events + 1 == auth->events && slot >= 0 &&
			   auth->roles[slot].role == SB_ROLE_IN_SYNC &&
			   sb->roles[sb->leg_index].role == SB_ROLE_IN_SYNC &&
			   sb->recovery_offset == SB_RECOVERY_DONE) {
			/*
			 * One commit behind, and that commit still counts it in sync: a power cut
			 * fell between the legs' superblock writes of one commit.  Had it missed a
			 * write, the commit acknowledging that write would record it failed.
			 */
			l->role = ASSEMBLE_IN_SYNC;
		} else if (sb->events == auth->events && slot >= 0 &&
			   auth->roles[slot].role == SB_ROLE_RESYNCING) {
			/* Being rebuilt (a new array's initial sync, or an interrupted resync). */
			l->role = ASSEMBLE_STALE;
			l->resync = RESYNC_FULL;
			l->recovery_offset =
			    sb->recovery_offset == SB_RECOVERY_DONE ? 0 : sb->recovery_offset;
		} else if (sb->events >= auth->events_cleared && sb->events < auth->events &&
			   sb->recovery_offset == SB_RECOVERY_DONE) {
			/* Fell behind while the bitmap kept every region it missed. */
			l->role = ASSEMBLE_STALE;
			l->resync = RESYNC_BITMAP;
		} else {
			l->role = ASSEMBLE_STALE;
			l->resync = RESYNC_FULL;
			l->recovery_offset = 0;
		}
	}
	if (out->legs[authority].role != ASSEMBLE_IN_SYNC) {
		/* The newest superblock's own leg is not in sync (e.g. still being rebuilt). */
		for (i = 0; i < n; i++)
			if (out->legs[i].role == ASSEMBLE_IN_SYNC)
				break;
		if (i == n) {
			g_set_error(error, ASSEMBLE_ERROR, ASSEMBLE_ERROR_NO_LEG,
				    "no leg holds a complete copy: leg '%s' is still being rebuilt "
				    "and no in-sync leg is present",
				    legs[authority].name);
			return FALSE;
		}
	}
	return TRUE;
}
