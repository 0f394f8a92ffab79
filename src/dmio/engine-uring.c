/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The io_uring engine: one ring, owned by one engine thread that alone submits to it and reaps
 * it.  Submitting threads only queue the job and, when the engine thread sleeps, wake it through
 * the eventfd that the ring also signals for its completions.  A single issuer keeps the ring's
 * io-wq workers and completion task work on a thread that lives as long as the engine: the kernel
 * cancels the queued io-wq work of a submitting thread that exits, and interrupts submitting
 * threads to post completions.
 *
 * Reads, writes and flushes of devices with a descriptor go through the ring, one SQE per job.
 * Everything else - discards, write-zeroes, NOP jobs, and every job the ring did not finish
 * cleanly - runs in a small fallback pool through dmio_job_execute(), which owns full transfers,
 * retries, capability fallbacks and zero-filling the unread part of a failed read.
 *
 * A device that answers asynchronously (NBD, no descriptor) gets its jobs directly
 * (engine-async.c); the fallback pool completes them once the device answered.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <liburing.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dmio-internal.h"

/* Memcheck does not see the kernel fill read buffers through the ring: tell it. */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#endif
#endif
#ifndef VALGRIND_MAKE_MEM_DEFINED
#define VALGRIND_MAKE_MEM_DEFINED(addr, len) ((void)0)
#endif

#define URING_DEFAULT_DEPTH    256
#define URING_FALLBACK_THREADS 4u
#define URING_REAP_BATCH       64u

struct uring {
	struct io_uring ring;
	int event_fd; /* signalled by the ring for completions and by submitters to wake */
	/* Engine thread only. */
	unsigned int limit;    /* CQ entries: never more SQEs in flight, so no CQ overflow */
	unsigned int inflight; /* SQEs in the ring whose CQE is not reaped yet */
	/* Under lock. */
	GMutex lock;
	GQueue queue;  /* jobs waiting for the engine thread */
	bool sleeping; /* the engine thread may be asleep on event_fd: wake it for a new job */
	bool stopping;
	GThread *thread;
	GThreadPool *fallback;
	unsigned int fallback_threads;
	unsigned int stuck; /* under lock: jobs abandoned while running (ring or pool) */
};

static const uint64_t uring_wake_one = 1;

/* ---- The fallback pool ---------------------------------------------------------------------- */

static void uring_fallback_run(gpointer data, gpointer user_data)
{
	struct dmio_job *job = data;

	/* So that a synchronous call made by a notify fn here runs inline, not queued behind us. */
	dmio_set_engine_thread();
	/* A job the ring did not finish is ours already; another may have been abandoned. */
	if (job->dev_answered)
		dmio_job_finish_async(job);
	else if (job->engine_owns)
		dmio_job_complete(job, dmio_job_execute(job));
	else
		dmio_job_run(job);
}

static void uring_fallback(struct uring *u, struct dmio_job *job)
{
	/* It fails only when it cannot start a thread, and then the job is queued all the same. */
	g_thread_pool_push(u->fallback, job, NULL);
}

/* ---- Submission ----------------------------------------------------------------------------- */

/* True when the ring can do the whole job in one SQE. */
static bool uring_takes(const struct dmio_job *job)
{
	struct dmio_dev *dev = job->region.dev;

	/* A spliced write is a splice(2) loop: dmio_job_execute() in the fallback pool. */
	if (job->kind != DMIO_JOB_IO || dev->fd < 0 || job->spliced)
		return false;
	switch (job->io->op) {
	case DMIO_FLUSH:
		return true;
	case DMIO_WRITE:
		/* A FUA write without RWF_DSYNC needs a flush after it: dmio_job_execute(). */
		if ((job->io->flags & DMIO_REQ_FUA) && !atomic_load(&dev->can_fua))
			return false;
		/* fall through */
	case DMIO_READ:
		/* The CQE's 32-bit result could not report a longer transfer. */
		return job->iovcnt <= IOV_MAX && job->len <= INT_MAX;
	default:
		return false;
	}
}

static void uring_wake(struct uring *u)
{
	/* Cannot fail: the engine thread reads the count back to zero whenever it sleeps. */
	if (write(u->event_fd, &uring_wake_one, sizeof(uring_wake_one)) < 0)
		g_warning("dmio: cannot wake the io_uring thread: %s", g_strerror(errno));
}

static void uring_submit(void *priv, struct dmio_job *job)
{
	struct uring *u = priv;

	if (dmio_job_submit_async(job))
		return;
	if (!uring_takes(job)) {
		uring_fallback(u, job);
		return;
	}
	g_mutex_lock(&u->lock);
	g_queue_push_tail(&u->queue, job);
	/* Under the lock: once it is released the job may complete and the engine be destroyed. */
	if (u->sleeping) {
		u->sleeping = false;
		uring_wake(u);
	}
	g_mutex_unlock(&u->lock);
}

/* From a device's thread: a fallback thread completes the job it answered. */
static void uring_finished(void *priv, struct dmio_job *job)
{
	uring_fallback(priv, job);
}

/* ---- The engine thread ---------------------------------------------------------------------- */

static void uring_prep(struct io_uring_sqe *sqe, struct dmio_job *job)
{
	int fd = job->region.dev->fd;

	switch (job->io->op) {
	case DMIO_READ:
		io_uring_prep_readv(sqe, fd, job->iov, job->iovcnt, job->offset);
		break;
	case DMIO_WRITE:
		io_uring_prep_writev(sqe, fd, job->iov, job->iovcnt, job->offset);
		if (job->io->flags & DMIO_REQ_FUA)
			sqe->rw_flags = RWF_DSYNC;
		break;
	default:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	}
	io_uring_sqe_set_data(sqe, job);
}

/* Move queued jobs into the submission queue while the ring has room; with the lock held. */
static void uring_fill(struct uring *u)
{
	struct io_uring_sqe *sqe;

	while (!g_queue_is_empty(&u->queue) && u->inflight < u->limit) {
		struct dmio_job *job = g_queue_pop_head(&u->queue);

		/* Ours from now on, unless it was abandoned or rescued while it waited. */
		if (!job->engine_owns && atomic_exchange(&job->claimed, true)) {
			dmio_job_drop(job);
			continue;
		}
		job->engine_owns = true;
		sqe = io_uring_get_sqe(&u->ring);
		if (sqe == NULL) {
			g_queue_push_head(&u->queue, job);
			return;
		}
		dmio_job_mark_started(job);
		uring_prep(sqe, job);
		u->inflight++;
	}
}

/*
 * True for the errors that say the ring did not do the work, or not in a way the system calls of
 * dmio_job_execute() would.
 */
static bool uring_error_retryable(int res)
{
	switch (res) {
	case -EINTR:
	case -EAGAIN:
	case -ECANCELED:
	case -ENOMEM:
	case -EOPNOTSUPP: /* RWF_DSYNC refused: dmio_job_execute() switches can_fua off */
	case -EINVAL:	  /* an op this kernel's io_uring cannot do on this file */
	case -EBADF:
		return true;
	default:
		return false;
	}
}

static void uring_mark_defined(const struct dmio_job *job)
{
	unsigned int i;

	for (i = 0; i < job->iovcnt; i++)
		VALGRIND_MAKE_MEM_DEFINED(job->iov[i].iov_base, job->iov[i].iov_len);
}

static void uring_finish(struct uring *u, struct dmio_job *job, int res)
{
	enum dmio_op op = job->io->op;
	uint64_t want = op == DMIO_FLUSH ? 0 : job->len;

	if (res >= 0 && (uint64_t)res == want) {
		if (op == DMIO_READ)
			uring_mark_defined(job);
		dmio_job_complete(job, 0);
		return;
	}
	/*
	 * A failed fdatasync or RWF_DSYNC write has consumed the descriptor's writeback error:
	 * running it again could succeed and hide lost writes, so an I/O error is reported as it
	 * is, as the threads engine would.  Reads are always run again, which zero-fills what
	 * they miss.
	 */
	if (op != DMIO_READ && res < 0 && !uring_error_retryable(res)) {
		dmio_job_complete(job, res);
		return;
	}
	/* Short transfers and the errors above: dmio_job_execute() does the whole job again. */
	uring_fallback(u, job);
}

/* Run the completions the ring holds.  Returns how many there were. */
static unsigned int uring_reap(struct uring *u)
{
	struct io_uring_cqe *cqes[URING_REAP_BATCH];
	struct dmio_job *jobs[URING_REAP_BATCH];
	int res[URING_REAP_BATCH];
	unsigned int n, i, total = 0;

	do {
		/* Copy the batch out and free its room before running any completion. */
		n = io_uring_peek_batch_cqe(&u->ring, cqes, URING_REAP_BATCH);
		for (i = 0; i < n; i++) {
			jobs[i] = io_uring_cqe_get_data(cqes[i]);
			res[i] = cqes[i]->res;
		}
		io_uring_cq_advance(&u->ring, n);
		u->inflight -= n;
		total += n;
		/* A notify fn may submit: that only queues, it never waits for this thread. */
		for (i = 0; i < n; i++)
			uring_finish(u, jobs[i], res[i]);
	} while (n == URING_REAP_BATCH);
	return total;
}

/* True when the engine thread has nothing to do until a completion or a new job; under lock. */
static bool uring_idle(struct uring *u)
{
	/* SQEs a failed submission left queued would bring no completion. */
	if (u->stopping || io_uring_sq_ready(&u->ring) > 0)
		return false;
	/* Queued jobs that did not fit wait for room in the ring, which a completion brings. */
	return g_queue_is_empty(&u->queue) || u->inflight >= u->limit;
}

static gpointer uring_run(gpointer data)
{
	struct uring *u = data;
	uint64_t count;
	bool idle;
	int r;

	dmio_set_engine_thread();
	for (;;) {
		g_mutex_lock(&u->lock);
		u->sleeping = false;
		if (u->stopping) {
			/* Every job has completed: nothing is queued and nothing is in flight. */
			g_mutex_unlock(&u->lock);
			break;
		}
		uring_fill(u);
		g_mutex_unlock(&u->lock);

		if (io_uring_sq_ready(&u->ring) > 0) {
			r = io_uring_submit(&u->ring);
			/* The kernel is short of resources (the SQEs stay queued): back off. */
			if (r < 0 && r != -EINTR)
				g_usleep(1000);
		}
		if (uring_reap(u) > 0)
			continue;

		g_mutex_lock(&u->lock);
		idle = uring_idle(u);
		/* From here a new job must wake us; the ring signals completions itself. */
		u->sleeping = idle && g_queue_is_empty(&u->queue);
		g_mutex_unlock(&u->lock);
		if (!idle)
			continue;
		/*
		 * Sleep in read(), not in io_uring_enter(): the count covers every completion and
		 * wake-up since the last read, so none is lost, and tools that do not know
		 * io_uring_enter() may block (valgrind) still let the other threads run.
		 */
		if (read(u->event_fd, &count, sizeof(count)) < 0 && errno != EINTR) {
			g_warning("dmio: cannot read the io_uring eventfd: %s", g_strerror(errno));
			g_usleep(1000);
		}
	}
	return NULL;
}

/* ---- Setup and teardown --------------------------------------------------------------------- */

static int uring_create(const struct dmio_client_opts *opts, void **priv)
{
	unsigned int depth = opts->queue_depth ? opts->queue_depth : URING_DEFAULT_DEPTH;
	unsigned int threads = CLAMP(opts->threads, 1u, URING_FALLBACK_THREADS);
	/* Too large a depth is clamped to the kernel's maximum rather than refused. */
	struct io_uring_params params = {.flags = IORING_SETUP_CLAMP};
	GError *error = NULL;
	struct uring *u;
	int r;

	u = g_new0(struct uring, 1);
	r = io_uring_queue_init_params(depth, &u->ring, &params);
	if (r < 0) {
		g_debug("dmio: io_uring is not available: %s", g_strerror(-r));
		g_free(u);
		return r;
	}
	u->limit = params.cq_entries;
	g_mutex_init(&u->lock);
	g_queue_init(&u->queue);

	u->event_fd = eventfd(0, EFD_CLOEXEC);
	if (u->event_fd < 0) {
		r = -errno;
		goto fail_ring;
	}
	r = io_uring_register_eventfd(&u->ring, u->event_fd);
	if (r < 0)
		goto fail_fd;
	/* Exclusive: its threads are never shared, so they may be marked as engine threads. */
	u->fallback = g_thread_pool_new(uring_fallback_run, u, (gint)threads, TRUE, &error);
	if (u->fallback == NULL) {
		g_warning("dmio: cannot start %u io_uring fallback threads: %s", threads,
			  error->message);
		g_error_free(error);
		r = -EAGAIN;
		goto fail_fd;
	}
	u->fallback_threads = threads;
	u->thread = g_thread_try_new("dmio-uring", uring_run, u, &error);
	if (u->thread == NULL) {
		g_warning("dmio: cannot start the io_uring thread: %s", error->message);
		g_error_free(error);
		r = -EAGAIN;
		goto fail_pool;
	}
	*priv = u;
	return 0;

fail_pool:
	g_thread_pool_free(u->fallback, FALSE, TRUE);
fail_fd:
	close(u->event_fd);
fail_ring:
	g_mutex_clear(&u->lock);
	io_uring_queue_exit(&u->ring);
	g_free(u);
	return r;
}

/* A fallback thread stuck in an abandoned job is replaced. */
static void uring_stuck(void *priv, int delta)
{
	struct uring *u = priv;

	g_mutex_lock(&u->lock);
	u->stuck = (unsigned int)((int)u->stuck + delta);
	g_thread_pool_set_max_threads(u->fallback, (gint)(u->fallback_threads + u->stuck), NULL);
	g_mutex_unlock(&u->lock);
}

static void uring_destroy(void *priv)
{
	struct uring *u = priv;

	g_mutex_lock(&u->lock);
	u->stopping = true;
	uring_wake(u);
	g_mutex_unlock(&u->lock);
	g_thread_join(u->thread);
	/* Every job has completed, but a pool thread may still be returning from the last one. */
	g_thread_pool_free(u->fallback, FALSE, TRUE);
	io_uring_queue_exit(&u->ring);
	close(u->event_fd);
	g_mutex_clear(&u->lock);
	g_free(u);
}

const struct dmio_engine_ops dmio_engine_io_uring = {
    .name = "io_uring",
    .create = uring_create,
    .submit = uring_submit,
    .destroy = uring_destroy,
    .stuck = uring_stuck,
    .finished = uring_finished,
};
