/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The mirror layer's internals, shared by its files and its unit tests. */
#ifndef FUSEMIRROR_MIRROR_INTERNAL_H
#define FUSEMIRROR_MIRROR_INTERNAL_H

#include "mirror/atomics.h"

#include "dmio.h"
#include "mirror/assemble.h"
#include "mirror/bitmap.h"
#include "mirror/mirror.h"
#include "mirror/superblock.h"

#define MIRROR_ERROR (mirror_error_quark())
GQuark mirror_error_quark(void);

enum mirror_error {
	MIRROR_ERROR_LEG,    /* a leg cannot be used: missing, too small, duplicated */
	MIRROR_ERROR_ENGINE, /* the I/O engine cannot start */
};

struct leg {
	struct mirror *m;
	unsigned int index;
	char *name;
	char *path;
	bool write_mostly;
	struct dmio_dev *dev;
	atomic_int state; /* enum leg_state */
	atomic_uint pending;
	atomic_ullong read_errors;
	atomic_ullong write_errors;
	/* I/O error log rate limit, under m->lock. */
	gint64 log_window_start;
	unsigned int log_count;
	unsigned long log_suppressed;
	/* metadata = internal */
	uint8_t uuid[16];
	enum assemble_resync resync;   /* how a stale leg catches up */
	atomic_ullong recovery_offset; /* in sync below this (bytes of data) */
	gint64 recovery_saved;	       /* when recovery_offset was last written to its superblock */
};

struct mirror {
	char *name;
	enum read_policy policy;
	struct dmio_client *client;
	uint64_t size; /* bytes */
	bool assembled;
	/* Slots in use; grows on hot add (the array holds SB_MAX_LEGS, so legs never moves). */
	atomic_uint num_legs;
	struct leg *legs;
	/*
	 * Freezing: no request enters while frozen (io_begin waits), and the freezer waits for the
	 * ones in flight, so that a change of the leg set (hot add, remove, a resync starting) or a
	 * read-modify-write sees no request half issued.
	 */
	atomic_int frozen;
	GMutex freeze_lock;
	GCond freeze_cond;
	GPtrArray *retired; /* names and paths of replaced legs, freed at close */
	char *last_error;   /* under lock */
	GMutex lock;	    /* changes of leg state */
	atomic_ulong error_bits;
	atomic_ullong events;
	atomic_uint round_robin;
	atomic_uint inflight;
	mirror_event_fn event_fn;
	void *event_opaque;

	/* ---- metadata = internal ---- */
	enum metadata_mode metadata;
	uint64_t data_offset;	 /* bytes of every leg before the data (0 without metadata) */
	struct superblock array; /* the array's superblock; per-leg fields filled on write */
	GMutex sb_lock;		 /* serializes superblock updates */
	struct bitmap *bitmap;
	GThread *cleaner; /* clears idle bits */
	GMutex cleaner_lock;
	GCond cleaner_cond;
	bool stopping; /* under cleaner_lock */

	/* ---- resync ---- */
	GThread *resync_thread;
	atomic_bool resync_running; /* the thread has not finished */
	atomic_bool resync_active;  /* writes take region locks while set */
	atomic_bool resync_stop;
	bool unclean;		       /* resync the dirty regions among the in-sync legs */
	bool full_requested;	       /* ... every region of them: fusemirrorctl resync --full */
	atomic_int resync_source;      /* leg the unsynced regions are read from */
	atomic_ullong resync_cursor;   /* regions below it are done */
	atomic_ullong resync_done;     /* bytes copied */
	atomic_ullong resync_total;    /* bytes to copy */
	atomic_ullong resync_rate;     /* bytes/s, recent */
	atomic_ullong resync_rate_min; /* bytes/s */
	atomic_ullong resync_rate_max; /* bytes/s */
	GMutex region_lock;
	GCond region_cond;
	uint64_t region_busy;	    /* the region being copied, or UINT64_MAX */
	GHashTable *region_writers; /* region -> writes in flight, while resync_active */
};

static inline enum leg_state leg_state(const struct leg *leg)
{
	return (enum leg_state)atomic_load(&((struct leg *)leg)->state);
}

/* Log an event (g_log_structured with FUSEMIRROR_* fields) and pass it to the event handler. */
void mirror_event(struct mirror *m, const char *event, GLogLevelFlags level, int leg,
		  const char *format, ...) G_GNUC_PRINTF(5, 6);

/* The leg the read policy would choose now (for tests); -1 when none can serve. */
int mirror_pick_read_leg(struct mirror *m);

/* How many legs are in sync. */
unsigned int mirror_count_in_sync(const struct mirror *m);

/* Whether two paths name one file (or one block device). */
bool mirror_same_file(const char *a, const char *b);

/*
 * Make slot i an empty (LEG_REMOVED) or missing (LEG_FAILED) slot with no name, path or device;
 * its former strings are kept until close (a status request may still read them).
 */
void mirror_empty_slot(struct mirror *m, unsigned int i, enum leg_state state);

/* Whether a leg takes writes (in sync, or catching up). */
bool leg_is_written(const struct leg *leg);

/* ---- metadata.c ---- */

/* Read the superblocks, decide, set leg states, load the bitmap.  0 or -errno with *error. */
int metadata_assemble(struct mirror *m, int force_source, GError **error);
/*
 * Write every live leg's superblock: events bumped when bump, the clean flag as clean.
 * Caller holds no mirror lock except possibly m->lock.  0 when an in-sync leg took it.
 */
int metadata_write(struct mirror *m, bool bump, bool clean);
/* Start / stop the thread that clears idle bitmap bits. */
void metadata_start_cleaner(struct mirror *m);
void metadata_stop(struct mirror *m);
/* A synchronous dmio call on one or more legs of the mirror: 0 or -errno of the first failure. */
int mirror_sync_io(struct mirror *m, enum dmio_op op, unsigned int flags, struct leg **legs,
		   unsigned int n, void *buf, uint64_t leg_offset, uint64_t len, int *errors);
/* Freeze the mirror (no request in flight, none may enter but the caller's own) and thaw it. */
void mirror_freeze(struct mirror *m);
void mirror_thaw(struct mirror *m);
/* Fail a leg outside any lock (takes m->lock). */
void mirror_fail_leg_because(struct mirror *m, struct leg *leg, const char *why);

/* ---- resync.c ---- */

/* Start the background resync if any leg needs it. */
void resync_start(struct mirror *m);
/* Stop it (the progress is kept in the superblocks) and wait. */
void resync_stop(struct mirror *m);
/* Writes during a resync: wait while the region is being copied, count the write in. */
bool resync_write_enter(struct mirror *m, uint64_t offset, uint64_t len);
void resync_write_exit(struct mirror *m, uint64_t offset, uint64_t len);
/* Whether a read of the range must come from the resync source (unsynced after a crash). */
bool resync_read_needs_source(struct mirror *m, uint64_t offset, uint64_t len);

#endif /* FUSEMIRROR_MIRROR_INTERNAL_H */
