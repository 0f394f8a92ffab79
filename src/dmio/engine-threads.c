/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The threads engine (the default): a GThreadPool whose workers each run one region's blocking
 * preadv/pwritev/fdatasync/fallocate, so that the regions of one call proceed in parallel.
 */
#include "config.h"

#include <errno.h>

#include "dmio-internal.h"

static void threads_worker(gpointer data, gpointer user_data)
{
	struct dmio_job *job = data;

	dmio_set_engine_thread();
	dmio_job_run(job);
}

static int threads_create(const struct dmio_client_opts *opts, void **priv)
{
	GError *error = NULL;
	GThreadPool *pool;

	/* Exclusive: the threads exist from the start and are never shared with other pools. */
	pool = g_thread_pool_new(threads_worker, NULL, (gint)opts->threads, TRUE, &error);
	if (pool == NULL) {
		g_warning("dmio: cannot start %u engine threads: %s", opts->threads,
			  error->message);
		g_error_free(error);
		return -EAGAIN;
	}
	*priv = pool;
	return 0;
}

static void threads_submit(void *priv, struct dmio_job *job)
{
	g_thread_pool_push(priv, job, NULL);
}

static void threads_destroy(void *priv)
{
	g_thread_pool_free(priv, FALSE, TRUE);
}

const struct dmio_engine_ops dmio_engine_threads = {
    .name = "threads",
    .create = threads_create,
    .submit = threads_submit,
    .destroy = threads_destroy,
    .stealable = true,
};
