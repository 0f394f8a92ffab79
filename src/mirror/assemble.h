/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Assembly: from the superblocks found on the configured legs, decide which legs are
 * authoritative, which are stale and how each must be resynced - or refuse, naming the leg.
 * A pure function over decoded superblocks, so that every case is unit-testable.
 */
#ifndef FUSEMIRROR_ASSEMBLE_H
#define FUSEMIRROR_ASSEMBLE_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "mirror/superblock.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ASSEMBLE_ERROR (assemble_error_quark())
GQuark assemble_error_quark(void);

enum assemble_error {
	ASSEMBLE_ERROR_NO_SUPERBLOCK, /* a leg was never created (or was wiped) */
	ASSEMBLE_ERROR_CORRUPT,	      /* bad checksum, unknown version, field out of range */
	ASSEMBLE_ERROR_FOREIGN,	      /* a leg of another array */
	ASSEMBLE_ERROR_DUPLICATE,     /* two legs with one leg UUID (a copy) */
	ASSEMBLE_ERROR_TOO_SMALL,     /* a leg shorter than its data area (truncated) */
	ASSEMBLE_ERROR_SPLIT_BRAIN,   /* two legs that each went on without the other */
	ASSEMBLE_ERROR_NO_LEG,	      /* no leg present at all */
	ASSEMBLE_ERROR_FORCE_SOURCE,  /* --force-source names no usable leg */
	ASSEMBLE_ERROR_NOT_MEMBER,    /* a leg the newest superblock does not list (removed) */
	ASSEMBLE_ERROR_SLOT,	      /* a leg's own slot is not where the array lists it */
	ASSEMBLE_ERROR_GEOMETRY,      /* legs that disagree on the array's layout */
	ASSEMBLE_ERROR_EVENTS,	      /* an events counter too close to 2^64 - 1 */
};

/* What assembly found on one configured leg. */
struct assemble_input {
	const char *name; /* config name, for messages */
	const char *path;
	const char *shown;  /* path as messages and superblocks show it (NULL: path itself) */
	bool present;	    /* opened */
	uint64_t dev_bytes; /* its size */
	enum sb_error sb_error;
	const char *sb_why; /* decode explanation when sb_error != SB_ERROR_NONE */
	struct superblock sb;
};

enum assemble_role {
	ASSEMBLE_IN_SYNC = 0, /* authoritative: may be read */
	ASSEMBLE_STALE,	      /* missed writes: never read, resynced */
	ASSEMBLE_MISSING,     /* not present: the mirror runs degraded */
};

enum assemble_resync {
	RESYNC_NONE = 0,
	RESYNC_BITMAP, /* copy the regions whose bits are set */
	RESYNC_FULL,   /* copy everything from recovery_offset on */
};

/* One configured leg (legs[] of the input, in the config's order). */
struct assemble_leg {
	enum assemble_role role;
	enum assemble_resync resync;
	uint64_t recovery_offset; /* for RESYNC_FULL: where the copy starts */
	/*
	 * The slot it takes: a present leg's is where the authority lists its leg UUID; an absent
	 * one's is the unfilled member slot recording its name (else its path), or -1.
	 */
	int slot;
};

struct assemble_result {
	unsigned int authority;	 /* index of the leg whose superblock is the array's */
	struct superblock array; /* that superblock: its num_legs are the mirror's slots */
	bool unclean;		 /* not shut down cleanly: resync the dirty regions */
	unsigned int missing;	 /* member slots that no present leg fills */
	struct assemble_leg legs[SB_MAX_LEGS];
	/* Each slot's configured leg (an index of legs[]), or -1: empty, or missing unnamed. */
	int slot_leg[SB_MAX_LEGS];
};

/* The slot of sb's roles table that holds the leg uuid, or -1. */
int assemble_slot_of(const struct superblock *sb, const uint8_t uuid[16]);

/*
 * Decide.  legs[] are the configured legs in the config's order, which says nothing of their
 * slots: each present leg takes the slot its superblock names.  force_source, when not negative,
 * is the index of the leg to trust in a split brain (every other leg is then resynced from it in
 * full).  Returns TRUE with *out filled, or FALSE with *error saying which leg and why.
 */
gboolean assemble_decide(const struct assemble_input *legs, unsigned int num_legs, int force_source,
			 struct assemble_result *out, GError **error);

#ifdef __cplusplus
}
#endif

#endif /* FUSEMIRROR_ASSEMBLE_H */
