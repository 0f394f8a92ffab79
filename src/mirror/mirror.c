/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The mirror set: assembly, the data path and leg failure.
 *
 * Writes (and flushes, discards, write-zeroes) are one asynchronous dmio call over every in-sync
 * leg; the completion turns the error bitset into leg failures.  Reads go to one leg chosen by
 * the read policy and move on to the next leg when it fails.  Leg states are atomics read
 * without a lock on the data path; m->lock serializes only the changes of state.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mirror/mirror-internal.h"

#define MIRROR_ALIGN	       4096u /* the mirror's size is a multiple of this */
#define RESERVED_PAGES	       256u  /* bounce pages kept for O_DIRECT legs */
#define IO_ERROR_LOG_BURST     10    /* I/O error messages per leg per window */
#define IO_ERROR_LOG_WINDOW_US (10 * G_USEC_PER_SEC)

struct mirror_io {
	struct mirror *m;
	enum dmio_op op;
	unsigned int flags;
	void *buf;
	size_t len;
	size_t reported; /* the byte count a success reports (the caller's, edges included) */
	uint64_t offset;
	mirror_done_fn done;
	void *opaque;
	/* Reads: the leg being read and the legs tried so far. */
	int leg;
	uint64_t tried;
	int last_error;
	/* Writes with metadata: the bitmap and the resync's region locks were entered. */
	bool bitmap_entered;
	bool region_entered;
	/*
	 * Fan-out: region i goes to leg leg_of[i].  Sized for the legs there were when the request
	 * entered (their number cannot grow while it is in flight: mirror_freeze), not for 64:
	 * allocating and clearing 2 KiB per request was the data path's largest cost in our code.
	 */
	unsigned int num_regions;
	unsigned int capacity;
	unsigned int *leg_of;
	int *region_errors;
	struct dmio_region where[];
};

const char *mirror_state_name(enum mirror_state state)
{
	switch (state) {
	case MIRROR_CLEAN:
		return "clean";
	case MIRROR_DEGRADED:
		return "degraded";
	case MIRROR_FAILED:
		return "failed";
	case MIRROR_RESYNCING:
		return "resyncing";
	}
	return "unknown";
}

const char *leg_state_name(enum leg_state state)
{
	switch (state) {
	case LEG_IN_SYNC:
		return "in_sync";
	case LEG_FAILED:
		return "failed";
	case LEG_STALE:
		return "stale";
	case LEG_RESYNCING:
		return "resyncing";
	case LEG_REMOVED:
		return "removed";
	}
	return "unknown";
}

bool leg_is_written(const struct leg *leg)
{
	enum leg_state st = leg_state(leg);

	return leg->dev != NULL && (st == LEG_IN_SYNC || st == LEG_STALE || st == LEG_RESYNCING);
}

unsigned int mirror_count_in_sync(const struct mirror *m)
{
	unsigned int i, n = 0;

	for (i = 0; i < m->num_legs; i++)
		n += leg_state(&m->legs[i]) == LEG_IN_SYNC;
	return n;
}

/* ---- Events -------------------------------------------------------------------------------- */

void mirror_event(struct mirror *m, const char *event, GLogLevelFlags level, int leg,
		  const char *format, ...)
{
	const struct leg *l = leg >= 0 ? &m->legs[leg] : NULL;
	char *message;
	va_list ap;

	va_start(ap, format);
	message = g_strdup_vprintf(format, ap);
	va_end(ap);
	/* Plain key/value fields first: everything after MESSAGE is its format's arguments. */
	g_log_structured(G_LOG_DOMAIN, level, "FUSEMIRROR_EVENT", event, "FUSEMIRROR_MIRROR",
			 m->name, "FUSEMIRROR_LEG", l != NULL ? l->name : "", "FUSEMIRROR_LEG_PATH",
			 l != NULL ? l->path : "", "MESSAGE", "%s: %s", event, message);
	if (m->event_fn != NULL)
		m->event_fn(m->event_opaque, event, level, leg, message);
	g_free(message);
}

void mirror_set_event_handler(struct mirror *m, mirror_event_fn fn, void *opaque)
{
	m->event_fn = fn;
	m->event_opaque = opaque;
}

/*
 * Log one I/O error with the bitset, the leg, the range and errno, at most IO_ERROR_LOG_BURST
 * per leg per window, so that a dying leg cannot flood the journal.
 */
static void log_io_error(struct mirror *m, struct leg *leg, const char *what, uint64_t offset,
			 uint64_t len, int err, unsigned long leg_bits)
{
	gint64 now = g_get_monotonic_time();
	unsigned long suppressed = 0;
	bool log;

	g_mutex_lock(&m->lock);
	if (now - leg->log_window_start > IO_ERROR_LOG_WINDOW_US) {
		suppressed = leg->log_suppressed;
		leg->log_window_start = now;
		leg->log_count = 0;
		leg->log_suppressed = 0;
	}
	log = leg->log_count < IO_ERROR_LOG_BURST;
	if (log)
		leg->log_count++;
	else
		leg->log_suppressed++;
	g_mutex_unlock(&m->lock);

	if (suppressed > 0)
		g_log_structured(G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, "FUSEMIRROR_EVENT", "IOError",
				 "FUSEMIRROR_MIRROR", m->name, "FUSEMIRROR_LEG", leg->name,
				 "FUSEMIRROR_LEG_PATH", leg->path, "MESSAGE",
				 "IOError: leg %u (%s): %lu more I/O errors were not logged",
				 leg->index, leg->name, suppressed);
	if (log) {
		char errno_text[16];

		g_snprintf(errno_text, sizeof(errno_text), "%d", err);
		g_log_structured(
		    G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, "FUSEMIRROR_EVENT", "IOError",
		    "FUSEMIRROR_MIRROR", m->name, "FUSEMIRROR_LEG", leg->name,
		    "FUSEMIRROR_LEG_PATH", leg->path, "FUSEMIRROR_ERRNO", errno_text, "MESSAGE",
		    "IOError: %s error on leg %u (%s, %s) at offset %" PRIu64 " length %" PRIu64
		    ": %s (error bits 0x%lx)",
		    what, leg->index, leg->name, leg->path, offset, len, g_strerror(err), leg_bits);
	}
}

/*
 * Fail a leg unless it is the last in-sync one.  Called with m->lock held.  Returns true when
 * the leg is (now) failed.
 */
static bool leg_fail_locked(struct mirror *m, struct leg *leg, const char *why,
			    unsigned long leg_bits)
{
	enum leg_state st = leg_state(leg);
	unsigned int left;

	if (st == LEG_FAILED)
		return true;
	/* The last in-sync leg is the mirror: never fail it.  A leg catching up is no loss. */
	if (st == LEG_IN_SYNC && mirror_count_in_sync(m) <= 1)
		return false;
	atomic_store(&leg->state, LEG_FAILED);
	atomic_fetch_add(&m->events, 1);
	metadata_write(m, true, false);
	left = mirror_count_in_sync(m);
	mirror_event(m, "LegFailed", G_LOG_LEVEL_WARNING, (int)leg->index,
		     "leg %u (%s, %s) failed: %s (error bits 0x%lx); %u of %u legs in sync",
		     leg->index, leg->name, leg->path, why, leg_bits, left, m->num_legs);
	mirror_event(m, "DegradedArray", G_LOG_LEVEL_WARNING, -1,
		     "mirror %s is degraded: %u of %u legs in sync", m->name, left, m->num_legs);
	return true;
}

void mirror_fail_leg_because(struct mirror *m, struct leg *leg, const char *why)
{
	g_mutex_lock(&m->lock);
	leg_fail_locked(m, leg, why, 1ul << leg->index);
	g_mutex_unlock(&m->lock);
}

int mirror_fail_leg(struct mirror *m, unsigned int index)
{
	struct leg *leg;
	int r = 0;

	if (index >= m->num_legs)
		return -EINVAL;
	leg = &m->legs[index];
	g_mutex_lock(&m->lock);
	if (leg_state(leg) == LEG_FAILED || leg_state(leg) == LEG_REMOVED)
		r = -EALREADY;
	else if (!leg_fail_locked(m, leg, "failed by the operator", 0))
		r = -EBUSY;
	g_mutex_unlock(&m->lock);
	if (r == -EALREADY)
		mirror_set_last_error(m, "the leg is not in sync: it has failed already, or its "
					 "slot is removed");
	else if (r == -EBUSY)
		mirror_set_last_error(m, "it is the last in-sync leg");
	return r;
}

/* ---- In-flight accounting ------------------------------------------------------------------ */

/* The mirror this thread froze (its own requests go through), or NULL. */
static __thread struct mirror *freezer;

static void io_begin(struct mirror *m)
{
	for (;;) {
		atomic_fetch_add(&m->inflight, 1);
		if (G_LIKELY(atomic_load(&m->frozen) == 0) || freezer == m)
			return;
		/* Frozen: step back out and wait for the thaw. */
		atomic_fetch_sub(&m->inflight, 1);
		g_mutex_lock(&m->freeze_lock);
		while (atomic_load(&m->frozen) != 0)
			g_cond_wait(&m->freeze_cond, &m->freeze_lock);
		g_mutex_unlock(&m->freeze_lock);
	}
}

void mirror_freeze(struct mirror *m)
{
	g_mutex_lock(&m->freeze_lock);
	while (atomic_load(&m->frozen) != 0)
		g_cond_wait(&m->freeze_cond, &m->freeze_lock);
	atomic_store(&m->frozen, 1);
	g_mutex_unlock(&m->freeze_lock);
	freezer = m;
	/* Requests complete on engine threads; none of them waits for a new one to enter. */
	while (atomic_load(&m->inflight) > 0)
		g_usleep(50);
}

void mirror_thaw(struct mirror *m)
{
	freezer = NULL;
	g_mutex_lock(&m->freeze_lock);
	atomic_store(&m->frozen, 0);
	g_cond_broadcast(&m->freeze_cond);
	g_mutex_unlock(&m->freeze_lock);
}

static void io_finish(struct mirror_io *io, ssize_t result)
{
	struct mirror *m = io->m;

	if (io->region_entered)
		resync_write_exit(m, io->offset, io->len);
	if (io->bitmap_entered)
		bitmap_end_write(m->bitmap, io->offset, io->len);
	io->done(io->opaque, result);
	g_free(io);
	atomic_fetch_sub(&m->inflight, 1);
}

static struct mirror_io *io_new(struct mirror *m, enum dmio_op op, void *buf, size_t len,
				uint64_t offset, unsigned int flags, mirror_done_fn done,
				void *opaque)
{
	struct mirror_io *io;
	unsigned int legs;

	/* In first: from here on the number of legs is fixed until the request is done. */
	io_begin(m);
	legs = MAX(m->num_legs, 1u);
	io = g_malloc(sizeof(*io) + legs * (sizeof(io->where[0]) + sizeof(io->leg_of[0]) +
					    sizeof(io->region_errors[0])));
	memset(io, 0, sizeof(*io));
	io->capacity = legs;
	io->leg_of = (unsigned int *)&io->where[legs];
	io->region_errors = (int *)&io->leg_of[legs];
	memset(io->region_errors, 0, legs * sizeof(io->region_errors[0]));
	io->m = m;
	io->op = op;
	io->buf = buf;
	io->len = len;
	io->reported = len;
	io->offset = offset;
	io->flags = flags;
	io->done = done;
	io->opaque = opaque;
	io->leg = -1;
	return io;
}

/* The most frequent errno among the failed regions (the caller's error when all failed). */
static int majority_errno(const struct mirror_io *io, unsigned long error)
{
	int best = EIO, best_count = 0;
	unsigned int i, j;

	for (i = 0; i < io->num_regions; i++) {
		int count = 0;

		if (!(error & (1ul << i)) || io->region_errors[i] == 0)
			continue;
		for (j = 0; j < io->num_regions; j++)
			count +=
			    (error & (1ul << j)) && io->region_errors[j] == io->region_errors[i];
		if (count > best_count) {
			best = io->region_errors[i];
			best_count = count;
		}
	}
	return best;
}

/* ---- Writes, flushes, discards, write-zeroes: one dmio call over the in-sync legs ---------- */

static const char *op_name(enum dmio_op op)
{
	switch (op) {
	case DMIO_READ:
		return "read";
	case DMIO_WRITE:
		return "write";
	case DMIO_FLUSH:
		return "flush";
	case DMIO_DISCARD:
		return "discard";
	case DMIO_WRITE_ZEROES:
		return "write-zeroes";
	}
	return "I/O";
}

static void fanout_issue(struct mirror_io *io);

static void fanout_done(unsigned long error, void *context)
{
	struct mirror_io *io = context;
	struct mirror *m = io->m;
	unsigned long leg_bits = 0;
	unsigned int i, good = 0;
	ssize_t result;

	for (i = 0; i < io->num_regions; i++)
		atomic_fetch_sub(&m->legs[io->leg_of[i]].pending, 1);
	if (error == 0) {
		io_finish(io, io->op == DMIO_FLUSH ? 0 : (ssize_t)io->reported);
		return;
	}

	/* A leg just learned it cannot discard: zero the range everywhere instead. */
	if (io->op == DMIO_DISCARD) {
		for (i = 0; i < io->num_regions; i++)
			if ((error & (1ul << i)) && io->region_errors[i] == EOPNOTSUPP)
				break;
		if (i < io->num_regions) {
			io->op = DMIO_WRITE_ZEROES;
			fanout_issue(io);
			return;
		}
	}

	for (i = 0; i < io->num_regions; i++)
		if (error & (1ul << i))
			leg_bits |= 1ul << io->leg_of[i];
	atomic_store(&m->error_bits, leg_bits);
	for (i = 0; i < io->num_regions; i++) {
		struct leg *leg = &m->legs[io->leg_of[i]];

		if (!(error & (1ul << i)))
			continue;
		atomic_fetch_add(&leg->write_errors, 1);
		log_io_error(m, leg, op_name(io->op), io->offset, io->len, io->region_errors[i],
			     leg_bits);
	}

	/*
	 * The request succeeded if a leg that is still in sync took it.  Judge that and fail the
	 * legs that did not take it under one lock: two writes failing on different legs at once
	 * must not each leave the other leg, which missed an acknowledged write, in sync.
	 */
	g_mutex_lock(&m->lock);
	for (i = 0; i < io->num_regions; i++)
		if (!(error & (1ul << i)) && leg_state(&m->legs[io->leg_of[i]]) == LEG_IN_SYNC)
			good++;
	if (good > 0) {
		for (i = 0; i < io->num_regions; i++) {
			struct leg *leg = &m->legs[io->leg_of[i]];
			char *why;

			if (!(error & (1ul << i)))
				continue;
			why = g_strdup_printf("%s error at offset %" PRIu64 " length %zu: %s",
					      op_name(io->op), io->offset, io->len,
					      g_strerror(io->region_errors[i]));
			leg_fail_locked(m, leg, why, leg_bits);
			g_free(why);
		}
	}
	g_mutex_unlock(&m->lock);

	if (good > 0)
		result = io->op == DMIO_FLUSH ? 0 : (ssize_t)io->reported;
	else
		result = -majority_errno(io, error);
	io_finish(io, result);
}

static void fanout_issue(struct mirror_io *io)
{
	struct mirror *m = io->m;
	struct dmio_request req = {
	    .op = io->op,
	    .flags = DMIO_REQ_CALLER_RUNS | ((io->flags & MIRROR_FUA) ? DMIO_REQ_FUA : 0),
	    .notify = {.fn = fanout_done, .context = io},
	    .client = m->client,
	    .region_errors = io->region_errors,
	};
	unsigned int i, n = 0, in_sync = 0;
	int r;

	/* Before the first write to a clean region its bit is durable on every leg. */
	if (m->bitmap != NULL && io->op != DMIO_FLUSH && !io->bitmap_entered) {
		io->region_entered = resync_write_enter(m, io->offset, io->len);
		io->bitmap_entered = true;
		r = bitmap_start_write(m->bitmap, io->offset, io->len);
		if (r < 0) {
			io_finish(io, r);
			return;
		}
	}
	req.mem.type = DMIO_MEM_VM;
	req.mem.ptr.vma = io->buf;
	for (i = 0; i < m->num_legs && n < io->capacity; i++) {
		struct leg *leg = &m->legs[i];

		/* Legs catching up take every write; only in-sync legs count for success. */
		if (!leg_is_written(leg))
			continue;
		in_sync += leg_state(leg) == LEG_IN_SYNC;
		io->leg_of[n] = i;
		io->where[n].dev = leg->dev;
		io->where[n].sector = (m->data_offset + io->offset) >> DMIO_SECTOR_SHIFT;
		io->where[n].count = io->op == DMIO_FLUSH ? 0 : io->len >> DMIO_SECTOR_SHIFT;
		n++;
	}
	io->num_regions = n;
	/* Legs catching up alone cannot make a write succeed. */
	if (in_sync == 0) {
		io_finish(io, -EIO);
		return;
	}
	for (i = 0; i < n; i++)
		atomic_fetch_add(&m->legs[io->leg_of[i]].pending, 1);
	r = dmio(&req, n, io->where, NULL);
	if (r < 0) {
		for (i = 0; i < n; i++)
			atomic_fetch_sub(&m->legs[io->leg_of[i]].pending, 1);
		io_finish(io, r);
	}
}

/* ---- Reads: one leg by policy, the next one on error --------------------------------------- */

/* The leg to read next, among the in-sync legs not tried yet; -1 when none is left. */
static int pick_read_leg(struct mirror *m, uint64_t tried)
{
	unsigned int eligible[DMIO_MAX_REGIONS];
	unsigned int i, count = 0, best_pending = UINT_MAX;
	int pass, best = -1;

	/* Write-mostly legs only when nothing else can serve. */
	for (pass = 0; pass < 2 && count == 0; pass++) {
		for (i = 0; i < m->num_legs; i++) {
			struct leg *leg = &m->legs[i];

			if (leg_state(leg) == LEG_IN_SYNC && !(tried & (1ull << i)) &&
			    leg->write_mostly == (pass == 1))
				eligible[count++] = i;
		}
	}
	if (count == 0)
		return -1;
	switch (m->policy) {
	case READ_POLICY_PRIMARY:
		return (int)eligible[0];
	case READ_POLICY_ROUND_ROBIN:
		/* Turn over the legs that can serve, so a failed leg's turn is not its successor's.
		 */
		return (int)eligible[atomic_fetch_add(&m->round_robin, 1) % count];
	case READ_POLICY_LEAST_PENDING:
		break;
	}
	for (i = 0; i < count; i++) {
		unsigned int pending = atomic_load(&m->legs[eligible[i]].pending);

		if (pending < best_pending) {
			best = (int)eligible[i];
			best_pending = pending;
		}
	}
	return best;
}

int mirror_pick_read_leg(struct mirror *m)
{
	return pick_read_leg(m, 0);
}

static void read_issue(struct mirror_io *io);

static void read_done(unsigned long error, void *context)
{
	struct mirror_io *io = context;
	struct mirror *m = io->m;
	struct leg *leg = &m->legs[io->leg];
	int err = io->region_errors[0] != 0 ? io->region_errors[0] : EIO;
	char *why;

	atomic_fetch_sub(&leg->pending, 1);
	if (error == 0) {
		io_finish(io, (ssize_t)io->len);
		return;
	}
	io->last_error = err;
	atomic_fetch_add(&leg->read_errors, 1);
	atomic_store(&m->error_bits, 1ul << leg->index);
	log_io_error(m, leg, "read", io->offset, io->len, err, 1ul << leg->index);
	why = g_strdup_printf("read error at offset %" PRIu64 " length %zu: %s", io->offset,
			      io->len, g_strerror(err));
	g_mutex_lock(&m->lock);
	leg_fail_locked(m, leg, why, 1ul << leg->index);
	g_mutex_unlock(&m->lock);
	g_free(why);
	read_issue(io);
}

static void read_issue(struct mirror_io *io)
{
	struct mirror *m = io->m;
	struct dmio_request req = {
	    .op = DMIO_READ,
	    .flags = DMIO_REQ_CALLER_RUNS,
	    .notify = {.fn = read_done, .context = io},
	    .client = m->client,
	    .region_errors = io->region_errors,
	};
	int leg = pick_read_leg(m, io->tried);
	int r;

	/* After a crash, a dirty region not yet resynced is read from the resync's source. */
	if (leg >= 0 && resync_read_needs_source(m, io->offset, io->len)) {
		int source = atomic_load(&m->resync_source);

		if (source >= 0 && leg_state(&m->legs[source]) == LEG_IN_SYNC &&
		    !(io->tried & (1ull << source)))
			leg = source;
	}

	if (leg < 0) {
		io_finish(io, io->last_error != 0 ? -io->last_error : -EIO);
		return;
	}
	io->leg = leg;
	io->tried |= 1ull << leg;
	io->num_regions = 1;
	io->leg_of[0] = (unsigned int)leg;
	io->where[0].dev = m->legs[leg].dev;
	io->where[0].sector = (m->data_offset + io->offset) >> DMIO_SECTOR_SHIFT;
	io->where[0].count = io->len >> DMIO_SECTOR_SHIFT;
	req.mem.type = DMIO_MEM_VM;
	req.mem.ptr.vma = io->buf;
	atomic_fetch_add(&m->legs[leg].pending, 1);
	r = dmio(&req, 1, io->where, NULL);
	if (r < 0) {
		atomic_fetch_sub(&m->legs[leg].pending, 1);
		io_finish(io, r);
	}
}

/* ---- Byte-granular requests: the sector is the legs' unit ---------------------------------- */

/* A caller that waits for its own request: usually done before it waits (CALLER_RUNS). */
struct waiter {
	GMutex lock;
	GCond cond;
	bool done;
	bool sleeping; /* the caller waits on cond */
	ssize_t result;
};

static void waiter_done(void *opaque, ssize_t result)
{
	struct waiter *w = opaque;

	g_mutex_lock(&w->lock);
	w->result = result;
	w->done = true;
	/* Usually the waiter itself is here: wake it (a system call) only when it sleeps. */
	if (w->sleeping)
		g_cond_signal(&w->cond);
	g_mutex_unlock(&w->lock);
}

static ssize_t waiter_wait(struct waiter *w)
{
	g_mutex_lock(&w->lock);
	while (!w->done) {
		w->sleeping = true;
		g_cond_wait(&w->cond, &w->lock);
	}
	g_mutex_unlock(&w->lock);
	return w->result;
}

static void waiter_init(struct waiter *w)
{
	g_mutex_init(&w->lock);
	g_cond_init(&w->cond);
	w->done = false;
	w->sleeping = false;
	w->result = 0;
}

static void waiter_clear(struct waiter *w)
{
	g_cond_clear(&w->cond);
	g_mutex_clear(&w->lock);
}

static bool sector_aligned(uint64_t offset, uint64_t len)
{
	return ((offset | len) & (DMIO_SECTOR_SIZE - 1)) == 0;
}

static void *aligned_buffer(size_t len)
{
	void *buf;

	if (posix_memalign(&buf, MIRROR_ALIGN, len > 0 ? len : 1) != 0)
		return NULL;
	return buf;
}

/* Read or write whole sectors and wait. */
static ssize_t aligned_io_wait(struct mirror *m, enum dmio_op op, void *buf, size_t len,
			       uint64_t offset, unsigned int flags)
{
	struct waiter w;
	struct mirror_io *io;
	ssize_t r;

	waiter_init(&w);
	io = io_new(m, op, buf, len, offset, flags, waiter_done, &w);
	if (op == DMIO_READ)
		read_issue(io);
	else
		fanout_issue(io);
	r = waiter_wait(&w);
	waiter_clear(&w);
	return r;
}

/*
 * A write (data != NULL) or zeroing (data == NULL) that does not cover whole sectors: read the
 * partial edge sectors, merge, write the covering range.  Blocks the calling thread; such
 * requests are rare (a block device user sends whole sectors).
 */
static ssize_t rmw_write(struct mirror *m, const void *data, size_t len, uint64_t offset,
			 unsigned int flags)
{
	uint64_t start = offset & ~(uint64_t)(DMIO_SECTOR_SIZE - 1);
	uint64_t end = (offset + len + DMIO_SECTOR_SIZE - 1) & ~(uint64_t)(DMIO_SECTOR_SIZE - 1);
	uint64_t first = start >> DMIO_SECTOR_SHIFT, last = (end >> DMIO_SECTOR_SHIFT) - 1;
	size_t span = end - start;
	char *buf = aligned_buffer(span);
	ssize_t r = 0;

	if (buf == NULL)
		return -ENOMEM;
	/*
	 * Nothing else may touch these sectors between our read and our write: not another
	 * read-modify-write, nor an aligned write whose bytes we would put back to the old ones.
	 * Such requests are rare enough to hold every other request back meanwhile.
	 */
	mirror_freeze(m);
	if (offset != start)
		r = aligned_io_wait(m, DMIO_READ, buf, DMIO_SECTOR_SIZE, start, 0);
	if (r >= 0 && offset + len != end && (last != first || offset == start))
		r = aligned_io_wait(m, DMIO_READ, buf + span - DMIO_SECTOR_SIZE, DMIO_SECTOR_SIZE,
				    end - DMIO_SECTOR_SIZE, 0);
	if (r >= 0) {
		if (data != NULL)
			memcpy(buf + (offset - start), data, len);
		else
			memset(buf + (offset - start), 0, len);
		r = aligned_io_wait(m, DMIO_WRITE, buf, span, start, flags);
	}
	mirror_thaw(m);
	free(buf);
	return r < 0 ? r : (ssize_t)len;
}

/* ---- The public data path ------------------------------------------------------------------ */

/* Clip [offset, offset + *len) to the device.  False when it starts at or past the end. */
static bool clip(const struct mirror *m, uint64_t offset, uint64_t *len)
{
	if (offset >= m->size)
		return false;
	if (*len > m->size - offset)
		*len = m->size - offset;
	return true;
}

void mirror_write(struct mirror *m, const void *buf, size_t len, uint64_t offset,
		  unsigned int flags, mirror_done_fn done, void *opaque)
{
	uint64_t n = len;

	if (len == 0) {
		done(opaque, 0);
		return;
	}
	if (!clip(m, offset, &n)) {
		done(opaque, -ENOSPC);
		return;
	}
	if (!sector_aligned(offset, n)) {
		done(opaque, rmw_write(m, buf, n, offset, flags));
		return;
	}
	fanout_issue(io_new(m, DMIO_WRITE, (void *)buf, n, offset, flags, done, opaque));
}

struct unaligned_read {
	char *bounce;
	void *buf;
	size_t skip;
	size_t len;
	mirror_done_fn done;
	void *opaque;
};

static void unaligned_read_done(void *opaque, ssize_t result)
{
	struct unaligned_read *u = opaque;

	if (result >= 0) {
		memcpy(u->buf, u->bounce + u->skip, u->len);
		result = (ssize_t)u->len;
	}
	u->done(u->opaque, result);
	free(u->bounce);
	g_free(u);
}

void mirror_read(struct mirror *m, void *buf, size_t len, uint64_t offset, mirror_done_fn done,
		 void *opaque)
{
	uint64_t n = len, start, end;
	struct unaligned_read *u;

	if (len == 0 || !clip(m, offset, &n)) {
		done(opaque, 0);
		return;
	}
	if (sector_aligned(offset, n)) {
		read_issue(io_new(m, DMIO_READ, buf, n, offset, 0, done, opaque));
		return;
	}
	/* Read the covering sectors into a bounce buffer and copy the asked bytes out. */
	start = offset & ~(uint64_t)(DMIO_SECTOR_SIZE - 1);
	end = (offset + n + DMIO_SECTOR_SIZE - 1) & ~(uint64_t)(DMIO_SECTOR_SIZE - 1);
	u = g_new0(struct unaligned_read, 1);
	u->bounce = aligned_buffer(end - start);
	if (u->bounce == NULL) {
		g_free(u);
		done(opaque, -ENOMEM);
		return;
	}
	u->buf = buf;
	u->skip = offset - start;
	u->len = n;
	u->done = done;
	u->opaque = opaque;
	read_issue(io_new(m, DMIO_READ, u->bounce, end - start, start, 0, unaligned_read_done, u));
}

ssize_t mirror_write_wait(struct mirror *m, const void *buf, size_t len, uint64_t offset,
			  unsigned int flags)
{
	struct waiter w;
	ssize_t r;

	waiter_init(&w);
	mirror_write(m, buf, len, offset, flags, waiter_done, &w);
	r = waiter_wait(&w);
	waiter_clear(&w);
	return r;
}

ssize_t mirror_read_wait(struct mirror *m, void *buf, size_t len, uint64_t offset)
{
	struct waiter w;
	ssize_t r;

	waiter_init(&w);
	mirror_read(m, buf, len, offset, waiter_done, &w);
	r = waiter_wait(&w);
	waiter_clear(&w);
	return r;
}

void mirror_flush(struct mirror *m, mirror_done_fn done, void *opaque)
{
	fanout_issue(io_new(m, DMIO_FLUSH, NULL, 0, 0, 0, done, opaque));
}

/* A hole reads back as zeroes only in files: block-device legs are zeroed instead. */
static enum dmio_op discard_op(const struct mirror *m)
{
	unsigned int i;

	for (i = 0; i < m->num_legs; i++) {
		const struct leg *leg = &m->legs[i];

		if (leg_state(leg) == LEG_IN_SYNC &&
		    (dmio_dev_is_block(leg->dev) || !dmio_dev_can_discard(leg->dev)))
			return DMIO_WRITE_ZEROES;
	}
	return DMIO_DISCARD;
}

/*
 * Zero [offset, offset + len) with op: the whole sectors through one fan-out, the partial edge
 * sectors by read-modify-write.
 */
static void zero_range(struct mirror *m, enum dmio_op op, uint64_t offset, uint64_t len,
		       unsigned int flags, mirror_done_fn done, void *opaque)
{
	uint64_t n = len, start, end;
	struct mirror_io *io;
	ssize_t r;

	if (len == 0 || !clip(m, offset, &n)) {
		done(opaque, 0);
		return;
	}
	start = (offset + DMIO_SECTOR_SIZE - 1) & ~(uint64_t)(DMIO_SECTOR_SIZE - 1);
	end = (offset + n) & ~(uint64_t)(DMIO_SECTOR_SIZE - 1);
	if (start >= end) {
		/* Within one sector, or two partial ones. */
		r = rmw_write(m, NULL, n, offset, flags);
		done(opaque, r < 0 ? r : (ssize_t)n);
		return;
	}
	if (start > offset) {
		r = rmw_write(m, NULL, start - offset, offset, flags);
		if (r < 0) {
			done(opaque, r);
			return;
		}
	}
	if (offset + n > end) {
		r = rmw_write(m, NULL, offset + n - end, end, flags);
		if (r < 0) {
			done(opaque, r);
			return;
		}
	}
	io = io_new(m, op, NULL, end - start, start, flags, done, opaque);
	io->reported = n;
	fanout_issue(io);
}

void mirror_discard(struct mirror *m, uint64_t offset, uint64_t len, mirror_done_fn done,
		    void *opaque)
{
	zero_range(m, discard_op(m), offset, len, 0, done, opaque);
}

void mirror_write_zeroes(struct mirror *m, uint64_t offset, uint64_t len, unsigned int flags,
			 mirror_done_fn done, void *opaque)
{
	zero_range(m, DMIO_WRITE_ZEROES, offset, len, flags, done, opaque);
}

/* ---- Assembly ------------------------------------------------------------------------------ */

GQuark mirror_error_quark(void)
{
	return g_quark_from_static_string("mirror-error-quark");
}

static char *format_size(uint64_t bytes)
{
	return g_format_size_full(bytes, G_FORMAT_SIZE_IEC_UNITS);
}

bool mirror_same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	if (stat(a, &sa) < 0 || stat(b, &sb) < 0)
		return false;
	if (S_ISBLK(sa.st_mode) && S_ISBLK(sb.st_mode))
		return sa.st_rdev == sb.st_rdev;
	return !S_ISBLK(sa.st_mode) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int open_leg(struct mirror *m, const struct mirror_config *config, unsigned int i,
		    gint64 deadline, GError **error)
{
	const struct leg_config *lc = &config->legs[i];
	struct leg *leg = &m->legs[i];
	unsigned int j;
	uint64_t bytes;
	int r;

	leg->m = m;
	leg->index = i;
	leg->name = g_strdup(lc->name);
	leg->path = g_strdup(lc->path);
	leg->write_mostly = lc->write_mostly;
	atomic_init(&leg->state, LEG_IN_SYNC);
	atomic_init(&leg->recovery_offset, SB_RECOVERY_DONE);
	r = dmio_dev_open(lc->path, 0, &leg->dev);
	if (r == -ENOENT && m->metadata == METADATA_INTERNAL && g_get_monotonic_time() < deadline) {
		/* A device may still be coming up (udev, iSCSI login): give it assemble-timeout. */
		g_message("leg %u (%s): waiting up to %d s for %s to appear", i, lc->name,
			  (int)((deadline - g_get_monotonic_time() + G_USEC_PER_SEC - 1) /
				G_USEC_PER_SEC),
			  lc->path);
		do {
			g_usleep(100 * 1000);
			r = dmio_dev_open(lc->path, 0, &leg->dev);
		} while (r == -ENOENT && g_get_monotonic_time() < deadline);
	}
	if (r == -ENOENT && m->metadata == METADATA_INTERNAL) {
		/* The superblocks of the others tell what it missed when it comes back. */
		g_warning("leg %u (%s): %s is missing: the mirror starts without it", i, lc->name,
			  lc->path);
		atomic_store(&leg->state, LEG_FAILED);
		leg->dev = NULL;
		return 0;
	}
	if (r < 0) {
		g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_LEG, "leg '%s' (%s): cannot open: %s",
			    lc->name, lc->path,
			    r == -EINVAL ? "not a regular file or block device" : g_strerror(-r));
		return r;
	}
	/* Two legs on one file would mirror nothing. */
	for (j = 0; j < i; j++) {
		if (m->legs[j].dev != NULL && mirror_same_file(lc->path, config->legs[j].path)) {
			g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_LEG,
				    "legs '%s' (%s) and '%s' (%s) are the same file",
				    config->legs[j].name, config->legs[j].path, lc->name, lc->path);
			return -EINVAL;
		}
	}
	bytes = dmio_dev_sectors(leg->dev) << DMIO_SECTOR_SHIFT;
	bytes -= bytes % MIRROR_ALIGN;
	if (bytes == 0) {
		char *have = format_size(dmio_dev_sectors(leg->dev) << DMIO_SECTOR_SHIFT);

		g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_LEG,
			    "leg '%s' (%s) is %s: a leg needs at least 4 KiB", lc->name, lc->path,
			    have);
		g_free(have);
		return -ENOSPC;
	}
	if (m->metadata == METADATA_NONE)
		m->size = MIN(m->size, bytes);
	return 0;
}

static int leg_index_by_name(const struct mirror_config *config, const char *name)
{
	unsigned int i;

	for (i = 0; i < config->num_legs; i++)
		if (strcmp(config->legs[i].name, name) == 0)
			return (int)i;
	return -1;
}

int mirror_open(const struct mirror_config *config, struct mirror **out, GError **error)
{
	struct dmio_client_opts opts = {
	    .engine = config->engine,
	    .threads = config->threads,
	    .reserved_pages = RESERVED_PAGES,
	};
	int force_source = -1;
	gint64 deadline;
	struct mirror *m;
	unsigned int i;
	int r;

	*out = NULL;
	if (config->num_legs == 0 || config->num_legs > DMIO_MAX_REGIONS) {
		g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_LEG,
			    "a mirror has 1 to %u legs, not %u", DMIO_MAX_REGIONS,
			    config->num_legs);
		return -EINVAL;
	}
	if (config->force_source != NULL) {
		force_source = leg_index_by_name(config, config->force_source);
		if (force_source < 0) {
			g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_LEG,
				    "--force-source: the mirror has no leg named '%s'",
				    config->force_source);
			return -EINVAL;
		}
	}
	m = g_new0(struct mirror, 1);
	m->name = g_strdup(config->name);
	m->policy = config->read_policy;
	m->metadata = config->metadata;
	m->num_legs = config->num_legs;
	m->legs = g_new0(struct leg, SB_MAX_LEGS);
	g_mutex_init(&m->lock);
	g_mutex_init(&m->sb_lock);
	g_mutex_init(&m->cleaner_lock);
	g_cond_init(&m->cleaner_cond);
	g_mutex_init(&m->region_lock);
	g_cond_init(&m->region_cond);
	m->region_busy = UINT64_MAX;
	m->region_writers = g_hash_table_new(g_direct_hash, g_direct_equal);
	atomic_init(&m->resync_source, -1);
	atomic_init(&m->resync_rate_min, config->resync_rate_min);
	atomic_init(&m->resync_rate_max, config->resync_rate_max);
	g_mutex_init(&m->freeze_lock);
	g_cond_init(&m->freeze_cond);
	m->retired = g_ptr_array_new_with_free_func(g_free);
	m->size = UINT64_MAX;

	r = dmio_client_create(&opts, &m->client);
	if (r < 0) {
		g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_ENGINE,
			    "cannot start the %s I/O engine: %s",
			    config_engine_name(config->engine), g_strerror(-r));
		goto fail;
	}
	/* One assemble-timeout for all the legs, from now. */
	deadline = g_get_monotonic_time() + (gint64)config->assemble_timeout * G_USEC_PER_SEC;
	for (i = 0; i < m->num_legs; i++) {
		r = open_leg(m, config, i, deadline, error);
		if (r < 0)
			goto fail;
	}

	if (m->metadata == METADATA_INTERNAL) {
		r = metadata_assemble(m, force_source, error);
		if (r < 0)
			goto fail;
		m->assembled = true;
		/* Running: dirty until a clean stop says otherwise. */
		r = metadata_write(m, true, false);
		if (r < 0) {
			g_set_error(error, MIRROR_ERROR, MIRROR_ERROR_LEG,
				    "cannot write the superblocks: %s", g_strerror(-r));
			goto fail;
		}
		metadata_start_cleaner(m);
		resync_start(m);
	} else {
		for (i = 0; i < m->num_legs; i++) {
			uint64_t bytes = dmio_dev_sectors(m->legs[i].dev) << DMIO_SECTOR_SHIFT;

			if (bytes - bytes % MIRROR_ALIGN > m->size) {
				char *a = format_size(bytes), *b = format_size(m->size);

				g_message("leg %u (%s) is %s; the mirror uses the first %s of it",
					  i, m->legs[i].name, a, b);
				g_free(a);
				g_free(b);
			}
		}
		m->assembled = true;
	}
	*out = m;
	return 0;
fail:
	m->assembled = false;
	mirror_close(m);
	return r;
}

void mirror_close(struct mirror *m)
{
	unsigned int i;

	if (m == NULL)
		return;
	resync_stop(m);
	/* In-flight requests complete on engine threads; wait for the last reply. */
	while (atomic_load(&m->inflight) > 0)
		g_usleep(1000);
	if (m->client != NULL) {
		struct waiter w;

		if (m->assembled && mirror_count_in_sync(m) > 0) {
			waiter_init(&w);
			mirror_flush(m, waiter_done, &w);
			if (waiter_wait(&w) < 0)
				g_warning("mirror %s: the final flush failed: %s", m->name,
					  g_strerror((int)-w.result));
			waiter_clear(&w);
			while (atomic_load(&m->inflight) > 0)
				g_usleep(1000);
		}
		metadata_stop(m);
		dmio_client_destroy(m->client);
	}
	for (i = 0; i < m->num_legs; i++) {
		dmio_dev_close(m->legs[i].dev);
		g_free(m->legs[i].name);
		g_free(m->legs[i].path);
	}
	g_ptr_array_unref(m->retired);
	g_free(m->last_error);
	g_cond_clear(&m->freeze_cond);
	g_mutex_clear(&m->freeze_lock);
	bitmap_free(m->bitmap);
	g_hash_table_destroy(m->region_writers);
	g_cond_clear(&m->region_cond);
	g_mutex_clear(&m->region_lock);
	g_cond_clear(&m->cleaner_cond);
	g_mutex_clear(&m->cleaner_lock);
	g_mutex_clear(&m->sb_lock);
	g_mutex_clear(&m->lock);
	g_free(m->legs);
	g_free(m->name);
	g_free(m);
}

/* ---- Status -------------------------------------------------------------------------------- */

uint64_t mirror_size(const struct mirror *m)
{
	return m->size;
}

const char *mirror_name(const struct mirror *m)
{
	return m->name;
}

enum mirror_state mirror_state(const struct mirror *m)
{
	unsigned int n = mirror_count_in_sync(m);

	if (n == 0)
		return MIRROR_FAILED;
	if (atomic_load(&((struct mirror *)m)->resync_active))
		return MIRROR_RESYNCING;
	return n == m->num_legs ? MIRROR_CLEAN : MIRROR_DEGRADED;
}

void mirror_resync_status(const struct mirror *m, struct resync_status *out)
{
	struct mirror *mm = (struct mirror *)m;

	out->active = atomic_load(&mm->resync_active);
	out->done = atomic_load(&mm->resync_done);
	out->total = atomic_load(&mm->resync_total);
	out->rate = atomic_load(&mm->resync_rate);
}

void mirror_set_resync_rate(struct mirror *m, uint64_t min, uint64_t max)
{
	atomic_store(&m->resync_rate_min, min);
	atomic_store(&m->resync_rate_max, max);
}

void mirror_get_resync_rate(const struct mirror *m, uint64_t *min, uint64_t *max)
{
	struct mirror *mm = (struct mirror *)m;

	*min = atomic_load(&mm->resync_rate_min);
	*max = atomic_load(&mm->resync_rate_max);
}

unsigned int mirror_num_legs(const struct mirror *m)
{
	return m->num_legs;
}

void mirror_leg_status(const struct mirror *m, unsigned int index, struct leg_status *out)
{
	struct leg *leg = &m->legs[index];

	out->name = leg->name;
	out->path = leg->path;
	out->state = leg_state(leg);
	out->write_mostly = leg->write_mostly;
	out->read_errors = atomic_load(&leg->read_errors);
	out->write_errors = atomic_load(&leg->write_errors);
	out->pending = atomic_load(&leg->pending);
}

unsigned long mirror_error_bits(const struct mirror *m)
{
	return atomic_load(&((struct mirror *)m)->error_bits);
}

uint64_t mirror_events(const struct mirror *m)
{
	struct mirror *mm = (struct mirror *)m;
	uint64_t events;

	/* With superblocks, the events counter is theirs. */
	if (m->metadata != METADATA_INTERNAL)
		return atomic_load(&mm->events);
	g_mutex_lock(&mm->sb_lock);
	events = mm->array.events;
	g_mutex_unlock(&mm->sb_lock);
	return events;
}
