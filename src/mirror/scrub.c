/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Scrub (md's sync_action check and repair): a background thread reads every in-sync leg chunk
 * by chunk while the mirror serves, and compares them.  Each chunk is read, compared and (repair)
 * rewritten holding its range (rangelock.h) and inside io_begin/io_end, so that writes to it wait
 * for the comparison and a change of the set of legs (which freezes the mirror) waits for the
 * chunk; the in-sync legs are taken again for every chunk.  Rate limited like the resync, by
 * resync-rate-min and resync-rate-max.
 *
 * Results (until the next pass starts): the 512-byte sectors found different (mismatch_cnt, as
 * md counts them), and the differing ranges merged, the first SCRUB_MAX_RANGES of them.
 *
 * Repair decides per 4 KiB block (MIRROR_ALIGN, the mirror's smallest unit of I/O) which content
 * is right: the named source leg's; else, with three or more in-sync legs, the content that more
 * than half of them hold; else (two legs, or no majority) the authoritative leg's: the first
 * in-sync leg, write-mostly legs last (the rule the resync picks its source by).  Every other
 * leg whose block differs is rewritten with it, and the rewrite is logged.  A check never
 * changes a leg or a leg's state; an I/O error does, as on any request: the leg is failed.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "mirror/mirror-internal.h"

#define SCRUB_CHUNK	      (1u << 20) /* bytes compared under one range hold */
#define SECTOR		      512u
#define SCRUB_MAX_REPAIR_LOGS 64 /* MismatchRepaired lines per pass; then a count */

struct scrub {
	GThread *thread;     /* started and joined under reconfig_lock (or at close) */
	atomic_bool running; /* the thread has not finished */
	atomic_bool active;  /* the mirror's state reads checking */
	atomic_bool stop;
	bool repair;	     /* constant while the thread runs */
	int source;	     /* repair --source; -1: vote, then the authoritative leg */
	atomic_ullong done;  /* bytes compared */
	atomic_ullong total; /* bytes to compare */
	atomic_ullong rate;  /* bytes/s, recent */
	/* Results, under lock (a leaf). */
	GMutex lock;
	uint64_t mismatch_cnt;
	uint64_t offsets[SCRUB_MAX_RANGES], lengths[SCRUB_MAX_RANGES];
	unsigned int nranges;
	uint64_t ranges_dropped; /* ranges beyond SCRUB_MAX_RANGES */
	uint64_t repaired;	 /* bytes rewritten (repair) */
	unsigned int repair_logs;
	/* The thread's own: the chunk whose read error was last handed to readfix.c. */
	uint64_t corrected_pos;
	bool corrected_any;
};

void scrub_init(struct mirror *m)
{
	m->scrub = g_new0(struct scrub, 1);
	g_mutex_init(&m->scrub->lock);
	m->scrub->source = -1;
}

void scrub_clear(struct mirror *m)
{
	if (m->scrub == NULL)
		return;
	scrub_stop(m);
	g_mutex_clear(&m->scrub->lock);
	g_free(m->scrub);
	m->scrub = NULL;
}

bool scrub_active(const struct mirror *m)
{
	return m->scrub != NULL && atomic_load(&m->scrub->active);
}

bool scrub_running(const struct mirror *m)
{
	return m->scrub != NULL && atomic_load(&m->scrub->running);
}

/* ---- Results ------------------------------------------------------------------------------- */

/* Record the differing range [offset, offset + len) (comes in ascending order). */
static void add_mismatch(struct scrub *s, uint64_t offset, uint64_t len)
{
	g_mutex_lock(&s->lock);
	s->mismatch_cnt += len / SECTOR;
	if (s->nranges > 0 && s->offsets[s->nranges - 1] + s->lengths[s->nranges - 1] == offset) {
		s->lengths[s->nranges - 1] += len;
	} else if (s->nranges < SCRUB_MAX_RANGES && s->ranges_dropped == 0) {
		s->offsets[s->nranges] = offset;
		s->lengths[s->nranges] = len;
		s->nranges++;
	} else {
		s->ranges_dropped++;
	}
	g_mutex_unlock(&s->lock);
}

void mirror_check_status(const struct mirror *m, struct check_status *out)
{
	struct scrub *s = m->scrub;

	memset(out, 0, sizeof(*out));
	if (s == NULL)
		return;
	out->active = atomic_load(&s->active);
	out->done = atomic_load(&s->done);
	out->total = atomic_load(&s->total);
	out->rate = atomic_load(&s->rate);
	g_mutex_lock(&s->lock);
	out->repair = s->repair;
	out->mismatch_cnt = s->mismatch_cnt;
	out->nranges = s->nranges;
	memcpy(out->offsets, s->offsets, sizeof(out->offsets));
	memcpy(out->lengths, s->lengths, sizeof(out->lengths));
	out->ranges_dropped = s->ranges_dropped;
	out->repaired = s->repaired;
	g_mutex_unlock(&s->lock);
}

char *mirror_check_ranges_text(const struct check_status *st)
{
	GString *s = g_string_new(NULL);

	for (unsigned int i = 0; i < st->nranges; i++)
		g_string_append_printf(s, "%s%" PRIu64 "+%" PRIu64, i > 0 ? " " : "",
				       st->offsets[i], st->lengths[i]);
	return g_string_free(s, FALSE);
}

/* ---- The pass ------------------------------------------------------------------------------ */

/* The in-sync legs with a device, authoritative first (write-mostly last), into legs[]. */
static unsigned int compared_legs(struct mirror *m, struct leg **legs)
{
	unsigned int i, pass, n = 0, slots = atomic_load(&m->num_legs);

	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < slots; i++)
			if (leg_state(&m->legs[i]) == LEG_IN_SYNC && m->legs[i].dev != NULL &&
			    m->legs[i].write_mostly == (pass == 1))
				legs[n++] = &m->legs[i];
	return n;
}

static void fail_on_error(struct mirror *m, struct leg *leg, const char *what, uint64_t pos,
			  uint64_t len, int err)
{
	char *why = g_strdup_printf("%s error at data offset %" PRIu64 " (leg offset %" PRIu64
				    ") length %" PRIu64 ": %s",
				    what, pos, m->data_offset + pos, len, g_strerror(-err));

	leg_log_io_error(m, leg, what, pos, m->data_offset + pos, len, -err, 1ul << leg->index);
	leg_fail(m, leg, why, 1ul << leg->index);
	g_free(why);
}

/* Record the sectors of [pos, pos + len) where some leg differs from legs[0]. */
static bool compare_chunk(struct scrub *s, char **bufs, unsigned int n, uint64_t pos, uint64_t len)
{
	uint64_t run_start = 0, run_len = 0, off;
	bool differs = false;
	unsigned int i;

	for (i = 1; i < n && !differs; i++)
		differs = memcmp(bufs[0], bufs[i], len) != 0;
	if (!differs)
		return false;
	for (off = 0; off < len; off += SECTOR) {
		bool same = true;

		for (i = 1; i < n && same; i++)
			same = memcmp(bufs[0] + off, bufs[i] + off, SECTOR) == 0;
		if (!same) {
			if (run_len == 0)
				run_start = pos + off;
			run_len += SECTOR;
		} else if (run_len > 0) {
			add_mismatch(s, run_start, run_len);
			run_len = 0;
		}
	}
	if (run_len > 0)
		add_mismatch(s, run_start, run_len);
	return true;
}

/* The index (into legs[]) whose block at off is right, and why. */
static unsigned int pick_right(struct scrub *s, struct leg **legs, char **bufs, unsigned int n,
			       uint64_t off, const char **why)
{
	unsigned int i, j;

	if (s->source >= 0) {
		for (i = 0; i < n; i++)
			if ((int)legs[i]->index == s->source) {
				*why = "the source named";
				return i;
			}
	}
	if (n >= 3) {
		for (i = 0; i < n; i++) {
			unsigned int same = 0;

			for (j = 0; j < n; j++)
				same += memcmp(bufs[i] + off, bufs[j] + off, MIRROR_ALIGN) == 0;
			if (same * 2 > n) {
				*why = "the majority";
				return i;
			}
		}
	}
	*why = "the authoritative leg";
	return 0;
}

static void log_repair(struct mirror *m, struct scrub *s, struct leg *target, struct leg *from,
		       const char *why, uint64_t pos, uint64_t len)
{
	g_mutex_lock(&s->lock);
	s->repaired += len;
	if (s->repair_logs >= SCRUB_MAX_REPAIR_LOGS) {
		g_mutex_unlock(&s->lock);
		return;
	}
	s->repair_logs++;
	g_mutex_unlock(&s->lock);
	mirror_event(m, "MismatchRepaired", G_LOG_LEVEL_WARNING, (int)target->index,
		     "mirror %s: repair rewrote leg %u (%s) at offset %" PRIu64 " length %" PRIu64
		     " from leg %u (%s), %s",
		     m->name, target->index, target->name, pos, len, from->index, from->name, why);
}

/*
 * Make every leg's block right, 4 KiB at a time, writing each leg's runs of rewritten blocks
 * from its own buffer (which now holds the right bytes).  Under the chunk's hold.
 */
static void repair_chunk(struct mirror *m, struct scrub *s, struct leg **legs, char **bufs,
			 unsigned int n, uint64_t pos, uint64_t len)
{
	uint64_t b, nb = len / MIRROR_ALIGN;
	unsigned int i, *right = g_new(unsigned int, nb);
	const char **why = g_new(const char *, nb);

	for (b = 0; b < nb; b++)
		right[b] = pick_right(s, legs, bufs, n, b * MIRROR_ALIGN, &why[b]);
	for (i = 0; i < n; i++) {
		uint64_t run = 0, start = 0;
		unsigned int src = 0;

		for (b = 0; b <= nb; b++) {
			uint64_t off = b * MIRROR_ALIGN;
			bool need = b < nb && right[b] != i &&
				    memcmp(bufs[i] + off, bufs[right[b]] + off, MIRROR_ALIGN) != 0;

			/* A run keeps one source, so that its log line is true. */
			if (run > 0 && (!need || right[b] != src)) {
				int err =
				    mirror_sync_io(m, DMIO_WRITE, 0, &legs[i], 1, bufs[i] + start,
						   m->data_offset + pos + start, run, NULL);

				if (err < 0) {
					fail_on_error(m, legs[i], "repair write", pos + start, run,
						      err);
					break;
				}
				log_repair(m, s, legs[i], legs[src], why[start / MIRROR_ALIGN],
					   pos + start, run);
				run = 0;
			}
			if (need) {
				if (run == 0) {
					start = off;
					src = right[b];
				}
				memcpy(bufs[i] + off, bufs[right[b]] + off, MIRROR_ALIGN);
				run += MIRROR_ALIGN;
			}
		}
	}
	g_free(right);
	g_free(why);
}

/*
 * Compare (and repair) [pos, pos + len): 0; -EAGAIN when a leg failed meanwhile (the chunk is
 * done again with the legs left); -ENODEV when fewer than two in-sync legs are left, or the
 * source of a repair is not in sync any more.
 */
static int scrub_chunk(struct mirror *m, struct scrub *s, char **bufs, uint64_t pos, uint64_t len)
{
	struct leg *legs[DMIO_MAX_REGIONS];
	struct rangelock_hold hold;
	bool corrected = false;
	unsigned int i, n;
	int r = 0;

	io_begin(m);
	n = compared_legs(m, legs);
	if (n < 2) {
		io_end(m);
		return -ENODEV;
	}
	if (s->source >= 0 && leg_state(&m->legs[s->source]) != LEG_IN_SYNC) {
		io_end(m);
		return -ENODEV;
	}
	rangelock_acquire(m->ranges, &hold, pos, len);
	for (i = 0; i < n && r == 0; i++) {
		int err = mirror_sync_io(m, DMIO_READ, 0, &legs[i], 1, bufs[i],
					 m->data_offset + pos, len, NULL);

		if (err >= 0)
			continue;
		r = -EAGAIN;
		/*
		 * A bad sector is rewritten from another leg (md corrects during a check too),
		 * once per chunk: a chunk that fails again after its correction fails the leg.
		 */
		if (!(s->corrected_any && s->corrected_pos == pos) &&
		    readfix_queue(m, legs[i], pos, len, -err)) {
			s->corrected_any = true;
			s->corrected_pos = pos;
			corrected = true;
		} else {
			fail_on_error(m, legs[i], "check read", pos, len, err);
		}
	}
	if (r == 0 && compare_chunk(s, bufs, n, pos, len) && s->repair)
		repair_chunk(m, s, legs, bufs, n, pos, len);
	rangelock_release(m->ranges, &hold);
	io_end(m);
	/* The correction takes the range we held: wait for it out of it, then redo the chunk. */
	if (corrected)
		readfix_drain(m);
	return r;
}

/* Sleep so that the pass stays under the allowed rate (as the resync's throttle). */
static void throttle(struct mirror *m, struct scrub *s, gint64 started, uint64_t done)
{
	uint64_t rate = atomic_load(&m->inflight) > 0 ? atomic_load(&m->resync_rate_min)
						      : atomic_load(&m->resync_rate_max);
	gint64 elapsed = g_get_monotonic_time() - started;
	gint64 due;

	if (elapsed > 0)
		atomic_store(&s->rate, done * G_USEC_PER_SEC / (uint64_t)elapsed);
	if (rate == 0)
		return;
	due = (gint64)(done * G_USEC_PER_SEC / rate);
	if (due > elapsed && !atomic_load(&s->stop))
		g_usleep((gulong)MIN(due - elapsed, G_USEC_PER_SEC));
}

/* The rewritten legs' data is made durable: flush every in-sync leg (a failing one fails). */
static void flush_repaired(struct mirror *m)
{
	struct leg *legs[DMIO_MAX_REGIONS];
	int errors[DMIO_MAX_REGIONS];
	unsigned int i, n;

	io_begin(m);
	n = compared_legs(m, legs);
	if (n > 0 && mirror_sync_io(m, DMIO_FLUSH, 0, legs, n, NULL, 0, 0, errors) < 0)
		for (i = 0; i < n; i++)
			if (errors[i] < 0)
				fail_on_error(m, legs[i], "repair flush", 0, 0, errors[i]);
	io_end(m);
}

static void report(struct mirror *m, struct scrub *s, const char *what, gint64 started)
{
	struct check_status st;
	g_autofree char *ranges = NULL;

	mirror_check_status(m, &st);
	ranges = mirror_check_ranges_text(&st);
	if (st.mismatch_cnt > 0)
		mirror_event(m, "MismatchesFound", G_LOG_LEVEL_WARNING, -1,
			     "mirror %s: %s found %" PRIu64
			     " sectors that differ between the legs, "
			     "at %s%s",
			     m->name, what, st.mismatch_cnt, ranges,
			     st.ranges_dropped > 0 ? " (and more ranges not listed)" : "");
	if (s->repair && s->repair_logs >= SCRUB_MAX_REPAIR_LOGS)
		mirror_event(m, "MismatchRepaired", G_LOG_LEVEL_WARNING, -1,
			     "mirror %s: repair rewrote %" PRIu64
			     " bytes in all (only the first %u "
			     "rewrites were logged)",
			     m->name, st.repaired, SCRUB_MAX_REPAIR_LOGS);
	mirror_event(m, "CheckFinished", G_LOG_LEVEL_MESSAGE, -1,
		     "mirror %s: %s finished: %" PRIu64 " bytes in %.1f s, mismatch_cnt %" PRIu64
		     "%s",
		     m->name, what, st.done,
		     (double)(g_get_monotonic_time() - started) / G_USEC_PER_SEC, st.mismatch_cnt,
		     s->repair && st.repaired > 0 ? ", the differing blocks rewritten" : "");
}

static gpointer scrub_thread(gpointer data)
{
	struct mirror *m = data;
	struct scrub *s = m->scrub;
	const char *what = s->repair ? "repair" : "check";
	char *bufs[DMIO_MAX_REGIONS] = {NULL};
	unsigned int slots = atomic_load(&m->num_legs); /* a change of legs stops the pass */
	gint64 started = g_get_monotonic_time();
	uint64_t pos = 0, done = 0;
	unsigned int i;
	int r = 0;

	for (i = 0; i < slots; i++)
		bufs[i] = aligned_alloc(MIRROR_ALIGN, SCRUB_CHUNK);
	mirror_event(m, "CheckStarted", G_LOG_LEVEL_MESSAGE, -1,
		     "mirror %s: %s of %" PRIu64 " bytes started%s", m->name, what, m->size,
		     s->source >= 0 ? " (differing blocks rewritten from the named source)" : "");
	while (pos < m->size && !atomic_load(&s->stop)) {
		uint64_t len = MIN((uint64_t)SCRUB_CHUNK, m->size - pos);

		r = scrub_chunk(m, s, bufs, pos, len);
		if (r == -EAGAIN)
			continue;
		if (r < 0)
			break;
		pos += len;
		done += len;
		atomic_store(&s->done, done);
		throttle(m, s, started, done);
	}
	for (i = 0; i < slots; i++)
		free(bufs[i]);
	if (s->repair)
		flush_repaired(m);
	if (r == -ENODEV)
		mirror_event(m, "CheckAborted", G_LOG_LEVEL_WARNING, -1,
			     "mirror %s: %s stopped at offset %" PRIu64 ": %s", m->name, what, pos,
			     s->source >= 0 && leg_state(&m->legs[s->source]) != LEG_IN_SYNC
				 ? "the source leg is not in sync any more"
				 : "fewer than two in-sync legs are left to compare");
	else if (atomic_load(&s->stop))
		mirror_event(m, "CheckAborted", G_LOG_LEVEL_WARNING, -1,
			     "mirror %s: %s stopped at offset %" PRIu64
			     " (the mirror closes, or its legs change)",
			     m->name, what, pos);
	else
		report(m, s, what, started);
	atomic_store(&s->active, false);
	atomic_store(&s->running, false);
	return NULL;
}

void scrub_stop(struct mirror *m)
{
	struct scrub *s = m->scrub;

	if (s == NULL || s->thread == NULL)
		return;
	atomic_store(&s->stop, true);
	g_thread_join(s->thread);
	s->thread = NULL;
}

int scrub_start(struct mirror *m, bool repair, int source, GError **error)
{
	struct scrub *s = m->scrub;
	const char *what = repair ? "repair" : "check";
	unsigned int in_sync = mirror_count_in_sync(m);

	if (atomic_load(&s->running)) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
			    "a %s of mirror %s is running already", s->repair ? "repair" : "check",
			    m->name);
		return -EALREADY;
	}
	if (atomic_load(&m->resync_running)) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
			    "a resync of mirror %s is running: %s it once it is over", m->name,
			    what);
		return -EBUSY;
	}
	if (source >= 0 && ((unsigned int)source >= atomic_load(&m->num_legs) ||
			    leg_state(&m->legs[source]) != LEG_IN_SYNC)) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "leg %d of mirror %s is not in sync: repair --source needs an in-sync "
			    "leg",
			    source, m->name);
		return -EINVAL;
	}
	if (in_sync < 2) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
			    "mirror %s has %u in-sync leg%s: a %s compares two or more", m->name,
			    in_sync, in_sync == 1 ? "" : "s", what);
		return -EBUSY;
	}
	scrub_stop(m); /* the last pass's thread, finished */
	g_mutex_lock(&s->lock);
	s->repair = repair;
	s->source = source;
	s->corrected_any = false;
	s->mismatch_cnt = 0;
	s->nranges = 0;
	s->ranges_dropped = 0;
	s->repaired = 0;
	s->repair_logs = 0;
	g_mutex_unlock(&s->lock);
	atomic_store(&s->done, 0);
	atomic_store(&s->rate, 0);
	atomic_store(&s->total, m->size);
	atomic_store(&s->stop, false);
	atomic_store(&s->active, true);
	atomic_store(&s->running, true);
	s->thread = g_thread_new("fm-scrub", scrub_thread, m);
	return 0;
}

int mirror_check(struct mirror *m, bool repair, int source, GError **error)
{
	int r;

	g_mutex_lock(&m->reconfig_lock);
	r = scrub_start(m, repair, source, error);
	g_mutex_unlock(&m->reconfig_lock);
	return r;
}
