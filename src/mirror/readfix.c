/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Read-error correction (md's fix_read_error): a read that failed on an in-sync leg with a
 * media-type error (readfix_media_error) does not fail the leg.  The reader is answered from
 * another leg as before (io.c retries); here, on a thread of our own, the range is read again from
 * another in-sync leg, written onto the leg that failed and read back from it; the leg is failed
 * only when that does not work, or when it has had more than max-read-errors read errors recently.
 *
 * Why after the answer and not before it (md corrects in raid1d, before it ends the bio): the
 * reader is not held up by three more I/Os and a wait for the range; and a read-modify-write holds
 * its range while it waits for its read, so a correction that the reader waited for could wait on
 * that very range.  Nothing waits for a correction but close and the tests (readfix_drain), so one
 * thread is enough, and a leg that keeps erroring costs one thread, not one per error.
 *
 * Why the good data is read again rather than taken from the reader's buffer: the buffer is the
 * reader's, and by the time the range is held a write may have changed the range on every leg;
 * read under the hold, the in-sync leg's bytes are the mirror's bytes and no write can come
 * between the read and the rewrite (rangelock.h).  Like the scrub, a correction holds the range
 * only inside io_begin/io_end, so that a freezer (hot add, remove) waits for it and no correction
 * runs while the legs change; it waits for the range after io_begin, as every request does.
 *
 * The count that fails a leg is md's read_errors: one more for each correction tried, halved for
 * every whole hour since it last halved (md's check_decay_read_errors; md drops the part of the
 * hour it has seen, we keep it), so that a leg with an occasional bad sector is never failed for
 * errors years apart, and one that is dying is failed within max-read-errors + 1 errors.
 * corrected_errors counts the corrections that worked, as md's per-device "errors" does, and never
 * decays.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "mirror/mirror-internal.h"

#define HOUR_US ((gint64)3600 * G_USEC_PER_SEC)

struct readfix {
	GThreadPool *pool;   /* one thread: the corrections, in order */
	GMutex lock;	     /* a leaf: the legs' recent_read_errors and recent_since, queued */
	GCond idle;	     /* queued dropped to 0 */
	unsigned int queued; /* corrections queued or running */
};

/* One correction to make: [offset, offset + len) of the mirror's data on leg. */
struct readfix_job {
	struct leg *leg;
	struct dmio_dev *dev; /* the leg's device when the read failed: a leg replaced since is not
			       * corrected (the pointer is only compared) */
	uint64_t offset;
	uint64_t len;
	int err; /* the read's errno, positive */
};

bool readfix_media_error(int err)
{
	/*
	 * What a disk or a remote server says of the sectors themselves: EIO (the kernel's
	 * BLK_STS_IOERR, NBD's error for a failed read), ENODATA (BLK_STS_MEDIUM), EILSEQ
	 * (BLK_STS_PROTECTION, a checksum), EBADMSG, EREMOTEIO (BLK_STS_TARGET).  Everything else
	 * says the leg, not a sector, is in trouble (ENODEV, ENXIO, EBADF: gone; ETIMEDOUT: an
	 * abandoned I/O; ENOSPC, ENOMEM, ...): rewriting cannot help.
	 */
	switch (err) {
	case EIO:
	case ENODATA:
	case EILSEQ:
	case EBADMSG:
	case EREMOTEIO:
		return true;
	default:
		return false;
	}
}

/* ---- The count that fails a leg ------------------------------------------------------------ */

/* Under lock: halve the leg's count for every whole hour since it last halved, as of now. */
static void decay_locked(struct leg *leg, gint64 now)
{
	gint64 hours;

	if (leg->recent_read_errors == 0 || now < leg->recent_since) {
		leg->recent_since = now;
		return;
	}
	hours = (now - leg->recent_since) / HOUR_US;
	if (hours == 0)
		return;
	leg->recent_read_errors = hours >= 32 ? 0 : leg->recent_read_errors >> hours;
	/* The part of an hour not yet counted is kept: errors 59 minutes apart still decay. */
	leg->recent_since += hours * HOUR_US;
}

unsigned int readfix_count_error(struct mirror *m, struct leg *leg, gint64 now)
{
	unsigned int n;

	g_mutex_lock(&m->readfix->lock);
	decay_locked(leg, now);
	if (leg->recent_read_errors == 0)
		leg->recent_since = now;
	if (leg->recent_read_errors < UINT_MAX)
		leg->recent_read_errors++;
	n = leg->recent_read_errors;
	g_mutex_unlock(&m->readfix->lock);
	return n;
}

unsigned int readfix_recent_errors(struct mirror *m, struct leg *leg, gint64 now)
{
	unsigned int n;

	g_mutex_lock(&m->readfix->lock);
	decay_locked(leg, now);
	n = leg->recent_read_errors;
	g_mutex_unlock(&m->readfix->lock);
	return n;
}

/* ---- One correction ------------------------------------------------------------------------ */

static void *buffer(uint64_t len)
{
	void *buf;

	return posix_memalign(&buf, MIRROR_ALIGN, len) == 0 ? buf : NULL;
}

static void fail_leg(struct mirror *m, struct leg *leg, const struct readfix_job *job,
		     const char *format, ...) G_GNUC_PRINTF(4, 5);

/* Fail leg for a read error that could not be corrected, saying why. */
static void fail_leg(struct mirror *m, struct leg *leg, const struct readfix_job *job,
		     const char *format, ...)
{
	g_autofree char *reason = NULL;
	g_autofree char *why = NULL;
	va_list ap;

	va_start(ap, format);
	reason = g_strdup_vprintf(format, ap);
	va_end(ap);
	why = g_strdup_printf("read error at data offset %" PRIu64 " length %" PRIu64
			      ": %s, not corrected: %s",
			      job->offset, job->len, g_strerror(job->err), reason);
	leg_fail(m, leg, why, 1ul << leg->index);
}

/*
 * Whether leg can still read its block at data offset pos: a file leg that shrank under the
 * mirror fails every read past its new end with EIO as a bad sector does, and a rewrite would
 * only grow it back with a hole before the range, which reads as zeroes.
 */
static int probe(struct mirror *m, struct leg *leg, char *scratch, uint64_t pos)
{
	return mirror_sync_io(m, DMIO_READ, 0, &leg, 1, scratch, m->data_offset + pos, MIRROR_ALIGN,
			      NULL);
}

/*
 * Under the hold: read the range from an in-sync leg other than target into good.  Returns the
 * leg read, or NULL when none could (each failure logged; the other legs are not failed for it:
 * their own reads decide that).
 */
static struct leg *read_good(struct mirror *m, struct leg *target, const struct readfix_job *job,
			     void *good)
{
	unsigned int i, pass, slots = atomic_load(&m->num_legs);

	/* Write-mostly legs last, as the read policy has them. */
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < slots; i++) {
			struct leg *leg = &m->legs[i];
			int r;

			if (leg == target || leg->dev == NULL || leg_state(leg) != LEG_IN_SYNC ||
			    leg->write_mostly != (pass == 1))
				continue;
			r = mirror_sync_io(m, DMIO_READ, 0, &leg, 1, good,
					   m->data_offset + job->offset, job->len, NULL);
			if (r == 0)
				return leg;
			leg_log_io_error(m, leg, "correction read", job->offset,
					 m->data_offset + job->offset, job->len, -r,
					 1ul << leg->index);
		}
	}
	return NULL;
}

/* Inside io_begin, the target still in sync: correct it, or fail it.  Returns whether it worked. */
static bool correct(struct mirror *m, struct leg *leg, const struct readfix_job *job,
		    struct leg **from)
{
	uint64_t leg_offset = m->data_offset + job->offset;
	struct rangelock_hold hold;
	void *good = buffer(job->len), *back = buffer(job->len);
	bool ok = false;
	int r;

	if (good == NULL || back == NULL) {
		/* Without memory we cannot tell: the leg stays, its next error tries again. */
		g_warning("mirror %s: leg %u: no memory to correct a read error of %" PRIu64
			  " bytes",
			  m->name, leg->index, job->len);
		goto out;
	}
	rangelock_acquire(m->ranges, &hold, job->offset, job->len);
	*from = read_good(m, leg, job, good);
	if (*from == NULL) {
		rangelock_release(m->ranges, &hold);
		fail_leg(m, leg, job, "no other in-sync leg could read the range");
		goto out;
	}
	/* FUA: a corrected sector is on the leg's media, not in a cache it could still lose. */
	r = mirror_sync_io(m, DMIO_WRITE, DMIO_REQ_FUA, &leg, 1, good, leg_offset, job->len, NULL);
	if (r < 0) {
		rangelock_release(m->ranges, &hold);
		leg_log_io_error(m, leg, "correction write", job->offset, leg_offset, job->len, -r,
				 1ul << leg->index);
		fail_leg(m, leg, job, "the rewrite failed: %s", g_strerror(-r));
		goto out;
	}
	r = mirror_sync_io(m, DMIO_READ, 0, &leg, 1, back, leg_offset, job->len, NULL);
	rangelock_release(m->ranges, &hold);
	if (r < 0) {
		leg_log_io_error(m, leg, "correction re-read", job->offset, leg_offset, job->len,
				 -r, 1ul << leg->index);
		fail_leg(m, leg, job, "the re-read after the rewrite failed: %s", g_strerror(-r));
		goto out;
	}
	if (memcmp(good, back, job->len) != 0) {
		fail_leg(m, leg, job, "the rewritten range read back different");
		goto out;
	}
	ok = true;
out:
	free(good);
	free(back);
	return ok;
}

static void run_job(struct mirror *m, struct readfix_job *job)
{
	struct leg *leg = job->leg, *from = NULL;
	unsigned int count, max;
	uint64_t at;
	char *scratch;
	int r;

	io_begin(m);
	/* Failed or replaced meanwhile: nothing left to correct. */
	if (leg_state(leg) != LEG_IN_SYNC || leg->dev == NULL || leg->dev != job->dev)
		goto out;
	scratch = buffer(MIRROR_ALIGN);
	if (scratch == NULL)
		goto out;
	/* The last block, or the one before the range when the range holds the last block. */
	at = job->offset + job->len < m->size
		 ? m->size - MIRROR_ALIGN
		 : (job->offset >= MIRROR_ALIGN ? job->offset - MIRROR_ALIGN : UINT64_MAX);
	r = at != UINT64_MAX ? probe(m, leg, scratch, at) : 0;
	free(scratch);
	if (r < 0) {
		fail_leg(m, leg, job,
			 "the leg cannot read its block at data offset %" PRIu64
			 " either (%s): it shrank or is going",
			 at, g_strerror(-r));
		goto out;
	}
	count = readfix_count_error(m, leg, g_get_monotonic_time());
	max = atomic_load(&m->max_read_errors);
	if (max > 0 && count > max) {
		g_autofree char *why = g_strdup_printf(
		    "too many corrected read errors: %u > max-read-errors %u (the last at data "
		    "offset %" PRIu64 " length %" PRIu64 ": %s)",
		    count, max, job->offset, job->len, g_strerror(job->err));

		leg_fail(m, leg, why, 1ul << leg->index);
		goto out;
	}
	/* Failed meanwhile by another request (a write error): not corrected after all. */
	if (!correct(m, leg, job, &from) || leg_state(leg) != LEG_IN_SYNC)
		goto out;
	atomic_fetch_add(&leg->corrected_errors, 1);
	mirror_event(m, "ReadErrorCorrected", G_LOG_LEVEL_WARNING, (int)leg->index,
		     "leg %u (%s, %s): read error at data offset %" PRIu64 " length %" PRIu64
		     ": %s (errno %d), corrected from leg %u (%s); %" PRIu64
		     " corrected, %u recent of max-read-errors %u",
		     leg->index, leg->name, leg->shown, job->offset, job->len, g_strerror(job->err),
		     job->err, from->index, from->name,
		     (uint64_t)atomic_load(&leg->corrected_errors), count, max);
out:
	io_end(m);
}

static void pool_fn(gpointer data, gpointer user_data)
{
	struct mirror *m = user_data;
	struct readfix *rf = m->readfix;

	run_job(m, data);
	g_free(data);
	g_mutex_lock(&rf->lock);
	if (--rf->queued == 0)
		g_cond_broadcast(&rf->idle);
	g_mutex_unlock(&rf->lock);
}

/* ---- The data path's side ------------------------------------------------------------------ */

bool readfix_queue(struct mirror *m, struct leg *leg, uint64_t offset, uint64_t len, int err)
{
	struct readfix *rf = m->readfix;
	struct readfix_job *job;

	/* Only a sector can be corrected, only on an in-sync leg, only from another one. */
	if (rf == NULL || !readfix_media_error(err) || leg_state(leg) != LEG_IN_SYNC ||
	    mirror_count_in_sync(m) < 2)
		return false;
	job = g_new(struct readfix_job, 1);
	job->leg = leg;
	job->dev = leg->dev;
	job->offset = offset;
	job->len = len;
	job->err = err;
	g_mutex_lock(&rf->lock);
	rf->queued++;
	g_mutex_unlock(&rf->lock);
	/* A thread is made, or woken, here: no I/O and no wait in the caller (a completion). */
	g_thread_pool_push(rf->pool, job, NULL);
	return true;
}

void readfix_drain(struct mirror *m)
{
	struct readfix *rf = m->readfix;

	if (rf == NULL)
		return;
	g_mutex_lock(&rf->lock);
	while (rf->queued > 0)
		g_cond_wait(&rf->idle, &rf->lock);
	g_mutex_unlock(&rf->lock);
}

void readfix_init(struct mirror *m, unsigned int max_read_errors)
{
	struct readfix *rf = g_new0(struct readfix, 1);

	g_mutex_init(&rf->lock);
	g_cond_init(&rf->idle);
	/* Shared threads (not exclusive): none is kept while no leg errs. */
	rf->pool = g_thread_pool_new(pool_fn, m, 1, FALSE, NULL);
	atomic_init(&m->max_read_errors, max_read_errors);
	m->readfix = rf;
}

void readfix_clear(struct mirror *m)
{
	struct readfix *rf = m->readfix;

	if (rf == NULL)
		return;
	/* Every queued correction runs first: no request is in flight to queue one now. */
	g_thread_pool_free(rf->pool, FALSE, TRUE);
	g_cond_clear(&rf->idle);
	g_mutex_clear(&rf->lock);
	g_free(rf);
	m->readfix = NULL;
}

void mirror_set_max_read_errors(struct mirror *m, unsigned int max)
{
	atomic_store(&m->max_read_errors, max);
}

unsigned int mirror_get_max_read_errors(const struct mirror *m)
{
	return atomic_load(&((struct mirror *)m)->max_read_errors);
}
