/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The mirror layer's internals, shared by its files and its unit tests.
 *
 * Files, each owning its part (and the fields marked with its name below):
 *   array.c      open, close, status
 *   event.c      events: the log line and the handler
 *   leg.c        a leg's identity and its state machine: the one door of leg state; the
 *                mirror's state that follows from its legs'
 *   quiesce.c    freezing: no request in flight while the set of legs changes
 *   rangelock.c  ordering of overlapping writes (rangelock.h)
 *   legio.c      synchronous I/O on chosen legs (metadata, resync)
 *   io.c         the data path: write fan-out, reads, read-modify-write, completions
 *   metadata.c   durable state: assembly from the superblocks, superblock commits in md's
 *                order, the write-intent bitmap's persistence, writes held until recorded
 *   cleaner.c    the thread that clears idle bitmap bits
 *   resync.c     the background copy
 *   reconfig.c   control commands: fail, add, remove, resync on request
 *   scrub.c      check and repair: the comparison of the in-sync legs (struct scrub, its own)
 *   failfast.c   the thread that fails a leg past its io-timeout and gives up on the I/O of
 *                failed legs
 *   replace.c    replace: a hot add, then the old leg's removal once the new one is in sync, by a
 *                thread of its own (struct replace, its own)
 *   readfix.c    read-error correction: rewrite a leg's unreadable range from another leg, or
 *                fail the leg (struct readfix, its own; md's fix_read_error)
 *   reconnect.c  remote legs: a leg on an NBD URI failed by a lost connection or its io-timeout
 *                is tried again in the background, with a growing delay, and re-added by itself
 *                when it comes back as itself (struct reconnect, its own thread and state)
 * Calls run one way, none back: array -> reconnect -> replace -> reconfig -> scrub -> resync ->
 * metadata -> legio -> leg -> event; io and cleaner call metadata and what is below it; io calls
 * readfix, which calls legio and what is below it; failfast calls leg; every one may use
 * rangelock, quiesce and dmio.  Two calls go up, each taking only a leaf: failfast_kick() and
 * reconnect_kick() (leg.c: a leg failed; reconfig.c: a slot changed), and reconnect_cancel()
 * (reconfig.c: the operator failed a leg already failed).
 *
 * ---- Locks, outermost first (a thread holding one never takes one above it) ----
 *   1. m->reconfig_lock   control commands, one at a time (md's reconfig_mutex).  Held across
 *                         resync stop/start, freezing and superblock commits.
 *   1a. m->failfast_lock  (failfast.c) held by the failfast thread across a scan of the slots,
 *                         during which it fails legs and abandons their I/O (running
 *                         completions); leg_detach() takes it.  Completions never take it.
 *   2. freezing           (quiesce.c; not a mutex) the freezer waits until no request is in
 *                         flight (nor a read-error correction: readfix.c enters too); taken under
 *                         reconfig_lock only.
 *   3. range holds        (rangelock.h; not a mutex) a write holds its range from before its
 *                         bitmap bits are made durable until its legs answered (its
 *                         write-behind legs too: io.c's behind part holds it, and its place in
 *                         flight, after the answer); the resync holds the chunk it copies, the
 *                         scrub the chunk it compares, a read-error
 *                         correction the range it rewrites (inside io_begin: freezing waits
 *                         for it).  Under a hold: bitmap persist_lock,
 * sb_lock, the leaves.  Nothing waits for a hold while holding a mutex.
 *   4. bitmap persist_lock (bitmap.c) held while bitmap blocks are written; completions never
 *                         take it.
 *   5. m->sb_lock         the array superblock and the commit bookkeeping; never held during
 *                         I/O (the writer marks sb_writing and drops it).
 *   6. m->state_lock      leg state and identity changes; a leaf, never held during I/O or
 *                         while an event is raised.
 *   freeze_lock, the rangelock buckets' mutexes, waiter locks, scrub->lock, replace->lock,
 *   readfix->lock, reconnect->lock, a reconnect try's lock, m->behind_lock (io.c): leaves
 *   inside their modules.  The replace thread waits for its new leg holding none of them, and
 *   takes reconfig_lock only to remove the old leg.  The reconnect thread takes reconfig_lock
 *   (nothing held) only to re-add a leg that came back; it connects and reads the new device's
 *   superblock holding no lock.
 *
 * ---- What completions may do ----
 * A completion (an engine thread, or the submitter with DMIO_REQ_CALLER_RUNS) never waits for
 * I/O: a write that must wait for a superblock commit is handed to the metadata thread
 * (metadata_defer), which completes it once the failure is recorded (md's MD_SB_CHANGE_PENDING).
 */
#ifndef FUSEMIRROR_MIRROR_INTERNAL_H
#define FUSEMIRROR_MIRROR_INTERNAL_H

#include "mirror/atomics.h"

#include "dmio.h"
#include "mirror/assemble.h"
#include "mirror/bitmap.h"
#include "mirror/mirror.h"
#include "mirror/rangelock.h"
#include "mirror/superblock.h"

#define MIRROR_ERROR (mirror_error_quark())
GQuark mirror_error_quark(void);

enum mirror_error {
	MIRROR_ERROR_LEG,    /* a leg cannot be used: missing, too small, duplicated */
	MIRROR_ERROR_ENGINE, /* the I/O engine cannot start */
};

#define MIRROR_ALIGN 4096u /* the mirror's size is a multiple of this */

struct leg {
	struct mirror *m;
	unsigned int index;
	/*
	 * Identity (leg.c: leg_attach, leg_detach, leg_empty, leg_forget_uuid).  Changed only
	 * while the mirror is frozen and the resync stopped, under state_lock; so requests, the
	 * resync and the cleaner read them freely, and status readers (not requests) read them
	 * under state_lock.
	 * Replaced strings are kept until close (m->retired): a pointer read stays valid.
	 */
	char *name;
	char *path;  /* as configured: opened, saved; an NBD URI may carry secrets */
	char *shown; /* path for every message, event, xattr and superblock: dmio_path_display() */
	/* The exception to the above: an atomic, which a reload also changes (reconfig.c). */
	atomic_bool write_mostly;
	struct dmio_dev *dev; /* NULL: an empty or missing slot */
	uint8_t uuid[16];
	/* State (leg.c: leg_set_state, leg_fail): written under state_lock, read as an atomic. */
	atomic_int state; /* enum leg_state */
	/* I/O accounting (io.c), atomics. */
	atomic_uint pending;
	atomic_ullong read_errors;
	atomic_ullong write_errors;
	/*
	 * Write-behind (io.c), atomics.  write_behind: how many writes of this write-mostly leg
	 * may be answered before it has them (0: none), set at open (array.c) and by "set"
	 * (mirror_set_write_behind), copied by leg_move; behind_writes and behind_bytes: such
	 * writes in flight on it now (reserved by the submitter, given back by the completion);
	 * behind_answered: writes answered before it had them, since it was attached.
	 */
	atomic_uint write_behind;
	atomic_uint behind_writes;
	atomic_ullong behind_bytes;
	atomic_ullong behind_answered;
	/* Failfast (failfast.c): io-timeout (0: none) set at open and by "set"; what its thread
	 * saw last, atomics; waiting_logged is the thread's own. */
	atomic_uint io_timeout_ms;
	atomic_ullong busy_ns; /* age of the oldest outstanding I/O */
	atomic_bool slow;
	bool waiting_logged;
	/* The positive errno of the latest I/O error on the leg, ETIMEDOUT for an io-timeout
	 * (legio.c: leg_note_io_error), an atomic; 0: none since it was attached. */
	atomic_int io_errno;
	/* Failures (leg.c: leg_fail, legs_fail_missed), written under state_lock, read as atomics:
	 * how many times the member of this slot failed, and the errno that failed it last (its
	 * io_errno then; 0 when the operator failed or removed it). */
	atomic_uint failures;
	atomic_int fail_errno;
	/* Reconnect (reconnect.c): the leg's reconnect-delay (ms) and reconnect-max (tries; 0:
	 * never), atomics set at open, by "set", and kept over a reconnect. */
	atomic_uint reconnect_delay_ms;
	atomic_uint reconnect_max;
	/* I/O error log rate limit (legio.c), under state_lock. */
	gint64 log_window_start;
	unsigned int log_count;
	unsigned long log_suppressed;
	/*
	 * Read-error correction (readfix.c; zeroed by leg_attach, while no correction is inside
	 * io_begin).  corrected_errors: an atomic, the corrections that worked (never decays).
	 * recent_read_errors and recent_since: under readfix->lock, md's read_errors (one per
	 * correction tried, halved every hour) and the monotonic µs it last halved.
	 */
	atomic_ullong corrected_errors;
	unsigned int recent_read_errors;
	gint64 recent_since;
	/* Catching up (resync.c; set by leg_attach): how, and how far. */
	enum assemble_resync resync;
	atomic_ullong recovery_offset; /* in sync below this (bytes of data), flushed */
};

struct mirror {
	/* Set at open (array.c), constant after; but policy, an atomic, also by a reload. */
	char *name;
	atomic_int policy; /* enum read_policy */
	struct dmio_client *client;
	uint64_t size; /* bytes; metadata.c sets it at assembly */
	enum metadata_mode metadata;
	uint64_t data_offset; /* bytes of every leg before the data (0 without metadata) */
	struct leg *legs;     /* SB_MAX_LEGS slots: the array never moves */
	struct rangelock *ranges;
	/* Serving: assembly is over (array.c).  Before it, leg.c allows the assembly moves. */
	atomic_bool serving;
	/* Slots in use (leg.c): grows on hot add while frozen, shrinks on remove while frozen. */
	atomic_uint num_legs;

	/* ---- array.c ---- */
	GPtrArray *retired;	  /* replaced names and paths, under state_lock, freed at close */
	mirror_event_fn event_fn; /* set at open before any thread of the mirror starts */
	void *event_opaque;
	/*
	 * The last EVENT_RING events (event.c), for user.fusemirror.event_log and so for
	 * fusemirrorctl monitor: under event_lock, a leaf taken with any other lock held.
	 * event_seq numbers them from 1; slot (seq - 1) % EVENT_RING holds event seq.
	 */
	GMutex event_lock;
	struct event_record *event_ring;
	uint64_t event_seq;
	atomic_ulong error_bits; /* legs that failed the last failed request (io.c) */
	atomic_ullong events;	 /* metadata = none: the state-change counter */
	atomic_uint round_robin; /* io.c */

	/* ---- io.c: write-behind ---- */
	/*
	 * The writes whose behind part is not done (struct behind_write, its own), and the reads
	 * parked on them (a read that only a write-behind leg can serve waits for the overlapping
	 * writes that leg has not finished): under behind_lock, a leaf taken by submitters and
	 * completions, never across I/O.  behind_count: the list's length, an atomic read without
	 * the lock by reads, so that reads pay nothing while no write is behind.
	 */
	GMutex behind_lock;
	struct behind_write *behind_head;
	atomic_uint behind_count;

	/* ---- leg.c ---- */
	GMutex state_lock;
	/*
	 * Generations of the in-memory state, atomics bumped by mirror_state_changed(): wanted by
	 * every change that superblocks record; bump the last that must bump events; hold the
	 * last that writes wait for (a leg failed).  metadata.c records them (gen_recorded).
	 */
	atomic_ullong gen_wanted;
	atomic_ullong gen_bump;
	atomic_ullong gen_hold;

	/* ---- quiesce.c ---- */
	atomic_uint inflight; /* requests between io_begin and io_end */
	atomic_int frozen;
	GMutex freeze_lock;
	GCond freeze_cond;

	/* ---- reconfig.c ---- */
	GMutex reconfig_lock;
	GMutex last_error_lock; /* a leaf: protects last_errors */
	GQueue last_errors;	/* of struct last_error, the latest caller first */

	/* ---- metadata.c (metadata = internal) ---- */
	GMutex sb_lock;
	GCond sb_cond;
	struct superblock
	    array;	 /* under sb_lock: the array's superblock, per-leg fields on write */
	bool sb_writing; /* under sb_lock: a commit is writing superblocks */
	atomic_ullong gen_recorded; /* the last generation durable; written under sb_lock */
	GThreadPool *deferred;	    /* one thread: requests completed once a commit recorded them */
	struct bitmap *bitmap;

	/* ---- cleaner.c ---- */
	GThread *cleaner;
	GMutex cleaner_lock;
	GCond cleaner_cond;
	bool stopping; /* under cleaner_lock */

	/* ---- resync.c ---- */
	GThread *resync_thread;	    /* started and joined under reconfig_lock (or at open/close) */
	atomic_bool resync_running; /* the thread has not finished */
	atomic_bool resync_active;  /* the mirror's state reads resyncing */
	atomic_bool resync_stop;
	atomic_bool unclean;	       /* the in-sync legs may differ in the dirty regions */
	atomic_bool full_requested;    /* ... in every region: fusemirrorctl resync --full */
	atomic_bool rewriting;	       /* the in-sync legs are rewritten on request (until done) */
	atomic_int resync_source;      /* leg the unsynced regions are read from */
	atomic_ullong resync_cursor;   /* regions below it are done */
	atomic_ullong resync_done;     /* bytes copied */
	atomic_ullong resync_total;    /* bytes to copy */
	atomic_ullong resync_rate;     /* bytes/s, recent */
	atomic_ullong resync_rate_min; /* bytes/s */
	atomic_ullong resync_rate_max; /* bytes/s */

	/* ---- scrub.c: its thread, progress and results (struct scrub, under its own leaf lock
	 * scrub->lock for the results; the thread started and joined under reconfig_lock) ---- */
	struct scrub *scrub;

	/* ---- failfast.c: the thread; failfast_wait_lock (a leaf) protects the flags ---- */
	GThread *failfast;
	GMutex failfast_lock;
	GMutex failfast_wait_lock;
	GCond failfast_cond;
	bool failfast_stopping;
	bool failfast_kicked;
	atomic_uint io_timeout_default_ms; /* for legs added later */

	/* ---- replace.c: its thread and the running replace (struct replace, its own; the
	 * thread started under reconfig_lock, joined at close or by the next replace) ---- */
	struct replace *replace;

	/* ---- readfix.c: the correction thread and its queue (struct readfix, under its own leaf
	 * lock readfix->lock); max_read_errors an atomic (0: never fail for corrected errors),
	 * set at open and by mirror_set_max_read_errors() ---- */
	struct readfix *readfix;
	atomic_uint max_read_errors;

	/* ---- reconnect.c: its thread and the per-slot tries (struct reconnect, under its own
	 * leaf lock reconnect->lock); the defaults for legs added later, atomics ---- */
	struct reconnect *reconnect;
	atomic_uint reconnect_delay_default_ms;
	atomic_uint reconnect_max_default;
};

static inline enum leg_state leg_state(const struct leg *leg)
{
	return (enum leg_state)atomic_load(&((struct leg *)leg)->state);
}

/* ---- event.c ---- */

/* Log an event (g_log_structured with FUSEMIRROR_* fields) and pass it to the event handler. */
#define EVENT_RING 64 /* events kept for user.fusemirror.event_log */
struct event_record {
	uint64_t seq;
	gint64 time_us; /* g_get_real_time() */
	GLogLevelFlags level;
	char *event;
	char *leg; /* its name, or NULL */
	char *message;
};
void event_init(struct mirror *m);
void event_clear(struct mirror *m);
/* The ring as text, oldest first (see user.fusemirror.event_log in fusemirrord(8)). */
char *event_log_text(struct mirror *m);

void mirror_event(struct mirror *m, const char *event, GLogLevelFlags level, int leg,
		  const char *format, ...) G_GNUC_PRINTF(5, 6);

/* ---- leg.c: the one door of leg state ---- */

/*
 * Move leg from `from` to `to`, under state_lock.  Returns 0; -EAGAIN when the leg is not in
 * `from` any more (another change came first: not a bug); -EPERM when the table of moves does
 * not allow it (a bug: logged as critical).  A move to failed is leg_fail()'s.  Every move is a
 * change for the superblocks (mirror_state_changed); the caller commits it when it must.
 */
int leg_set_state(struct mirror *m, struct leg *leg, enum leg_state from, enum leg_state to);

/*
 * Fail a leg, unless it is the last in-sync one.  Returns 0 (failed now), -EALREADY (failed or
 * removed already) or -EBUSY (the last in-sync leg: it is the mirror).  Writes are held from now
 * until a commit records the failure; LegFailed and DegradedArray are raised after the lock.
 */
int leg_fail(struct mirror *m, struct leg *leg, const char *why, unsigned long error_bits);

/*
 * A change the superblocks must record: returns its generation.  bump: it bumps events; hold:
 * writes are not acknowledged until it is durable (a leg failed: md's MD_SB_CHANGE_PENDING).
 */
uint64_t mirror_state_changed(struct mirror *m, bool bump, bool hold);

/*
 * The outcome of a request that some legs missed, judged and acted on under one lock (two
 * writes failing on different legs at once must not each leave the other leg, which missed an
 * acknowledged write, in sync): when a leg of `took` (a bitset of leg indexes) is in sync, fail
 * every leg of `missed` that is not failed already, why[i] saying why leg i.  Returns the
 * number of in-sync legs in took: 0 means the request failed and nothing was failed.
 */
unsigned int legs_fail_missed(struct mirror *m, uint64_t took, uint64_t missed, char *const *why,
			      unsigned long error_bits);

/* Whether the table allows from -> to; assembly: before the mirror serves. */
bool leg_move_allowed(enum leg_state from, enum leg_state to, bool assembly);

/*
 * Give slot leg a device and an identity (open, hot add), or take them away.  Only while the
 * mirror is not serving or is frozen.  The state moves through leg_set_state() separately.
 */
/*
 * Open the leg at path with flags (DMIO_DEV_EXCLUSIVE, ...) and O_DIRECT as direct says
 * (direct.c, fusemirror.conf(5)).  0 with *out, or -errno: dmio_dev_open()'s, -EOPNOTSUPP when
 * direct = true and the leg cannot have O_DIRECT, -EINVAL with direct = true on an NBD export.
 * *why (g_free it; NULL when there is nothing to say) tells why the leg has no O_DIRECT although
 * direct is not false: the reason of the refusal, or of auto's page cache.
 */
int leg_open_dev(const char *path, unsigned int flags, enum leg_direct direct,
		 struct dmio_dev **out, char **why);

void leg_attach(struct mirror *m, struct leg *leg, const char *name, const char *path,
		struct dmio_dev *dev, const uint8_t uuid[16], bool write_mostly);
struct dmio_dev *leg_detach(struct mirror *m, struct leg *leg);
/*
 * Move the in-sync member of slot from into the empty (removed, no UUID) slot to, with its
 * device, identity and counts; from becomes an empty slot.  Only while frozen, the resync and
 * scrub stopped: a replace puts the new leg where the old one was, as md's does.
 */
void leg_move(struct mirror *m, struct leg *from, struct leg *to);
/* A removed slot keeps its name and path but no UUID: no member is in it. */
void leg_forget_uuid(struct mirror *m, struct leg *leg);
/* Make slot i (and any slot between num_legs and it) an empty slot with no name or path,
 * removed; num_legs grows to cover it. */
void leg_empty(struct mirror *m, unsigned int i);
/* The number of slots becomes n (hot add grows it, remove drops removed slots at the end). */
void legs_set_count(struct mirror *m, unsigned int n);

/* Whether two paths name one file (or one block device, or one NBD export: equal URIs once
 * normalised, dmio_path_normalize()). */
bool mirror_same_file(const char *a, const char *b);

/* Whether a leg takes writes (in sync, or catching up). */
bool leg_is_written(const struct leg *leg);
/* How many legs are in sync. */
unsigned int mirror_count_in_sync(const struct mirror *m);
/* Whether every member is in sync (empty slots and spares aside): no leg needs the bitmap. */
bool mirror_all_in_sync(const struct mirror *m);

/* ---- quiesce.c ---- */

/* A request (or the cleaner's work) enters: waits while the mirror is frozen. */
void io_begin(struct mirror *m);
void io_end(struct mirror *m);
/* Freeze the mirror (no request in flight, none may enter) and thaw it. */
void mirror_freeze(struct mirror *m);
void mirror_thaw(struct mirror *m);
/* Wait until no request is in flight (close). */
void mirror_drain(struct mirror *m);

/* ---- legio.c ---- */

/*
 * A synchronous dmio call on legs of the mirror at leg offsets: 0 or -errno of the first
 * failure; errors[i] (when not NULL) receives leg i's 0 or -errno.
 */
int mirror_sync_io(struct mirror *m, enum dmio_op op, unsigned int flags, struct leg **legs,
		   unsigned int n, void *buf, uint64_t leg_offset, uint64_t len, int *errors);
/* The legs that take writes (with a device), into legs[]; their number. */
unsigned int mirror_written_legs(struct mirror *m, struct leg **legs);
/*
 * Log one I/O error of leg (IOError, warning), rate limited to a burst per leg per window so that
 * a dying leg cannot flood the journal: what failed ("write", "resync write", "bitmap write"),
 * where (data_offset: bytes into the mirror's data, or LEG_IO_METADATA for the superblock and
 * bitmap; leg_offset: bytes into the leg), len bytes, err (a positive errno) and the request's
 * error bits.
 */
#define LEG_IO_METADATA UINT64_MAX
void leg_log_io_error(struct mirror *m, struct leg *leg, const char *what, uint64_t data_offset,
		      uint64_t leg_offset, uint64_t len, int err, unsigned long error_bits);
/* Remember err (positive) as the leg's latest I/O error (leg_log_io_error does it too). */
void leg_note_io_error(struct leg *leg, int err);

/* ---- io.c ---- */

/* The leg the read policy would choose now (for tests); -1 when none can serve. */
int mirror_pick_read_leg(struct mirror *m);
/* Set up (at open) and clear (at close, drained: no write is behind) the write-behind list. */
void io_behind_init(struct mirror *m);
void io_behind_clear(struct mirror *m);

/* ---- metadata.c ---- */

/* Read the superblocks, decide, set leg states, load the bitmap.  0 or -errno with *error. */
int metadata_assemble(struct mirror *m, int force_source, GError **error);
/*
 * Make generation gen (or a later one) durable: every live leg flushed, then its superblock
 * written with FUA (md's PREFLUSH|FUA).  A leg that cannot take it is failed.  Blocks; the
 * caller holds no mutex of the mirror.  0, or -errno when no in-sync leg recorded it.
 */
int metadata_commit(struct mirror *m, uint64_t gen);
/* Commit everything changed so far.  0 or -errno. */
int metadata_sync(struct mirror *m);
/* Whether writes must wait for a commit (a failure not yet durable): one load each. */
static inline bool metadata_pending(struct mirror *m)
{
	return atomic_load(&m->gen_recorded) < atomic_load(&m->gen_hold);
}
/*
 * Run fn(opaque, result) on the metadata thread once the pending failures are durable; result
 * is metadata_commit()'s.  For completions, which must not wait.
 */
void metadata_defer(struct mirror *m, void (*fn)(void *opaque, int result), void *opaque);
/* Mark the array clean or dirty in memory (committed by the next commit). */
void metadata_set_clean(struct mirror *m, bool clean);
/* Start (after assembly) and stop (at close: the clean superblocks) the metadata machinery. */
void metadata_start(struct mirror *m);
void metadata_stop(struct mirror *m);
/* The array's superblock as it is now (under sb_lock). */
void metadata_snapshot(struct mirror *m, struct superblock *out);
/* Bitmap bits were cleared: a leg behind this point needs a full resync (at_stop: the clean
 * mark's commit that follows bumps events once more). */
void metadata_bits_cleared(struct mirror *m, bool at_stop);
/* Forget the slots from n on in the array superblock (remove dropped them). */
void metadata_forget_slots(struct mirror *m, unsigned int n);
/* Flush every leg that takes writes: 0 or -errno. */
int metadata_flush_legs(struct mirror *m);

/* ---- cleaner.c ---- */

void cleaner_start(struct mirror *m);
void cleaner_stop(struct mirror *m);
/*
 * Clear the bits of regions idle for a while (all: every region with no write in flight, at a
 * clean stop), once every leg is flushed.  Returns the number cleared, or -errno.
 */
long cleaner_clean(struct mirror *m, bool all);

/* ---- claim.c: the exclusive claim on legs ---- */

/*
 * Leg i (name, path) could not be opened exclusively (-EBUSY): set *error to why, "legs 'a' (..)
 * and 'b' (..) are the same file" when an earlier leg of m holds it (returns -EINVAL), else
 * "leg 'b' (/dev/loop3) is held by mirror 'data' at /srv/data (pid 1234)" or who else holds it
 * (returns -EBUSY).
 */
int claim_refused(struct mirror *m, unsigned int i, const char *name, const char *path,
		  GError **error);

/*
 * Hot add of path, whose exclusive open failed with -EBUSY.  When a failed leg of m holds it (its
 * device is still open), open it plainly (O_DIRECT as direct says) into *dev, set *own to that
 * leg's index and return 0:
 * the caller hands the claim over with claim_take_over() once it closed that leg's device.
 * Otherwise set *error and return -EEXIST (a live leg of m) or -EBUSY (naming the holder).
 */
int claim_busy_for_add(struct mirror *m, const char *path, enum leg_direct direct,
		       struct dmio_dev **dev, int *own, GError **error);

/*
 * Replace the plain *dev of path by an exclusive one (O_DIRECT when *dev has it), once nothing
 * else of ours holds path.
 * Returns 0, or -errno with *dev closed and NULL.
 */
int claim_take_over(const char *path, struct dmio_dev **dev);

/* ---- reconfig.c ---- */

/* Set up and tear down the reconfig lock and the refusals. */
void reconfig_init(struct mirror *m);
void reconfig_clear(struct mirror *m);

/*
 * The hot add and the removal of mirror_add_leg() and mirror_remove_leg(), under reconfig_lock
 * (replace.c runs them inside its own checks).  The same returns.
 */
int reconfig_add_leg_locked(struct mirror *m, const char *path, bool force, enum leg_direct direct,
			    GError **error);
int reconfig_remove_leg_locked(struct mirror *m, unsigned int index, bool force, GError **error);
/*
 * Under reconfig_lock: move the in-sync leg of slot from into the removed slot to (leg_move),
 * drop the removed slots at the end and commit.  0, or -EINVAL when the slots are not so.
 */
int reconfig_move_leg_locked(struct mirror *m, unsigned int from, unsigned int to);
/*
 * Under reconfig_lock (reconnect.c): re-add dev, opened on path by the caller, whose superblock
 * (sb_buf, SB_SIZE bytes read from it) must say it is the member uuid of slot, back into slot,
 * which must still hold that member, failed `failures` times (no change since the caller looked).
 * dev is the callee's: used or closed.  Returns slot; -ECANCELED when the slot changed (nothing
 * said); -EEXIST with *error when dev is not that member (another array, another member, a
 * damaged superblock, newer than the array: written elsewhere, too small); other -errno with
 * *error when the re-add itself failed.
 */
int reconfig_readd_locked(struct mirror *m, unsigned int slot, const uint8_t uuid[16],
			  unsigned int failures, const char *path, struct dmio_dev *dev,
			  const void *sb_buf, GError **error);

/* ---- replace.c ---- */

/* Set up (at open, before any thread) and free (at close, the replace stopped) the replace. */
void replace_init(struct mirror *m);
void replace_clear(struct mirror *m);
/*
 * Stop a running replace (ReplaceAborted; the old leg stays) and join its thread, which wakes
 * from its wait at once.  At close, first of all (its end removes a leg and restarts the resync),
 * never under reconfig_lock (its end takes it).
 */
void replace_stop(struct mirror *m);

/* ---- scrub.c ---- */

/* Set up (at open, before any thread) and free (at close, the pass stopped) the scrub. */
void scrub_init(struct mirror *m);
void scrub_clear(struct mirror *m);
/* Start a pass (under reconfig_lock): mirror_check()'s errors. */
int scrub_start(struct mirror *m, bool repair, int source, GError **error);
/* Stop a running pass (its results so far are kept) and wait; under reconfig_lock or at close. */
void scrub_stop(struct mirror *m);
/* Whether the mirror's state reads checking; whether the thread has not finished. */
bool scrub_active(const struct mirror *m);
bool scrub_running(const struct mirror *m);

/* ---- failfast.c ---- */

/* Set up (at open) and free (at close); start once serving, stop after the resync and scrub. */
void failfast_init(struct mirror *m);
void failfast_clear(struct mirror *m);
void failfast_start(struct mirror *m);
void failfast_stop(struct mirror *m);
/* A leg failed: give up on its I/O now, not at the next tick.  Takes only a leaf. */
void failfast_kick(struct mirror *m);
/* Keep the failfast thread off the slots' devices (leg_detach). */
void failfast_lock_slots(struct mirror *m);
void failfast_unlock_slots(struct mirror *m);

/* ---- reconnect.c ---- */

/* Set up (at open, before any thread) and free (at close, stopped); start once serving. */
void reconnect_init(struct mirror *m);
void reconnect_clear(struct mirror *m);
void reconnect_start(struct mirror *m);
/* Stop the thread and give up on a connection being made (it finishes on its own).  At close,
 * first of all, never under reconfig_lock (a re-add takes it). */
void reconnect_stop(struct mirror *m);
/* A leg failed, or a slot changed: look at the legs now.  Takes only a leaf. */
void reconnect_kick(struct mirror *m);
/* Stop the tries of leg index, why saying why (the operator failed it); true when some were
 * pending.  Takes only a leaf. */
bool reconnect_cancel(struct mirror *m, unsigned int index, const char *why);
/* Whether err (positive) says the connection to a remote leg is lost (or hung: ETIMEDOUT). */
bool reconnect_lost_connection(int err);

/* ---- readfix.c ---- */

/* Set up (at open, before any request) and stop (at close, after the drain: queued corrections
 * run first) the correction thread. */
void readfix_init(struct mirror *m, unsigned int max_read_errors);
void readfix_clear(struct mirror *m);
/* Whether err (positive) says a sector is bad rather than the leg gone (EIO, ENODATA, ...). */
bool readfix_media_error(int err);
/*
 * A read of [offset, offset + len) (the mirror's data) failed on leg with err (positive): queue
 * its correction when it can be corrected (a media error, the leg in sync, another leg in sync)
 * and return true; false, and the caller fails the leg as before, otherwise.  For completions:
 * never waits, no I/O.  The correction fails the leg itself when it does not work.
 */
bool readfix_queue(struct mirror *m, struct leg *leg, uint64_t offset, uint64_t len, int err);
/* Wait until no correction is queued or running (tests, and close through readfix_clear). */
void readfix_drain(struct mirror *m);
/*
 * md's read_errors of leg as of now (monotonic µs; the clock is the caller's, for tests): first
 * halved for every whole hour since it last halved; count_error then adds one.  The new count.
 */
unsigned int readfix_count_error(struct mirror *m, struct leg *leg, gint64 now);
unsigned int readfix_recent_errors(struct mirror *m, struct leg *leg, gint64 now);

/* ---- resync.c ---- */

/* Start the background resync if any leg needs it.  Under reconfig_lock or at open. */
void resync_start(struct mirror *m);
/* Stop it (the progress is kept in the superblocks) and wait. */
void resync_stop(struct mirror *m);
/* Whether a read of the range must come from the resync source (unsynced after a crash). */
bool resync_read_needs_source(struct mirror *m, uint64_t offset, uint64_t len);
/* What the running resync does with leg (status). */
enum leg_resync_role resync_leg_role(struct mirror *m, const struct leg *leg);

#endif /* FUSEMIRROR_MIRROR_INTERNAL_H */
