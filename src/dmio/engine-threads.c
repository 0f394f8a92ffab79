/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The threads engine (the default): a GThreadPool whose workers each run one region's blocking
 * preadv/pwritev/fdatasync/fallocate, so that the regions of one call proceed in parallel.
 * A device that answers asynchronously (NBD) gets its jobs directly (engine-async.c); a worker
 * only completes them once the device answered.
 */
#include "config.h"

#include <errno.h>

#include "dmio-internal.h"

static void threads_worker(gpointer data, gpointer user_data)
{
	struct dmio_job *job = data;

	dmio_set_engine_thread();
	if (job->dev_answered)
		dmio_job_finish_async(job);
	else
		dmio_job_run(job);
}

struct threads {
	GThreadPool *pool;
	GMutex lock; /* a leaf: protects stuck */
	unsigned int base;
	unsigned int stuck; /* workers running abandoned jobs */
};

static int threads_create(const struct dmio_client_opts *opts, void **priv)
{
	struct threads *t = g_new0(struct threads, 1);
	GError *error = NULL;

	/* Exclusive: the threads exist from the start and are never shared with other pools. */
	t->pool = g_thread_pool_new(threads_worker, NULL, (gint)opts->threads, TRUE, &error);
	if (t->pool == NULL) {
		g_warning("dmio: cannot start %u engine threads: %s", opts->threads,
			  error->message);
		g_error_free(error);
		g_free(t);
		return -EAGAIN;
	}
	t->base = opts->threads;
	g_mutex_init(&t->lock);
	*priv = t;
	return 0;
}

static void threads_submit(void *priv, struct dmio_job *job)
{
	struct threads *t = priv;

	if (dmio_job_submit_async(job))
		return;
	g_thread_pool_push(t->pool, job, NULL);
}

/* From a device's thread: a worker completes the job it answered. */
static void threads_finished(void *priv, struct dmio_job *job)
{
	struct threads *t = priv;

	g_thread_pool_push(t->pool, job, NULL);
}

/* A worker stuck in an abandoned job is replaced, so the pool keeps its strength. */
static void threads_stuck(void *priv, int delta)
{
	struct threads *t = priv;

	g_mutex_lock(&t->lock);
	t->stuck = (unsigned int)((int)t->stuck + delta);
	g_thread_pool_set_max_threads(t->pool, (gint)(t->base + t->stuck), NULL);
	g_mutex_unlock(&t->lock);
}

static void threads_destroy(void *priv)
{
	struct threads *t = priv;

	g_thread_pool_free(t->pool, FALSE, TRUE);
	g_mutex_clear(&t->lock);
	g_free(t);
}

const struct dmio_engine_ops dmio_engine_threads = {
    .name = "threads",
    .create = threads_create,
    .submit = threads_submit,
    .destroy = threads_destroy,
    .stealable = true,
    .stuck = threads_stuck,
    .finished = threads_finished,
};
