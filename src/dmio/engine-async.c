/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Jobs of devices that answer asynchronously (a device kind with ops->submit: NBD), for every
 * engine.  The engine's submit hands such a job to the device instead of to one of its threads:
 * the device's own thread answers, and the engine completes the job on one of its threads
 * (engine->finished), so no engine thread blocks while the request is in flight and the device's
 * thread never runs a notify fn (which may call the device synchronously: it would wait for
 * itself).
 *
 * Only ops the device takes as they are go this way: reads, writes (FUA ones only when the
 * device has FUA), flushes, and discards and write-zeroes without FUA when the device has them.
 * The rest - the capability fallbacks of dmio_job_execute() - runs synchronously, as it always
 * did, and so does a job whose device refused its op after all (-EOPNOTSUPP: the fallback then
 * switches the capability off), or asked to be asked again (-EINTR, -EAGAIN).
 *
 * Abandon (abandon.c) sees such a job as running from its start here: its late answer comes
 * through the same path, and dmio_job_complete() ignores it.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "dmio-internal.h"

static bool async_takes(const struct dmio_job *job)
{
	struct dmio_dev *dev = job->region.dev;
	bool fua = job->io->flags & DMIO_REQ_FUA;

	if (job->kind != DMIO_JOB_IO || dev->ops->submit == NULL || job->spliced)
		return false;
	switch (job->io->op) {
	case DMIO_READ:
	case DMIO_FLUSH:
		return true;
	case DMIO_WRITE:
		return !fua || atomic_load(&dev->can_fua);
	case DMIO_DISCARD:
		return !fua && atomic_load(&dev->can_discard);
	case DMIO_WRITE_ZEROES:
		return !fua && atomic_load(&dev->can_zero);
	default:
		return false;
	}
}

/* The device's thread: hand the answer to the engine. */
static void async_done(void *opaque, int err)
{
	struct dmio_job *job = opaque;
	struct dmio_client *client = job->io->client;

	job->dev_result = err;
	job->dev_answered = true;
	client->engine->finished(client->engine_priv, job);
}

bool dmio_job_submit_async(struct dmio_job *job)
{
	struct dmio_dev *dev = job->region.dev;
	struct dmio_io *io = job->io;
	int r;

	if (!async_takes(job))
		return false;
	/* Abandoned or rescued while it waited, or run by a synchronous caller. */
	if (atomic_exchange(&job->claimed, true)) {
		dmio_job_drop(job);
		return true;
	}
	dmio_job_mark_started(job);
	r = dev->ops->submit(dev, io->op, job->iov, job->iovcnt, job->offset, job->len,
			     io->flags & DMIO_REQ_FUA, async_done, job);
	/* Refused at once (a lost device): completed on an engine thread all the same. */
	if (r < 0)
		async_done(job, r);
	return true;
}

static void zero_iov(const struct iovec *iov, unsigned int iovcnt)
{
	unsigned int i;

	for (i = 0; i < iovcnt; i++)
		memset(iov[i].iov_base, 0, iov[i].iov_len);
}

void dmio_job_finish_async(struct dmio_job *job)
{
	int r = job->dev_result;

	switch (r) {
	case -EOPNOTSUPP:
	case -EINTR:
	case -EAGAIN:
		r = dmio_job_execute(job);
		break;
	default:
		/* What dmio_job_execute() promises: a failed read leaves zeroes, not garbage. */
		if (r < 0 && job->io->op == DMIO_READ)
			zero_iov(job->iov, job->iovcnt);
		break;
	}
	dmio_job_complete(job, r);
}
