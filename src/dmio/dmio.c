/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * dmio(): one request over up to 64 regions.  It validates everything before issuing anything,
 * turns the caller's memory (page list, bio vector, vm buffer, iovec) into one iovec array,
 * bounces it once through aligned pool pages when an O_DIRECT device needs that, fans one job
 * per region out to the engine, and folds the per-region outcomes into the error bitset.  The
 * six calls of the seed are thin wrappers over it, as in today's kernel.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dmio-internal.h"

G_STATIC_ASSERT(sizeof(unsigned long) * CHAR_BIT >= DMIO_MAX_REGIONS);

#define ZERO_BUFFER_SIZE (64u * 1024u)
/*
 * A synchronous call whose regions all take less than this on average runs them one after the
 * other in the caller: handing a region to another thread costs about this much here.
 */
#define INLINE_BELOW_NS 20000ull
#define RETIME_AFTER_NS 100000000ull /* 100 ms */
#define SYNC_SPIN_USEC	 50

static bool op_writes(enum dmio_op op)
{
	return op == DMIO_WRITE || op == DMIO_DISCARD || op == DMIO_WRITE_ZEROES;
}

static bool op_has_data(enum dmio_op op)
{
	return op == DMIO_READ || op == DMIO_WRITE;
}

/* ---- Memory: the caller's descriptor as an iovec array ------------------------------------ */

/*
 * Count (iov == NULL) or fill the iovec entries that cover len bytes of mem.  Returns the number
 * of entries, or -EINVAL when the memory is NULL or does not cover len.
 */
static long memory_to_iov(const struct dmio_memory *mem, uint64_t len, struct iovec *iov)
{
	uint64_t left = len;
	long n = 0;

	switch (mem->type) {
	case DMIO_MEM_PAGE_LIST: {
		const struct dmio_page_list *pl = mem->ptr.pl;
		size_t offset = mem->offset;

		if (offset >= DMIO_PAGE_SIZE)
			return -EINVAL;
		for (; left > 0; pl = pl->next, offset = 0, n++) {
			size_t chunk = DMIO_PAGE_SIZE - offset;

			if (pl == NULL || pl->page == NULL)
				return -EINVAL;
			if (chunk > left)
				chunk = left;
			if (iov != NULL) {
				iov[n].iov_base = (char *)pl->page + offset;
				iov[n].iov_len = chunk;
			}
			left -= chunk;
		}
		return n;
	}
	case DMIO_MEM_BVEC: {
		const struct dmio_bvec *bv = mem->ptr.bvec;

		if (bv == NULL)
			return -EINVAL;
		for (; left > 0; bv++) {
			size_t chunk = bv->len;

			if (chunk == 0)
				continue;
			if (bv->page == NULL)
				return -EINVAL;
			if (chunk > left)
				chunk = left;
			if (iov != NULL) {
				iov[n].iov_base = (char *)bv->page + bv->offset;
				iov[n].iov_len = chunk;
			}
			n++;
			left -= chunk;
		}
		return n;
	}
	case DMIO_MEM_VM:
		if (mem->ptr.vma == NULL)
			return -EINVAL;
		if (len == 0)
			return 0;
		if (iov != NULL) {
			iov[0].iov_base = mem->ptr.vma;
			iov[0].iov_len = len;
		}
		return 1;
	case DMIO_MEM_IOVEC: {
		const struct iovec *v = mem->ptr.iov.vec;
		unsigned int i;

		if (v == NULL)
			return -EINVAL;
		for (i = 0; i < mem->ptr.iov.count && left > 0; i++) {
			size_t chunk = v[i].iov_len;

			if (chunk == 0)
				continue;
			if (v[i].iov_base == NULL)
				return -EINVAL;
			if (chunk > left)
				chunk = left;
			if (iov != NULL) {
				iov[n].iov_base = v[i].iov_base;
				iov[n].iov_len = chunk;
			}
			n++;
			left -= chunk;
		}
		return left > 0 ? -EINVAL : n;
	}
	case DMIO_MEM_PIPE: /* no iovec: dmio_io_from_pipe() (pipe.c) */
		return -EINVAL;
	}
	return -EINVAL;
}

static bool iov_aligned(const struct iovec *iov, unsigned int count, unsigned int mem_align,
			unsigned int len_align)
{
	unsigned int i;

	for (i = 0; i < count; i++)
		if ((uintptr_t)iov[i].iov_base % mem_align != 0 || iov[i].iov_len % len_align != 0)
			return false;
	return true;
}

/* Copy len bytes between an iovec array and a flat run of bounce pages. */
static void copy_iov_pages(const struct iovec *iov, unsigned int count, void **pages, uint64_t len,
			   bool to_pages)
{
	uint64_t pos = 0;
	unsigned int i;

	for (i = 0; i < count && pos < len; i++) {
		char *base = iov[i].iov_base;
		size_t done = 0;

		while (done < iov[i].iov_len && pos < len) {
			size_t in_page = pos % DMIO_PAGE_SIZE;
			size_t chunk = MIN(iov[i].iov_len - done, DMIO_PAGE_SIZE - in_page);
			char *page = (char *)pages[pos / DMIO_PAGE_SIZE] + in_page;

			chunk = MIN(chunk, len - pos);
			if (to_pages)
				memcpy(page, base + done, chunk);
			else
				memcpy(base + done, page, chunk);
			done += chunk;
			pos += chunk;
		}
	}
}

/* Zero the bytes of iov from byte from to byte len (the part a failed read did not fill). */
static void iov_zero_from(const struct iovec *iov, unsigned int count, uint64_t from, uint64_t len)
{
	uint64_t pos = 0;
	unsigned int i;

	for (i = 0; i < count && pos < len; i++) {
		uint64_t end = MIN(pos + iov[i].iov_len, len);

		if (end > from) {
			uint64_t start = MAX(pos, from);

			memset((char *)iov[i].iov_base + (start - pos), 0, end - start);
		}
		pos = end;
	}
}

/* ---- Executing one region ------------------------------------------------------------------ */

/*
 * Transfer exactly len bytes, retrying short transfers, EINTR and EAGAIN.  Returns 0 or -errno;
 * *done receives the bytes transferred.
 */
static int transfer_full(struct dmio_dev *dev, bool write, const struct iovec *iov,
			 unsigned int count, uint64_t offset, uint64_t len, int rwf, uint64_t *done)
{
	struct iovec stack[16];
	struct iovec *v = count <= G_N_ELEMENTS(stack) ? stack : g_new(struct iovec, count);
	unsigned int idx = 0;
	int err = 0;

	memcpy(v, iov, count * sizeof(*v));
	*done = 0;
	while (*done < len) {
		int n = (int)MIN(count - idx, (unsigned int)IOV_MAX);
		ssize_t r = write ? dev->ops->pwritev(dev, v + idx, n, offset + *done, rwf)
				  : dev->ops->preadv(dev, v + idx, n, offset + *done);

		if (r == -EINTR || r == -EAGAIN)
			continue;
		if (r < 0) {
			err = (int)r;
			break;
		}
		if (r == 0) {
			/* End of file inside the device: the file shrank under us. */
			err = -EIO;
			break;
		}
		*done += (uint64_t)r;
		while (r > 0 && idx < count) {
			if ((size_t)r >= v[idx].iov_len) {
				r -= (ssize_t)v[idx].iov_len;
				idx++;
			} else {
				v[idx].iov_base = (char *)v[idx].iov_base + r;
				v[idx].iov_len -= (size_t)r;
				r = 0;
			}
		}
	}
	if (v != stack)
		g_free(v);
	return err;
}

static const void *zero_buffer(void)
{
	static gsize once;
	static void *zeroes;

	if (g_once_init_enter(&once)) {
		if (posix_memalign(&zeroes, DMIO_PAGE_SIZE, ZERO_BUFFER_SIZE) != 0)
			g_error("dmio: out of memory for the zero buffer");
		memset(zeroes, 0, ZERO_BUFFER_SIZE);
		g_once_init_leave(&once, 1);
	}
	return zeroes;
}

/* Write zero pages over the range: the fallback when the device cannot zero by itself. */
static int write_zero_pages(struct dmio_dev *dev, uint64_t offset, uint64_t len)
{
	struct iovec iov[16];
	uint64_t pos = 0;
	unsigned int i;

	for (i = 0; i < G_N_ELEMENTS(iov); i++) {
		iov[i].iov_base = (void *)zero_buffer();
		iov[i].iov_len = ZERO_BUFFER_SIZE;
	}
	while (pos < len) {
		uint64_t chunk = MIN(len - pos, (uint64_t)ZERO_BUFFER_SIZE * G_N_ELEMENTS(iov));
		unsigned int count =
		    (unsigned int)((chunk + ZERO_BUFFER_SIZE - 1) / ZERO_BUFFER_SIZE);
		uint64_t done;
		int r;

		iov[count - 1].iov_len = chunk - (uint64_t)(count - 1) * ZERO_BUFFER_SIZE;
		r = transfer_full(dev, true, iov, count, offset + pos, chunk, 0, &done);
		iov[count - 1].iov_len = ZERO_BUFFER_SIZE;
		if (r < 0)
			return r;
		pos += chunk;
	}
	return 0;
}

static int execute_write(struct dmio_job *job)
{
	struct dmio_dev *dev = job->region.dev;
	bool fua = job->io->flags & DMIO_REQ_FUA;
	bool dsync = fua && atomic_load(&dev->can_fua);
	uint64_t done;
	int r;

	if (job->spliced) {
		/* A splice has no RWF_DSYNC: FUA is a flush after it. */
		r = dmio_job_splice(job);
		if (r == 0 && fua)
			r = dev->ops->flush(dev);
		return r;
	}
	r = transfer_full(dev, true, job->iov, job->iovcnt, job->offset, job->len,
			  dsync ? RWF_DSYNC : 0, &done);
	if (r == -EOPNOTSUPP && dsync) {
		dmio_dev_cap_off(&dev->can_fua, dev, "FUA (RWF_DSYNC)");
		dsync = false;
		r = transfer_full(dev, true, job->iov, job->iovcnt, job->offset, job->len, 0,
				  &done);
	}
	if (r == 0 && fua && !dsync)
		r = dev->ops->flush(dev);
	return r;
}

static int execute_discard(struct dmio_job *job)
{
	struct dmio_dev *dev = job->region.dev;
	int r;

	if (!atomic_load(&dev->can_discard))
		return -EOPNOTSUPP;
	r = dev->ops->discard(dev, job->offset, job->len);
	if (r == -EOPNOTSUPP)
		dmio_dev_cap_off(&dev->can_discard, dev, "discard");
	return r;
}

static int execute_write_zeroes(struct dmio_job *job)
{
	struct dmio_dev *dev = job->region.dev;
	int r;

	if (atomic_load(&dev->can_zero)) {
		r = dev->ops->zero(dev, job->offset, job->len);
		if (r != -EOPNOTSUPP)
			return r;
		dmio_dev_cap_off(&dev->can_zero, dev, "write-zeroes");
	}
	/* A hole in a file reads back as zeroes; a discarded block-device range need not. */
	if (!dev->is_block && atomic_load(&dev->can_discard)) {
		r = dev->ops->discard(dev, job->offset, job->len);
		if (r != -EOPNOTSUPP)
			return r;
		dmio_dev_cap_off(&dev->can_discard, dev, "discard");
	}
	return write_zero_pages(dev, job->offset, job->len);
}

uint64_t dmio_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
/* Run a job and fold its duration into its device's moving average (weight 1/8). */
static int job_execute_timed(struct dmio_job *job)
{
	struct dmio_dev *dev = job->region.dev;
	uint64_t start, end, took, avg;
	int r;

	if (job->kind == DMIO_JOB_NOP)
		return 0;
	start = dmio_now_ns();
	r = dmio_job_execute(job);
	end = dmio_now_ns();
	took = end - start;
	avg = atomic_load(&dev->avg_ns);
	/* An average older than RETIME_AFTER_NS says little about the device now. */
	if (start > atomic_load(&dev->timed_ns) + RETIME_AFTER_NS)
		avg = took;
	atomic_store(&dev->avg_ns, avg - avg / 8 + took / 8);
	atomic_store(&dev->timed_ns, end);
	return r;
}

/*
 * Whether every region of a call is, lately, cheaper to run than to hand to another thread.
 * Only regions run through job_execute_timed() are timed, and an engine that is not stealable
 * (io_uring) never times the regions it runs: a device found slow once would stay "slow" for
 * good.  So a device not timed for RETIME_AFTER_NS counts as cheap for one call, which times
 * it again.
 */
static bool io_is_cheap(const struct dmio_io *io)
{
	uint64_t now = 0;
	unsigned int i;

	for (i = 0; i < io->num_jobs; i++) {
		struct dmio_dev *dev = io->jobs[i].region.dev;
		unsigned long long probed;

		if (io->jobs[i].kind != DMIO_JOB_IO || atomic_load(&dev->avg_ns) < INLINE_BELOW_NS)
			continue;
		if (now == 0)
			now = dmio_now_ns();
		probed = atomic_load(&dev->probe_ns);
		/* One caller gets the retiming turn. */
		if (now < atomic_load(&dev->timed_ns) + RETIME_AFTER_NS ||
		    now < probed + RETIME_AFTER_NS ||
		    !atomic_compare_exchange_strong(&dev->probe_ns, &probed, now))
			return false;
	}
	return true;
}

int dmio_job_execute(struct dmio_job *job)
{
	struct dmio_dev *dev = job->region.dev;
	bool fua = job->io->flags & DMIO_REQ_FUA;
	uint64_t done;
	int r;

	if (job->kind == DMIO_JOB_NOP)
		return 0;
	dmio_job_mark_started(job);
	switch (job->io->op) {
	case DMIO_READ:
		r = transfer_full(dev, false, job->iov, job->iovcnt, job->offset, job->len, 0,
				  &done);
		if (r < 0)
			iov_zero_from(job->iov, job->iovcnt, done, job->len);
		return r;
	case DMIO_WRITE:
		return execute_write(job);
	case DMIO_FLUSH:
		return dev->ops->flush(dev);
	case DMIO_DISCARD:
		r = execute_discard(job);
		break;
	case DMIO_WRITE_ZEROES:
		r = execute_write_zeroes(job);
		break;
	default:
		return -EINVAL;
	}
	if (r == 0 && fua)
		r = dev->ops->flush(dev);
	return r;
}

/* ---- Completion ---------------------------------------------------------------------------- */

static void io_free(struct dmio_io *io)
{
	struct dmio_client *client = io->client;
	void (*release)(void *context) = io->release;
	void *context = io->context;
	bool lent = atomic_load(&io->lent);
	unsigned int i;

	/* Lent: the pages were kept from the pool until the abandoned job let go of them. */
	if (lent && io->bounce_pages != NULL)
		dmio_pool_give(&client->pool, io->bounce_count, io->bounce_pages);
	for (i = 0; i < io->num_jobs; i++) {
		g_free(io->jobs[i].iov_own);
		dmio_job_pipe_close(&io->jobs[i]);
	}
	/* io->iov lives in the call's allocation unless it was swapped for bounce pages. */
	if (io->user_iov != NULL)
		g_free(io->iov);
	g_free(io->bounce_pages);
	if (io->fn == NULL) {
		g_cond_clear(&io->cond);
		g_mutex_clear(&io->lock);
	}
	g_free(io);
	if (release != NULL)
		release(context);
	if (lent)
		dmio_client_lent_end(client);
}

void dmio_io_ref(struct dmio_io *io)
{
	atomic_fetch_add(&io->refs, 1);
}

void dmio_io_unref(struct dmio_io *io)
{
	if (atomic_fetch_sub(&io->refs, 1) == 1)
		io_free(io);
}

/* Record one job's outcome; the last one finishes the call.  Takes no reference. */
void dmio_job_record(struct dmio_job *job, int err)
{
	struct dmio_io *io = job->io;
	struct dmio_client *client = io->client;

	if (err < 0 && job->kind == DMIO_JOB_IO) {
		if (io->region_errors != NULL)
			io->region_errors[job->index] = -err;
		atomic_fetch_or(&io->error_bits, 1ul << job->index);
	}
	if (atomic_fetch_sub(&io->pending, 1) != 1)
		return;

	/*
	 * The last region.  Hand the bounce pages back before anyone can destroy the client,
	 * unless an abandoned job still uses them (io_free gives them back).
	 */
	if (io->bounce_pages != NULL) {
		if (io->op == DMIO_READ)
			copy_iov_pages(io->user_iov, io->user_iovcnt, io->bounce_pages, io->len,
				       false);
		if (!atomic_load(&io->lent))
			dmio_pool_give(&client->pool, io->bounce_count, io->bounce_pages);
	}
	if (io->fn != NULL) {
		io->fn(atomic_load(&io->error_bits), io->context);
		dmio_client_call_end(client);
		return;
	}
	/* The caller is usually still spinning: wake it (a system call) only when it sleeps. */
	g_mutex_lock(&io->lock);
	atomic_store(&io->done, true);
	if (io->sleeping)
		g_cond_signal(&io->cond);
	g_mutex_unlock(&io->lock);
}

/* A device answered a job: record it, unless it was abandoned (the answer changes nothing). */
static void job_finish(struct dmio_job *job, int err)
{
	if (dmio_job_untrack(job))
		dmio_job_record(job, err);
}

void dmio_job_complete(struct dmio_job *job, int err)
{
	struct dmio_io *io = job->io;

	job_finish(job, err);
	dmio_io_unref(io);
}

void dmio_job_run(struct dmio_job *job)
{
	struct dmio_io *io = job->io;

	if (!atomic_exchange(&job->claimed, true))
		job_finish(job, job_execute_timed(job));
	dmio_io_unref(io);
}

void dmio_job_drop(struct dmio_job *job)
{
	dmio_io_unref(job->io);
}

/* A synchronous caller runs a job itself, unless an engine worker got to it first. */
static void job_run_inline(struct dmio_job *job)
{
	if (!atomic_exchange(&job->claimed, true))
		job_finish(job, job_execute_timed(job));
}

/*
 * Wait for a synchronous call.  The other regions usually finish within microseconds of the
 * caller's own, so spin a little before paying for a sleep and a wake-up.
 */
static void io_wait(struct dmio_io *io)
{
	gint64 deadline = g_get_monotonic_time() + SYNC_SPIN_USEC;

	while (!atomic_load(&io->done)) {
		if (g_get_monotonic_time() > deadline) {
			g_mutex_lock(&io->lock);
			io->sleeping = true;
			while (!atomic_load(&io->done))
				g_cond_wait(&io->cond, &io->lock);
			g_mutex_unlock(&io->lock);
			break;
		}
		sched_yield();
	}
}

/* The end of a synchronous call: wait, let go of it, say how it went. */
static int io_wait_result(struct dmio_io *io, struct dmio_client *client,
			  unsigned long *error_bits)
{
	unsigned long bits;

	io_wait(io);
	bits = atomic_load(&io->error_bits);
	dmio_io_unref(io);
	dmio_client_call_end(client);
	if (error_bits != NULL)
		*error_bits = bits;
	return bits != 0 ? -EIO : 0;
}

/* ---- Setting up a call --------------------------------------------------------------------- */

static int validate(const struct dmio_request *req, unsigned int num_regions,
		    const struct dmio_region *where, uint64_t *max_len, unsigned int *num_jobs,
		    unsigned int *mem_align, unsigned int *len_align)
{
	unsigned int i;

	if (req == NULL || where == NULL || num_regions == 0 || num_regions > DMIO_MAX_REGIONS)
		return -EINVAL;
	if ((unsigned int)req->op > DMIO_WRITE_ZEROES ||
	    (req->flags & ~(DMIO_REQ_FUA | DMIO_REQ_CALLER_RUNS | DMIO_REQ_ABANDONABLE)))
		return -EINVAL;
	if (req->op == DMIO_READ && num_regions != 1)
		return -EINVAL;

	*max_len = 0;
	*num_jobs = 0;
	*mem_align = 1;
	*len_align = 1;
	for (i = 0; i < num_regions; i++) {
		const struct dmio_region *r = &where[i];
		const struct dmio_dev *dev = r->dev;
		uint64_t sectors;

		if (r->count == 0 && req->op != DMIO_FLUSH)
			continue; /* ignored, as in the kernel */
		if (dev == NULL)
			return -EINVAL;
		(*num_jobs)++;
		if (req->op == DMIO_FLUSH)
			continue;
		sectors = dmio_dev_sectors(dev);
		if (r->sector > sectors || r->count > sectors - r->sector)
			return -EINVAL;
		if (op_writes(req->op) && (dev->flags & DMIO_DEV_RDONLY))
			return -EROFS;
		if (dev->flags & DMIO_DEV_DIRECT) {
			if ((r->sector << DMIO_SECTOR_SHIFT) % dev->offset_align != 0 ||
			    (r->count << DMIO_SECTOR_SHIFT) % dev->offset_align != 0 ||
			    dev->offset_align > DMIO_PAGE_SIZE || dev->mem_align > DMIO_PAGE_SIZE)
				return -EINVAL;
			*mem_align = MAX(*mem_align, dev->mem_align);
			*len_align = MAX(*len_align, dev->offset_align);
		}
		*max_len = MAX(*max_len, r->count << DMIO_SECTOR_SHIFT);
	}
	return 0;
}

void dmio_job_set_iov(struct dmio_io *io, struct dmio_job *job)
{
	uint64_t left = job->len;
	unsigned int n = 0;

	if (job->len == io->len) {
		job->iov = io->iov;
		job->iovcnt = io->iovcnt;
		return;
	}
	while (left > io->iov[n].iov_len) {
		left -= io->iov[n].iov_len;
		n++;
	}
	if (left == io->iov[n].iov_len) {
		job->iov = io->iov;
	} else {
		job->iov_own = g_memdup2(io->iov, (n + 1) * sizeof(struct iovec));
		job->iov_own[n].iov_len = left;
		job->iov = job->iov_own;
	}
	job->iovcnt = n + 1;
}

int dmio_io_take_bounce(struct dmio_io *io, struct iovec **pages_out)
{
	unsigned int count = (unsigned int)((io->len + DMIO_PAGE_SIZE - 1) / DMIO_PAGE_SIZE);
	struct iovec *pages_iov;
	unsigned int i;
	int r;

	io->bounce_pages = g_new(void *, count);
	r = dmio_pool_take(&io->client->pool, count, io->bounce_pages);
	if (r < 0) {
		g_free(io->bounce_pages);
		io->bounce_pages = NULL;
		return r;
	}
	io->bounce_count = count;
	pages_iov = g_new(struct iovec, count);
	for (i = 0; i < count; i++) {
		pages_iov[i].iov_base = io->bounce_pages[i];
		pages_iov[i].iov_len = DMIO_PAGE_SIZE;
	}
	pages_iov[count - 1].iov_len = io->len - (uint64_t)(count - 1) * DMIO_PAGE_SIZE;
	*pages_out = pages_iov;
	return (int)count;
}

/* Replace io->iov by one aligned copy in bounce pages, shared by every region. */
static int io_bounce(struct dmio_io *io)
{
	struct iovec *pages_iov;
	int count = dmio_io_take_bounce(io, &pages_iov);

	if (count < 0)
		return count;
	if (io->op == DMIO_WRITE)
		copy_iov_pages(io->iov, io->iovcnt, io->bounce_pages, io->len, true);
	io->user_iov = io->iov;
	io->user_iovcnt = io->iovcnt;
	io->iov = pages_iov;
	io->iovcnt = (unsigned int)count;
	atomic_fetch_add(&io->client->bounces, 1);
	return 0;
}

int dmio(struct dmio_request *req, unsigned int num_regions, struct dmio_region *where,
	 unsigned long *error_bits)
{
	struct dmio_client *client;
	unsigned int num_jobs, mem_align, len_align, i, j;
	struct dmio_job *jobs;
	struct dmio_io *io;
	uint64_t max_len;
	long iovcnt = 0;
	bool sync, caller_runs, inline_all, hands_off;
	bool from_pipe = req != NULL && req->mem.type == DMIO_MEM_PIPE && op_has_data(req->op);
	int r;

	r = validate(req, num_regions, where, &max_len, &num_jobs, &mem_align, &len_align);
	if (r < 0)
		return r;
	if (from_pipe) {
		if (req->op != DMIO_WRITE || req->mem.ptr.pipe < 0)
			return -EINVAL;
	} else if (op_has_data(req->op)) {
		iovcnt = memory_to_iov(&req->mem, max_len, NULL);
		if (iovcnt < 0)
			return (int)iovcnt;
	}
	client = req->client != NULL ? req->client : dmio_default_client();
	if (client == NULL)
		return -ENOMEM;

	/* The call, its jobs (at least one, to carry the completion) and its iovec in one block. */
	io = g_malloc0(sizeof(*io) + MAX(num_jobs, 1u) * sizeof(struct dmio_job) +
		       (size_t)iovcnt * sizeof(struct iovec));
	io->client = client;
	io->op = req->op;
	io->flags = req->flags;
	io->region_errors = req->region_errors;
	io->fn = req->notify.fn;
	io->context = req->notify.context;
	io->release = req->notify.fn != NULL ? req->notify.release : NULL;
	io->num_jobs = MAX(num_jobs, 1u);
	io->len = max_len;
	io->iov = (struct iovec *)&io->jobs[io->num_jobs];
	io->iovcnt = (unsigned int)iovcnt;
	atomic_init(&io->pending, io->num_jobs);
	atomic_init(&io->error_bits, 0);
	if (iovcnt > 0)
		memory_to_iov(&req->mem, max_len, io->iov);
	if (io->region_errors != NULL)
		memset(io->region_errors, 0, num_regions * sizeof(int));

	/*
	 * A synchronous call that may be abandoned works on our own pages: the caller's memory is
	 * free when dmio() returns, even while an abandoned region still writes into ours.
	 */
	if (iovcnt > 0 &&
	    ((io->fn == NULL && (io->flags & DMIO_REQ_ABANDONABLE)) ||
	     (mem_align > 1 && !iov_aligned(io->iov, io->iovcnt, mem_align, len_align)))) {
		r = io_bounce(io);
		if (r < 0) {
			g_free(io);
			return r;
		}
	}

	jobs = io->jobs;
	for (i = 0, j = 0; i < num_regions; i++) {
		struct dmio_job *job;

		if (where[i].count == 0 && req->op != DMIO_FLUSH)
			continue;
		job = &jobs[j++];
		job->io = io;
		job->kind = DMIO_JOB_IO;
		job->index = i;
		job->region = where[i];
		job->offset = where[i].sector << DMIO_SECTOR_SHIFT;
		job->len = where[i].count << DMIO_SECTOR_SHIFT;
		if (iovcnt > 0)
			dmio_job_set_iov(io, job);
	}
	if (num_jobs == 0) {
		jobs[0].io = io;
		jobs[0].kind = DMIO_JOB_NOP;
	}
	/* The pipe's data to the jobs before anyone may run them: the caller's pipe is free. */
	if (from_pipe && num_jobs > 0) {
		r = dmio_io_from_pipe(io, req->mem.ptr.pipe);
		if (r < 0) {
			for (i = 0; i < io->num_jobs; i++)
				g_free(io->jobs[i].iov_own);
			g_free(io);
			return r;
		}
	}
	/* Outstanding on their devices from now on, whoever runs them. */
	for (i = 0; i < io->num_jobs; i++)
		dmio_job_track(&jobs[i]);
	num_jobs = io->num_jobs;
	sync = io->fn == NULL;
	/*
	 * Inline: a synchronous call in an engine thread must not wait for the threads it holds,
	 * and regions that take less time than a thread hop are faster run one after the other;
	 * an asynchronous call may do the same when its caller lets it (DMIO_REQ_CALLER_RUNS).
	 */
	/*
	 * A synchronous call that may be abandoned waits while the engine runs its regions: a
	 * caller stuck in a device could not return at the abandon.  (In an engine thread it runs
	 * them itself, as it must.)
	 */
	hands_off = sync && (io->flags & DMIO_REQ_ABANDONABLE) && !dmio_in_engine_thread();
	caller_runs = (sync && !hands_off) || (io->flags & DMIO_REQ_CALLER_RUNS);
	inline_all = caller_runs && ((sync && dmio_in_engine_thread()) || io_is_cheap(io));
	/* References: one per job handed to the engine, plus the running or waiting caller's. */
	atomic_init(&io->refs, (caller_runs || sync ? 1 : 0) +
				   (inline_all ? 0 : num_jobs - (caller_runs ? 1 : 0)));
	if (sync) {
		g_mutex_init(&io->lock);
		g_cond_init(&io->cond);
		atomic_init(&io->done, false);
	}
	dmio_client_call_begin(client);

	if (!caller_runs) {
		/* Once the last job is submitted the call may be gone: touch only locals. */
		for (i = 0; i < num_jobs; i++)
			client->engine->submit(client->engine_priv, &jobs[i]);
		if (!sync)
			return 0;
		return io_wait_result(io, client, error_bits);
	}

	/*
	 * The caller takes part: the engine starts regions 1..n-1 while the caller runs region 0;
	 * then the caller runs whatever no worker has picked up yet, so fast devices cost no
	 * thread hop and slow ones still proceed in parallel.
	 */
	if (!inline_all)
		for (i = 1; i < num_jobs; i++)
			client->engine->submit(client->engine_priv, &jobs[i]);
	job_run_inline(&jobs[0]);
	if (inline_all || client->engine->stealable)
		for (i = 1; i < num_jobs; i++)
			job_run_inline(&jobs[i]);
	if (!sync) {
		/* The last job to finish, here or in the engine, ran the notify function. */
		dmio_io_unref(io);
		return 0;
	}
	return io_wait_result(io, client, error_bits);
}

/* ---- The seed's six calls ------------------------------------------------------------------ */

static int seed_call(unsigned int num_regions, struct dmio_region *where, int rw,
		     struct dmio_memory mem, dmio_notify_fn fn, void *context,
		     unsigned long *error_bits)
{
	struct dmio_request req = {
	    .op = (enum dmio_op)rw,
	    .mem = mem,
	    .notify = {.fn = fn, .context = context},
	};

	if (rw != DMIO_READ && rw != DMIO_WRITE)
		return -EINVAL;
	return dmio(&req, num_regions, where, error_bits);
}

static struct dmio_memory mem_page_list(struct dmio_page_list *pl, unsigned int offset)
{
	struct dmio_memory mem = {.type = DMIO_MEM_PAGE_LIST, .offset = offset};

	mem.ptr.pl = pl;
	return mem;
}

static struct dmio_memory mem_bvec(struct dmio_bvec *bvec)
{
	struct dmio_memory mem = {.type = DMIO_MEM_BVEC};

	mem.ptr.bvec = bvec;
	return mem;
}

static struct dmio_memory mem_vm(void *data)
{
	struct dmio_memory mem = {.type = DMIO_MEM_VM};

	mem.ptr.vma = data;
	return mem;
}

int dmio_sync(unsigned int num_regions, struct dmio_region *where, int rw,
	      struct dmio_page_list *pl, unsigned int offset, unsigned long *error_bits)
{
	return seed_call(num_regions, where, rw, mem_page_list(pl, offset), NULL, NULL, error_bits);
}

int dmio_async(unsigned int num_regions, struct dmio_region *where, int rw,
	       struct dmio_page_list *pl, unsigned int offset, dmio_notify_fn fn, void *context)
{
	if (fn == NULL)
		return -EINVAL;
	return seed_call(num_regions, where, rw, mem_page_list(pl, offset), fn, context, NULL);
}

int dmio_sync_bvec(unsigned int num_regions, struct dmio_region *where, int rw,
		   struct dmio_bvec *bvec, unsigned long *error_bits)
{
	return seed_call(num_regions, where, rw, mem_bvec(bvec), NULL, NULL, error_bits);
}

int dmio_async_bvec(unsigned int num_regions, struct dmio_region *where, int rw,
		    struct dmio_bvec *bvec, dmio_notify_fn fn, void *context)
{
	if (fn == NULL)
		return -EINVAL;
	return seed_call(num_regions, where, rw, mem_bvec(bvec), fn, context, NULL);
}

int dmio_sync_vm(unsigned int num_regions, struct dmio_region *where, int rw, void *data,
		 unsigned long *error_bits)
{
	return seed_call(num_regions, where, rw, mem_vm(data), NULL, NULL, error_bits);
}

int dmio_async_vm(unsigned int num_regions, struct dmio_region *where, int rw, void *data,
		  dmio_notify_fn fn, void *context)
{
	if (fn == NULL)
		return -EINVAL;
	return seed_call(num_regions, where, rw, mem_vm(data), fn, context, NULL);
}
