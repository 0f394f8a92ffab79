/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Outstanding jobs and giving up on them (dmio_dev_busy_ns, dmio_dev_abandon).
 *
 * Every job of a call is on its device's list from dmio() until its outcome is recorded, so that
 * the list tells how long the device has been working on its oldest job, and an abandon finds
 * what to give up on.  A job's outcome is recorded exactly once, by its device's answer or by an
 * abandon, whichever comes first: both decide under the device's jobs_lock (a leaf), the answer
 * in dmio_job_untrack(), the abandon by setting job->abandoned.
 *
 * An abandoned job that was waiting is claimed, so nobody ever runs it.  One that was running
 * keeps its call's memory (and the device) until the device answers: the call is "lent" - its
 * bounce pages and its client stay until it is freed, and a dmio_dev_close() meanwhile is done
 * by the last answer.  Whoever ran the job may be the caller of an async DMIO_REQ_CALLER_RUNS
 * call that would have run the call's other regions after it, or an engine thread the engine
 * now lacks: so the call's unclaimed regions are run on threads of their own (rescued) and the
 * engine is told to start a thread more.
 *
 * A job its device runs asynchronously (engine-async.c: NBD) is running from its submission on;
 * no thread is stuck in it, so the engine's thread more is only allowed, not needed (glib starts
 * it only for work that waits).  Its late answer arrives on an engine thread like any other, and
 * the device keeps the call's memory until then, as a stuck thread would.
 */
#include "config.h"

#include <errno.h>

#include "dmio-internal.h"

static void list_remove(struct dmio_dev *dev, struct dmio_job *job)
{
	if (job->dev_prev != NULL)
		job->dev_prev->dev_next = job->dev_next;
	else
		dev->jobs_head = job->dev_next;
	if (job->dev_next != NULL)
		job->dev_next->dev_prev = job->dev_prev;
	else
		dev->jobs_tail = job->dev_prev;
	job->dev_prev = job->dev_next = NULL;
	job->tracked = false;
	dev->jobs_count--;
}

void dmio_job_track(struct dmio_job *job)
{
	struct dmio_dev *dev = job->region.dev;

	if (job->kind != DMIO_JOB_IO)
		return;
	g_mutex_lock(&dev->jobs_lock);
	job->dev_prev = dev->jobs_tail;
	job->dev_next = NULL;
	if (dev->jobs_tail != NULL)
		dev->jobs_tail->dev_next = job;
	else
		dev->jobs_head = job;
	dev->jobs_tail = job;
	dev->jobs_count++;
	job->tracked = true;
	g_mutex_unlock(&dev->jobs_lock);
}

void dmio_job_mark_started(struct dmio_job *job)
{
	unsigned long long expected = 0;

	/* The first start counts: an engine that hands a job on runs it again. */
	atomic_compare_exchange_strong(&job->started_ns, &expected, dmio_now_ns());
}

bool dmio_job_untrack(struct dmio_job *job)
{
	struct dmio_dev *dev = job->region.dev;
	bool late, close_now = false;

	if (job->kind != DMIO_JOB_IO)
		return true;
	g_mutex_lock(&dev->jobs_lock);
	late = job->abandoned;
	if (!late) {
		list_remove(dev, job);
	} else {
		dev->abandoned_running--;
		close_now = dev->abandoned_running == 0 && dev->close_pending;
	}
	g_mutex_unlock(&dev->jobs_lock);
	if (late) {
		struct dmio_client *client = job->io->client;

		if (client->engine->stuck != NULL)
			client->engine->stuck(client->engine_priv, -1);
		if (close_now)
			dmio_dev_free(dev);
	}
	return !late;
}

uint64_t dmio_dev_busy_ns(struct dmio_dev *dev, unsigned int *outstanding)
{
	uint64_t oldest = 0;
	struct dmio_job *job;

	g_mutex_lock(&dev->jobs_lock);
	for (job = dev->jobs_head; job != NULL; job = job->dev_next) {
		uint64_t started = atomic_load(&job->started_ns);

		if (started != 0 && (oldest == 0 || started < oldest))
			oldest = started;
	}
	if (outstanding != NULL)
		*outstanding = dev->jobs_count;
	g_mutex_unlock(&dev->jobs_lock);
	if (oldest == 0)
		return 0;
	return MAX(dmio_now_ns() - oldest, 1u);
}

unsigned int dmio_dev_abandoned(struct dmio_dev *dev)
{
	unsigned int n;

	g_mutex_lock(&dev->jobs_lock);
	n = dev->abandoned_running;
	g_mutex_unlock(&dev->jobs_lock);
	return n;
}

/* ---- Rescue: the regions a stuck runner would have run -------------------------------------- */

static gpointer rescue_thread(gpointer data)
{
	struct dmio_job *job = data;

	/* A synchronous call made by a notify fn here must run inline, not wait for a pool. */
	dmio_set_engine_thread();
	dmio_job_run(job);
	return NULL;
}

void dmio_job_rescue(struct dmio_job *job)
{
	GError *error = NULL;
	GThread *thread;

	dmio_io_ref(job->io);
	thread = g_thread_try_new("dmio-rescue", rescue_thread, job, &error);
	if (thread == NULL) {
		/* Run it here: better late than never. */
		g_warning("dmio: cannot start a thread for a region of an abandoned call: %s",
			  error->message);
		g_error_free(error);
		rescue_thread(job);
		return;
	}
	g_thread_unref(thread);
}

/* ---- Abandon ------------------------------------------------------------------------------- */

struct abandoned {
	struct dmio_job *job;
	bool running;
};

unsigned int dmio_dev_abandon(struct dmio_dev *dev, int err)
{
	GArray *jobs = g_array_new(FALSE, FALSE, sizeof(struct abandoned));
	struct dmio_job *job, *next;
	unsigned int i, n;

	g_mutex_lock(&dev->jobs_lock);
	for (job = dev->jobs_head; job != NULL; job = next) {
		struct abandoned a = {.job = job};

		next = job->dev_next;
		if (!(job->io->flags & DMIO_REQ_ABANDONABLE))
			continue;
		/* Claimed by us: it never runs.  Claimed already: it is running (or about to). */
		a.running = atomic_exchange(&job->claimed, true);
		list_remove(dev, job);
		job->abandoned = a.running;
		if (a.running)
			dev->abandoned_running++;
		/* The call stays while we finish the job, whatever its other regions do. */
		dmio_io_ref(job->io);
		g_array_append_val(jobs, a);
	}
	g_mutex_unlock(&dev->jobs_lock);

	n = jobs->len;
	for (i = 0; i < n; i++) {
		struct abandoned *a = &g_array_index(jobs, struct abandoned, i);
		struct dmio_io *io = a->job->io;
		unsigned int j;

		if (a->running) {
			if (!atomic_exchange(&io->lent, true))
				dmio_client_lent_begin(io->client);
			if (io->client->engine->stuck != NULL)
				io->client->engine->stuck(io->client->engine_priv, 1);
			/* Its runner may be the one who would run the rest: nobody else will. */
			for (j = 0; j < io->num_jobs; j++)
				if (&io->jobs[j] != a->job && !atomic_load(&io->jobs[j].claimed))
					dmio_job_rescue(&io->jobs[j]);
		}
		dmio_job_record(a->job, -err);
		dmio_io_unref(io);
	}
	g_array_free(jobs, TRUE);
	return n;
}
