/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The data path.  A write (or write-zeroes, discard) enters (quiesce.c), holds its range
 * (rangelock.c: overlapping writes reach the legs in order), makes its regions' bitmap bits
 * durable (metadata = internal), and is one asynchronous dmio call over every leg that takes
 * writes; the completion turns the error bitset into leg failures and, when a failure is not
 * yet in the superblocks, hands the request to the metadata thread, which completes it once it
 * is.  A flush is the same call without range or bitmap.  Reads go to one leg chosen by the read
 * policy, and to the next one when it fails (a media error queues the range's correction,
 * readfix.c; any other error fails the leg); they take no range.  Leg states are atomics read
 * without a lock here; they change only through leg.c.
 *
 * Write-behind (md's, DRBD's protocol A): a write-mostly leg with write-behind = N takes a write
 * in a dmio call of its own, on a copy of the data (struct behind_write), and the request is
 * answered once the other legs, one of them in sync, have it.  The behind part owns the range,
 * the bitmap count and the request's place in flight until both parts are done: a later
 * overlapping write waits for the behind leg too (the range), the region stays dirty until the
 * behind leg has the data (the bitmap: a crash resyncs it), freezing and close wait for it
 * (quiesce.c), and a failure of the behind write fails the leg (legs_fail_missed) before the
 * region's count is let go.  At most N writes are behind on a leg; the next one is an ordinary
 * write on that leg (waited for), as md's are.  Writes only: read-modify-writes, write-zeroes and
 * discards wait for every leg.  A read that only a write-behind leg can serve is parked on the
 * overlapping behind writes of that leg and issued again once they are done.  A flush (and FUA)
 * is answered once the other legs are durable: flushes skip the write-behind legs, whose writes
 * become durable by the cleaner's flush of every leg, before it clears their regions' bits.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mirror/mirror-internal.h"

/* Flags of a request (io->flags besides MIRROR_FUA). */
#define IO_NESTED     (1u << 16) /* part of a request that entered already (read-modify-write) */
#define IO_RANGE_HELD (1u << 17) /* its caller holds the range */

/*
 * A write from a pipe (mirror_write_pipe_answered): the caller's, on its stack, pointed to by the
 * request only until its dmio call is issued, all in the caller's thread (fanout_issue runs
 * there up to dmio()), so no completion, retry or abandoned leg ever sees it.  left is what is
 * still in the pipe of the request's bytes; broken: unknown (memory ran out part-way).
 */
struct pipe_source {
	int fd;
	size_t left;
	bool broken;
};

struct mirror_io {
	struct mirror *m;
	enum dmio_op op;
	unsigned int flags;
	void *buf;
	size_t len;
	size_t reported; /* the byte count a success reports (the caller's, edges included) */
	uint64_t offset;
	/*
	 * The answer, as soon as the outcome is known, and the release, once no leg uses the
	 * caller's memory: later than the answer when a leg that holds it was abandoned.
	 */
	mirror_answer_fn answer;
	void (*release)(void *opaque);
	void *opaque;
	/* The answer to come (1) and the dmio calls not released; the last one frees it. */
	atomic_uint holds;
	/* A read's own buffer, when an abandoned leg kept the caller's (then data comes here). */
	void *own_buf;
	ssize_t result; /* a completion handed to the metadata thread */
	/* Reads: the leg being read and the legs tried so far. */
	int leg;
	uint64_t tried;
	int last_error;
	/* Writes: the range held, the bitmap entered. */
	bool range_held;
	bool bitmap_entered;
	struct rangelock_hold hold;
	/*
	 * A write with a behind part: it owns the range (in its own hold), the bitmap count and
	 * the request's place in flight (io_end), which it lets go once both parts are done;
	 * this request's part ends in io_release().  NULL once it ended.
	 */
	struct behind_write *behind;
	bool inflight_moved;	       /* behind (or the part that ended) does the io_end */
	struct mirror_io *parked_next; /* a read parked on a behind write (behind_lock) */
	/* A write from a pipe: the caller's source until issued, and the copy made of it if any. */
	struct pipe_source *pipe;
	void *pipe_copy;
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

static void *aligned_buffer(size_t len)
{
	void *buf;

	if (posix_memalign(&buf, MIRROR_ALIGN, len > 0 ? len : 1) != 0)
		return NULL;
	return buf;
}

/* ---- Write-behind: the part of a write on the write-behind legs ----------------------------- */

struct behind_write {
	struct mirror *m;
	uint64_t offset;
	size_t len;
	void *copy;    /* the data: the caller's buffer is the caller's again once answered */
	uint64_t legs; /* bitset: the legs written behind */
	/* The request's part and the behind call: the last one to end lets go (behind_end). */
	atomic_uint parts;
	/* The parts (1) and the behind call's release: the last frees it (and the copy). */
	atomic_uint holds;
	atomic_bool answered; /* the request was answered */
	/* Set by each part before it ends (read by the last, after its atomic decrement). */
	uint64_t main_took;  /* the legs that took the request's part */
	unsigned long error; /* the behind call's error bitset */
	bool range_held;
	bool bitmap_entered;
	struct rangelock_hold hold;
	/* Under m->behind_lock: the list of behind writes and the reads parked on this one. */
	struct behind_write *prev, *next;
	bool listed;
	struct mirror_io *parked;
	/* The behind call: region i goes to leg leg_of[i]. */
	unsigned int num_regions;
	unsigned int leg_of[DMIO_MAX_REGIONS];
	int region_errors[DMIO_MAX_REGIONS];
	struct dmio_region where[DMIO_MAX_REGIONS];
};

void io_behind_init(struct mirror *m)
{
	g_mutex_init(&m->behind_lock);
	m->behind_head = NULL;
	atomic_init(&m->behind_count, 0);
}

void io_behind_clear(struct mirror *m)
{
	g_assert(m->behind_head == NULL);
	g_mutex_clear(&m->behind_lock);
}

/* Whether leg takes writes behind (its place reserved with behind_reserve). */
static bool leg_writes_behind(const struct leg *leg)
{
	return leg->write_mostly && atomic_load(&((struct leg *)leg)->write_behind) > 0;
}

/*
 * Whether a write may be written behind on some leg now: a leg that writes behind takes writes
 * (a failed one costs its writes nothing more).  A few atomic loads per leg.
 */
static bool behind_wanted(struct mirror *m)
{
	unsigned int i, slots = atomic_load(&m->num_legs);

	if (m->bitmap == NULL)
		return false;
	for (i = 0; i < slots; i++)
		if (leg_writes_behind(&m->legs[i]) && leg_is_written(&m->legs[i]))
			return true;
	return false;
}

/* Take one of leg's write-behind places for len bytes: false when all N are taken. */
static bool behind_reserve(struct leg *leg, size_t len)
{
	unsigned int n = atomic_load(&leg->behind_writes);

	/* Never above N, not even for a moment: status shows the count. */
	do {
		if (n >= atomic_load(&leg->write_behind))
			return false;
	} while (!atomic_compare_exchange_weak(&leg->behind_writes, &n, n + 1));
	atomic_fetch_add(&leg->behind_bytes, len);
	return true;
}

static void behind_unreserve(struct leg *leg, size_t len)
{
	atomic_fetch_sub(&leg->behind_bytes, len);
	atomic_fetch_sub(&leg->behind_writes, 1);
}

static struct behind_write *behind_new(struct mirror_io *io)
{
	struct behind_write *b = g_new0(struct behind_write, 1);

	b->m = io->m;
	b->offset = io->offset;
	b->len = io->len;
	atomic_init(&b->parts, 1);
	atomic_init(&b->holds, 1);
	atomic_init(&b->answered, false);
	/* From now on the behind part counts the request in flight. */
	io->inflight_moved = true;
	return b;
}

/* Let go of one hold; the last frees it.  Touches nothing of the mirror. */
static void behind_put(struct behind_write *b)
{
	if (atomic_fetch_sub(&b->holds, 1) != 1)
		return;
	free(b->copy);
	g_free(b);
}

static void behind_released(void *context)
{
	behind_put(context);
}

/* Some write-behind legs failed the write: log, fail them (one door: legs_fail_missed). */
static void behind_failed(struct behind_write *b)
{
	struct mirror *m = b->m;
	char *why[DMIO_MAX_REGIONS] = {NULL};
	unsigned long leg_bits = 0;
	uint64_t took = b->main_took;
	unsigned int i;

	for (i = 0; i < b->num_regions; i++) {
		if (b->error & (1ul << i))
			leg_bits |= 1ul << b->leg_of[i];
		else
			took |= 1ull << b->leg_of[i];
	}
	atomic_store(&m->error_bits, leg_bits);
	for (i = 0; i < b->num_regions; i++) {
		struct leg *leg = &m->legs[b->leg_of[i]];

		if (!(b->error & (1ul << i)))
			continue;
		atomic_fetch_add(&leg->write_errors, 1);
		leg_log_io_error(m, leg, "write-behind write", b->offset,
				 m->data_offset + b->offset, b->len, b->region_errors[i], leg_bits);
		why[leg->index] = g_strdup_printf(
		    "write-behind write error at data offset %" PRIu64 " length %zu: %s", b->offset,
		    b->len, g_strerror(b->region_errors[i]));
	}
	/* Its regions stay dirty in the bitmap: a re-add or a resync copies them. */
	legs_fail_missed(m, took, leg_bits, why, leg_bits);
	for (i = 0; i < DMIO_MAX_REGIONS; i++)
		g_free(why[i]);
}

static void read_issue(struct mirror_io *io);

/* Both parts are done: judge the behind legs, let go of the range, the bitmap, the flight. */
static void behind_end(struct behind_write *b)
{
	struct mirror *m = b->m;
	struct mirror_io *parked, *next;

	/* Before a parked read may go to a leg that failed the write. */
	if (b->error != 0)
		behind_failed(b);
	g_mutex_lock(&m->behind_lock);
	if (b->listed) {
		if (b->prev != NULL)
			b->prev->next = b->next;
		else
			m->behind_head = b->next;
		if (b->next != NULL)
			b->next->prev = b->prev;
		b->listed = false;
		atomic_fetch_sub(&m->behind_count, 1);
	}
	parked = b->parked;
	b->parked = NULL;
	g_mutex_unlock(&m->behind_lock);
	if (b->bitmap_entered)
		bitmap_end_write(m->bitmap, b->offset, b->len);
	if (b->range_held)
		rangelock_release(m->ranges, &b->hold);
	for (; parked != NULL; parked = next) {
		next = parked->parked_next;
		parked->parked_next = NULL;
		read_issue(parked);
	}
	io_end(m);
	behind_put(b);
}

static void behind_part_done(struct behind_write *b)
{
	if (atomic_fetch_sub(&b->parts, 1) == 1)
		behind_end(b);
}

static void behind_done(unsigned long error, void *context)
{
	struct behind_write *b = context;
	struct mirror *m = b->m;
	bool early = atomic_load(&b->answered);
	unsigned int i;

	for (i = 0; i < b->num_regions; i++) {
		struct leg *leg = &m->legs[b->leg_of[i]];

		atomic_fetch_sub(&leg->pending, 1);
		if (early && !(error & (1ul << i)))
			atomic_fetch_add(&leg->behind_answered, 1);
		behind_unreserve(leg, b->len);
	}
	b->error = error;
	behind_part_done(b);
}

/*
 * A read would go to leg: when a write behind on it overlaps the read, park the read on that
 * write (issued again when it is done) and return true.  Never waits: for completions too.
 */
static bool behind_park(struct mirror *m, struct mirror_io *io, unsigned int leg)
{
	struct behind_write *b;
	bool parked = false;

	g_mutex_lock(&m->behind_lock);
	for (b = m->behind_head; b != NULL; b = b->next) {
		if ((b->legs & (1ull << leg)) && b->offset < io->offset + io->len &&
		    io->offset < b->offset + b->len) {
			io->parked_next = b->parked;
			b->parked = io;
			parked = true;
			break;
		}
	}
	g_mutex_unlock(&m->behind_lock);
	return parked;
}

/* ---- A request's life ---------------------------------------------------------------------- */

static struct mirror_io *io_new(struct mirror *m, enum dmio_op op, void *buf, size_t len,
				uint64_t offset, unsigned int flags, mirror_answer_fn answer,
				void (*release)(void *opaque), void *opaque)
{
	struct mirror_io *io;
	unsigned int legs;

	/* In first: from here on the number of legs is fixed until the request is done. */
	if (!(flags & IO_NESTED))
		io_begin(m);
	legs = MAX(atomic_load(&m->num_legs), 1u);
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
	io->answer = answer;
	io->release = release;
	io->opaque = opaque;
	atomic_init(&io->holds, 1);
	io->leg = -1;
	return io;
}

/* Let go of one hold: the answer given, or a dmio call released.  The last frees the request. */
static void io_put(struct mirror_io *io)
{
	void (*release)(void *opaque) = io->release;
	void *opaque = io->opaque;

	if (atomic_fetch_sub(&io->holds, 1) != 1)
		return;
	/* Touch nothing of the mirror: it may be closed while an abandoned leg still ran. */
	free(io->own_buf);
	free(io->pipe_copy);
	g_free(io);
	if (release != NULL)
		release(opaque);
}

/* notify.release of the request's dmio calls: nothing uses their memory any more. */
static void io_dmio_released(void *context)
{
	io_put(context);
}

/* The request is about to hand memory to a dmio call that will release it. */
static void io_hold(struct mirror_io *io)
{
	atomic_fetch_add(&io->holds, 1);
}

/* Let go of what the request holds that other requests wait for: its range, its bitmap count. */
static void io_release(struct mirror_io *io)
{
	struct mirror *m = io->m;

	if (io->behind != NULL) {
		struct behind_write *b = io->behind;

		/* The behind part holds them until it is done too. */
		io->behind = NULL;
		b->bitmap_entered = io->bitmap_entered;
		io->bitmap_entered = false;
		behind_part_done(b);
		return;
	}
	if (io->bitmap_entered) {
		bitmap_end_write(m->bitmap, io->offset, io->len);
		io->bitmap_entered = false;
	}
	if (io->range_held) {
		rangelock_release(m->ranges, &io->hold);
		io->range_held = false;
	}
}

static void io_finish(struct mirror_io *io, ssize_t result)
{
	struct mirror *m = io->m;
	bool nested = io->flags & IO_NESTED;

	if (io->inflight_moved) {
		/* Answered before the behind part may end and let the mirror close. */
		if (io->behind != NULL)
			atomic_store(&io->behind->answered, true);
		io->answer(io->opaque, result, io->buf);
		io_release(io);
		io_put(io);
		return;
	}
	io_release(io);
	io->answer(io->opaque, result, io->own_buf != NULL ? io->own_buf : io->buf);
	if (!nested)
		io_end(m);
	io_put(io);
}

static void io_finish_recorded(void *opaque, int recorded)
{
	struct mirror_io *io = opaque;

	/* Unless the survivors say what the legs missed, the write may be lost in a crash. */
	io_finish(io, recorded < 0 && io->result >= 0 ? recorded : io->result);
}

/*
 * Finish a write: at once, or, while a leg's failure is not yet in the superblocks, on the
 * metadata thread once it is (an acknowledged write must survive a crash that follows).
 */
static void write_finish(struct mirror_io *io, ssize_t result)
{
	if (G_LIKELY(!metadata_pending(io->m))) {
		io_finish(io, result);
		return;
	}
	/* A write with a behind part keeps the mirror in flight (and its range) until answered. */
	if (!io->inflight_moved)
		io_release(io);
	io->result = result;
	metadata_defer(io->m, io_finish_recorded, io);
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

/* ---- Writes, flushes, discards, write-zeroes: one dmio call over the written legs ---------- */

static void fanout_issue(struct mirror_io *io);

/* Some legs failed the request: log, fail them (unless no in-sync leg took it), finish. */
static void fanout_failed(struct mirror_io *io, unsigned long error)
{
	struct mirror *m = io->m;
	char *why[DMIO_MAX_REGIONS] = {NULL};
	unsigned long leg_bits = 0;
	uint64_t took = 0;
	unsigned int i, good;

	for (i = 0; i < io->num_regions; i++) {
		if (error & (1ul << i))
			leg_bits |= 1ul << io->leg_of[i];
		else
			took |= 1ull << io->leg_of[i];
	}
	atomic_store(&m->error_bits, leg_bits);
	for (i = 0; i < io->num_regions; i++) {
		struct leg *leg = &m->legs[io->leg_of[i]];

		if (!(error & (1ul << i)))
			continue;
		atomic_fetch_add(&leg->write_errors, 1);
		leg_log_io_error(m, leg, op_name(io->op), io->offset, m->data_offset + io->offset,
				 io->len, io->region_errors[i], leg_bits);
		why[leg->index] = g_strdup_printf(
		    "%s error at data offset %" PRIu64 " length %zu: %s", op_name(io->op),
		    io->offset, io->len, g_strerror(io->region_errors[i]));
	}
	/* The request succeeded if a leg that is still in sync took it; the others fail. */
	good = legs_fail_missed(m, took, leg_bits, why, leg_bits);
	for (i = 0; i < DMIO_MAX_REGIONS; i++)
		g_free(why[i]);
	if (good == 0)
		write_finish(io, -majority_errno(io, error));
	else
		write_finish(io, io->op == DMIO_FLUSH ? 0 : (ssize_t)io->reported);
}

static void fanout_done(unsigned long error, void *context)
{
	struct mirror_io *io = context;
	struct mirror *m = io->m;
	unsigned int i;

	for (i = 0; i < io->num_regions; i++)
		atomic_fetch_sub(&m->legs[io->leg_of[i]].pending, 1);
	if (io->behind != NULL) {
		uint64_t took = 0;

		for (i = 0; i < io->num_regions; i++)
			if (!(error & (1ul << i)))
				took |= 1ull << io->leg_of[i];
		io->behind->main_took = took;
	}
	if (G_LIKELY(error == 0)) {
		write_finish(io, io->op == DMIO_FLUSH ? 0 : (ssize_t)io->reported);
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
	fanout_failed(io, error);
}

/*
 * The behind legs of the write (b's regions) become ordinary ones again: no in-sync leg took the
 * rest, or no copy could be made.  Returns the new count of in-sync legs of the request.
 */
static unsigned int behind_take_back(struct mirror_io *io, struct behind_write *b,
				     unsigned int in_sync)
{
	struct mirror *m = io->m;
	unsigned int i;

	for (i = 0; i < b->num_regions && io->num_regions < io->capacity; i++) {
		struct leg *leg = &m->legs[b->leg_of[i]];

		behind_unreserve(leg, b->len);
		in_sync += leg_state(leg) == LEG_IN_SYNC;
		io->leg_of[io->num_regions] = b->leg_of[i];
		io->where[io->num_regions] = b->where[i];
		io->num_regions++;
	}
	b->num_regions = 0;
	b->legs = 0;
	return in_sync;
}

/*
 * Issue the behind part of write io on a copy of its data: false (nothing issued) when it cannot
 * be, then the caller takes its legs back.  Listed before it is issued, and so before the request
 * can be answered: a read that follows the answer finds it.
 */
static bool behind_issue(struct mirror_io *io, struct behind_write *b, unsigned int in_sync)
{
	struct mirror *m = io->m;
	struct dmio_request req = {
	    .op = DMIO_WRITE,
	    /* Not CALLER_RUNS: the submitter must not do the slow leg's I/O itself. */
	    .flags = DMIO_REQ_ABANDONABLE | ((io->flags & MIRROR_FUA) ? DMIO_REQ_FUA : 0),
	    .notify = {.fn = behind_done, .context = b, .release = behind_released},
	    .client = m->client,
	    .region_errors = b->region_errors,
	};
	unsigned int i;
	int r;

	if (in_sync == 0)
		return false;
	b->copy = aligned_buffer(io->len);
	if (b->copy == NULL)
		return false;
	memcpy(b->copy, io->buf, io->len);
	req.mem.type = DMIO_MEM_VM;
	req.mem.ptr.vma = b->copy;
	for (i = 0; i < b->num_regions; i++)
		atomic_fetch_add(&m->legs[b->leg_of[i]].pending, 1);
	atomic_fetch_add(&b->parts, 1);
	atomic_fetch_add(&b->holds, 1);
	g_mutex_lock(&m->behind_lock);
	b->next = m->behind_head;
	if (b->next != NULL)
		b->next->prev = b;
	m->behind_head = b;
	b->listed = true;
	atomic_fetch_add(&m->behind_count, 1);
	g_mutex_unlock(&m->behind_lock);
	r = dmio(&req, b->num_regions, b->where, NULL);
	if (r < 0) {
		/* Refused as a whole (a read-only leg): as if every behind leg failed it. */
		for (i = 0; i < b->num_regions; i++)
			b->region_errors[i] = -r;
		behind_done(b->num_regions >= DMIO_MAX_REGIONS ? ~0ul : (1ul << b->num_regions) - 1,
			    b);
		behind_put(b);
	}
	return true;
}

/* Read exactly len bytes out of pipe fd into buf.  0 or -errno. */
static int pipe_read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

/*
 * A write from a pipe that needs its data in memory after all (its behind part): read it out,
 * and go on as a write from io->buf.  0, or -errno (the pipe is then in an unknown state).
 */
static int io_pipe_to_buffer(struct mirror_io *io)
{
	struct pipe_source *src = io->pipe;
	int r;

	io->pipe_copy = aligned_buffer(io->len);
	r = io->pipe_copy == NULL ? -ENOMEM : pipe_read_full(src->fd, io->pipe_copy, io->len);
	if (r < 0) {
		src->broken = true;
		return r;
	}
	src->left = 0;
	io->buf = io->pipe_copy;
	io->pipe = NULL;
	return 0;
}

static void fanout_issue(struct mirror_io *io)
{
	struct mirror *m = io->m;
	struct dmio_request req = {
	    .op = io->op,
	    .flags = DMIO_REQ_CALLER_RUNS | DMIO_REQ_ABANDONABLE |
		     ((io->flags & MIRROR_FUA) ? DMIO_REQ_FUA : 0),
	    .notify = {.fn = fanout_done, .context = io, .release = io_dmio_released},
	    .client = m->client,
	    .region_errors = io->region_errors,
	};
	struct behind_write *b = NULL;
	struct pipe_source *src;
	unsigned int i, n = 0, in_sync = 0, slots;
	bool skip_behind = false;
	int r;

	if (io->op != DMIO_FLUSH) {
		/* Overlapping writes in arrival order: every leg sees the same last one. */
		if (!(io->flags & IO_RANGE_HELD) && !io->range_held && !io->inflight_moved) {
			struct rangelock_hold *hold = &io->hold;

			/* The behind part, if any, holds the range until every leg has it. */
			if (io->op == DMIO_WRITE && !(io->flags & IO_NESTED) && behind_wanted(m)) {
				io->behind = behind_new(io);
				io->behind->range_held = true;
				hold = &io->behind->hold;
			} else {
				io->range_held = true;
			}
			rangelock_acquire(m->ranges, hold, io->offset, io->len);
		}
		/* Before the first write to a clean region its bit is durable on every leg. */
		if (m->bitmap != NULL && !io->bitmap_entered) {
			io->bitmap_entered = true;
			r = bitmap_start_write(m->bitmap, io->offset, io->len);
			if (r < 0) {
				write_finish(io, r);
				return;
			}
		}
	}
	slots = atomic_load(&m->num_legs);
	b = io->behind;
	/*
	 * Write-behind legs are left to the behind part (a write), or skipped (a flush), only
	 * while an in-sync leg that does not write behind takes the request.
	 */
	if (b != NULL || (io->op == DMIO_FLUSH && behind_wanted(m))) {
		for (i = 0; i < slots && !skip_behind; i++)
			skip_behind = leg_state(&m->legs[i]) == LEG_IN_SYNC &&
				      m->legs[i].dev != NULL && !leg_writes_behind(&m->legs[i]);
	}
	for (i = 0; i < slots && n < io->capacity; i++) {
		struct leg *leg = &m->legs[i];

		/* Legs catching up take every write; only in-sync legs count for success. */
		if (!leg_is_written(leg))
			continue;
		if (skip_behind && leg_writes_behind(leg)) {
			if (io->op == DMIO_FLUSH)
				continue;
			/* Its place among the N, else an ordinary write on it. */
			if (behind_reserve(leg, io->len)) {
				b->leg_of[b->num_regions] = i;
				b->where[b->num_regions].dev = leg->dev;
				b->where[b->num_regions].sector =
				    (m->data_offset + io->offset) >> DMIO_SECTOR_SHIFT;
				b->where[b->num_regions].count = io->len >> DMIO_SECTOR_SHIFT;
				b->legs |= 1ull << i;
				b->num_regions++;
				continue;
			}
		}
		in_sync += leg_state(leg) == LEG_IN_SYNC;
		io->leg_of[n] = i;
		io->where[n].dev = leg->dev;
		io->where[n].sector = (m->data_offset + io->offset) >> DMIO_SECTOR_SHIFT;
		io->where[n].count = io->op == DMIO_FLUSH ? 0 : io->len >> DMIO_SECTOR_SHIFT;
		n++;
	}
	io->num_regions = n;
	/* The behind part writes from a copy of the data: the pipe's is read out first. */
	if (b != NULL && b->num_regions > 0 && io->pipe != NULL) {
		r = io_pipe_to_buffer(io);
		if (r < 0) {
			behind_take_back(io, b, in_sync);
			write_finish(io, r);
			return;
		}
	}
	if (b != NULL && b->num_regions > 0 && !behind_issue(io, b, in_sync))
		in_sync = behind_take_back(io, b, in_sync);
	/* Legs catching up alone cannot make a write succeed. */
	if (in_sync == 0) {
		write_finish(io, -EIO);
		return;
	}
	for (i = 0; i < n; i++)
		atomic_fetch_add(&m->legs[io->leg_of[i]].pending, 1);
	src = io->pipe;
	if (src != NULL) {
		req.mem.type = DMIO_MEM_PIPE;
		req.mem.ptr.pipe = src->fd;
		io->pipe = NULL;
	} else {
		req.mem.type = DMIO_MEM_VM;
		req.mem.ptr.vma = io->buf;
	}
	io_hold(io);
	/* Once issued, io may be gone (answered and released): only src and locals from here. */
	r = dmio(&req, n, io->where, NULL);
	if (src != NULL) {
		/* dmio took the bytes, or (argument errors) left them; -ENOMEM: who knows. */
		if (r == 0)
			src->left = 0;
		else if (r != -EINVAL && r != -EROFS)
			src->broken = true;
	}
	if (r < 0) {
		for (i = 0; i < n; i++)
			atomic_fetch_sub(&m->legs[io->leg_of[i]].pending, 1);
		io_put(io);
		write_finish(io, r);
	}
}

/* ---- Reads: one leg by policy, the next one on error --------------------------------------- */

/* The leg to read next, among the in-sync legs not tried yet; -1 when none is left. */
static int pick_read_leg(struct mirror *m, uint64_t tried)
{
	unsigned int eligible[DMIO_MAX_REGIONS];
	unsigned int i, count = 0, best_pending = UINT_MAX, slots = atomic_load(&m->num_legs);
	int pass, best = -1;

	/* Write-mostly legs only when nothing else can serve. */
	for (pass = 0; pass < 2 && count == 0; pass++) {
		for (i = 0; i < slots; i++) {
			struct leg *leg = &m->legs[i];

			if (leg_state(leg) == LEG_IN_SYNC && !(tried & (1ull << i)) &&
			    leg->write_mostly == (pass == 1))
				eligible[count++] = i;
		}
	}
	if (count == 0)
		return -1;
	switch ((enum read_policy)atomic_load(&m->policy)) {
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
	/*
	 * Given up on (io-timeout, or the leg failed): the leg still has the caller's buffer and
	 * may write into it whenever it answers, so the next leg reads into our own.
	 */
	if ((err == ETIMEDOUT || err == ECANCELED) && io->own_buf == NULL) {
		io->own_buf = aligned_buffer(io->len);
		if (io->own_buf == NULL) {
			io_finish(io, -ENOMEM);
			return;
		}
	}
	atomic_fetch_add(&leg->read_errors, 1);
	atomic_store(&m->error_bits, 1ul << leg->index);
	leg_log_io_error(m, leg, "read", io->offset, m->data_offset + io->offset, io->len, err,
			 1ul << leg->index);
	/* A bad sector is rewritten from another leg after the answer (readfix.c), not failed. */
	if (!readfix_queue(m, leg, io->offset, io->len, err)) {
		why = g_strdup_printf("read error at data offset %" PRIu64 " length %zu: %s",
				      io->offset, io->len, g_strerror(err));
		leg_fail(m, leg, why, 1ul << leg->index);
		g_free(why);
	}
	read_issue(io);
}

static void read_issue(struct mirror_io *io)
{
	struct mirror *m = io->m;
	struct dmio_request req = {
	    .op = DMIO_READ,
	    .flags = DMIO_REQ_CALLER_RUNS | DMIO_REQ_ABANDONABLE,
	    .notify = {.fn = read_done, .context = io, .release = io_dmio_released},
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
	/*
	 * A leg with writes behind may not have an answered write yet: wait for it.  Its count,
	 * not write-mostly (a reload may take that away while writes are behind).
	 */
	if (G_UNLIKELY(atomic_load(&m->legs[leg].behind_writes) > 0) &&
	    behind_park(m, io, (unsigned int)leg))
		return;
	io->leg = leg;
	io->tried |= 1ull << leg;
	io->num_regions = 1;
	io->leg_of[0] = (unsigned int)leg;
	io->where[0].dev = m->legs[leg].dev;
	io->where[0].sector = (m->data_offset + io->offset) >> DMIO_SECTOR_SHIFT;
	io->where[0].count = io->len >> DMIO_SECTOR_SHIFT;
	req.mem.type = DMIO_MEM_VM;
	req.mem.ptr.vma = io->own_buf != NULL ? io->own_buf : io->buf;
	atomic_fetch_add(&m->legs[leg].pending, 1);
	io_hold(io);
	r = dmio(&req, 1, io->where, NULL);
	if (r < 0) {
		atomic_fetch_sub(&m->legs[leg].pending, 1);
		io_put(io);
		io_finish(io, r);
	}
}

/* ---- Waiting for one's own request --------------------------------------------------------- */

/*
 * A caller that waits for its own request until nothing uses its memory (the release): usually
 * done before it waits (CALLER_RUNS).  The answer either goes on to forward, the moment it is
 * known, or is kept: with a read's data copied when it came in the mirror's buffer (an
 * abandoned leg kept the caller's), into buf once the release says buf is the caller's again.
 */
struct waiter {
	GMutex lock;
	GCond cond;
	bool released;
	bool sleeping; /* the caller waits on cond */
	ssize_t result;
	void *buf;
	void *copy;
	mirror_answer_fn forward;
	void *forward_opaque;
};

static void waiter_answer(void *opaque, ssize_t result, const void *data)
{
	struct waiter *w = opaque;

	if (w->forward != NULL) {
		w->forward(w->forward_opaque, result, data);
		return;
	}
	g_mutex_lock(&w->lock);
	w->result = result;
	if (result > 0 && data != NULL && w->buf != NULL && data != w->buf)
		w->copy = g_memdup2(data, (gsize)result);
	g_mutex_unlock(&w->lock);
}

static void waiter_release(void *opaque)
{
	struct waiter *w = opaque;

	g_mutex_lock(&w->lock);
	w->released = true;
	/* Usually the waiter itself is here: wake it (a system call) only when it sleeps. */
	if (w->sleeping)
		g_cond_signal(&w->cond);
	g_mutex_unlock(&w->lock);
}

static void waiter_init(struct waiter *w, void *buf, mirror_answer_fn forward, void *opaque)
{
	g_mutex_init(&w->lock);
	g_cond_init(&w->cond);
	w->released = false;
	w->sleeping = false;
	w->result = 0;
	w->buf = buf;
	w->copy = NULL;
	w->forward = forward;
	w->forward_opaque = opaque;
}

/* Wait for the release; returns the kept result and frees the waiter's parts. */
static ssize_t waiter_wait(struct waiter *w)
{
	ssize_t r;

	g_mutex_lock(&w->lock);
	while (!w->released) {
		w->sleeping = true;
		g_cond_wait(&w->cond, &w->lock);
	}
	r = w->result;
	if (w->copy != NULL)
		memcpy(w->buf, w->copy, (size_t)r);
	g_mutex_unlock(&w->lock);
	g_free(w->copy);
	g_cond_clear(&w->cond);
	g_mutex_clear(&w->lock);
	return r;
}

/* Issue a request and wait for it. */
static ssize_t issue_wait(struct mirror *m, enum dmio_op op, void *buf, size_t len, uint64_t offset,
			  unsigned int flags, void (*issue)(struct mirror_io *io))
{
	struct waiter w;

	waiter_init(&w, buf, NULL, NULL);
	issue(io_new(m, op, buf, len, offset, flags, waiter_answer, waiter_release, &w));
	return waiter_wait(&w);
}

/* ---- Byte-granular requests: the sector is the legs' unit ---------------------------------- */

static bool sector_aligned(uint64_t offset, uint64_t len)
{
	return ((offset | len) & (DMIO_SECTOR_SIZE - 1)) == 0;
}

/*
 * A write (data != NULL) or zeroing (data == NULL) that does not cover whole sectors: read the
 * partial edge sectors, merge, write the covering range.  It holds the covering range
 * throughout, so that no other write of those sectors comes between its read and its write.
 * Blocks the calling thread; such requests are rare (a block device user sends whole sectors).
 */
static ssize_t rmw_write(struct mirror *m, const void *data, size_t len, uint64_t offset,
			 unsigned int flags)
{
	uint64_t start = offset & ~(uint64_t)(DMIO_SECTOR_SIZE - 1);
	uint64_t end = (offset + len + DMIO_SECTOR_SIZE - 1) & ~(uint64_t)(DMIO_SECTOR_SIZE - 1);
	uint64_t first = start >> DMIO_SECTOR_SHIFT, last = (end >> DMIO_SECTOR_SHIFT) - 1;
	unsigned int inner = flags | IO_NESTED | IO_RANGE_HELD;
	size_t span = end - start;
	struct rangelock_hold hold;
	char *buf = aligned_buffer(span);
	ssize_t r = 0;

	if (buf == NULL)
		return -ENOMEM;
	/* In before the range: a freezer must never wait for a request that waits for a range. */
	io_begin(m);
	rangelock_acquire(m->ranges, &hold, start, span);
	if (offset != start)
		r = issue_wait(m, DMIO_READ, buf, DMIO_SECTOR_SIZE, start, inner, read_issue);
	if (r >= 0 && offset + len != end && (last != first || offset == start))
		r = issue_wait(m, DMIO_READ, buf + span - DMIO_SECTOR_SIZE, DMIO_SECTOR_SIZE,
			       end - DMIO_SECTOR_SIZE, inner, read_issue);
	if (r >= 0) {
		if (data != NULL)
			memcpy(buf + (offset - start), data, len);
		else
			memset(buf + (offset - start), 0, len);
		r = issue_wait(m, DMIO_WRITE, buf, span, start, inner, fanout_issue);
	}
	rangelock_release(m->ranges, &hold);
	io_end(m);
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

/* Answer and release at once: a request that touched no leg. */
static void answer_now(mirror_answer_fn answer, void (*release)(void *opaque), void *opaque,
		       ssize_t result, const void *data)
{
	answer(opaque, result, data);
	release(opaque);
}

static void write_start(struct mirror *m, const void *buf, size_t len, uint64_t offset,
			unsigned int flags, mirror_answer_fn answer, void (*release)(void *opaque),
			void *opaque)
{
	uint64_t n = len;

	flags &= MIRROR_FUA;
	if (len == 0) {
		answer_now(answer, release, opaque, 0, buf);
		return;
	}
	if (!clip(m, offset, &n)) {
		answer_now(answer, release, opaque, -ENOSPC, buf);
		return;
	}
	if (!sector_aligned(offset, n)) {
		/* The merge works on its own buffer: buf is free when it returns. */
		answer_now(answer, release, opaque, rmw_write(m, buf, n, offset, flags), buf);
		return;
	}
	fanout_issue(io_new(m, DMIO_WRITE, (void *)buf, n, offset, flags, answer, release, opaque));
}

/* A read not of whole sectors: the covering sectors into a bounce buffer, the asked bytes out. */
struct unaligned_read {
	char *bounce;
	void *buf;
	size_t skip;
	size_t len;
	mirror_answer_fn answer;
	void (*release)(void *opaque);
	void *opaque;
};

static void unaligned_read_answer(void *opaque, ssize_t result, const void *data)
{
	struct unaligned_read *u = opaque;

	/* The caller's buffer is only written here: no leg ever holds it. */
	if (result >= 0) {
		memcpy(u->buf, (const char *)data + u->skip, u->len);
		result = (ssize_t)u->len;
	}
	u->answer(u->opaque, result, u->buf);
}

static void unaligned_read_release(void *opaque)
{
	struct unaligned_read *u = opaque;

	free(u->bounce);
	u->release(u->opaque);
	g_free(u);
}

static void read_start(struct mirror *m, void *buf, size_t len, uint64_t offset,
		       mirror_answer_fn answer, void (*release)(void *opaque), void *opaque)
{
	uint64_t n = len, start, end;
	struct unaligned_read *u;

	if (len == 0 || !clip(m, offset, &n)) {
		answer_now(answer, release, opaque, 0, buf);
		return;
	}
	if (sector_aligned(offset, n)) {
		read_issue(io_new(m, DMIO_READ, buf, n, offset, 0, answer, release, opaque));
		return;
	}
	start = offset & ~(uint64_t)(DMIO_SECTOR_SIZE - 1);
	end = (offset + n + DMIO_SECTOR_SIZE - 1) & ~(uint64_t)(DMIO_SECTOR_SIZE - 1);
	u = g_new0(struct unaligned_read, 1);
	u->bounce = aligned_buffer(end - start);
	if (u->bounce == NULL) {
		g_free(u);
		answer_now(answer, release, opaque, -ENOMEM, buf);
		return;
	}
	u->buf = buf;
	u->skip = offset - start;
	u->len = n;
	u->answer = answer;
	u->release = release;
	u->opaque = opaque;
	read_issue(io_new(m, DMIO_READ, u->bounce, end - start, start, 0, unaligned_read_answer,
			  unaligned_read_release, u));
}

/* mirror_write() and mirror_read(): done once the caller's buffer is its own again. */
struct done_later {
	struct waiter w; /* keeps the answer (no one waits on it) */
	mirror_done_fn done;
	void *opaque;
};

static void done_later_release(void *opaque)
{
	struct done_later *d = opaque;
	mirror_done_fn done = d->done;
	void *done_opaque = d->opaque;
	ssize_t r;

	/* The release is here: the wait returns at once, with the kept answer copied. */
	waiter_release(&d->w);
	r = waiter_wait(&d->w);
	g_free(d);
	done(done_opaque, r);
}

static struct done_later *done_later_new(void *buf, mirror_done_fn done, void *opaque)
{
	struct done_later *d = g_new0(struct done_later, 1);

	waiter_init(&d->w, buf, NULL, NULL);
	d->done = done;
	d->opaque = opaque;
	return d;
}

void mirror_write(struct mirror *m, const void *buf, size_t len, uint64_t offset,
		  unsigned int flags, mirror_done_fn done, void *opaque)
{
	struct done_later *d = done_later_new(NULL, done, opaque);

	write_start(m, buf, len, offset, flags, waiter_answer, done_later_release, &d->w);
}

void mirror_read(struct mirror *m, void *buf, size_t len, uint64_t offset, mirror_done_fn done,
		 void *opaque)
{
	struct done_later *d = done_later_new(buf, done, opaque);

	read_start(m, buf, len, offset, waiter_answer, done_later_release, &d->w);
}

ssize_t mirror_write_wait(struct mirror *m, const void *buf, size_t len, uint64_t offset,
			  unsigned int flags)
{
	struct waiter w;

	waiter_init(&w, NULL, NULL, NULL);
	write_start(m, buf, len, offset, flags, waiter_answer, waiter_release, &w);
	return waiter_wait(&w);
}

ssize_t mirror_read_wait(struct mirror *m, void *buf, size_t len, uint64_t offset)
{
	struct waiter w;

	waiter_init(&w, buf, NULL, NULL);
	read_start(m, buf, len, offset, waiter_answer, waiter_release, &w);
	return waiter_wait(&w);
}

void mirror_write_answered(struct mirror *m, const void *buf, size_t len, uint64_t offset,
			   unsigned int flags, mirror_answer_fn answer, void *opaque)
{
	struct waiter w;

	waiter_init(&w, NULL, answer, opaque);
	write_start(m, buf, len, offset, flags, waiter_answer, waiter_release, &w);
	waiter_wait(&w);
}

void mirror_read_answered(struct mirror *m, void *buf, size_t len, uint64_t offset,
			  mirror_answer_fn answer, void *opaque)
{
	struct waiter w;

	waiter_init(&w, buf, answer, opaque);
	read_start(m, buf, len, offset, waiter_answer, waiter_release, &w);
	waiter_wait(&w);
}

/* Drop len bytes of pipe fd that no leg will have.  False when they could not be read. */
static bool pipe_discard(int fd, size_t len)
{
	char scratch[16384];

	while (len > 0) {
		ssize_t n = read(fd, scratch, MIN(len, sizeof(scratch)));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		len -= (size_t)n;
	}
	return true;
}

bool mirror_write_pipe_answered(struct mirror *m, int fd, size_t len, uint64_t offset,
				unsigned int flags, mirror_answer_fn answer, void *opaque)
{
	struct pipe_source src = {.fd = fd, .left = len};
	uint64_t n = len;
	struct waiter w;

	/*
	 * Only a plain write takes the pipe's pages; the others (and a mirror with write-behind
	 * legs, which want a copy anyway) work on the data read out of it, as any write.
	 */
	if (len == 0 || !clip(m, offset, &n) || n != len || !sector_aligned(offset, n) ||
	    behind_wanted(m)) {
		void *buf = aligned_buffer(len);
		bool taken = buf != NULL && pipe_read_full(fd, buf, len) == 0;

		if (!taken)
			answer(opaque, buf == NULL ? -ENOMEM : -EIO, NULL);
		else
			mirror_write_answered(m, buf, len, offset, flags, answer, opaque);
		free(buf);
		return taken;
	}
	waiter_init(&w, NULL, answer, opaque);
	flags &= MIRROR_FUA;
	{
		struct mirror_io *io = io_new(m, DMIO_WRITE, NULL, n, offset, flags, waiter_answer,
					      waiter_release, &w);

		io->pipe = &src;
		fanout_issue(io);
	}
	/* Not issued (a bitmap error, no leg to write): the bytes are still there. */
	if (!src.broken && src.left > 0 && !pipe_discard(fd, src.left))
		src.broken = true;
	waiter_wait(&w);
	return !src.broken;
}

void mirror_pipe_stats(const struct mirror *m, uint64_t *spliced, uint64_t *copied)
{
	dmio_client_pipe_stats(m->client, spliced, copied);
}

/* Flushes, discards and write-zeroes hold no memory of the caller: done is the answer. */
static void done_answer(void *opaque, ssize_t result, const void *data)
{
	struct done_later *d = opaque;

	d->done(d->opaque, result);
}

static void done_free(void *opaque)
{
	g_free(opaque);
}

static struct mirror_io *io_new_done(struct mirror *m, enum dmio_op op, size_t len,
				     uint64_t offset, unsigned int flags, mirror_done_fn done,
				     void *opaque)
{
	struct done_later *d = g_new0(struct done_later, 1);

	d->done = done;
	d->opaque = opaque;
	return io_new(m, op, NULL, len, offset, flags, done_answer, done_free, d);
}

void mirror_flush(struct mirror *m, mirror_done_fn done, void *opaque)
{
	fanout_issue(io_new_done(m, DMIO_FLUSH, 0, 0, 0, done, opaque));
}

/* A hole reads back as zeroes only in files: block-device legs are zeroed instead. */
static enum dmio_op discard_op(const struct mirror *m)
{
	unsigned int i, slots = atomic_load(&((struct mirror *)m)->num_legs);

	for (i = 0; i < slots; i++) {
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

	flags &= MIRROR_FUA;
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
	io = io_new_done(m, op, end - start, start, flags, done, opaque);
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
