/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The mirror set: legs and their states, the write fan-out (one dmio call over every in-sync
 * leg), the read policy and read retry, and the turning of dmio error bitsets into leg failures.
 * dmio reports; this layer decides (as dm-raid1's write_callback -> fail_mirror).
 *
 * Every I/O call calls done exactly once.  Requests on whole 512-byte sectors are asynchronous:
 * done runs on an engine thread, or in the caller's thread before the call returns when that
 * thread did the legs' I/O itself (fast legs, or a read's one leg: DMIO_REQ_CALLER_RUNS), or on
 * the mirror's metadata thread when a leg failed and the write waits until the superblocks say
 * so; a caller must not hold across the call a lock that done takes.  Argument errors, and
 * requests that need a read-modify-write of partial sectors (rare: block-device users send whole
 * sectors), complete in the caller's thread before the call returns.
 *
 * Concurrency: any number of threads may call any function at once.  Two writes (or
 * write-zeroes, discards) whose ranges overlap reach every leg in the order they were called:
 * the later one waits, in its caller's thread, until the earlier one is done.  Writes that do
 * not overlap, and reads, never wait for each other.  Control calls (fail, add, remove, resync,
 * replace) run one at a time; a replace's wait for its new leg runs in the background.
 */
#ifndef FUSEMIRROR_MIRROR_H
#define FUSEMIRROR_MIRROR_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config/config.h"

#ifdef __cplusplus
extern "C" {
#endif

enum leg_state {
	LEG_IN_SYNC = 0, /* holds every acknowledged write; may be read */
	LEG_FAILED,	 /* an I/O error, the operator, or missing: never read or written again */
	LEG_STALE,	 /* missed writes (metadata = internal): written, never read, to resync */
	LEG_RESYNCING,	 /* being copied onto: written, never read until done */
	LEG_REMOVED,	 /* an empty slot: the operator removed its leg (fusemirrorctl remove) */
	LEG_SPARE,	 /* a new member that holds no data yet: neither read nor written until
			  * its copy starts (it then becomes resyncing) */
};

enum mirror_state {
	MIRROR_CLEAN = 0, /* every leg in sync */
	MIRROR_DEGRADED,  /* some legs failed or stale, at least one in sync */
	MIRROR_FAILED,	  /* no leg in sync */
	MIRROR_RESYNCING, /* a resync is copying regions */
	MIRROR_CHECKING,  /* a check or repair compares the in-sync legs (fusemirrorctl check) */
};

/* Flags for mirror_write() and mirror_write_zeroes(). */
#define MIRROR_FUA (1u << 0) /* durable on every leg when done */

struct mirror;

/* Completion: result is the byte count (0 for flush), or -errno. */
typedef void (*mirror_done_fn)(void *opaque, ssize_t result);

/*
 * An answer that may come before the request lets go of the caller's memory: result as for
 * mirror_done_fn; data holds a read's bytes - the caller's buffer, or the mirror's own when a leg
 * that was given up on (io-timeout, a failed leg) still holds the caller's.
 */
typedef void (*mirror_answer_fn)(void *opaque, ssize_t result, const void *data);

/*
 * Event sink: the daemon logs events (LegFailed, DegradedArray, ...) and runs the on-event
 * program.  m is the mirror (also while mirror_open() assembles it); leg is -1 when the event
 * concerns the whole mirror; message is one line.  It may run on any of the mirror's threads.
 */
typedef void (*mirror_event_fn)(void *opaque, struct mirror *m, const char *event,
				GLogLevelFlags level, int leg, const char *message);

/*
 * Open every leg of config and assemble the mirror; its size is the smallest leg's, rounded
 * down to 4 KiB.  Events from the first one on (assembly's included) go to event_fn (NULL: they
 * are only logged with g_log_structured); it is fixed for the mirror's life, so that no thread
 * of the mirror ever sees it change.  Returns 0, or -errno with *error saying which leg and why.
 */
int mirror_open(const struct mirror_config *config, mirror_event_fn event_fn, void *event_opaque,
		struct mirror **out, GError **error);

/* Wait for in-flight I/O, flush every in-sync leg and free the mirror.  NULL is ignored. */
void mirror_close(struct mirror *m);

uint64_t mirror_size(const struct mirror *m);
const char *mirror_name(const struct mirror *m);

/*
 * Write len bytes of buf at offset to every in-sync leg.  buf must stay valid until done, which
 * runs once no leg uses buf (see mirror_write_answered).
 * Succeeds when any leg took the write; the legs that failed it are failed.  A write reaching
 * past the end is shortened; one starting at or past the end fails with -ENOSPC.
 * Write-behind (mirror_set_write_behind): a write-mostly leg may get it later, from a copy of
 * buf, after done; a later write that overlaps it still waits until that leg has it.
 */
void mirror_write(struct mirror *m, const void *buf, size_t len, uint64_t offset,
		  unsigned int flags, mirror_done_fn done, void *opaque);

/*
 * Read from one in-sync leg chosen by the read policy; on error retry the other in-sync legs.  A
 * leg that could not read is failed (unless it is the last), except for a media error (EIO,
 * ENODATA, ...) while another leg is in sync: then the range is corrected on it in the
 * background, after the answer (readfix.c), and it is failed only when that does not work or
 * after more than max-read-errors recent errors.  Reads past the end are short.
 */
void mirror_read(struct mirror *m, void *buf, size_t len, uint64_t offset, mirror_done_fn done,
		 void *opaque);

/*
 * mirror_write() and mirror_read() that block the calling thread until done, and return the
 * result.  With fast legs the calling thread did the legs' I/O itself (DMIO_REQ_CALLER_RUNS) and
 * the call returns without a wake-up.
 */
ssize_t mirror_write_wait(struct mirror *m, const void *buf, size_t len, uint64_t offset,
			  unsigned int flags);
ssize_t mirror_read_wait(struct mirror *m, void *buf, size_t len, uint64_t offset);

/*
 * The same, answered at once: answer runs as soon as the outcome is known - from another of the
 * mirror's threads when a leg that does not answer is given up on - and the call returns once
 * nothing uses buf any more, which may be much later (never, for a leg that never answers).  So a
 * server answers its client on time while the hung leg keeps the buffer it was given.
 */
void mirror_write_answered(struct mirror *m, const void *buf, size_t len, uint64_t offset,
			   unsigned int flags, mirror_answer_fn answer, void *opaque);
void mirror_read_answered(struct mirror *m, void *buf, size_t len, uint64_t offset,
			  mirror_answer_fn answer, void *opaque);

/*
 * mirror_write_answered() with the data in a pipe (a FUSE server's spliced WRITE payload): the
 * pipe fd (its read end) holds at least len bytes, and len of them are taken out of it before
 * this returns, in the calling thread, whatever the outcome: the legs that take a splice get the
 * pipe's pages (libdmio's DMIO_MEM_PIPE, one copy per leg, into the leg), the others one copy.
 * A write that needs its data later (write-behind, a read-modify-write of partial sectors, one
 * clipped at the end) reads it out of the pipe first and goes the buffer's way.  Nothing keeps the
 * pipe after the return: a retry or an abandoned leg never needs it.  Returns true when the len
 * bytes were taken out; false when the pipe is in an unknown state (memory ran out part-way; the
 * answer was an error): the caller should discard the pipe.
 */
bool mirror_write_pipe_answered(struct mirror *m, int fd, size_t len, uint64_t offset,
				unsigned int flags, mirror_answer_fn answer, void *opaque);

/*
 * Regions of the mirror's writes from a pipe so far: spliced into their leg, or written from a
 * copy (a leg that takes no splice: NBD, O_DIRECT, a test device).
 */
void mirror_pipe_stats(const struct mirror *m, uint64_t *spliced, uint64_t *copied);

/* fdatasync every in-sync leg. */
void mirror_flush(struct mirror *m, mirror_done_fn done, void *opaque);

/* Make the range read as zeroes on every leg: a hole in file legs, zeroed block-device legs. */
void mirror_discard(struct mirror *m, uint64_t offset, uint64_t len, mirror_done_fn done,
		    void *opaque);

/* Write zeroes over the range on every in-sync leg. */
void mirror_write_zeroes(struct mirror *m, uint64_t offset, uint64_t len, unsigned int flags,
			 mirror_done_fn done, void *opaque);

/*
 * Fail leg index on the operator's request; returns once the failure is durable in the
 * superblocks.  Returns 0, or -errno with *error: -EINVAL (no such leg), -EALREADY (failed
 * already, or a removed slot) or -EBUSY (it is the last in-sync leg: the mirror would be lost).
 */
int mirror_fail_leg(struct mirror *m, unsigned int index, GError **error);

/*
 * Hot add (fusemirrorctl add): open path and make it a leg while the mirror serves I/O.  A former
 * member of this array (its superblock names a slot of it) is re-added into its slot and catches
 * up from the write-intent bitmap when the bitmap covers what it missed; any other leg goes into
 * the first removed slot (or a new one) and is copied in full.  force accepts a leg that carries
 * another array's or a damaged superblock.  Returns the leg's index, or -errno with *error:
 * -EEXIST (already a live leg, or another array's), -ENOSPC (too small), -EMLINK (no free
 * slot), -ENOTSUP (metadata = none), or the error of opening it.
 */
int mirror_add_leg(struct mirror *m, const char *path, bool force, GError **error);
/*
 * The same with the direct = rule of the leg (fusemirror.conf(5), fusemirrorctl add --direct);
 * mirror_add_leg() is LEG_DIRECT_AUTO.  Also -EOPNOTSUPP (direct = true, and the leg cannot
 * have O_DIRECT) and -EINVAL (direct = true on an NBD export), nothing written.
 */
int mirror_add_leg_direct(struct mirror *m, const char *path, bool force, enum leg_direct direct,
			  GError **error);

/*
 * Remove leg index: only a failed leg, or any leg but the last in-sync one with force (it is
 * failed first).  Its slot becomes LEG_REMOVED and its device is closed.  Returns 0, or -errno
 * with *error: -EINVAL (no such leg), -EALREADY (removed already), -EBUSY.
 */
int mirror_remove_leg(struct mirror *m, unsigned int index, bool force, GError **error);

/*
 * Replace leg index by path (fusemirrorctl replace, md's --replace): hot add path as
 * mirror_add_leg() does and return, while a thread of the mirror waits for the new leg to be in
 * sync, then removes leg index (as mirror_remove_leg() with force).  Leg index stays in sync
 * and keeps serving meanwhile, so the mirror never has fewer in-sync legs than before; when it
 * or the new leg fails or is removed, or the mirror closes, the replace ends (ReplaceAborted)
 * and nothing is removed; when the old leg goes, LegReplaced.  done(opaque, m, replaced), when
 * not NULL, runs once on that thread at the end, with no lock of the mirror held (replaced:
 * leg index was removed); status shows the replace until done returned.  Returns the new leg's
 * index, or -errno with *error: mirror_add_leg()'s errors, -EINVAL (no leg index, or it is not
 * in sync) or -EBUSY (a replace runs already: one at a time); done is then not called.
 */
typedef void (*mirror_replace_done_fn)(void *opaque, struct mirror *m, bool replaced);
int mirror_replace_leg(struct mirror *m, unsigned int index, const char *path,
		       mirror_replace_done_fn done, void *opaque, GError **error);
/* The same with the new leg's direct = rule (as mirror_add_leg_direct()). */
int mirror_replace_leg_direct(struct mirror *m, unsigned int index, const char *path,
			      enum leg_direct direct, mirror_replace_done_fn done, void *opaque,
			      GError **error);

/* The running replace: the leg being replaced and the new leg; both -1 when none runs. */
struct replace_status {
	int leg;
	int by;
};
void mirror_replace_status(const struct mirror *m, struct replace_status *out);

/*
 * Start the resync of every leg that needs it (e.g. after one stopped for want of a source), or
 * with full, re-copy every region from an in-sync leg onto the other in-sync legs.  Returns 0,
 * or -errno with *error: -EALREADY (a resync is running), -EBUSY (full: nothing to copy onto),
 * -ENOTSUP (metadata = none).
 */
int mirror_resync(struct mirror *m, bool full, GError **error);

/*
 * Scrub (fusemirrorctl check, repair): compare the in-sync legs in the background, chunk by
 * chunk under the range lock; with repair, rewrite every differing 4 KiB block from leg source
 * (>= 0), else from the majority of three or more legs, else from the authoritative leg (the
 * first in-sync leg, write-mostly last).  Returns 0 (started), or -errno with *error:
 * -EALREADY (a check or repair runs), -EBUSY (a resync runs, or fewer than two in-sync legs),
 * -EINVAL (source is not an in-sync leg).  A resync is refused (-EBUSY) while a pass runs; a
 * change of the set of legs (add, remove) stops it.
 */
int mirror_check(struct mirror *m, bool repair, int source, GError **error);

#define SCRUB_MAX_RANGES 64 /* differing ranges listed; beyond, only counted */
struct check_status {
	bool active;	/* the mirror's state reads checking */
	bool repair;	/* the running (or last) pass is a repair */
	uint64_t done;	/* bytes compared */
	uint64_t total; /* bytes to compare */
	uint64_t rate;	/* bytes/s */
	/* The results of the running (or last) pass. */
	uint64_t mismatch_cnt; /* 512-byte sectors found different */
	unsigned int nranges;  /* differing ranges, merged, in the mirror's bytes, ascending */
	uint64_t offsets[SCRUB_MAX_RANGES], lengths[SCRUB_MAX_RANGES];
	uint64_t ranges_dropped; /* ranges found beyond the first SCRUB_MAX_RANGES */
	uint64_t repaired;	 /* bytes rewritten, summed over the legs rewritten */
};
void mirror_check_status(const struct mirror *m, struct check_status *out);
/* "OFFSET+LENGTH OFFSET+LENGTH ..." of st's ranges ("" for none); g_free it. */
char *mirror_check_ranges_text(const struct check_status *st);

/*
 * The reason of the last refused control command of one caller (e.g. a process id: two
 * operators at once never see each other's), "" when none; free with g_free.  The mirror keeps
 * the reasons of the last MIRROR_LAST_ERRORS callers.
 */
#define MIRROR_LAST_ERRORS 64
char *mirror_last_error(struct mirror *m, uint64_t caller);
void mirror_set_last_error(struct mirror *m, uint64_t caller, const char *message);

/* The array UUID as text ("" with metadata = none); free with g_free. */
char *mirror_uuid(struct mirror *m);

/* ---- Status ------------------------------------------------------------------------------- */

/*
 * What the running resync does with a leg.  A leg that a resync writes is not always resyncing:
 * an in-sync leg rewritten on request (resync --full) or after an unclean shutdown keeps every
 * acknowledged write and stays in sync (as md's members do during a resync), so that it can
 * still take over as the source; this says that it is being written.
 */
enum leg_resync_role {
	LEG_RESYNC_NONE = 0, /* not part of a resync (none runs, or nothing to copy onto it) */
	LEG_RESYNC_SOURCE,   /* the regions are read from it */
	LEG_RESYNC_BITMAP,   /* catching up (stale, re-added): the regions the bitmap recorded */
	LEG_RESYNC_FULL,     /* catching up (new leg): every region from its recovery offset on */
	LEG_RESYNC_REWRITE,  /* in sync, every region rewritten on request (resync --full) */
	LEG_RESYNC_DIRTY,    /* in sync, the regions dirty at an unclean shutdown rewritten */
};

struct leg_status {
	const char *name;
	const char *path;  /* as configured (an NBD URI whole, secrets too): to open or save */
	const char *shown; /* path redacted (dmio_path_display): for anything shown */
	enum leg_state state;
	bool write_mostly;
	bool direct; /* its device is open with O_DIRECT (DMIO_DEV_DIRECT) */
	uint64_t read_errors;
	uint64_t write_errors;
	uint64_t corrected_errors; /* read errors corrected by a rewrite (never decays) */
	unsigned int pending;	   /* requests in flight on the leg */
	char uuid[37];		   /* the leg's UUID in its superblock; "" with metadata = none */
	enum leg_resync_role resync;
	unsigned int io_timeout_ms; /* 0: none */
	uint64_t busy_ms;	    /* age of its oldest outstanding I/O (0: none) */
	bool slow;		    /* busy_ms is past half its io-timeout (5 s without one) */
	/* Write-behind (a write-mostly leg): the most writes answered before it has them (0:
	 * none), those outstanding now and their bytes, and writes answered early so far. */
	unsigned int write_behind;
	unsigned int behind_writes;
	uint64_t behind_bytes;
	uint64_t behind_answered;
};

enum mirror_state mirror_state(const struct mirror *m);
unsigned int mirror_num_legs(const struct mirror *m);
/* Status of leg index (< mirror_num_legs); the strings belong to the mirror. */
void mirror_leg_status(const struct mirror *m, unsigned int index, struct leg_status *out);
/* The legs (bit i = leg i) that failed the last request that failed anywhere. */
unsigned long mirror_error_bits(const struct mirror *m);
/* Bumped on every change of state (a leg failed, ...). */
uint64_t mirror_events(const struct mirror *m);
/*
 * The last 64 events, oldest first, one per line: "SEQ<TAB>TIME<TAB>PRIORITY<TAB>EVENT<TAB>LEG
 * <TAB>MESSAGE" (TIME: microseconds since the epoch; LEG "-" for the whole mirror; SEQ counts
 * from 1 since the daemon started).  Free with g_free.
 */
char *mirror_event_log(struct mirror *m);

/* The background pass's progress: the resync's, or while a check runs the check's. */
struct resync_status {
	bool active;
	uint64_t done;	/* bytes copied */
	uint64_t total; /* bytes to copy */
	uint64_t rate;	/* bytes/s */
	int source;	/* the leg copied from; -1 when no resync runs */
};
void mirror_resync_status(const struct mirror *m, struct resync_status *out);
/* Runtime tunables: bytes/s; 0 = unlimited (max only). */
void mirror_set_resync_rate(struct mirror *m, uint64_t min, uint64_t max);
void mirror_get_resync_rate(const struct mirror *m, uint64_t *min, uint64_t *max);

/* Set the io-timeout of leg index (or of every leg and legs added later: index -1); 0 = none.
 * Returns 0 or -EINVAL (no such leg). */
int mirror_set_io_timeout(struct mirror *m, int index, unsigned int ms);
/*
 * Set write-behind (fusemirror.conf(5)) of write-mostly leg index, or of every write-mostly leg
 * (index -1): up to n writes are answered once the other legs have them while this leg catches
 * up; 0: none (allowed on any leg).  Returns 0, or -EINVAL (no such leg), -EPERM (n > 0 and
 * the leg, or every leg, is not write-mostly), -ENOTSUP (metadata = none: no bitmap to remember
 * what the leg lacks).  A leg that stops being write-mostly (a reload) writes nothing behind.
 */
int mirror_set_write_behind(struct mirror *m, int index, unsigned int n);

/*
 * Runtime tunable max-read-errors (fusemirror.conf(5)): a leg is failed once it has had more
 * read errors than this that its correction was tried for, the count halving every hour; 0:
 * never failed for them.
 */
/*
 * Runtime tunables of a reload: the read policy, and whether leg index is write-mostly (never
 * read while another in-sync leg can serve); a request already on its way keeps its choice.
 * mirror_set_write_mostly returns 0 or -EINVAL (no such leg).
 */
void mirror_set_read_policy(struct mirror *m, enum read_policy policy);
enum read_policy mirror_get_read_policy(const struct mirror *m);
int mirror_set_write_mostly(struct mirror *m, unsigned int index, bool on);
void mirror_set_max_read_errors(struct mirror *m, unsigned int max);
unsigned int mirror_get_max_read_errors(const struct mirror *m);

/*
 * Reconnect of remote legs (fusemirror.conf(5): reconnect-delay, reconnect-max).  What the
 * reconnect of leg index does now (user.fusemirror.leg.N.reconnect): "idle", "waiting 4 s, try
 * 3 of 10", "connecting, try 3 of 10", "refused: WHY", "gave up after 10 tries: WHY", "stopped:
 * WHY" (the operator failed it), "off: WHY" (reconnect-max 0); g_free it.
 */
char *mirror_leg_reconnect_status(struct mirror *m, unsigned int index);
/*
 * Set reconnect-delay (ms, > 0; -1 keeps it) and reconnect-max (tries, 0: never; -1 keeps it)
 * of leg index, or of every leg and the legs added later (index -1).  Returns 0 or -EINVAL (no
 * such leg, a delay of 0).  Read them back for leg index, or the mirror's defaults (-1).
 */
int mirror_set_reconnect(struct mirror *m, int index, int delay_ms, int max);
void mirror_get_reconnect(const struct mirror *m, int index, unsigned int *delay_ms,
			  unsigned int *max);

const char *mirror_state_name(enum mirror_state state);
const char *leg_state_name(enum leg_state state);
/* none, source, bitmap, full, rewrite, dirty (user.fusemirror.leg.N.resync). */
const char *leg_resync_role_name(enum leg_resync_role role);

#ifdef __cplusplus
}
#endif

#endif /* FUSEMIRROR_MIRROR_H */
